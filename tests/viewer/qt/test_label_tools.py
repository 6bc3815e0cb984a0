"""Label proofreading at the desk: select, merge, paint strokes, split, undo, driven with
QTest mouse and keys on the slice views at the default zoom.

References: the project's working copy read with zarr-python (``levels_of``), NumPy edits
of the original array, skimage.draw.disk for the brush's disc, the screen pixels of the
slice views (grabbed) for what the user sees.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6 import QtCore, QtGui
from skimage.draw import disk

from tests.analysis.edits._labels_support import (
    SCALE,
    assert_pyramid,
    blobs,
    decodes_on_this_thread,
    label_state,
    levels_of,
    make_store,
    prefetches,
)
from tests.viewer.qt.conftest import wait_slices
from tests.viewer.qt.test_app import click, key
from viewer.qt._slices import grab_array, slice_axes

pytestmark = pytest.mark.qt

Qt = QtCore.Qt


def w(v: tuple[float, float, float]) -> tuple[float, float, float]:
    """World µm of level-0 voxel ``v``."""
    return (v[0] * SCALE[0], v[1] * SCALE[1], v[2] * SCALE[2])


@pytest.fixture
def labels_viewer(make_viewer: Any, tmp_path: Path) -> Any:
    store = make_store(tmp_path / "img.zarr", blobs())
    return make_viewer(str(store), ["cells"], project=str(tmp_path / "proj"))


def pause(qtbot: Any) -> None:
    """A user's pause between two clicks (two quick clicks would be a double click)."""
    qtbot.wait(QtGui.QGuiApplication.styleHints().mouseDoubleClickInterval() + 50)


def copy_level0(win: Any) -> np.ndarray:
    """Level 0 of the working copy as shown: the stored voxels (zarr-python) with NumPy's
    lookup of the id mapping (merges)."""
    return label_state(win.session.project)[0]


def assert_slices_show(win: Any, expect: np.ndarray) -> None:
    """What each slice view holds of ``cells`` (its level, slice and window) equals the
    same part of ``expect`` (level 0) sampled as that level."""
    for plane, view in win.slices.items():
        res = view.shown("cells")
        assert res is not None, plane
        rq = res.request
        f = 2**rq.level
        lv = expect[::f, ::f, ::f]
        r, c, a = slice_axes(view.plane)
        region = [slice(None)] * 3
        region[a] = slice(rq.k, rq.k + 1)
        region[r] = slice(*rq.rows)
        region[c] = slice(*rq.cols)
        want = np.squeeze(lv[tuple(region)], axis=a)  # (rows, cols): r < c for every plane
        np.testing.assert_array_equal(np.asarray(res.array), want, err_msg=plane)


def pixel(win: Any, plane: str, zyx: tuple[float, float, float]) -> np.ndarray:
    """The RGB the slice view shows at world ``zyx`` (a grab of the widget)."""
    view = win.slices[plane]
    pos = view.mapFromScene(view.view_to_scene(zyx))
    img = grab_array(view)
    ratio = img.shape[1] / view.width()
    return img[int(pos.y() * ratio), int(pos.x() * ratio), :3].astype(int)


def cursor_voxel(win: Any) -> tuple[int, int, int]:
    c = win.session.cursor
    return (
        int(round(c[0] / SCALE[0])),
        int(round(c[1] / SCALE[1])),
        int(round(c[2] / SCALE[2])),
    )


