"""Clipping planes and object classification, driven through their panels.

References: an independent pinhole projection (where the clipped half lands on
screen), the extent arithmetic of the slider, scikit-learn's random forest trained
directly on the same examples, and the project's journal file read as JSON lines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6 import QtCore

from tests.viewer.qt.conftest import wait_rendered
from tests.viewer.render.conftest import project_independently

pytestmark = pytest.mark.qt

Qt = QtCore.Qt


def view3d(win: Any) -> np.ndarray:
    rv = win.render_view
    img = rv.last_image()
    assert img is not None
    from viewer.qt._slices import grab_array

    return grab_array(rv).astype(float)


def test_clipping_planes_from_the_panel_cut_3d_move_and_come_back(
    make_viewer: Any, fibsem_store: Path, tmp_path: Path, qtbot: Any
) -> None:
    proj = str(tmp_path / "p")
    win = make_viewer(str(fibsem_store), project=proj)
    s = win.session
    s.scene.reset_camera()  # looking down z: x to the right, y down
    wait_rendered(qtbot, win)
    before = view3d(win)
    panel = win.clipping_panel

    # "+x" at the cursor (the centre): the x < centre half is cut away.
    panel.preset.setCurrentText("+x")
    qtbot.mouseClick(panel.add, Qt.MouseButton.LeftButton)
    assert len(s.scene.clipping_planes) == 1
    plane = s.scene.clipping_planes[0]
    np.testing.assert_allclose(plane.normal, (0, 0, 1))
    lo, hi = s.scene.extent_world()
    np.testing.assert_allclose(plane.origin, (lo + hi) / 2)
    wait_rendered(qtbot, win)
    after = view3d(win)
    cam = s.scene.camera
    rv = win.render_view
    size = (rv.width(), rv.height())
    c = (lo + hi) / 2
    w = hi[2] - lo[2]
    left, right = (
        project_independently(
            cam.position,
            cam.focal_point,
            cam.view_up,
            cam.view_angle,
            size,
            [[c[0], c[1], lo[2] + 0.25 * w], [c[0], c[1], lo[2] + 0.75 * w]],
        )
        .round()
        .astype(int)
    )

    def patch(img: np.ndarray, px: np.ndarray) -> np.ndarray:
        return img[px[1] - 3 : px[1] + 4, px[0] - 3 : px[0] + 4]

    bg = after[2, 2]
    changed_left = np.abs(patch(after, left) - patch(before, left)).mean()
    changed_right = np.abs(patch(after, right) - patch(before, right)).mean()
    assert changed_left > 10 and changed_left > 5 * changed_right
    assert np.abs(patch(after, left) - bg).mean() < 8  # only background there now

    # Dragging the slider moves the plane along its normal across the extent.
    panel.position.setValue(750)
    np.testing.assert_allclose(plane.origin[2], lo[2] + 0.75 * w, atol=w / 500)
    # ... and dragging its line in the XY slice moves it too (a real mouse drag).
    xy = win.slices["xy"]
    (line,) = xy.clip_lines
    assert line.value() == pytest.approx(plane.origin[2])
    start = xy.mapFromScene(xy.view_to_scene((c[0], c[1], plane.origin[2])))
    target_x = lo[2] + 0.4 * w
    end = xy.mapFromScene(xy.view_to_scene((c[0], c[1], target_x)))
    qtbot.mousePress(xy.viewport(), Qt.MouseButton.LeftButton, pos=start)
    for f in np.linspace(0, 1, 6)[1:]:
        qtbot.mouseMove(xy.viewport(), start + (end - start) * f)
    qtbot.mouseRelease(xy.viewport(), Qt.MouseButton.LeftButton, pos=end)
    assert plane.origin[2] == pytest.approx(target_x, abs=3 * xy.pixel_size_um())
    assert panel.position.value() == pytest.approx(400, abs=5)

    # Free orientation: azimuth 45° in the y-x plane.
    panel.azimuth.setValue(45.0)
    np.testing.assert_allclose(plane.normal, (0, np.sqrt(0.5), np.sqrt(0.5)), atol=1e-9)
    assert xy.clip_lines == []  # no longer perpendicular to the slice

    # A second, axis-aligned plane; then save, close, reopen: both planes come back.
    panel.preset.setCurrentText("-z")
    qtbot.mouseClick(panel.add, Qt.MouseButton.LeftButton)
    saved = [(p.origin, p.normal, p.enabled) for p in s.scene.clipping_planes]
    win.qactions["file.save"].trigger()
    win.close()
    win2 = make_viewer(project=proj)
    back = [(p.origin, p.normal, p.enabled) for p in win2.session.scene.clipping_planes]
    assert len(back) == 2
    for (o, n, e), (o2, n2, e2) in zip(saved, back, strict=True):
        np.testing.assert_allclose(o2, o)
        np.testing.assert_allclose(n2, n)
        assert e == e2
    assert win2.clipping_panel.list.count() == 2
    # Remove from the panel.
    win2.clipping_panel.list.setCurrentRow(0)
    qtbot.mouseClick(win2.clipping_panel.remove, Qt.MouseButton.LeftButton)
    assert len(win2.session.scene.clipping_planes) == 1


def test_object_classification_from_labelled_examples(
    make_viewer: Any, fibsem_store: Path, tmp_path: Path, qtbot: Any
) -> None:
    from sklearn.ensemble import RandomForestClassifier

    proj = tmp_path / "p"
    win = make_viewer(str(fibsem_store), ["mitochondria"], project=str(proj))
    s = win.session
    job = win.run_measure(s.layer("mitochondria"))
    qtbot.waitUntil(lambda: job.done.is_set() and win.features.table is not None, timeout=120_000)
    fp = win.features
    table = fp.table
    order = table.sort_values("volume_um3")["label"].astype(int).tolist()
    small, big = order[:2], order[-2:]

    def select_rows(labels: list[int]) -> None:
        sm = fp.view.selectionModel()
        sm.clearSelection()
        flags = (
            QtCore.QItemSelectionModel.SelectionFlag.Select
            | QtCore.QItemSelectionModel.SelectionFlag.Rows
        )
        for r, lab in enumerate(table["label"].astype(int)):
            if lab in labels:
                sm.select(fp.view.model().index(r, 0), flags)

    for labels, name in ((big, "big"), (small, "small")):
        select_rows(labels)
        assert sorted(s.scene.selection.label_ids) == sorted(labels)
        fp.object_class.setCurrentText(name)
        qtbot.mouseClick(fp.assign, Qt.MouseButton.LeftButton)
    want = {**{b: "big" for b in big}, **{m: "small" for m in small}}
    assert s.annotations.object_classes["mitochondria"] == want
    assert "big: 2" in fp.examples.text() and "small: 2" in fp.examples.text()
    # One undo removes the whole "small" step; redo brings it back.
    win.qactions["edit.undo"].trigger()
    assert s.annotations.object_classes["mitochondria"] == {b: "big" for b in big}
    win.qactions["edit.redo"].trigger()
    assert s.annotations.object_classes["mitochondria"] == want
    # Every example is a journaled SetObjectClass.
    ops = [json.loads(ln) for ln in (proj / "journal.jsonl").read_text().splitlines()]
    classified = [o["cmd"] for o in ops if o.get("op") == "apply"]
    classified = [c for c in classified if c.get("kind") == "set_object_class"]
    assert sorted((c["args"]["label"], c["args"]["class"]) for c in classified) == sorted(
        want.items()
    )

    qtbot.mouseClick(fp.train, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: fp.table is not None and "class" in fp.table, timeout=60_000)
    out = fp.table
    # Reference: scikit-learn's forest on the same examples and feature columns.
    cols = [
        c
        for c in table.columns
        if c != "label"
        and not c.startswith(("centroid", "bbox"))
        and np.issubdtype(table[c].dtype, np.number)
        and np.isfinite(table[c]).all()
    ]
    examples = s.object_examples("mitochondria")  # the training set, in its stored order
    assert examples == want
    rows = table.set_index("label").loc[list(examples)]
    ref = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1)
    ref.fit(rows[cols].to_numpy(float), list(examples.values()))
    expected = ref.predict(table[cols].to_numpy(float))
    np.testing.assert_array_equal(out["class"].to_numpy(str), expected)
    for lab, name in want.items():  # the examples keep their classes
        assert out.loc[out["label"] == lab, "class"].item() == name
    # The class column is shown in the table and paints the objects.
    model = fp.view.model()
    headers = [model.headerData(i, Qt.Orientation.Horizontal) for i in range(model.columnCount())]
    assert "class" in headers
    lay = s.layer("mitochondria")
    assert lay.color_mode == "feature" and lay.feature == "class"
    names = sorted(set(expected))
    assert lay.features["class"] == {
        int(lab): float(names.index(c)) for lab, c in zip(out["label"], out["class"], strict=True)
    }


def test_single_pass_3d_view_follows_contrast_colormap_opacity_and_visibility(
    make_viewer: Any, fibsem_store: Path, qtbot: Any
) -> None:
    from viewer.render._gl_volumes import VtkRaycastImage

    win = make_viewer(str(fibsem_store), ["nucleus"])
    s = win.session
    img = s.image_layer
    thread = win.render_view.render_thread
    wait_rendered(qtbot, win)
    ctl = thread.streaming
    assert ctl is not None and isinstance(ctl.adapters[img.name], VtkRaycastImage)
    host = ctl.host
    assert host is not None and host.errors == 0 and host.stats.volume_passes == 1
    base = view3d(win)

    def after(change: Any) -> np.ndarray:
        change()
        wait_rendered(qtbot, win)
        assert host.errors == 0
        return view3d(win)

    lo, hi = img.contrast_limits
    narrow = after(lambda: setattr(img, "contrast_limits", (lo, lo + 0.5 * (hi - lo))))
    assert np.abs(narrow - base).mean() > 1.0  # brighter: the volume is redrawn
    red = after(lambda: setattr(img, "colormap", "Reds"))
    # A red colormap: green and blue fall where the volume is drawn.
    assert red[..., 0].mean() > red[..., 1].mean() + 1.0
    assert np.abs(red - narrow).mean() > 1.0
    hidden = after(lambda: setattr(img, "visible", False))
    assert host.stats.volume_passes == 0
    shown = after(lambda: setattr(img, "visible", True))
    np.testing.assert_array_equal(shown, red)
    # Opacity 0: nothing of the volume is left, the picture is the one without it
    # (above the scale bar and axes, whose anti-aliased edges vary by a pixel).
    clear = after(lambda: setattr(img, "opacity", 0.0))
    assert np.abs(clear - hidden)[:-60].max() <= 2.0
    assert np.abs(hidden - red).mean() > 1.0
