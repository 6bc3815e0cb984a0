"""``suspicious_tracklets`` and ``lineage_layout`` on lineages built with known answers."""

from __future__ import annotations

import numpy as np

from analysis.tracks import TrackGraph
from viewer.actions import lineage_layout, next_suspicious_node, suspicious_tracklets


def chain(start_id: int, times: list[int], x0: float = 0.0) -> tuple[list[int], list[int], list]:
    ids = list(range(start_id, start_id + len(times)))
    pos = [[0.0, 0.0, x0 + 0.1 * i] for i in range(len(times))]
    return ids, times, pos


def test_fast_division_and_what_is_not_suspicious() -> None:
    """A mother (t 0-3) whose daughter divides again after 2 frames (t 4-5): only that
    daughter is a "fast division"; the other daughter runs to the end; nothing else."""
    ids, ts, pos, edges = [], [], [], []

    def add(times: list[int], x0: float, parent: int | None) -> list[int]:
        a, t, p = chain(len(ids), times, x0)
        ids.extend(a)
        ts.extend(t)
        pos.extend(p)
        edges.extend(zip(a[:-1], a[1:], strict=True))
        if parent is not None:
            edges.append((parent, a[0]))
        return a

    mother = add([0, 1, 2, 3], 0.0, None)
    fast = add([4, 5], 0.4, mother[-1])
    slow = add([4, 5, 6, 7, 8, 9], 0.45, mother[-1])
    g1 = add([6, 7, 8, 9], 0.6, fast[-1])
    g2 = add([6, 7, 8, 9], 0.65, fast[-1])
    g = TrackGraph.from_arrays(ids, ts, np.asarray(pos), np.asarray(edges))
    sus = suspicious_tracklets(g)
    # The fast daughter is also short (2 nodes): both reasons, in the documented order.
    assert sus == {fast[0]: ["short", "fast division"]}
    assert next_suspicious_node(g) == fast[0]
    g.set_reviewed(g.tracklet(fast[0]), True)
    assert next_suspicious_node(g) is None
    # Layout: leaves in columns, each mother midway between its daughters, time down.
    lay = lineage_layout(g, slow[2])
    x = dict(zip(lay.nodes.tolist(), lay.x.tolist(), strict=True))
    assert sorted(lay.nodes.tolist()) == sorted(ids)
    assert x[fast[0]] == (x[g1[0]] + x[g2[0]]) / 2
    assert x[mother[0]] == (x[fast[0]] + x[slow[0]]) / 2
    assert len({x[g1[0]], x[g2[0]], x[slow[0]]}) == 3
    assert lay.t.tolist() == [g.time(int(n)) for n in lay.nodes]
    assert len(lay.edges) == len(edges)
