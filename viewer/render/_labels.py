"""``VtkLabels``: one surface per object, all drawn by one actor.

Meshes come from :class:`LabelMeshCache` (marching cubes per object, cached by
id, rebuilt only for edited ids), are decimated to the layer's triangle budget
and merged into one ``vtkPolyData`` with a cell array ``label`` so picking can
name the object. One merged actor draws 300 objects far faster than 300 actors.
Selected objects are outlined with a silhouette that follows the camera.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import trimesh

from viewer.scene import Labels

from . import _vtk as v
from ._base import FrameContext, VtkLayer, choose_level, polydata, read_level_zyx
from ._colors import id_colors, values_to_colors
from ._image import image_data
from ._meshes import LabelMeshCache, decimate_to_budget, export_meshes

__all__ = ["VtkLabels", "label_colors", "label_transfer_functions"]

log = logging.getLogger(__name__)


def label_colors(layer: Labels, ids: list[int]) -> np.ndarray:
    """(N, 3) RGB of objects ``ids`` by ``layer``'s colour mode."""
    if layer.color_mode == "fixed":
        return np.tile(np.asarray(layer.fixed_color, dtype=np.float64), (len(ids), 1))
    if layer.color_mode == "feature" and layer.feature is not None:
        values = layer.features.get(layer.feature)
        if values is None:
            log.warning("labels %s: no feature %r; colouring by id", layer.name, layer.feature)
        else:
            return values_to_colors(ids, values, layer.colormap, layer.feature_limits)
    return id_colors(ids)


def label_transfer_functions(layer: Labels, ids: list[int]) -> tuple[Any, Any]:
    """Colour and opacity transfer functions drawing the ``k``-th of ``ids`` in its colour
    at value ``k + 1`` (the voxels hold ranks, see :meth:`VtkLabels._update_volume`).

    Piecewise constant per rank (both ends of each unit interval get its value);
    background (0) and hidden ids transparent. Used with nearest-neighbour sampling,
    so ids never blend.
    """
    hidden = set(layer.hidden_ids)
    colors = label_colors(layer, ids) if ids else np.zeros((0, 3))
    ctf = v.vtkColorTransferFunction()
    otf = v.vtkPiecewiseFunction()
    ctf.AddRGBPoint(0.0, 0.0, 0.0, 0.0)
    otf.AddPoint(0.0, 0.0)
    for k, (i, c) in enumerate(zip(ids, colors, strict=True), 1):
        a = 0.0 if i in hidden else float(layer.opacity)
        for x in (k - 0.49, k + 0.49):
            ctf.AddRGBPoint(float(x), float(c[0]), float(c[1]), float(c[2]))
            otf.AddPoint(float(x), a)
    return ctf, otf


