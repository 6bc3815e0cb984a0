"""Id counters are part of the state that undo restores: a node or marker created after an
undo gets the same id in the running session and after a restart (and on every replica)."""

from __future__ import annotations

from pathlib import Path

from analysis.annotations import AddMarker
from analysis.edits import Prolong
from analysis.project import Project
from analysis.tracks import TrackGraph


def two_tracks() -> TrackGraph:
    ids = [0, 1, 2, 3, 4, 10, 11, 12]
    t = [0, 1, 2, 3, 4, 6, 7, 8]
    zyx = [[1.0, 2.0, float(i)] for i in range(5)] + [[1.0, 2.0, 6.0 + i] for i in range(3)]
    return TrackGraph.from_arrays(ids, t, zyx, [[0, 1], [1, 2], [2, 3], [3, 4], [10, 11], [11, 12]])


def test_create_after_undo_gets_the_same_ids_live_and_after_a_restart(tmp_path: Path) -> None:
    # The reference: the smallest unused ids of the base data (max node id + 1; markers
    # are numbered from 1).
    next_node, next_marker = 13, 1
    ids = []
    for restart in (False, True):
        folder = tmp_path / f"p{int(restart)}"
        pr = Project.create(folder, tracks=two_tracks(), classes=["cell"])
        pr.history.apply(Prolong(4, [[5.0, 1.0, 2.0, 5.0], [6.0, 1.0, 2.0, 6.0]]))
        pr.history.apply(AddMarker("cell", (1.0, 1.0, 1.0)))
        pr.history.undo()
        pr.history.undo()
        if restart:
            pr.close()
            pr = Project.open(folder)
        assert pr.tracks is not None
        assert pr.tracks.next_id == next_node and pr.annotations.new_id() == next_marker
        prolong = pr.history.apply(Prolong(12, [[9.0, 1.0, 2.0, 9.0]]))
        marker = pr.history.apply(AddMarker("cell", (2.0, 2.0, 2.0)))
        ids.append((prolong.new_ids, marker.marker_id))  # type: ignore[attr-defined]
        pr.close()
    assert ids[0] == ids[1] == ([next_node], next_marker)
