"""Scene state to and from JSON, with a versioned schema.

The schema is the pydantic model :class:`SceneState`; ``scene-schema.json``
next to this module is generated from it (``python -m viewer.scene`` rewrites
it) and a test keeps the two in sync. Layer data are not stored, only where
they came from (``layer.source``); a ``resolve`` callback re-attaches data on
load. Reading and writing the file is the caller's business (only
``analysis.io`` opens files), so these functions take and return text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from analysis.errors import FormatError

from ._camera import Camera, ClippingPlane
from ._layers import Image, Labels, Layer, Measurements, Points, Tracks
from ._scene import Scene, Selection

__all__ = [
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "SceneState",
    "scene_from_json",
    "scene_json_schema",
    "scene_to_json",
]

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("scene-schema.json")

AnyLayer = Annotated[Image | Labels | Tracks | Points | Measurements, Field(discriminator="kind")]


class SceneState(BaseModel):
    """Everything needed to reopen a view (not the data themselves)."""

    model_config = ConfigDict(extra="forbid", title="vrscope scene")

    schema_version: Literal[1] = 1
    camera: Camera = Field(default_factory=lambda: Camera())
    clipping_planes: list[ClippingPlane] = Field(default_factory=list)
    current_time: float = 0.0
    selection: Selection = Field(default_factory=Selection)
    layers: list[AnyLayer] = Field(default_factory=list)


def scene_json_schema() -> dict[str, Any]:
    """The JSON schema of the saved scene (what ``scene-schema.json`` holds)."""
    schema = SceneState.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def scene_to_json(scene: Scene, indent: int | None = 2) -> str:
    """Serialise ``scene`` (display state, camera, planes, time, selection, layer sources)."""
    state = SceneState(
        camera=scene.camera.model_copy(),
        clipping_planes=[p.model_copy() for p in scene.clipping_planes],
        current_time=scene.current_time,
        selection=scene.selection.model_copy(),
        layers=[lay.model_copy() for lay in scene.layers],  # type: ignore[misc]
    )
    return state.model_dump_json(indent=indent)


def scene_from_json(text: str, resolve: Callable[[Layer], None] | None = None) -> Scene:
    """Build a scene from ``scene_to_json`` output.

    Parameters
    ----------
    text : str
    resolve : callable(layer), optional
        Called once per layer to attach its data (e.g. open ``layer.source``).

    Raises
    ------
    FormatError
        Not JSON, a different schema version, or a field that fails validation.
    """
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"scene file is not JSON: {exc}") from exc
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != SCHEMA_VERSION:
        raise FormatError(
            f"scene schema_version {version!r} is not supported (this vrscope reads {SCHEMA_VERSION})"
        )
    try:
        state = SceneState.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise FormatError(f"scene field {where}: {first['msg']}") from exc
    scene = Scene()
    scene.camera.update(state.camera.model_dump())
    for plane in state.clipping_planes:
        scene.clipping_planes.append(plane)
    scene.current_time = state.current_time
    scene.selection.update(state.selection.model_dump())
    for lay in state.layers:
        if resolve is not None:
            resolve(lay)
        scene.layers.append(lay)
    return scene
