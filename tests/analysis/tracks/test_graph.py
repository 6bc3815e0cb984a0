"""TrackGraph structure and queries, checked against networkx and brute force."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from analysis.errors import FormatError, InvalidEditError
from analysis.tracks import TrackGraph, random_lineages


def _to_nx(g: TrackGraph) -> nx.DiGraph:
    G = nx.DiGraph()
    G.add_nodes_from(int(i) for i in g.node_ids)
    G.add_edges_from((int(a), int(b)) for a, b in g.edges)
    return G


def _nx_tracklets(G: nx.DiGraph) -> dict[int, int]:
    """node -> first node of its tracklet, computed independently with networkx:
    drop every edge out of a dividing node, then each weak component is a tracklet."""
    H = G.copy()
    H.remove_edges_from([(u, v) for u in G if G.out_degree(u) > 1 for v in G.successors(u)])
    out = {}
    for comp in nx.weakly_connected_components(H):
        roots = [n for n in comp if H.in_degree(n) == 0]
        assert len(roots) == 1
        first = roots[0]
        for n in comp:
            out[n] = first
    return out


@pytest.fixture
def forest() -> TrackGraph:
    return random_lineages(3000, track_length=20, division_fraction=0.5, seed=3)


def test_from_arrays_keeps_nodes_and_edges(forest: TrackGraph) -> None:
    G = _to_nx(forest)
    assert G.number_of_nodes() == forest.n_nodes == (3000 // (3 * 20)) * 3 * 20
    assert G.number_of_edges() == forest.n_edges
    # networkx's own definition: a forest where every node has in-degree <= 1, out-degree <= 2.
    assert max(d for _, d in G.in_degree()) == 1
    assert max(d for _, d in G.out_degree()) == 2
    assert nx.is_forest(G.to_undirected())
    forest.validate()


def test_tracklet_and_lineage_ids_match_networkx(forest: TrackGraph) -> None:
    G = _to_nx(forest)
    ref = _nx_tracklets(G)
    ids = forest.node_ids
    got = dict(zip(ids.tolist(), forest.tracklet_ids().tolist(), strict=True))
    assert got == ref
    lin = dict(zip(ids.tolist(), forest.lineage_ids().tolist(), strict=True))
    for comp in nx.weakly_connected_components(G):
        root = [n for n in comp if G.in_degree(n) == 0]
        assert len(root) == 1
        assert {lin[n] for n in comp} == {root[0]}
        # The per-node query agrees with the vectorised one.
        some = next(iter(comp))
        assert sorted(forest.lineage(some).tolist()) == sorted(comp)
    some = int(ids[123])
    assert sorted(forest.tracklet(some).tolist()) == sorted(
        n for n, r in ref.items() if r == ref[some]
    )


def test_tracklet_ids_follow_edits(forest: TrackGraph) -> None:
    forest.tracklet_ids()  # fill the cache, then edit
    node = int(forest.node_ids[55])
    parent = forest.parent(node)
    assert parent is not None
    forest.remove_edge(parent, node)
    ref = _nx_tracklets(_to_nx(forest))
    got = dict(zip(forest.node_ids.tolist(), forest.tracklet_ids().tolist(), strict=True))
    assert got == ref


def test_nearest_matches_brute_force(forest: TrackGraph) -> None:
    rng = np.random.default_rng(0)
    ids, t, zyx = forest.node_ids, forest.t, forest.zyx
    for _ in range(50):
        tp = int(rng.choice(t))
        q = rng.uniform(0, 500, 3)
        at = t == tp
        d = np.linalg.norm(zyx[at] - q, axis=1)
        assert forest.nearest(tp, q) == int(ids[at][np.argmin(d)])
    # Adding a node right at the query point must invalidate that time point's tree.
    tp = int(t[0])
    q = np.array([-1000.0, -1000.0, -1000.0])
    assert forest.nearest(tp, q) != 10**9
    forest.add_node(tp, q, node_id=10**9)
    assert forest.nearest(tp, q) == 10**9
    forest.remove_node(10**9)
    assert forest.nearest(tp, q) != 10**9
    assert forest.nearest(tp, q, max_distance_um=1.0) is None
    assert forest.nearest(10**6, q) is None


def test_nodes_at_matches_columns(forest: TrackGraph) -> None:
    t = forest.t
    for tp in np.unique(t)[:20]:
        assert sorted(forest.nodes_at(int(tp)).tolist()) == sorted(
            forest.node_ids[t == tp].tolist()
        )
    assert forest.time_points.tolist() == np.unique(t).tolist()


@pytest.mark.parametrize(
    ("ids", "t", "edges", "msg"),
    [
        ([0, 0], [0, 1], [], "more than once"),
        ([0, 1, 2], [0, 1, 2], [[0, 2], [1, 2]], "more than one parent"),
        ([0, 1, 2, 3], [0, 1, 1, 1], [[0, 1], [0, 2], [0, 3]], "more than two children"),
        ([0, 1], [1, 1], [[0, 1]], "forward in time"),
        ([0, 1], [0, 1], [[0, 5]], "does not exist"),
        ([-1, 1], [0, 1], [], "non-negative"),
        ([0, 1], [0.5, 1], [], "whole frame"),
    ],
)
def test_from_arrays_rejects_invalid(
    ids: list[int], t: list[float], edges: list[list[int]], msg: str
) -> None:
    zyx = np.zeros((len(ids), 3))
    with pytest.raises(FormatError, match=msg):
        TrackGraph.from_arrays(ids, t, zyx, np.asarray(edges, dtype=np.int64).reshape(-1, 2))


def test_validate_catches_backwards_time() -> None:
    g = TrackGraph.from_arrays([0, 1], [0, 1], np.zeros((2, 3)), [[0, 1]])
    g.validate()
    g._t[1] = 0  # corrupt a column directly: validate() must notice
    with pytest.raises(InvalidEditError, match="forward in time"):
        g.validate()


def test_ids_never_reused() -> None:
    g = TrackGraph.from_arrays([0, 1], [0, 1], np.zeros((2, 3)))
    a = g.add_node(2, (0, 0, 0))
    g.remove_node(a)
    b = g.add_node(2, (0, 0, 0))
    assert a == 2 and b == 3


def test_copy_compact_and_equals(forest: TrackGraph) -> None:
    c = forest.copy()
    assert c.equals(forest)
    node = int(forest.node_ids[10])
    for ch in forest.children(node):
        forest.remove_edge(node, ch)
    p = forest.parent(node)
    if p is not None:
        forest.remove_edge(p, node)
    forest.remove_node(node)
    assert not c.equals(forest)
    before = forest.snapshot()
    forest.compact()
    after = forest.snapshot()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    forest.validate()


def test_features_with_missing_values() -> None:
    g = TrackGraph.from_arrays(
        [5, 7],
        [0, 1],
        np.zeros((2, 3)),
        features={"area": np.array([3.0, 4.0])},
        feature_missing={"area": np.array([False, True])},
    )
    vals, miss = g.feature("area")
    assert vals[0] == 3.0 and miss.tolist() == [False, True]
    assert g.record(5).features == {"area": 3.0}
    assert g.record(7).features == {}
    df = g.to_dataframe()
    assert np.isnan(df.loc[df.id == 7, "area"]).all()
