"""Each track command against a hand-edited networkx model; invalid edits change nothing."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from analysis.edits import (
    AddDivision,
    Command,
    Cut,
    Delete,
    History,
    MarkReviewed,
    Merge,
    Prolong,
    Swap,
    command_from_json,
    command_to_json,
)
from analysis.errors import InvalidEditError
from analysis.tracks import TrackGraph


def two_tracks() -> TrackGraph:
    """Track A: 0->1->2->3 (t 0..3), track B: 10->11->12->13 (t 0..3), lone node 20 at t=5."""
    ids = [0, 1, 2, 3, 10, 11, 12, 13, 20]
    t = [0, 1, 2, 3, 0, 1, 2, 3, 5]
    zyx = [[0, 0, x] for x in range(4)] + [[0, 5, x] for x in range(4)] + [[0, 0, 9]]
    edges = [[0, 1], [1, 2], [2, 3], [10, 11], [11, 12], [12, 13]]
    return TrackGraph.from_arrays(ids, t, zyx, edges)


def nx_of(g: TrackGraph) -> nx.DiGraph:
    G = nx.DiGraph()
    G.add_nodes_from(int(i) for i in g.node_ids)
    G.add_edges_from((int(a), int(b)) for a, b in g.edges)
    return G


def check(g: TrackGraph, G: nx.DiGraph) -> None:
    assert nx.utils.graphs_equal(nx_of(g), G)
    g.validate()


def roundtrip(cmd: Command) -> Command:
    return command_from_json(command_to_json(cmd))


def run(g: TrackGraph, cmd: Command, G: nx.DiGraph) -> None:
    """Apply, compare with the model, undo to the start, redo, compare again."""
    G0 = nx_of(g)
    start = g.copy()
    h = History(g)
    h.apply(cmd)
    check(g, G)
    h.undo()
    check(g, G0)
    h.redo()
    check(g, G)
    # The same command rebuilt from its JSON does the same to a copy of the start.
    History(start).apply(roundtrip(cmd))
    check(start, G)


def test_cut() -> None:
    g = two_tracks()
    G = nx_of(g)
    G.remove_edge(1, 2)
    run(g, Cut(2), G)
    assert g.tracklet(2).tolist() == [2, 3]


def test_merge() -> None:
    g = two_tracks()
    G = nx_of(g)
    G.add_edge(3, 20)
    run(g, Merge(3, 20), G)
    assert g.tracklet(0).tolist() == [0, 1, 2, 3, 20]


def test_add_division() -> None:
    g = two_tracks()
    g.remove_edge(12, 13)  # make 13 a free start at t=3
    G = nx_of(g)
    G.add_edge(2, 13)
    run(g, AddDivision(2, 13), G)
    assert sorted(g.children(2)) == [3, 13]


def test_prolong_append_and_prepend() -> None:
    g = two_tracks()
    h = History(g)
    cmd = h.apply(Prolong(3, [[5, 0, 0, 5], [4, 0, 0, 4]]))
    assert isinstance(cmd, Prolong) and cmd.new_ids is not None
    new = cmd.new_ids
    assert min(new) >= 21  # fresh ids, never reused
    # Chain ordered by time regardless of the order given.
    assert g.tracklet(0).tolist() == [0, 1, 2, 3, new[1], new[0]]
    assert g.position(new[1]) == (0.0, 0.0, 4.0)
    h.undo()
    assert all(i not in g for i in new)
    h.redo()
    assert g.tracklet(0).tolist() == [0, 1, 2, 3, new[1], new[0]]
    pre = h.apply(Prolong(10, [[-2, 1, 1, 1], [-1, 1, 1, 2]]))
    assert isinstance(pre, Prolong) and pre.new_ids is not None
    assert g.tracklet(12).tolist() == [*pre.new_ids, 10, 11, 12, 13]
    g.validate()


def test_delete_node_edge_track() -> None:
    g = two_tracks()
    G = nx_of(g)
    G.remove_node(2)
    run(g, Delete.node(2), G)

    g = two_tracks()
    G = nx_of(g)
    G.remove_edge(11, 12)
    run(g, Delete.edge(11, 12), G)

    g = two_tracks()
    g.add_node(4, (0, 0, 0), node_id=30)
    g.add_node(4, (0, 0, 0), node_id=31)
    g.add_edge(13, 30)
    g.add_edge(13, 31)  # 13 divides; deleting track B keeps the daughters
    G = nx_of(g)
    G.remove_nodes_from([10, 11, 12, 13])
    snap = g.snapshot()
    h = History(g)
    h.apply(Delete.track(11))
    check(g, G)
    h.undo()
    after = g.snapshot()
    assert all(np.array_equal(snap[k], after[k]) for k in snap)


def test_swap_fixes_crossing() -> None:
    g = two_tracks()
    G = nx_of(g)
    G.remove_edges_from([(1, 2), (11, 12)])
    G.add_edges_from([(1, 12), (11, 2)])
    run(g, Swap(1, 11), G)
    assert g.tracklet(0).tolist() == [0, 1, 12, 13]
    # Built from tracks + a time point it picks the same nodes.
    g2 = two_tracks()
    s = Swap.after(g2, 3, 13, 1)
    assert (s.node_a, s.node_b) == (1, 11)


def test_merge_rejects_second_parent() -> None:
    g = two_tracks()
    g.add_node(0, (0, 0, 0), node_id=50)  # a track end at t=0
    before = g.snapshot()
    with pytest.raises(InvalidEditError, match="already has parent 10"):
        History(g).apply(Merge(50, 11))
    after = g.snapshot()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_mark_reviewed() -> None:
    g = two_tracks()
    h = History(g)
    h.apply(MarkReviewed(1))
    assert g.reviewed.sum() == 1 and g.is_reviewed(1)
    h.apply(MarkReviewed([12], whole_track=True))
    assert all(g.is_reviewed(i) for i in (10, 11, 12, 13))
    h.undo()
    assert not any(g.is_reviewed(i) for i in (10, 11, 12, 13))
    h.undo()
    assert not g.reviewed.any()


@pytest.mark.parametrize(
    ("cmd", "msg"),
    [
        (Cut(0), "nothing to cut"),
        (Cut(99), "does not exist"),
        (Merge(2, 20), "not the end"),
        (Merge(3, 11), "backwards in time"),
        (Merge(13, 3), "backwards in time"),
        (AddDivision(3, 20), "0 children"),
        (AddDivision(1, 12), "already has parent"),
        (AddDivision(2, 1), "backwards in time"),
        (Prolong(2, [[5, 0, 0, 0]]), "not a track end"),
        (Prolong(3, [[2, 0, 0, 0]]), "not a track start"),
        (Prolong(20, [[4, 0, 0, 0], [6, 0, 0, 0]]), "all be after or all before"),
        (Prolong(3, [[5, 0, 0, 0], [5, 1, 1, 1]]), "share a time point"),
        (Prolong(1, [[-1, 0, 0, 0]]), "not a track start"),
        (Delete.edge(0, 2), "no edge"),
        (Swap(1, 1), "two different"),
        (Swap(3, 13), "nothing to swap"),
        (Swap(0, 12), "not forward in time"),
        (Swap(3, 11), "not forward in time"),
        (MarkReviewed([1, 99]), "does not exist"),
    ],
)
def test_invalid_edit_leaves_graph_unchanged(cmd: Command, msg: str) -> None:
    g = two_tracks()
    before = g.snapshot()
    h = History(g)
    with pytest.raises(InvalidEditError, match=msg):
        h.apply(cmd)
    after = g.snapshot()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert not h.can_undo


@pytest.mark.parametrize(
    "cmd",
    [
        Cut(2),
        Merge(3, 20),
        Prolong(3, [[4, 1.5, 2.5, 3.5]], new_ids=[40]),
        Delete.track(1),
        Swap(1, 11),
        AddDivision(2, 20),
        MarkReviewed([1, 2], reviewed=False, whole_track=True),
    ],
)
def test_json_roundtrip(cmd: Command) -> None:
    back = roundtrip(cmd)
    assert type(back) is type(cmd)
    assert back.to_json() == cmd.to_json()