def test_ctrl_click_two_touching_objects_then_merge(qtbot: Any, labels_viewer: Any) -> None:
    win = labels_viewer
    lab = blobs()
    y = cursor_voxel(win)[1]
    assert 5 <= y < 30  # the XZ slice crosses objects 1 (z 5..19) and 2 (z 20..34)
    sel = win.session.scene.selection
    click(qtbot, win, "xz", w((10, y, 14)))
    # (read from the slice on screen, else probed on a worker: the selection may come later)
    qtbot.waitUntil(lambda: sel.label_ids == [1], timeout=10_000)
    pause(qtbot)
    click(qtbot, win, "xz", w((28, y, 26)), Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: sel.label_ids == [1, 2], timeout=10_000)
    # where the colours are compared: inside each object, off the crosshair (at the last click)
    a, b = w((14, y, 34)), w((24, y, 8))
    wait_slices(qtbot, win)
    assert not np.array_equal(pixel(win, "xz", a), pixel(win, "xz", b))
    wait_slices(qtbot, win)
    assert_slices_show(win, lab)
    key(qtbot, win, Qt.Key.Key_M, Qt.KeyboardModifier.ShiftModifier)
    got = copy_level0(win)
    merged = np.where(lab == 2, 1, lab)
    np.testing.assert_array_equal(got, merged)
    # a merge is an id mapping: the stored voxels are the fragments still
    stored = levels_of(win.session.project.path / "labels" / "cells.zarr")
    np.testing.assert_array_equal(stored[0], lab)
    assert_pyramid(stored)
    wait_slices(qtbot, win)
    np.testing.assert_array_equal(pixel(win, "xz", a), pixel(win, "xz", b))
    # every slice view shows the edit (none shows object 2 any more): its pixels are
    # NumPy's merge of the original, at the level and slice it shows
    for plane in ("xy", "xz", "yz"):
        shown = win.slices[plane].shown("cells")
        assert shown is not None and 2 not in set(np.unique(shown.array).tolist())
    assert_slices_show(win, merged)
    key(qtbot, win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(copy_level0(win), lab)
    wait_slices(qtbot, win)
    assert not np.array_equal(pixel(win, "xz", a), pixel(win, "xz", b))
    assert_slices_show(win, lab)


def test_brush_stroke_paints_the_disc_and_one_undo_reverts_it(
    qtbot: Any, labels_viewer: Any
) -> None:
    win = labels_viewer
    s = win.session
    lab = blobs()
    key(qtbot, win, Qt.Key.Key_N, Qt.KeyboardModifier.AltModifier)  # labels.new_id
    assert s.label_brush.value == 6
    key(qtbot, win, Qt.Key.Key_B)  # tool.paint
    assert win.label_tools.mode == "paint"
    s.label_brush.radius_um = 0.045  # 4.5 voxels: no voxel centre on the rim
    view = win.slices["xy"]
    z = cursor_voxel(win)[0]
    c1 = (z, 40, 15)  # inside object 3
    wait_slices(qtbot, win)
    before = pixel(win, "xy", w(c1))
    pos1 = view.mapFromScene(view.view_to_scene(w(c1)))
    qtbot.mouseMove(view.viewport(), pos1)
    qtbot.wait(20)
    circle = win.label_tools.cursors["xy"]
    assert circle.isVisible()
    assert circle.rect().width() == pytest.approx(0.09)  # the radius in µm, drawn as a circle
    # a click: press and release in place is a one-stamp stroke
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=pos1)
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=pos1)
    pause(qtbot)
    expect = lab.copy()
    rr, cc = disk(c1[1:], 4.5, shape=lab.shape[1:])
    expect[z, rr, cc] = 6
    np.testing.assert_array_equal(copy_level0(win), expect)
    wait_slices(qtbot, win)
    assert not np.array_equal(pixel(win, "xy", w(c1)), before)  # seen without reopening
    # a drag: press, move, release is ONE undo step
    c2, c3 = (z, 20, 45), (z, 20, 52)
    p2 = view.mapFromScene(view.view_to_scene(w(c2)))
    p3 = view.mapFromScene(view.view_to_scene(w(c3)))
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=p2)
    qtbot.mouseMove(view.viewport(), p3)
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=p3)
    after = copy_level0(win)
    changed = np.argwhere(after != expect)
    assert len(changed) and (changed[:, 0] == z).all()  # only in the slice's plane
    for c in (c2, c3):  # both ends' discs are painted
        rr, cc = disk(c[1:], 4.5, shape=lab.shape[1:])
        assert (after[z, rr, cc] == 6).all()
    # and nothing farther than the radius from the segment between them
    d = np.maximum(0, np.maximum(c2[2] - changed[:, 2], changed[:, 2] - c3[2]))
    assert (np.hypot(changed[:, 1] - 20, d) <= 4.5).all()
    assert win.session.history.undo_steps[-1].name == "paint stroke"
    key(qtbot, win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(copy_level0(win), expect)
    key(qtbot, win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(copy_level0(win), lab)
    wait_slices(qtbot, win)
    np.testing.assert_array_equal(pixel(win, "xy", w(c1)), before)


def test_the_brush_circle_has_the_chunks_under_it_decoded_before_the_click(
    qtbot: Any, labels_viewer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the paint brush, the mouse resting on a slice has the working copy decode,
    in the background, the chunks a stamp there reads: the click that follows decodes no
    chunk file on the GUI thread, and paints skimage's disc."""

    from analysis.io import LabelEditStore

    win = labels_viewer
    s = win.session
    lab = blobs()
    key(qtbot, win, Qt.Key.Key_B)  # tool.paint
    s.label_brush.value, s.label_brush.radius_um = 7, 0.045
    view = win.slices["xy"]
    z = cursor_voxel(win)[0]
    wait_slices(qtbot, win)
    c1, c2 = (z, 40, 15), (z, 12, 50)  # 16³ chunks: c2's are not c1's
    p1 = view.mapFromScene(view.view_to_scene(w(c1)))
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=p1)  # makes the copy
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=p1)
    pause(qtbot)
    store = s.label_image("cells")
    assert isinstance(store, LabelEditStore)
    decoded = decodes_on_this_thread(monkeypatch)
    asked = prefetches(monkeypatch)
    p2 = view.mapFromScene(view.view_to_scene(w(c2)))
    qtbot.mouseMove(view.viewport(), p2)
    qtbot.waitUntil(lambda: bool(asked) and asked[-1].is_set(), timeout=10_000)
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=p2)
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=p2)
    pause(qtbot)
    assert decoded == []
    expect = lab.copy()
    for c in (c1, c2):
        rr, cc = disk(c[1:], 4.5, shape=lab.shape[1:])
        expect[z, rr, cc] = 7
    np.testing.assert_array_equal(copy_level0(win), expect)


