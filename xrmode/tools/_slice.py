"""The hand-held slice plane: the image resampled at full resolution on a square held
ahead of the hand (ChimeraX's "map planes" in VR).

The square (15 cm a side at the stage, whatever the volume's scale) faces along the
hand's pointing direction, its centre 10 cm ahead of the aim pose. Its pixels are the
image layer's finest pyramid level (the finest whose small bounding box of the plane
fits a voxel budget), only that box, read through the streamer's bricks when the
layer streams (below), else from the store (``VolumeSource.read``), and resampled on the plane with :func:`scipy.ndimage.map_coordinates`
(trilinear), then mapped through the layer's contrast limits, gamma and colormap.
The trigger runs ``slice.freeze``: the plane stays where it is in the data (it moves
with the volume when you grab it) until the trigger takes it back into the hand. A
frozen plane stays in the scene when you switch to another tool (the toolbox draws it
each frame), until ``slice.remove`` (B / Y on the slice hand, or the menu) takes it away.

When the image layer streams (:class:`viewer.streaming.VolumeStreamer`), the plane is
read through the streamer's brick cache: bricks already resident for the volume are
used as they are, and only the missing ones are read from the store (and not put into
the cache, whose eviction protects the bricks the volume draws; the frame loop owns it).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import product
from typing import Any

import numpy as np
import numpy.typing as npt

from ..input._types import InputFrame, quat_rotate
from ._base import Tool, ToolContext

__all__ = ["SlicePlane", "SliceTool", "resample_plane", "streamer_box_reader"]

#: ``(level, (z, y, x) lo, (z, y, x) hi, t) -> voxels`` of that box of a level.
BoxReader = Callable[[int, npt.NDArray[np.int64], npt.NDArray[np.int64], int], Any]

SLICE_SIZE_M = 0.15  # side of the square at the stage
SLICE_REACH_M = 0.10  # its centre ahead of the aim pose
SLICE_PIXELS = 128  # samples per side
SLICE_VOXEL_BUDGET = 16_000_000  # largest box read for one plane


def resample_plane(
    source: Any,
    corners_um: npt.ArrayLike,
    n: int = SLICE_PIXELS,
    t_index: int = 0,
    budget: int = SLICE_VOXEL_BUDGET,
    read_box: BoxReader | None = None,
) -> npt.NDArray[np.float64]:
    """``(n, n)`` image values on the parallelogram ``corners_um`` = (origin, end of the
    first side, end of the second side), world zyx µm; row ``i`` runs along the second
    side, column ``j`` along the first. NaN outside the volume.

    Reads only the box around the plane, from the finest level whose box fits ``budget``:
    with ``read_box`` (e.g. :func:`streamer_box_reader`) if given, else ``source.read``.
    """
    from scipy.ndimage import map_coordinates

    c = np.asarray(corners_um, dtype=np.float64).reshape(3, 3)
    a = (np.arange(n) + 0.5) / n
    grid = c[0] + a[None, :, None] * (c[1] - c[0]) + a[:, None, None] * (c[2] - c[0])
    pts = grid.reshape(-1, 3)
    out = np.full(len(pts), np.nan)
    for level, lev in enumerate(source.levels):
        spacing = np.asarray(lev.scale_um, dtype=np.float64)
        origin = np.asarray(lev.translation[-3:], dtype=np.float64)
        shape = np.asarray(lev.shape[-3:])
        idx = (pts - origin) / spacing  # voxel centres at origin + i * spacing
        inside = np.all((idx >= -0.5) & (idx <= shape - 0.5), axis=1)
        if not inside.any():
            return out.reshape(n, n)
        lo = np.clip(np.floor(idx[inside].min(axis=0)).astype(int), 0, shape - 1)
        hi = np.clip(np.ceil(idx[inside].max(axis=0)).astype(int) + 1, 1, shape)
        if np.prod(hi - lo) > budget and level < len(source.levels) - 1:
            continue
        t = int(t_index)
        if "t" in source.axes:
            t = min(max(t, 0), lev.shape[source.axes.index("t")] - 1)
        if read_box is not None:
            box = np.asarray(read_box(level, lo, hi, t), dtype=np.float64)
        else:
            region = []
            for ax in source.axes:
                if ax == "t":
                    region.append(slice(t, t + 1))
                elif ax == "c":
                    region.append(slice(0, 1))
            region += [slice(int(a0), int(b0)) for a0, b0 in zip(lo, hi, strict=True)]
            box = np.asarray(source.read(level, tuple(region)), dtype=np.float64)
        box = box.reshape(box.shape[-3:])
        local = (idx[inside] - lo).T
        out[inside] = map_coordinates(box, local, order=1, mode="nearest")
        return out.reshape(n, n)
    return out.reshape(n, n)


def streamer_box_reader(streamer: Any) -> BoxReader:
    """A ``read_box`` for :func:`resample_plane` through a
    :class:`viewer.streaming.VolumeStreamer`'s bricks: each brick of the box is taken
    from the streamer's cache when resident (the volume's own reads), else read from the
    streamer's source (its rebricked view of the store). Call it on the thread that
    calls the streamer's ``update`` (that thread owns the cache)."""

    def read_box(
        level: int, lo: npt.NDArray[np.int64], hi: npt.NDArray[np.int64], t: int
    ) -> npt.NDArray[Any]:
        g = streamer.grid
        chunks = np.asarray(g.chunks[level], dtype=np.int64)
        grid = np.asarray(g.grid[level], dtype=np.int64)
        t = min(max(int(t), 0), streamer.n_time - 1)
        base = streamer.key_base(time_index=t) + int(g.offsets[level])
        out = np.empty(tuple(int(x) for x in hi - lo), dtype=streamer.source.dtype)
        first, last = lo // chunks, (hi - 1) // chunks
        ranges = [range(int(a), int(b) + 1) for a, b in zip(first, last, strict=True)]
        for bz, by, bx in product(*ranges):
            key = base + (bz * int(grid[1]) + by) * int(grid[2]) + bx
            brick = streamer.cache.peek(key)
            b_lo = np.array([bz, by, bx]) * chunks
            if brick is None:
                lev, region = streamer.region(key)
                brick = np.asarray(streamer.source.read(lev, region))
                b_hi = np.minimum(b_lo + chunks, np.asarray(g.shape[level]))
                brick = brick.reshape(tuple(int(x) for x in b_hi - b_lo))
            a0 = np.maximum(lo, b_lo)
            a1 = np.minimum(hi, b_lo + np.asarray(brick.shape))
            src = tuple(slice(int(x - b), int(y - b)) for x, y, b in zip(a0, a1, b_lo, strict=True))
            dst = tuple(slice(int(x - o), int(y - o)) for x, y, o in zip(a0, a1, lo, strict=True))
            out[dst] = brick[src]
        return out

    return read_box


