"""``VtkTracks``: track lines or tubes with tails, heads as spheres, divisions as cubes."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from viewer.scene import TrackData, Tracks

from . import _vtk as v
from ._base import FrameContext, VtkLayer, polydata
from ._colors import colormap_table

__all__ = ["VtkTracks", "track_window"]


def track_window(
    data: TrackData, now: float, tail: float, head: float
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Which nodes and edges fall in the time window ``[now - tail, now + head]``.

    An edge is drawn when both its nodes are inside the window, so tails end
    at the current time and divisions show as two edges from one node.

    Returns
    -------
    node_mask : (N,) bool
    edge_mask : (E,) bool
    """
    lo, hi = now - tail, now + head
    node_mask = (data.t >= lo) & (data.t <= hi)
    if not len(data.edges):
        return node_mask, np.zeros(0, dtype=bool)
    rows = data.index_of(data.edges.reshape(-1)).reshape(-1, 2)
    edge_mask = node_mask[rows[:, 0]] & node_mask[rows[:, 1]]
    return node_mask, edge_mask


class VtkTracks(VtkLayer):
    """Adapter for :class:`viewer.scene.Tracks`."""

    @property
    def time_dependent(self) -> bool:
        return True

    def __init__(self, layer: Tracks) -> None:
        super().__init__(layer)
        self.layer: Tracks = layer
        self.line_mapper = v.vtkPolyDataMapper()
        self.line_mapper.SetColorModeToDirectScalars()
        self.line_actor = v.vtkActor()
        self.line_actor.SetMapper(self.line_mapper)
        self.tube = v.vtkTubeFilter()
        self.tube.SetNumberOfSides(8)
        self.tube.CappingOn()
        sphere = v.vtkSphereSource()
        sphere.SetThetaResolution(12)
        sphere.SetPhiResolution(12)
        sphere.SetRadius(1.0)
        self.head_mapper = v.vtkGlyph3DMapper()
        self.head_mapper.SetSourceConnection(sphere.GetOutputPort())
        self.head_mapper.SetColorModeToDirectScalars()
        self.head_mapper.ScalingOff()
        self.head_actor = v.vtkActor()
        self.head_actor.SetMapper(self.head_mapper)
        cube = v.vtkCubeSource()
        self.div_mapper = v.vtkGlyph3DMapper()
        self.div_mapper.SetSourceConnection(cube.GetOutputPort())
        self.div_mapper.ScalingOff()
        self.div_mapper.ScalarVisibilityOff()
        self.div_actor = v.vtkActor()
        self.div_actor.SetMapper(self.div_mapper)
        self._sphere, self._cube = sphere, cube
        self.props = [self.line_actor, self.head_actor, self.div_actor]
        self._colors: npt.NDArray[np.float64] = np.zeros((0, 3))
        self._now: float | None = None
        # Rows of the nodes drawn as heads in the last frame (picking uses them).
        self.visible_rows: npt.NDArray[np.intp] = np.zeros(0, dtype=np.intp)

    def sync(self, ctx: FrameContext) -> None:
        if ctx.current_time != self._now:
            self.dirty = True
        super().sync(ctx)

    def node_colors(self) -> npt.NDArray[np.float64]:
        """(N, 3) RGB per node by the layer's colour mode."""
        lay, data = self.layer, self.layer.data
        assert data is not None
        n = len(data.node_ids)
        if lay.color_mode == "fixed":
            return np.tile(np.asarray(lay.fixed_color, dtype=np.float64), (n, 1))
        table = colormap_table(lay.colormap, 256)
        if lay.color_mode == "feature" and lay.feature in data.features:
            f = data.features[str(lay.feature)]
            ok = np.isfinite(f)
            lo, hi = (float(f[ok].min()), float(f[ok].max())) if ok.any() else (0.0, 1.0)
            idx = np.clip(((f - lo) / (hi - lo or 1.0) * 255).round(), 0, 255)
            out = table[np.nan_to_num(idx).astype(np.intp)]
            out[~ok] = 0.5
            return np.asarray(out)
        # Qualitative maps (tab20) cycle through their distinct colours by id.
        k = 20 if lay.colormap.startswith("tab") else 256
        small = colormap_table(lay.colormap, k)
        return np.asarray(small[np.mod(data.track_ids, k)])

    def _update(self, ctx: FrameContext) -> None:
        lay, data = self.layer, self.layer.data
        self._now = ctx.current_time
        if data is None or not len(data.node_ids):
            for m in (self.line_mapper, self.head_mapper, self.div_mapper):
                m.SetInputData(v.vtkPolyData())
            return
        colors = self.node_colors()
        node_mask, edge_mask = track_window(
            data, ctx.current_time, lay.tail_length, lay.head_length
        )
        rows = data.index_of(data.edges[edge_mask].reshape(-1)).reshape(-1, 2)
        xyz = data.zyx_um[:, ::-1]
        lines = polydata(xyz, lines=rows, colors=colors)
        if lay.display == "tubes":
            self.tube.SetInputData(lines)
            self.tube.SetRadius(lay.tube_radius_um)
            self.line_mapper.SetInputConnection(self.tube.GetOutputPort())
        else:
            self.line_mapper.SetInputData(lines)
        prop = self.line_actor.GetProperty()
        prop.SetLineWidth(lay.line_width)
        prop.SetOpacity(lay.opacity)
        # Heads: the nodes at the current time (same time unit as the layer's t).
        heads = np.flatnonzero(np.isclose(data.t, ctx.current_time) & node_mask)
        self.visible_rows = np.flatnonzero(node_mask)
        self._sphere.SetRadius(lay.head_radius_um)
        self.head_mapper.SetInputData(polydata(xyz[heads], colors=colors[heads]))
        div_rows = data.index_of(data.divisions()) if len(data.divisions()) else np.zeros(0, int)
        div_rows = div_rows[node_mask[div_rows]] if len(div_rows) else div_rows
        side = lay.head_radius_um * 1.6
        self._cube.SetXLength(side)
        self._cube.SetYLength(side)
        self._cube.SetZLength(side)
        self.div_mapper.SetInputData(polydata(xyz[div_rows]))
        self.div_actor.GetProperty().SetColor(*lay.division_color)

    def _apply_visibility(self) -> None:  # heads/divisions obey their own switches
        self.line_actor.SetVisibility(bool(self.layer.visible))
        self.head_actor.SetVisibility(bool(self.layer.visible and self.layer.show_heads))
        self.div_actor.SetVisibility(bool(self.layer.visible and self.layer.show_divisions))

    def mappers(self) -> list[Any]:
        return [self.line_mapper, self.head_mapper, self.div_mapper]
