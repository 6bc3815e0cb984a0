"""Streaming into the renderer: a ``VtkImage`` that draws a ``VolumeStreamer``'s bricks.

:class:`StreamingController` attaches a :class:`viewer.streaming.VolumeStreamer`
to every ``Image`` layer of a :class:`SceneRenderer` (replacing the layer's
adapter by a :class:`VtkStreamedImage`). Each frame, :meth:`StreamingController.update`
turns the scene camera (or the XR eye views given by :meth:`set_views`) into
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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from viewer.scene import Image, Scene
from viewer.streaming import PaddedBrick, StreamFrame, StreamStats, View, VolumeStreamer

from . import _vtk as v
from ._base import FrameContext
from ._canvas import EyeView, SceneRenderer
from ._image import VolumeBrick, VtkImage, _range, image_data

__all__ = ["StreamingController", "VtkStreamedImage", "render_streamed"]

log = logging.getLogger(__name__)

_ItemKey = tuple[int, tuple[float, ...]]


class VtkStreamedImage(VtkImage):
    """Draws the bricks a :class:`VolumeStreamer` chose for an ``Image`` layer.

    Parameters
    ----------
    layer : Image
    streamer : VolumeStreamer
    """

    def __init__(self, layer: Image, streamer: VolumeStreamer) -> None:
        super().__init__(layer)
        self.streamer = streamer
        self._external = True  # never read whole levels (VtkImage's default path)
        self._images: dict[int, tuple[Any, PaddedBrick]] = {}
        self._volumes: dict[_ItemKey, Any] = {}
        self._range_set = False
        self.frame: StreamFrame | None = None
        if streamer.labels:
            self.property.SetInterpolationTypeToNearest()

    def _update(self, ctx: FrameContext) -> None:
        self._update_property()

    def _image(self, key: int, rebuild: bool = False) -> tuple[Any, PaddedBrick] | None:
        got = self._images.get(key)
        if got is not None and not rebuild:
            return got
        pb = self.streamer.padded(key)
        if pb is None:
            return got
        img = image_data(pb.array, pb.origin_um, pb.spacing_um)
        self._images[key] = (img, pb)
        return self._images[key]

    def show(self, frame: StreamFrame) -> None:
        """Draw ``frame``'s items (reusing the volumes of items drawn last frame)."""
        self.frame = frame
        stale: set[int] = set()
        for k in frame.arrived:
            for nk in self.streamer.neighbour_keys(int(k)):
                got = self._images.get(int(nk))
                if got is not None and int(k) not in got[1].neighbours:
                    stale.add(int(nk))
        for key in stale:
            self._image(key, rebuild=True)
        wanted: dict[_ItemKey, tuple[int, npt.NDArray[np.float64], npt.NDArray[np.float64]]] = {}
        for key, lo, hi in zip(frame.keys, frame.crop_lo, frame.crop_hi, strict=True):
            box = np.round(np.concatenate([lo, hi]), 9).tolist()
            ik: _ItemKey = (int(key), tuple(float(x) for x in box))
            wanted[ik] = (int(key), lo, hi)
        for ik in [ik for ik in self._volumes if ik not in wanted]:
            del self._volumes[ik]
        for ik, (key, lo, hi) in wanted.items():
            vol = self._volumes.get(ik)
            if vol is None or key in stale:
                got = self._image(key)
                if got is None:
                    continue
                vol = self._volume(got, lo, hi)
                self._volumes[ik] = vol
        used = {ik[0] for ik in self._volumes}
        for key in [k for k in self._images if k not in used]:
            del self._images[key]
        self.props = list(self._volumes.values())
        self._bricks = [
            VolumeBrick(pb.level, pb.region, pb.array, pb.origin_um, pb.spacing_um)
            for _, pb in self._images.values()
        ]
        if not self._range_set and self._bricks and self.layer.contrast_limits is None:
            # Contrast from the first (coarse) data and then kept: re-estimating it
            # as finer bricks arrive would make the picture flicker.
            self._data_range = _range(b.array for b in self._bricks)
            self._range_set = True
        self.streamer.textures.set({k: int(pb.array.nbytes) for k, (_, pb) in self._images.items()})
        self.dirty = True

    def _volume(
        self, got: tuple[Any, PaddedBrick], lo: npt.NDArray[np.float64], hi: npt.NDArray[np.float64]
    ) -> Any:
        img, pb = got
        mapper = v.vtkOpenGLGPUVolumeRayCastMapper()
        mapper.SetInputData(img)
        mapper.SetAutoAdjustSampleDistances(False)
        mapper.SetSampleDistance(float(min(pb.spacing_um)) * 0.5)
        mapper.SetCropping(True)
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
        super().close()