class VtkLabels(VtkLayer):
    """Adapter for :class:`viewer.scene.Labels`: surfaces, or a label volume (``mode``).

    Volume mode ray-casts the label image with nearest-neighbour sampling and a
    piecewise-constant colour per id (background and hidden ids transparent):
    no meshing, so it suits label images with very many or very large objects.
    """

    @property
    def selection_dependent(self) -> bool:
        return True

    def __init__(self, layer: Labels) -> None:
        super().__init__(layer)
        self.layer: Labels = layer
        self.cache = LabelMeshCache()
        self.meshes: dict[int, trimesh.Trimesh] = {}
        self._decimated: dict[int, trimesh.Trimesh] = {}
        self._labels_dirty = True
        self._level = -1
        self.mapper = v.vtkPolyDataMapper()
        self.mapper.SetColorModeToDirectScalars()
        self.mapper.SetScalarModeToUsePointData()
        self.actor = v.vtkActor()
        self.actor.SetMapper(self.mapper)
        self.actor.GetProperty().SetSpecular(0.2)
        self.outline = v.vtkPolyDataSilhouette()
        self.outline.SetEnableFeatureAngle(False)
        self.outline.SetBorderEdges(False)
        om = v.vtkPolyDataMapper()
        om.SetInputConnection(self.outline.GetOutputPort())
        om.ScalarVisibilityOff()
        self.outline_actor = v.vtkActor()
        self.outline_actor.SetMapper(om)
        self.outline_actor.GetProperty().SetColor(1.0, 1.0, 1.0)
        self.outline_actor.GetProperty().SetLineWidth(3.0)
        self.outline_actor.GetProperty().LightingOff()
        self._outline_on = False
        self.volume_mapper = v.vtkOpenGLGPUVolumeRayCastMapper()
        self.volume_property = v.vtkVolumeProperty()
        self.volume_property.SetInterpolationTypeToNearest()
        self.volume_property.ShadeOff()
        self.volume = v.vtkVolume()
        self.volume.SetMapper(self.volume_mapper)
        self.volume.SetProperty(self.volume_property)
        self._volume_level = -1
        self._volume_ids: list[int] = []
        # Level chosen by multiscale streaming for surface meshes (see
        # viewer.render._streaming.StreamingController); None: by the voxel budget.
        self.level_override: int | None = None
        self.props = [self.actor, self.outline_actor]
        layer.labels_update.connect(self._on_labels_update)

    @property
    def edits_pending(self) -> bool:
        # Edited objects are re-meshed in the sync that follows the edit.
        return self._labels_dirty

    def _on_labels_update(self, ids: list[int]) -> None:
        self.cache.invalidate(ids)
        self._labels_dirty = True
        self.dirty = True

    def _on_data(self, *_: object) -> None:
        super()._on_data()
        self._labels_dirty = True

    def set_camera(self, camera: Any) -> None:
        self.outline.SetCamera(camera)

    def close(self) -> None:
        self.layer.labels_update.disconnect(self._on_labels_update)
        super().close()

    def _apply_visibility(self) -> None:
        self.volume.SetVisibility(bool(self.layer.visible))
        self.actor.SetVisibility(bool(self.layer.visible))
        self.outline_actor.SetVisibility(bool(self.layer.visible and self._outline_on))

    def _update(self, ctx: FrameContext) -> None:
        lay = self.layer
        src = lay.data
        if src is None:
            self.mapper.SetInputData(v.vtkPolyData())
            return
        level = (
            self.level_override
            if self.level_override is not None and lay.level is None
            else choose_level(src, ctx.voxel_budget, lay.level)
        )
        if lay.mode == "volume":
            self._update_volume(level)
            return
        self.props = [self.actor, self.outline_actor]
        if self._labels_dirty or level != self._level:
            if level != self._level:
                self.cache.clear()
            arr, spacing, origin = read_level_zyx(src, level)
            self.meshes = self.cache.update(arr, spacing, origin, lay.smoothing_iterations)
            self._decimated = decimate_to_budget(self.meshes, lay.triangle_budget)
            self._level = level
            self._labels_dirty = False
        hidden = set(lay.hidden_ids)
        ids = [i for i in sorted(self._decimated) if i not in hidden]
        self.mapper.SetInputData(self._merged(ids))
        self.actor.GetProperty().SetOpacity(lay.opacity)
        sel = ctx.selection
        chosen = [i for i in sel.label_ids if i in self._decimated and i not in hidden]
        if lay.outline_selected and sel.layer == lay.name and chosen:
            self.outline.SetInputData(self._merged(chosen, colored=False))
            self._outline_on = True
        else:
            self._outline_on = False

    def _update_volume(self, level: int) -> None:
        lay = self.layer
        assert lay.data is not None
        self._outline_on = False
        if self._labels_dirty or level != self._volume_level:
            arr, spacing, origin = read_level_zyx(lay.data, level)
            # Voxels hold the rank of their id (0 background): VTK's ray caster samples
            # its transfer functions from a table of at most GL_MAX_TEXTURE_SIZE entries
            # (16,384 on llvmpipe), so raw ids beyond that would share colours. float32
            # is a type every GPU path samples. (Streamed label volumes have no such
            # limit: viewer.render._gl_volumes.VtkRaycastLabels reads 32-bit ids.)
            ids, inverse = np.unique(arr, return_inverse=True)
            first = int(ids[0] == 0)
            ranks = inverse.reshape(arr.shape).astype(np.float32) + (1 - first)
            self.volume_mapper.SetInputData(image_data(ranks, origin, spacing))
            self._volume_ids = [int(i) for i in ids[first:]]
            self._volume_level = level
            self._labels_dirty = False
        ctf, otf = label_transfer_functions(lay, self._volume_ids)
        self.volume_property.SetColor(ctf)
        self.volume_property.SetScalarOpacity(otf)
        # The layer's opacity per finest voxel (as the streamed label volume draws it):
        # 1 is opaque at an object's first voxel.
        fine = float(np.min(lay.data.levels[0].scale_um[-3:]))
        self.volume_property.SetScalarOpacityUnitDistance(fine)
        self.props = [self.volume]

    def mappers(self) -> list[Any]:
        return [self.mapper, self.outline_actor.GetMapper(), self.volume_mapper]

    def colors_for(self, ids: list[int]) -> np.ndarray:
        """(N, 3) RGB of objects ``ids`` by the layer's colour mode."""
        return label_colors(self.layer, ids)

    def _merged(self, ids: list[int], colored: bool = True) -> Any:
        if not ids:
            return v.vtkPolyData()
        meshes = [self._decimated[i] for i in ids]
        counts = np.array([len(m.vertices) for m in meshes])
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        pts = np.concatenate([m.vertices for m in meshes])
        faces = np.concatenate([m.faces + o for m, o in zip(meshes, offsets, strict=True)])
        lab = np.repeat(np.asarray(ids, dtype=np.int64), [len(m.faces) for m in meshes])
        colors = np.repeat(self.colors_for(ids), counts, axis=0) if colored else None
        normals = np.concatenate([m.vertex_normals for m in meshes])
        return polydata(
            pts, polys=faces, colors=colors, cell_arrays={"label": lab}, normals=normals
        )

    def export(self, ids: list[int], path: str) -> Any:
        """Write the (smoothed, undecimated) meshes of ``ids`` as GLB/PLY/STL via trimesh."""
        return export_meshes(self.meshes, ids, path)
