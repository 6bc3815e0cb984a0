"""``TrackLayerState``: the tracks layer's columns and the tracklet table, updated per edit.

Rebuilding the layer from the whole graph after every edit costs O(N) plus a sort
(~0.5 s at one million nodes: tracklet ids by pointer jumping, unique ids,
edge lookups), which made a cut on a large lineage stall the window. Here the
columns live in buffers indexed by node id (ids are int64, never reused and, for
every graph vrscope makes, dense), so an edit rewrites only the nodes it touched
and the tracklets they belong to: O(length of the affected tracklets).

What an edit touched comes from the graph's change events (``TrackGraph.events``:
``nodes_added``, ``nodes_removed``, ``edges_added``, ``edges_removed``,
``reviewed``), which its raw mutators emit: every command, its undo and redo,
journal replays and collaborators' ops all go through them. Each raw mutation
bumps ``version`` by one and emits one event; a version that moved more than the
recorded events (``compact``, a bulk rebuild) triggers a full rebuild, so the
state can never silently drift from the graph.

Layer data handed to the renderer are views of the buffers. Rows are only ever
appended or written in place (a removed node keeps its row with ``t = NaN``, so
it is never inside a time window); the edge list is copied before an edge is
removed from it. A frame the render thread is drawing therefore always sees a
consistent, if possibly one-edit-old, graph.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.tracks import TrackGraph
from viewer.scene import TrackData, track_data_from_graph

__all__ = ["TrackLayerState"]

log = logging.getLogger(__name__)

#: Ids beyond this many times the node count (plus a margin) are too sparse for id-indexed rows.
_MAX_SPARSITY = 4


class _Recorder:
    """Collects the node ids the graph's change events name (see the module docstring)."""

    def __init__(self, graph: TrackGraph) -> None:
        self.graph = graph
        self.touched: set[int] = set()
        self.calls = 0
        ev = graph.events
        self._slots: list[tuple[Any, Callable[[tuple[Any, ...]], None]]] = [
            (ev.nodes_added, self._on_nodes),
            (ev.nodes_removed, self._on_nodes),
            (ev.reviewed, self._on_nodes),
            (ev.edges_added, self._on_edges),
            (ev.edges_removed, self._on_edges),
        ]
        for sig, slot in self._slots:
            sig.connect(slot)

    def _on_nodes(self, ids: tuple[int, ...]) -> None:
        self.calls += 1
        self.touched.update(ids)

    def _on_edges(self, pairs: tuple[tuple[int, int], ...]) -> None:
        self.calls += 1
        for p, c in pairs:
            self.touched.add(p)
            self.touched.add(c)

    def take(self) -> tuple[set[int], int]:
        out, n = self.touched, self.calls
        self.touched, self.calls = set(), 0
        return out, n

    def detach(self) -> None:
        for sig, slot in self._slots:
            sig.disconnect(slot)


