"""Lineage actions: ``tracks.add_division`` and the tree layout the lineage views draw.

:func:`lineage_layout` places one lineage's tracklets for a tree plot (time down,
daughters side by side), with no Qt: the desktop's lineage dock draws it with
pyqtgraph, and any other front end may draw the same layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.edits import AddDivision
from analysis.errors import InvalidEditError

from ._actions import select_node, selected_nodes
from ._context import ActionContext
from ._registry import ACTIONS
from ._select import Pick, tracklet_start

__all__ = ["LineageLayout", "division_parent", "lineage_layout"]


@dataclass(frozen=True)
class LineageLayout:
    """One lineage laid out as a tree.

    Attributes
    ----------
    nodes : (N,) int array
        Node ids of the lineage, in time order.
    x : (N,) float array
        Column of each node (its tracklet's: leaves 0, 1, 2 ...; a mother midway
        between its daughters).
    t : (N,) int array
        Time point of each node (the tree's vertical axis).
    tracklets : (N,) int array
        Tracklet id (first node) of each node.
    edges : (E, 2) int array
        Indices into ``nodes`` of every parent -> child link (divisions included).
    """

    nodes: npt.NDArray[np.int64]
    x: npt.NDArray[np.float64]
    t: npt.NDArray[np.int64]
    tracklets: npt.NDArray[np.int64]
    edges: npt.NDArray[np.int64]


def lineage_layout(g: Any, node: int) -> LineageLayout:
    """The tree layout of the lineage holding ``node`` (leaves left to right by depth-first
    order, daughters in id order)."""
    nodes = np.asarray(g.lineage(int(node)), dtype=np.int64)
    index = {int(n): i for i, n in enumerate(nodes.tolist())}
    t = np.array([g.time(int(n)) for n in nodes], dtype=np.int64)
    first: dict[int, int] = {}
    track = np.empty(len(nodes), dtype=np.int64)
    children: dict[int, list[int]] = {}
    edges = []
    for i, n in enumerate(nodes.tolist()):
        p = g.parent(n)
        if p is not None and int(p) in index:
            edges.append((index[int(p)], i))
        # A node continues its parent's tracklet when the parent has one child.
        if p is not None and int(p) in index and len(g.children(int(p))) == 1:
            track[i] = track[index[int(p)]]
        else:
            track[i] = n
            first[n] = i
            if p is not None and int(p) in index:
                children.setdefault(int(track[index[int(p)]]), []).append(n)
    col: dict[int, float] = {}
    leaf = 0

    def place(k: int) -> float:
        nonlocal leaf
        kids = sorted(children.get(k, []))
        if not kids:
            col[k] = float(leaf)
            leaf += 1
        else:
            col[k] = float(np.mean([place(c) for c in kids]))
        return col[k]

    root = int(track[0])
    # Recursion depth is the number of generations (tens), not the number of nodes.
    place(root)
    x = np.array([col.get(int(k), 0.0) for k in track], dtype=np.float64)
    e = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    return LineageLayout(nodes, x, t, track, e)


def division_parent(g: Any, mother: int, daughter_start: int) -> int:
    """The node of ``mother``'s track that a daughter starting at ``daughter_start`` divides
    from: the last node of that track before the daughter's time."""
    t0 = g.time(int(daughter_start))
    # Walk the mother's whole track (its lineage line through ``mother``) back in time.
    line = [int(n) for n in g.tracklet(int(mother))]
    p = g.parent(line[0])
    while p is not None:  # the tracklets before it, when the division is earlier
        line.insert(0, int(p))
        p = g.parent(int(p))
    n = int(line[-1])
    while g.children(n) and len(g.children(n)) == 1:
        n = int(g.children(n)[0])
        line.append(n)
    before = [n for n in line if g.time(n) < t0]
    if not before:
        raise InvalidEditError(
            f"the first track has no node before t={t0}, where the second one starts"
        )
    return before[-1]


def _needs_two(ctx: ActionContext, pick: Pick) -> str | None:
    if ctx.tracks is None:
        return "no tracks are open"
    ids = selected_nodes(ctx)
    if pick.node is not None and pick.node not in ids:
        ids.append(int(pick.node))
    if len(ids) < 2:
        return "select the mother track, then Ctrl+click the daughter track"
    return None


@ACTIONS.action(
    "tracks.add_division",
    "Add division",
    "make the second selected track a daughter of the first: its start is linked to the "
    "first track's last node before it, which then divides",
    enabled=_needs_two,
)
def _add_division(ctx: ActionContext, pick: Pick) -> AddDivision:
    g = ctx.tracks
    ids = selected_nodes(ctx)
    if pick.node is not None and pick.node not in ids:
        ids.append(int(pick.node))
    mother, other = ids[0], ids[1]
    start = tracklet_start(g, other)
    if g.parent(start) is not None:
        raise InvalidEditError(
            f"the second track already starts from node {g.parent(start)}: cut it first"
        )
    parent = division_parent(g, mother, start)
    cmd = AddDivision(parent, start)
    ctx.execute(cmd)
    select_node(ctx, start)
    ctx.notify(f"division at t={g.time(parent)}: {parent} -> {start}")
    return cmd
