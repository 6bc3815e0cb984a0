"""The action registry: docs tables equal the registry; selection semantics (no GUI).

References: the docs files as written; track edits checked on hand-built graphs.
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analysis.annotations import Annotations
from analysis.edits import History
from analysis.project import Workspace
from analysis.tracks import TrackGraph
from viewer.actions import ACTIONS, Measuring, Pick, merge_ends, run
from viewer.scene import Scene

DOCS = Path(__file__).resolve().parents[3] / "docs"


def block(text: str, name: str) -> str:
    m = re.search(rf"<!-- actions:{name} -->\n(.*?)<!-- /actions:{name} -->", text, re.S)
    assert m is not None, f"no actions:{name} block"
    return m.group(1)


def test_desktop_key_table_in_the_docs_is_the_registry() -> None:
    assert block((DOCS / "desktop.md").read_text(), "desktop") == ACTIONS.desktop_table()


def test_headset_table_in_the_docs_is_the_registry() -> None:
    assert block((DOCS / "xr.md").read_text(), "headset") == ACTIONS.headset_table()


def test_every_action_is_named_and_shortcuts_are_unique() -> None:
    ids = [a.id for a in ACTIONS]
    assert len(ids) == len(set(ids))
    for a in ACTIONS:
        assert re.fullmatch(r"[a-z]+\.[a-z_]+", a.id), a.id
        assert a.title and a.description
    keys = [a.shortcut for a in ACTIONS if a.shortcut]
    assert len(keys) == len(set(keys))
    for need in (
        "tracks.cut",
        "tracks.merge",
        "tracks.prolong",
        "tracks.swap",
        "tracks.delete",
        "tracks.mark_reviewed",
        "tracks.next_unreviewed",
        "annotations.add_marker",
        "annotations.measure_point",
        "objects.classify",
        "view.reset",
        "time.next",
        "edit.undo",
        "edit.redo",
    ):
        assert need in ACTIONS


def test_actions_import_no_gui() -> None:
    import subprocess
    import sys

    code = (
        "import sys, viewer.actions; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('PySide6', 'vtk', 'vtkmodules', 'pyvista', 'xr', 'xrmode')]; "
        "print(bad); assert not bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


class Ctx:
    """A minimal ActionContext: a scene, a workspace and a history."""

    def __init__(self, g: TrackGraph | None) -> None:
        self.scene = Scene()
        self.workspace = Workspace(g, Annotations())
        self.history = History(self.workspace)
        self.measuring = Measuring()
        self.messages: list[str] = []
        self.class_name = "default"

    @property
    def tracks(self) -> Any:
        return self.workspace.tracks

    @property
    def annotations(self) -> Any:
        return self.workspace.annotations

    def execute(self, cmd: Any) -> Any:
        return self.history.apply(cmd)

    def group(self, name: str) -> Any:
        return nullcontext()

    def undo(self) -> None:
        self.history.undo()

    def redo(self) -> None:
        self.history.redo()

    def notify(self, text: str) -> None:
        self.messages.append(text)

    def reset_view(self) -> None:
        pass

    def measuring_changed(self) -> None:
        pass


def two_tracks() -> TrackGraph:
    """0-1-2 (t 0..2) and 3-4-5 (t 3..5), along x."""
    ids = np.arange(6)
    zyx = np.c_[np.zeros(6), np.zeros(6), 2.0 * ids]
    return TrackGraph.from_arrays(ids, ids, zyx, [[0, 1], [1, 2], [3, 4], [4, 5]])


@pytest.mark.parametrize("first,second", [(0, 5), (1, 4), (5, 0), (4, 1), (2, 3)])
def test_merge_snaps_to_the_end_of_the_earlier_and_the_start_of_the_later(first, second):
    g = two_tracks()
    assert merge_ends(g, first, second) == (2, 3)
    ctx = Ctx(g)
    ctx.scene.selection.node_ids = [first]
    cmd = run("tracks.merge", ctx, Pick(node=second))
    assert cmd is not None and g.parent(3) == 2
    assert ctx.scene.selection.node_ids == [3]


def test_cut_takes_the_pick_else_the_selected_track_at_the_current_time():
    g = two_tracks()
    ctx = Ctx(g)
    assert run("tracks.cut", ctx) is None and ctx.messages == ["cut: select a track"]
    ctx.scene.selection.node_ids = [0]
    ctx.scene.current_time = 2.0
    run("tracks.cut", ctx)
    assert g.parent(2) is None and g.parent(1) == 0
    run("tracks.cut", ctx, Pick(node=1))
    assert g.parent(1) is None
    ctx.scene.current_time = 4.0
    assert run("tracks.cut", ctx) is None
    assert ctx.messages[-1] == "cut: the selected track has no node at t=4"


def test_prolong_appends_after_the_end_and_steps_time():
    g = two_tracks()
    ctx = Ctx(g)
    ctx.scene.selection.node_ids = [0]  # any node of the track: the end (2) is prolonged
    cmd = run("tracks.prolong", ctx, Pick(point_um=(0.0, 1.0, 6.0)))
    (new,) = cmd.new_ids
    assert g.parent(new) == 2 and g.time(new) == 3
    assert ctx.scene.selection.node_ids == [new] and ctx.scene.current_time == 4.0


def test_measure_points_complete_a_distance_and_markers_carry_time_only_in_time_lapses():
    ctx = Ctx(two_tracks())
    run("annotations.measure_point", ctx, Pick(point_um=(0.0, 0.0, 0.0)))
    assert ctx.annotations.measurements == []
    run("annotations.measure_point", ctx, Pick(point_um=(0.0, 3.0, 4.0)))
    (m,) = ctx.annotations.measurements
    assert m.value == pytest.approx(5.0) and m.t == 0.0
    plain = Ctx(None)
    run("annotations.add_marker", plain, Pick(point_um=(1.0, 2.0, 3.0)))
    assert plain.annotations.markers[0].t is None