def test_split_by_two_seed_clicks_with_a_preview(qtbot: Any, labels_viewer: Any) -> None:
    win = labels_viewer
    lab = blobs()
    y = cursor_voxel(win)[1]
    a, b = (10, y, 8), (10, y, 36)
    key(qtbot, win, Qt.Key.Key_X, Qt.KeyboardModifier.ShiftModifier)  # tool.split
    assert win.label_tools.mode == "split"
    click(qtbot, win, "xz", w(a))
    assert win.session.label_brush.seeds == [a]
    pause(qtbot)
    click(qtbot, win, "xz", w(b))
    prev = win.label_tools.previews["xz"]
    assert prev.isVisible()  # the parts, before anything is written
    # the XZ preview (rows z, columns x, from the object's box z 5.., x 5..): each seed
    # lies in its own part's colour, and the two parts cover the object's voxels there
    from viewer.qt._labeltools import PREVIEW_COLORS

    img = prev.image
    np.testing.assert_array_equal(img[a[0] - 5, a[2] - 5], PREVIEW_COLORS[0])
    np.testing.assert_array_equal(img[b[0] - 5, b[2] - 5], PREVIEW_COLORS[1])
    np.testing.assert_array_equal(img[..., 3] > 0, lab[5:20, y, 5:40] == 1)
    np.testing.assert_array_equal(copy_level0(win), lab)
    key(qtbot, win, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    got = copy_level0(win)
    obj = lab == 1
    np.testing.assert_array_equal(got[~obj], lab[~obj])
    assert (got[obj] != 0).all() and got[a] == 1 and got[b] == 6
    assert not win.label_tools.previews["xz"].isVisible()
    wait_slices(qtbot, win)
    assert not np.array_equal(pixel(win, "xz", w(a)), pixel(win, "xz", w(b)))


def journal_without_atoms(folder: Path) -> list[dict[str, Any]]:
    """The journal's lines, without the atom ids (random names of the undo data files)
    and so without the lines' checksums, which cover them."""
    out = []
    for line in (folder / "journal.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if isinstance(rec.get("cmd"), dict):
            rec["cmd"]["args"].pop("atom", None)
            rec.pop("crc", None)
        out.append(rec)
    return out


def test_desktop_and_headset_merge_and_delete_journal_the_same(
    qtbot: Any, labels_viewer: Any, tmp_path: Path
) -> None:
    from tests.xrmode.test_label_tool import Rig

    win = labels_viewer
    y = cursor_voxel(win)[1]
    sel = win.session.scene.selection
    # desktop: click object 1, Ctrl+click object 2, Shift+M; click object 3, Ctrl+Delete
    click(qtbot, win, "xz", w((10, y, 14)))
    qtbot.waitUntil(lambda: sel.label_ids == [1], timeout=10_000)
    pause(qtbot)
    click(qtbot, win, "xz", w((28, y, 26)), Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: sel.label_ids == [1, 2], timeout=10_000)
    key(qtbot, win, Qt.Key.Key_M, Qt.KeyboardModifier.ShiftModifier)
    pause(qtbot)
    click(qtbot, win, "xy", (win.session.cursor[0], w((0, 40, 0))[1], w((0, 0, 30))[2]))
    qtbot.waitUntil(lambda: sel.label_ids == [3], timeout=10_000)
    key(qtbot, win, Qt.Key.Key_Delete, Qt.KeyboardModifier.ControlModifier)
    # headset: trigger on object 1 (from below), trigger on object 2 (from above), A; B on 3
    store = Path(win.session.project.info.image)
    (tmp_path / "headset").mkdir()
    rig = Rig(tmp_path / "headset", store)
    try:
        rig.press(rig.from_below(w((10, 15, 20))))
        rig.press(aim_at_world(rig, w((30, 15, 20))))
        rig.press(aim_at_world(rig, w((30, 15, 20))), button="primary")
        rig.press(aim_at_world(rig, w((30, 40, 30))), button="secondary")
        desk = journal_without_atoms(win.session.project.path)
        head = journal_without_atoms(rig.project.path)
        assert [r["cmd"]["kind"] for r in desk if "cmd" in r] == ["labels.merge", "labels.delete"]
        assert head == desk
        np.testing.assert_array_equal(
            rig.level0(), np.where(np.isin(blobs(), [2, 3]), np.where(blobs() == 2, 1, 0), blobs())
        )
        np.testing.assert_array_equal(copy_level0(win), rig.level0())
    finally:
        rig.project.close()


def aim_at_world(rig: Any, zyx: tuple[float, float, float]) -> Any:
    from tests.xrmode.test_tools import aim_at

    return aim_at(rig.ctx, zyx)


def drawn_ids(adapter: Any) -> set[int]:
    return {int(i) for *_, ids in adapter.drawn_triangles() for i in np.unique(ids)}


def test_the_3d_view_remeshes_the_edited_bricks_without_reopening(
    qtbot: Any, labels_viewer: Any
) -> None:
    from tests.viewer.qt.conftest import wait_rendered
    from viewer.render import VtkStreamedSurfaces

    win = labels_viewer
    s = win.session
    key(qtbot, win, Qt.Key.Key_N, Qt.KeyboardModifier.AltModifier)  # the working copy is made
    wait_rendered(qtbot, win)
    ctl = win.render_view.render_thread.streaming
    adapter = ctl.adapters["cells"]
    assert isinstance(adapter, VtkStreamedSurfaces)
    streamer = adapter.streamer
    qtbot.waitUntil(lambda: {1, 2, 3} <= drawn_ids(adapter), timeout=120_000)
    built = adapter.built
    s.select_labels("cells", [1, 2])
    key(qtbot, win, Qt.Key.Key_M, Qt.KeyboardModifier.ShiftModifier)
    np.testing.assert_array_equal(copy_level0(win), np.where(blobs() == 2, 1, blobs()))
    win.render_view.render_thread.request()
    qtbot.waitUntil(lambda: 2 not in drawn_ids(adapter), timeout=120_000)
    wait_rendered(qtbot, win)
    assert ctl.adapters["cells"] is adapter and adapter.streamer is streamer  # not reopened
    assert 1 in drawn_ids(adapter) and 3 in drawn_ids(adapter)
    assert adapter.built > built
