"""Single-pass streamed volumes inside VTK's frame: ``viewer.raycast`` hosted by a renderer.

:class:`GLVolumeHost` hangs on the main renderer's ``EndEvent``. VTK draws the
renderer (layer 0: surfaces, tracks, markers, whole-level volumes) into its render
framebuffer; then, still inside VTK's frame and context,
the host wraps that context with moderngl (a loader over the *current* context, no
second context), copies the framebuffer's depth into a float texture on the GPU
(VTK's depth attachment is a texture: one full-viewport pass reads it), and draws each
:class:`VtkRaycastImage` / :class:`VtkRaycastLabels` with one
:class:`viewer.raycast.VolumeRaycaster` call (at the quality's render scale): rays
end at the opaque geometry's depth and the volume is blended over its colour. Scale
bar, text and the axes are drawn afterwards by a second renderer layer
(``SceneRenderer``'s overlays), so they stay on top. Finally VTK's OpenGL state
cache is re-read (``vtkOpenGLState.Reset``) and its current shader forgotten
(``vtkOpenGLShaderCache.ReleaseCurrentShader``): moderngl changed programs,
textures, blending and bindings behind VTK's back.

Order inside a frame: opaque geometry, translucent geometry (VTK's translucent pass,
without the volume), *then* the single-pass volumes, then overlays. Translucent
surfaces are therefore composited under the volume, not intermixed with it (depth
of translucent geometry is not written).

The transfer function is sampled from the same ``vtkVolumeProperty`` the whole-level
adapter builds (:class:`VtkImage`), so streamed and whole-level pictures agree:
colour and opacity tables, opacity unit distance, MIP / MinIP for inverted images.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from viewer.scene import Image, Labels
from viewer.streaming import StreamFrame, VolumeStreamer, clip_planes_array

from ._base import FrameContext, VtkLayer
from ._image import VtkImage, coarse_range
from ._labels import label_colors

if TYPE_CHECKING:
    from viewer.raycast import FrameBudget, LabelStyle, StreamedVolume, TransferFunction

    from ._canvas import SceneRenderer

__all__ = ["GLFrameStats", "GLVolumeHost", "VtkRaycastImage", "VtkRaycastLabels"]

log = logging.getLogger(__name__)

#: Transfer-function table entries (the shader interpolates linearly between them).
TF_ENTRIES = 1024
#: Opacity per voxel step inside an outlined label object (``Labels.outline``): a
#: 30-voxel-thick object then stays under 30 % opaque, so what lies behind shows.
OUTLINE_INTERIOR_OPACITY = 0.01


class _CurrentContext:
    """A moderngl loader over the OpenGL context current on this thread (VTK's).

    moderngl's ``create_context(context=...)`` takes any object with ``load`` (a
    function pointer by name), ``release`` and the context-manager methods; glcontext's
    own EGL backend cannot attach to an existing context ("unknown mode").
    """

    def __init__(self, egl: bool) -> None:
        self._gpa: Any = None
        if egl:
            lib = ctypes.CDLL(ctypes.util.find_library("EGL") or "libEGL.so.1")
            self._gpa = lib.eglGetProcAddress
        else:
            lib = ctypes.CDLL(ctypes.util.find_library("GL") or "libGL.so.1")
            self._gpa = lib.glXGetProcAddressARB
        self._gpa.restype = ctypes.c_void_p
        self._gpa.argtypes = [ctypes.c_char_p]

    def load(self, name: str) -> int:
        return int(self._gpa(name.encode()) or 0)

    def __enter__(self) -> _CurrentContext:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def release(self) -> None:
        return None


def _egl_current() -> bool:
    """Whether an EGL context is current on this thread (a context VTK does not own,
    e.g. the XR session's, wrapped by a ``vtkGenericOpenGLRenderWindow``)."""
    name = ctypes.util.find_library("EGL") or "libEGL.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return False
    get = lib.eglGetCurrentContext
    get.restype = ctypes.c_void_p
    get.argtypes = []
    return bool(get())


# Depth texel -> R32F texel, offset by the viewport's corner (no filtering, no blending).
_COPY_DEPTH = """
#version 330 core
uniform sampler2D u_src;
uniform ivec2 u_offset;
out float depth;
void main() {
    depth = texelFetch(u_src, ivec2(gl_FragCoord.xy) + u_offset, 0).r;
}
"""

_GL_DRAW_FRAMEBUFFER = 0x8CA9
_GL_DEPTH_ATTACHMENT = 0x8D00
_GL_ATTACHMENT_TYPE = 0x8CD0
_GL_ATTACHMENT_NAME = 0x8CD1
_GL_TEXTURE = 0x1702
_GL_SAMPLES = 0x80A9


class _GlQuery:
    """The two OpenGL queries moderngl does not offer, through the context's loader."""

    def __init__(self, loader: Any) -> None:
        iv = ctypes.POINTER(ctypes.c_int)
        self._attachment = ctypes.CFUNCTYPE(None, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, iv)(
            loader.load("glGetFramebufferAttachmentParameteriv")
        )
        self._integer = ctypes.CFUNCTYPE(None, ctypes.c_uint, iv)(loader.load("glGetIntegerv"))

    def depth_texture(self) -> int | None:
        """GL name of the bound draw framebuffer's depth texture, if it is a
        single-sample texture (VTK's render framebuffer: a 2D ``DEPTH_COMPONENT32``)."""
        v = ctypes.c_int(0)
        self._integer(_GL_SAMPLES, ctypes.byref(v))
        if v.value != 0:
            return None
        self._attachment(
            _GL_DRAW_FRAMEBUFFER, _GL_DEPTH_ATTACHMENT, _GL_ATTACHMENT_TYPE, ctypes.byref(v)
        )
        if v.value != _GL_TEXTURE:
            return None
        self._attachment(
            _GL_DRAW_FRAMEBUFFER, _GL_DEPTH_ATTACHMENT, _GL_ATTACHMENT_NAME, ctypes.byref(v)
        )
        return int(v.value) or None


class _OnePass:
    """What both single-pass adapters hold: the layer's streamer, the frame last shown,
    the GPU volume (atlas + page tree) made at the first draw, and the host that
    releases it in its GL context."""

    def _init_one_pass(self, streamer: VolumeStreamer, gpu_budget_bytes: int) -> None:
        self.streamer = streamer
        self.gpu_budget_bytes = int(gpu_budget_bytes)
        self.frame: StreamFrame | None = None
        self.volume: StreamedVolume | None = None
        self._atlas_bytes = 0  # the atlas budget the volume was made with
        self.host: GLVolumeHost | None = None  # releases the GL objects in its context
        self._drawn_with: tuple[Any, Any] | None = None  # (frame, style) of the last update

    def bounds_xyz(self) -> tuple[float, ...]:
        """World bounds (x0, x1, y0, y1, z0, z1) of the volume (voxel edges), for the
        camera's clipping range."""
        g = self.streamer.grid
        lo = g.translation[0] - 0.5 * g.scale[0]
        hi = lo + g.shape[0] * g.scale[0]
        return (
            float(lo[2]), float(hi[2]), float(lo[1]), float(hi[1]), float(lo[0]), float(hi[0])
        )  # fmt: skip

    def _retire(self) -> None:
        """Let go of the atlas: released by the host at its next frame, in the GL context
        (a layer may be removed on another thread, with no context current)."""
        vol, self.volume = self.volume, None
        if vol is None:
            return
        if self.host is not None:
            self.host.retire(vol)
        else:
            vol.release()


class VtkRaycastImage(_OnePass, VtkImage):
    """A streamed ``Image`` layer drawn in one ray-casting pass (no VTK props).

    Holds the layer's :class:`VolumeStreamer` and, once a GL context exists, a
    :class:`viewer.raycast.StreamedVolume` (atlas + page tree). The
    ``vtkVolumeProperty`` of :class:`VtkImage` is still built (same colours, opacity
    ramp, unit distance) and sampled into the ray caster's transfer table.

    Parameters
    ----------
    layer : Image
    streamer : VolumeStreamer
    gpu_budget_bytes : int, default: 1 GiB
        Most atlas memory; the atlas is made at the first draw, sized to the bricks of
        that frame (with room for as many again) within this budget.
    """

    def __init__(
        self, layer: Image, streamer: VolumeStreamer, gpu_budget_bytes: int = 1 << 30
    ) -> None:
        super().__init__(layer)
        self._init_one_pass(streamer, gpu_budget_bytes)
        self._external = True  # never read whole levels
        self._unit_spacing = float(np.min(streamer.grid.scale[0]))
        self._tf: TransferFunction | None = None
        if layer.contrast_limits is None:
            self._data_range = coarse_range(streamer.source)

    # -- streaming (StreamingController hands frames to note() / show()) ---------------
    def note(self, frame: StreamFrame) -> None:
        """A frame not drawn: the atlas catches up from the next shown frame's keys."""

    def show(self, frame: StreamFrame) -> None:
        self.frame = frame
        levels = frame.selection.leaf_levels
        if len(levels):
            unit = float(np.min(self.streamer.grid.scale[int(levels.min())]))
            if unit != self._unit_spacing:
                self._unit_spacing = unit
                self.dirty = True

    def _update(self, ctx: FrameContext) -> None:
        self._update_property()

    def _update_property(self) -> None:
        super()._update_property()
        self.property.SetScalarOpacityUnitDistance(self._unit_spacing * 2.0)
        self._tf = None

    # -- what the ray caster needs ------------------------------------------------------
    @property
    def mode(self) -> str:
        lay = self.layer
        if lay.rendering == "mip":
            return "minip" if lay.invert else "mip"
        if lay.rendering == "isosurface":
            return "isosurface"
        return "composite"

    @property
    def iso_value(self) -> float | None:
        """The layer's iso threshold (None: the middle of the contrast limits)."""
        thr = self.layer.iso_threshold
        return None if thr is None else float(thr)

    def transfer_function(self) -> TransferFunction:
        """The property's colour and opacity functions as a table over the contrast limits
        (sampled again only after the property changed)."""
        if self._tf is None:
            self._tf = self._sample_transfer_function()
        return self._tf

    def _sample_transfer_function(self) -> TransferFunction:
        from viewer.raycast import TransferFunction

        lay = self.layer
        lo, hi = lay.contrast_limits if lay.contrast_limits is not None else self._data_range
        lo, hi = float(lo), float(hi)
        if hi <= lo:
            hi = lo + 1.0
        # Entry i stands for u = (i + 0.5) / N (see TransferFunction.table).
        x = lo + (np.arange(TF_ENTRIES) + 0.5) / TF_ENTRIES * (hi - lo)
        ctf = self.property.GetRGBTransferFunction()
        otf = self.property.GetScalarOpacity()
        rgb = np.array([ctf.GetColor(float(s)) for s in x], dtype=np.float32)
        a = np.array([otf.GetValue(float(s)) for s in x], dtype=np.float32)
        table = np.concatenate([rgb, a[:, None]], axis=1)
        unit = float(self.property.GetScalarOpacityUnitDistance())
        return TransferFunction(table, (lo, hi), ref_step_um=unit)

    def min_ray_um(self, step_factor: float) -> float:
        """VTK's sample distance for this view's finest level: VTK's ray caster discards
        a ray whose first sample (one step past the entry) is outside the box, so rays
        crossing less of the volume are dropped here too."""
        return float(self._unit_spacing * step_factor)

    def pick_segment(
        self, p0_zyx: npt.ArrayLike, p1_zyx: npt.ArrayLike, isovalue: float = 0.1
    ) -> float | None:
        """Where the segment p0 -> p1 (world zyx) first reaches ``isovalue`` opacity.

        The fraction along the segment, or None. Sampled on the CPU from the bricks the
        last frame drew (resident in RAM; trilinear, a quarter voxel apart, the crossing
        interpolated), like ``vtkVolumePicker``'s opacity isovalue: what a click on the
        picture hits.
        """
        frame = self.frame
        if frame is None or not len(frame.keys) or not self.layer.visible:
            return None
        tf = self.transfer_function()
        alpha = np.asarray(tf.table)[:, 3]
        lo, hi = tf.contrast_limits
        for _t0, t, pb, f in _segment_samples(self.streamer, frame, p0_zyx, p1_zyx):
            vals = _trilinear(pb.array, f)
            u = (vals - lo) / (hi - lo) * len(alpha) - 0.5
            a = np.interp(u, np.arange(len(alpha)), alpha)
            hit = np.flatnonzero(a >= isovalue)
            if not len(hit):
                continue
            k = int(hit[0])
            if k == 0 or a[k] == a[k - 1]:
                return float(t[k])
            # The crossing between the last sample below and the first at or above.
            w = (isovalue - a[k - 1]) / (a[k] - a[k - 1])
            return float(t[k - 1] + w * (t[k] - t[k - 1]))
        return None

    def close(self) -> None:
        self._retire()
        super().close()


class VtkRaycastLabels(_OnePass, VtkLayer):
    """A streamed ``Labels`` layer drawn as a label volume in one ray-casting pass.

    Ids are sampled from the nearest voxel of an integer atlas (exact for every 32-bit
    id) and coloured as the layer's legend says (:func:`label_colors`: by id, by
    feature, fixed), looked up in a sorted table on the GPU; hidden ids are
    transparent and the selected objects drawn lighter and more opaque. The ids come
    from the bricks as they arrive (the loader threads list each brick's ids), so the
    table grows with the objects seen, never with the bricks drawn. Opacity is the
    layer's, per voxel of the finest level (opacity corrected to coarser steps): 1
    draws each object opaque at its first voxel, lower values let the objects behind
    show through their thin parts.

    Parameters
    ----------
    layer : Labels
    streamer : VolumeStreamer
        Made with ``labels=True``.
    gpu_budget_bytes : int, default: 1 GiB
    """

    @property
    def selection_dependent(self) -> bool:
        return True

    def __init__(
        self, layer: Labels, streamer: VolumeStreamer, gpu_budget_bytes: int = 1 << 30
    ) -> None:
        super().__init__(layer)
        self.layer: Labels = layer
        self._init_one_pass(streamer, gpu_budget_bytes)
        self.ids = np.zeros(0, np.int64)  # every id seen in an arrived brick, sorted
        self._selected: tuple[int, ...] = ()
        self._style: LabelStyle | None = None
        self._voxel_um = float(np.min(streamer.grid.scale[0]))
        #: Regions of label edits not applied yet (per edit: per level, (z, y, x) regions).
        self._edits: list[Any] = []
        layer.labels_regions.connect(self._on_labels_regions)
        layer.labels_remapped.connect(self._on_labels_remapped)

    # -- streaming --------------------------------------------------------------------
    def _on_labels_regions(self, regions: Any) -> None:
        self._edits.append(regions)
        self.dirty = True

    def _on_labels_remapped(self, ids: Any) -> None:
        # An id mapping change: the bricks holding these ids (a frozenset marks it).
        self._edits.append(frozenset(int(i) for i in ids))
        self.dirty = True

    def _apply_edits(self) -> None:
        """Re-read the resident bricks the edits touched (frame thread); their atlas slots
        and neighbours' borders are rewritten, the new ids join the colour table."""
        edits, self._edits = self._edits, []
        keys: list[int] = []
        for regions in edits:
            if isinstance(regions, frozenset):  # id mapping change: bricks holding the ids
                keys += self.streamer.reload_ids(sorted(regions))
                continue
            for level, boxes in enumerate(regions):
                if level >= self.streamer.grid.n_levels:
                    break
                for box in boxes:
                    keys += self.streamer.reload(level, box)
        if not keys:
            return
        if self.volume is not None:
            self.volume.rewrite(keys)
        self._add_ids([self.streamer.brick_ids(k) for k in keys])
        self._drawn_with = None

    def _collect(self, frame: StreamFrame) -> None:
        if self._edits:
            self._apply_edits()
        if not len(frame.arrived):
            return
        self._add_ids([self.streamer.brick_ids(int(k)) for k in frame.arrived.tolist()])

    def _add_ids(self, got: list[npt.NDArray[Any]]) -> None:
        new = np.setdiff1d(np.concatenate(got).astype(np.int64), self.ids)
        new = new[new != 0]
        if len(new):
            self.ids = np.union1d(self.ids, new)
            self._style = None

    def note(self, frame: StreamFrame) -> None:
        self._collect(frame)

    def show(self, frame: StreamFrame) -> None:
        self._collect(frame)
        self.frame = frame

    def _update(self, ctx: FrameContext) -> None:
        sel = ctx.selection
        lay = self.layer
        self._selected = (
            tuple(int(i) for i in sel.label_ids)
            if lay.outline_selected and sel.layer == lay.name
            else ()
        )
        self._style = None

    def _apply_visibility(self) -> None:
        return None  # no VTK props: the host skips invisible layers

    def mappers(self) -> list[Any]:
        return []

    # -- what the ray caster needs ------------------------------------------------------
    mode = "composite"
    iso_value = None

    def transfer_function(self) -> LabelStyle:
        """The layer's colours, hidden and selected ids (rebuilt only when they change)."""
        if self._style is None:
            from viewer.raycast import LabelStyle

            lay = self.layer
            ids = self.ids
            rgb = label_colors(lay, ids.tolist()) if len(ids) else np.zeros((0, 3))
            self._style = LabelStyle(
                opacity=float(lay.opacity),
                hidden=tuple(int(i) for i in lay.hidden_ids),
                selected=self._selected,
                selected_opacity=max(float(lay.opacity), 0.9),
                ref_step_um=self._voxel_um,
                color_ids=ids,
                color_rgb=rgb,
                outline=bool(lay.outline),
                interior_opacity=OUTLINE_INTERIOR_OPACITY,
            )
        return self._style

    def min_ray_um(self, step_factor: float) -> float:
        return 0.0

    def pick_label(self, p0_zyx: npt.ArrayLike, p1_zyx: npt.ArrayLike) -> tuple[float, int] | None:
        """The first visible object on the segment p0 -> p1 (world zyx): (fraction, id).

        Sampled on the CPU from the bricks the last frame drew (nearest voxel, a
        quarter voxel apart), skipping background and hidden ids: what a click on the
        picture hits.
        """
        frame = self.frame
        if frame is None or not len(frame.keys) or not self.layer.visible:
            return None
        hidden = np.asarray(self.layer.hidden_ids, dtype=np.int64)
        for _t0, t, pb, f in _segment_samples(self.streamer, frame, p0_zyx, p1_zyx):
            idx = np.floor(f + 0.5).astype(np.int64).clip(0, np.asarray(pb.array.shape) - 1)
            ids = np.asarray(pb.array)[idx[:, 0], idx[:, 1], idx[:, 2]].astype(np.int64)
            hit = np.flatnonzero((ids != 0) & ~np.isin(ids, hidden))
            if len(hit):  # bricks come front to back: the first hit is the nearest
                return float(t[hit[0]]), int(ids[hit[0]])
        return None

    def close(self) -> None:
        self.layer.labels_regions.disconnect(self._on_labels_regions)
        self.layer.labels_remapped.disconnect(self._on_labels_remapped)
        self._retire()
        super().close()


def _segment_samples(
    streamer: VolumeStreamer, frame: StreamFrame, p0_zyx: npt.ArrayLike, p1_zyx: npt.ArrayLike
) -> Any:
    """For each drawn brick the segment p0 -> p1 (world zyx) crosses, front to back:
    (entry fraction, sample fractions, the padded brick, fractional voxel indices)."""
    p0 = np.asarray(p0_zyx, dtype=np.float64)
    d = np.asarray(p1_zyx, dtype=np.float64) - p0
    d = np.where(np.abs(d) < 1e-12, 1e-12, d)
    t0 = (frame.crop_lo - p0) / d
    t1 = (frame.crop_hi - p0) / d
    tmin = np.minimum(t0, t1).max(axis=1).clip(0.0, None)
    tmax = np.maximum(t0, t1).min(axis=1).clip(None, 1.0)
    length = float(np.linalg.norm(d))
    for i in np.flatnonzero(tmin < tmax)[np.argsort(tmin[tmin < tmax], kind="stable")]:
        pb = streamer.padded(int(frame.keys[i]))
        if pb is None:
            continue
        step = 0.25 * float(np.min(pb.spacing_um)) / max(length, 1e-12)
        t = np.arange(tmin[i], tmax[i] + step, step).clip(None, tmax[i])
        f = (p0 + t[:, None] * d - np.asarray(pb.origin_um)) / np.asarray(pb.spacing_um)
        yield float(tmin[i]), t, pb, f


@dataclass
class GLFrameStats:
    """What the single-pass volumes of the last frame did (``vrscope render --stats``).

    Attributes
    ----------
    volume_passes : int
        Ray-casting draw calls for volume layers.
    bricks_drawn : int
        Tree leaves drawn from the atlas (by their own brick or a coarser stand-in).
    levels_drawn : list of int
        Pyramid levels sampled.
    gpu_cache_bytes : int
        Atlas textures.
    uploads : int
        Atlas slots written in the frame.
    behind : int
        Uploads still owed (bricks of the frame not in the atlas yet, stale borders):
        a progressive host draws again while this is above 0.
    """

    volume_passes: int = 0
    bricks_drawn: int = 0
    levels_drawn: list[int] = field(default_factory=list)
    gpu_cache_bytes: int = 0
    uploads: int = 0
    behind: int = 0


class GLVolumeHost:
    """Draws a :class:`SceneRenderer`'s :class:`VtkRaycastImage` adapters inside VTK's frame.

    Parameters
    ----------
    renderer : SceneRenderer
    one_shot : bool, default: False
        Upload every brick of a frame at once (one-shot renders: no time budget, the
        picture is complete); otherwise at most 64 slots and 4 ms per frame.
    frame_budget_ms : float or viewer.raycast.FrameBudget, optional
        GPU time the volume passes of one eye may take, or the controller that holds
        it (a headset shares its own). While a view moves and the passes overrun it,
        the sample distance grows and the render scale drops together (fewer steps
        and fewer rays, :class:`viewer.raycast.FrameBudget`); once the view is still
        both climb back to the quality's own a little each frame, :attr:`behind`
        staying true until then so a viewer keeps drawing (progressive refinement;
        the last frames of a refinement may overrun). Measured per eye with GPU timer
        queries, read one frame late (no stall). None: the quality's settings only.
        Set :attr:`eye` before drawing each eye of a stereo frame: each eye is
        compared with its own previous view, so the eye separation is no move.

    Notes
    -----
    The moderngl context is made at the first frame (it needs VTK's context current)
    and wraps VTK's; releasing it releases only moderngl's objects.
    """

    def __init__(
        self,
        renderer: SceneRenderer,
        one_shot: bool = False,
        frame_budget_ms: float | FrameBudget | None = None,
    ) -> None:
        self.renderer = renderer
        self.one_shot = one_shot
        from viewer.raycast import FrameBudget as Budget

        #: The frame budget's controller (None: no budget).
        self.budget: FrameBudget | None = (
            frame_budget_ms
            if isinstance(frame_budget_ms, Budget) or frame_budget_ms is None
            else Budget(float(frame_budget_ms))
        )
        #: The eye drawn next (a stereo host sets it before each eye; 0 on a desktop).
        self.eye = 0
        #: GPU time (ms) of the volume passes of the last measured frame of each eye.
        self.volume_ms: dict[int, float] = {}
        self._queries: dict[int, list[Any]] = {}  # per eye, two timer queries used in turn
        self._query_used: dict[int, list[bool]] = {}
        self._frame_no: dict[int, int] = {}
        self._levels: set[int] = set()  # levels the last frame's volumes sampled
        self.ctx: Any = None
        self._depth: Any = None
        self._raycaster: Any = None
        self.stats = GLFrameStats()
        self.errors = 0
        self._upload_all = False
        self._retired: list[StreamedVolume] = []
        self._depth_fbo: Any = None
        self._copy_prog: Any = None
        self._copy_vao: Any = None
        self._vtk_depth_tex: Any = None
        self._loader: Any = None
        self._gl: _GlQuery | None = None
        #: How the opaque depth reached the ray caster (frames): GPU pass or CPU readback.
        self.depth_copies_gpu = 0
        self.depth_copies_cpu = 0
        #: Rays per pixel along each axis of the last frame's volumes (quality).
        self.render_scale = 1.0
        #: Sample distance of the last frame's volumes, in voxels of the sampled level.
        self.step_factor = 1.0
        self._slot_bytes: dict[int, int] = {}
        self._tag = renderer.renderer.AddObserver("EndEvent", self._on_end)  # type: ignore[arg-type]

    def adapters(self) -> list[VtkRaycastImage | VtkRaycastLabels]:
        out = []
        for lay in self.renderer.scene.layers:
            a = self.renderer.adapters.get(id(lay))
            if isinstance(a, VtkRaycastImage | VtkRaycastLabels) and lay.visible:
                out.append(a)
        return out

    def _context(self) -> Any:
        if self.ctx is None:
            import moderngl

            egl = bool(self.renderer.window.IsA("vtkEGLRenderWindow")) or _egl_current()
            loader: Any = _CurrentContext(egl)
            self._loader = loader
            self.ctx = moderngl.create_context(require=330, context=loader)
            from viewer.raycast import VolumeRaycaster

            self._raycaster = VolumeRaycaster(self.ctx)
        return self.ctx

    def _on_end(self, ren: Any, _event: str) -> None:
        if ren.GetSelector() is not None:
            return  # a hardware pick pass
        adapters = self.adapters()
        self.stats = GLFrameStats()
        if self._retired and self.ctx is not None:
            self._release_retired()
        if not adapters:
            return
        try:
            self._draw(ren, adapters)
            self._upload_all = False
        except Exception:
            # An exception cannot cross VTK's observer boundary; count it and log it.
            self.errors += 1
            log.exception("single-pass volume drawing failed")
        finally:
            win = ren.GetRenderWindow()
            win.GetState().Reset()
            win.GetShaderCache().ReleaseCurrentShader()

    def _depth_texture(self, fbo: Any, vp: tuple[int, int, int, int]) -> Any:
        """The opaque geometry's depth over ``vp``, as an R32F texture (texel (0, 0) at the
        viewport's corner): copied on the GPU from VTK's depth texture by one
        full-viewport pass; read back through the CPU only where VTK's depth is not a
        single-sample texture (a multisampled or renderbuffer target)."""
        import moderngl

        ctx = self.ctx
        size = (vp[2], vp[3])
        if self._depth is None or self._depth.size != size:
            if self._depth is not None:
                self._depth.release()
            if self._depth_fbo is not None:
                self._depth_fbo.release()
            self._depth = ctx.texture(size, 1, dtype="f4")
            self._depth.filter = (moderngl.NEAREST, moderngl.NEAREST)
            self._depth_fbo = ctx.framebuffer(color_attachments=[self._depth])
        src = self._vtk_depth(size)
        if src is None:
            data = fbo.read(viewport=vp, attachment=-1, components=1, dtype="f4")
            self._depth.write(data)
            self.depth_copies_cpu += 1
            return self._depth
        prog = self._copy_prog
        if prog is None:
            from viewer.raycast import FULL_VIEWPORT_VERTEX

            prog = self._copy_prog = ctx.program(
                vertex_shader=FULL_VIEWPORT_VERTEX, fragment_shader=_COPY_DEPTH
            )
            self._copy_vao = ctx.vertex_array(prog, [])
        prog["u_src"].value = 4
        prog["u_offset"].value = (vp[0], vp[1])
        src.use(4)
        self._depth_fbo.use()
        ctx.disable(moderngl.BLEND | moderngl.DEPTH_TEST)
        self._copy_vao.render(moderngl.TRIANGLES, vertices=3)
        fbo.use()
        self.depth_copies_gpu += 1
        return self._depth

    def _vtk_depth(self, size: tuple[int, int]) -> Any:
        """VTK's depth attachment (of the framebuffer bound now) wrapped as a moderngl
        texture, or None when it is not a plain 2D texture."""
        gl = self._gl
        if gl is None:
            gl = self._gl = _GlQuery(self._loader)
        name = gl.depth_texture()
        if name is None:
            return None
        tex = self._vtk_depth_tex
        if tex is None or tex.glo != name:
            # A wrapper only: releasing it would delete VTK's texture, so it is dropped.
            tex = self._vtk_depth_tex = self.ctx.external_texture(name, size, 1, 0, "f4")
        return tex

    def _draw(self, ren: Any, adapters: list[VtkRaycastImage | VtkRaycastLabels]) -> None:
        ctx = self._context()
        fbo = ctx.detect_framebuffer()
        w, h = self.renderer.size
        x0, y0, x1, y1 = ren.GetViewport()
        vp = (int(x0 * w), int(y0 * h), int(round((x1 - x0) * w)), int(round((y1 - y0) * h)))
        cam = ren.GetActiveCamera()
        aspect = vp[2] / max(vp[3], 1)
        view = _np(cam.GetModelViewTransformMatrix())
        proj = _np(cam.GetProjectionTransformMatrix(aspect, -1.0, 1.0))
        depth = self._depth_texture(fbo, vp)
        planes = clip_planes_array(list(self.renderer.scene.clipping_planes))
        q = self.renderer.quality
        # Rays spaced further apart than a pixel (the "interactive" quality of a camera
        # drag, a headset's adaptive quality) are cast at that spacing into a smaller
        # image that is upsampled over the frame: about spacing**2 fewer rays.
        step = 1.0 / q.samples_per_voxel
        scale = 1.0 / max(float(q.min_ray_spacing_px), 1.0)
        query = None
        if self.budget is not None:
            query = self._timer()
            more, fewer = self.budget.begin_eye(self.eye, (vp, view.tobytes(), proj.tobytes()))
            step *= more
            scale = min(scale, fewer)
        self.render_scale = scale
        self.step_factor = step
        with query if query is not None else contextlib.nullcontext():
            self._draw_volumes(adapters, ctx, fbo, vp, view, proj, depth, planes, step, scale)
        self.stats.levels_drawn = sorted(self._levels)

    def _draw_volumes(
        self,
        adapters: list[VtkRaycastImage | VtkRaycastLabels],
        ctx: Any,
        fbo: Any,
        vp: tuple[int, int, int, int],
        view: npt.NDArray[np.float64],
        proj: npt.NDArray[np.float64],
        depth: Any,
        planes: npt.NDArray[np.float64],
        step: float,
        scale: float,
    ) -> None:
        from viewer.raycast import StreamedVolume

        st = self.stats
        levels = self._levels = set()
        for a in adapters:
            frame = a.frame
            if frame is None:
                continue
            if a.volume is not None and self._outgrown(a, frame):
                # The view now needs more bricks than the atlas holds (zoomed in since
                # the atlas was sized): make a bigger one (the bricks upload again).
                self._release_volume(a.volume)
                a.volume = None
            if a.volume is None:
                a._atlas_bytes = self._atlas_budget(a, frame)
                a.volume = StreamedVolume(
                    ctx,
                    a.streamer,
                    a._atlas_bytes,
                    max_uploads=1 << 30 if self.one_shot else 64,
                    upload_budget_s=float("inf") if self.one_shot else 0.004,
                    # Page trees on a worker thread; one-shot pictures draw their own.
                    background=not self.one_shot,
                )
                a._drawn_with = None
            tf = a.transfer_function()
            mode = a.mode
            vol, atlas = a.volume, a.volume.atlas
            drawn = a._drawn_with
            if drawn is not None and drawn[0] is frame and drawn[1] is tf and not self._upload_all:
                # The same streaming frame and style again (the second XR eye, a redraw
                # without a streaming step): the atlas and tree are as the first draw
                # left them; both eyes show the same bricks.
                pool = vol.pool
            else:
                limits = atlas.max_uploads, vol.upload_budget_s
                if self._upload_all:
                    atlas.max_uploads, vol.upload_budget_s = 1 << 30, float("inf")
                try:
                    pool = vol.update(
                        frame,
                        skip_for=tf if mode == "composite" else None,
                        wait=self._upload_all,
                    )
                finally:
                    atlas.max_uploads, vol.upload_budget_s = limits
                a._drawn_with = (frame, tf)
            self._raycaster.set_nodes(pool, owner=vol, changed=(vol.pool_previous, vol.pool_rows))
            self._raycaster.draw(
                fbo,
                view,
                proj,
                a.volume.tree,
                a.volume.atlas,
                tf,
                viewport=vp,
                depth=depth,
                clip_planes=planes if len(planes) else None,
                mode=mode,
                step_factor=step,
                min_ray_um=a.min_ray_um(step),
                iso_value=a.iso_value,
                render_scale=scale,
            )
            up = a.volume.last
            assert up is not None
            st.volume_passes += self._raycaster.stats.draw_calls
            st.bricks_drawn += up.drawn
            st.uploads += up.uploads + up.border_uploads
            st.gpu_cache_bytes += up.atlas_bytes
            st.behind += up.behind
            levels.update(up.levels)

    def _timer(self) -> Any:
        """This eye's timer query (two per eye used in turn: the other one's result is
        that eye's last frame, read without waiting for this frame's GPU work); the
        result goes to the budget."""
        eye = self.eye
        queries = self._queries.get(eye)
        if queries is None:
            queries = self._queries[eye] = [self.ctx.query(time=True) for _ in range(2)]
            self._query_used[eye] = [False, False]
            self._frame_no[eye] = 0
        used = self._query_used[eye]
        i = self._frame_no[eye] % 2
        other = 1 - i
        if used[other]:
            ms = queries[other].elapsed / 1e6
            self.volume_ms[eye] = ms
            assert self.budget is not None
            self.budget.report(eye, ms)
        used[i] = True
        self._frame_no[eye] += 1
        return queries[i]

    def _atlas_budget(self, a: VtkRaycastImage | VtkRaycastLabels, frame: StreamFrame) -> int:
        from viewer.raycast import BrickAtlas

        slot = self._slot_bytes.get(id(a))
        if slot is None:
            edge = int(a.streamer.grid.chunks.max())
            probe = BrickAtlas(
                self.ctx, edge, a.streamer.source.dtype, 1, max_uploads=0, labels=a.streamer.labels
            )
            slot = self._slot_bytes[id(a)] = probe.slot_bytes
            probe.release()
        want = max(2 * len(frame.keys), 64) * slot
        return int(min(want, a.gpu_budget_bytes))

    def _outgrown(self, a: VtkRaycastImage | VtkRaycastLabels, frame: StreamFrame) -> bool:
        vol = a.volume
        assert vol is not None
        if len(frame.keys) <= vol.atlas.n_slots:
            return False
        return self._atlas_budget(a, frame) > a._atlas_bytes

    def retire(self, volume: StreamedVolume) -> None:
        """Release ``volume``'s GL objects at the next frame (or :meth:`close`)."""
        self._retired.append(volume)

    def _release_volume(self, vol: StreamedVolume) -> None:
        if self._raycaster is not None:
            self._raycaster.forget_nodes(vol)
        vol.release()

    def _release_retired(self) -> None:
        while self._retired:
            self._release_volume(self._retired.pop())

    def upload_all_next_frame(self) -> None:
        """Let the next frame upload every brick it draws (no per-frame limit): the
        frame after :meth:`StreamingController.settle` shows the view complete."""
        self._upload_all = True

    @property
    def behind(self) -> bool:
        """The last frame left uploads for later frames, or drew at a render scale the
        frame budget lowered (the picture is still refining)."""
        refining = self.budget is not None and self.budget.refining
        return self.stats.behind > 0 or (refining and self.stats.volume_passes > 0)

    def finish(self) -> None:
        """Wait for the GPU (frame timing)."""
        if self.ctx is not None:
            self.ctx.finish()

    def close(self) -> None:
        self.renderer.renderer.RemoveObserver(self._tag)
        if self.ctx is None:
            return
        self.renderer.window.MakeCurrent()
        for a in self.renderer.adapters.values():
            if isinstance(a, _OnePass) and a.volume is not None:
                self.retire(a.volume)
                a.volume = None
        self._release_retired()
        for obj in (
            self._raycaster,
            self._depth,
            self._depth_fbo,
            self._copy_vao,
            self._copy_prog,
        ):
            if obj is not None:
                obj.release()
        self._raycaster = self._depth = self._depth_fbo = self._copy_vao = self._copy_prog = None
        self._queries = {}  # moderngl queries have no release: dropped with the context
        self._vtk_depth_tex = None


def _trilinear(arr: npt.NDArray[Any], f: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``arr`` (z, y, x) at fractional voxel coordinates ``f`` (N, 3), edges clamped."""
    hi = np.asarray(arr.shape) - 1
    f = f.clip(0, hi)
    i0 = np.floor(f).astype(np.int64).clip(0, np.maximum(hi - 1, 0))
    w = f - i0
    out = np.zeros(len(f))
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                idx = np.minimum(i0 + (dz, dy, dx), hi)
                wt = (
                    (w[:, 0] if dz else 1 - w[:, 0])
                    * (w[:, 1] if dy else 1 - w[:, 1])
                    * (w[:, 2] if dx else 1 - w[:, 2])
                )
                out += wt * arr[idx[:, 0], idx[:, 1], idx[:, 2]]
    return out


def _np(m: Any) -> npt.NDArray[np.float64]:
    return np.array([[m.GetElement(i, j) for j in range(4)] for i in range(4)], dtype=np.float64)


def timed_frame(renderer: SceneRenderer, host: GLVolumeHost) -> float:
    """Draw one frame and wait for the GPU; its wall time in ms."""
    t0 = time.perf_counter()
    renderer.render()
    host.finish()
    return (time.perf_counter() - t0) * 1e3
