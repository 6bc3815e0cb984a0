"""The desktop as a biologist uses it (issue 18), driven by mouse and keys at the default zoom.

Picking track nodes by screen distance (a node drawn off the slice, a hover ring),
the review loop (N, a click, a double-click and Enter on a track row centre every
view on the track), a visible undoable Delete, closing with unsaved edits, and
stepping through the slices with PageUp/PageDown. References: the sample's truth
CSV (pandas) and the store's scale read with zarr-python.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from tests.viewer.qt.conftest import truth
from tests.viewer.qt.test_app import click, edge_set, key, level0, truth_edges

pytestmark = pytest.mark.qt

Qt = QtCore.Qt


def hover(qtbot: Any, win: Any, plane: str, zyx: Any, dx_px: int = 0) -> None:
    """A real mouse move (no button) over slice ``plane`` at world ``zyx`` (+ dx screen pixels)."""
    view = win.slices[plane]
    pos = view.mapFromScene(view.view_to_scene(tuple(float(v) for v in zyx)))
    # Step off first: a move onto the spot the pointer already occupies (left there by an
    # earlier test) sends no motion event.
    qtbot.mouseMove(view.viewport(), pos + QtCore.QPoint(dx_px + 7, 5))
    qtbot.wait(10)
    qtbot.mouseMove(view.viewport(), pos + QtCore.QPoint(dx_px, 0))
    qtbot.wait(10)
    # Under load the move can be handled late: keys go to the view under the mouse.
    qtbot.waitUntil(lambda: win.active_slice == plane, timeout=5000)


def z_voxel_um(timelapse_store: Path) -> float:
    _, scale, _ = level0(timelapse_store)
    return float(scale[0])


def test_ctrl_click_picks_a_node_drawn_off_the_slice_at_the_default_zoom(
    tl_viewer: Any, timelapse_store: Path, qtbot: Any
) -> None:
    """Issue 18.1: Swap answered "select two tracks" because a node ~1 µm off the slice
    was further than a µm tolerance from the click; picking is by screen distance."""
    win, nodes = tl_viewer, truth(timelapse_store)
    s, g = win.session, win.session.tracks
    edges0 = truth_edges(nodes.reset_index())
    t = 3
    at_t = nodes[nodes["t"] == t]
    cont = [n for n in at_t.index if (nodes["parent_id"] == n).sum() == 1]
    a, b = cont[:2]
    ca = int(nodes.index[nodes["parent_id"] == a][0])
    cb = int(nodes.index[nodes["parent_id"] == b][0])
    dz = z_voxel_um(timelapse_store)
    s.set_time(t)
    picked: list[int] = []
    for node in (a, b):
        pos = nodes.loc[node, ["z", "y", "x"]].to_numpy(float)
        s.set_cursor(pos)
        hover(qtbot, win, "xy", pos)
        # Two slices deeper with the slice keys: the node is drawn, but lies off the slice.
        key(qtbot, win, Qt.Key.Key_PageDown)
        key(qtbot, win, Qt.Key.Key_PageDown)
        off = s.cursor[0] - pos[0]
        assert off == pytest.approx(2 * dz)
        assert off > 1.0  # as in the report: 1.06 µm off the slice
        # The ring under the mouse shows the node a click picks: 3 px off still picks it,
        # 30 px off (an empty place) picks nothing.
        hover(qtbot, win, "xy", pos, dx_px=30)
        assert win.slices["xy"].hovered is None
        hover(qtbot, win, "xy", pos, dx_px=3)
        assert win.slices["xy"].hovered == node
        mod = Qt.KeyboardModifier.ControlModifier if picked else Qt.KeyboardModifier.NoModifier
        click(qtbot, win, "xy", pos, mod)
        picked.append(node)
        assert s.scene.selection.node_ids == picked
    key(qtbot, win, Qt.Key.Key_S)
    assert edge_set(g) == (edges0 - {(a, ca), (b, cb)}) | {(a, cb), (b, ca)}
    # A click 30 px away from every node selects nothing (it does not grow with the slab).
    pos = nodes.loc[a, ["z", "y", "x"]].to_numpy(float)
    view = win.slices["xy"]
    p = view.mapFromScene(view.view_to_scene(tuple(pos))) + QtCore.QPoint(30, 0)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p)
    assert s.scene.selection.node_ids == []


def test_the_hover_ring_is_where_the_mouse_stops_after_a_quick_move(
    tl_viewer: Any, timelapse_store: Path, qtbot: Any
) -> None:
    """Two moves closer together than pyqtgraph's default 10 ms rate limit: the second
    one, where the pointer rests on a node, must still light the ring (it was dropped,
    and the ring stayed off until the mouse moved again; the flaw behind a CI failure)."""
    win, nodes = tl_viewer, truth(timelapse_store)
    s = win.session
    t = 3
    node = int(nodes.index[nodes["t"] == t][0])
    pos = nodes.loc[node, ["z", "y", "x"]].to_numpy(float)
    s.set_time(t)
    s.set_cursor(pos)
    view = win.slices["xy"]
    hover(qtbot, win, "xy", pos, dx_px=30)
    assert view.hovered is None
    for _ in range(3):
        at = view.mapFromScene(view.view_to_scene(tuple(pos)))
        qtbot.mouseMove(view.viewport(), at + QtCore.QPoint(40, 0))
        qtbot.mouseMove(view.viewport(), at + QtCore.QPoint(2, 0))  # no wait between
        qtbot.waitUntil(lambda: view.hovered == node, timeout=3000)
        qtbot.mouseMove(view.viewport(), at + QtCore.QPoint(2, 40))
        qtbot.mouseMove(view.viewport(), at + QtCore.QPoint(40, 40))
        qtbot.waitUntil(lambda: view.hovered is None, timeout=3000)


def centred(qtbot: Any, win: Any, zyx: np.ndarray) -> None:
    """Every view shows ``zyx``: crosshair, the slices' middles and the 3D focus."""
    qtbot.wait(20)  # the slices redraw (crosshair lines too) once per event-loop turn
    s = win.session
    np.testing.assert_allclose(s.cursor, zyx, atol=1e-6)
    np.testing.assert_allclose(s.scene.camera.focal_point, zyx, atol=1e-6)
    for plane, view in win.slices.items():
        c = view.view.viewRect().center()
        inplane = {"xy": (2, 1), "xz": (2, 0), "yz": (1, 0)}[plane]
        np.testing.assert_allclose((c.x(), c.y()), zyx[list(inplane)], atol=1e-3)
        # the crosshair lines cross at the point too
        assert view.vline.value() == pytest.approx(zyx[inplane[0]])
        assert view.hline.value() == pytest.approx(zyx[inplane[1]])