class StreamingController:
    """Streams every ``Image`` layer of a :class:`SceneRenderer`'s scene.

    Parameters
    ----------
    renderer : SceneRenderer
    cache_bytes : int, optional
        RAM budget shared equally by the streamed layers (default: a quarter of RAM).
    gpu_budget_bytes : int, default: 1 GiB
        Texture budget, shared equally.
    max_error_px : float, default: 1.0
    n_workers : int, default: 8
        Loader threads per layer.

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
        n_workers: int = 8,
    ) -> None:
        from viewer.streaming import default_cache_bytes

        self.renderer = renderer
        self.scene: Scene = renderer.scene
        layers = [
            lay for lay in self.scene.layers if isinstance(lay, Image) and lay.data is not None
        ]
        n = max(len(layers), 1)
        total = default_cache_bytes() if cache_bytes is None else int(cache_bytes)
        self.adapters: dict[str, VtkStreamedImage] = {}
        self._views: list[EyeView] | None = None
        for lay in layers:
            assert lay.data is not None
            streamer = VolumeStreamer(
                lay.data,
                cache_bytes=total // n,
                gpu_budget_bytes=max(gpu_budget_bytes // n, 1),
                max_error_px=max_error_px,
                n_workers=n_workers,
            )
            adapter = VtkStreamedImage(lay, streamer)
            old = renderer.adapters.get(id(lay))
            # The renderer reconciles props per adapter on its next sync: the old
            # adapter's volumes are removed, the streamed ones added.
            renderer.adapters[id(lay)] = adapter
            if old is not None:
                old.close()
            self.adapters[lay.name] = adapter

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

    def update(self) -> dict[str, StreamFrame]:
        """One streaming step for every layer (call once per frame, before drawing)."""
        views = self.views()
        planes = list(self.scene.clipping_planes)
        out = {}
        for name, adapter in self.adapters.items():
            st = adapter.streamer
            if st.n_time > 1:
                st.time_index = min(max(int(round(self.scene.current_time)), 0), st.n_time - 1)
            frame = st.update(views, planes)
            adapter.show(frame)
            out[name] = frame
        return out

    def render(self) -> None:
        """Update streaming, then draw one frame."""
        self.update()
        self.renderer.render()

    def settle(self, timeout: float = 60.0) -> dict[str, StreamFrame]:
        """Update until every layer shows its view at full detail (one-shot renders, tests)."""
        deadline = time.monotonic() + timeout
        frames = self.update()
        while time.monotonic() < deadline:
            busy = [f for f in frames.values() if not f.complete]
            if not busy:
                break
            if all(f.stats.pending == 0 and f.stats.in_flight == 0 for f in busy):
                # Nothing left to load (failed bricks, budget cut): one more look, then stop.
                frames = self.update()
                if all(f.stats.pending == 0 and f.stats.in_flight == 0 for f in frames.values()):
                    break
            for a in self.adapters.values():
                a.streamer.scheduler.wait_idle(timeout=0.05)
            frames = self.update()
        return frames

    def stats(self) -> dict[str, StreamStats]:
        return {name: a.streamer.stats() for name, a in self.adapters.items()}

    def close(self) -> None:
        for a in self.adapters.values():
            a.streamer.close()

    def __enter__(self) -> StreamingController:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def render_streamed(
    scene: Scene,
    size: tuple[int, int] = (800, 600),
    cache_bytes: int | None = None,
    max_error_px: float = 1.0,
    timeout: float = 120.0,
    **kw: Any,
) -> tuple[npt.NDArray[np.uint8], dict[str, StreamStats]]:
    """Render ``scene`` offscreen once with streaming, after the view has fully refined.

    Returns the (H, W, 3) image and each streamed layer's statistics.
    """
    with (
        SceneRenderer(scene, size=size, **kw) as r,
        StreamingController(r, cache_bytes=cache_bytes, max_error_px=max_error_px) as ctl,
    ):
        ctl.settle(timeout)
        img = r.screenshot()
        return img, ctl.stats()
