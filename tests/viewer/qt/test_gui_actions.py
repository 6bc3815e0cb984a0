"""GUI-driven tests of actions that were only tested through the session before.

Swap, delete, next-unreviewed, the track list's status filter, layer order and
colour, the histogram -> contrast binding, Play, and the profile and link jobs
(progress, cancel, results as tables and layers). References: the sample's
truth CSV (pandas), zarr-python reads of the stores, SciPy's centre of mass and
the VTK transfer function the 3D view ends up with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import zarr
from PySide6 import QtCore, QtGui, QtWidgets

from tests.viewer.qt.conftest import truth, wait_rendered, wait_slices
from tests.viewer.qt.test_app import click, edge_set, key, level0, truth_edges

pytestmark = pytest.mark.qt

Qt = QtCore.Qt


def select(qtbot: Any, win: Any, nodes: pd.DataFrame, node: int, add: bool = False) -> None:
    """Click ``node`` in the XY slice at its time and depth (Ctrl: add to the selection)."""
    s = win.session
    pos = nodes.loc[node, ["z", "y", "x"]].to_numpy(float)
    s.set_time(int(nodes.loc[node, "t"]))
    s.set_cursor(pos)
    qtbot.wait(20)
    mod = Qt.KeyboardModifier.ControlModifier if add else Qt.KeyboardModifier.NoModifier
    click(qtbot, win, "xy", pos, mod)


def tracklet_firsts(nodes: pd.DataFrame) -> list[int]:
    """First node (lowest t) of each tracklet of the truth (CTC track ids are tracklets)."""
    return sorted(int(g.index[np.argmin(g["t"])]) for _, g in nodes.groupby("track_id"))


def test_swap_and_delete_with_keys(tl_viewer: Any, timelapse_store: Path, qtbot: Any) -> None:
    win, nodes = tl_viewer, truth(timelapse_store)
    s, g = win.session, win.session.tracks
    edges0 = truth_edges(nodes.reset_index())
    assert edge_set(g) == edges0
    # Two tracks present at t=3 that both continue: swap what follows t=3 (key S).
    t = 3
    at_t = nodes[nodes["t"] == t]
    cont = [n for n in at_t.index if (nodes["parent_id"] == n).sum() == 1]
    a, b = cont[:2]
    ca = int(nodes.index[nodes["parent_id"] == a][0])
    cb = int(nodes.index[nodes["parent_id"] == b][0])
    select(qtbot, win, nodes, a)
    select(qtbot, win, nodes, b, add=True)
    assert s.scene.selection.node_ids == [a, b]
    key(qtbot, win, Qt.Key.Key_S)
    swapped = (edges0 - {(a, ca), (b, cb)}) | {(a, cb), (b, ca)}
    assert edge_set(g) == swapped
    d = s.layer("tracks").data  # the drawn layer follows
    assert {(int(p), int(c)) for p, c in d.edges.tolist()} == swapped
    key(qtbot, win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert edge_set(g) == edges0

    # Delete (key Delete) removes the whole tracklet of the selected node.
    victim_track = int(nodes.loc[cb, "track_id"])
    gone = set(nodes.index[nodes["track_id"] == victim_track])
    select(qtbot, win, nodes, cb)
    key(qtbot, win, Qt.Key.Key_Delete)
    assert set(g.node_ids.tolist()) == set(nodes.index) - gone
    assert edge_set(g) == {(p, c) for p, c in edges0 if p not in gone and c not in gone}
    rows = win.tracks_panel.rows
    assert victim_track not in {int(nodes.loc[r["first"], "track_id"]) for r in rows}
    # Shift+Delete removes one node and its edges only.
    last = int(nodes[nodes["track_id"] != victim_track]["t"].idxmax())
    select(qtbot, win, nodes, last)
    key(qtbot, win, Qt.Key.Key_Delete, Qt.KeyboardModifier.ShiftModifier)
    assert last not in g and len(g.node_ids) == len(nodes) - len(gone) - 1
    g.validate()


def test_reviewed_next_unreviewed_and_status_filter(
    tl_viewer: Any, timelapse_store: Path, qtbot: Any
) -> None:
    win, nodes = tl_viewer, truth(timelapse_store)
    s = win.session
    firsts = tracklet_firsts(nodes)
    panel = win.tracks_panel
    assert panel.model.rowCount() == len(firsts)
    reviewed: list[int] = []
    for expected in firsts:
        key(qtbot, win, Qt.Key.Key_N)  # next unreviewed: the lowest tracklet id not reviewed
        assert s.scene.selection.node_ids == [expected]
        assert s.time == int(nodes.loc[expected, "t"])
        key(qtbot, win, Qt.Key.Key_R)
        reviewed.append(expected)
        for mode, want in (
            ("reviewed", reviewed),
            ("unreviewed", [f for f in firsts if f not in reviewed]),
            ("all", firsts),
        ):
            panel.filter.setCurrentText(mode)
            m = panel.model
            shown = [
                int(m.data(m.index(r, 0), Qt.ItemDataRole.DisplayRole)) for r in range(m.rowCount())
            ]
            assert shown == sorted(want), mode
    key(qtbot, win, Qt.Key.Key_N)
    assert "every track is reviewed" in win.status.currentMessage()
    # Every node of every tracklet is reviewed in the graph itself.
    assert win.session.tracks.reviewed.all()
    # A double-click in the list jumps to that track's start.
    panel.filter.setCurrentText("all")
    idx = panel.model.index(len(firsts) - 1, 0)
    rect = panel.table.visualRect(idx)
    qtbot.mouseDClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert s.scene.selection.node_ids == [firsts[-1]]


def test_layer_order_opacity_and_colour(
    tl_viewer: Any, timelapse_store: Path, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    win = tl_viewer
    s = win.session
    panel = win.layers_panel
    names = list(s.scene.layers.names)
    i = names.index("nuclei")
    panel.select("nuclei")
    qtbot.mouseClick(panel.up, Qt.MouseButton.LeftButton)  # drawn later (on top)
    after = list(s.scene.layers.names)
    assert after.index("nuclei") == i + 1 and after[i] == names[i + 1]
    # The list shows the top layer first.
    top = panel.list.item(0).data(Qt.ItemDataRole.UserRole)
    assert top == after[-1]
    qtbot.mouseClick(panel.down, Qt.MouseButton.LeftButton)
    assert list(s.scene.layers.names) == names
    panel.opacity.setValue(40)
    assert s.layer("nuclei").opacity == pytest.approx(0.4)
    monkeypatch.setattr(
        QtWidgets.QColorDialog, "getColor", staticmethod(lambda *a, **k: QtGui.QColor(255, 0, 0))
    )
    qtbot.mouseClick(panel.color, Qt.MouseButton.LeftButton)
    lay = s.layer("nuclei")
    assert lay.color_mode == "fixed" and tuple(lay.fixed_color) == (1.0, 0.0, 0.0)
    # The XY overlay paints every nucleus voxel of this slice red (labels read with zarr).
    wait_slices(qtbot, win)
    xy = win.slices["xy"]
    arr, sc, tr = level0(timelapse_store / "labels" / "nuclei")
    k = int(round((s.cursor[0] - tr[0]) / sc[0]))
    lab = np.asarray(arr[s.time, k])
    rgba = xy.labels["nuclei"].image
    assert lab.any()
    assert (rgba[lab > 0][:, :3] == (255, 0, 0)).all() and (rgba[lab == 0][:, 3] == 0).all()
    assert (rgba[lab > 0][:, 3] == int(round(110 * 0.4))).all()
    # Unticking hides the layer everywhere.
    it = next(
        panel.list.item(r)
        for r in range(panel.list.count())
        if panel.list.item(r).data(Qt.ItemDataRole.UserRole) == "nuclei"
    )
    it.setCheckState(Qt.CheckState.Unchecked)
    assert not lay.visible
    wait_slices(qtbot, win)
    assert not xy.labels["nuclei"].isVisible()


def test_histogram_drag_sets_contrast_in_2d_and_3d(
    make_viewer: Any, fibsem_store: Path, qtbot: Any
) -> None:
    win = make_viewer(str(fibsem_store))
    s = win.session
    img = s.image_layer
    hist = win.histogram
    region = hist.item.region
    lo0, hi0 = region.getRegion()
    line = max(region.lines, key=lambda ln: ln.value())  # the upper level
    target = lo0 + 0.6 * (hi0 - lo0)
    vb = hist.item.vb
    xr = vb.viewRange()[0]
    x = (xr[0] + xr[1]) / 2

    def widget_pos(v: float) -> QtCore.QPoint:
        return hist.mapFromScene(vb.mapViewToScene(QtCore.QPointF(x, v)))

    start, end = widget_pos(line.value()), widget_pos(target)
    qtbot.mousePress(hist.viewport(), Qt.MouseButton.LeftButton, pos=start)
    for f in np.linspace(0, 1, 6)[1:]:
        qtbot.mouseMove(hist.viewport(), start + (end - start) * f)
    qtbot.mouseRelease(hist.viewport(), Qt.MouseButton.LeftButton, pos=end)
    lo, hi = hist.getLevels()
    assert hi < hi0 and hi == pytest.approx(target, rel=0.05, abs=2.0)
    assert img.contrast_limits == pytest.approx((lo, hi))
    wait_rendered(qtbot, win)
    for v in win.slices.values():
        assert v.image.levels == pytest.approx((lo, hi))
    rng = win.render_view.render_thread.submit(
        lambda r: r.adapter(img).property.GetRGBTransferFunction(0).GetRange()
    ).result()
    assert rng == pytest.approx((lo, hi))


def test_play_steps_time_and_the_slices_follow(
    tl_viewer: Any, timelapse_store: Path, qtbot: Any
) -> None:
    win = tl_viewer
    s = win.session
    s.set_time(0)
    bar = win.time_bar
    qtbot.mouseClick(bar.play, Qt.MouseButton.LeftButton)
    assert bar.play.isChecked()
    seen: list[int] = []
    s.scene.events.current_time.connect(lambda *_: seen.append(s.time))
    qtbot.waitUntil(lambda: len(seen) >= 7, timeout=20_000)  # past the end: wraps to 0
    qtbot.mouseClick(bar.play, Qt.MouseButton.LeftButton)
    assert not bar.play.isChecked()
    assert seen[:6] == [1, 2, 3, 4, 5, 0]
    stopped = s.time
    qtbot.wait(600)
    assert s.time == stopped
    assert bar.slider.value() == stopped and bar.label.text().startswith(f"{stopped} /")
    wait_slices(qtbot, win)
    arr, sc, tr = level0(timelapse_store)
    k = int(round((s.cursor[0] - tr[0]) / sc[0]))
    np.testing.assert_array_equal(
        win.slices["xy"].image.image, np.asarray(arr[stopped, k]).astype(np.float32)
    )


def _progress_bars(win: Any) -> list[Any]:
    return win.jobs.findChildren(QtWidgets.QProgressBar)


def gate(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> Any:
    """Hold ``module.name`` until the returned event is set (so Cancel lands mid-job)."""
    import threading

    real = getattr(module, name)
    ev = threading.Event()

    def held(*a: Any, **k: Any) -> Any:
        assert ev.wait(60)
        return real(*a, **k)

    monkeypatch.setattr(module, name, held)
    return ev


def test_profile_job_progress_result_and_cancel(
    make_viewer: Any, fibsem_store: Path, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import analysis.report

    win = make_viewer(str(fibsem_store), ["mitochondria"])
    progress: list[tuple[int, int, str]] = []
    win.qactions["analysis.profile"].trigger()
    job = win.jobs.jobs[-1]
    job.signals.progress.connect(lambda d, t, txt: progress.append((d, t, txt)))
    assert job.name == "cell profile" and _progress_bars(win)
    qtbot.waitUntil(lambda: job.done.is_set() and win.features.table is not None, timeout=180_000)
    assert job.error is None
    qtbot.waitUntil(lambda: not _progress_bars(win), timeout=5000)  # its row went away
    texts = {txt for _, _, txt in progress}
    assert any(t.startswith("reading") for t in texts) and "profiling" in texts
    table = win.features.table
    grp = zarr.open_group(str(fibsem_store / "labels" / "mitochondria"), mode="r")
    mito = np.asarray(grp[list(grp.array_keys())[0]] if "s0" not in grp else grp["s0"])
    ids = np.unique(mito)
    assert sorted(table["label"].astype(int)) == ids[ids > 0].tolist()
    assert win.features.layer_name == "mitochondria"
    # The report is shown (issue 18.14): its summary, and report.html written, opened by
    # the box's button.
    box = win.profile_report
    assert box.isVisible() and box.objectName() == "profile_report"
    assert f"{int((ids > 0).sum())} mitochondria" in box.text()
    report = Path(box.informativeText().removeprefix("Report: "))
    assert report.name == "report.html" and report.is_file()
    opened: list[str] = []
    monkeypatch.setattr(
        QtGui.QDesktopServices,
        "openUrl",
        staticmethod(lambda url: opened.append(url.toLocalFile())),
    )
    button = next(b for b in box.buttons() if b.text() == "Open report")
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert opened == [str(report)]

    # Cancel while it profiles: the job stops (its late result is dropped), the table stays.
    release = gate(monkeypatch, analysis.report, "profile_cell")
    win.qactions["analysis.profile"].trigger()
    job2 = win.jobs.jobs[-1]
    with qtbot.waitSignal(job2.signals.cancelled, timeout=180_000):
        win.jobs.cancel_button(job2).click()
        release.set()
    assert job2.result is None and win.features.table is table


def test_link_job_adds_a_tracks_layer_and_cancel_adds_none(
    make_viewer: Any, timelapse_store: Path, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scipy import ndimage

    import analysis.tracks

    win = make_viewer(str(timelapse_store), ["nuclei"])
    s = win.session
    win.qactions["analysis.link"].trigger()
    job = win.jobs.jobs[-1]
    assert _progress_bars(win)
    qtbot.waitUntil(job.done.is_set, timeout=120_000)
    assert job.error is None
    # The result is the window's tracks (it had none): the session's tracks layer.
    qtbot.waitUntil(lambda: s.tracks is not None, timeout=5000)
    d = s.layer("tracks").data
    # Reference: every object of every frame, at its centre of mass (SciPy) in µm.
    arr, sc, tr = level0(timelapse_store / "labels" / "nuclei")
    lab = np.asarray(arr)
    ref = []
    for t in range(lab.shape[0]):
        ids = np.unique(lab[t])
        ids = ids[ids > 0]
        com = ndimage.center_of_mass(lab[t] > 0, lab[t], ids)
        ref += [(t, *(np.asarray(c) * sc + tr)) for c in com]
    ref_arr = np.asarray(sorted(ref))
    got = np.asarray(sorted(zip(d.t, *d.zyx_um.T, strict=True)))
    np.testing.assert_allclose(got, ref_arr, atol=1e-6)
    # The truth's divisions and links: the linker recovers every truth edge on this sample.
    assert len(d.edges) == len(truth_edges(pd.read_csv(timelapse_store.with_name("tl.truth.csv"))))

    linked = s.tracks
    n_layers = len(s.scene.layers)
    release = gate(monkeypatch, analysis.tracks, "link_labels")
    win.qactions["analysis.link"].trigger()
    job2 = win.jobs.jobs[-1]
    with qtbot.waitSignal(job2.signals.cancelled, timeout=120_000):
        win.jobs.cancel_button(job2).click()
        release.set()
    qtbot.wait(100)
    assert s.tracks is linked and len(s.scene.layers) == n_layers
    assert not [
        w
        for w in QtWidgets.QApplication.topLevelWidgets()
        if w is not win and w.isVisible() and hasattr(w, "session")
    ]


def test_track_list_context_menu_offers_the_registered_actions(
    tl_viewer: Any, timelapse_store: Path, qtbot: Any
) -> None:
    """A right click on a row selects that track and offers the registered track
    actions, enabled by their own conditions (merge and swap need a second track)."""
    from viewer.actions import ACTIONS

    win = tl_viewer
    s, g = win.session, win.session.tracks
    panel = win.tracks_panel
    win.docks["Tracks"].raise_()
    qtbot.wait(20)
    rows = panel.rows
    rect = panel.table.visualRect(panel.model.index(0, 0))
    vp = panel.table.viewport()
    qtbot.mouseClick(vp, Qt.MouseButton.RightButton, pos=rect.center())
    # The context-menu event the window system sends for that click (QTest sends none).
    ev = QtGui.QContextMenuEvent(
        QtGui.QContextMenuEvent.Reason.Mouse, rect.center(), vp.mapToGlobal(rect.center())
    )
    QtWidgets.QApplication.sendEvent(vp, ev)
    qtbot.waitUntil(lambda: panel.context_menu is not None and panel.context_menu.isVisible())
    menu = panel.context_menu
    assert s.scene.selection.node_ids == [rows[0]["first"]]
    acts = {a.objectName(): a for a in menu.actions()}
    assert [a.text() for a in menu.actions()] == [ACTIONS[i].title for i in panel.CONTEXT_ACTIONS]
    assert not acts["tracks.merge"].isEnabled() and not acts["tracks.swap"].isEnabled()
    assert acts["tracks.mark_reviewed"].isEnabled()
    first = rows[0]["first"]
    acts["tracks.mark_reviewed"].trigger()
    menu.close()
    assert g.is_reviewed(first) and all(g.is_reviewed(int(i)) for i in g.tracklet(first))
