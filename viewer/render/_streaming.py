"""Streaming into the renderer: adapters that draw a ``VolumeStreamer``'s bricks.

:class:`StreamingController` attaches a :class:`viewer.streaming.VolumeStreamer`
to every ``Image`` layer of a :class:`SceneRenderer` (replacing the layer's
adapter by a :class:`VtkStreamedImage`) and to every ``Labels`` layer drawn as a
label volume (:class:`VtkStreamedLabels`: nearest-neighbour sampling, one colour
per id). Labels drawn as surfaces without an explicit ``level`` stream too
(:class:`VtkStreamedSurfaces`, ``stream_surfaces=True``): one mesh per drawn
brick, built on mesh threads, refining like the image. With
``stream_surfaces=False`` they keep their whole-level meshes; then with
``surface_levels=True`` (as one-shot renders used) they are meshed from one
whole level chosen by the same level-of-detail rule: the finest level the view
needs anywhere, never finer than the renderer's voxel budget allows.

Each frame, :meth:`StreamingController.update` turns the scene camera (or the XR eye views given by :meth:`set_views`) into
streaming views, asks each streamer for its bricks and hands them to the adapter;
the renderer's own ``render()`` then draws them. Nothing here waits for I/O.

Drawing (see RENDERING.md for the measurements behind it): one
``vtkOpenGLGPUVolumeRayCastMapper`` per draw item, all sharing the layer's
``vtkVolumeProperty`` and the scene's clipping planes, sorted back to front by
the renderer. Each item's texture is the brick with a one-voxel border
(:meth:`VolumeStreamer.padded`) and the mapper crops to the item's world box
(``SetCropping``, sub-volume): boxes of mixed levels tile space exactly, so
there are neither gaps nor doubly composited slabs at level transitions, and
inside one level neighbours interpolate the same boundary values. Volumes and
their textures are kept across frames and rebuilt only when an item appears or
a neighbour arrives that should fill its border.

With ``single_pass=True`` ``Image`` layers (composite, MIP, MinIP) are drawn by
:mod:`viewer.render._gl_volumes` in one ray-casting pass each, whatever the number
of bricks: ``vrscope render`` (:func:`render_streamed`), ``vrscope movie``, the
desktop 3D view (``viewer.qt``'s render thread) and both XR eyes (``xrmode``) use it.
The per-brick path above stays for label volumes, ``isosurface`` images and
pyramids the page tree does not take, until they move over too (issue 15). It cannot draw
maximum/minimum intensity projection (VTK composites volumes with "over" blending,
so the front brick's projection hides the rest of the ray).
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
    BrickGrid,
    PaddedBrick,
    StreamFrame,
    StreamStats,
    View,
    VolumeStreamer,
    clip_planes_array,
    select_bricks,
)

from . import _vtk as v
from ._base import DrawItem, FrameContext, choose_level, draw_items, read_level_zyx
from ._canvas import EyeView, SceneRenderer
from ._image import VolumeBrick, VtkImage, _range, image_data
from ._labels import VtkLabels, label_transfer_functions
from ._streamed_surfaces import VtkStreamedSurfaces

if TYPE_CHECKING:
    from ._gl_volumes import VtkRaycastImage

__all__ = [
    "StreamingController",
    "VtkStreamedImage",
    "VtkStreamedLabels",
    "VtkStreamedSurfaces",
    "coarse_range",
    "render_streamed",
    "use_coarse_contrast",
]

log = logging.getLogger(__name__)

#: Streaming brick edge (voxels) of single-pass volumes when none is given
#: (``vrscope render --brick-size``); docs/benchmarks.md has the measurement.
DEFAULT_BRICK_SIZE = 64


def coarse_range(source: VolumeSource, max_voxels: int = 2**22) -> tuple[float, float]:
    """Default contrast limits of a streamed image, from its coarsest level.

    The same percentiles as a whole-level ``VtkImage`` (``_range``), taken once
    from the coarsest level (time point and channel 0), so the picture does not
    change as finer bricks arrive. A coarsest level larger than ``max_voxels``
    (a store without a pyramid) is sampled in its central block only.
    """
    level = len(source.levels) - 1
    lev = source.levels[level]
    shape = lev.shape[-3:]
    if int(np.prod(shape, dtype=np.int64)) <= max_voxels:
        arr = read_level_zyx(source, level)[0]
        return _range([arr])
    side = int(round(max_voxels ** (1 / 3)))
    region: list[slice] = [slice(0, 1) for _ in source.axes[:-3]]
    for n in shape:
        h = min(side, n)
        region.append(slice((n - h) // 2, (n - h) // 2 + h))
    return _range([np.asarray(source.read(level, tuple(region)))])


def use_coarse_contrast(scene: Scene) -> None:
    """Give every ``Image`` layer without contrast limits those of its coarsest level.

    Whichever level is drawn, streamed and whole-level pictures of a store then
    agree, and they stay put as bricks refine (``vrscope render``, the headset).
    """
    for lay in scene.layers:
        if isinstance(lay, Image) and lay.data is not None and lay.contrast_limits is None:
            lay.contrast_limits = coarse_range(lay.data)


def _vtk_crop_box(
    lo: npt.NDArray[np.float64], hi: npt.NDArray[np.float64], pb: PaddedBrick
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The crop planes to give VTK so that it crops a brick at ``lo`` / ``hi`` (world zyx).

    VTK's GPU ray caster tests each sample against the cropping planes in texture
    coordinates made *without* the cell-to-point adjustment its samples use (texel
    centres at (i + 0.5) / n, not i / (n - 1)), so a plane given at voxel index p cuts
    at p n / (n - 1) - 0.5: near a brick's far face about half a voxel beyond, near its
    near face half a voxel before. Adjacent bricks then overlap by most of a voxel at
    every shared face: rays crossing a face composite that slab twice (brighter), and
    rays grazing a face seen edge-on composite it along their whole length (the 1-px
    lines of a face-on headset view, up to 29/255 on a constant volume, 2/255 after
    this correction). Inverting the map: q = (p + 0.5) (n - 1) / n.
    """
    origin = np.asarray(pb.origin_um, dtype=np.float64)
    spacing = np.asarray(pb.spacing_um, dtype=np.float64)
    n = np.asarray(pb.array.shape[-3:], dtype=np.float64)
    scale = np.where(n > 1, (n - 1) / np.maximum(n, 1), 1.0)
    shift = np.where(n > 1, 0.5, 0.0)

    def fix(w: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        p = (np.asarray(w, dtype=np.float64) - origin) / spacing
        return origin + ((p + shift) * scale) * spacing

    return fix(lo), fix(hi)


class VtkStreamedImage(VtkImage):
    """Draws the bricks a :class:`VolumeStreamer` chose for an ``Image`` layer.

    Parameters
    ----------
    layer : Image
    streamer : VolumeStreamer

    Notes
    -----
    Without ``layer.contrast_limits`` the contrast comes from the coarsest level
    (:func:`coarse_range`). The opacity unit distance follows the finest level the
    view wants (not what is resident yet), so the look does not change as bricks
    refine and equals a whole-level render of that level.
    """

    def __init__(self, layer: Any, streamer: VolumeStreamer) -> None:
        super().__init__(layer)
        self.streamer = streamer
        self._external = True  # never read whole levels (VtkImage's default path)
        self._images: dict[int, tuple[Any, PaddedBrick]] = {}
        self._nbytes: dict[int, int] = {}  # texture bytes per brick
        self._unshown: list[npt.NDArray[np.int64]] = []  # arrivals of frames not drawn
        self._volumes: dict[DrawItem, Any] = {}
        self._unit_spacing = float(np.min(streamer.grid.scale[0]))
        self.frame: StreamFrame | None = None
        if streamer.labels:
            self.property.SetInterpolationTypeToNearest()
        elif getattr(layer, "contrast_limits", None) is None:
            self._data_range = coarse_range(streamer.source)

    def _update(self, ctx: FrameContext) -> None:
        self._update_property()

    def _update_property(self) -> None:
        super()._update_property()
        self.property.SetScalarOpacityUnitDistance(self._unit_spacing * 2.0)

    def _prepare(self, array: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """The voxels as uploaded (labels override this)."""
        return array

    def _image(self, key: int) -> tuple[Any, PaddedBrick] | None:
        got = self._images.get(key)
        if got is not None:
            return got
        pb = self.streamer.padded(key)
        if pb is None:
            return got
        arr = self._prepare(pb.array)
        img = image_data(arr, pb.origin_um, pb.spacing_um)
        self._images[key] = (img, pb)
        self._nbytes[key] = int(arr.nbytes)
        return self._images[key]

    def _patch(self, key: int, neighbours: list[int]) -> None:
        """Fill ``key``'s border from newly resident ``neighbours``, in place."""
        img, pb = self._images[key]
        scalars = img.GetPointData().GetScalars()
        texture = v.vtk_to_numpy(scalars).reshape(pb.array.shape)
        used = set(pb.neighbours)
        for nk in neighbours:
            got = self.streamer.border_patch(pb, nk)
            if got is None:
                continue
            where, values = got
            pb.array[where] = values
            texture[where] = self._prepare(values)
            used.add(nk)
        scalars.Modified()
        img.Modified()
        self._images[key] = (img, dataclasses.replace(pb, neighbours=frozenset(used)))

    def note(self, frame: StreamFrame) -> None:
        """Remember ``frame``'s arrivals without drawing it (a later :meth:`show` uses them)."""
        if len(frame.arrived):
            self._unshown.append(frame.arrived)

    def show(self, frame: StreamFrame) -> None:
        """Draw ``frame``'s items (reusing the volumes of items drawn last frame)."""
        self.frame = frame
        arrived = (
            np.concatenate([*self._unshown, frame.arrived]) if self._unshown else frame.arrived
        )
        self._unshown.clear()
        leaf_levels = frame.selection.leaf_levels
        if len(leaf_levels):
            finest = int(leaf_levels.min())
            unit = float(np.min(self.streamer.grid.scale[finest]))
            if unit != self._unit_spacing:
                self._unit_spacing = unit
                self.dirty = True
        # Bricks whose neighbour just arrived: fill that side of their border in place
        # (the brick's array and its VTK scalars; the mapper re-uploads the texture)
        # instead of rebuilding the brick, its image data and its volume.
        stale: dict[int, list[int]] = {}
        for k in arrived:
            for nk in self.streamer.neighbour_keys(int(k)):
                got = self._images.get(int(nk))
                if got is not None and int(k) not in got[1].neighbours:
                    stale.setdefault(int(nk), []).append(int(k))
        for key, news in stale.items():
            self._patch(key, news)
        wanted = draw_items(frame.keys, frame.crop_lo, frame.crop_hi)
        changed = bool(stale)
        for ik in [ik for ik in self._volumes if ik not in wanted]:
            del self._volumes[ik]
            changed = True
        for ik, (key, lo, hi) in wanted.items():
            vol = self._volumes.get(ik)
            if vol is None:
                got = self._image(key)
                if got is None:
                    continue
                vol = self._volume(got, lo, hi)
                self._volumes[ik] = vol
                changed = True
        if not changed and self.props:
            return
        used = {ik[0] for ik in self._volumes}
        for key in [k for k in self._images if k not in used]:
            del self._images[key]
        self.props = list(self._volumes.values())
        self._bricks = [
            VolumeBrick(pb.level, pb.region, pb.array, pb.origin_um, pb.spacing_um)
            for _, pb in self._images.values()
        ]
        for key in [k for k in self._nbytes if k not in self._images]:
            del self._nbytes[key]
        self.streamer.textures.set(dict(self._nbytes))
        self._shown()
        self.dirty = True

    def _shown(self) -> None:
        """Hook after the drawn bricks changed."""

    def _volume(
        self, got: tuple[Any, PaddedBrick], lo: npt.NDArray[np.float64], hi: npt.NDArray[np.float64]
    ) -> Any:
        img, pb = got
        mapper = v.vtkOpenGLGPUVolumeRayCastMapper()
        mapper.SetInputData(img)
        mapper.SetAutoAdjustSampleDistances(False)
        mapper.SetSampleDistance(float(min(pb.spacing_um)) * 0.5)
        mapper.SetCropping(True)
        lo, hi = _vtk_crop_box(lo, hi, pb)
        # Cropping planes are x0, x1, y0, y1, z0, z1 in the data's world coordinates.
        mapper.SetCroppingRegionPlanes(
            float(lo[2]), float(hi[2]), float(lo[1]), float(hi[1]), float(lo[0]), float(hi[0])
        )
        mapper.SetCroppingRegionFlagsToSubVolume()
        if self._planes is not None:
            mapper.SetClippingPlanes(self._planes)
        vol = v.vtkVolume()
        vol.SetMapper(mapper)
        vol.SetProperty(self.property)
        return vol

    def set_bricks(self, bricks: Sequence[VolumeBrick] | None) -> None:
        raise TypeError("a streamed image takes its bricks from its VolumeStreamer (show())")

    def close(self) -> None:
        self._volumes.clear()
        self._images.clear()
        self._nbytes.clear()
        super().close()


class VtkStreamedLabels(VtkStreamedImage):
    """A ``Labels`` layer in label-volume mode, streamed: each id in its colour.

    Same bricks, borders and cropping as :class:`VtkStreamedImage`, with
    nearest-neighbour sampling and a piecewise-constant transfer function over
    the ids of the bricks drawn (each brick's ids are found by the loader
    threads, :meth:`VolumeStreamer.brick_ids`); the function is rebuilt only
    when an id appears. Voxels are uploaded as float32 (ids exact up to 2**24),
    like :class:`VtkLabels`' volume mode.

    Parameters
    ----------
    layer : Labels
    streamer : VolumeStreamer
        Made with ``labels=True``.
    """

    def __init__(self, layer: Labels, streamer: VolumeStreamer) -> None:
        super().__init__(layer, streamer)
        self.property.SetInterpolationTypeToNearest()
        self.property.ShadeOff()
        self.ids: list[int] = []
        self._ids_set: set[int] = set()

    @property
    def selection_dependent(self) -> bool:
        return False

    def _prepare(self, array: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return array.astype(np.float32)

    def _shown(self) -> None:
        new: set[int] = set()
        for key in self._images:
            new.update(int(i) for i in self.streamer.brick_ids(key) if i != 0)
        if not new <= self._ids_set:
            self._ids_set |= new
            self.ids = sorted(self._ids_set)

    def _update_property(self) -> None:
        lay: Labels = self.layer  # type: ignore[assignment]
        ctf, otf = label_transfer_functions(lay, self.ids)
        self.property.SetColor(ctf)
        self.property.SetScalarOpacity(otf)
        self.property.SetScalarOpacityUnitDistance(1e-6)  # opaque at first hit
        for m in self.mappers():
            m.SetBlendModeToComposite()


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
        Mesh cache per streamed surface layer.
    surface_levels : bool, default: False
        With ``stream_surfaces=False``: mesh ``Labels`` layers drawn as surfaces
        from the whole level the view needs (:class:`_SurfaceLevel`) instead of
        the voxel budget's. Remeshing runs on the calling thread and takes seconds
        for big label images.

    Notes
    -----
    The layers are taken at construction.

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
        single_pass: bool = False,
        brick_size: int | None = None,
        one_shot: bool = False,
    ) -> None:
        from viewer.streaming import BrickedSource, default_cache_bytes

        self.renderer = renderer
        self.scene: Scene = renderer.scene
        images = [lay for lay in self.scene.layers if isinstance(lay, Image) and lay.data]
        labels = [lay for lay in self.scene.layers if isinstance(lay, Labels) and lay.data]
        volumes = [lay for lay in labels if lay.mode == "volume"] if stream_labels else []
        meshed = (
            [lay for lay in labels if lay.mode == "surface" and lay.level is None]
            if stream_surfaces
            else []
        )
        n = max(len(images) + len(volumes) + len(meshed), 1)
        total = default_cache_bytes() if cache_bytes is None else int(cache_bytes)
        self.adapters: dict[str, VtkStreamedImage | VtkStreamedSurfaces | VtkRaycastImage] = {}
        self.surfaces: dict[str, _SurfaceLevel] = {}
        self._views: list[EyeView] | None = None
        streamed: list[Image | Labels] = [*images, *volumes, *meshed]
        self.host: Any = None
        if single_pass and brick_size is None:
            brick_size = DEFAULT_BRICK_SIZE
        for lay in streamed:
            assert lay.data is not None
            source: Any = lay.data
            if brick_size is not None and not (isinstance(lay, Labels) and lay.mode == "surface"):
                source = BrickedSource(lay.data, brick_size)
            streamer = VolumeStreamer(
                source,
                cache_bytes=total // n,
                gpu_budget_bytes=max(gpu_budget_bytes // n, 1),
                max_error_px=max_error_px,
                n_workers=n_workers,
                labels=isinstance(lay, Labels),
                finest_level=finest_level,
            )
            adapter: VtkStreamedImage | VtkStreamedSurfaces | VtkRaycastImage
            if isinstance(lay, Labels) and lay.mode == "surface":
                adapter = VtkStreamedSurfaces(
                    lay, streamer, n_workers=mesh_workers, cache_bytes=mesh_cache_bytes
                )
                adapter.set_camera(renderer.renderer.GetActiveCamera())
            elif isinstance(lay, Labels):
                adapter = VtkStreamedLabels(lay, streamer)
            elif single_pass and lay.rendering != "isosurface" and _nests(streamer):
                from ._gl_volumes import GLVolumeHost, VtkRaycastImage

                adapter = VtkRaycastImage(lay, streamer, max(gpu_budget_bytes // n, 1))
                if self.host is None:
                    self.host = GLVolumeHost(renderer, one_shot=one_shot)
            else:
                adapter = VtkStreamedImage(lay, streamer)
            old = renderer.adapters.get(id(lay))
            # The renderer reconciles props per adapter on its next sync: the old
            # adapter's volumes are removed, the streamed ones added.
            renderer.adapters[id(lay)] = adapter
            if old is not None:
                old.close()
            self.adapters[lay.name] = adapter
        for lay in labels if surface_levels else []:
            got = renderer.adapters.get(id(lay))
            if lay.mode == "surface" and isinstance(got, VtkLabels):
                self.surfaces[lay.name] = _SurfaceLevel(
                    lay, got, renderer.voxel_budget, max_error_px, finest_level
                )

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
        views = self.views()
        planes = list(self.scene.clipping_planes)
        out = {}
        for name, adapter in self.adapters.items():
            st = adapter.streamer
            if st.n_time > 1:
                st.time_index = min(max(int(round(self.scene.current_time)), 0), st.n_time - 1)
            frame = st.update(views, planes)
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


def _nests(streamer: VolumeStreamer) -> bool:
    """Whether the single-pass page tree takes this pyramid (else: one volume per brick)."""
    from analysis.errors import ParameterError
    from viewer.raycast import PageTree

    try:
        PageTree(streamer.grid)
    except ParameterError as exc:
        log.warning("%s: drawn brick by brick: %s", streamer.source.name, exc)
        return False
    return True


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
    single_pass: bool = True,
    brick_size: int | None = None,
    frame_stats: dict[str, Any] | None = None,
    **kw: Any,
) -> tuple[npt.NDArray[np.uint8], dict[str, StreamStats]]:
    """Render ``scene`` offscreen once with streaming, after the view has fully refined.

    Returns the (H, W, 3) image and each streamed layer's statistics. ``kw`` go to
    :class:`SceneRenderer` (e.g. ``voxel_budget``, which bounds the whole level that
    label surfaces with an explicit ``level`` are meshed from; other label surfaces
    stream, :class:`VtkStreamedSurfaces`).

    ``single_pass`` (default): ``Image`` layers (composite, MIP) are drawn in one
    ray-casting pass each (:class:`~viewer.render._gl_volumes.VtkRaycastImage`) over
    bricks of ``brick_size`` voxels (default :data:`DEFAULT_BRICK_SIZE`); False: one
    VTK volume per brick (:class:`VtkStreamedImage`, composite only). ``frame_stats``,
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
            single_pass=single_pass,
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
    from ._gl_volumes import GLFrameStats, timed_frame

    host = ctl.host
    if host is not None:
        timed_frame(r, host)  # uploads of the screenshot's frame are done: a warm frame
        ms = timed_frame(r, host)
        gl = host.stats
    else:
        t0 = time.perf_counter()
        r.render()
        r.window.WaitForCompletion()
        ms = (time.perf_counter() - t0) * 1e3
        gl = GLFrameStats()
    per_brick = [
        a for a in ctl.adapters.values() if isinstance(a, VtkStreamedImage) and a.layer.visible
    ]
    passes = gl.volume_passes + sum(len(a.props) for a in per_brick)
    levels = set(gl.levels_drawn)
    bricks = gl.bricks_drawn
    for a in per_brick:
        bricks += len(a.props)
        levels.update(b.level for b in a.bricks)
    tex = sum(int(a.streamer.textures.used) for a in per_brick)
    return {
        "volume_passes": int(passes),
        "bricks_drawn": int(bricks),
        "levels_drawn": sorted(int(x) for x in levels),
        "frame_ms": float(ms),
        "gpu_cache_bytes": int(gl.gpu_cache_bytes + tex),
        "single_pass": host is not None,
    }
