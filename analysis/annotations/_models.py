"""Annotation data: marker classes, counting markers, measurements, object classes.

The pydantic models are the versioned on-disk schema (``annotations-schema.json``
next to this module is generated from :class:`AnnotationsState` by
``python -m analysis.annotations``; a test keeps the two in sync).
:class:`Annotations` is the live, evented container the edit commands change.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from psygnal import Signal, SignalGroup
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from analysis.errors import FormatError, InvalidEditError

__all__ = [
    "ANNOTATIONS_SCHEMA_PATH",
    "ANNOTATIONS_SCHEMA_VERSION",
    "DEFAULT_CLASS_COLORS",
    "Annotations",
    "AnnotationsEvents",
    "AnnotationsState",
    "Marker",
    "MarkerClass",
    "Measurement",
    "annotations_json_schema",
    "classes_from",
]

ANNOTATIONS_SCHEMA_VERSION = 1
ANNOTATIONS_SCHEMA_PATH = Path(__file__).with_name("annotations-schema.json")

Vec3 = tuple[float, float, float]
RGB = tuple[float, float, float]

#: Colours handed to classes created without one (matplotlib's tab10, first 8).
DEFAULT_CLASS_COLORS: tuple[RGB, ...] = (
    (0.122, 0.467, 0.706),
    (1.000, 0.498, 0.055),
    (0.173, 0.627, 0.173),
    (0.839, 0.153, 0.157),
    (0.580, 0.404, 0.741),
    (0.549, 0.337, 0.294),
    (0.890, 0.467, 0.761),
    (0.737, 0.741, 0.133),
)


def _finite3(v: Vec3) -> Vec3:
    # Plain floats, not a NumPy array: this runs for every marker of a 10,000-command
    # group, on the server and in every replica (np.asarray + np.all was 8 us a call).
    bad = ValueError(f"expected three finite numbers (z, y, x), got {v!r}")
    if isinstance(v, np.ndarray) and v.shape != (3,):
        raise bad
    try:
        z, y, x = (float(c) for c in v)
    except (TypeError, ValueError):
        raise bad from None
    if not (math.isfinite(z) and math.isfinite(y) and math.isfinite(x)):
        raise bad
    return (z, y, x)


class MarkerClass(BaseModel):
    """A counting class: name and display colour (r, g, b in 0..1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    color: RGB = (1.0, 1.0, 0.0)

    @field_validator("color")
    @classmethod
    def _rgb(cls, v: RGB) -> RGB:
        if any(not 0.0 <= c <= 1.0 for c in v):
            raise ValueError(f"colour components must be in 0..1, got {v!r}")
        return v


class Marker(BaseModel):
    """One counting marker.

    Attributes
    ----------
    id : int
        Unique in its :class:`Annotations`, never reused.
    class_name : str
    position_um : (z, y, x) floats, world µm
    t : float or None
        Time point for time-lapses; None for static volumes.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int = Field(ge=0)
    class_name: str = Field(min_length=1)
    position_um: Vec3
    t: float | None = None

    @field_validator("position_um")
    @classmethod
    def _position(cls, v: Vec3) -> Vec3:
        return _finite3(v)


class Measurement(BaseModel):
    """A distance (2 points), angle (3 points, vertex in the middle) or path (>= 2 points).

    Attributes
    ----------
    id : int
    kind : {"distance", "angle", "path"}
    points_um : list of (z, y, x), world µm
    t : float or None
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int = Field(ge=0)
    kind: Literal["distance", "angle", "path"]
    points_um: list[Vec3]
    t: float | None = None

    @field_validator("points_um")
    @classmethod
    def _points(cls, v: list[Vec3], info: Any) -> list[Vec3]:
        pts = [_finite3(p) for p in v]
        kind = info.data.get("kind")
        need = {"distance": (2, 2), "angle": (3, 3), "path": (2, None)}.get(kind, (2, None))
        lo, hi = need
        if len(pts) < lo or (hi is not None and len(pts) > hi):
            want = f"exactly {lo}" if hi == lo else f"at least {lo}"
            raise ValueError(f"a {kind} measurement needs {want} points, got {len(pts)}")
        return pts

    @property
    def value(self) -> float:
        """Length in µm (distance, path) or the angle at the middle point in degrees."""
        p = np.asarray(self.points_um, dtype=np.float64)
        if self.kind == "angle":
            a, b = p[0] - p[1], p[2] - p[1]
            na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
            if na == 0.0 or nb == 0.0:
                return float("nan")
            # atan2 of |a x b| and a.b is accurate near 0 and 180 degrees, unlike arccos.
            return float(np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b)), np.dot(a, b))))
        return float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum())

    @property
    def unit(self) -> str:
        """``"deg"`` for angles, ``"µm"`` otherwise."""
        return "deg" if self.kind == "angle" else "µm"


