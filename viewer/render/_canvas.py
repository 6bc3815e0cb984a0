"""``SceneRenderer``: draws a :class:`viewer.scene.Scene` with VTK, offscreen or in a window.

It keeps one ``Vtk<Layer>`` adapter per layer, found through
:data:`layer_to_visual` (napari's ``layer_to_visual``). Scene events only mark
adapters dirty; :meth:`SceneRenderer.render` syncs what changed, then draws once.
The same object draws a desktop frame, a PNG, a movie frame, or several eye
views per frame (:meth:`SceneRenderer.render_views`, used by XR).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from viewer.scene import (
    Camera,
    Image,
    Labels,
    Layer,
    Measurements,
    Points,
    Scene,
    Tracks,
)
from viewer.streaming import perspective_matrix

from . import _vtk as v
from ._annotations import VtkMeasurements, VtkPoints
from ._base import FrameContext, VtkLayer
from ._image import (
    VolumeQuality,
    VtkImage,
    _MapperGeometry,
    apply_volume_quality,
    resolve_quality,
)
from ._labels import VtkLabels
from ._tracks import VtkTracks

__all__ = [
    "EyeView",
    "PickResult",
    "SceneRenderer",
    "layer_to_visual",
    "perspective",
    "stereo_views",
]

log = logging.getLogger(__name__)

#: Which adapter draws which layer type; register new layer types here.
layer_to_visual: dict[type[Layer], type[VtkLayer]] = {
    Image: VtkImage,
    Labels: VtkLabels,
    Tracks: VtkTracks,
    Points: VtkPoints,
    Measurements: VtkMeasurements,
}


def _xyz(zyx: Sequence[float] | npt.NDArray[Any]) -> tuple[float, float, float]:
    a = np.asarray(zyx, dtype=np.float64)
    return (float(a[2]), float(a[1]), float(a[0]))


#: One perspective matrix for the renderer and the streamer's level of detail.
perspective = perspective_matrix


@dataclass(frozen=True)
class EyeView:
    """One eye's view: pose in world zyx µm and an explicit projection.

    Parameters
    ----------
    position_um : (3,) zyx
    forward : (3,) zyx, view direction
    up : (3,) zyx
    projection : (4, 4) OpenGL projection matrix (eye space -> clip space), e.g.
        from :func:`perspective` or from an OpenXR ``XrFovf``.
    """

    position_um: tuple[float, float, float]
    forward: tuple[float, float, float]
    up: tuple[float, float, float]
    projection: npt.NDArray[np.float64]


def stereo_views(
    camera: Camera, ipd_um: float, aspect: float, near: float, far: float
) -> tuple[EyeView, EyeView]:
    """Left and right eyes ``ipd_um`` apart along the camera's right vector, parallel axes."""
    fwd = camera.direction
    up = np.asarray(camera.view_up, dtype=np.float64)
    # right = fwd x up computed in xyz (screen handedness), returned as zyx.
    right = np.cross(fwd[::-1], up[::-1])[::-1]
    right /= np.linalg.norm(right)
    up = np.cross(right[::-1], fwd[::-1])[::-1]
    proj = perspective(camera.view_angle, aspect, near, far)
    pos = np.asarray(camera.position, dtype=np.float64)
    out = []
    for sign in (-0.5, 0.5):
        p = pos + sign * ipd_um * right
        out.append(
            EyeView(
                (float(p[0]), float(p[1]), float(p[2])),
                (float(fwd[0]), float(fwd[1]), float(fwd[2])),
                (float(up[0]), float(up[1]), float(up[2])),
                proj,
            )
        )
    return out[0], out[1]


@dataclass(frozen=True)
class PickResult:
    """What lies under a screen point.

    Attributes
    ----------
    world_um : (z, y, x) or None
        The first surface or opaque-enough voxel hit.
    layer : str or None
        Layer of the hit.
    label : int or None
        Object id when a labels surface was hit.
    node_id : int or None
        Nearest visible track node within the pixel tolerance.
    node_layer : str or None
    """

    world_um: tuple[float, float, float] | None
    layer: str | None = None
    label: int | None = None
    node_id: int | None = None
    node_layer: str | None = None


