"""Track triage: which tracklets look wrong, and ``tracks.next_suspicious`` to visit them.

Proofreading a lineage of thousands of tracklets starts with the few that are most
likely wrong (Mastodon's and TrackMate's review filters): short tracklets, gaps in
time, tracks that end before the last frame without dividing, jumps far longer
than the typical step, and divisions too close in time. :func:`suspicious_tracklets`
finds them on a ``TrackGraph`` with NumPy over all edges at once (no per-node
Python loop: a 1M-node graph is triaged in well under a second).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._actions import select_node, set_time, show_point
from ._context import ActionContext
from ._registry import ACTIONS
from ._select import Pick

__all__ = ["TRIAGE_REASONS", "TriageRules", "next_suspicious_node", "suspicious_tracklets"]

#: Every reason :func:`suspicious_tracklets` may give, in the order it lists them.
TRIAGE_REASONS = ("short", "gap", "ends early", "jump", "fast division")


@dataclass(frozen=True)
class TriageRules:
    """What makes a tracklet suspicious.

    Parameters
    ----------
    min_nodes : int, default: 3
        "short": fewer nodes than this (unless the tracklet spans every frame).
    max_gap : int, default: 1
        "gap": two linked nodes more than this many frames apart.
    jump_factor : float, default: 4
        "jump": a step (µm per frame) longer than this times the median step of all links
        (links out of a division, where daughters move apart, are not judged).
    min_cycle : int, default: 3
        "fast division": a tracklet born of a division that divides again within fewer
        frames than this.
    """

    min_nodes: int = 3
    max_gap: int = 1
    jump_factor: float = 4.0
    min_cycle: int = 3


def suspicious_tracklets(
    g: Any, last_frame: int | None = None, rules: TriageRules | None = None
) -> dict[int, list[str]]:
    """``{tracklet id (its first node): reasons}`` of the tracklets that look wrong.

    Parameters
    ----------
    g : TrackGraph
    last_frame : int, optional
        The last time point of the data (default: the graph's); "ends early" means a
        tracklet ending before it without dividing.
    rules : TriageRules, optional
    """
    rules = rules or TriageRules()
    if g is None or not g.n_nodes:
        return {}
    ids = np.asarray(g.node_ids, dtype=np.int64)
    t = np.asarray(g.t, dtype=np.int64)
    zyx = np.asarray(g.zyx, dtype=np.float64)
    tid = np.asarray(g.tracklet_ids(), dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    edges = np.asarray(g.edges, dtype=np.int64).reshape(-1, 2)

    def index(of: np.ndarray) -> np.ndarray:
        return order[np.searchsorted(ids, of, sorter=order)]

    first_frame = int(t.min())
    last = int(t.max()) if last_frame is None else int(last_frame)
    found: dict[int, set[str]] = {}

    def flag(tracklets: np.ndarray, reason: str) -> None:
        for k in np.unique(tracklets).tolist():
            found.setdefault(int(k), set()).add(reason)

    # Per tracklet: node count, first and last time, children of its last node.
    uniq, inv, count = np.unique(tid, return_inverse=True, return_counts=True)
    start = np.full(len(uniq), np.iinfo(np.int64).max)
    end = np.full(len(uniq), np.iinfo(np.int64).min)
    np.minimum.at(start, inv, t)
    np.maximum.at(end, inv, t)
    n_children = np.zeros(len(ids), dtype=np.int64)
    if len(edges):
        pi, ci = index(edges[:, 0]), index(edges[:, 1])
        np.add.at(n_children, pi, 1)
    is_last = t == end[inv]
    divides = np.zeros(len(uniq), dtype=bool)
    divides[inv[is_last & (n_children >= 2)]] = True
    ends = np.zeros(len(uniq), dtype=bool)
    ends[inv[is_last & (n_children == 0)]] = True
    spans_all = (start == first_frame) & (end == last)
    flag(uniq[(count < rules.min_nodes) & ~spans_all], "short")
    flag(uniq[ends & (end < last)], "ends early")
    if len(edges):
        dt = t[ci] - t[pi]
        flag(tid[ci][dt > rules.max_gap], "gap")
        step = np.linalg.norm(zyx[ci] - zyx[pi], axis=1) / np.maximum(dt, 1)
        # Daughters move apart as a cell divides: the links out of a division are not
        # held to the usual step.
        plain = n_children[pi] == 1
        med = float(np.median(step[plain])) if plain.any() else 0.0
        if med > 0:
            flag(tid[ci][plain & (step > rules.jump_factor * med)], "jump")
        # Born of a division (its first node's parent has two children) and dividing again.
        parent_of = np.full(len(ids), -1, dtype=np.int64)
        parent_of[ci] = pi
        par = parent_of[index(uniq)]
        parent_divides = np.zeros(len(uniq), dtype=bool)
        parent_divides[par >= 0] = n_children[par[par >= 0]] >= 2
        flag(uniq[parent_divides & divides & (end - start + 1 < rules.min_cycle)], "fast division")
    return {k: [r for r in TRIAGE_REASONS if r in v] for k, v in sorted(found.items())}


def next_suspicious_node(
    g: Any, after: int | None = None, last_frame: int | None = None
) -> int | None:
    """First node of the next unreviewed suspicious tracklet after tracklet ``after``
    (by id, wrapping round); None when none is left."""
    if g is None or not g.n_nodes:
        return None
    sus = suspicious_tracklets(g, last_frame)
    if not sus:
        return None
    tid = np.asarray(g.tracklet_ids())
    todo_ids = set(np.unique(tid[~np.asarray(g.reviewed)]).tolist())
    todo = [k for k in sus if k in todo_ids]
    if not todo:
        return None
    later = [k for k in todo if after is None or k > after]
    return int(later[0] if later else todo[0])


def _last_frame(ctx: ActionContext) -> int | None:
    from ._select import time_range

    return int(time_range(ctx.scene, ctx.tracks)[1])


@ACTIONS.action(
    "tracks.next_suspicious",
    "Next suspicious track",
    "select the next unreviewed suspicious track (short, gap, ends early, jump, fast "
    "division), go to its start and centre every view on it",
    shortcut="Shift+N",
    enabled=lambda ctx, pick: None if ctx.tracks is not None else "no tracks are open",
)
def _next_suspicious(ctx: ActionContext, pick: Pick) -> int | None:
    g = ctx.tracks
    sel = [n for n in ctx.scene.selection.node_ids if n in g]
    after = int(g.tracklet(int(sel[-1]))[0]) if sel else None
    first = next_suspicious_node(g, after, _last_frame(ctx))
    if first is None:
        ctx.notify("no unreviewed suspicious track is left")
        return None
    select_node(ctx, first)
    set_time(ctx, g.time(first))
    show_point(ctx, g.position(first))
    return first
