"""Annotation edit commands: markers, measurements, classes and object classification.

They follow :class:`analysis.edits.Command`: validate everything before changing
anything (an :class:`InvalidEditError` leaves the annotations untouched), keep
the minimal diff for ``revert``, and record the ids they create in ``to_json``
once applied, so redo and journal replay recreate the same ids. The target is an
:class:`Annotations` or anything with an ``annotations`` attribute (the
project's :class:`analysis.project.Workspace`), so one History undoes track and
annotation edits alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import ValidationError

from analysis.annotations._models import (
    DEFAULT_CLASS_COLORS,
    RGB,
    Annotations,
    Marker,
    MarkerClass,
    Measurement,
    Vec3,
)
from analysis.edits import Command
from analysis.errors import InvalidEditError

__all__ = [
    "AddMarker",
    "AddMeasurement",
    "DefineClass",
    "MoveMarker",
    "RemoveClass",
    "RemoveMarker",
    "RemoveMeasurement",
    "RenameClass",
    "SetObjectClass",
]


def _annotations(target: Any) -> Annotations:
    """The annotations a command edits: the target itself or its ``.annotations``."""
    if isinstance(target, Annotations):
        return target
    ann = getattr(target, "annotations", None)
    if not isinstance(ann, Annotations):
        raise InvalidEditError(f"{type(target).__name__} holds no annotations to edit")
    return ann


def _vec3(v: Sequence[float]) -> Vec3:
    if len(v) != 3:
        raise InvalidEditError(f"a position needs three coordinates (z, y, x), got {len(v)}")
    return (float(v[0]), float(v[1]), float(v[2]))


def _validation(exc: ValidationError) -> InvalidEditError:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return InvalidEditError(f"{where}: {err['msg']}" if where else str(err["msg"]))


MAX_ID = 2**63 - 1  # ids are int64 and never negative
MAX_NAME = 256  # characters in a class or layer name
MAX_TIME = 2.0**31  # a time point beyond this is no frame number


def _check_id(what: str, i: int) -> None:
    if not 0 <= i <= MAX_ID:
        raise InvalidEditError(f"{what} id {i} is not in 0..2**63-1")


def _check_name(what: str, name: str) -> None:
    if len(name) > MAX_NAME:
        raise InvalidEditError(f"{what} is {len(name)} characters long (at most {MAX_NAME})")


def _check_t(t: float | None) -> None:
    if t is not None and not (math.isfinite(t) and abs(t) <= MAX_TIME):
        raise InvalidEditError(f"time point {t} is not a finite number within +-2**31")


def _next_color(ann: Annotations) -> RGB:
    return DEFAULT_CLASS_COLORS[len(ann.classes) % len(DEFAULT_CLASS_COLORS)]


class DefineClass(Command):
    """Create a marker class or change its colour."""

    kind = "define_class"

    def __init__(self, name: str, color: Sequence[float] | None = None) -> None:
        self.name = str(name)
        self.color = None if color is None else _vec3(color)
        self._old: MarkerClass | None = None

    def apply(self, target: Any) -> None:
        ann = _annotations(target)
        _check_name("class name", self.name)
        color = self.color if self.color is not None else _next_color(ann)
        try:
            cls = MarkerClass(name=self.name, color=color)
        except ValidationError as exc:
            raise _validation(exc) from exc
        self.color = cls.color
        self._old = ann.put_class(cls, self.name)

    def revert(self, target: Any) -> None:
        _annotations(target).put_class(self._old, self.name)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "color": None if self.color is None else list(self.color)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DefineClass:
        return cls(str(data["name"]), data.get("color"))

    @property
    def description(self) -> str:
        return f"define class {self.name!r}"


class AddMarker(Command):
    """Place a counting marker of ``class_name`` at ``position_um`` (z, y, x µm).

    An unknown class is created with the next palette colour (and removed again
    on revert), so a tool can count into a new class in one step.
    """

    kind = "add_marker"

    def __init__(
        self,
        class_name: str,
        position_um: Sequence[float],
        t: float | None = None,
        marker_id: int | None = None,
        color: Sequence[float] | None = None,
    ) -> None:
        self.class_name = str(class_name)
        self.position_um = _vec3(position_um)
        self.t = None if t is None else float(t)
        self.marker_id = None if marker_id is None else int(marker_id)
        self.color = None if color is None else _vec3(color)
        self._created_class = False
        self._next_before = self._next_after = -1

    def apply(self, target: Any) -> None:
        ann = _annotations(target)
        mid = self.marker_id if self.marker_id is not None else ann.new_id()
        _check_id("marker", mid)
        _check_name("class name", self.class_name)
        _check_t(self.t)
        try:
            marker = Marker(
                id=mid, class_name=self.class_name, position_um=self.position_um, t=self.t
            )
            new_cls = None
            if not ann.has_class(self.class_name):
                color = self.color if self.color is not None else _next_color(ann)
                new_cls = MarkerClass(name=self.class_name, color=color)
        except ValidationError as exc:
            raise _validation(exc) from exc
        if ann.marker_id_in_use(mid):
            raise InvalidEditError(f"marker id {mid} is already used")
        # Validated: from here on nothing fails. The id counter is part of the state that
        # revert restores (so an undo, a replica and a restarted server agree).
        self._next_before = ann.new_id()
        if new_cls is not None:
            ann.put_class(new_cls, new_cls.name)
            self.color = new_cls.color
        self._created_class = new_cls is not None
        ann.put_marker(marker)
        self.marker_id = mid
        self._next_after = ann.new_id()

    def revert(self, target: Any) -> None:
        ann = _annotations(target)
        assert self.marker_id is not None
        ann.pop_marker(self.marker_id)
        if self._created_class:
            ann.put_class(None, self.class_name)
        if ann.new_id() == self._next_after:  # nothing took an id after this command
            ann.restore_next_id(self._next_before)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "class": self.class_name,
            "position_um": list(self.position_um),
            "t": self.t,
        }
        if self.marker_id is not None:
            out["id"] = self.marker_id
        if self.color is not None:
            out["color"] = list(self.color)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AddMarker:
        return cls(
            str(data["class"]),
            data["position_um"],
            data.get("t"),
            data.get("id"),
            data.get("color"),
        )

    @property
    def description(self) -> str:
        return f"add {self.class_name} marker"


class RemoveMarker(Command):
    """Remove marker ``marker_id``."""

    kind = "remove_marker"

    def __init__(self, marker_id: int) -> None:
        self.marker_id = int(marker_id)
        self._old: Marker | None = None

    def apply(self, target: Any) -> None:
        ann = _annotations(target)
        ann.marker(self.marker_id)  # raises when absent
        self._old = ann.pop_marker(self.marker_id)

    def revert(self, target: Any) -> None:
        assert self._old is not None
        _annotations(target).put_marker(self._old)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.marker_id}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RemoveMarker:
        return cls(int(data["id"]))

    @property
    def description(self) -> str:
        return f"remove marker {self.marker_id}"


class MoveMarker(Command):
    """Move marker ``marker_id`` to ``position_um`` (z, y, x µm)."""

    kind = "move_marker"

    def __init__(self, marker_id: int, position_um: Sequence[float]) -> None:
        self.marker_id = int(marker_id)
        self.position_um = _vec3(position_um)
        self._old: Marker | None = None

    def apply(self, target: Any) -> None:
        ann = _annotations(target)
        old = ann.marker(self.marker_id)
        try:
            new = old.model_copy(update={"position_um": self.position_um})
            Marker.model_validate(new.model_dump())
        except ValidationError as exc:
            raise _validation(exc) from exc
        ann.put_marker(new)
        self._old = old

    def revert(self, target: Any) -> None:
        assert self._old is not None
        _annotations(target).put_marker(self._old)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.marker_id, "position_um": list(self.position_um)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MoveMarker:
        return cls(int(data["id"]), data["position_um"])

    @property
    def description(self) -> str:
        return f"move marker {self.marker_id}"


class AddMeasurement(Command):
    """Add a distance, angle or path measurement through ``points_um`` (z, y, x µm)."""

    kind = "add_measurement"

    def __init__(
        self,
        kind: Literal["distance", "angle", "path"],
        points_um: Sequence[Sequence[float]],
        t: float | None = None,
        measurement_id: int | None = None,
    ) -> None:
        self.measure_kind = kind
        self.points_um = [_vec3(p) for p in points_um]
        self.t = None if t is None else float(t)
        self.measurement_id = None if measurement_id is None else int(measurement_id)
        self._next_before = self._next_after = -1

    def apply(self, target: Any) -> None:
        ann = _annotations(target)
        mid = self.measurement_id if self.measurement_id is not None else ann.new_measurement_id()
        _check_id("measurement", mid)
        _check_t(self.t)
        try:
            m = Measurement(id=mid, kind=self.measure_kind, points_um=self.points_um, t=self.t)
        except ValidationError as exc:
            raise _validation(exc) from exc
        if ann.measurement_id_in_use(mid):
            raise InvalidEditError(f"measurement id {mid} is already used")
        self._next_before = ann.new_measurement_id()
        ann.put_measurement(m)
        self.measurement_id = mid
        self._next_after = ann.new_measurement_id()

    def revert(self, target: Any) -> None:
        assert self.measurement_id is not None
        ann = _annotations(target)
        ann.pop_measurement(self.measurement_id)
        if ann.new_measurement_id() == self._next_after:  # no id was taken after this
            ann.restore_next_measurement_id(self._next_before)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.measure_kind,
            "points_um": [list(p) for p in self.points_um],
            "t": self.t,
        }
        if self.measurement_id is not None:
            out["id"] = self.measurement_id
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AddMeasurement:
        return cls(data["kind"], data["points_um"], data.get("t"), data.get("id"))

    @property
    def description(self) -> str:
        return f"measure {self.measure_kind}"


class RemoveMeasurement(Command):
    """Remove measurement ``measurement_id``."""

    kind = "remove_measurement"

    def __init__(self, measurement_id: int) -> None:
        self.measurement_id = int(measurement_id)
        self._old: Measurement | None = None

    def apply(self, target: Any) -> None:
        ann = _annotations(target)
        ann.measurement(self.measurement_id)
        self._old = ann.pop_measurement(self.measurement_id)

    def revert(self, target: Any) -> None:
        assert self._old is not None
        _annotations(target).put_measurement(self._old)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.measurement_id}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RemoveMeasurement:
        return cls(int(data["id"]))

    @property
    def description(self) -> str:
        return f"remove measurement {self.measurement_id}"


class SetObjectClass(Command):
    """Classify object ``label`` of labels layer ``layer`` as ``class_name`` (None: unclassify).

    These are the training examples of the object classifier
    (:mod:`analysis.features`) and what the XR classify tool records.
    """

    kind = "set_object_class"

    def __init__(self, label: int, class_name: str | None, layer: str = "") -> None:
        self.label = int(label)
        self.class_name = None if class_name is None else str(class_name)
        self.layer = str(layer)
        self._old: str | None = None

    def apply(self, target: Any) -> None:
        ann = _annotations(target)
        if self.label <= 0:
            raise InvalidEditError(f"label {self.label} is background; classify objects (> 0)")
        if self.class_name is not None and not self.class_name:
            raise InvalidEditError("class name must not be empty")
        _check_id("label", self.label)
        _check_name("class name", self.class_name or "")
        _check_name("layer name", self.layer)
        self._old = ann.put_object_class(self.layer, self.label, self.class_name)

    def revert(self, target: Any) -> None:
        _annotations(target).put_object_class(self.layer, self.label, self._old)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "class": self.class_name, "layer": self.layer}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SetObjectClass:
        return cls(int(data["label"]), data.get("class"), str(data.get("layer", "")))

    @property
    def description(self) -> str:
        return f"classify {self.layer}:{self.label} as {self.class_name}"


class RenameClass(Command):
    """Rename marker class ``old`` to ``new``: the class, its markers and the objects
    classified as it all follow (one step)."""

    kind = "rename_class"

    def __init__(self, old: str, new: str) -> None:
        self.old = str(old)
        self.new = str(new).strip()
        self._markers: list[int] = []
        self._objects: list[tuple[str, int]] = []
        self._classes: list[MarkerClass] = []

    def apply(self, target: Any) -> None:
        ann = _annotations(target)
        if not ann.has_class(self.old):
            raise InvalidEditError(f"there is no class {self.old!r}")
        if not self.new:
            raise InvalidEditError("a class needs a name")
        if ann.has_class(self.new):
            raise InvalidEditError(f"a class {self.new!r} exists already")
        try:
            cls = MarkerClass(name=self.new, color=ann.class_color(self.old))
        except ValidationError as exc:
            raise _validation(exc) from exc
        self._markers = [m.id for m in ann.markers if m.class_name == self.old]
        self._objects = [
            (layer, label)
            for layer, table in ann.object_classes.items()
            for label, name in table.items()
            if name == self.old
        ]
        self._classes = ann.classes
        self._move(ann, self.new, [cls if c.name == self.old else c for c in self._classes])

    def revert(self, target: Any) -> None:
        self._move(_annotations(target), self.old, self._classes)

    def _move(self, ann: Annotations, dst: str, classes: list[MarkerClass]) -> None:
        # The class keeps its place in the list (menus and the next default colour).
        ann.set_classes(classes)
        for mid in self._markers:
            ann.put_marker(ann.marker(mid).model_copy(update={"class_name": dst}))
        for layer, label in self._objects:
            ann.put_object_class(layer, label, dst)

    def to_json(self) -> dict[str, Any]:
        return {"old": self.old, "new": self.new}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RenameClass:
        return cls(str(data["old"]), str(data["new"]))

    @property
    def description(self) -> str:
        return f"rename class {self.old!r} to {self.new!r}"


class RemoveClass(Command):
    """Remove marker class ``name``; refused while markers or objects are of that class."""

    kind = "remove_class"

    def __init__(self, name: str) -> None:
        self.name = str(name)
        self._old: list[MarkerClass] | None = None

    def apply(self, target: Any) -> None:
        ann = _annotations(target)
        if not ann.has_class(self.name):
            raise InvalidEditError(f"there is no class {self.name!r}")
        n = sum(m.class_name == self.name for m in ann.markers)
        k = sum(v == self.name for t in ann.object_classes.values() for v in t.values())
        if n or k:
            raise InvalidEditError(
                f"{n} markers and {k} objects are of class {self.name!r}: remove or "
                "reclassify them first"
            )
        self._old = ann.set_classes([c for c in ann.classes if c.name != self.name])

    def revert(self, target: Any) -> None:
        assert self._old is not None
        _annotations(target).set_classes(self._old)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RemoveClass:
        return cls(str(data["name"]))

    @property
    def description(self) -> str:
        return f"remove class {self.name!r}"