class TrackLayerState:
    """Incrementally maintained :class:`TrackData` and tracklet table of one ``TrackGraph``.

    Parameters
    ----------
    graph : TrackGraph

    Attributes
    ----------
    table : dict tracklet id -> row
        Row: ``track`` (id of its first node), ``start``, ``end`` (t), ``nodes``,
        ``reviewed`` (all nodes), ``first`` (= ``track``).
    rebuilds, updates : int
        How often the whole state was rebuilt and how often it was patched.
    lo, hi : (3,) float or None
        Bounds (zyx µm) of every node position ever drawn (they only grow).
    """

    def __init__(self, graph: TrackGraph) -> None:
        self.graph = graph
        self.rebuilds = 0
        self.updates = 0
        self._recorder: _Recorder | None = None
        self.table: dict[int, dict[str, Any]] = {}
        self._incremental = True
        self.lo: npt.NDArray[np.float64] | None = None
        self.hi: npt.NDArray[np.float64] | None = None
        self.rebuild()
        self._recorder = _Recorder(graph)

    # ------------------------------------------------------------------ build
    def rebuild(self) -> None:
        """Build everything from the whole graph (O(N))."""
        g = self.graph
        self.rebuilds += 1
        self._version = g.version
        ids = g.node_ids
        n = len(ids)
        if n:
            zyx_all = g.zyx
            self.lo, self.hi = zyx_all.min(axis=0), zyx_all.max(axis=0)
        top = int(ids.max()) + 1 if n else 0
        self._incremental = top <= _MAX_SPARSITY * n + 1024
        if not self._incremental:
            log.info("tracks: node ids too sparse for incremental updates; rebuilding per edit")
            self._plain = track_data_from_graph(g)
            self.table = _table_from(g)
            return
        cap = max(16, top + top // 2)
        self._alloc(cap)
        t = g.t.astype(np.float64)
        zyx = g.zyx
        self._t[:] = np.nan
        self._t[ids] = t
        # Rows of ids that do not exist sit on a real node so the layer's extent is unchanged.
        self._zyx[:] = zyx[0] if n else 0.0
        self._zyx[ids] = zyx
        tid = g.tracklet_ids()
        self._tid[:] = -1
        self._tid[ids] = tid
        e = g.edges
        self._parent[:] = -1
        self._parent[e[:, 1]] = e[:, 0]
        self._slot[:] = -1
        self._slot[e[:, 1]] = np.arange(len(e))
        self._edges[: len(e)] = e
        self._n_edges = len(e)
        self._top = top
        self.table = _table_from(g)

    def _alloc(self, cap: int) -> None:
        self._cap = cap
        self._ids = np.arange(cap, dtype=np.int64)
        self._t = np.full(cap, np.nan)
        self._zyx = np.zeros((cap, 3))
        self._tid = np.full(cap, -1, dtype=np.int64)
        self._parent = np.full(cap, -1, dtype=np.int64)
        self._slot = np.full(cap, -1, dtype=np.int64)
        self._edges = np.zeros((cap, 2), dtype=np.int64)

    def _grow(self, top: int) -> None:
        if top <= self._cap:
            return
        old = (self._t, self._zyx, self._tid, self._parent, self._slot, self._edges)
        n_old = self._cap
        self._alloc(max(top, 2 * self._cap))
        self._t[:n_old], self._zyx[:n_old], self._tid[:n_old] = old[0], old[1], old[2]
        self._zyx[n_old:] = old[1][0]
        self._parent[:n_old], self._slot[:n_old] = old[3], old[4]
        if len(old[5]) > len(self._edges):
            self._edges = np.zeros_like(old[5])
        self._edges[: len(old[5])] = old[5]

    # ------------------------------------------------------------------ update
    def update(self) -> bool:
        """Bring the state up to the graph; True when the drawn columns changed."""
        rec = self._recorder
        assert rec is not None
        touched, calls = rec.take()
        g = self.graph
        if g.version == self._version:
            return False
        if not self._incremental or g.version - self._version != calls:
            self.rebuild()
            return True
        self._version = g.version
        self.updates += 1
        alive = [n for n in touched if n in g]
        self._grow(max(alive, default=-1) + 1)
        self._top = max(self._top, max(alive, default=-1) + 1)
        drawn = False
        edges_copied = False
        for n in touched:
            live = n in g
            if n < self._cap:
                was_t = self._t[n]
                new_t = float(g.time(n)) if live else np.nan
                if not (was_t == new_t or (np.isnan(was_t) and np.isnan(new_t))):
                    drawn = True
                self._t[n] = new_t
                if live:
                    p_n = np.asarray(g.position(n))
                    self._zyx[n] = p_n
                    self.lo = p_n if self.lo is None else np.minimum(self.lo, p_n)
                    self.hi = p_n if self.hi is None else np.maximum(self.hi, p_n)
            p = g.parent(n) if live else None
            want = -1 if p is None else int(p)
            if n >= self._cap or self._parent[n] == want:
                continue
            drawn = True
            self._parent[n] = want
            slot = int(self._slot[n])
            if want < 0:
                if not edges_copied:
                    # Frames being drawn hold views of the old list: remove from a copy.
                    self._edges = self._edges.copy()
                    edges_copied = True
                last = self._n_edges - 1
                moved = int(self._edges[last, 1])
                self._edges[slot] = self._edges[last]
                self._slot[moved] = slot
                self._slot[n] = -1
                self._n_edges = last
            elif slot >= 0:
                self._edges[slot, 0] = want
            else:
                if self._n_edges >= len(self._edges):
                    self._edges = np.concatenate([self._edges, np.zeros_like(self._edges)])
                self._edges[self._n_edges] = (want, n)
                self._slot[n] = self._n_edges
                self._n_edges += 1
        drawn |= self._retrack(touched)
        return drawn

    def _retrack(self, touched: Iterable[int]) -> bool:
        """Recompute tracklet ids and table rows of the tracklets around ``touched``."""
        g = self.graph
        around: set[int] = set()
        for n in touched:
            around.add(n)
            if n in g:
                around.update(g.children(n))
        old_tids = {int(self._tid[n]) for n in around if n < self._cap and self._tid[n] >= 0}
        for tid in old_tids:
            self.table.pop(tid, None)
        seen: set[int] = set()
        changed = False
        for n in around:
            if n in seen:
                continue
            if n not in g:
                if n < self._cap:
                    self._tid[n] = -1
                continue
            chain = g.tracklet(n)
            first = int(chain[0])
            seen.update(int(i) for i in chain)
            if np.any(self._tid[chain] != first):
                changed = True
                self._tid[chain] = first
            self.table[first] = _row(g, chain)
        return changed

    # ------------------------------------------------------------------ views
    @property
    def data(self) -> TrackData:
        """The layer's columns (views of the buffers; rows of absent ids have ``t = NaN``)."""
        if not self._incremental:
            self._plain = track_data_from_graph(self.graph)
            return self._plain
        m = self._top
        return TrackData(
            node_ids=self._ids[:m],
            t=self._t[:m],
            zyx_um=self._zyx[:m],
            edges=self._edges[: self._n_edges],
            track_ids=self._tid[:m],
        )

    def parents(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Parent id (-1: none) of each node id."""
        if not self._incremental:
            return np.asarray([self.graph.parent(int(i)) or -1 for i in ids], dtype=np.int64)
        return self._parent[ids]

    def positions(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """(len(ids), 3) zyx µm of node ids."""
        if not self._incremental:
            return np.asarray([self.graph.position(int(i)) for i in ids]).reshape(-1, 3)
        return self._zyx[ids]

    def times(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        if not self._incremental:
            return np.asarray([self.graph.time(int(i)) for i in ids], dtype=np.float64)
        return self._t[ids]

    def rows(self) -> list[dict[str, Any]]:
        """The tracklet table sorted by tracklet id."""
        return [self.table[k] for k in sorted(self.table)]

    def detach(self) -> None:
        """Stop recording the graph's edits (the graph's methods are its own again)."""
        if self._recorder is not None:
            self._recorder.detach()
            self._recorder = None


def _row(g: TrackGraph, chain: npt.NDArray[np.int64]) -> dict[str, Any]:
    first = int(chain[0])
    return {
        "track": first,
        "start": g.time(first),
        "end": g.time(int(chain[-1])),
        "nodes": len(chain),
        "reviewed": all(g.is_reviewed(int(i)) for i in chain),
        "first": first,
    }


def _table_from(g: TrackGraph) -> dict[int, dict[str, Any]]:
    """The tracklet table of the whole graph (vectorised, O(N log N))."""
    if not g.n_nodes:
        return {}
    ids, t, rev, tid = g.node_ids, g.t, g.reviewed, g.tracklet_ids()
    order = np.lexsort((t, tid))
    bounds = np.flatnonzero(np.diff(tid[order])) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(order)]]) - 1
    rev_all = np.logical_and.reduceat(rev[order], starts)
    out = {}
    for a, b, r in zip(starts.tolist(), ends.tolist(), rev_all.tolist(), strict=True):
        first = int(ids[order[a]])
        out[first] = {
            "track": first,
            "start": int(t[order[a]]),
            "end": int(t[order[b]]),
            "nodes": b - a + 1,
            "reviewed": bool(r),
            "first": first,
        }
    return out