def test_review_loop_centres_every_view_on_the_track(
    tl_viewer: Any, timelapse_store: Path, qtbot: Any
) -> None:
    """Issue 18.2: N, a click, a double-click and Enter on a row; Delete says what it did."""
    win, nodes = tl_viewer, truth(timelapse_store)
    s, g = win.session, win.session.tracks
    firsts = sorted(int(gr.index[np.argmin(gr["t"])]) for _, gr in nodes.groupby("track_id"))
    # N: the first unreviewed track's first node, at its time, in every view.
    key(qtbot, win, Qt.Key.Key_N)
    first = firsts[0]
    assert s.scene.selection.node_ids == [first]
    assert s.time == int(nodes.loc[first, "t"])
    centred(qtbot, win, nodes.loc[first, ["z", "y", "x"]].to_numpy(float))
    key(qtbot, win, Qt.Key.Key_R)
    key(qtbot, win, Qt.Key.Key_N)
    centred(qtbot, win, nodes.loc[firsts[1], ["z", "y", "x"]].to_numpy(float))

    panel = win.tracks_panel
    win.docks["Tracks"].raise_()
    qtbot.waitUntil(panel.table.isVisible, timeout=5_000)

    def row_of(node: int) -> int:
        return [r["first"] for r in panel.rows].index(node)

    def row_pos(node: int) -> QtCore.QPoint:
        idx = panel.model.index(row_of(node), 0)
        panel.table.scrollTo(idx)
        return panel.table.visualRect(idx).center()

    # A single click on a row selects its track (and moves nothing).
    last = firsts[-1]
    before = s.cursor
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=row_pos(last))
    assert s.scene.selection.node_ids == [last]
    assert s.cursor == before
    # Enter on the row: its start, centred in every view.
    panel.table.setFocus()
    qtbot.keyClick(panel.table, Qt.Key.Key_Return)
    assert s.time == int(nodes.loc[last, "t"])
    centred(qtbot, win, nodes.loc[last, ["z", "y", "x"]].to_numpy(float))
    # A double-click on another row: the same for that track.
    other = firsts[2]
    # (QTest sends a double-click as the second press only: the first click comes before)
    at = row_pos(other)
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=at)
    qtbot.mouseDClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=at)
    assert s.scene.selection.node_ids == [other]
    assert s.time == int(nodes.loc[other, "t"])
    centred(qtbot, win, nodes.loc[other, ["z", "y", "x"]].to_numpy(float))

    # Delete acts at once but says which track went; Ctrl+Z brings it back.
    track = int(nodes.loc[other, "track_id"])
    gone = set(nodes.index[nodes["track_id"] == track])
    key(qtbot, win, Qt.Key.Key_Delete)
    assert set(g.node_ids.tolist()) == set(nodes.index) - gone
    msg = win.status.currentMessage()
    assert f"deleted track {other} ({len(gone)} nodes" in msg and "undo" in msg
    key(qtbot, win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert set(g.node_ids.tolist()) == set(nodes.index)
    assert edge_set(g) == truth_edges(nodes.reset_index())


def answer_when_asked(qtbot: Any, button: Any, seen: list[str]) -> Callable[[], None]:
    """Click ``button`` of the message box the window opens (it blocks in its own loop)."""

    def answer() -> None:
        box = QtWidgets.QApplication.activeModalWidget()
        if not isinstance(box, QtWidgets.QMessageBox):
            QtCore.QTimer.singleShot(50, answer)
            return
        seen.append(box.text())
        qtbot.mouseClick(box.button(button), Qt.MouseButton.LeftButton)

    return answer


def test_closing_with_unsaved_edits_asks_and_a_project_says_all_is_saved(
    make_viewer: Any, timelapse_store: Path, tmp_path: Path, qtbot: Any
) -> None:
    """Issue 18.3: never silent: without a project closing asks; with one, the status bar
    says every edit is saved (journaled)."""
    nodes = truth(timelapse_store)
    win = make_viewer(str(timelapse_store), ["nuclei"], tracks=str(timelapse_store / "tracks"))
    s = win.session
    assert "no edits" in win.save_label.text()
    key(qtbot, win, Qt.Key.Key_N)
    key(qtbot, win, Qt.Key.Key_R)  # an edit: mark the track reviewed
    assert "1 unsaved edit" in win.save_label.text()
    B = QtWidgets.QMessageBox.StandardButton
    seen: list[str] = []
    QtCore.QTimer.singleShot(50, answer_when_asked(qtbot, B.Cancel, seen))
    key(qtbot, win, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    assert seen and "1 edits are not saved" in seen[0]
    assert win.isVisible()  # Cancel keeps the window and the edit
    assert s.tracks.is_reviewed(int(min(nodes.index)))
    QtCore.QTimer.singleShot(50, answer_when_asked(qtbot, B.Discard, seen))
    key(qtbot, win, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    assert len(seen) == 2
    qtbot.waitUntil(lambda: not win.isVisible(), timeout=5_000)

    proj = make_viewer(
        str(timelapse_store),
        ["nuclei"],
        tracks=str(timelapse_store / "tracks"),
        project=str(tmp_path / "proj"),
    )
    key(qtbot, proj, Qt.Key.Key_N)
    key(qtbot, proj, Qt.Key.Key_R)
    assert "all edits saved (journaled in proj)" in proj.save_label.text()
    key(qtbot, proj, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)  # no question
    qtbot.waitUntil(lambda: not proj.isVisible(), timeout=5_000)
    journal = (tmp_path / "proj" / "journal.jsonl").read_text().splitlines()
    assert any("reviewed" in line.lower() for line in journal)


def test_page_keys_step_the_slice_under_the_mouse_not_the_clipping_plane(
    tl_viewer: Any, timelapse_store: Path, qtbot: Any
) -> None:
    """Issue 18.4: PageDown/PageUp move the slice view the mouse is over by one voxel,
    even while the clipping panel's slider has the keyboard focus."""
    win = tl_viewer
    s = win.session
    _, scale, _ = level0(timelapse_store)
    win.docks["Clipping"].raise_()
    slider = win.clipping_panel.position
    slider.setFocus()
    slider_before = slider.value()
    for plane, axis in (("xy", 0), ("xz", 1), ("yz", 2)):
        start = np.asarray(s.cursor)
        hover(qtbot, win, plane, start)
        key(qtbot, win, Qt.Key.Key_PageDown)
        want = start.copy()
        want[axis] += scale[axis]
        np.testing.assert_allclose(s.cursor, want, atol=1e-9)
        key(qtbot, win, Qt.Key.Key_PageUp)
        key(qtbot, win, Qt.Key.Key_PageUp)
        want[axis] -= 2 * scale[axis]
        np.testing.assert_allclose(s.cursor, want, atol=1e-9)
    assert slider.value() == slider_before
    title = win.slices["xy"].title.toPlainText()
    assert f"z = {s.cursor[0]:.2f} µm" in title


def test_readout_under_the_cursor_and_a_see_through_selection(
    make_viewer: Any, fibsem_store: Path, qtbot: Any
) -> None:
    """Issue 18.5: the status bar reads µm, voxel, intensity and label id under the mouse;
    a selected object is outlined and tinted, its EM still visible."""
    win = make_viewer(str(fibsem_store), ["nucleus"])
    s = win.session
    raw, scale, trans = level0(fibsem_store)
    lab_arr, _, _ = level0(fibsem_store / "labels" / "nucleus")
    k = int(round((s.cursor[0] - trans[0]) / scale[0]))
    lab = np.asarray(lab_arr[k])
    em = np.asarray(raw[k])
    # An object's voxel deep inside it on this slice (its 5x5 neighbourhood is the object).
    inner = [
        (i, j)
        for i in range(3, lab.shape[0] - 3)
        for j in range(3, lab.shape[1] - 3)
        if lab[i, j] and (lab[i - 2 : i + 3, j - 2 : j + 3] == lab[i, j]).all()
    ]
    assert inner
    i, j = inner[len(inner) // 2]
    label = int(lab[i, j])
    zyx = (s.cursor[0], trans[1] + i * scale[1], trans[2] + j * scale[2])
    hover(qtbot, win, "xy", zyx)
    # hover() steps off by a few pixels first; under load the readout may still show
    # that first position for a moment: wait for the move onto the spot.
    want = f"voxel z {k}  y {i}  x {j}"
    qtbot.waitUntil(lambda: want in win.readout_label.text(), timeout=5000)
    text = win.readout_label.text()
    assert f"intensity {em[i, j]:g}" in text
    assert f"nucleus {label}" in text
    m = re.search(r"z (\S+)  y (\S+)  x (\S+) µm", text)
    assert m is not None  # the mouse sits on a whole screen pixel: within half a voxel
    np.testing.assert_allclose([float(v) for v in m.groups()], zyx, atol=0.5 * scale.max())
    # Off every object: no label in the readout.
    bi, bj = np.argwhere(lab == 0)[0]
    hover(qtbot, win, "xy", (s.cursor[0], trans[1] + bi * scale[1], trans[2] + bj * scale[2]))
    off = f"voxel z {k}  y {bi}  x {bj}"
    qtbot.waitUntil(lambda: off in win.readout_label.text(), timeout=5000)
    assert "nucleus" not in win.readout_label.text()

    # Select the object by a click; its inside shows the EM through a tint, the edge is white.
    click(qtbot, win, "xy", zyx)
    assert s.scene.selection.layer == "nucleus" and s.scene.selection.label_ids == [label]
    qtbot.wait(50)
    view = win.slices["xy"]
    shot = view.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)

    def pixel(yx: tuple[float, float]) -> np.ndarray:
        p = view.mapFromScene(view.view_to_scene((s.cursor[0], yx[0], yx[1])))
        c = shot.pixelColor(p.x(), p.y())
        return np.array([c.red(), c.green(), c.blue()])

    inside = pixel((zyx[1], zyx[2]))
    assert inside.min() < 235, inside  # not the opaque white fill that hid the EM
    edge = [
        (a, b)
        for a, b in np.argwhere(lab == label)
        if (lab[a - 1 : a + 2, b - 1 : b + 2] != label).any()
    ]
    ea, eb = edge[0]
    assert pixel((trans[1] + ea * scale[1], trans[2] + eb * scale[2])).min() > inside.min()


def error_boxes(win: Any) -> list[QtWidgets.QMessageBox]:
    return [b for b in win.findChildren(QtWidgets.QMessageBox, "error") if b.isVisible()]


def test_errors_show_in_the_window(
    make_viewer: Any, fibsem_store: Path, tmp_path: Path, qtbot: Any, monkeypatch: Any
) -> None:
    """Issue 18.9: a corrupt chunk, a failed job, a folder that is not a project and an
    export with nothing to write each show a message in the window (status bar + a box
    the user closes), never only on the terminal."""
    store = tmp_path / "cell.zarr"
    shutil.copytree(fibsem_store, store)
    # One chunk of the full resolution, holding the middle of the volume (where the slices
    # open), of the image and of the mitochondria.
    for group in (store, store / "labels" / "mitochondria"):
        (group / "s0" / "c" / "0" / "0" / "0").write_bytes(b"not a zstd frame" * 8)
    win = make_viewer(str(store), ["mitochondria"])
    qtbot.waitUntil(lambda: bool(error_boxes(win)), timeout=30_000)
    assert "could not read" in win.status.currentMessage()
    assert any("could not read" in b.text() for b in error_boxes(win))
    for b in error_boxes(win):  # dismiss them
        qtbot.mouseClick(
            b.button(QtWidgets.QMessageBox.StandardButton.Close), Qt.MouseButton.LeftButton
        )
    qtbot.waitUntil(lambda: not error_boxes(win), timeout=5_000)

    # A background job that fails (measuring the corrupt labels) says so.
    win.layers_panel.select("mitochondria")
    win.qactions["analysis.measure"].trigger()
    qtbot.waitUntil(lambda: bool(error_boxes(win)), timeout=60_000)
    assert "measure mitochondria failed" in error_boxes(win)[0].text()

    # Open project… on a folder that is not a project.
    not_project = tmp_path / "just a folder"
    not_project.mkdir()
    monkeypatch.setattr(
        QtWidgets.QFileDialog, "getExistingDirectory", lambda *a, **k: str(not_project)
    )
    win.qactions["file.open"].trigger()
    qtbot.waitUntil(
        lambda: any("could not open" in b.text() for b in error_boxes(win)), timeout=5_000
    )
    assert str(not_project) in win.status.currentMessage()

    # Export tracks with no tracks open: nothing is written, and it says so.
    out = tmp_path / "tracks.geff"
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    win.qactions["file.export_tracks"].trigger()
    assert not out.exists()
    assert "wrote" not in win.status.currentMessage()
    assert "nothing written" in win.status.currentMessage()
    assert any("no tracks are open" in b.text() for b in error_boxes(win))


def test_wheel_zoom_scatter_units_and_colour_legend(
    make_viewer: Any, fibsem_store: Path, qtbot: Any
) -> None:
    """Issue 18.7/18.14: three wheel clicks zoom the 3D view about 2x (was 1.3x); the
    scatter's axes read the column's values, without an SI rescaling like "(x0.001)";
    colour-by has a legend."""
    win = make_viewer(str(fibsem_store), ["mitochondria"])
    cam = win.session.scene.camera

    def distance() -> float:
        return float(np.linalg.norm(np.subtract(cam.position, cam.focal_point)))

    d0 = distance()
    rv = win.render_view
    centre = QtCore.QPointF(rv.width() / 2, rv.height() / 2)
    for _ in range(3):
        ev = QtGui.QWheelEvent(
            centre,
            rv.mapToGlobal(centre),
            QtCore.QPoint(0, 0),
            QtCore.QPoint(0, 120),
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
            Qt.ScrollPhase.NoScrollPhase,
            False,
        )
        QtWidgets.QApplication.sendEvent(rv, ev)
    assert d0 / distance() > 1.8

    win.layers_panel.select("mitochondria")
    win.qactions["analysis.measure"].trigger()
    qtbot.waitUntil(lambda: win.features.table is not None, timeout=120_000)
    table = win.features.table
    # the column with the smallest values (pyqtgraph would label it "(x0.001)" or so)
    num = table.select_dtypes("number").drop(columns=["label"])
    small = str(num.abs().max().idxmin())
    win.features.xcol.setCurrentText(small)
    win.features.ycol.setCurrentText(str(num.abs().max().idxmax()))
    qtbot.wait(20)
    for side in ("bottom", "left"):
        axis = win.features.plot.getAxis(side)
        assert "(x" not in axis.labelString()
        assert axis.autoSIPrefixScale == 1.0
    # Colour by a column: a legend says what the colours mean (the column's range).
    big = str(num.abs().max().idxmax())
    win.features.colorby.setCurrentText(big)
    legend = win.features.legend.text()
    col = table[big].dropna()
    assert legend.startswith(f"{big}: {col.min():g} ") and legend.endswith(f" {col.max():g}")
    assert legend.count("&#9679;") == 3


def test_a_measurement_can_be_deleted_from_the_list_and_undone(
    make_viewer: Any, fibsem_store: Path, tmp_path: Path, qtbot: Any
) -> None:
    """Issue 18.13: measurements cannot be deleted. Two distances by clicks, the first one
    selected in the list and Delete: it goes (the other stays), Ctrl+Z brings it back."""
    win = make_viewer(str(fibsem_store), ["nucleus"], project=str(tmp_path / "p"))
    s = win.session
    c = np.asarray(s.cursor)
    key(qtbot, win, Qt.Key.Key_D)
    first = (c + [0, -2.0, -2.0], c + [0, 1.0, 2.0])
    second = (c + [0, 2.0, -1.0], c + [0, -1.0, 1.5])
    for a, b in (first, second):
        click(qtbot, win, "xy", a)
        click(qtbot, win, "xy", b)
    lst = win.annotation_panel.measurements
    assert lst.count() == 2
    win.docks["Counting and measuring"].raise_()
    rect = lst.visualItemRect(lst.item(0))
    qtbot.mouseClick(lst.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.keyClick(lst, Qt.Key.Key_Delete)
    assert lst.count() == 1
    (left,) = s.annotations.measurements
    px = win.slices["xy"].pixel_size_um()
    np.testing.assert_allclose(left.points_um[0], second[0], atol=2 * px)
    assert "removed measurement" in win.status.currentMessage()
    key(qtbot, win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert len(s.annotations.measurements) == 2 and lst.count() == 2


def test_the_slider_beside_a_slice_view_steps_through_its_slices(
    make_viewer: Any, fibsem_store: Path, qtbot: Any
) -> None:
    """Issue 18.4: a slider per slice view; a click on its groove moves that view's slice
    (the XY view then shows the store's slice there, read with zarr)."""
    from tests.viewer.qt.conftest import wait_slices

    win = make_viewer(str(fibsem_store), ["nucleus"])
    s = win.session
    raw, scale, trans = level0(fibsem_store)
    k0 = int(round((s.cursor[0] - trans[0]) / scale[0]))
    slider = win.slice_sliders["xy"]
    # a click on the groove near the bottom end (pages towards it)
    qtbot.mouseClick(
        slider,
        Qt.MouseButton.LeftButton,
        pos=QtCore.QPoint(slider.width() // 2, slider.height() - 3),
    )
    wait_slices(qtbot, win)
    k = (s.cursor[0] - trans[0]) / scale[0]
    assert k == pytest.approx(round(k)) and int(round(k)) != k0
    np.testing.assert_array_equal(
        win.slices["xy"].image.image, np.asarray(raw[int(round(k))]).astype(np.float32)
    )
    # the other sliders did not move the other axes
    c = np.asarray(s.cursor)
    hover(qtbot, win, "xz", c)
    key(qtbot, win, Qt.Key.Key_PageDown)
    assert s.cursor[1] == pytest.approx(c[1] + scale[1])  # one voxel, the XZ view's axis
    assert s.cursor[0] == pytest.approx(c[0])
    assert win.slice_sliders["xz"].value() == int(round((s.cursor[1] - trans[1]) / scale[1]))


def test_cancel_says_at_once_that_it_is_cancelling(qtbot: Any) -> None:
    """Issue 18.15: Cancel of a job that reports progress only every few seconds gave no
    feedback; the button now says so at once and cannot be pressed again."""
    import threading

    from viewer.qt import Job, JobsPanel

    panel = JobsPanel()
    qtbot.addWidget(panel)
    panel.show()
    started, release = threading.Event(), threading.Event()

    def work(progress: Any) -> int:
        started.set()
        release.wait(30)  # a long step between two progress reports
        progress(1, 2)
        return 1

    job = panel.start(Job("slow step", work))
    assert started.wait(10)
    button = panel.findChild(QtWidgets.QPushButton, "cancel:slow step")
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert not button.isEnabled() and button.text() == "Cancelling…"
    with qtbot.waitSignal(job.signals.cancelled, timeout=10_000):
        release.set()
    assert job.result is None
