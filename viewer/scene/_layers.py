"""Evented layers: display state as pydantic fields, data as private attributes.

Every field has one psygnal signal of the same name (``layer.events.opacity``).
Data that is not display state (a ``VolumeSource``, label arrays, track
columns) lives outside the fields, is set through ``layer.data`` and announced
by ``layer.data_changed``; edits to some label objects are announced by
``Labels.labels_update(ids)`` so a renderer rebuilds only those meshes.
Only the fields go into a saved scene; ``source`` says where the data came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from psygnal import EventedModel, Signal
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from analysis.errors import ParameterError
from analysis.volume import ArrayVolumeSource, VolumeSource

from ._camera import Vec3

__all__ = [
    "RGB",
    "Image",
    "Labels",
    "Layer",
    "Measurement",
    "Measurements",
    "Points",
    "TrackData",
    "Tracks",
]

RGB = tuple[float, float, float]
Bounds = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]


class Layer(EventedModel):
    """Base of all layers.

    Events
    ------
    name, visible, opacity, source
        One per field.
    data_changed
        The layer's data object was replaced (payload: the layer).
    """

    model_config = ConfigDict(
        validate_assignment=True, extra="forbid", arbitrary_types_allowed=True
    )
    data_changed: ClassVar[Signal] = Signal(object)

    kind: str = "layer"
    name: str = ""
    visible: bool = True
    opacity: float = Field(1.0, ge=0.0, le=1.0)
    source: str | None = Field(None, description="path or URL the data was opened from")

    def extent_world(self) -> Bounds | None:
        """(lo, hi) corners of the layer's data in world zyx µm, or None when empty."""
        return None


def _volume_extent(src: VolumeSource | None) -> Bounds | None:
    if src is None:
        return None
    lev = src.levels[0]
    scale = np.asarray(lev.scale_um, dtype=np.float64)
    origin = np.asarray(lev.translation[-3:], dtype=np.float64)
    # Voxel centres sit at origin + i*scale, so the data spans half a voxel
    # beyond the first and last centres.
    lo = origin - scale / 2
    hi = origin + (np.asarray(lev.shape[-3:]) - 0.5) * scale
    return lo, hi


