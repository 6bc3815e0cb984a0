"""Synthetic lineages with known structure, for tests, benchmarks and demos."""

from __future__ import annotations

import numpy as np

from analysis.tracks._graph import TrackGraph

__all__ = ["random_lineages"]


def random_lineages(
    n_nodes: int = 10_000,
    track_length: int = 50,
    division_fraction: float = 0.5,
    step_um: float = 1.0,
    seed: int = 0,
) -> TrackGraph:
    """A forest of random-walk tracklets, some joined by divisions (vectorised).

    Tracklets of ``track_length`` nodes are made in triples (mother, two
    daughters); with probability ``division_fraction`` a triple is joined into a
    division (both daughters start one frame after the mother ends), otherwise
    its three tracklets stay separate. Positions are random walks in µm.

    Parameters
    ----------
    n_nodes : int, default: 10000
        Rounded down to a whole number of tracklet triples (at least one).
    track_length : int, default: 50
    division_fraction : float, default: 0.5
    step_um : float, default: 1.0
        Standard deviation of one step of the walk per axis.
    seed : int, default: 0

    Returns
    -------
    TrackGraph
        Node ids ``0 .. N-1``; tracklet ``k`` holds ids ``k*L .. (k+1)*L - 1`` in time order.
    """
    rng = np.random.default_rng(seed)
    length = max(2, int(track_length))
    n_triples = max(1, n_nodes // (3 * length))
    n_tracklets = 3 * n_triples
    n = n_tracklets * length
    ids = np.arange(n, dtype=np.int64)
    k = ids % length
    tracklet = ids // length
    triple, member = tracklet // 3, tracklet % 3
    t0 = rng.integers(0, 100, n_triples)
    start = t0[triple] + np.where(member == 0, 0, length)
    t = start + k
    steps = rng.normal(0.0, step_um, (n, 3))
    steps[k == 0] = rng.uniform(0, 500, (int(np.sum(k == 0)), 3))
    zyx = np.cumsum(steps.reshape(n_tracklets, length, 3), axis=1).reshape(n, 3)
    within = np.stack([ids[k < length - 1], ids[k < length - 1] + 1], axis=1)
    divide = rng.random(n_triples) < division_fraction
    mothers = np.flatnonzero(divide) * 3
    mother_end = mothers * length + length - 1
    d1 = (mothers + 1) * length
    d2 = (mothers + 2) * length
    # Daughters start next to where the mother ends.
    for d in (d1, d2):
        shift = zyx[mother_end] - zyx[d] + rng.normal(0, step_um, (d.size, 3))
        for j in range(length):
            zyx[d + j] += shift
    div_edges = np.concatenate(
        [np.stack([mother_end, d1], axis=1), np.stack([mother_end, d2], axis=1)]
    )
    edges = np.concatenate([within, div_edges]).astype(np.int64)
    return TrackGraph.from_arrays(ids, t, zyx, edges)
