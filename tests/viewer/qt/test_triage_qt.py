"""Issue 18.12: time and triage. A time-lapse opens at its first time point, Play becomes
Pause, and the Tracks list filters and sorts suspicious tracks, Shift+N visiting them.

Reference: a lineage built here with known defects (a short tracklet, a gap, a track
ending early, a jump), so which tracks are suspicious, and why, is known by construction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6 import QtCore

from tests.viewer.qt.conftest import truth, wait_slices
from tests.viewer.qt.test_app import key, level0

pytestmark = pytest.mark.qt

Qt = QtCore.Qt


def test_a_time_lapse_opens_at_its_first_time_point_and_play_becomes_pause(
    tl_viewer: Any, timelapse_store: Path, qtbot: Any
) -> None:
    win = tl_viewer
    s = win.session
    assert s.time == int(truth(timelapse_store)["t"].min())
    bar = win.time_bar
    assert bar.play.text() == "Play"
    qtbot.mouseClick(bar.play, Qt.MouseButton.LeftButton)
    assert bar.play.text() == "Pause" and bar.timer.isActive()
    qtbot.mouseClick(bar.play, Qt.MouseButton.LeftButton)
    assert bar.play.text() == "Play" and not bar.timer.isActive()


def defective_lineage(timelapse_store: Path, out: Path) -> dict[int, list[str]]:
    """Write a lineage over the sample's 6 frames; return {first node: reasons} expected."""
    from analysis.io import write_tracks_file
    from analysis.tracks import TrackGraph

    raw, scale, trans = level0(timelapse_store)
    frames = raw.shape[0]
    assert frames == 6
    shape = np.asarray(raw.shape[-3:])
    centre = trans + (shape - 1) * scale / 2
    ids: list[int] = []
    ts: list[int] = []
    pos: list[np.ndarray] = []
    edges: list[tuple[int, int]] = []

    def track(
        times: list[int], row: float, jump_at: int | None = None, x0: float = 0.0
    ) -> list[int]:
        made = []
        x = x0
        for t in times:
            if jump_at is not None and t == jump_at:
                x += 5.0  # 50 times the usual step
            nid = len(ids)
            ids.append(nid)
            ts.append(t)
            pos.append(centre + np.array([0.0, (row - 3) * 2.0, -2.0 + x]))
            x += 0.1
            if made:
                edges.append((made[-1], nid))
            made.append(nid)
        return made

    track(list(range(6)), 0)  # fine
    short = track([2, 3], 1)  # short, ends before the last frame
    gap = track([0, 1, 3, 4, 5], 2)  # a frame missing
    early = track([0, 1, 2, 3], 3)  # lost at t=3
    jump = track(list(range(6)), 4, jump_at=3)  # jumps 5 µm between t=2 and 3
    parent = track([0, 1, 2], 5)  # divides into two full daughters: fine
    for row in (5.0, 5.04):  # daughters a usual step from their mother
        d = track([3, 4, 5], row, x0=0.3)
        edges.append((parent[-1], d[0]))
    g = TrackGraph.from_arrays(ids, ts, np.asarray(pos), np.asarray(edges))
    write_tracks_file(g, out)
    return {
        short[0]: ["short", "ends early"],
        gap[0]: ["gap"],
        early[0]: ["ends early"],
        jump[0]: ["jump"],
    }


def test_suspicious_tracks_filter_sort_and_shift_n_visits_them(
    make_viewer: Any, timelapse_store: Path, tmp_path: Path, qtbot: Any
) -> None:
    expected = defective_lineage(timelapse_store, tmp_path / "lineage.geff")
    win = make_viewer(str(timelapse_store), tracks=str(tmp_path / "lineage.geff"))
    s = win.session
    panel = win.tracks_panel
    panel.filter.setFocus()
    # "all", "unreviewed", "reviewed", "suspicious": three steps down.
    for _ in range(3):
        qtbot.keyClick(panel.filter, Qt.Key.Key_Down)
    assert panel.filter.currentText() == "suspicious"
    shown = {r["track"]: r["issues"].split(", ") for r in panel.rows}
    assert shown == expected
    # A click on the "nodes" header sorts the rows by it.
    header = panel.table.horizontalHeader()
    col = panel.model.COLUMNS.index("nodes")
    x = header.sectionViewportPosition(col) + header.sectionSize(col) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QtCore.QPoint(x, 5))
    nodes = [r["nodes"] for r in panel.rows]
    assert nodes == sorted(nodes) or nodes == sorted(nodes, reverse=True)
    assert len(set(nodes)) > 1
    # Shift+N: the next unreviewed suspicious track, centred; R marks it; again, the next.
    g = s.tracks
    visited = []
    for _ in range(len(expected)):
        key(qtbot, win, Qt.Key.Key_N, Qt.KeyboardModifier.ShiftModifier)
        sel = s.scene.selection.node_ids
        assert len(sel) == 1
        first = sel[0]
        visited.append(first)
        np.testing.assert_allclose(s.cursor, g.position(first))
        assert s.time == g.time(first)
        key(qtbot, win, Qt.Key.Key_R)
    assert sorted(visited) == sorted(expected)
    key(qtbot, win, Qt.Key.Key_N, Qt.KeyboardModifier.ShiftModifier)
    assert "no unreviewed suspicious track" in win.status.currentMessage()
    wait_slices(qtbot, win)