class _Overlays:
    """Scale bar (bottom left) and axes (corner viewport)."""

    def __init__(self, window: Any, main: Any) -> None:
        self.main = main
        self.bar = v.vtkActor2D()
        self.bar_mapper = v.vtkPolyDataMapper2D()
        self.bar.SetMapper(self.bar_mapper)
        self.bar.GetProperty().SetColor(1.0, 1.0, 1.0)
        self.bar.GetProperty().SetLineWidth(3.0)
        self.text = v.vtkTextActor()
        self.text.GetTextProperty().SetFontSize(14)
        self.text.GetTextProperty().SetColor(1.0, 1.0, 1.0)
        # Scale bar and its text in a layer above the scene's renderer: they stay on top
        # of volumes drawn after the scene's geometry (single-pass volumes are drawn at
        # the end of layer 0, see _gl_volumes.py).
        self.text_ren = v.vtkRenderer()
        self.text_ren.SetLayer(1)
        self.text_ren.InteractiveOff()
        # Keep layer 0's depth (picking and tests read it; a layer clears its viewport's).
        self.text_ren.PreserveDepthBufferOn()
        self.text_ren.AddViewProp(self.bar)
        self.text_ren.AddViewProp(self.text)
        self.axes_ren = v.vtkRenderer()
        self.axes_ren.SetViewport(0.85, 0.0, 1.0, 0.15)
        self.axes_ren.SetLayer(1)
        self.axes_ren.InteractiveOff()
        self.axes = v.vtkAxesActor()
        self.axes_ren.AddActor(self.axes)
        window.SetNumberOfLayers(2)
        window.AddRenderer(self.text_ren)
        window.AddRenderer(self.axes_ren)

    def set_visible(self, scale_bar: bool, axes: bool) -> None:
        self.bar.SetVisibility(scale_bar)
        self.text.SetVisibility(scale_bar)
        self.axes_ren.SetDraw(axes)

    def update(self, camera: Camera, size: tuple[int, int]) -> None:
        w, h = size
        if camera.parallel_projection:
            view_h = 2 * camera.parallel_scale
        else:
            view_h = 2 * camera.distance * math.tan(math.radians(camera.view_angle) / 2)
        px_per_um = h / max(view_h, 1e-12)
        target = 0.2 * w / px_per_um
        exp = math.floor(math.log10(target)) if target > 0 else 0
        length = max(
            (m * 10.0**exp for m in (1, 2, 5) if m * 10.0**exp <= target), default=10.0**exp
        )
        px = length * px_per_um
        x0, y0 = 15.0, 15.0
        from ._base import polydata

        self.bar_mapper.SetInputData(polydata([[x0, y0, 0], [x0 + px, y0, 0]], lines=[[0, 1]]))
        self.text.SetInput(f"{length:g} µm")
        self.text.SetPosition(x0, y0 + 6)
        cam = self.axes_ren.GetActiveCamera()
        d = camera.direction[::-1]
        cam.SetFocalPoint(0, 0, 0)
        cam.SetPosition(*(-d * 5))
        cam.SetViewUp(*_xyz(camera.view_up))
        self.axes_ren.ResetCameraClippingRange()