class AnnotationsState(BaseModel):
    """Everything an :class:`Annotations` holds: the on-disk ``annotations.json``."""

    model_config = ConfigDict(extra="forbid", title="vrscope annotations")

    schema_version: Literal[1] = 1
    classes: list[MarkerClass] = Field(default_factory=list)
    markers: list[Marker] = Field(default_factory=list)
    measurements: list[Measurement] = Field(default_factory=list)
    object_classes: dict[str, dict[int, str]] = Field(
        default_factory=dict,
        description="labels layer name -> (label id -> class name)",
    )
    next_id: int = Field(default=1, ge=0, description="first id not yet used by a marker")
    next_measurement_id: int = Field(
        default=1, ge=0, description="first id not yet used by a measurement"
    )


def annotations_json_schema() -> dict[str, Any]:
    """The JSON schema of ``annotations.json`` (what ``annotations-schema.json`` holds)."""
    schema = AnnotationsState.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


class AnnotationsEvents(SignalGroup):
    """Events of :class:`Annotations`; each is emitted once per change, after it is done,
    with what changed (a handler may ignore it)."""

    classes = Signal(str)
    """Name of the class defined, changed or removed."""
    markers = Signal(int)
    """Id of the marker added or removed."""
    measurements = Signal(int)
    """Id of the measurement added or removed."""
    object_classes = Signal(str, int)
    """Labels layer and label id whose class was set or cleared."""
    counts = Signal(dict)


