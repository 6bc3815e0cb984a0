"""``TrackGraph.events``: every raw mutation says what it touched (commands, undo, redo).

Reference: the edge and node sets of the graph before and after each command.
"""

from __future__ import annotations

import numpy as np

from analysis.edits import Cut, Delete, History, MarkReviewed, Merge, Prolong
from analysis.tracks import TrackGraph


def line() -> TrackGraph:
    ids = np.arange(4)
    return TrackGraph.from_arrays(ids, ids, np.c_[ids, ids, ids] * 1.0, [[0, 1], [1, 2], [2, 3]])


def record(g: TrackGraph) -> list[tuple[str, tuple]]:
    got: list[tuple[str, tuple]] = []
    for name in ("nodes_added", "nodes_removed", "edges_added", "edges_removed", "reviewed"):
        getattr(g.events, name).connect(lambda v, n=name: got.append((n, v)))
    return got


def test_commands_and_their_undo_emit_what_they_changed():
    g = line()
    got = record(g)
    h = History(g)
    v0 = g.version
    h.apply(Cut(2))
    assert got == [("edges_removed", ((1, 2),))]
    h.undo()
    assert got[-1] == ("edges_added", ((1, 2),))
    got.clear()
    cmd = h.apply(Prolong(3, [[4.0, 1.0, 1.0, 1.0]]))
    (new,) = cmd.new_ids
    assert ("nodes_added", (new,)) in got and ("edges_added", ((3, new),)) in got
    got.clear()
    h.apply(MarkReviewed([0], reviewed=True, whole_track=False))
    assert got == [("reviewed", (0,))]
    got.clear()
    h.apply(Delete.node(new))
    assert got == [("edges_removed", ((3, new),)), ("nodes_removed", (new,))]
    h.apply(Cut(1))
    got.clear()
    h.apply(Merge(0, 1))
    assert got == [("edges_added", ((0, 1),))]
    # One event per version step: a listener can tell when it missed something.
    assert g.version - v0 == 2 + 2 + 1 + 2 + 1 + 1
