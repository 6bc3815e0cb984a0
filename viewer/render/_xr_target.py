"""``VtkXrTarget``: draw a scene with VTK into framebuffers of a context someone else owns.

The XR mode (``xrmode``) owns an EGL context shared with the OpenXR runtime and
binds, per eye, a framebuffer whose colour attachment is the acquired swapchain
image. This module is the VTK half of that recipe (measured on llvmpipe against
headless Monado, ``../shared/RENDERING.md``):
``vtkGenericOpenGLRenderWindow`` that does not own its context (observers on
``WindowMakeCurrentEvent`` / ``WindowIsCurrentEvent`` call back into the owner),
initialised from the current context, blitting each finished frame into
whatever framebuffer is bound when :meth:`VtkXrTarget.render_eye` is called.
``SetOffScreenRendering`` must stay off: with it the final blit is skipped and
the swapchain stays black without any error.

Besides the scene layers it draws XR furniture in *stage* coordinates (metres):
a table under the volume, a floor with a grid and the outlines of walls 4 m away
(grounding), laser rays, cursor spheres, billboard text (menus, live
measurements, counts; on a layer of its own above the volumes, sized in degrees
of visual angle) and the other participants' avatars of a shared session
(spheres and cones of any size and direction). They follow the
world <-> stage transform given each frame by :meth:`set_stage_to_world`.

Markers and measurements are drawn twice: in the scene, where the volume in
front of them hides them, and again faded on an *x-ray* layer above the
volumes (a cleared depth buffer), so a marker inside or behind an opaque volume
still shows, faint, where it is (issue 19). The measurements' value labels are
moved to the HUD's layer (styled and sized as the HUD's text): a value inside an
opaque volume stays readable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from viewer.scene import Labels, Scene

from . import _vtk as v
from ._annotations import VtkMeasurements, VtkPoints
from ._base import polydata
from ._canvas import EyeView, SceneRenderer
from ._image import VolumeQuality, coarsen_quality, resolve_quality
from ._stamps import VtkBrushStamps

__all__ = ["TEXT_DEG", "VtkXrTarget", "XrOverlay", "XrText", "text_angle_rad", "text_px"]

log = logging.getLogger(__name__)

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class XrText:
    """A line of text at a stage position (metres), facing the viewer."""

    position_m: tuple[float, float, float]
    text: str
    color: RGB = (1.0, 1.0, 1.0)


@dataclass
class XrOverlay:
    """What the XR tools draw this frame, in stage coordinates (x, y, z metres).

    Attributes
    ----------
    lines : (N, 2, 3) float
        Segments (laser rays, rubber bands).
    line_colors : (N, 3) float in 0..1
    points : (M, 3) float
        Cursor spheres.
    point_colors : (M, 3) float in 0..1
    point_radius_m : float
    texts : list of XrText
    spheres : (K, 3) float
        Sphere centres, each with its own radius (avatars' heads and hands).
    sphere_radii : (K,) float
    sphere_colors : (K, 3) float in 0..1
    cones : (C, 2, 3) float
        Each cone's base centre and apex (pointing directions).
    cone_radii : (C,) float
        Base radii.
    cone_colors : (C, 3) float in 0..1
    slice_corners : (3, 3) float or None
        The slice plane's square: origin, end of its first side (the image's columns),
        end of its second side (its rows, bottom to top).
    slice_rgb : (H, W, 3) uint8 or None
        The image shown on it (row 0 at the origin's side).
    mesh_points : (P, 3) float
        Vertices of a triangle mesh (your hands and controllers).
    mesh_triangles : (T, 3) int
    mesh_colors : (P, 3) float in 0..1
    mesh_normals : (P, 3) float, optional
    """

    lines: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 2, 3)))
    line_colors: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 3)))
    points: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 3)))
    point_colors: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 3)))
    point_radius_m: float = 0.006
    texts: list[XrText] = field(default_factory=list)
    spheres: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 3)))
    sphere_radii: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    sphere_colors: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 3)))
    cones: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 2, 3)))
    cone_radii: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    cone_colors: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 3)))
    slice_corners: npt.NDArray[np.float64] | None = None
    slice_rgb: npt.NDArray[np.uint8] | None = None
    mesh_points: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 3)))
    mesh_triangles: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros((0, 3), np.int64)
    )
    mesh_colors: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 3)))
    mesh_normals: npt.NDArray[np.float64] | None = None


#: HUD text height in degrees of visual angle (UI text wants >= 1-1.5 degrees).
TEXT_DEG = 1.5
#: Smallest font drawn (pixels): below this glyphs are not legible at any angle.
MIN_TEXT_PX = 10
#: Opacity of the x-ray copy of markers and measurements (over the volumes): faint
#: where the volume hides them, their own colour where they are in front anyway.
XRAY_OPACITY = 0.5


def text_px(projection: npt.ArrayLike, height_px: int) -> int:
    """Font size (pixels) that makes HUD text :data:`TEXT_DEG` tall on an eye image
    ``height_px`` high with the (OpenGL) ``projection``: its focal length in pixels is
    ``P[1, 1] * height / 2``. Billboard text keeps its pixel size at any distance, so
    its visual angle is the same near and far."""
    f_px = float(np.asarray(projection, dtype=np.float64)[1, 1]) * height_px / 2
    return max(int(round(f_px * np.tan(np.radians(TEXT_DEG)))), MIN_TEXT_PX)


def text_angle_rad(projection: npt.ArrayLike, height_px: int) -> float:
    """The visual angle (radians) HUD text takes on that eye (``TEXT_DEG`` or more
    where :data:`MIN_TEXT_PX` is larger): what menus space their lines by."""
    f_px = float(np.asarray(projection, dtype=np.float64)[1, 1]) * height_px / 2
    return float(np.arctan(text_px(projection, height_px) / max(f_px, 1e-9)))


def _matrix(m: npt.NDArray[np.float64]) -> Any:
    out = v.vtkMatrix4x4()
    for i in range(4):
        for j in range(4):
            out.SetElement(i, j, float(m[i, j]))
    return out


class VtkXrTarget:
    """Render a :class:`Scene` into externally bound framebuffers (XR swapchain images).

    Parameters
    ----------
    scene : Scene
    make_current : callable
        Makes the owner's GL context current (VTK calls it before drawing).
    is_current : callable -> bool
        Whether the owner's context is current.
    size : (width, height)
        Eye image size in pixels (the swapchain size).
    background : (r, g, b), default: a neutral dark grey room
    furniture : bool, default: True
        Draw a table under the volume and a floor (stage coordinates).
    quality : str or VolumeQuality, default: "still"
        Volume ray casting at full quality; :meth:`set_sample_distance_factor`
        coarsens it from there (adaptive quality).

    Notes
    -----
    A framebuffer with a colour attachment must be bound when the target is
    created (VTK initialises from the current context) and before each
    :meth:`render_eye`. Call :meth:`close` before the context goes away.
    """

    def __init__(
        self,
        scene: Scene,
        make_current: Callable[[], None],
        is_current: Callable[[], bool],
        size: tuple[int, int],
        background: RGB = (0.18, 0.18, 0.2),
        furniture: bool = True,
        quality: str | VolumeQuality = "still",
    ) -> None:
        self._make_current = make_current
        self._is_current = is_current
        win = v.vtkGenericOpenGLRenderWindow()
        win.SetSize(int(size[0]), int(size[1]))
        win.SetMultiSamples(0)
        win.SetOwnContext(0)
        win.AddObserver(v.vtkCommand.WindowMakeCurrentEvent, self._on_make_current)
        win.AddObserver(v.vtkCommand.WindowIsCurrentEvent, self._on_is_current)
        win.SetIsCurrent(True)
        win.SetReadyForRendering(True)
        win.InitializeFromCurrentContext()
        win.SetFrameBlitModeToBlitToCurrent()
        self.window = win
        self.size = (int(size[0]), int(size[1]))
        self.renderer = SceneRenderer(
            scene,
            render_window=win,
            background=background,
            show_scale_bar=False,
            show_axes=False,
            quality=quality,
        )
        self.scene = scene
        self._stage_to_world = np.eye(4)
        self._base_quality = resolve_quality(quality)
        self._sample_factor = 1.0
        ren = self.renderer.renderer
        # Furniture and overlay geometry are defined in stage metres and placed
        # with one user matrix (stage -> VTK world xyz), updated every frame.
        self._stage_actors: list[Any] = []
        self._furniture: list[Any] = []
        if furniture:
            self._add_furniture()
        self._line_mapper = v.vtkPolyDataMapper()
        self._lines = v.vtkActor()
        self._lines.SetMapper(self._line_mapper)
        self._lines.GetProperty().SetLineWidth(3.0)
        self._lines.GetProperty().LightingOff()
        self._sphere = v.vtkSphereSource()
        self._sphere.SetThetaResolution(10)
        self._sphere.SetPhiResolution(10)
        self._glyphs = v.vtkGlyph3DMapper()
        self._glyphs.SetSourceConnection(self._sphere.GetOutputPort())
        self._glyphs.SetColorModeToDirectScalars()
        self._glyphs.ScalingOff()
        self._points = v.vtkActor()
        self._points.SetMapper(self._glyphs)
        # Sized and oriented glyphs: unit sphere scaled by "scale"; a unit cone along +x
        # (base at 0, apex at 1) scaled by (length, radius, radius) then turned to "dir".
        unit_sphere = v.vtkSphereSource()
        unit_sphere.SetRadius(1.0)
        unit_sphere.SetThetaResolution(16)
        unit_sphere.SetPhiResolution(12)
        unit_cone = v.vtkConeSource()
        unit_cone.SetHeight(1.0)
        unit_cone.SetRadius(1.0)
        unit_cone.SetResolution(16)
        unit_cone.SetDirection(1.0, 0.0, 0.0)
        unit_cone.SetCenter(0.5, 0.0, 0.0)
        self._sized: dict[str, tuple[Any, Any]] = {}
        for name, src in (("spheres", unit_sphere), ("cones", unit_cone)):
            gm = v.vtkGlyph3DMapper()
            gm.SetSourceConnection(src.GetOutputPort())
            gm.SetColorModeToDirectScalars()
            gm.ScalingOn()
            gm.SetScaleArray("scale")
            gm.SetScaleModeToScaleByVectorComponents()
            if name == "cones":
                gm.SetOrientationArray("dir")
                gm.SetOrientationModeToDirection()
            actor = v.vtkActor()
            actor.SetMapper(gm)
            actor.GetProperty().SetAmbient(0.35)
            actor.PickableOff()
            self._sized[name] = (gm, actor)
        self._mesh_mapper = v.vtkPolyDataMapper()
        self._mesh = v.vtkActor()
        self._mesh.SetMapper(self._mesh_mapper)
        self._mesh.GetProperty().SetAmbient(0.35)
        self._mesh.PickableOff()
        for a in (
            self._lines,
            self._points,
            self._mesh,
            *(a for _, a in self._sized.values()),
        ):
            ren.AddActor(a)
            self._stage_actors.append(a)
        # Label brush stamps drawn from memory until their edit is (world µm, no stage
        # matrix): opaque geometry of the scene, so the volumes stop at them.
        self.stamps = VtkBrushStamps()
        self.stamps.set_background(tuple(float(c) for c in background))  # type: ignore[arg-type]
        for a in self.stamps.props:
            ren.AddActor(a)
        # Markers and measurement lines again, faded, on a layer above the volumes: its
        # depth buffer is cleared, so what the volume hides still shows (x-ray style).
        # The copies share the scene adapters' mappers (same data, same clipping).
        self.xray_renderer = v.vtkRenderer()
        self.xray_renderer.SetLayer(win.GetNumberOfLayers())
        win.SetNumberOfLayers(win.GetNumberOfLayers() + 1)
        self.xray_renderer.InteractiveOff()
        self.xray_renderer.SetActiveCamera(ren.GetActiveCamera())
        win.AddRenderer(self.xray_renderer)
        self._xray: dict[int, tuple[Any, Any]] = {}
        # The hand-held slice plane: a textured square on the x-ray layer, so the plane
        # in your hand is never buried inside the volume (its pixels are the data's).
        self._slice_src = v.vtkPlaneSource()
        self._slice_tex = v.vtkTexture()
        self._slice_tex.InterpolateOff()
        self._slice_mapper = v.vtkPolyDataMapper()
        self._slice_mapper.SetInputConnection(self._slice_src.GetOutputPort())
        self._slice = v.vtkActor()
        self._slice.SetMapper(self._slice_mapper)
        self._slice.SetTexture(self._slice_tex)
        self._slice.GetProperty().LightingOff()
        self._slice.PickableOff()
        self._slice.SetVisibility(False)
        self.xray_renderer.AddActor(self._slice)
        self._stage_actors.append(self._slice)
        # The HUD's text in a renderer on a layer of its own, drawn after everything in
        # the scene's layers (volumes included, single-pass ones too: they end layer 0)
        # and with a cleared depth buffer: menus, counts and live values stay on top of
        # the volume instead of being blended over (issue 19).
        self.hud_renderer = v.vtkRenderer()
        self.hud_renderer.SetLayer(win.GetNumberOfLayers())
        win.SetNumberOfLayers(win.GetNumberOfLayers() + 1)
        self.hud_renderer.InteractiveOff()
        self.hud_renderer.SetActiveCamera(ren.GetActiveCamera())
        win.AddRenderer(self.hud_renderer)
        self._texts: list[Any] = []
        self._text_pos: list[tuple[float, float, float]] = []
        self._font_px = 0
        #: The scene's measurement labels, moved onto the HUD layer (by id).
        self._labels: dict[int, Any] = {}
        self.set_overlay(XrOverlay())

    # -- context callbacks -------------------------------------------------------
    def _on_make_current(self, *_: object) -> None:
        self._make_current()

    def _on_is_current(self, obj: Any, _event: str) -> None:
        obj.SetIsCurrent(bool(self._is_current()))

    # -- stage geometry --------------------------------------------------------------
    def _add_furniture(self) -> None:
        ren = self.renderer.renderer
        table = v.vtkCubeSource()
        # 1.0 x 0.04 x 0.6 m table top whose upper face is at 0.85 m (moved under the
        # volume by set_table).
        table.SetBounds(-0.5, 0.5, 0.81, 0.85, -0.8, -0.2)
        floor = v.vtkCubeSource()
        floor.SetBounds(-4.0, 4.0, -0.01, 0.0, -4.0, 4.0)
        self._table, self._floor = table, floor
        # The room: a floor grid every 0.5 m (scale and motion cues, and the horizon
        # where it meets the background) and walls 4 m away, 3 m high, drawn as
        # outlines so the background colour (the wrist panel's choice) stays the sky.
        self._room_mapper = v.vtkPolyDataMapper()
        room = v.vtkActor()
        room.SetMapper(self._room_mapper)
        room.GetProperty().SetColor(0.45, 0.45, 0.5)
        room.GetProperty().LightingOff()
        room.PickableOff()
        ren.AddActor(room)
        self._stage_actors.append(room)
        self._furniture.append(room)
        self._room_floor: float | None = None
        self._set_room(0.0)
        for src, color in ((table, (0.45, 0.36, 0.28)), (floor, (0.30, 0.30, 0.32))):
            mapper = v.vtkPolyDataMapper()
            mapper.SetInputConnection(src.GetOutputPort())
            actor = v.vtkActor()
            actor.SetMapper(mapper)
            actor.GetProperty().SetColor(*color)
            # The headlight grazes horizontal faces; ambient keeps the table visible.
            actor.GetProperty().SetAmbient(0.5)
            actor.PickableOff()
            ren.AddActor(actor)
            self._stage_actors.append(actor)
            self._furniture.append(actor)

    def set_overlay_layers(self, hud: bool = True, xray: bool = True, room: bool = True) -> None:
        """Draw (True) or skip the HUD layer, the x-ray layer (faded markers and
        measurements, the slice plane) and the room (floor, grid, walls, table); what
        ``bench_xr_overlays.py`` measures the cost of."""
        self.hud_renderer.SetDraw(bool(hud))
        self.xray_renderer.SetDraw(bool(xray))
        for actor in self._furniture:
            actor.SetVisibility(bool(room))

    def set_table(self, top_y: float, centre_x: float, centre_z: float) -> None:
        """Put the table's top (1.0 x 0.6 m) at stage height ``top_y`` centred under
        ``(centre_x, centre_z)``."""
        if not hasattr(self, "_table"):
            return
        self._table.SetBounds(
            centre_x - 0.5, centre_x + 0.5, top_y - 0.04, top_y, centre_z - 0.3, centre_z + 0.3
        )

    def set_background(self, rgb: RGB) -> None:
        """The colour behind everything (the room's walls and sky)."""
        self.renderer.renderer.SetBackground(*(float(c) for c in rgb))
        self.stamps.set_background(rgb)

    def set_stamps(
        self,
        layer: str,
        centres_um: npt.ArrayLike,
        radii_um: npt.ArrayLike,
        ids: npt.ArrayLike,
        confirmed: npt.ArrayLike,
    ) -> None:
        """Draw label brush stamps of labels layer ``layer`` from memory (balls in world
        zyx µm; id 0 erases; see :class:`viewer.render._stamps.VtkBrushStamps`) until the
        front end drops them, once :meth:`edits_drawn` says the layer shows them."""
        lay = self._layer(layer)
        self.stamps.set(
            lay if isinstance(lay, Labels) else None, centres_um, radii_um, ids, confirmed
        )

    def edits_drawn(self, layer: str) -> bool:
        """Whether every label edit announced to ``layer`` so far is drawn by the frame
        synced last (the re-meshed bricks that contain it are in place)."""
        lay = self._layer(layer)
        adapter = self.renderer.adapters.get(id(lay)) if lay is not None else None
        return adapter is None or not adapter.edits_pending

    def _layer(self, name: str) -> Any:
        return next((lay for lay in self.scene.layers if lay.name == name), None)

    def set_floor(self, y: float) -> None:
        """The floor's height in stage metres (0 in STAGE / LOCAL_FLOOR spaces; an
        estimate below the head in a LOCAL space)."""
        if hasattr(self, "_floor"):
            self._floor.SetBounds(-4.0, 4.0, y - 0.01, y, -4.0, 4.0)
            self._set_room(y)

    def _set_room(self, y: float) -> None:
        """Grid lines on the floor at height ``y`` and the walls' edges above it."""
        if self._room_floor == y:
            return
        self._room_floor = y
        ticks = np.arange(-4.0, 4.0 + 1e-9, 0.5)
        g = y + 0.002  # just above the floor's top face
        segs = [((t, g, -4.0), (t, g, 4.0)) for t in ticks]
        segs += [((-4.0, g, t), (4.0, g, t)) for t in ticks]
        top = y + 3.0
        corners = [(-4.0, -4.0), (4.0, -4.0), (4.0, 4.0), (-4.0, 4.0)]
        for (x0, z0), (x1, z1) in zip(corners, corners[1:] + corners[:1], strict=True):
            segs += [((x0, top, z0), (x1, top, z1)), ((x0, y, z0), (x0, top, z0))]
        pts = np.asarray(segs, dtype=np.float64).reshape(-1, 3)
        self._room_mapper.SetInputData(polydata(pts, lines=np.arange(len(pts)).reshape(-1, 2)))

    def set_stage_to_world(self, matrix: npt.ArrayLike) -> None:
        """The 4x4 map from stage (x, y, z m) to world **zyx** µm, row-vector free.

        ``world_zyx = (M @ [x, y, z, 1])[:3]``. Converted here to VTK's world xyz.
        """
        m = np.asarray(matrix, dtype=np.float64).reshape(4, 4)
        flip = np.eye(4)[[2, 1, 0, 3]]  # zyx -> xyz
        self._stage_to_world = flip @ m
        vm = _matrix(self._stage_to_world)
        for a in self._stage_actors:
            a.SetUserMatrix(vm)
        for actor, pos in zip(self._texts, self._text_pos, strict=False):
            actor.SetPosition(*self._to_world_xyz(pos))

    def _to_world_xyz(self, p: Sequence[float]) -> tuple[float, float, float]:
        w = self._stage_to_world @ np.array([p[0], p[1], p[2], 1.0])
        return (float(w[0]), float(w[1]), float(w[2]))

    def set_overlay(self, overlay: XrOverlay) -> None:
        """Replace the tools' overlay (rays, cursor spheres, text) for the next frames."""
        lines = np.asarray(overlay.lines, dtype=np.float64).reshape(-1, 2, 3)
        if len(lines):
            pts = lines.reshape(-1, 3)
            conn = np.arange(len(pts)).reshape(-1, 2)
            colors = np.repeat(np.asarray(overlay.line_colors).reshape(-1, 3), 2, axis=0)
            self._line_mapper.SetInputData(polydata(pts, lines=conn, colors=colors))
            self._lines.SetVisibility(True)
        else:
            self._lines.SetVisibility(False)
        points = np.asarray(overlay.points, dtype=np.float64).reshape(-1, 3)
        if len(points):
            self._sphere.SetRadius(overlay.point_radius_m)
            cols = np.asarray(overlay.point_colors, dtype=np.float64).reshape(-1, 3)
            self._glyphs.SetInputData(polydata(points, colors=cols))
            self._points.SetVisibility(True)
        else:
            self._points.SetVisibility(False)
        self._set_sized(overlay)
        self._set_slice(overlay)
        self._set_mesh(overlay)
        hud = self.hud_renderer
        while len(self._texts) > len(overlay.texts):
            hud.RemoveActor(self._texts.pop())
        while len(self._texts) < len(overlay.texts):
            t = v.vtkBillboardTextActor3D()
            t.GetTextProperty().SetFontSize(max(self._font_px, MIN_TEXT_PX))
            t.GetTextProperty().SetBackgroundColor(0.0, 0.0, 0.0)
            t.GetTextProperty().SetBackgroundOpacity(0.6)
            hud.AddActor(t)
            self._texts.append(t)
        self._text_pos = [x.position_m for x in overlay.texts]
        for actor, item in zip(self._texts, overlay.texts, strict=True):
            actor.SetInput(item.text)
            actor.GetTextProperty().SetColor(*item.color)
            actor.SetPosition(*self._to_world_xyz(item.position_m))

    def _set_mesh(self, overlay: XrOverlay) -> None:
        pts = np.asarray(overlay.mesh_points, dtype=np.float64).reshape(-1, 3)
        if not len(pts):
            self._mesh.SetVisibility(False)
            return
        self._mesh_mapper.SetInputData(
            polydata(
                pts,
                polys=np.asarray(overlay.mesh_triangles).reshape(-1, 3),
                colors=np.asarray(overlay.mesh_colors).reshape(-1, 3),
                normals=overlay.mesh_normals,
            )
        )
        self._mesh.SetVisibility(True)

    def _set_slice(self, overlay: XrOverlay) -> None:
        rgb, corners = overlay.slice_rgb, overlay.slice_corners
        if rgb is None or corners is None:
            self._slice.SetVisibility(False)
            return
        c = np.asarray(corners, dtype=np.float64).reshape(3, 3)
        self._slice_src.SetOrigin(*c[0])
        self._slice_src.SetPoint1(*c[1])
        self._slice_src.SetPoint2(*c[2])
        img = np.ascontiguousarray(rgb, dtype=np.uint8)
        h, w = img.shape[:2]
        data = v.vtkImageData()
        data.SetDimensions(w, h, 1)
        # VTK images run x fastest from the bottom row: row 0 at the origin's side.
        arr = v.numpy_to_vtk(img.reshape(-1, 3), deep=True)
        arr.SetName("rgb")
        data.GetPointData().SetScalars(arr)
        self._slice_tex.SetInputData(data)
        self._slice.SetVisibility(True)

    def _set_sized(self, overlay: XrOverlay) -> None:
        centres = np.asarray(overlay.spheres, dtype=np.float64).reshape(-1, 3)
        cones = np.asarray(overlay.cones, dtype=np.float64).reshape(-1, 2, 3)
        gm, actor = self._sized["spheres"]
        if len(centres):
            radii = np.asarray(overlay.sphere_radii, dtype=np.float64).reshape(-1, 1)
            gm.SetInputData(
                polydata(
                    centres,
                    colors=np.asarray(overlay.sphere_colors).reshape(-1, 3),
                    point_arrays={"scale": np.repeat(radii, 3, axis=1)},
                )
            )
        actor.SetVisibility(bool(len(centres)))
        gm, actor = self._sized["cones"]
        if len(cones):
            axis = cones[:, 1] - cones[:, 0]
            length = np.linalg.norm(axis, axis=1)
            r = np.asarray(overlay.cone_radii, dtype=np.float64).reshape(-1)
            gm.SetInputData(
                polydata(
                    cones[:, 0],
                    colors=np.asarray(overlay.cone_colors).reshape(-1, 3),
                    point_arrays={
                        "scale": np.c_[length, r, r],
                        "dir": axis / np.maximum(length, 1e-12)[:, None],
                    },
                )
            )
        actor.SetVisibility(bool(len(cones)))

    # -- quality ---------------------------------------------------------------------
    def set_size(self, width: int, height: int) -> None:
        """Eye image size in pixels (render scale changes call this)."""
        self.size = (int(width), int(height))
        self.window.SetSize(*self.size)

    def set_quality(self, quality: str | VolumeQuality) -> None:
        """Full volume quality (a preset name or :class:`VolumeQuality`); keeps the factor."""
        self._base_quality = resolve_quality(quality)
        self.set_sample_distance_factor(self._sample_factor)

    def set_sample_distance_factor(self, factor: float) -> None:
        """Coarsen volume ray casting by ``factor`` (>= 1: faster), a fixed setting.

        The headset's adaptive quality does not use it: ``viewer.raycast.FrameBudget``
        lengthens the ray step and lowers the eye image size per eye instead.

        About ``factor`` times fewer rays (:func:`viewer.render.coarsen_quality`):
        the per-pixel work is what limits a headset's frame rate, and at headset
        resolution a voxel spans several pixels. Surfaces, text and the furniture
        keep full resolution.
        """
        self._sample_factor = max(float(factor), 1.0)
        self.renderer.set_quality(coarsen_quality(self._base_quality, self._sample_factor))

    # -- drawing -----------------------------------------------------------------------
    def sync(self) -> None:
        """Bring the VTK objects up to date with the scene, once per frame."""
        self.renderer.sync()
        self._sync_xray()

    def _sync_xray(self) -> None:
        """One faded copy per marker / measurement actor of the scene, on the x-ray layer."""
        originals = [
            a.actor
            for a in self.renderer.adapters.values()
            if isinstance(a, VtkPoints | VtkMeasurements)
        ]
        keep = {id(o) for o in originals}
        for key in [k for k in self._xray if k not in keep]:
            self.xray_renderer.RemoveActor(self._xray.pop(key)[1])
        for orig in originals:
            if id(orig) not in self._xray:
                ghost = v.vtkActor()
                ghost.SetMapper(orig.GetMapper())
                ghost.PickableOff()
                self.xray_renderer.AddActor(ghost)
                self._xray[id(orig)] = (orig, ghost)
            ghost = self._xray[id(orig)][1]
            prop = ghost.GetProperty()
            prop.DeepCopy(orig.GetProperty())
            prop.SetOpacity(XRAY_OPACITY * orig.GetProperty().GetOpacity())
            ghost.SetVisibility(orig.GetVisibility())
        self._sync_labels()

    def _sync_labels(self) -> None:
        """Move the measurements' value labels from the scene's layer (where an opaque
        volume is blended over them) to the HUD layer, styled as the HUD's text. The
        scene renderer keeps them in its bookkeeping; removing them there again when
        the adapter rebuilds its labels is harmless."""
        ren = self.renderer.renderer
        current = [
            t
            for a in self.renderer.adapters.values()
            if isinstance(a, VtkMeasurements)
            for t in a.texts
        ]
        keep = {id(t) for t in current}
        for key in [k for k in self._labels if k not in keep]:
            self.hud_renderer.RemoveViewProp(self._labels.pop(key))
        for t in current:
            if id(t) in self._labels:
                continue
            if ren.HasViewProp(t):
                ren.RemoveViewProp(t)
            tp = t.GetTextProperty()
            tp.SetFontSize(max(self._font_px, MIN_TEXT_PX))
            tp.SetBackgroundColor(0.0, 0.0, 0.0)
            tp.SetBackgroundOpacity(0.6)
            self.hud_renderer.AddViewProp(t)
            self._labels[id(t)] = t

    def text_px(self, projection: npt.ArrayLike) -> int:
        """The HUD's font size (pixels) for an eye: :data:`TEXT_DEG` of visual angle
        at this eye's resolution and field of view, at least :data:`MIN_TEXT_PX`."""
        return text_px(projection, self.size[1])

    def render_eye(self, view: EyeView) -> None:
        """Draw the scene from ``view`` into the framebuffer bound now (size :attr:`size`)."""
        self.renderer.apply_view(view)
        px = self.text_px(view.projection)
        if px != self._font_px:
            self._font_px = px
            for t in (*self._texts, *self._labels.values()):
                t.GetTextProperty().SetFontSize(px)
        self.window.Render()

    def close(self) -> None:
        """Release VTK's GL objects (the context must still be current)."""
        for t in self._texts:
            self.hud_renderer.RemoveActor(t)
        self._texts.clear()
        for t in self._labels.values():
            self.hud_renderer.RemoveViewProp(t)
        self._labels.clear()
        self.xray_renderer.RemoveAllViewProps()
        self._xray.clear()
        self.window.RemoveRenderer(self.xray_renderer)
        self.window.RemoveRenderer(self.hud_renderer)
        self.renderer.close()
        self.window.Finalize()
