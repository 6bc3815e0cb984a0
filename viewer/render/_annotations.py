"""``VtkPoints`` (counting markers) and ``VtkMeasurements`` (lines with text)."""

from __future__ import annotations

from typing import Any

import numpy as np

from viewer.scene import Measurements, Points

from . import _vtk as v
from ._base import FrameContext, VtkLayer, polydata
from ._colors import colormap_table

__all__ = ["VtkMeasurements", "VtkPoints"]


class VtkPoints(VtkLayer):
    """Adapter for :class:`viewer.scene.Points`: one sphere per marker, coloured by class."""

    def __init__(self, layer: Points) -> None:
        super().__init__(layer)
        self.layer: Points = layer
        self._sphere = v.vtkSphereSource()
        self._sphere.SetThetaResolution(12)
        self._sphere.SetPhiResolution(12)
        self.mapper = v.vtkGlyph3DMapper()
        self.mapper.SetSourceConnection(self._sphere.GetOutputPort())
        self.mapper.SetColorModeToDirectScalars()
        self.mapper.ScalingOff()
        self.actor = v.vtkActor()
        self.actor.SetMapper(self.mapper)
        self.props = [self.actor]

    def class_color(self, cls: str, order: list[str]) -> tuple[float, float, float]:
        """Colour of class ``cls``: the layer's choice, else tab10 by first appearance."""
        if cls in self.layer.class_colors:
            return self.layer.class_colors[cls]
        c = colormap_table("tab10", 10)[order.index(cls) % 10]
        return (float(c[0]), float(c[1]), float(c[2]))

    def _update(self, ctx: FrameContext) -> None:
        lay = self.layer
        pos = np.asarray(lay.positions_um, dtype=np.float64).reshape(-1, 3)
        order = list(dict.fromkeys(lay.classes))
        colors = np.array([self.class_color(c, order) for c in lay.classes]).reshape(-1, 3)
        self._sphere.SetRadius(lay.size_um)
        self.mapper.SetInputData(polydata(pos[:, ::-1], colors=colors))
        self.actor.GetProperty().SetOpacity(lay.opacity)


class VtkMeasurements(VtkLayer):
    """Adapter for :class:`viewer.scene.Measurements`: polylines plus a 3D text label each."""

    def __init__(self, layer: Measurements) -> None:
        super().__init__(layer)
        self.layer: Measurements = layer
        self.mapper = v.vtkPolyDataMapper()
        self.actor = v.vtkActor()
        self.actor.SetMapper(self.mapper)
        self.actor.GetProperty().LightingOff()
        self.texts: list[Any] = []
        self.props = [self.actor]

    def _update(self, ctx: FrameContext) -> None:
        lay = self.layer
        pts: list[np.ndarray] = []
        segs: list[np.ndarray] = []
        self.texts = []
        n = 0
        for m in lay.items:
            p = np.asarray(m.points_um, dtype=np.float64)[:, ::-1]
            pts.append(p)
            idx = np.arange(n, n + len(p))
            segs.append(np.stack([idx[:-1], idx[1:]], axis=1))
            n += len(p)
            text = v.vtkBillboardTextActor3D()
            text.SetInput(m.text)
            # Angles are written at their vertex, lengths at the middle.
            anchor = p[1] if m.kind == "angle" else p.mean(axis=0)
            text.SetPosition(*(float(c) for c in anchor))
            tp = text.GetTextProperty()
            tp.SetFontSize(lay.font_size)
            tp.SetColor(*lay.color)
            tp.SetJustificationToCentered()
            self.texts.append(text)
        if pts:
            self.mapper.SetInputData(
                polydata(np.concatenate(pts), lines=np.concatenate(segs).reshape(-1, 2))
            )
        else:
            self.mapper.SetInputData(v.vtkPolyData())
        prop = self.actor.GetProperty()
        prop.SetColor(*lay.color)
        prop.SetLineWidth(lay.line_width)
        prop.SetOpacity(lay.opacity)
        self.props = [self.actor, *self.texts]

    def mappers(self) -> list[Any]:
        return [self.mapper]