def test_lineage_tree_linked_both_ways_and_add_division(
    tl_viewer: Any, timelapse_store: Path, qtbot: Any
) -> None:
    """The Lineage dock draws the selected track's lineage (the truth's, by pandas); a
    click on a node there selects it and centres the views; a division cut away is put
    back with Tracks > Add division (the truth's edges again)."""
    from tests.viewer.qt.test_app import click, edge_set, truth_edges
    from tests.viewer.qt.test_filemenu_qt import menu_click

    win = tl_viewer
    s = win.session
    nodes = truth(timelapse_store)
    kids = nodes[nodes["parent_id"] >= 0].groupby("parent_id").groups
    mother = next(int(p) for p, c in kids.items() if len(c) == 2)
    d1, d2 = sorted(int(c) for c in kids[mother])
    # Reference lineage: the mother's root and every descendant (pandas).
    root = mother
    while nodes.loc[root, "parent_id"] >= 0:
        root = int(nodes.loc[root, "parent_id"])
    family, todo = {root}, [root]
    while todo:
        n = todo.pop()
        new = nodes.index[nodes["parent_id"] == n].tolist()
        family.update(int(c) for c in new)
        todo += new
    # Select the mother's track with a click on its row in the Tracks list.
    panel = win.tracks_panel
    first = int(s.tracks.tracklet(mother)[0])
    row = next(i for i, r in enumerate(panel.rows) if r["first"] == first)
    win.docks["Tracks"].raise_()
    panel.table.scrollTo(panel.model.index(row, 0))
    rect = panel.table.visualRect(panel.model.index(row, 0))
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert s.scene.selection.node_ids == [first]
    win.docks["Lineage"].raise_()
    view = win.lineage
    qtbot.waitUntil(lambda: view.layout is not None and view.isVisible(), timeout=5000)
    lay = view.layout
    assert set(lay.nodes.tolist()) == family
    xs = {int(n): float(x) for n, x in zip(lay.nodes, lay.x, strict=True)}
    assert xs[d1] != xs[d2] and min(xs[d1], xs[d2]) < xs[mother] < max(xs[d1], xs[d2])
    # A click on the first daughter's first node selects it, goes to its time, centres.
    qtbot.wait(50)
    p = view.node_pos(d1).toPoint()
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=p)
    qtbot.waitUntil(lambda: s.scene.selection.node_ids == [d1], timeout=5000)
    assert s.time == int(nodes.loc[d1, "t"])
    np.testing.assert_allclose(s.cursor, nodes.loc[d1, ["z", "y", "x"]].to_numpy(float))
    # Cut the daughter off (C at its first node), then give it back as a division.
    key(qtbot, win, Qt.Key.Key_C)
    assert (mother, d1) not in edge_set(s.tracks)
    row = next(
        i for i, r in enumerate(panel.rows) if r["first"] == int(s.tracks.tracklet(mother)[0])
    )
    win.docks["Tracks"].raise_()
    panel.table.scrollTo(panel.model.index(row, 0))
    rect = panel.table.visualRect(panel.model.index(row, 0))
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    wait_slices(qtbot, win)
    click(qtbot, win, "xy", tuple(s.cursor), Qt.KeyboardModifier.ControlModifier)
    assert s.scene.selection.node_ids[-1] == d1 and len(s.scene.selection.node_ids) == 2
    menu_click(qtbot, win, "Tracks", "Add division")
    assert edge_set(s.tracks) == truth_edges(nodes.reset_index())
