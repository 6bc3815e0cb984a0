"""Streaming into the renderer: every streamed layer's bricks reach the picture.

:class:`StreamingController` attaches a :class:`viewer.streaming.VolumeStreamer`
to every ``Image`` layer of a :class:`SceneRenderer` and to every ``Labels`` layer
drawn as a label volume, and replaces the layer's adapter by one drawn in **one
ray-casting pass per layer** whatever the number of bricks
(:mod:`viewer.render._gl_volumes`: :class:`VtkRaycastImage` for composite, MIP, MinIP
and iso-surface images, :class:`VtkRaycastLabels` for label volumes; the GL core is
:mod:`viewer.raycast`). Bricks are ``brick_size`` voxels (default
:data:`DEFAULT_BRICK_SIZE`) whatever the store's chunks (:class:`BrickedSource`).
Labels drawn as surfaces without an explicit ``level`` stream too
(:class:`VtkStreamedSurfaces`, ``stream_surfaces=True``): one mesh per drawn brick,
built on mesh threads, refining like the image. With ``stream_surfaces=False`` they
keep their whole-level meshes; then with ``surface_levels=True`` (as one-shot renders
use) they are meshed from one whole level chosen by the same level-of-detail rule: the
finest level the view needs anywhere, never finer than the renderer's voxel budget
allows.

Each frame, :meth:`StreamingController.update` turns the scene camera (or the XR eye
views given by :meth:`set_views`) into streaming views, asks each streamer for its
bricks and hands them to the adapter; the renderer's own ``render()`` then draws them:
``vrscope render`` (:func:`render_streamed`), ``vrscope movie``, the desktop 3D view
(``viewer.qt``'s render thread) and both XR eyes (``xrmode``). Nothing here waits for
I/O.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from analysis.volume import VolumeSource
from viewer.scene import Image, Labels, Scene
from viewer.streaming import (
    BrickedSource,
    BrickGrid,
    StreamFrame,
    StreamStats,
    View,
    VolumeStreamer,
    clip_planes_array,
    select_bricks,
)

from ._base import choose_level
from ._canvas import EyeView, SceneRenderer
from ._gl_volumes import GLFrameStats, GLVolumeHost, VtkRaycastImage, VtkRaycastLabels, timed_frame
from ._image import coarse_range
from ._labels import VtkLabels
from ._streamed_surfaces import VtkStreamedSurfaces

if TYPE_CHECKING:
    from viewer.raycast import FrameBudget

__all__ = [
    "StreamingController",
    "VtkStreamedSurfaces",
    "coarse_range",
    "render_streamed",
    "use_coarse_contrast",
]

log = logging.getLogger(__name__)

#: Streaming brick edge (voxels) of single-pass volumes when none is given
#: (``vrscope render --brick-size``); docs/benchmarks.md has the measurement.
DEFAULT_BRICK_SIZE = 64


def use_coarse_contrast(scene: Scene) -> None:
    """Give every ``Image`` layer without contrast limits those of its coarsest level.

    Whichever level is drawn, streamed and whole-level pictures of a store then
    agree, and they stay put as bricks refine (``vrscope render``, the headset).
    """
    for lay in scene.layers:
        if isinstance(lay, Image) and lay.data is not None and lay.contrast_limits is None:
            lay.contrast_limits = coarse_range(lay.data)


class _SurfaceLevel:
    """Chooses the level a surface ``Labels`` layer is meshed from, by the LOD rule.

    The finest level any visible brick needs (:func:`select_bricks` on the label
    image's own grid, nothing loaded), never finer than the voxel budget: meshes
    are per object over one whole level. While the camera moves, a new level is
    applied only after it was wanted ``stable_frames`` frames in a row (remeshing
    takes seconds); :meth:`StreamingController.settle` applies it at once.
    """

    def __init__(
        self,
        layer: Labels,
        adapter: VtkLabels,
        voxel_budget: int,
        max_error_px: float,
        finest_level: int,
        stable_frames: int = 30,
    ) -> None:
        assert layer.data is not None
        self.layer = layer
        self.adapter = adapter
        self.grid = BrickGrid.from_source(layer.data)
        self.budget_level = choose_level(layer.data, voxel_budget)
        self.max_error_px = max_error_px
        self.finest_level = finest_level
        self.stable_frames = stable_frames
        self._last_views: list[View] = []
        self._want = -1
        self._count = 0

    def update(self, views: list[View], planes: Any, immediate: bool) -> None:
        if self.layer.level is not None:
            return  # an explicit level wins
        same = len(views) == len(self._last_views) and all(
            a.close_to(b, 0.0, 0.0, 1.0) for a, b in zip(views, self._last_views, strict=True)
        )
        if not same:
            sel = select_bricks(
                self.grid, views, clip_planes_array(planes), self.max_error_px, self.finest_level
            )
            want = int(sel.leaf_levels.min()) if len(sel.leaves) else self.grid.n_levels - 1
            self._want = max(want, self.budget_level)
            self._last_views = list(views)
        if self._want == self.adapter.level_override:
            self._count = 0
            return
        self._count += 1
        if immediate or self.adapter.level_override is None or self._count >= self.stable_frames:
            log.debug("labels %s: meshing level %d", self.layer.name, self._want)
            self.adapter.level_override = self._want
            self.adapter.dirty = True
            self._count = 0


class StreamingController:
    """Streams every ``Image`` layer (and label volume) of a :class:`SceneRenderer`'s scene.

    Parameters
    ----------
    renderer : SceneRenderer
    cache_bytes : int, optional
        RAM budget shared equally by the streamed layers (default: a quarter of RAM).
    gpu_budget_bytes : int, default: 1 GiB
        Texture budget, shared equally.
    max_error_px : float, default: 1.0
    n_workers : int, optional
        Loader threads per layer (default: one per core, at most 8).
    finest_level : int, default: 0
        Never stream (or mesh) finer than this level.
    stream_labels : bool, default: True
        Stream ``Labels`` layers drawn as label volumes.
    stream_surfaces : bool, default: True
        Stream ``Labels`` layers drawn as surfaces (without an explicit ``level``):
        :class:`VtkStreamedSurfaces`, per-brick meshes built on ``mesh_workers``
        threads. Their frames (from :meth:`update`) count meshes still to build
        as pending and are complete only once every leaf is drawn by its own mesh.
    mesh_workers : int, default: 1
        Mesh threads per streamed surface layer.
    mesh_cache_bytes : int, default: 256 MiB
        Mesh cache per streamed surface layer (meshes of the view's leaves are kept
        beyond it).
    frame_budget_ms : float or viewer.raycast.FrameBudget, optional
        GPU time per eye for the single-pass volumes (:class:`GLVolumeHost`): fewer
        ray steps and a lower render scale while the view moves over budget, refined
        while it is still; or the controller itself (a headset shares its own).
    surface_levels : bool, default: False
        With ``stream_surfaces=False``: mesh ``Labels`` layers drawn as surfaces
        from the whole level the view needs (:class:`_SurfaceLevel`) instead of
        the voxel budget's. Remeshing runs on the calling thread and takes seconds
        for big label images.

    Notes
    -----
    Layers added to the scene later (or whose data or label mode changes) are streamed
    from the next :meth:`update` on, with the same per-layer budgets as the first ones;
    removed layers stop streaming.

    Examples
    --------
    >>> ctl = StreamingController(renderer)            # doctest: +SKIP
    >>> ctl.render()        # each frame: update streaming, draw   # doctest: +SKIP
    """

    def __init__(
        self,
        renderer: SceneRenderer,
        cache_bytes: int | None = None,
        gpu_budget_bytes: int = 1 << 30,
        max_error_px: float = 1.0,
        n_workers: int | None = None,
        finest_level: int = 0,
        stream_labels: bool = True,
        surface_levels: bool = False,
        stream_surfaces: bool = True,
        mesh_workers: int = 1,
        mesh_cache_bytes: int = 256 << 20,
        brick_size: int | None = None,
        one_shot: bool = False,
        frame_budget_ms: float | FrameBudget | None = None,
    ) -> None:
        from viewer.streaming import default_cache_bytes

        self.renderer = renderer
        self.scene: Scene = renderer.scene
        self.stream_labels = stream_labels
        self.stream_surfaces = stream_surfaces
        self.max_error_px = max_error_px
        self.n_workers = n_workers
        self.finest_level = finest_level
        self.mesh_workers = mesh_workers
        self.mesh_cache_bytes = mesh_cache_bytes
        self.one_shot = one_shot
        self.frame_budget_ms = frame_budget_ms
        self.brick_size = DEFAULT_BRICK_SIZE if brick_size is None else brick_size
        self.adapters: dict[str, VtkStreamedSurfaces | VtkRaycastImage | VtkRaycastLabels] = {}
        self.surfaces: dict[str, _SurfaceLevel] = {}
        self._views: list[EyeView] | None = None
        self._kinds: dict[str, tuple[int, str, int]] = {}  # name -> (layer, kind, source) ids
        self.host: GLVolumeHost | None = None
        streamed = self._wanted()
        n = max(len(streamed), 1)
        total = default_cache_bytes() if cache_bytes is None else int(cache_bytes)
        # Each layer's share of the budgets; layers added later get the same share.
        self.cache_bytes_per_layer = total // n
        self.gpu_bytes_per_layer = max(gpu_budget_bytes // n, 1)
        for lay, kind in streamed:
            self._attach(lay, kind)
        labels = [lay for lay in self.scene.layers if isinstance(lay, Labels) and lay.data]
        for lay in labels if surface_levels else []:
            got = renderer.adapters.get(id(lay))
            if lay.mode == "surface" and isinstance(got, VtkLabels):
                self.surfaces[lay.name] = _SurfaceLevel(
                    lay, got, renderer.voxel_budget, max_error_px, finest_level
                )

    def _wanted(self) -> list[tuple[Image | Labels, str]]:
        """The scene's layers this controller streams, with how: image, volume, surface."""
        out: list[tuple[Image | Labels, str]] = []
        for lay in self.scene.layers:
            if isinstance(lay, Image) and lay.data is not None:
                out.append((lay, "image"))
            elif isinstance(lay, Labels) and lay.data is not None:
                if lay.mode == "volume" and self.stream_labels:
                    out.append((lay, "volume"))
                elif lay.mode == "surface" and lay.level is None and self.stream_surfaces:
                    out.append((lay, "surface"))
        return out

    def _attach(self, lay: Image | Labels, kind: str) -> None:
        """Stream ``lay``: a streamer and the adapter that draws it, in place of the
        renderer's whole-level adapter (before that one read anything)."""
        assert lay.data is not None
        source: Any = lay.data
        if kind != "surface":
            source = _nesting_source(lay.data, self.brick_size)
        streamer = VolumeStreamer(
            source,
            cache_bytes=self.cache_bytes_per_layer,
            gpu_budget_bytes=self.gpu_bytes_per_layer,
            max_error_px=self.max_error_px,
            n_workers=self.n_workers,
            labels=isinstance(lay, Labels),
            finest_level=self.finest_level,
            # Selection and draw list on a worker while the view moves (one-shot renders
            # select on this thread: their one picture is the settled one).
            background=not self.one_shot,
        )
        adapter: VtkStreamedSurfaces | VtkRaycastImage | VtkRaycastLabels
        if kind == "surface":
            assert isinstance(lay, Labels)
            adapter = VtkStreamedSurfaces(
                lay, streamer, n_workers=self.mesh_workers, cache_bytes=self.mesh_cache_bytes
            )
            adapter.set_camera(self.renderer.renderer.GetActiveCamera())
        else:
            if self.host is None:
                self.host = GLVolumeHost(
                    self.renderer, one_shot=self.one_shot, frame_budget_ms=self.frame_budget_ms
                )
            adapter = (
                VtkRaycastLabels(lay, streamer, self.gpu_bytes_per_layer)
                if isinstance(lay, Labels)
                else VtkRaycastImage(lay, streamer, self.gpu_bytes_per_layer)
            )
            adapter.host = self.host
        old = self.renderer.adapters.get(id(lay))
        # The renderer reconciles props per adapter on its next sync: the old adapter's
        # props are removed, the streamed ones added.
        self.renderer.adapters[id(lay)] = adapter
        if old is not None and old is not adapter:
            old.close()
        self.adapters[lay.name] = adapter
        self._kinds[lay.name] = (id(lay), kind, id(lay.data))

    def _detach(self, name: str) -> None:
        adapter = self.adapters.pop(name)
        self._kinds.pop(name, None)
        adapter.streamer.close()
        if isinstance(adapter, VtkStreamedSurfaces):
            adapter.close_pool()
        lay = adapter.layer
        if self.renderer.adapters.get(id(lay)) is adapter and lay in self.scene.layers:
            # Still in the scene but no longer streamed (e.g. a label layer switched
            # to surfaces with an explicit level): back to the renderer's own adapter.
            del self.renderer.adapters[id(lay)]
            adapter.close()
            self.renderer._add_adapter(lay)

    def reconcile(self) -> None:
        """Follow the scene: stream layers added (or whose data or drawing mode changed)
        since the last frame, stop streaming those removed. :meth:`update` calls it."""
        wanted = {lay.name: (lay, kind) for lay, kind in self._wanted()}
        for name in list(self.adapters):
            lay, kind = wanted.get(name, (None, ""))
            if lay is None or self._kinds.get(name) != (id(lay), kind, id(lay.data)):
                self._detach(name)
        for name, (lay, kind) in wanted.items():
            if name not in self.adapters:
                log.debug("streaming layer %s (%s)", name, kind)
                self._attach(lay, kind)

    @property
    def streamers(self) -> dict[str, VolumeStreamer]:
        return {name: a.streamer for name, a in self.adapters.items()}

    def set_views(self, views: Sequence[EyeView] | None) -> None:
        """Stream for these eye views (XR) instead of the scene camera; None: the camera."""
        self._views = list(views) if views is not None else None

    def views(self) -> list[View]:
        size = self.renderer.size
        if self._views:
            return [View.from_eye(e, size) for e in self._views]
        return [View.from_camera(self.scene.camera, size)]

    def update(self, immediate: bool = False, show: bool = True) -> dict[str, StreamFrame]:
        """One streaming step for every layer (call once per frame, before drawing).

        ``immediate``: apply a new surface-mesh level at once (one-shot renders).
        ``show=False``: do not hand the bricks to the adapters (a later update with
        ``show=True`` draws them; :meth:`settle` skips the intermediate pictures).
        """
        self.reconcile()
        views = self.views()
        planes = list(self.scene.clipping_planes)
        out = {}
        for name, adapter in self.adapters.items():
            st = adapter.streamer
            if st.n_time > 1:
                st.time_index = min(max(int(round(self.scene.current_time)), 0), st.n_time - 1)
            frame = st.update(views, planes, wait=immediate)
            if show:
                adapter.show(frame)
            else:
                adapter.note(frame)
            if isinstance(adapter, VtkStreamedSurfaces):
                frame = _with_meshes(frame, adapter)
            out[name] = frame
        for surf in self.surfaces.values():
            surf.update(views, planes, immediate)
        return out

    def render(self) -> None:
        """Update streaming, then draw one frame."""
        self.update()
        self.renderer.render()

    def settle(
        self,
        timeout: float = 60.0,
        progress: Callable[[dict[str, StreamFrame]], None] | None = None,
    ) -> dict[str, StreamFrame]:
        """Update until every layer shows its view at full detail (one-shot renders, tests).

        ``progress(frames)`` is called after every update (e.g. to drive a progress bar).
        """
        deadline = time.monotonic() + timeout
        # Intermediate pictures are never drawn: bricks are handed to the adapters
        # once, at the end (building textures as bricks arrive would redo each
        # brick's border as its neighbours land).
        frames = self.update(immediate=True, show=False)
        while time.monotonic() < deadline:
            if progress is not None:
                progress(frames)
            busy = [f for f in frames.values() if not f.complete]
            if not busy:
                break
            if all(f.stats.pending == 0 and f.stats.in_flight == 0 for f in busy):
                # Nothing left to load (failed bricks, budget cut): one more look, then stop.
                frames = self.update(immediate=True, show=False)
                if all(f.stats.pending == 0 and f.stats.in_flight == 0 for f in frames.values()):
                    break
            for name in [n for n, f in frames.items() if not f.complete]:
                left = max(deadline - time.monotonic(), 0.0)
                adapter = self.adapters[name]
                if isinstance(adapter, VtkStreamedSurfaces) and adapter.jobs:
                    adapter.wait(min(0.05, left))
                else:
                    adapter.streamer.wait(min(0.05, left))
            frames = self.update(immediate=True, show=False)
        frames = self.update(immediate=True)
        if self.host is not None:
            self.host.upload_all_next_frame()  # the next picture is the complete one
        if progress is not None:
            progress(frames)
        return frames

    def stats(self) -> dict[str, StreamStats]:
        return {name: a.streamer.stats() for name, a in self.adapters.items()}

    def close(self) -> None:
        if self.host is not None:
            self.host.close()
            self.host = None
        for a in self.adapters.values():
            a.streamer.close()
            if isinstance(a, VtkStreamedSurfaces):
                a.close_pool()

    def __enter__(self) -> StreamingController:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _nesting_source(source: VolumeSource, edge: int) -> BrickedSource:
    """``source`` in bricks of ``edge`` voxels, with the levels the page tree takes.

    A pyramid whose coarser levels do not nest with the finer ones (a factor-3 or -4
    level, a level far off the finest level's corner, more levels than the shader
    holds) is streamed from its finest levels that do; the rest are left out, with a
    warning (stand-ins then come from fewer levels).
    """
    from analysis.errors import ParameterError
    from viewer.raycast import PageTree

    n = len(source.levels)
    for keep in range(n, 0, -1):
        bricked = BrickedSource(source, edge, n_levels=keep)
        try:
            PageTree(BrickGrid.from_source(bricked))
        except ParameterError as exc:
            if keep == 1:
                raise
            reason = str(exc)
            continue
        if keep < n:
            log.warning("%s: streaming levels 0-%d of %d (%s)", source.name, keep - 1, n, reason)
        return bricked
    raise AssertionError("unreachable")


def _with_meshes(frame: StreamFrame, adapter: VtkStreamedSurfaces) -> StreamFrame:
    """``frame`` with the surface layer's meshing in its stats: meshes queued or
    building count as in flight, those still to hand over as pending, and the frame
    is complete only when every leaf is drawn by its own mesh (so viewers keep
    redrawing and :meth:`StreamingController.settle` keeps waiting while meshes come)."""
    st = frame.stats
    stats = dataclasses.replace(
        st,
        pending=st.pending + adapter.waiting,
        in_flight=st.in_flight + adapter.jobs,
        complete=adapter.complete,
    )
    return dataclasses.replace(frame, stats=stats)


def render_streamed(
    scene: Scene,
    size: tuple[int, int] = (800, 600),
    cache_bytes: int | None = None,
    max_error_px: float = 1.0,
    timeout: float = 120.0,
    finest_level: int = 0,
    progress: Callable[[dict[str, StreamFrame]], None] | None = None,
    brick_size: int | None = None,
    frame_stats: dict[str, Any] | None = None,
    **kw: Any,
) -> tuple[npt.NDArray[np.uint8], dict[str, StreamStats]]:
    """Render ``scene`` offscreen once with streaming, after the view has fully refined.

    Returns the (H, W, 3) image and each streamed layer's statistics. ``kw`` go to
    :class:`SceneRenderer` (e.g. ``voxel_budget``, which bounds the whole level that
    label surfaces with an explicit ``level`` are meshed from; other label surfaces
    stream, :class:`VtkStreamedSurfaces`).

    Image layers and label volumes are drawn in one ray-casting pass each over bricks
    of ``brick_size`` voxels (default :data:`DEFAULT_BRICK_SIZE`). ``frame_stats``,
    a dict, receives what the final frame drew (``volume_passes``, ``bricks_drawn``,
    ``levels_drawn``, ``frame_ms``: that frame drawn again once everything is on the
    GPU and timed until the GPU finished, ``gpu_cache_bytes``).
    """
    with (
        SceneRenderer(scene, size=size, **kw) as r,
        StreamingController(
            r,
            cache_bytes=cache_bytes,
            max_error_px=max_error_px,
            finest_level=finest_level,
            surface_levels=True,
            brick_size=brick_size,
            one_shot=True,
        ) as ctl,
    ):
        ctl.settle(timeout, progress)
        img = r.screenshot()
        if frame_stats is not None:
            frame_stats.update(_frame_stats(r, ctl))
        return img, ctl.stats()


def _frame_stats(r: SceneRenderer, ctl: StreamingController) -> dict[str, Any]:
    """Draw the settled frame again, timed (GPU-synchronised), and say what it drew."""
    host = ctl.host
    if host is not None:
        timed_frame(r, host)  # uploads of the screenshot's frame are done: a warm frame
        ms = timed_frame(r, host)
        gl = host.stats
    else:  # nothing drawn in one pass (surfaces only)
        t0 = time.perf_counter()
        r.render()
        r.window.WaitForCompletion()
        ms = (time.perf_counter() - t0) * 1e3
        gl = GLFrameStats()
    return {
        "volume_passes": int(gl.volume_passes),
        "bricks_drawn": int(gl.bricks_drawn),
        "levels_drawn": sorted(int(x) for x in gl.levels_drawn),
        "frame_ms": float(ms),
        "gpu_cache_bytes": int(gl.gpu_cache_bytes),
        "single_pass": host is not None,
    }