class Annotations:
    """Markers, classes, measurements and object classes of one project (evented).

    Change it through the commands in :mod:`analysis.annotations` applied by an
    :class:`analysis.edits.History`; the methods here are the primitive
    changes those commands make and they do not validate the way commands do.

    Events
    ------
    classes(name), markers(id), measurements(id), object_classes(layer, label)
        The collection changed, and where.
    counts : Signal(dict)
        Markers per class after a marker was added or removed (:meth:`counts`).
    """

    def __init__(self, state: AnnotationsState | None = None) -> None:
        self.events = AnnotationsEvents()
        st = state or AnnotationsState()
        self._classes: dict[str, MarkerClass] = {c.name: c for c in st.classes}
        self._markers: dict[int, Marker] = {m.id: m for m in st.markers}
        self._per_class: dict[str, int] = {}  # markers per class name (counts(), t=None)
        for m in self._markers.values():
            self._count(m.class_name, 1)
        self._measurements: dict[int, Measurement] = {m.id: m for m in st.measurements}
        self._objects: dict[str, dict[int, str]] = {
            k: dict(v) for k, v in st.object_classes.items()
        }
        # Markers and measurements are numbered from 1, each kind on its own (a project
        # saved when they shared one counter goes on from where that counter was).
        self._next_id = max(st.next_id, max(self._markers, default=0) + 1)
        self._next_measurement_id = max(
            st.next_measurement_id, max(self._measurements, default=0) + 1
        )

    # ---------------------------------------------------------------- queries
    @property
    def classes(self) -> list[MarkerClass]:
        return list(self._classes.values())

    @property
    def markers(self) -> list[Marker]:
        """Markers in id order."""
        return [self._markers[k] for k in sorted(self._markers)]

    @property
    def measurements(self) -> list[Measurement]:
        return [self._measurements[k] for k in sorted(self._measurements)]

    @property
    def object_classes(self) -> dict[str, dict[int, str]]:
        """labels layer -> (label id -> class name); a copy."""
        return {k: dict(v) for k, v in self._objects.items()}

    def marker(self, marker_id: int) -> Marker:
        try:
            return self._markers[int(marker_id)]
        except KeyError:
            raise InvalidEditError(f"marker {marker_id} does not exist") from None

    def measurement(self, measurement_id: int) -> Measurement:
        try:
            return self._measurements[int(measurement_id)]
        except KeyError:
            raise InvalidEditError(f"measurement {measurement_id} does not exist") from None

    def has_class(self, name: str) -> bool:
        return name in self._classes

    def class_color(self, name: str) -> RGB:
        c = self._classes.get(name)
        return c.color if c is not None else (1.0, 1.0, 1.0)

    def counts(self, t: float | None = None) -> dict[str, int]:
        """Markers per class (every defined class, zero included); only time ``t`` if given."""
        out = dict.fromkeys(self._classes, 0)
        if t is None:
            # Kept up to date by put/pop_marker: O(classes), so a marker edit (which emits
            # the counts) costs O(1) in the number of markers, not O(markers).
            out.update(self._per_class)
            return out
        for m in self._markers.values():
            if m.t is None or m.t == t:
                out[m.class_name] = out.get(m.class_name, 0) + 1
        return out

    def _count(self, class_name: str, delta: int) -> None:
        n = self._per_class.get(class_name, 0) + delta
        if n:
            self._per_class[class_name] = n
        else:
            del self._per_class[class_name]

    def new_id(self) -> int:
        """The next unused marker id (not reserved until a marker with it is added)."""
        return self._next_id

    def marker_id_in_use(self, item_id: int) -> bool:
        """True when a marker has id ``item_id`` (O(1))."""
        return item_id in self._markers

    def measurement_id_in_use(self, item_id: int) -> bool:
        """True when a measurement has id ``item_id`` (O(1))."""
        return item_id in self._measurements

    def restore_next_id(self, next_id: int) -> None:
        """Set the marker id counter back to ``next_id`` (a command's revert: undo
        restores the counter too, so replicas and restarts agree). The caller makes sure
        no marker id at or above it is in use (commands restore only when nothing was
        added after them)."""
        self._next_id = int(next_id)

    def new_measurement_id(self) -> int:
        """The next unused measurement id (not reserved until one with it is added)."""
        return self._next_measurement_id

    def restore_next_measurement_id(self, next_id: int) -> None:
        """:meth:`restore_next_id` for the measurement id counter."""
        self._next_measurement_id = int(next_id)

    # ---------------------------------------------------------------- primitives
    def _emit_counts(self, marker_id: int) -> None:
        self.events.markers.emit(int(marker_id))
        if len(self.events.counts):  # the counts are built only for a listener
            self.events.counts.emit(self.counts())

    def put_class(self, cls: MarkerClass | None, name: str) -> MarkerClass | None:
        """Set (or with None remove) class ``name``; returns the previous definition."""
        old = self._classes.pop(name, None) if cls is None else self._classes.get(name)
        if cls is not None:
            self._classes[name] = cls
        self.events.classes.emit(name)
        self.events.counts.emit(self.counts())
        return old

    def set_classes(self, classes: list[MarkerClass]) -> list[MarkerClass]:
        """Replace every class at once, in this order; returns the previous list."""
        old = self.classes
        self._classes = {c.name: c for c in classes}
        for name in dict.fromkeys([c.name for c in old] + [c.name for c in classes]):
            self.events.classes.emit(name)
        self.events.counts.emit(self.counts())
        return old

    def put_marker(self, marker: Marker) -> None:
        old = self._markers.get(marker.id)
        if old is not None:
            self._count(old.class_name, -1)
        self._count(marker.class_name, 1)
        self._markers[marker.id] = marker
        self._next_id = max(self._next_id, marker.id + 1)
        self._emit_counts(marker.id)

    def pop_marker(self, marker_id: int) -> Marker:
        m = self._markers.pop(int(marker_id))
        self._count(m.class_name, -1)
        self._emit_counts(m.id)
        return m

    def put_measurement(self, m: Measurement) -> None:
        self._measurements[m.id] = m
        self._next_measurement_id = max(self._next_measurement_id, m.id + 1)
        self.events.measurements.emit(m.id)

    def pop_measurement(self, measurement_id: int) -> Measurement:
        m = self._measurements.pop(int(measurement_id))
        self.events.measurements.emit(m.id)
        return m

    def put_object_class(self, layer: str, label: int, name: str | None) -> str | None:
        """Set (None: clear) the class of object ``label`` of ``layer``; returns the old one."""
        table = self._objects.setdefault(layer, {})
        old = table.pop(int(label), None) if name is None else table.get(int(label))
        if name is not None:
            table[int(label)] = name
        if not table:
            del self._objects[layer]
        self.events.object_classes.emit(layer, int(label))
        return old

    # ---------------------------------------------------------------- state
    def state(self) -> AnnotationsState:
        return AnnotationsState(
            classes=self.classes,
            markers=self.markers,
            measurements=self.measurements,
            object_classes=self.object_classes,
            next_id=self._next_id,
            next_measurement_id=self._next_measurement_id,
        )

    def to_json(self, indent: int | None = 2) -> str:
        """The ``annotations.json`` text."""
        return self.state().model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> Annotations:
        """Parse ``annotations.json`` text; FormatError naming the problem when invalid."""
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise FormatError(f"annotations are not valid JSON: {exc}") from exc
        if isinstance(raw, dict) and raw.get("schema_version", 1) != ANNOTATIONS_SCHEMA_VERSION:
            raise FormatError(
                f"annotations schema_version {raw.get('schema_version')} is not supported "
                f"(this vrscope reads {ANNOTATIONS_SCHEMA_VERSION})"
            )
        try:
            return cls(AnnotationsState.model_validate(raw))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise FormatError(f"annotations: {where}: {err['msg']}") from exc

    def fingerprint(self) -> dict[str, Any]:
        """Counts and a BLAKE2 digest of the canonical JSON (for the edit journal)."""
        text = self.state().model_dump_json()
        digest = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
        return {
            "n_markers": len(self._markers),
            "n_measurements": len(self._measurements),
            "digest": digest,
        }

    def equals(self, other: Annotations) -> bool:
        return self.state() == other.state()

    def __repr__(self) -> str:
        return (
            f"Annotations({len(self._classes)} classes, {len(self._markers)} markers, "
            f"{len(self._measurements)} measurements)"
        )


def classes_from(
    names: Iterable[str], colors: Mapping[str, RGB] | None = None
) -> list[MarkerClass]:
    """Marker classes for ``names``, coloured from ``colors`` or the default palette."""
    out = []
    for i, n in enumerate(names):
        col = (colors or {}).get(n, DEFAULT_CLASS_COLORS[i % len(DEFAULT_CLASS_COLORS)])
        out.append(MarkerClass(name=n, color=col))
    return out