class SceneRenderer:
    """Draw a :class:`Scene` with VTK.

    Parameters
    ----------
    scene : Scene
    size : (width, height), default: (400, 300)
    offscreen : bool, default: True
        Render into an offscreen buffer (EGL when no display).
    render_window : vtkRenderWindow, optional
        Draw into this window (e.g. a Qt widget's) instead of making one.
    background : (r, g, b), default: black
    show_scale_bar, show_axes : bool, default: True
    voxel_budget : int, default: 2**24
        Largest volume (voxels) read for an Image or Labels layer whose level is None.
    quality : str or VolumeQuality, default: "still"
        How finely volumes are ray cast (``"fine"``, ``"still"``, ``"interactive"``
        or a :class:`VolumeQuality`); change it with :meth:`set_quality`, e.g.
        ``"interactive"`` while the user drags and ``"still"`` for the frame after.

    Notes
    -----
    Call :meth:`close` when done: it disconnects from the scene and frees the
    GL resources (a test creates and closes renderers in a loop to check for leaks).
    """

    def __init__(
        self,
        scene: Scene,
        size: tuple[int, int] = (400, 300),
        offscreen: bool = True,
        render_window: Any = None,
        background: tuple[float, float, float] = (0.0, 0.0, 0.0),
        show_scale_bar: bool = True,
        show_axes: bool = True,
        voxel_budget: int = 2**24,
        quality: str | VolumeQuality = "still",
    ) -> None:
        self.scene = scene
        self.quality = resolve_quality(quality)
        self._volume_geometry = _MapperGeometry()
        self.voxel_budget = int(voxel_budget)
        self._own_window = render_window is None
        self.window = render_window if render_window is not None else v.vtkRenderWindow()
        if self._own_window:
            self.window.SetOffScreenRendering(bool(offscreen))
            self.window.SetMultiSamples(0)
            self.window.SetSize(int(size[0]), int(size[1]))
        self.renderer = v.vtkRenderer()
        self.renderer.SetBackground(*background)
        self.renderer.SetLayer(0)
        self.window.AddRenderer(self.renderer)
        # Several bricks of one volume must be composited back to front.
        culler: Any = self.renderer.GetCullers().GetItemAsObject(0)
        culler.SetSortingStyleToBackToFront()
        self.overlays = _Overlays(self.window, self.renderer)
        self.overlays.set_visible(show_scale_bar, show_axes)
        self.planes = v.vtkPlaneCollection()
        self.adapters: dict[int, VtkLayer] = {}
        self._added: dict[int, list[Any]] = {}
        self._camera_dirty = True
        self._planes_dirty = True
        self._time_dirty = True
        self._selection_dirty = True
        self._closed = False
        self._connect()
        for layer in scene.layers:
            self._add_adapter(layer)

    # -- events (only mark dirty) -------------------------------------------
    def _connect(self) -> None:
        s = self.scene
        s.layers.events.inserted.connect(self._on_inserted)
        s.layers.events.removed.connect(self._on_removed)
        s.camera.events.all.connect(self._on_camera)
        s.clipping_planes.events.all.connect(self._on_planes)
        s.events.current_time.connect(self._on_time)
        s.selection.events.all.connect(self._on_selection)

    def _disconnect(self) -> None:
        s = self.scene
        s.layers.events.inserted.disconnect(self._on_inserted)
        s.layers.events.removed.disconnect(self._on_removed)
        s.camera.events.all.disconnect(self._on_camera)
        s.clipping_planes.events.all.disconnect(self._on_planes)
        s.events.current_time.disconnect(self._on_time)
        s.selection.events.all.disconnect(self._on_selection)

    def _on_inserted(self, index: int, layer: Layer) -> None:
        self._add_adapter(layer)

    def _on_removed(self, index: int, layer: Layer) -> None:
        adapter = self.adapters.pop(id(layer), None)
        if adapter is not None:
            for p in self._added.pop(id(layer), []):
                self.renderer.RemoveViewProp(p)
            adapter.close()

    def _on_camera(self, *_: object) -> None:
        self._camera_dirty = True

    def _on_planes(self, *_: object) -> None:
        self._planes_dirty = True

    def _on_time(self, *_: object) -> None:
        self._time_dirty = True

    def _on_selection(self, *_: object) -> None:
        self._selection_dirty = True

    def _add_adapter(self, layer: Layer) -> None:
        for cls in type(layer).__mro__:
            visual = layer_to_visual.get(cls)
            if visual is not None:
                break
        else:
            raise TypeError(f"no VTK adapter for layer type {type(layer).__name__}")
        adapter = visual(layer)
        if isinstance(adapter, VtkLabels):
            adapter.set_camera(self.renderer.GetActiveCamera())
        self.adapters[id(layer)] = adapter
        self._added[id(layer)] = []
        self._planes_dirty = True

    def adapter(self, layer: Layer | str) -> VtkLayer:
        """The adapter drawing ``layer`` (a layer or its name)."""
        lay = self.scene.layers.get(layer) if isinstance(layer, str) else layer
        return self.adapters[id(lay)]

    # -- frame ----------------------------------------------------------------
    @property
    def size(self) -> tuple[int, int]:
        w, h = self.window.GetSize()
        return int(w), int(h)

    def set_size(self, width: int, height: int) -> None:
        self.window.SetSize(int(width), int(height))

    def _context(self) -> FrameContext:
        return FrameContext(
            current_time=self.scene.current_time,
            selection=self.scene.selection,
            planes=list(self.scene.clipping_planes),
            voxel_budget=self.voxel_budget,
            display_size=self.size,
        )

    def sync(self) -> None:
        """Bring the VTK objects up to date with the scene (no drawing)."""
        if self._closed:
            raise RuntimeError("this SceneRenderer is closed")
        ctx = self._context()
        changed = False
        for adapter in self.adapters.values():
            if self._time_dirty and adapter.time_dependent:
                adapter.dirty = True
            if self._selection_dirty and adapter.selection_dependent:
                adapter.dirty = True
            changed = changed or adapter.dirty
            adapter.sync(ctx)
            self._reconcile(adapter)
        self._time_dirty = self._selection_dirty = False
        if self._planes_dirty:
            self._apply_planes()
        self._apply_camera(self.scene.camera)
        for adapter in self.adapters.values():
            adapter.layout(self.renderer)
        self._apply_quality(refresh=changed)
        self.overlays.update(self.scene.camera, self.size)

    def set_quality(self, quality: str | VolumeQuality) -> None:
        """Volume ray-casting quality from the next frame on (see :class:`VolumeQuality`)."""
        self.quality = resolve_quality(quality)

    def volume_mappers(self) -> list[Any]:
        """The GPU ray-cast mappers of every layer's volumes (bricks and label volumes)."""
        out = []
        for adapter in self.adapters.values():
            for p in adapter.props:
                if p.IsA("vtkVolume"):
                    m = p.GetMapper()
                    if m is not None and m.IsA("vtkGPUVolumeRayCastMapper"):
                        out.append(m)
        return out

    def _apply_quality(self, refresh: bool = False) -> None:
        # Ray spacing follows the projected voxel size, so it is set for each view drawn;
        # volumes' inputs only change when an adapter synced (refresh).
        apply_volume_quality(
            self.volume_mappers(),
            self.quality,
            self.renderer.GetActiveCamera(),
            self.size,
            self._volume_geometry,
            refresh,
        )

    def _reconcile(self, adapter: VtkLayer) -> None:
        key = id(adapter.layer)
        have = self._added[key]
        want = list(adapter.props)
        for p in have:
            if not any(p is q for q in want):
                self.renderer.RemoveViewProp(p)
        for p in want:
            if not any(p is q for q in have):
                self.renderer.AddViewProp(p)
        self._added[key] = want
        # Props made since the last plane change (new bricks, new text) get the planes too;
        # setting the same collection again does not modify the mapper.
        for m in adapter.mappers():
            m.SetClippingPlanes(self.planes)

    def _apply_planes(self) -> None:
        self.planes.RemoveAllItems()
        for p in self.scene.clipping_planes:
            if not p.enabled:
                continue
            plane = v.vtkPlane()
            plane.SetOrigin(*_xyz(p.origin))
            plane.SetNormal(*_xyz(p.normal))
            self.planes.AddItem(plane)
        for adapter in self.adapters.values():
            for m in adapter.mappers():
                m.SetClippingPlanes(self.planes)
                m.Modified()
            if isinstance(adapter, VtkImage):
                adapter.set_clipping(self.planes)
        self._planes_dirty = False

    def _apply_camera(self, c: Camera) -> None:
        cam = self.renderer.GetActiveCamera()
        cam.SetUseExplicitProjectionTransformMatrix(False)
        cam.SetPosition(*_xyz(c.position))
        cam.SetFocalPoint(*_xyz(c.focal_point))
        cam.SetViewUp(*_xyz(c.view_up))
        cam.SetViewAngle(c.view_angle)
        cam.SetParallelProjection(bool(c.parallel_projection))
        cam.SetParallelScale(c.parallel_scale)
        self.renderer.ResetCameraClippingRange()
        self._include_gl_volumes()
        self._camera_dirty = False

    def _include_gl_volumes(self) -> None:
        # Volumes drawn in one pass by viewer.raycast are no VTK props: widen the
        # clipping range to their boxes too (the rays start at the near plane).
        boxes = [
            a.bounds_xyz()  # type: ignore[attr-defined]
            for a in self.adapters.values()
            if callable(getattr(a, "bounds_xyz", None)) and a.layer.visible
        ]
        if not boxes:
            return
        b = np.array(boxes, dtype=np.float64)
        lo, hi = b[:, 0::2].min(axis=0), b[:, 1::2].max(axis=0)
        props = np.array(self.renderer.ComputeVisiblePropBounds(), dtype=np.float64)
        if props[0] <= props[1]:
            lo, hi = np.minimum(lo, props[0::2]), np.maximum(hi, props[1::2])
        self.renderer.ResetCameraClippingRange(
            float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]), float(lo[2]), float(hi[2])
        )

    def render(self) -> None:
        """Sync what changed and draw one frame."""
        self.sync()
        self.window.Render()

    def _grab(self) -> npt.NDArray[np.uint8]:
        f = v.vtkWindowToImageFilter()
        f.SetInput(self.window)
        f.SetInputBufferTypeToRGB()
        f.ReadFrontBufferOff()
        f.ShouldRerenderOff()
        f.Update()
        out = f.GetOutput()
        w, h, _ = out.GetDimensions()
        arr = v.vtk_to_numpy(out.GetPointData().GetScalars()).reshape(h, w, 3)
        # VTK's rows start at the bottom; images start at the top.
        return np.ascontiguousarray(arr[::-1])

    def screenshot(self) -> npt.NDArray[np.uint8]:
        """Render and return the frame as an (H, W, 3) uint8 RGB image (row 0 at the top)."""
        self.render()
        return self._grab()

    def render_views(self, views: Sequence[EyeView]) -> list[npt.NDArray[np.uint8]]:
        """Draw the same scene from each view; one (H, W, 3) image per view.

        The scene is synced once; each view sets the camera pose and its explicit
        projection matrix (as OpenXR gives them), so stereo costs one sync and
        two draws. The scene camera is restored afterwards.
        """
        self.sync()
        cam = self.renderer.GetActiveCamera()
        images = []
        for view in views:
            self.apply_view(view)
            self.window.Render()
            images.append(self._grab())
        cam.SetUseExplicitProjectionTransformMatrix(False)
        self._apply_camera(self.scene.camera)
        return images

    def apply_view(self, view: EyeView) -> None:
        """Set the VTK camera to an eye pose and explicit projection (XR swapchain rendering)."""
        cam = self.renderer.GetActiveCamera()
        pos = np.asarray(view.position_um, dtype=np.float64)
        cam.SetPosition(*_xyz(pos))
        cam.SetFocalPoint(*_xyz(pos + np.asarray(view.forward, dtype=np.float64)))
        cam.SetViewUp(*_xyz(view.up))
        m = v.vtkMatrix4x4()
        for i in range(4):
            for j in range(4):
                m.SetElement(i, j, float(view.projection[i, j]))
        cam.SetExplicitProjectionTransformMatrix(m)
        cam.SetUseExplicitProjectionTransformMatrix(True)
        self._apply_quality()

    # -- picking ----------------------------------------------------------------
    def project(self, points_zyx: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """(N, 2) pixel positions (column, row from the top) of world zyx points."""
        p = np.atleast_2d(np.asarray(points_zyx, dtype=np.float64))
        w, h = self.size
        cam = self.renderer.GetActiveCamera()
        mat = cam.GetCompositeProjectionTransformMatrix(w / h, -1, 1)
        mm = np.array([[mat.GetElement(i, j) for j in range(4)] for i in range(4)])
        hom = np.c_[p[:, ::-1], np.ones(len(p))] @ mm.T
        ndc = hom[:, :2] / hom[:, 3:4]
        col = (ndc[:, 0] + 1) / 2 * w - 0.5
        row = (1 - ndc[:, 1]) / 2 * h - 0.5
        return np.stack([col, row], axis=1)

    def pick(self, x: float, y: float, node_tolerance_px: float = 10.0) -> PickResult:
        """What is under pixel (``x`` column, ``y`` row from the top) of the last frame."""
        self.sync()
        w, h = self.size
        picker = v.vtkVolumePicker()
        picker.SetTolerance(1e-4)
        picker.SetVolumeOpacityIsovalue(0.1)
        picker.PickClippingPlanesOff()
        hit = picker.Pick(float(x) + 0.5, float(h - 1 - y) + 0.5, 0.0, self.renderer)
        world: tuple[float, float, float] | None = None
        layer_name: str | None = None
        label: int | None = None
        if hit:
            px, py, pz = picker.GetPickPosition()
            world = (pz, py, px)
            prop = picker.GetProp3D()
            for adapter in self.adapters.values():
                if any(prop is p for p in adapter.props):
                    layer_name = adapter.layer.name
                    if isinstance(adapter, VtkLabels) and picker.GetCellId() >= 0:
                        arr = picker.GetDataSet().GetCellData().GetArray("label")
                        if arr is not None:
                            label = int(arr.GetValue(picker.GetCellId()))
                    break
        world, layer_name, label = self._pick_single_pass(x, y, world, layer_name, label)
        node_id, node_layer = self._nearest_node(x, y, node_tolerance_px)
        return PickResult(world, layer_name, label, node_id, node_layer)

    def _pick_single_pass(
        self,
        x: float,
        y: float,
        world: tuple[float, float, float] | None,
        layer_name: str | None,
        label: int | None,
    ) -> tuple[tuple[float, float, float] | None, str | None, int | None]:
        """Volumes drawn in one pass (no VTK prop) picked on the CPU, if nearer than ``world``."""
        single = [
            a
            for a in self.adapters.values()
            if hasattr(a, "pick_segment") or hasattr(a, "pick_label")
        ]
        if not single:
            return world, layer_name, label
        ren = self.renderer
        h = self.size[1]
        ends = []
        for zd in (0.0, 1.0):
            ren.SetDisplayPoint(float(x) + 0.5, float(h - 1 - y) + 0.5, zd)
            ren.DisplayToWorld()
            wx, wy, wz, ww = ren.GetWorldPoint()
            ends.append(np.array([wz, wy, wx]) / (ww or 1.0))
        p0, p1 = ends
        seg = p1 - p0
        best = 2.0
        if world is not None:
            best = float(np.dot(np.asarray(world) - p0, seg) / max(np.dot(seg, seg), 1e-300))
        for a in single:
            hit_id: int | None = None
            adapter: Any = a  # VtkRaycastImage (pick_segment) or VtkRaycastLabels (pick_label)
            if hasattr(adapter, "pick_label"):
                got = adapter.pick_label(p0, p1)
                t, hit_id = got if got is not None else (None, None)
            else:
                t = adapter.pick_segment(p0, p1)
            if t is not None and t < best:
                best = t
                pt = p0 + t * seg
                world = (float(pt[0]), float(pt[1]), float(pt[2]))
                layer_name, label = a.layer.name, hit_id
        return world, layer_name, label

    def _nearest_node(self, x: float, y: float, tol: float) -> tuple[int | None, str | None]:
        best: tuple[float, int | None, str | None] = (tol, None, None)
        for adapter in self.adapters.values():
            if not isinstance(adapter, VtkTracks) or not adapter.layer.visible:
                continue
            data = adapter.layer.data
            rows = adapter.visible_rows
            if data is None or not len(rows):
                continue
            px = self.project(data.zyx_um[rows])
            d = np.hypot(px[:, 0] - x, px[:, 1] - y)
            i = int(np.argmin(d))
            if d[i] <= best[0]:
                best = (float(d[i]), int(data.node_ids[rows[i]]), adapter.layer.name)
        return best[1], best[2]

    # -- lifetime -----------------------------------------------------------------
    def close(self) -> None:
        """Disconnect from the scene and release the window's GL resources."""
        if self._closed:
            return
        self._disconnect()
        for adapter in self.adapters.values():
            adapter.close()
        self.adapters.clear()
        self._added.clear()
        self.renderer.RemoveAllViewProps()
        if self._own_window:
            self.window.Finalize()
        self._closed = True

    def __enter__(self) -> SceneRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
