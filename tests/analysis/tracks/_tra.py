"""Convert graphs to traccuracy ``TrackingGraph`` (tests only: traccuracy is a dev dependency)."""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
from traccuracy import TrackingGraph, run_metrics
from traccuracy.matchers import CTCMatcher
from traccuracy.metrics import CTCMetrics, DivisionMetrics

from analysis.tracks import TrackGraph


def to_traccuracy(g: TrackGraph, segmentation: np.ndarray) -> TrackingGraph:
    """Nodes keyed id+1 (traccuracy wants positive ids), ``segmentation_id`` = label."""
    G = nx.DiGraph()
    for i, t, lab, (z, y, x) in zip(g.node_ids, g.t, g.label, g.zyx, strict=True):
        G.add_node(int(i) + 1, t=int(t), segmentation_id=int(lab), z=z, y=y, x=x)
    G.add_edges_from((int(a) + 1, int(b) + 1) for a, b in g.edges)
    return TrackingGraph(G, segmentation=segmentation, location_keys=("z", "y", "x"))


def ctc_scores(gt: TrackGraph, pred: TrackGraph, segmentation: np.ndarray) -> dict[str, Any]:
    """traccuracy's CTC metrics (TRA, DET, ...) and division metrics, flattened."""
    results, _ = run_metrics(
        to_traccuracy(gt, segmentation),
        to_traccuracy(pred, segmentation),
        CTCMatcher(),
        [CTCMetrics(), DivisionMetrics(max_frame_buffer=1)],
    )
    out: dict[str, Any] = {}
    for r in results:
        for k, v in r["results"].items():
            if isinstance(v, dict):
                for kk, vv in v.items():
                    out[f"{k}/{kk}"] = vv
            else:
                out[k] = v
    return out
