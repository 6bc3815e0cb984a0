"""Scene model: what is drawn, GUI-free and VTK-free.

A :class:`Scene` holds evented layers (:class:`Image`, :class:`Labels`,
:class:`Tracks`, :class:`Points`, :class:`Measurements`), a :class:`Camera`,
any number of :class:`ClippingPlane`, the current time and a :class:`Selection`.
Coordinates are world micrometres ordered (z, y, x) like the arrays; the flip to
VTK's (x, y, z) happens only in ``viewer.render``.

Every display property is a pydantic field with one psygnal signal of the same
name (``layer.events.opacity``); the layer list emits ``inserted/removed/moved``.
Handlers only mark things dirty; the renderer draws once per frame.

To add a layer type: subclass :class:`Layer` with a ``kind: Literal[...]``
field, add it to ``AnyLayer`` in ``_state.py`` (and regenerate the schema with
``python -m viewer.scene``), then register a ``Vtk<Layer>`` adapter in
``viewer.render``'s ``layer_to_visual``.
"""

from ._camera import Camera, ClippingPlane
from ._layers import (
    Image,
    Labels,
    Layer,
    Measurement,
    Measurements,
    Points,
    TrackData,
    Tracks,
    track_data_from_graph,
)
from ._scene import LayerList, Scene, Selection
from ._state import (
    SCHEMA_PATH,
    SCHEMA_VERSION,
    SceneState,
    scene_from_json,
    scene_json_schema,
    scene_to_json,
)

__all__ = [
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "Camera",
    "ClippingPlane",
    "Image",
    "Labels",
    "Layer",
    "LayerList",
    "Measurement",
    "Measurements",
    "Points",
    "Scene",
    "SceneState",
    "Selection",
    "TrackData",
    "Tracks",
    "scene_from_json",
    "scene_json_schema",
    "scene_to_json",
    "track_data_from_graph",
]
