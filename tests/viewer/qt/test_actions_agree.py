"""The desktop and the headset are two front ends of the same actions (``viewer.actions``).

The same scripted pick (a node, a world point, an object) is given to the desktop
window (QTest clicks and keys, as a user would) and to the headset's tools (a
scripted pose and button sequence through the ``Toolbox``), each on its own
project folder made from the same store; after every step both projects'
journals must hold the same lines (so the same command kinds and arguments).
Reference for the merge: the truth CSV's edges (which ends a merge must join).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PySide6 import QtCore, QtGui

from tests.viewer.qt.test_app import click, edge_set, key, truth_edges
from tests.viewer.qt.test_gui_actions import select
from tests.xrmode.test_tools import IDENT, Script
from viewer.qt import SHORTCUTS

pytestmark = pytest.mark.qt

Qt = QtCore.Qt

#: Stage metres per world µm: a power of two, so world <-> stage is exact in float.
SCALE = 0.25


def journal(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / "journal.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines]


class Headset:
    """The headset front end on its own project: tools, toolbox, scripted hands."""

    def __init__(self, store: Path, folder: Path, classes: list[str]) -> None:
        from analysis.project import Project
        from viewer.render import build_store_scene
        from viewer.scene import Labels
        from xrmode._transform import StageTransform
        from xrmode.tools import (
            ClassifyTool,
            CountTool,
            LabelProbe,
            MeasureTool,
            Toolbox,
            ToolContext,
            TrackTool,
            track_menu,
        )

        self.folder = folder
        self.project = Project.create(
            folder, image=str(store), labels=["nuclei"], tracks=str(store / "tracks")
        )
        ws = self.project.workspace
        self.scene = build_store_scene(str(store), labels=["nuclei"], tracks=ws.tracks)
        self.ctx = ToolContext(
            transform=StageTransform(SCALE, IDENT, (0.0, 0.0, 0.0)),
            apply=self.project.history.apply,
            scene=self.scene,
            workspace=ws,
            classes=classes,
            history=self.project.history,
        )
        nuclei = next(lay for lay in self.scene.layers if isinstance(lay, Labels))
        self.track = TrackTool()
        tools = {
            "track": self.track,
            "count": CountTool(),
            "measure": MeasureTool("distance"),
            "classify": ClassifyTool(LabelProbe(nuclei.data), "nuclei"),
        }
        self.box = Toolbox(
            tools,
            self.ctx,
            "track",
            self.project.history.undo,
            self.project.history.redo,
            actions=track_menu(self.track, self.ctx),
        )
        self.s = Script()

    @property
    def graph(self) -> Any:
        return self.project.workspace.tracks

    def close(self) -> None:
        self.project.close()

    def step(self, side: str = "right", pose: Any = None, **buttons: bool) -> None:
        self.box.update(self.s.step(side, pose, **buttons))

    def press(self, button: str, pose: Any = None, side: str = "right") -> None:
        self.step(side, pose, **{button: True})
        self.step(side, pose, **{button: False})

    def aim(self, zyx: Any, back_m: float = 0.3) -> Any:
        """A pose whose ray (forward: -z on the stage) passes through world ``zyx``."""
        from xrmode.input import Pose

        target = self.ctx.transform.world_to_stage(np.asarray(zyx, float))
        return Pose(tuple(float(v) for v in target + [0.0, 0.0, back_m]), IDENT)

    def tip_at(self, zyx: Any) -> Any:
        """A pose whose tip (5 cm ahead) is exactly world ``zyx`` (the same float µm)."""
        from xrmode.input import HandInput, Pose

        want = np.asarray(zyx, float)
        p = self.ctx.transform.world_to_stage(want) + [0.0, 0.0, 0.05]
        for _ in range(64):
            got = self.ctx.tip_world(HandInput("right", aim=Pose(tuple(p), IDENT)))
            if np.array_equal(got, want):
                return Pose(tuple(float(v) for v in p), IDENT)
            # Nudge each coordinate by one ulp towards the wanted tip.
            p = np.nextafter(p, p + np.sign(want - got)[::-1])
        raise AssertionError(f"no stage pose puts the tip exactly at {want}")

    def point_at_node(self, node: int) -> None:
        self.step("right", self.aim(self.graph.position(node)))
        assert self.track.pointed == node

    def select_node(self, node: int) -> None:
        self.point_at_node(node)
        self.press("select", self.aim(self.graph.position(node)))
        assert self.scene.selection.node_ids == [node]

    def menu(self, item: str) -> None:
        """Open the wrist menu, move the highlight to ``item`` and pick it."""
        self.press("menu", side="left")
        menu = self.box.menu
        assert menu.open
        while menu.items[menu.highlighted] != item:
            self.step("left", stick=(0.0, -1.0))
            self.step("left", stick=(0.0, 0.0))
        self.press("select")
        assert not menu.open

    def switch(self, tool: str) -> None:
        self.box.switch(tool)


@pytest.fixture
def both(make_viewer: Any, timelapse_store: Path, tmp_path: Path) -> Any:
    win = make_viewer(
        str(timelapse_store),
        ["nuclei"],
        tracks=str(timelapse_store / "tracks"),
        project=str(tmp_path / "desk"),
    )
    xr = Headset(timelapse_store, tmp_path / "xr", ["default", "mito"])
    yield win, xr
    xr.close()


def truth(store: Path) -> pd.DataFrame:
    return pd.read_csv(store.with_name("tl.truth.csv")).set_index("node_id")


def same_journal(win: Any, xr: Headset) -> list[dict[str, Any]]:
    desk = journal(win.session.project.path)
    head = journal(xr.folder)
    assert desk == head
    return desk


def test_track_actions_build_the_same_commands_on_desktop_and_headset(
    both: Any, timelapse_store: Path, qtbot: Any
) -> None:
    win, xr = both
    s = win.session
    nodes = truth(timelapse_store)
    same_journal(win, xr)
    # The window's shortcuts are the registry's.
    for aid, seq in SHORTCUTS.items():
        assert win.qactions[aid].shortcut() == QtGui.QKeySequence(seq), aid
    by_track = {int(k): g.sort_values("t") for k, g in nodes.groupby("track_id")}
    # A track of >= 4 nodes: cut it in the middle, then merge it back from inner nodes.
    track = next(g for g in by_track.values() if len(g) >= 4)
    ids = [int(i) for i in track.index]
    a, p, n, b = ids[0], ids[1], ids[2], ids[3]

    # -- tracks.cut: the selected track at the current time / the pointed node ---------
    select(qtbot, win, nodes, n)
    key(qtbot, win, Qt.Key.Key_C)
    xr.ctx.current_time = float(nodes.loc[n, "t"])
    xr.point_at_node(n)
    xr.press("primary", xr.aim(xr.graph.position(n)))
    lines = same_journal(win, xr)
    assert lines[-1]["cmd"]["kind"] == "cut"
    assert s.tracks.parent(n) is None and xr.graph.parent(n) is None

    # -- tracks.merge from inner nodes: both snap to p's end and n's start --------------
    select(qtbot, win, nodes, a)
    select(qtbot, win, nodes, b, add=True)
    key(qtbot, win, Qt.Key.Key_M)
    xr.select_node(a)
    xr.point_at_node(b)
    xr.press("secondary", xr.aim(xr.graph.position(b)))
    lines = same_journal(win, xr)
    assert lines[-1]["cmd"]["kind"] == "merge"
    want = truth_edges(nodes.reset_index())
    assert (p, n) in want  # the end of a's track and the start of b's, not a -> b
    assert edge_set(s.tracks) == want and edge_set(xr.graph) == want
    assert s.scene.selection.node_ids == xr.scene.selection.node_ids == [n]

    # -- tracks.prolong: the selected track's end, at a picked world point --------------
    end = ids[-1]
    t_end = int(nodes.loc[end, "t"])
    select(qtbot, win, nodes, end)
    key(qtbot, win, Qt.Key.Key_P)
    target = nodes.loc[end, ["z", "y", "x"]].to_numpy(float) + [0.0, 2.0, -2.0]
    click(qtbot, win, "xy", target)
    key(qtbot, win, Qt.Key.Key_Escape)
    new = s.scene.selection.node_ids[0]
    where = s.tracks.position(new)  # the world point the click picked
    xr.ctx.current_time = float(t_end)
    xr.select_node(end)
    xr.press("thumbstick_click", xr.tip_at(where))
    lines = same_journal(win, xr)
    assert lines[-1]["cmd"]["kind"] == "prolong"
    assert xr.scene.selection.node_ids == s.scene.selection.node_ids == [new]
    assert xr.scene.current_time == s.scene.current_time

    # -- tracks.swap: two tracks that both continue after t = 3 -------------------------
    t = 3
    at_t = nodes[nodes["t"] == t]
    cont = [int(i) for i in at_t.index if (nodes["parent_id"] == i).sum() == 1]
    c, d = cont[:2]
    select(qtbot, win, nodes, c)
    select(qtbot, win, nodes, d, add=True)
    key(qtbot, win, Qt.Key.Key_S)
    xr.ctx.current_time = float(t)
    xr.select_node(c)
    xr.point_at_node(d)
    xr.menu("swap")
    lines = same_journal(win, xr)
    assert lines[-1]["cmd"]["kind"] == "swap"

    # -- tracks.mark_reviewed, tracks.next_unreviewed ---------------------------------
    select(qtbot, win, nodes, c)
    key(qtbot, win, Qt.Key.Key_R)
    xr.ctx.current_time = float(nodes.loc[c, "t"])
    xr.select_node(c)
    xr.menu("mark reviewed")
    lines = same_journal(win, xr)
    assert lines[-1]["cmd"]["kind"] == "mark_reviewed"
    key(qtbot, win, Qt.Key.Key_N)
    xr.menu("next unreviewed")
    assert xr.scene.selection.node_ids == s.scene.selection.node_ids
    assert xr.scene.current_time == s.scene.current_time

    # -- tracks.delete_node, tracks.delete ----------------------------------------------
    for k, mod, item in (
        (Qt.Key.Key_Delete, Qt.KeyboardModifier.ShiftModifier, "delete node"),
        (Qt.Key.Key_Delete, Qt.KeyboardModifier.NoModifier, "delete"),
    ):
        victim = next(int(i) for i in nodes.index if i in s.tracks and i != new)
        select(qtbot, win, nodes, victim)
        key(qtbot, win, k, mod)
        xr.ctx.current_time = float(nodes.loc[victim, "t"])
        xr.select_node(victim)
        xr.menu(item)
        lines = same_journal(win, xr)
        assert lines[-1]["cmd"]["kind"] == "delete"

    # -- edit.undo / edit.redo ------------------------------------------------------------
    key(qtbot, win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    xr.press("secondary", side="left")
    key(
        qtbot,
        win,
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    xr.press("primary", side="left")
    lines = same_journal(win, xr)
    assert [r["op"] for r in lines[-2:]] == ["undo", "redo"]
    assert s.tracks.equals(xr.graph)


def test_annotation_actions_build_the_same_commands_on_desktop_and_headset(
    both: Any, timelapse_store: Path, qtbot: Any
) -> None:
    win, xr = both
    s = win.session
    nodes = truth(timelapse_store)
    s.set_time(0)
    xr.ctx.current_time = 0.0
    at0 = nodes[nodes["t"] == 0]
    centre = at0.iloc[0][["z", "y", "x"]].to_numpy(float)
    s.set_cursor(centre)
    qtbot.wait(20)

    # -- annotations.add_marker -----------------------------------------------------------
    key(qtbot, win, Qt.Key.Key_K)
    click(qtbot, win, "xy", centre + [0.0, 3.0, 1.0])
    where = s.annotations.markers[-1].position_um
    xr.switch("count")
    xr.press("select", xr.tip_at(where))
    lines = same_journal(win, xr)
    assert lines[-1]["cmd"]["kind"] == "add_marker" and len(xr.ctx.annotations.markers) == 1

    # -- annotations.measure_point (distance: complete at two points) ------------------------
    key(qtbot, win, Qt.Key.Key_D)
    click(qtbot, win, "xy", centre + [0.0, -4.0, 2.0])
    click(qtbot, win, "xy", centre + [0.0, 5.0, -3.0])
    pts = s.annotations.measurements[-1].points_um
    xr.switch("measure")
    for p in pts:
        xr.press("select", xr.tip_at(p))
    lines = same_journal(win, xr)
    assert lines[-1]["cmd"]["kind"] == "add_measurement"
    key(qtbot, win, Qt.Key.Key_Escape)

    # -- objects.classify: the object under the click / the ray ----------------------------
    click(qtbot, win, "xy", centre)
    sel = s.scene.selection
    assert sel.layer == "nuclei" and len(sel.label_ids) == 1
    win.features.object_class.setCurrentText("mito")
    qtbot.mouseClick(win.features.assign, Qt.MouseButton.LeftButton)
    xr.switch("classify")
    xr.press("primary")  # next class: "mito"
    xr.press("select", xr.aim(centre, back_m=0.0))
    lines = same_journal(win, xr)
    assert lines[-1]["cmd"]["kind"] == "set_object_class"
    assert (
        xr.ctx.annotations.object_classes
        == s.annotations.object_classes
        == {"nuclei": {int(sel.label_ids[0]): "mito"}}
    )
