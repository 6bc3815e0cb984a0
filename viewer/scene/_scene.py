"""The scene: layer list, camera, clipping planes, current time and selection."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt
from psygnal import EventedModel, Signal, SignalGroup
from psygnal.containers import EventedList
from pydantic import ConfigDict, Field

from analysis.errors import ParameterError

from ._camera import Camera, ClippingPlane
from ._layers import Layer

__all__ = ["LayerList", "Scene", "Selection"]


class LayerList(EventedList[Layer]):
    """Layers in drawing order, with unique names.

    Events (from ``psygnal.containers.EventedList``)
    ------------------------------------------------
    inserting, inserted, removing, removed, moving, moved, changed, reordered
    """

    def insert(self, index: int, value: Layer) -> None:
        if not isinstance(value, Layer):
            raise ParameterError(f"only layers can be added to a scene, got {type(value).__name__}")
        if not value.name:
            value.name = f"{value.kind} {len(self)}"
        if value.name in self.names:
            raise ParameterError(f"a layer named {value.name!r} is already in the scene")
        super().insert(index, value)

    @property
    def names(self) -> list[str]:
        return [lay.name for lay in self]

    def get(self, name: str) -> Layer:
        """The layer called ``name`` (ParameterError when absent)."""
        for lay in self:
            if lay.name == name:
                return lay
        raise ParameterError(f"no layer named {name!r} (layers: {', '.join(self.names)})")


class Selection(EventedModel):
    """What is selected: objects of one labels layer and/or nodes of one tracks layer.

    Events
    ------
    layer, label_ids, node_ids
    """

    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    layer: str | None = None
    label_ids: list[int] = Field(default_factory=list)
    node_ids: list[int] = Field(default_factory=list)


class SceneEvents(SignalGroup):
    """Scene-level events (layers, camera, planes and selection have their own)."""

    current_time = Signal(float)


class Scene:
    """Everything that is drawn: GUI-free, VTK-free, evented.

    Attributes
    ----------
    layers : LayerList
    camera : Camera
    clipping_planes : EventedList of ClippingPlane
        Any number; every plane applies to every layer.
    selection : Selection
    current_time : float
        Time shown by time-dependent layers (tracks); emits ``events.current_time``.

    Handlers connected to these events must only mark things dirty; drawing
    happens once per frame in the renderer.
    """

    def __init__(self, layers: Iterable[Layer] = ()) -> None:
        self.events = SceneEvents()
        self.layers = LayerList()
        self.camera = Camera()
        self.clipping_planes: EventedList[ClippingPlane] = EventedList()
        self.selection = Selection()
        self._current_time = 0.0
        for lay in layers:
            self.layers.append(lay)

    @property
    def current_time(self) -> float:
        return self._current_time

    @current_time.setter
    def current_time(self, value: float) -> None:
        v = float(value)
        if v != self._current_time:
            self._current_time = v
            self.events.current_time.emit(v)

    def add(self, layer: Layer) -> Layer:
        """Append ``layer`` and return it."""
        self.layers.append(layer)
        return layer

    def extent_world(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(lo, hi) zyx µm over all visible layers' data ((0,0,0), (1,1,1) if empty)."""
        los, his = [], []
        for lay in self.layers:
            ext = lay.extent_world() if lay.visible else None
            if ext is not None:
                los.append(ext[0])
                his.append(ext[1])
        if not los:
            return np.zeros(3), np.ones(3)
        return np.min(los, axis=0), np.max(his, axis=0)

    def reset_camera(
        self,
        direction: tuple[float, float, float] = (1.0, 0.0, 0.0),
        view_up: tuple[float, float, float] = (0.0, -1.0, 0.0),
    ) -> None:
        """Frame all visible layers.

        The default looks down the stack (along +z) with y pointing down and x
        to the right on screen, the way slices are shown as images.
        """
        lo, hi = self.extent_world()
        self.camera.frame(lo, hi, direction=direction, view_up=view_up)

    def add_clipping_plane(self, **kw: Any) -> ClippingPlane:
        """Append a ``ClippingPlane(**kw)`` and return it."""
        plane = ClippingPlane(**kw)
        self.clipping_planes.append(plane)
        return plane
