"""Issue 18.11: the *Link tracks* result is proofread like any tracks.

It appears in the Tracks list, is drawn on the slices, is edited by the track actions
(with undo) and is written by *Export tracks*. References: the sample's ground truth
(pandas: its tracklets and its nodes per time point) and geff's own reader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from geff.core_io import read_to_memory
from PySide6 import QtCore, QtWidgets

from tests.viewer.qt.conftest import wait_slices
from tests.viewer.qt.test_app import key
from tests.viewer.qt.test_filemenu_qt import menu_click, other_windows

pytestmark = pytest.mark.qt

Qt = QtCore.Qt


def truth_tracklets(nodes: pd.DataFrame) -> int:
    """Tracklets of the truth lineage: roots and the daughters of divisions."""
    children = nodes[nodes["parent_id"] >= 0].groupby("parent_id").size()
    starts = nodes["parent_id"] < 0
    daughters = nodes["parent_id"].map(children).fillna(0) >= 2
    return int((starts | daughters).sum())


def test_linked_tracks_are_listed_drawn_editable_and_exported(
    make_viewer: Any, timelapse_store: Path, tmp_path: Path, qtbot: Any, monkeypatch: Any
) -> None:
    win = make_viewer(str(timelapse_store), ["nuclei"])
    s = win.session
    assert s.tracks is None
    menu_click(qtbot, win, "Analysis", "Link tracks (time-lapse labels)")
    # The job's result lands in the window (a short job may already have finished and
    # left the Jobs panel by the time the menu has closed: wait for what the user sees).
    qtbot.waitUntil(lambda: s.tracks is not None, timeout=120_000)
    assert not other_windows(win)  # this window had no tracks: they are its own now
    nodes = pd.read_csv(timelapse_store.with_name("tl.truth.csv"))
    g = s.tracks
    assert g.n_nodes == len(nodes)
    # In the Tracks list: one row per tracklet.
    panel = win.tracks_panel
    assert len(panel.rows) == truth_tracklets(nodes)
    # Drawn on the slices: the XY view shows nodes of the current time, each where a
    # truth nucleus of that time is (x, y).
    wait_slices(qtbot, win)
    t = s.time
    assert t == int(nodes["t"].min())
    xy = win.slices["xy"].track_nodes.getData()
    assert len(xy[0]) > 0
    here = nodes[nodes["t"] == t][["x", "y"]].to_numpy(float)
    for x, y in zip(*xy, strict=True):
        assert np.min(np.hypot(here[:, 0] - x, here[:, 1] - y)) < 1.0
    # Editable: a click on a row selects the track, R marks it reviewed, Ctrl+Z undoes.
    rect = panel.table.visualRect(panel.model.index(0, 0))
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    first = panel.rows[0]["first"]
    assert s.scene.selection.node_ids == [first]
    key(qtbot, win, Qt.Key.Key_R)
    members = g.tracklet(first)
    assert all(g.is_reviewed(int(n)) for n in members)
    key(qtbot, win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not any(g.is_reviewed(int(n)) for n in members)
    # Exported by File > Export tracks…, read back with geff.
    out = tmp_path / "linked.geff"
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    menu_click(qtbot, win, "File", "Export tracks…")
    back = read_to_memory(str(out))
    assert len(back["node_ids"]) == len(nodes)
    assert len(back["edge_ids"]) == int((nodes["parent_id"] >= 0).sum())
