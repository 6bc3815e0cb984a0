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

    def layout(self, renderer: Any) -> None:
        """Keep the value labels apart on screen: a label whose box meets one already
        placed moves up above it (issue 18.13: two nearby measurements' values were
        drawn over each other). Greedy in measurement order, so the first keeps its
        place; a handful of labels, so the pairwise check is cheap."""
        dpi = int(renderer.GetRenderWindow().GetDPI()) if renderer.GetRenderWindow() else 72
        tr = v.vtkTextRenderer.GetInstance()
        if tr is None or not self.texts:
            return
        placed: list[tuple[float, float, float, float]] = []
        gap = 2.0
        for text in self.texts:
            renderer.SetWorldPoint(*text.GetPosition(), 1.0)
            renderer.WorldToDisplay()
            x, y, _ = renderer.GetDisplayPoint()
            bbox = [0, 0, 0, 0]
            tr.GetBoundingBox(text.GetTextProperty(), text.GetInput(), bbox, dpi)
            w, h = bbox[1] - bbox[0] + 1, bbox[3] - bbox[2] + 1
            x0, x1, y0 = x - w / 2, x + w / 2, y + bbox[2]
            dy = 0.0
            moved = True
            while moved:
                moved = False
                for a0, a1, b0, b1 in placed:
                    if x0 < a1 and a0 < x1 and y0 + dy < b1 and b0 < y0 + dy + h:
                        dy = b1 + gap - y0
                        moved = True
            text.SetDisplayOffset(0, int(np.ceil(dy)))
            placed.append((x0, x1, y0 + dy, y0 + dy + h))

    def mappers(self) -> list[Any]:
        return [self.mapper]