class Image(Layer):
    """A volume drawn by GPU ray casting.

    Parameters (fields)
    -------------------
    colormap : str, default: "gray"
        A matplotlib colormap name.
    contrast_limits : (lo, hi) or None
        Data values mapped to the colormap ends; None: the data range of the level drawn.
    gamma : float, default: 1
    invert : bool, default: False
        Map high values to dark in the 3D volume (EM: dark membranes become bright
        "signal on black", and the bright resin transparent).
    slice_invert : bool, default: False
        Map high values to dark on the 2D slices (they show the EM as acquired unless
        asked: the 3D default above is for volume rendering).
    rendering : {"composite", "mip", "isosurface"}
    iso_threshold : float or None
        Data value of the isosurface; None: middle of the contrast limits.
    level : int or None
        Pyramid level to draw; None lets the renderer choose by its voxel budget.

    Events
    ------
    one per field, plus ``data_changed``.
    """

    kind: Literal["image"] = "image"
    colormap: str = "gray"
    contrast_limits: tuple[float, float] | None = None
    gamma: float = Field(1.0, gt=0.0)
    invert: bool = False
    slice_invert: bool = False
    rendering: Literal["composite", "mip", "isosurface"] = "composite"
    iso_threshold: float | None = None
    level: int | None = Field(None, ge=0)

    _data: VolumeSource | None = PrivateAttr(None)

    def __init__(self, data: VolumeSource | npt.ArrayLike | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        if data is not None:
            self.data = data

    @property
    def data(self) -> VolumeSource | None:
        """The ``VolumeSource`` (arrays are wrapped in ``ArrayVolumeSource``)."""
        return self._data

    @data.setter
    def data(self, value: VolumeSource | npt.ArrayLike) -> None:
        self._data = _as_source(value)
        self.data_changed.emit(self)

    def extent_world(self) -> Bounds | None:
        return _volume_extent(self._data)


def _as_source(value: VolumeSource | npt.ArrayLike) -> VolumeSource:
    if isinstance(value, VolumeSource):
        return value
    return ArrayVolumeSource(np.asarray(value))


class Labels(Layer):
    """A label volume drawn as one surface per object (or as a label volume).

    Fields
    ------
    mode : {"surface", "volume"}
    color_mode : {"id", "feature", "fixed"}
        Colour by a hash of the id, by ``features[feature]`` through ``colormap``, or
        ``fixed_color`` for all.
    feature : str or None
    colormap : str, default: "viridis"
    feature_limits : (lo, hi) or None
        Feature values mapped to the colormap ends; None: the min and max.
    fixed_color : (r, g, b) floats in 0..1
    hidden_ids : list of int
    outline_selected : bool, default: True
        Outline the objects the scene selection names.
    outline : bool, default: False
        In ``"volume"`` mode: draw each object's outline opaque and its interior
        faint (``viewer.raycast.LabelStyle.outline``), so objects behind show through.
    smoothing_iterations : int, default: 10
        Taubin smoothing passes on each mesh.
    triangle_budget : int, default: 200_000
        Upper bound of triangles over all objects; meshes are decimated to fit.
    level : int or None
        Pyramid level meshed; None lets the renderer choose.

    Events
    ------
    one per field; ``data_changed`` (whole data replaced); ``labels_update(ids)``
    (the voxels of those objects changed; only their meshes are rebuilt).
    """

    labels_update: ClassVar[Signal] = Signal(object)
    #: Where the voxels of an edit changed: per level, the (z, y, x) regions rewritten
    #: (streamed views re-read only those; see :meth:`notify_edited`).
    labels_regions: ClassVar[Signal] = Signal(object)
    #: Ids an id mapping change (a merge, a table) shows differently: no voxel was written
    #: and no region is known; streamed views re-read the resident bricks holding them.
    labels_remapped: ClassVar[Signal] = Signal(object)

    kind: Literal["labels"] = "labels"
    mode: Literal["surface", "volume"] = "surface"
    color_mode: Literal["id", "feature", "fixed"] = "id"
    feature: str | None = None
    colormap: str = "viridis"
    feature_limits: tuple[float, float] | None = None
    fixed_color: RGB = (0.9, 0.9, 0.9)
    hidden_ids: list[int] = Field(default_factory=list)
    outline_selected: bool = True
    outline: bool = False
    smoothing_iterations: int = Field(10, ge=0)
    triangle_budget: int = Field(200_000, ge=100)
    level: int | None = Field(None, ge=0)
    features_source: str | None = None

    _data: VolumeSource | None = PrivateAttr(None)
    _features: dict[str, dict[int, float]] = PrivateAttr(default_factory=dict)

    def __init__(self, data: VolumeSource | npt.ArrayLike | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        if data is not None:
            self.data = data

    @property
    def data(self) -> VolumeSource | None:
        return self._data

    @data.setter
    def data(self, value: VolumeSource | npt.ArrayLike) -> None:
        src = _as_source(value)
        if not np.issubdtype(src.dtype, np.integer):
            raise ParameterError(f"labels must have an integer dtype, got {src.dtype}")
        self._data = src
        self.data_changed.emit(self)

    def extent_world(self) -> Bounds | None:
        return _volume_extent(self._data)

    @property
    def features(self) -> Mapping[str, Mapping[int, float]]:
        """Per-object feature columns: ``features[name][label] -> value``."""
        return self._features

    def set_feature(self, name: str, values: Mapping[int, float]) -> None:
        """Add or replace a feature column (``label -> value``); emits ``data_changed``."""
        self._features[name] = {int(k): float(v) for k, v in values.items()}
        self.data_changed.emit(self)

    def notify_edited(
        self,
        ids: Sequence[int],
        regions: Sequence[Sequence[tuple[slice, ...]]] | None = None,
        remapped: bool = False,
    ) -> None:
        """Say that the voxels of objects ``ids`` changed (emits ``labels_update``) and, when
        known, where: ``regions[k]`` the (z, y, x) regions of level ``k`` rewritten (emits
        ``labels_regions``; streamed views re-read only those). ``remapped``: no voxel was
        written, the data shows ``ids`` differently now (an id mapping change; emits
        ``labels_remapped(ids)``: streamed views re-read the bricks holding them)."""
        changed = [int(i) for i in ids]
        self.labels_update.emit(changed)
        if remapped:
            self.labels_remapped.emit(changed)
        if regions is not None:
            self.labels_regions.emit(regions)


@dataclass(frozen=True)
class TrackData:
    """Columnar track graph as the Tracks layer draws it.

    Parameters
    ----------
    node_ids : (N,) int64
    t : (N,) float
        Time of each node (frames or seconds; the scene's ``current_time`` uses the same unit).
    zyx_um : (N, 3) float
        Position of each node, world µm.
    edges : (E, 2) int64
        ``(parent_node_id, child_node_id)`` pairs, forward in time.
    track_ids : (N,) int64, default: connected pieces between divisions
    features : dict of name -> (N,) float
    """

    node_ids: npt.NDArray[np.int64]
    t: npt.NDArray[np.float64]
    zyx_um: npt.NDArray[np.float64]
    edges: npt.NDArray[np.int64]
    track_ids: npt.NDArray[np.int64]
    features: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)

    @classmethod
    def from_arrays(
        cls,
        node_ids: npt.ArrayLike,
        t: npt.ArrayLike,
        zyx_um: npt.ArrayLike,
        edges: npt.ArrayLike,
        track_ids: npt.ArrayLike | None = None,
        features: Mapping[str, npt.ArrayLike] | None = None,
    ) -> TrackData:
        """Validate and build from array-likes (see the class docstring for shapes)."""
        ids = np.asarray(node_ids, dtype=np.int64).reshape(-1)
        n = len(ids)
        tt = np.asarray(t, dtype=np.float64).reshape(-1)
        pos = np.asarray(zyx_um, dtype=np.float64).reshape(-1, 3) if n else np.zeros((0, 3))
        e = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        if len(tt) != n or len(pos) != n:
            raise ParameterError(
                f"tracks: node_ids ({n}), t ({len(tt)}) and zyx_um ({len(pos)}) differ in length"
            )
        if len(np.unique(ids)) != n:
            raise ParameterError("tracks: node ids are not unique")
        if len(e) and not np.isin(e, ids).all():
            raise ParameterError("tracks: an edge names a node id that does not exist")
        if track_ids is None:
            tid = _segments(ids, e)
        else:
            tid = np.asarray(track_ids, dtype=np.int64).reshape(-1)
            if len(tid) != n:
                raise ParameterError(f"tracks: track_ids has {len(tid)} values for {n} nodes")
        feats = {}
        for k, v in (features or {}).items():
            a = np.asarray(v, dtype=np.float64).reshape(-1)
            if len(a) != n:
                raise ParameterError(f"tracks: feature {k!r} has {len(a)} values for {n} nodes")
            feats[k] = a
        return cls(ids, tt, pos, e, tid, feats)

    def index_of(self, ids: npt.ArrayLike) -> npt.NDArray[np.intp]:
        """Row index of each node id in ``ids``."""
        order = np.argsort(self.node_ids)
        pos = np.searchsorted(self.node_ids, np.asarray(ids), sorter=order)
        return np.asarray(order[pos])

    def divisions(self) -> npt.NDArray[np.int64]:
        """Node ids with two or more children."""
        if not len(self.edges):
            return np.zeros(0, dtype=np.int64)
        parents, counts = np.unique(self.edges[:, 0], return_counts=True)
        return np.asarray(parents[counts >= 2], dtype=np.int64)


def _segments(ids: npt.NDArray[np.int64], edges: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Track id per node: connected pieces after cutting every edge out of a division."""
    # SciPy's connected_components on the graph without division edges is the
    # standard definition of a tracklet (one parent, one child per node).
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(ids)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(ids)
    if len(edges):
        parents, counts = np.unique(edges[:, 0], return_counts=True)
        keep = ~np.isin(edges[:, 0], parents[counts >= 2])
        e = edges[keep]
    else:
        e = edges
    a = order[np.searchsorted(ids, e[:, 0], sorter=order)]
    b = order[np.searchsorted(ids, e[:, 1], sorter=order)]
    g = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, lab = connected_components(g, directed=False)
    return np.asarray(lab, dtype=np.int64)


class Tracks(Layer):
    """Cell tracks: lines or tubes with tails, current positions as spheres, divisions.

    Fields
    ------
    color_mode : {"track_id", "feature", "fixed"}
    feature : str or None
        Node feature used when ``color_mode == "feature"``.
    colormap : str, default: "tab20"
    fixed_color : (r, g, b)
    tail_length, head_length : float
        Time window drawn around the current time: ``[t - tail, t + head]``.
    display : {"lines", "tubes"}
    line_width : float (pixels)
    tube_radius_um, head_radius_um : float
    show_heads : bool
        Spheres at the nodes at the current time.
    show_divisions : bool
        Marks at the division nodes inside the time window.
    division_color : (r, g, b)

    Events
    ------
    one per field, plus ``data_changed``.
    """

    kind: Literal["tracks"] = "tracks"
    color_mode: Literal["track_id", "feature", "fixed"] = "track_id"
    feature: str | None = None
    colormap: str = "tab20"
    fixed_color: RGB = (1.0, 0.2, 0.2)
    tail_length: float = Field(10.0, ge=0.0)
    head_length: float = Field(0.0, ge=0.0)
    display: Literal["lines", "tubes"] = "lines"
    line_width: float = Field(2.0, gt=0.0)
    tube_radius_um: float = Field(0.5, gt=0.0)
    show_heads: bool = True
    head_radius_um: float = Field(1.0, gt=0.0)
    show_divisions: bool = True
    division_color: RGB = (1.0, 1.0, 0.0)

    _data: TrackData | None = PrivateAttr(None)

    def __init__(self, data: TrackData | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        if data is not None:
            self.data = data

    @property
    def data(self) -> TrackData | None:
        return self._data

    @data.setter
    def data(self, value: TrackData) -> None:
        self._data = value
        self.data_changed.emit(self)

    @classmethod
    def from_track_graph(cls, graph: Any, **kw: Any) -> Tracks:
        """Build from an ``analysis.tracks.TrackGraph``-like object.

        Reads the columns ``node_ids``/``ids``, ``t``, ``z``, ``y``, ``x`` (µm),
        ``edges`` (E, 2) and ``track_id`` when present (duck-typed so this
        layer does not depend on the graph class's internals).
        """
        return cls(track_data_from_graph(graph), **kw)

    def extent_world(self) -> Bounds | None:
        if self._data is None or not len(self._data.node_ids):
            return None
        p = self._data.zyx_um
        return p.min(axis=0), p.max(axis=0)


def _column(obj: Any, *names: str) -> Any:
    nodes = getattr(obj, "nodes", None)
    for name in names:
        for holder in (obj, nodes):
            if holder is None:
                continue
            if isinstance(holder, Mapping) and name in holder:
                return holder[name]
            val = getattr(holder, name, None)
            if val is not None and not callable(val):
                return val
    return None


def track_data_from_graph(graph: Any) -> TrackData:
    """Adapt an ``analysis.tracks.TrackGraph`` (or any object with the same columns).

    Reads ``node_ids``, ``t``, ``zyx`` (or ``z``, ``y``, ``x``) in µm and ``edges``
    (E, 2); track ids from a ``track_id`` node feature, else ``tracklet_ids()``,
    else they are derived from the edges. Duck-typed so this layer does not
    depend on the graph class's internals.
    """
    ids = _column(graph, "node_ids", "ids", "node_id", "id")
    t = _column(graph, "t")
    edges = _column(graph, "edges")
    zyx = _column(graph, "zyx")
    if zyx is None:
        cols = [_column(graph, a) for a in "zyx"]
        if all(c is not None for c in cols):
            zyx = np.stack([np.asarray(c) for c in cols], axis=1)
    if ids is None or t is None or zyx is None or edges is None:
        raise ParameterError("track graph lacks one of the columns node ids, t, zyx, edges")
    tid = _column(graph, "track_id", "track_ids")
    names = getattr(graph, "feature_names", ())
    if tid is None and "track_id" in names:
        values, missing = graph.feature("track_id")
        if not np.asarray(missing).any():
            tid = values
    if tid is None and callable(getattr(graph, "tracklet_ids", None)):
        tid = graph.tracklet_ids()
    return TrackData.from_arrays(ids, t, zyx, edges, tid)


class Points(Layer):
    """Counting markers with classes, colours and live counts per class.

    Fields
    ------
    positions_um : list of (z, y, x)
    classes : list of str, one per position
    class_colors : dict class -> (r, g, b)
    size_um : float, marker radius

    Events
    ------
    one per field; ``counts`` is recomputed from ``classes`` on access.
    """

    kind: Literal["points"] = "points"
    positions_um: list[Vec3] = Field(default_factory=list)
    classes: list[str] = Field(default_factory=list)
    class_colors: dict[str, RGB] = Field(default_factory=dict)
    size_um: float = Field(1.0, gt=0.0)

    @property
    def counts(self) -> dict[str, int]:
        """Number of markers per class."""
        out: dict[str, int] = {}
        for c in self.classes:
            out[c] = out.get(c, 0) + 1
        return out

    def add(self, zyx_um: Vec3, cls: str = "default") -> None:
        """Add one marker; emits ``positions_um`` and ``classes`` after both are set."""
        self.update(
            {
                "positions_um": [*self.positions_um, tuple(float(v) for v in zyx_um)],
                "classes": [*self.classes, cls],
            }
        )

    def extent_world(self) -> Bounds | None:
        if not self.positions_um:
            return None
        p = np.asarray(self.positions_um, dtype=np.float64)
        return p.min(axis=0), p.max(axis=0)


class Measurement(BaseModel):
    """One measurement: ``distance`` (2 points), ``angle`` (3 points, at the middle one)
    or ``path`` (>= 2 points). Points are zyx µm."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["distance", "angle", "path"] = "distance"
    points_um: list[Vec3]
    label: str = ""

    @field_validator("points_um")
    @classmethod
    def _enough(cls, v: list[Vec3]) -> list[Vec3]:
        if len(v) < 2:
            raise ValueError("a measurement needs at least two points")
        return v

    @property
    def value(self) -> float:
        """Distance or path length in µm, or angle in degrees."""
        p = np.asarray(self.points_um, dtype=np.float64)
        if self.kind == "angle":
            if len(p) != 3:
                raise ParameterError("an angle measurement needs exactly three points")
            a, b = p[0] - p[1], p[2] - p[1]
            c = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
            return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))
        if self.kind == "distance":
            p = p[[0, -1]]
        return float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum())

    @property
    def text(self) -> str:
        """What is written next to the measurement."""
        unit = "°" if self.kind == "angle" else " µm"
        prefix = f"{self.label}: " if self.label else ""
        return f"{prefix}{self.value:.2f}{unit}"


class Measurements(Layer):
    """Distance, angle and path-length measurements drawn as lines with text.

    Events
    ------
    one per field (``items``, ``color``, ``line_width``, ``font_size``).
    """

    kind: Literal["measurements"] = "measurements"
    items: list[Measurement] = Field(default_factory=list)
    color: RGB = (1.0, 1.0, 0.3)
    line_width: float = Field(2.0, gt=0.0)
    font_size: int = Field(14, gt=0)

    def extent_world(self) -> Bounds | None:
        if not self.items:
            return None
        p = np.concatenate([np.asarray(m.points_um, dtype=np.float64) for m in self.items])
        return p.min(axis=0), p.max(axis=0)
