"""``TrackGraph``: a columnar cell-lineage graph built for interactive editing.

Storage
-------
Every node is a *row* in a set of NumPy columns (``id``, ``t``, ``z``, ``y``, ``x``,
``label``, ``reviewed`` and free feature columns). Rows are appended with an
amortised-doubling capacity and removed rows are tombstoned (``alive`` False), so
adding or removing a node never copies the columns. Topology is stored per row as
``parent`` (row or -1) and two child slots ``child0``/``child1`` (row or -1): this
makes the lineage rules structural (a node cannot hold two parents or three
children) and makes every edge edit O(1). A ``dict`` maps node id -> row.
Because a node has one parent at most, the edge ``parent -> child`` is identified
by its child: edge feature columns (e.g. a tracker's link score, as GEFF edge
properties) are stored per *child row*, with their own missing masks.

Derived data (tracklet ids, lineage ids, per-time-point row lists, per-time-point
``cKDTree``) is computed lazily, vectorised over all rows, and cached: edits mark
only what they touch stale (edge edits drop the tracklet cache; node edits update
the row list of one time point and drop that time point's tree), so an edit stays
O(1) or O(track length) even at millions of nodes.

Edit through :mod:`analysis.edits` commands, never by calling the raw mutators
(``add_node``, ``remove_node``, ``add_edge``, ``remove_edge``, ``set_reviewed``)
from tools: only commands are undoable and journaled.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from psygnal import Signal, SignalGroup
from scipy.spatial import cKDTree

from analysis.errors import FormatError, InvalidEditError, ParameterError

__all__ = ["NodeRecord", "TrackGraph"]

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_NONE = -1


@dataclass
class NodeRecord:
    """Everything stored for one node: what a delete must keep to undo itself."""

    node_id: int
    t: int
    zyx: tuple[float, float, float]
    label: int = 0
    reviewed: bool = False
    features: dict[str, Any] = field(default_factory=dict)
    """Feature values by name; a name that is absent is missing for this node."""

    def to_json(self) -> dict[str, Any]:
        feats = {
            k: (v.item() if isinstance(v, np.generic) else v) for k, v in self.features.items()
        }
        return {
            "id": self.node_id,
            "t": self.t,
            "zyx": list(self.zyx),
            "label": self.label,
            "reviewed": self.reviewed,
            "features": feats,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NodeRecord:
        z, y, x = (float(v) for v in data["zyx"])
        return cls(
            node_id=int(data["id"]),
            t=int(data["t"]),
            zyx=(z, y, x),
            label=int(data.get("label", 0)),
            reviewed=bool(data.get("reviewed", False)),
            features=dict(data.get("features", {})),
        )


def _as_time(t: npt.ArrayLike, what: str) -> IntArray:
    """Time points are frame indices; accept integral floats (GEFF writers often use f8)."""
    arr = np.asarray(t)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise FormatError(f"{what}: time values must be whole frame numbers")
    elif arr.dtype.kind not in "iub":
        raise FormatError(f"{what}: time values must be numbers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


class TrackGraphEvents(SignalGroup):
    """Change events of a :class:`TrackGraph`, one per raw mutation, saying what changed.

    Every edit command, its undo and redo, journal replays and collaborators' ops go
    through the raw mutators, so a listener sees them all. A mutation that emits no
    event (``compact``) still bumps ``version``: a listener that counts events
    against ``version`` knows when to rebuild instead of patching.

    Handlers only record or mark dirty (they run in the middle of a command).
    """

    nodes_added = Signal(tuple)
    """``(node_id, ...)`` added."""
    nodes_removed = Signal(tuple)
    """``(node_id, ...)`` removed."""
    edges_added = Signal(tuple)
    """``((parent, child), ...)`` linked."""
    edges_removed = Signal(tuple)
    """``((parent, child), ...)`` unlinked."""
    reviewed = Signal(tuple)
    """``(node_id, ...)`` whose reviewed flag was set."""


class TrackGraph:
    """A directed forest of cell detections: edges go parent -> child forward in time.

    Nodes have an int64 ``id`` that is never reused, a time point ``t`` (frame
    index), a position ``(z, y, x)`` in µm, an optional ``label`` (id of the object in
    a label image, 0 = none), a proofreading flag ``reviewed`` and free feature
    columns (with a per-node missing mask, like GEFF's ``{values, missing}``).
    Edges can carry feature columns too (:meth:`edge_feature`, e.g. a link score):
    an edit that removes an edge hands its values back for the undo, and a new
    edge has them missing unless ``add_edge(..., props=...)`` gives them.

    A node has at most one parent and at most two children (a division); merges
    are unrepresentable. ``validate()`` checks the remaining rule (strictly
    increasing ``t`` along edges) and internal consistency.

    Build with :meth:`from_arrays` (vectorised) or :func:`analysis.io.read_geff`;
    edit through :mod:`analysis.edits` commands.

    Events
    ------
    events : TrackGraphEvents
        ``nodes_added``, ``nodes_removed``, ``edges_added``, ``edges_removed``,
        ``reviewed``: emitted by the raw mutators with the ids they touched.
    """

    def __init__(self, feature_dtypes: Mapping[str, npt.DTypeLike] | None = None) -> None:
        self._n = 0  # rows used (alive + tombstoned)
        self._cap = 0
        self._ids: IntArray = np.empty(0, np.int64)
        self._t: IntArray = np.empty(0, np.int64)
        self._zyx: FloatArray = np.empty((0, 3), np.float64)
        self._label: IntArray = np.empty(0, np.int64)
        self._reviewed: BoolArray = np.empty(0, np.bool_)
        self._alive: BoolArray = np.empty(0, np.bool_)
        self._parent: IntArray = np.empty(0, np.int64)
        self._child: IntArray = np.empty((0, 2), np.int64)
        self._feat: dict[str, npt.NDArray[Any]] = {}
        self._feat_missing: dict[str, BoolArray] = {}
        for name, dt in (feature_dtypes or {}).items():
            self._feat[name] = np.empty(0, dtype=dt)
            self._feat_missing[name] = np.empty(0, np.bool_)
        # Edge features, indexed by the child row of the edge (one parent per node).
        self._efeat: dict[str, npt.NDArray[Any]] = {}
        self._efeat_missing: dict[str, BoolArray] = {}
        self._row: dict[int, int] = {}
        self._n_alive = 0
        self._n_edges = 0
        self._next_id = 0
        self.version = 0
        """Incremented on every mutation; views compare it to know they are stale."""
        self.attrs: dict[str, Any] = {}
        """Free metadata, e.g. ``frame_interval_s`` (seconds between time points)."""
        self._tracklet_cache: tuple[int, IntArray, IntArray] | None = None
        self._by_t: dict[int, IntArray] | None = None
        self._trees: dict[int, cKDTree] = {}
        self.events = TrackGraphEvents()

    # ------------------------------------------------------------------ building
    @classmethod
    def from_arrays(
        cls,
        node_ids: npt.ArrayLike,
        t: npt.ArrayLike,
        zyx: npt.ArrayLike,
        edges: npt.ArrayLike | None = None,
        *,
        label: npt.ArrayLike | None = None,
        reviewed: npt.ArrayLike | None = None,
        features: Mapping[str, npt.ArrayLike] | None = None,
        feature_missing: Mapping[str, npt.ArrayLike | None] | None = None,
        next_id: int | None = None,
        edge_features: Mapping[str, npt.ArrayLike] | None = None,
        edge_feature_missing: Mapping[str, npt.ArrayLike | None] | None = None,
    ) -> TrackGraph:
        """Build a graph from columns in one vectorised pass.

        Parameters
        ----------
        node_ids : (N,) int array
            Unique, non-negative.
        t : (N,) int array (or whole-number floats)
        zyx : (N, 3) float array, µm
        edges : (E, 2) int array of node ids, parent -> child, default: none
        label : (N,) int array, default: zeros (no label)
        reviewed : (N,) bool array, default: all False
        features : dict name -> (N,) array, default: none
        feature_missing : dict name -> (N,) bool array or None, default: none missing
        next_id : int, default: ``max(node_ids) + 1``
            The first id :meth:`add_node` will hand out.
        edge_features : dict name -> (E,) array, default: none
            Per-edge values aligned with ``edges`` (e.g. GEFF edge properties).
        edge_feature_missing : dict name -> (E,) bool array or None, default: none missing

        Raises
        ------
        FormatError
            Duplicate or negative ids, edges to unknown nodes, a node with two
            parents or more than two children, edges that do not go forward in time.
        """
        ids = np.asarray(node_ids)
        if ids.ndim != 1:
            raise FormatError(f"node ids must be 1D, got shape {ids.shape}")
        if ids.dtype.kind == "f":
            if np.any(ids != np.round(ids)):
                raise FormatError("node ids must be whole numbers")
        elif ids.dtype.kind not in "iu" and ids.size:
            raise FormatError(f"node ids must be integers, got dtype {ids.dtype}")
        ids = ids.astype(np.int64)
        n = ids.size
        tt = _as_time(t, "t")
        pos = np.asarray(zyx, dtype=np.float64).reshape(-1, 3) if n else np.empty((0, 3))
        if tt.shape != (n,) or pos.shape != (n, 3):
            raise FormatError(
                f"column lengths disagree: {n} ids, t {tt.shape}, zyx {pos.shape} (need (N, 3))"
            )
        if n and ids.min() < 0:
            raise FormatError(f"node ids must be non-negative, found {int(ids.min())}")
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        dup = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
        if dup.size:
            raise FormatError(f"node id {int(sorted_ids[dup[0]])} appears more than once")

        g = cls()
        g._grow(max(n, 16))
        g._n = n
        g._ids[:n] = ids
        g._t[:n] = tt
        g._zyx[:n] = pos
        g._label[:n] = 0 if label is None else np.asarray(label, dtype=np.int64)
        g._reviewed[:n] = False if reviewed is None else np.asarray(reviewed, dtype=bool)
        g._alive[:n] = True
        g._parent[:n] = _NONE
        g._child[:n] = _NONE
        for name, values in (features or {}).items():
            arr = np.asarray(values)
            if arr.shape[:1] != (n,) or arr.ndim != 1:
                raise FormatError(f"feature {name!r} has shape {arr.shape}, expected ({n},)")
            col = np.empty(g._cap, dtype=arr.dtype)
            col[:n] = arr
            g._feat[name] = col
            miss = np.zeros(g._cap, dtype=bool)
            m = (feature_missing or {}).get(name)
            if m is not None:
                miss[:n] = np.asarray(m, dtype=bool)
            g._feat_missing[name] = miss
        g._row = dict(zip(ids.tolist(), range(n), strict=True))
        g._n_alive = n
        g._next_id = int(ids.max()) + 1 if n else 0
        if next_id is not None:
            g._next_id = max(g._next_id, int(next_id))

        e = np.empty((0, 2), np.int64) if edges is None else np.asarray(edges)
        if e.size == 0:
            e = np.empty((0, 2), np.int64)
        if e.ndim != 2 or e.shape[1] != 2:
            raise FormatError(f"edges must have shape (E, 2), got {e.shape}")
        if e.dtype.kind == "f" and np.any(e != np.round(e)):
            raise FormatError("edge node ids must be whole numbers")
        e = e.astype(np.int64)
        if e.shape[0]:
            # Map ids -> rows with a binary search (vectorised; no dict lookups per edge).
            idx = np.searchsorted(sorted_ids, e)
            idx = np.minimum(idx, n - 1)
            found = sorted_ids[idx] == e
            if not found.all():
                bad = e[~found][0]
                raise FormatError(f"an edge refers to node {int(bad)}, which does not exist")
            rows = order[idx]
            prow, crow = rows[:, 0], rows[:, 1]
            if np.any(prow == crow):
                raise FormatError(f"node {int(e[prow == crow][0, 0])} has an edge to itself")
            cs = np.sort(crow)
            two = np.flatnonzero(cs[1:] == cs[:-1])
            if two.size:
                raise FormatError(f"node {int(ids[cs[two[0]]])} has more than one parent")
            back = tt[crow] <= tt[prow]
            if back.any():
                k = int(np.flatnonzero(back)[0])
                raise FormatError(
                    f"edge {int(e[k, 0])} -> {int(e[k, 1])} does not go forward in time "
                    f"(t {int(tt[prow[k]])} -> {int(tt[crow[k]])})"
                )
            g._parent[crow] = prow
            o = np.argsort(prow, kind="stable")
            ps, cs2 = prow[o], crow[o]
            first = np.ones(ps.size, dtype=bool)
            first[1:] = ps[1:] != ps[:-1]
            start = np.flatnonzero(first)
            rank = np.arange(ps.size) - np.repeat(start, np.diff(np.append(start, ps.size)))
            if rank.max(initial=0) > 1:
                raise FormatError(
                    f"node {int(ids[ps[np.flatnonzero(rank > 1)[0]]])} has more than two children"
                )
            g._child[ps, rank] = cs2
            g._n_edges = int(e.shape[0])
        n_e = e.shape[0]
        for name, values in (edge_features or {}).items():
            arr = np.asarray(values)
            if arr.ndim != 1 or arr.shape[0] != n_e:
                raise FormatError(f"edge feature {name!r} has shape {arr.shape}, expected ({n_e},)")
            col = np.zeros(g._cap, dtype=arr.dtype)
            miss = np.ones(g._cap, dtype=bool)
            if n_e:
                col[crow] = arr
                m = (edge_feature_missing or {}).get(name)
                miss[crow] = False if m is None else np.asarray(m, dtype=bool)
            g._efeat[name] = col
            g._efeat_missing[name] = miss
        return g

    def copy(self) -> TrackGraph:
        """A deep copy (caches are rebuilt lazily)."""
        g = TrackGraph()
        g._n, g._cap = self._n, self._cap
        g._ids = self._ids.copy()
        g._t = self._t.copy()
        g._zyx = self._zyx.copy()
        g._label = self._label.copy()
        g._reviewed = self._reviewed.copy()
        g._alive = self._alive.copy()
        g._parent = self._parent.copy()
        g._child = self._child.copy()
        g._feat = {k: v.copy() for k, v in self._feat.items()}
        g._feat_missing = {k: v.copy() for k, v in self._feat_missing.items()}
        g._efeat = {k: v.copy() for k, v in self._efeat.items()}
        g._efeat_missing = {k: v.copy() for k, v in self._efeat_missing.items()}
        g._row = dict(self._row)
        g._n_alive, g._n_edges, g._next_id = self._n_alive, self._n_edges, self._next_id
        g.attrs = dict(self.attrs)
        return g

    def compact(self) -> None:
        """Drop tombstoned rows (O(N); rows change, ids do not). Not needed for correctness."""
        keep = np.flatnonzero(self._alive[: self._n])
        new_row = np.full(self._n, _NONE, dtype=np.int64)
        new_row[keep] = np.arange(keep.size)

        def remap(a: IntArray) -> IntArray:
            out = np.full(a.shape, _NONE, dtype=np.int64)
            ok = a >= 0
            out[ok] = new_row[a[ok]]
            return out

        n = keep.size
        parent = remap(self._parent[keep])
        child = remap(self._child[keep])
        ids, t, zyx = self._ids[keep], self._t[keep], self._zyx[keep]
        label, rev = self._label[keep], self._reviewed[keep]
        feats = {k: v[keep] for k, v in self._feat.items()}
        miss = {k: v[keep] for k, v in self._feat_missing.items()}
        efeats = {k: v[keep] for k, v in self._efeat.items()}
        emiss = {k: v[keep] for k, v in self._efeat_missing.items()}
        self._cap = 0
        self._n = 0
        self._ids = np.empty(0, np.int64)
        self._t = np.empty(0, np.int64)
        self._zyx = np.empty((0, 3), np.float64)
        self._label = np.empty(0, np.int64)
        self._reviewed = np.empty(0, np.bool_)
        self._alive = np.empty(0, np.bool_)
        self._parent = np.empty(0, np.int64)
        self._child = np.empty((0, 2), np.int64)
        self._feat = {k: np.empty(0, v.dtype) for k, v in feats.items()}
        self._feat_missing = {k: np.empty(0, np.bool_) for k in feats}
        self._efeat = {k: np.empty(0, v.dtype) for k, v in efeats.items()}
        self._efeat_missing = {k: np.empty(0, np.bool_) for k in efeats}
        self._grow(max(n, 16))
        self._n = n
        self._ids[:n], self._t[:n], self._zyx[:n] = ids, t, zyx
        self._label[:n], self._reviewed[:n] = label, rev
        self._alive[:n] = True
        self._parent[:n], self._child[:n] = parent, child
        for k in feats:
            self._feat[k][:n] = feats[k]
            self._feat_missing[k][:n] = miss[k]
        for k in efeats:
            self._efeat[k][:n] = efeats[k]
            self._efeat_missing[k][:n] = emiss[k]
        self._row = dict(zip(ids.tolist(), range(n), strict=True))
        self._invalidate_all()

    def _grow(self, need: int) -> None:
        if need <= self._cap:
            return
        cap = max(need, 2 * self._cap, 16)

        def ext(a: npt.NDArray[Any], fill: Any) -> npt.NDArray[Any]:
            out = np.full((cap, *a.shape[1:]), fill, dtype=a.dtype)
            out[: self._n] = a[: self._n]
            return out

        self._ids = ext(self._ids, 0)
        self._t = ext(self._t, 0)
        self._zyx = ext(self._zyx, 0.0)
        self._label = ext(self._label, 0)
        self._reviewed = ext(self._reviewed, False)
        self._alive = ext(self._alive, False)
        self._parent = ext(self._parent, _NONE)
        self._child = ext(self._child, _NONE)
        for k in list(self._feat):
            self._feat[k] = ext(self._feat[k], 0)
            self._feat_missing[k] = ext(self._feat_missing[k], True)
        for k in list(self._efeat):
            self._efeat[k] = ext(self._efeat[k], 0)
            self._efeat_missing[k] = ext(self._efeat_missing[k], True)
        self._cap = cap

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return self._n_alive

    def __contains__(self, node_id: object) -> bool:
        return isinstance(node_id, (int, np.integer)) and int(node_id) in self._row

    def __repr__(self) -> str:
        return f"TrackGraph({self._n_alive} nodes, {self._n_edges} edges)"

    @property
    def n_nodes(self) -> int:
        return self._n_alive

    @property
    def n_edges(self) -> int:
        return self._n_edges

    @property
    def next_id(self) -> int:
        """The id the next new node will get (ids are never reused)."""
        return self._next_id

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self._feat)

    @property
    def edge_feature_names(self) -> tuple[str, ...]:
        """Names of the edge feature columns (e.g. GEFF edge properties)."""
        return tuple(self._efeat)

    def _rowof(self, node_id: int) -> int:
        try:
            return self._row[int(node_id)]
        except KeyError:
            raise InvalidEditError(f"node {node_id} does not exist") from None

    def _alive_rows(self) -> IntArray:
        return np.flatnonzero(self._alive[: self._n]).astype(np.int64)

    # ------------------------------------------------------------------ columns
    @property
    def node_ids(self) -> IntArray:
        """(N,) int64 ids of the live nodes, in storage order (the order of all columns)."""
        return self._ids[self._alive_rows()]

    @property
    def t(self) -> IntArray:
        """(N,) int64 time point of each node, aligned with :attr:`node_ids`."""
        return self._t[self._alive_rows()]

    @property
    def zyx(self) -> FloatArray:
        """(N, 3) float64 position (z, y, x) in µm, aligned with :attr:`node_ids`."""
        return self._zyx[self._alive_rows()]

    @property
    def label(self) -> IntArray:
        """(N,) int64 label id in the segmentation (0 = none), aligned with :attr:`node_ids`."""
        return self._label[self._alive_rows()]

    @property
    def reviewed(self) -> BoolArray:
        """(N,) bool proofreading flag, aligned with :attr:`node_ids`."""
        return self._reviewed[self._alive_rows()]

    def feature(self, name: str) -> tuple[npt.NDArray[Any], BoolArray]:
        """``(values, missing)`` of feature ``name``, aligned with :attr:`node_ids`."""
        if name not in self._feat:
            raise ParameterError(f"no node feature named {name!r} (have {list(self._feat)})")
        rows = self._alive_rows()
        return self._feat[name][rows], self._feat_missing[name][rows]

    def _edge_child_rows(self) -> IntArray:
        """Child row of every edge, in the order of :attr:`edges`."""
        rows = self._alive_rows()
        return rows[self._parent[rows] >= 0]

    @property
    def edges(self) -> IntArray:
        """(E, 2) int64 node ids ``(parent, child)``, in child storage order."""
        crows = self._edge_child_rows()
        return np.stack([self._ids[self._parent[crows]], self._ids[crows]], axis=1).reshape(-1, 2)

    def edge_feature(self, name: str) -> tuple[npt.NDArray[Any], BoolArray]:
        """``(values, missing)`` of edge feature ``name``, each (E,), aligned with :attr:`edges`."""
        if name not in self._efeat:
            raise ParameterError(f"no edge feature named {name!r} (have {list(self._efeat)})")
        crows = self._edge_child_rows()
        return self._efeat[name][crows], self._efeat_missing[name][crows]

    def edge_props(self, parent: int, child: int) -> dict[str, Any]:
        """The edge features of ``parent -> child`` that are not missing, by name."""
        if not self.has_edge(parent, child):
            raise InvalidEditError(f"there is no edge {parent} -> {child}")
        cr = self._row[int(child)]
        return {k: self._efeat[k][cr].item() for k in self._efeat if not self._efeat_missing[k][cr]}

    # ------------------------------------------------------------------ per node
    def time(self, node_id: int) -> int:
        return int(self._t[self._rowof(node_id)])

    def position(self, node_id: int) -> tuple[float, float, float]:
        """(z, y, x) in µm."""
        z, y, x = self._zyx[self._rowof(node_id)]
        return float(z), float(y), float(x)

    def parent(self, node_id: int) -> int | None:
        p = int(self._parent[self._rowof(node_id)])
        return None if p < 0 else int(self._ids[p])

    def children(self, node_id: int) -> tuple[int, ...]:
        c = self._child[self._rowof(node_id)]
        return tuple(int(self._ids[r]) for r in c if r >= 0)

    def set_feature(
        self, name: str, values: npt.ArrayLike, missing: npt.ArrayLike | None = None
    ) -> None:
        """Add or replace the whole node feature column ``name`` (for builders and
        readers; not undoable, so never call it from tools).

        Parameters
        ----------
        name : str
        values : (N,) array aligned with :attr:`node_ids`
        missing : (N,) bool array, default: none missing
        """
        arr = np.asarray(values)
        rows = self._alive_rows()
        if arr.shape != (rows.size,):
            raise ParameterError(f"feature {name!r} has shape {arr.shape}, expected ({rows.size},)")
        col = np.zeros(self._cap, dtype=arr.dtype)
        miss = np.ones(self._cap, dtype=bool)
        col[rows] = arr
        miss[rows] = False if missing is None else np.asarray(missing, dtype=bool)
        self._feat[name] = col
        self._feat_missing[name] = miss
        self.version += 1

    def record(self, node_id: int) -> NodeRecord:
        """Everything stored for ``node_id`` (used by delete commands to undo)."""
        r = self._rowof(node_id)
        feats = {k: self._feat[k][r].item() for k in self._feat if not self._feat_missing[k][r]}
        z, y, x = (float(v) for v in self._zyx[r])
        return NodeRecord(
            node_id=int(node_id),
            t=int(self._t[r]),
            zyx=(z, y, x),
            label=int(self._label[r]),
            reviewed=bool(self._reviewed[r]),
            features=feats,
        )

    def is_reviewed(self, node_id: int) -> bool:
        return bool(self._reviewed[self._rowof(node_id)])

    # ------------------------------------------------------------------ tracklets
    def tracklet(self, node_id: int) -> IntArray:
        """Ids of the tracklet holding ``node_id``, in time order. O(tracklet length).

        A tracklet is a maximal division-free chain: it starts at a node with no
        parent or whose parent divides, and ends at a node without exactly one child.
        """
        r = self._rowof(node_id)
        while True:
            p = int(self._parent[r])
            if p < 0 or self._n_children(p) != 1:
                break
            r = p
        rows = [r]
        while self._n_children(r) == 1:
            r = int(self._child[r][self._child[r] >= 0][0])
            rows.append(r)
        return self._ids[np.asarray(rows, dtype=np.int64)]

    def _n_children(self, row: int) -> int:
        c = self._child[row]
        return int(c[0] >= 0) + int(c[1] >= 0)

    def lineage(self, node_id: int) -> IntArray:
        """Ids of the whole lineage tree (root and all descendants) holding ``node_id``."""
        r = self._rowof(node_id)
        while self._parent[r] >= 0:
            r = int(self._parent[r])
        out = []
        stack = [r]
        while stack:
            r = stack.pop()
            out.append(r)
            stack.extend(int(c) for c in self._child[r] if c >= 0)
        rows = np.asarray(out, dtype=np.int64)
        rows = rows[np.argsort(self._t[rows], kind="stable")]
        return self._ids[rows]

    def _derived(self) -> tuple[IntArray, IntArray]:
        """(tracklet root row, lineage root row) per row; vectorised pointer jumping."""
        c = self._tracklet_cache
        if c is not None and c[0] == self.version:
            return c[1], c[2]
        n = self._n
        rows = np.arange(n, dtype=np.int64)
        parent = self._parent[:n]
        nchild = (self._child[:n] >= 0).sum(axis=1)
        has_parent = parent >= 0
        # A node continues its parent's tracklet iff the parent has exactly one child.
        cont = has_parent.copy()
        cont[has_parent] = nchild[parent[has_parent]] == 1
        troot = np.where(cont, parent, rows)
        lroot = np.where(has_parent, parent, rows)
        # Pointer doubling: O(N log L) for chains of length L, all in NumPy.
        for ptr in (troot, lroot):
            while True:
                nxt = ptr[ptr]
                if np.array_equal(nxt, ptr):
                    break
                ptr[:] = nxt
        self._tracklet_cache = (self.version, troot, lroot)
        return troot, lroot

    def tracklet_ids(self) -> IntArray:
        """(N,) the id of each node's tracklet (= id of its first node), aligned with node_ids."""
        troot, _ = self._derived()
        return self._ids[troot[self._alive_rows()]]

    def lineage_ids(self) -> IntArray:
        """(N,) the id of each node's lineage root, aligned with :attr:`node_ids`."""
        _, lroot = self._derived()
        return self._ids[lroot[self._alive_rows()]]

    # ------------------------------------------------------------------ time / space
    def _time_index(self) -> dict[int, IntArray]:
        if self._by_t is None:
            rows = self._alive_rows()
            tt = self._t[rows]
            o = np.argsort(tt, kind="stable")
            rows, tt = rows[o], tt[o]
            cuts = np.flatnonzero(np.diff(tt)) + 1
            self._by_t = (
                {
                    int(ts[0]): rs
                    for ts, rs in zip(np.split(tt, cuts), np.split(rows, cuts), strict=True)
                }
                if rows.size
                else {}
            )
        return self._by_t

    @property
    def time_points(self) -> IntArray:
        """Sorted time points that hold at least one node."""
        return np.asarray(sorted(k for k, v in self._time_index().items() if v.size), np.int64)

    def nodes_at(self, t: int) -> IntArray:
        """Ids of the nodes at time point ``t``."""
        return self._ids[self._time_index().get(int(t), np.empty(0, np.int64))]

    def nearest(self, t: int, zyx: Sequence[float], max_distance_um: float = np.inf) -> int | None:
        """The node at time ``t`` nearest to the point ``zyx`` (µm), or None.

        Uses one ``scipy.spatial.cKDTree`` per time point, built on first use and
        dropped only when a node at that time point is added or removed.
        """
        rows = self._time_index().get(int(t))
        if rows is None or rows.size == 0:
            return None
        tree = self._trees.get(int(t))
        if tree is None:
            tree = cKDTree(self._zyx[rows])
            self._trees[int(t)] = tree
        d, i = tree.query(np.asarray(zyx, dtype=np.float64), distance_upper_bound=max_distance_um)
        if not np.isfinite(d):
            return None
        return int(self._ids[rows[int(i)]])

    # ------------------------------------------------------------------ raw mutators
    # Used by commands (which validate first and record the diff) and by builders.
    def new_id(self) -> int:
        """Reserve and return a fresh node id."""
        nid = self._next_id
        self._next_id += 1
        return nid

    def restore_next_id(self, next_id: int) -> None:
        """Set the id counter back to ``next_id`` (a command's revert: undo restores the
        counter too, so replicas and restarts agree); never below an id in use."""
        rows = self._alive_rows()
        floor = int(self._ids[rows].max()) + 1 if rows.size else 0
        self._next_id = max(int(next_id), floor)

    def add_node(
        self,
        t: int,
        zyx: Sequence[float] | npt.NDArray[np.float64],
        *,
        node_id: int | None = None,
        label: int = 0,
        reviewed: bool = False,
        features: Mapping[str, Any] | None = None,
    ) -> int:
        """Add an unconnected node and return its id (raw mutator; prefer commands)."""
        if node_id is None:
            node_id = self.new_id()
        node_id = int(node_id)
        if node_id in self._row:
            raise InvalidEditError(f"node {node_id} already exists")
        if node_id < 0:
            raise InvalidEditError(f"node ids must be non-negative, got {node_id}")
        pos = np.asarray(zyx, dtype=np.float64)
        if pos.shape != (3,) or not np.all(np.isfinite(pos)):
            raise InvalidEditError(f"a node position must be 3 finite numbers (z, y, x), got {zyx}")
        feats = dict(features or {})
        unknown = set(feats) - set(self._feat)
        for name in unknown:
            # A new feature column: missing for every existing row.
            dt = np.asarray(feats[name]).dtype
            self._feat[name] = np.zeros(self._cap, dtype=dt)
            self._feat_missing[name] = np.ones(self._cap, dtype=bool)
        self._grow(self._n + 1)
        r = self._n
        self._n += 1
        self._ids[r] = node_id
        self._t[r] = int(t)
        self._zyx[r] = pos
        self._label[r] = int(label)
        self._reviewed[r] = bool(reviewed)
        self._alive[r] = True
        self._parent[r] = _NONE
        self._child[r] = _NONE
        for name in self._feat:
            if name in feats:
                self._feat[name][r] = feats[name]
                self._feat_missing[name][r] = False
            else:
                self._feat_missing[name][r] = True
        for name in self._efeat:
            self._efeat_missing[name][r] = True
        self._row[node_id] = r
        self._n_alive += 1
        self._next_id = max(self._next_id, node_id + 1)
        self._touch_time(int(t), add=r)
        self.events.nodes_added.emit((node_id,))
        return node_id

    def add_record(self, rec: NodeRecord) -> int:
        """Re-add a node from its :class:`NodeRecord` (same id)."""
        return self.add_node(
            rec.t,
            rec.zyx,
            node_id=rec.node_id,
            label=rec.label,
            reviewed=rec.reviewed,
            features=rec.features,
        )

    def remove_node(self, node_id: int) -> NodeRecord:
        """Remove an unconnected node; returns its record. Its id is never handed out again."""
        r = self._rowof(node_id)
        if self._parent[r] >= 0 or np.any(self._child[r] >= 0):
            raise InvalidEditError(f"node {node_id} still has edges; remove them first")
        rec = self.record(node_id)
        self._alive[r] = False
        del self._row[int(node_id)]
        self._n_alive -= 1
        self._touch_time(int(self._t[r]), remove=r)
        self.events.nodes_removed.emit((int(node_id),))
        return rec

    def check_edge(self, parent: int, child: int) -> None:
        """Raise :class:`InvalidEditError` if ``parent -> child`` cannot be added now."""
        pr, cr = self._rowof(parent), self._rowof(child)
        if pr == cr:
            raise InvalidEditError(f"node {parent} cannot be linked to itself")
        if self._t[cr] <= self._t[pr]:
            raise InvalidEditError(
                f"edge {parent} -> {child} would go backwards in time "
                f"(t {int(self._t[pr])} -> {int(self._t[cr])})"
            )
        if self._parent[cr] >= 0:
            raise InvalidEditError(
                f"node {child} already has parent {int(self._ids[self._parent[cr]])}; "
                "a second parent would be a merge"
            )
        if self._n_children(pr) >= 2:
            raise InvalidEditError(f"node {parent} already has two children")

    def add_edge(self, parent: int, child: int, *, props: Mapping[str, Any] | None = None) -> None:
        """Link ``parent -> child`` (raw mutator; validates first).

        ``props`` gives edge feature values by name (a new name adds a column,
        missing on every other edge); features not named are missing on this edge.
        """
        self.check_edge(parent, child)
        pr, cr = self._row[int(parent)], self._row[int(child)]
        values = dict(props or {})
        for name in set(values) - set(self._efeat):
            self._efeat[name] = np.zeros(self._cap, dtype=np.asarray(values[name]).dtype)
            self._efeat_missing[name] = np.ones(self._cap, dtype=bool)
        for name in self._efeat:
            if name in values:
                self._efeat[name][cr] = values[name]
                self._efeat_missing[name][cr] = False
            else:
                self._efeat_missing[name][cr] = True
        slot = 0 if self._child[pr, 0] < 0 else 1
        self._child[pr, slot] = cr
        self._parent[cr] = pr
        self._n_edges += 1
        self._edges_changed()
        self.events.edges_added.emit(((int(parent), int(child)),))

    def has_edge(self, parent: int, child: int) -> bool:
        if parent not in self or child not in self:
            return False
        return int(self._parent[self._row[int(child)]]) == self._row[int(parent)]

    def remove_edge(self, parent: int, child: int) -> dict[str, Any]:
        """Unlink ``parent -> child`` (raw mutator); returns the edge's features
        (:meth:`edge_props`), which ``add_edge(..., props=...)`` restores."""
        props = self.edge_props(parent, child)
        pr, cr = self._row[int(parent)], self._row[int(child)]
        for name in self._efeat:
            self._efeat_missing[name][cr] = True
        slots = self._child[pr]
        k = 0 if slots[0] == cr else 1
        slots[k] = _NONE
        # Keep child slots packed (slot 0 first) so child order is deterministic.
        if k == 0 and slots[1] >= 0:
            slots[0], slots[1] = slots[1], _NONE
        self._parent[cr] = _NONE
        self._n_edges -= 1
        self._edges_changed()
        self.events.edges_removed.emit(((int(parent), int(child)),))
        return props

    def set_reviewed(self, node_ids: Iterable[int], value: bool | Sequence[bool]) -> BoolArray:
        """Set the reviewed flag; returns the old values (raw mutator)."""
        ids = tuple(int(i) for i in node_ids)
        rows = np.asarray([self._rowof(i) for i in ids], dtype=np.int64)
        old = self._reviewed[rows].copy()
        self._reviewed[rows] = np.asarray(value, dtype=bool)
        self.version += 1
        self.events.reviewed.emit(ids)
        return old

    def _edges_changed(self) -> None:
        self.version += 1  # the tracklet cache is keyed on version

    def _touch_time(self, t: int, add: int | None = None, remove: int | None = None) -> None:
        self.version += 1
        self._trees.pop(t, None)
        if self._by_t is None:
            return
        rows = self._by_t.get(t, np.empty(0, np.int64))
        if add is not None:
            rows = np.append(rows, np.int64(add))
        if remove is not None:
            rows = rows[rows != remove]
        self._by_t[t] = rows

    def _invalidate_all(self) -> None:
        self.version += 1
        self._by_t = None
        self._trees.clear()
        self._tracklet_cache = None

    # ------------------------------------------------------------------ checks
    def problems(self) -> list[str]:
        """Every rule the graph breaks (empty when valid); vectorised, O(N)."""
        out: list[str] = []
        n = self._n
        alive = self._alive[:n]
        rows = np.flatnonzero(alive)
        p = self._parent[:n][rows]
        has = p >= 0
        if np.any(~alive[p[has]]):
            out.append("an edge points from a removed node")
        back = self._t[p[has]] >= self._t[rows[has]]
        if back.any():
            k = rows[has][np.flatnonzero(back)[0]]
            out.append(
                f"edge {int(self._ids[self._parent[k]])} -> {int(self._ids[k])} "
                "does not go forward in time"
            )
        ch = self._child[:n][rows]
        for slot in (0, 1):
            c = ch[:, slot]
            ok = c >= 0
            if np.any(self._parent[c[ok]] != rows[ok]):
                out.append("child and parent links disagree")
                break
        if int(has.sum()) != self._n_edges:
            out.append(f"edge count {self._n_edges} != {int(has.sum())} parent links")
        if len(self._row) != rows.size:
            out.append("id index and live rows disagree")
        # One parent and at most two children hold by construction (one parent slot,
        # two child slots); the checks above make sure the slots are consistent.
        return out

    def validate(self) -> None:
        """Raise :class:`InvalidEditError` naming the first broken rule, if any.

        Rules: one parent at most, at most two children, strictly increasing ``t``
        along every edge (and internal consistency of the stored links).
        """
        probs = self.problems()
        if probs:
            raise InvalidEditError(f"invalid track graph: {probs[0]}")

    # ------------------------------------------------------------------ comparison
    def snapshot(self) -> dict[str, Any]:
        """A canonical, order-independent view (sorted by id) for exact comparison."""
        rows = self._alive_rows()
        o = np.argsort(self._ids[rows], kind="stable")
        rows = rows[o]
        e = self.edges
        e = e[np.lexsort((e[:, 1], e[:, 0]))] if e.size else e
        snap: dict[str, Any] = {
            "id": self._ids[rows],
            "t": self._t[rows],
            "zyx": self._zyx[rows],
            "label": self._label[rows],
            "reviewed": self._reviewed[rows],
            "edges": e,
        }
        for k in self._feat:
            m = self._feat_missing[k][rows]
            v = self._feat[k][rows].copy()
            v[m] = 0
            snap[f"feature:{k}"] = v
            snap[f"missing:{k}"] = m
        if self._efeat:
            crows = self._edge_child_rows()
            key = self._ids[self._parent[crows]], self._ids[crows]
            crows = crows[np.lexsort((key[1], key[0]))]  # the order of snap["edges"]
            for k in self._efeat:
                em = self._efeat_missing[k][crows]
                ev = self._efeat[k][crows].copy()
                ev[em] = 0
                snap[f"edge_feature:{k}"] = ev
                snap[f"edge_missing:{k}"] = em
        return snap

    def fingerprint(self) -> dict[str, Any]:
        """Counts and a BLAKE2 digest of ids, times, positions and edges.

        A journal stores it to refuse replaying edits onto a different graph.
        """
        snap = self.snapshot()
        h = hashlib.blake2b(digest_size=16)
        for k in ("id", "t", "zyx", "edges"):
            h.update(np.ascontiguousarray(snap[k]).tobytes())
        return {"n_nodes": self.n_nodes, "n_edges": self.n_edges, "digest": h.hexdigest()}

    def equals(self, other: TrackGraph) -> bool:
        """True when both graphs hold the same nodes, values, features and edges."""
        a, b = self.snapshot(), other.snapshot()
        if a.keys() != b.keys():
            return False
        return all(np.array_equal(a[k], b[k]) for k in a)

    def to_dataframe(self) -> Any:
        """A pandas DataFrame with one row per node (id, t, z, y, x, label, reviewed,
        tracklet_id, lineage_id, parent_id (-1 = none) and the features, NaN/NA where missing)."""
        import pandas as pd

        rows = self._alive_rows()
        p = self._parent[rows]
        data: dict[str, Any] = {
            "id": self._ids[rows],
            "t": self._t[rows],
            "z": self._zyx[rows, 0],
            "y": self._zyx[rows, 1],
            "x": self._zyx[rows, 2],
            "label": self._label[rows],
            "reviewed": self._reviewed[rows],
            "tracklet_id": self.tracklet_ids(),
            "lineage_id": self.lineage_ids(),
            "parent_id": np.where(p >= 0, self._ids[np.maximum(p, 0)], -1),
        }
        for k in self._feat:
            s = pd.Series(self._feat[k][rows])
            m = self._feat_missing[k][rows]
            if m.any():
                s = s.astype("float64") if s.dtype.kind in "iub" else s
                s[m] = np.nan
            data[k] = s.to_numpy()
        return pd.DataFrame(data)
