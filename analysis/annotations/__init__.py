"""Counting markers, measurements and object classes, with their edit commands.

- Models (pydantic, versioned schema in ``annotations-schema.json``):
  :class:`MarkerClass`, :class:`Marker`, :class:`Measurement` (``.value`` in µm
  or degrees), :class:`AnnotationsState` (the ``annotations.json`` file).
- :class:`Annotations`: the live, evented container (``events.markers``,
  ``events.counts``, ...) with live counts per class.
- Commands (:class:`analysis.edits.Command` subclasses, journaled and undoable):
  :class:`DefineClass`, :class:`AddMarker`, :class:`RemoveMarker`,
  :class:`MoveMarker`, :class:`AddMeasurement`, :class:`RemoveMeasurement`,
  :class:`SetObjectClass`, :class:`RenameClass`, :class:`RemoveClass`. Their target is an :class:`Annotations` or an object
  with an ``annotations`` attribute (:class:`analysis.project.Workspace`).

Extending: a new annotation kind is a pydantic model plus a field of
:class:`AnnotationsState` (then regenerate the schema with
``python -m analysis.annotations``) and commands that change it through new
primitive ``put_*``/``pop_*`` methods of :class:`Annotations`.
"""

from analysis.annotations._commands import (
    AddMarker,
    AddMeasurement,
    DefineClass,
    MoveMarker,
    RemoveClass,
    RemoveMarker,
    RemoveMeasurement,
    RenameClass,
    SetObjectClass,
)
from analysis.annotations._models import (
    ANNOTATIONS_SCHEMA_PATH,
    ANNOTATIONS_SCHEMA_VERSION,
    DEFAULT_CLASS_COLORS,
    Annotations,
    AnnotationsEvents,
    AnnotationsState,
    Marker,
    MarkerClass,
    Measurement,
    annotations_json_schema,
    classes_from,
)

__all__ = [
    "ANNOTATIONS_SCHEMA_PATH",
    "ANNOTATIONS_SCHEMA_VERSION",
    "DEFAULT_CLASS_COLORS",
    "AddMarker",
    "AddMeasurement",
    "Annotations",
    "AnnotationsEvents",
    "AnnotationsState",
    "DefineClass",
    "Marker",
    "MarkerClass",
    "Measurement",
    "MoveMarker",
    "RemoveClass",
    "RemoveMarker",
    "RemoveMeasurement",
    "RenameClass",
    "SetObjectClass",
    "annotations_json_schema",
    "classes_from",
]
