"""Track edit commands on a :class:`analysis.tracks.TrackGraph`.

Every command validates fully before it changes anything (so an
``InvalidEditError`` leaves the graph untouched), stores only the diff it needs
to revert, and refers to nodes by id (never by storage row), so it stays valid
across compaction and replays identically from the journal. Each is O(1) or
O(length of the affected tracklet).

Edge features (e.g. a tracker's link score): an edge removed by an edit takes its
features along and the undo restores them; edges an edit creates (Merge,
Prolong, AddDivision, the new links of Swap) have every edge feature missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from analysis.edits._command import Command
from analysis.errors import InvalidEditError

if TYPE_CHECKING:
    from analysis.tracks import NodeRecord, TrackGraph

__all__ = ["AddDivision", "Cut", "Delete", "MarkReviewed", "Merge", "Prolong", "Swap"]


def _graph(target: Any) -> TrackGraph:
    """The graph a command edits: the target itself, or its ``.tracks`` when the target
    is a container such as ``analysis.project.Workspace`` (one History for all edits)."""
    # Duck-typed: importing TrackGraph here would be circular (analysis.tracks imports us).
    if hasattr(target, "add_edge"):
        return target  # type: ignore[no-any-return]
    graph = getattr(target, "tracks", None)
    if graph is None:
        raise InvalidEditError(f"{type(target).__name__} holds no tracks to edit")
    return graph  # type: ignore[no-any-return]


MAX_ID = 2**63 - 1  # node ids are int64 and never negative
MAX_FRAME = 2**31 - 1  # a time point beyond this is no frame number


def _check_ids(what: str, ids: Sequence[int]) -> None:
    for i in ids:
        if not 0 <= i <= MAX_ID:
            raise InvalidEditError(f"{what}: node id {i} is not in 0..2**63-1")


def _require(graph: TrackGraph, *node_ids: int) -> None:
    for n in node_ids:
        if n not in graph:
            raise InvalidEditError(f"node {n} does not exist")


class Cut(Command):
    """Split a track before ``node_id``: the edge from its parent is removed and
    ``node_id`` with everything after it becomes a new track."""

    kind = "cut"

    def __init__(self, node_id: int) -> None:
        self.node_id = int(node_id)
        self._parent: int | None = None
        self._props: dict[str, Any] = {}

    def apply(self, target: TrackGraph) -> None:
        target = _graph(target)
        _require(target, self.node_id)
        parent = target.parent(self.node_id)
        if parent is None:
            raise InvalidEditError(f"node {self.node_id} starts its track; there is nothing to cut")
        self._props = target.remove_edge(parent, self.node_id) or {}
        self._parent = parent

    def revert(self, target: TrackGraph) -> None:
        target = _graph(target)
        assert self._parent is not None
        target.add_edge(self._parent, self.node_id, props=self._props)

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node_id}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Cut:
        return cls(int(data["node"]))

    @property
    def description(self) -> str:
        return f"cut before {self.node_id}"


class Merge(Command):
    """Link the end of one track (``end_id``, no children) to the start of another
    (``start_id``, no parent). Rejected if ``start_id`` is not later in time or
    already has a parent (that would be a merge of two cells)."""

    kind = "merge"

    def __init__(self, end_id: int, start_id: int) -> None:
        self.end_id = int(end_id)
        self.start_id = int(start_id)

    def apply(self, target: TrackGraph) -> None:
        target = _graph(target)
        _require(target, self.end_id, self.start_id)
        if target.children(self.end_id):
            raise InvalidEditError(
                f"node {self.end_id} is not the end of its track (it has children); "
                "use AddDivision to add a second child"
            )
        target.check_edge(self.end_id, self.start_id)
        target.add_edge(self.end_id, self.start_id)

    def revert(self, target: TrackGraph) -> None:
        target = _graph(target)
        target.remove_edge(self.end_id, self.start_id)

    def to_json(self) -> dict[str, Any]:
        return {"end": self.end_id, "start": self.start_id}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Merge:
        return cls(int(data["end"]), int(data["start"]))

    @property
    def description(self) -> str:
        return f"merge {self.end_id} -> {self.start_id}"


class AddDivision(Command):
    """Give ``parent_id`` (which has exactly one child) a second child ``child_id``."""

    kind = "add_division"

    def __init__(self, parent_id: int, child_id: int) -> None:
        self.parent_id = int(parent_id)
        self.child_id = int(child_id)

    def apply(self, target: TrackGraph) -> None:
        target = _graph(target)
        _require(target, self.parent_id, self.child_id)
        n = len(target.children(self.parent_id))
        if n != 1:
            raise InvalidEditError(
                f"node {self.parent_id} has {n} children; a division needs exactly one "
                "existing child" + (" (use Merge to link a track end)" if n == 0 else "")
            )
        target.check_edge(self.parent_id, self.child_id)
        target.add_edge(self.parent_id, self.child_id)

    def revert(self, target: TrackGraph) -> None:
        target = _graph(target)
        target.remove_edge(self.parent_id, self.child_id)

    def to_json(self) -> dict[str, Any]:
        return {"parent": self.parent_id, "child": self.child_id}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AddDivision:
        return cls(int(data["parent"]), int(data["child"]))

    @property
    def description(self) -> str:
        return f"division {self.parent_id} -> {self.child_id}"


class Prolong(Command):
    """Append new nodes after a track end or prepend them before a track start.

    Parameters
    ----------
    node_id : int
        The end of a track (no children; all new points later) or its start (no
        parent; all new points earlier).
    points : (K, 4) array-like of ``(t, z, y, x)``
        New detections, t in frames, positions in µm; distinct times.
    new_ids : sequence of int, optional
        Ids for the new nodes; filled in by the first :meth:`apply` (so redo and
        journal replay recreate the same ids).
    """

    kind = "prolong"

    def __init__(
        self,
        node_id: int,
        points: Sequence[Sequence[float]],
        new_ids: Sequence[int] | None = None,
    ) -> None:
        self.node_id = int(node_id)
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 4) if len(points) else None
        if pts is None or not len(pts):
            raise InvalidEditError("Prolong needs at least one point")
        self.points = pts
        self.new_ids = [int(i) for i in new_ids] if new_ids is not None else None
        if self.new_ids is not None and len(self.new_ids) != len(self.points):
            raise InvalidEditError("Prolong: new_ids and points differ in length")
        self._next_before = self._next_after = -1

    def _plan(self, target: TrackGraph) -> tuple[np.ndarray[Any, Any], bool]:
        _require(target, self.node_id)
        pts = self.points
        if not np.all(np.isfinite(pts)):
            raise InvalidEditError("Prolong: points must be finite numbers")
        if np.any(pts[:, 0] != np.round(pts[:, 0])):
            raise InvalidEditError("Prolong: times must be whole frame numbers")
        if np.any(np.abs(pts[:, 0]) > MAX_FRAME):
            raise InvalidEditError(f"Prolong: times must be within +-{MAX_FRAME} frames")
        t0 = target.time(self.node_id)
        order = np.argsort(pts[:, 0], kind="stable")
        pts = pts[order]
        if np.any(np.diff(pts[:, 0]) <= 0):
            raise InvalidEditError("Prolong: two new points share a time point")
        if pts[0, 0] > t0:
            if target.children(self.node_id):
                raise InvalidEditError(
                    f"node {self.node_id} is not a track end; cannot append after it"
                )
            return order, True
        if pts[-1, 0] < t0:
            if target.parent(self.node_id) is not None:
                raise InvalidEditError(
                    f"node {self.node_id} is not a track start; cannot prepend before it"
                )
            return order, False
        raise InvalidEditError(
            f"Prolong: new points must all be after or all before t={t0} of node {self.node_id}"
        )

    def apply(self, target: TrackGraph) -> None:
        target = _graph(target)
        order, forward = self._plan(target)
        if self.new_ids is not None:
            _check_ids("Prolong", self.new_ids)
            if len(set(self.new_ids)) != len(self.new_ids):
                raise InvalidEditError(f"Prolong: new ids repeat: {self.new_ids}")
            for i in self.new_ids:
                if i in target:
                    raise InvalidEditError(f"Prolong: node {i} already exists")
            ids = list(self.new_ids)
        else:
            start = target.next_id
            if start + len(self.points) - 1 > MAX_ID:
                raise InvalidEditError("Prolong: no node ids left")
            ids = list(range(start, start + len(self.points)))
        # Validated: from here on nothing fails. The id counter is part of the state that
        # revert restores (so an undo, a replica and a restarted server agree).
        self._next_before = target.next_id
        for i, row in zip(ids, self.points, strict=True):
            target.add_node(int(row[0]), row[1:], node_id=i)
        chain = [ids[k] for k in order]
        if forward:
            chain = [self.node_id, *chain]
        else:
            chain = [*chain, self.node_id]
        for a, b in zip(chain[:-1], chain[1:], strict=True):
            target.add_edge(a, b)
        self.new_ids = ids
        self._next_after = target.next_id

    def revert(self, target: TrackGraph) -> None:
        target = _graph(target)
        assert self.new_ids is not None
        for i in self.new_ids:
            p = target.parent(i)
            if p is not None:
                target.remove_edge(p, i)
            for c in target.children(i):
                target.remove_edge(i, c)
        for i in self.new_ids:
            target.remove_node(i)
        if target.next_id == self._next_after:  # nothing took an id after this command
            target.restore_next_id(self._next_before)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"node": self.node_id, "points": self.points.tolist()}
        if self.new_ids is not None:
            out["new_ids"] = self.new_ids
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Prolong:
        return cls(int(data["node"]), data["points"], data.get("new_ids"))

    @property
    def description(self) -> str:
        return f"prolong {self.node_id} by {len(self.points)}"


class Delete(Command):
    """Delete a node, an edge or a whole tracklet (with the edges touching it).

    Build with :meth:`node`, :meth:`edge` or :meth:`track`.
    """

    kind = "delete"

    def __init__(self, what: Literal["node", "edge", "track"], ids: Sequence[int]) -> None:
        if what not in ("node", "edge", "track"):
            raise InvalidEditError(f"Delete: unknown target {what!r} (node, edge or track)")
        self.what = what
        self.ids = [int(i) for i in ids]
        if len(self.ids) != (2 if what == "edge" else 1):
            raise InvalidEditError(f"Delete.{what} got {len(self.ids)} ids")
        self._records: list[NodeRecord] = []
        self._edges: list[tuple[int, int]] = []
        self._edge_props: list[dict[str, Any]] = []

    @classmethod
    def node(cls, node_id: int) -> Delete:
        return cls("node", [node_id])

    @classmethod
    def edge(cls, parent_id: int, child_id: int) -> Delete:
        return cls("edge", [parent_id, child_id])

    @classmethod
    def track(cls, node_id: int) -> Delete:
        """The whole tracklet (division-free chain) holding ``node_id``."""
        return cls("track", [node_id])

    def apply(self, target: TrackGraph) -> None:
        target = _graph(target)
        _require(target, *self.ids)
        if self.what == "edge":
            p, c = self.ids
            if not target.has_edge(p, c):
                raise InvalidEditError(f"there is no edge {p} -> {c}")
            self._edge_props = [target.remove_edge(p, c) or {}]
            self._edges, self._records = [(p, c)], []
            return
        nodes = (
            [self.ids[0]] if self.what == "node" else [int(i) for i in target.tracklet(self.ids[0])]
        )
        node_set = set(nodes)
        edges: list[tuple[int, int]] = []
        for n in nodes:
            par = target.parent(n)
            if par is not None:
                edges.append((par, n))
            edges.extend((n, c) for c in target.children(n) if c not in node_set)
        self._edge_props = [target.remove_edge(p, c) or {} for p, c in edges]
        self._records = [target.remove_node(n) for n in nodes]
        self._edges = edges

    def revert(self, target: TrackGraph) -> None:
        target = _graph(target)
        for rec in self._records:
            target.add_record(rec)
        for (p, c), props in zip(self._edges, self._edge_props, strict=True):
            target.add_edge(p, c, props=props)

    def to_json(self) -> dict[str, Any]:
        return {"what": self.what, "ids": self.ids}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Delete:
        return cls(data["what"], data["ids"])

    @property
    def description(self) -> str:
        return f"delete {self.what} {self.ids}"


class Swap(Command):
    """Exchange what follows two nodes: the two-cells-crossing fix.

    After the edit, ``node_a`` continues with ``node_b``'s former children and
    vice versa (each side may be empty: then that tail moves over). Build with
    :meth:`after` to name two tracks and a time point instead.
    """

    kind = "swap"

    def __init__(self, node_a: int, node_b: int) -> None:
        self.node_a = int(node_a)
        self.node_b = int(node_b)
        self._old: list[tuple[int, int, dict[str, Any]]] = []

    @classmethod
    def after(cls, graph: TrackGraph, track_a: int, track_b: int, t: int) -> Swap:
        """Swap the tracks holding ``track_a`` and ``track_b`` after time point ``t``:
        picks in each tracklet the last node at or before ``t``."""

        def last_at_or_before(node: int) -> int:
            ids = graph.tracklet(node)
            times = np.asarray([graph.time(int(i)) for i in ids])
            k = np.flatnonzero(times <= t)
            if k.size == 0:
                raise InvalidEditError(f"the track of node {node} starts after t={t}")
            return int(ids[k[-1]])

        return cls(last_at_or_before(track_a), last_at_or_before(track_b))

    def apply(self, target: TrackGraph) -> None:
        target = _graph(target)
        a, b = self.node_a, self.node_b
        _require(target, a, b)
        if a == b:
            raise InvalidEditError("Swap needs two different nodes")
        ca, cb = target.children(a), target.children(b)
        if not ca and not cb:
            raise InvalidEditError(f"nodes {a} and {b} both end their tracks; nothing to swap")
        ta, tb = target.time(a), target.time(b)
        for c in cb:
            if target.time(c) <= ta:
                raise InvalidEditError(
                    f"swap would link {a} (t={ta}) to {c} (t={target.time(c)}): not forward in time"
                )
        for c in ca:
            if target.time(c) <= tb:
                raise InvalidEditError(
                    f"swap would link {b} (t={tb}) to {c} (t={target.time(c)}): not forward in time"
                )
        self._old = self._swap(target, a, b, ca, cb)

    @staticmethod
    def _swap(
        target: TrackGraph, a: int, b: int, ca: tuple[int, ...], cb: tuple[int, ...]
    ) -> list[tuple[int, int, dict[str, Any]]]:
        """Relink; returns the removed edges with their features (the new links have none)."""
        old = [(a, c, target.remove_edge(a, c) or {}) for c in ca]
        old += [(b, c, target.remove_edge(b, c) or {}) for c in cb]
        for c in cb:
            target.add_edge(a, c)
        for c in ca:
            target.add_edge(b, c)
        return old

    def revert(self, target: TrackGraph) -> None:
        target = _graph(target)
        a, b = self.node_a, self.node_b
        ca, cb = target.children(a), target.children(b)
        for c in ca:
            target.remove_edge(a, c)
        for c in cb:
            target.remove_edge(b, c)
        # Same child order as before the swap: the old edges in their recorded order.
        for p, c, props in self._old:
            target.add_edge(p, c, props=props)

    def to_json(self) -> dict[str, Any]:
        return {"a": self.node_a, "b": self.node_b}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Swap:
        return cls(int(data["a"]), int(data["b"]))

    @property
    def description(self) -> str:
        return f"swap after {self.node_a} / {self.node_b}"


class MarkReviewed(Command):
    """Set the proofreading status of nodes, or of their whole tracklets.

    Parameters
    ----------
    node_ids : int or sequence of int
    reviewed : bool, default: True
    whole_track : bool, default: False
        Apply to every node of each given node's tracklet.
    """

    kind = "mark_reviewed"

    def __init__(
        self, node_ids: int | Sequence[int], reviewed: bool = True, whole_track: bool = False
    ) -> None:
        ids = [node_ids] if isinstance(node_ids, (int, np.integer)) else list(node_ids)
        self.node_ids = [int(i) for i in ids]
        self.reviewed = bool(reviewed)
        self.whole_track = bool(whole_track)
        self._targets: list[int] = []
        self._old: list[bool] = []

    def apply(self, target: TrackGraph) -> None:
        target = _graph(target)
        _require(target, *self.node_ids)
        if self.whole_track:
            seen: dict[int, None] = {}
            for n in self.node_ids:
                for i in target.tracklet(n):
                    seen[int(i)] = None
            ids = list(seen)
        else:
            ids = list(dict.fromkeys(self.node_ids))
        old = target.set_reviewed(ids, self.reviewed)
        self._targets, self._old = ids, [bool(v) for v in old]

    def revert(self, target: TrackGraph) -> None:
        target = _graph(target)
        target.set_reviewed(self._targets, self._old)

    def to_json(self) -> dict[str, Any]:
        return {"ids": self.node_ids, "reviewed": self.reviewed, "whole_track": self.whole_track}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MarkReviewed:
        return cls(data["ids"], bool(data["reviewed"]), bool(data.get("whole_track", False)))

    @property
    def description(self) -> str:
        state = "reviewed" if self.reviewed else "unreviewed"
        scope = "tracks of" if self.whole_track else "nodes"
        return f"mark {scope} {self.node_ids} {state}"