def to_rgb(
    values: npt.NDArray[np.float64],
    limits: tuple[float, float],
    colormap: str = "gray",
    gamma: float = 1.0,
    invert: bool = False,
) -> npt.NDArray[np.uint8]:
    """Values -> ``(..., 3)`` uint8 through contrast limits, gamma and a colormap (the
    2D slices' mapping); NaN (outside the volume) is black."""
    from viewer.render import colormap_table

    lo, hi = limits
    f = np.clip((values - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    f = np.where(np.isfinite(f), f, 0.0) ** (1.0 / gamma)
    if invert:
        f = 1.0 - f
    table = (colormap_table(colormap, 256) * 255).round().astype(np.uint8)
    rgb: npt.NDArray[np.uint8] = table[(f * 255).round().astype(int)]
    rgb[~np.isfinite(values)] = 0
    return rgb


class SlicePlane:
    """The plane's state: held in the hand, or frozen at world corners (zyx µm)."""

    def __init__(self) -> None:
        self.frozen = False
        self.corners_um: npt.NDArray[np.float64] | None = None

    def toggle_freeze(self) -> bool:
        if self.corners_um is None:
            return False
        self.frozen = not self.frozen
        return self.frozen

    def remove(self) -> bool:
        """Take the plane out of the scene (the hand shows a new one while the tool is
        in hand). Returns whether there was one."""
        had = self.corners_um is not None
        self.frozen = False
        self.corners_um = None
        return had


class SliceTool(Tool):
    """A square of the image at full resolution in the hand; the trigger freezes it,
    B / Y (``secondary``) removes it.

    Parameters
    ----------
    layer : callable() -> viewer.scene.Image or None
        The image layer to slice (asked every frame: the wrist panel may change it).
    streamer : callable(layer name) -> VolumeStreamer or None, optional
        The streamer of that layer when it streams: the plane is read through its
        brick cache (:func:`streamer_box_reader`).
    """

    name = "slice"

    def __init__(
        self,
        layer: Callable[[], Any],
        hand: str = "right",
        streamer: Callable[[str], Any] | None = None,
    ) -> None:
        super().__init__(hand)
        self.layer = layer
        self.streamer = streamer
        self.plane = SlicePlane()
        self._key: tuple[Any, ...] | None = None
        self._rgb: npt.NDArray[np.uint8] | None = None

    def _on_disable(self) -> None:
        # A frozen plane stays in the scene (drawn by draw_inactive); one in the hand
        # goes with the tool.
        if not self.plane.frozen:
            self.plane.remove()

    def update(self, frame: InputFrame, ctx: ToolContext) -> None:
        h = self.the_hand(frame)
        ctx.slice_plane = self.plane
        if h.select.just_pressed:
            ctx.run("slice.freeze")
        if h.secondary.just_pressed:
            ctx.run("slice.remove")
        if not self.plane.frozen and h.aim is not None:
            q = h.aim.orientation
            centre = np.asarray(h.aim.position) + SLICE_REACH_M * h.aim.forward
            half = SLICE_SIZE_M / 2
            right = quat_rotate(q, (half, 0.0, 0.0))
            up = quat_rotate(q, (0.0, half, 0.0))
            # Origin at the bottom-left; the first side runs right, the second up.
            stage = np.array([centre - right - up, centre + right - up, centre - right + up])
            self.plane.corners_um = ctx.transform.stage_to_world(stage)
        self._show(ctx)

    def draw_inactive(self, ctx: ToolContext) -> None:
        """Another tool is in hand: keep showing a frozen plane (``slice.remove`` from
        the menu takes it away)."""
        ctx.slice_plane = self.plane if self.plane.frozen else None
        if self.plane.frozen:
            self._show(ctx)

    def _show(self, ctx: ToolContext) -> None:
        corners = self.plane.corners_um
        lay = self.layer()
        if corners is None or lay is None or getattr(lay, "data", None) is None:
            return
        t = int(round(ctx.current_time))
        key = (corners.tobytes(), t, lay.contrast_limits, lay.colormap, lay.gamma, id(lay.data))
        if key != self._key:
            streamer = self.streamer(lay.name) if self.streamer is not None else None
            read_box = None if streamer is None else streamer_box_reader(streamer)
            values = resample_plane(lay.data, corners, t_index=t, read_box=read_box)
            limits = lay.contrast_limits
            if limits is None:
                finite = values[np.isfinite(values)]
                limits = (float(finite.min()), float(finite.max())) if finite.size else (0, 1)
            self._rgb = to_rgb(values, limits, lay.colormap, lay.gamma, lay.slice_invert)
            self._key = key
        assert self._rgb is not None
        ctx.hud.show_image(ctx.transform.world_to_stage(corners), self._rgb)
