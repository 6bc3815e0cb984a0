"""``VolumeStreamer``: each frame, views in -> the bricks to draw out, never waiting on I/O.

One frame (:meth:`VolumeStreamer.update`):

1. drain the bricks the workers finished into the cache;
2. choose the leaves (:func:`select_bricks`: frustum and clipping-plane culling,
   screen-space error);
3. for every leaf draw the best resident data: the leaf itself, else its nearest
   resident ancestor *cropped to the leaf's box* (so a coarse parent stands in
   for exactly the missing part and never overlaps finer bricks already drawn);
4. ask the scheduler for every visible node that is not resident, coarse first
   then by distance from the view centre, within the cache budget; during
   time-lapse playback the next time points' leaves follow at lowest priority.

Seams. Bricks are fetched exactly as stored (one chunk, no overlap) so nothing
is fetched twice; the one-voxel border that interpolation needs is assembled
from the cache when a brick is drawn (:meth:`VolumeStreamer.padded`): each of
the 26 same-level neighbours that is resident contributes its face, edge or
corner; where it is not, the brick's own edge voxels are repeated. Every drawn
item is cropped to its world box (half a voxel beyond its outer voxel centres),
so boxes of any levels tile space exactly: no gaps and no double compositing at
level transitions, and inside one level neighbours sample the same boundary
values (``tests/viewer/streaming/test_render_streaming.py`` measures the seams).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.errors import ParameterError
from analysis.volume import VolumeSource

from ._cache import BrickCache, TextureBudget
from ._lod import BrickGrid, Selection, View, centre_scores, clip_planes_array, select_bricks
from ._scheduler import BrickResult, ChunkScheduler

__all__ = ["PaddedBrick", "StreamFrame", "StreamStats", "VolumeStreamer"]

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_OFFSETS = np.array(
    [
        (a, b, c)
        for a in (-1, 0, 1)
        for b in (-1, 0, 1)
        for c in (-1, 0, 1)
        if (a, b, c) != (0, 0, 0)
    ],
    dtype=np.int64,
)
# Fill faces before edges before corners (fewest zeros first) so a later, more
# specific neighbour never gets overwritten by a face's repeated edge.
_OFFSETS = _OFFSETS[np.argsort(np.abs(_OFFSETS).sum(axis=1), kind="stable")]
# Share of the RAM budget the wanted set may take (the rest absorbs arrivals in flight).
_BUDGET_SHARE = 0.9


@dataclass(frozen=True)
class StreamStats:
    """Where streaming stands (``vrscope stream`` and the viewer report these).

    Attributes
    ----------
    cache_bytes, cache_budget_bytes, cache_bricks : int
        Decoded bricks held in RAM and the budget.
    gpu_bytes, gpu_budget_bytes : int
        Texture bytes of the bricks drawn (with borders) and their budget.
    pending, in_flight : int
        Requests queued and running.
    loaded, failed, dropped : int
        Bricks loaded, failed and dropped (no longer wanted before they started).
    bytes_loaded : int
        Decoded bytes loaded since the start.
    leaves, drawn, stand_ins, undrawn : int
        Leaves wanted this frame; draw items; leaves drawn by a coarser brick;
        leaves with nothing resident yet.
    complete : bool
        Every leaf is drawn at its own level.
    lod_bias : float
        Factor on ``max_error_px`` (> 1 while over a memory budget).
    frame_ms : float
        CPU time of the last :meth:`VolumeStreamer.update`.
    """

    cache_bytes: int
    cache_budget_bytes: int
    cache_bricks: int
    gpu_bytes: int
    gpu_budget_bytes: int
    pending: int
    in_flight: int
    loaded: int
    failed: int
    dropped: int
    bytes_loaded: int
    leaves: int
    drawn: int
    stand_ins: int
    undrawn: int
    complete: bool
    lod_bias: float
    frame_ms: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class StreamFrame:
    """The result of one :meth:`VolumeStreamer.update`.

    Attributes
    ----------
    keys : (M,) int64
        Cache key of the brick whose voxels each draw item shows.
    crop_lo, crop_hi : (M, 3) float
        World box (zyx µm) each item is cropped to.
    levels : (M,) int64
        Pyramid level of each item's brick.
    arrived : (A,) int64
        Keys that arrived in the cache this frame.
    selection : Selection
    stats : StreamStats
    """

    keys: I64
    crop_lo: F64
    crop_hi: F64
    levels: I64
    arrived: I64
    selection: Selection
    stats: StreamStats

    @property
    def complete(self) -> bool:
        return self.stats.complete

    def __len__(self) -> int:
        return len(self.keys)


@dataclass(frozen=True)
class PaddedBrick:
    """A resident brick with its one-voxel border, placed in the world.

    Attributes
    ----------
    key : int
    level : int
    region : tuple of 3 slices
        Voxels of the level (z, y, x) without the border.
    array : (Z + bz, Y + by, X + bx) array
        The voxels with a one-voxel border on every side that has a neighbour
        brick (``b`` is 0, 1 or 2 per axis).
    origin_um : (3,) float
        World zyx centre of ``array[0, 0, 0]`` (a border voxel).
    spacing_um : (3,) float
    box_lo_um, box_hi_um : (3,) float
        The brick's own world box.
    neighbours : frozenset of int
        Keys of the neighbours whose voxels fill the border (others repeat the edge).
    """

    key: int
    level: int
    region: tuple[slice, slice, slice]
    array: npt.NDArray[np.generic]
    origin_um: tuple[float, float, float]
    spacing_um: tuple[float, float, float]
    box_lo_um: tuple[float, float, float]
    box_hi_um: tuple[float, float, float]
    neighbours: frozenset[int]


def _t3(a: npt.ArrayLike) -> tuple[float, float, float]:
    v = np.asarray(a, dtype=np.float64).reshape(3)
    return (float(v[0]), float(v[1]), float(v[2]))


class VolumeStreamer:
    """Streams one ``VolumeSource`` (image or labels) by view-dependent level of detail.

    Parameters
    ----------
    source : VolumeSource
    cache : BrickCache, optional
        Default: a new cache of ``cache_bytes`` (default: a quarter of RAM).
    cache_bytes : int, optional
    gpu_budget_bytes : int, default: 1 GiB
        Texture budget of the drawn bricks; over it the LOD coarsens.
    n_workers : int, default: 8
    max_error_px : float, default: 1.0
        Largest projected voxel (pixels) before a finer level is used.
    time_index, channel : int, default: 0
        Which time point / channel of a t/c source is streamed.
    prefetch_time : int, default: 1
        Time points after ``time_index`` whose bricks are fetched at lowest priority.
    labels : bool, default: False
        The source holds labels (drawn with nearest-neighbour sampling; same streaming).
    finest_level : int, default: 0

    Notes
    -----
    Only the thread calling :meth:`update` touches the cache; the workers only
    read the source. Call :meth:`close` (or use ``with``) to stop the workers.
    """

    def __init__(
        self,
        source: VolumeSource,
        *,
        cache: BrickCache | None = None,
        cache_bytes: int | None = None,
        gpu_budget_bytes: int = 1 << 30,
        n_workers: int = 8,
        max_error_px: float = 1.0,
        time_index: int = 0,
        channel: int = 0,
        prefetch_time: int = 1,
        labels: bool = False,
        finest_level: int = 0,
    ) -> None:
        axes = tuple(source.axes)
        if axes[-3:] != ("z", "y", "x"):
            raise ParameterError(f"a streamed volume needs z, y, x as its last axes, got {axes}")
        if not max_error_px > 0:
            raise ParameterError(f"max_error_px must be > 0, got {max_error_px}")
        self.source = source
        self.grid = BrickGrid.from_source(source)
        self.labels = bool(labels)
        self.itemsize = int(np.dtype(source.dtype).itemsize)
        shape0 = source.levels[0].shape
        self._t_axis = axes.index("t") if "t" in axes else None
        self._c_axis = axes.index("c") if "c" in axes else None
        self.n_time = int(shape0[self._t_axis]) if self._t_axis is not None else 1
        self.n_channels = int(shape0[self._c_axis]) if self._c_axis is not None else 1
        self.cache = cache if cache is not None else BrickCache(cache_bytes)
        self.textures = TextureBudget(gpu_budget_bytes)
        self.scheduler = ChunkScheduler(self._load, n_workers=n_workers)
        self.max_error_px = float(max_error_px)
        self.prefetch_time = max(int(prefetch_time), 0)
        self.finest_level = int(finest_level)
        self._time_index = 0
        self._channel = 0
        self.time_index = time_index
        self.channel = channel
        self._bias = 1.0
        g = self.grid
        thick = g.shape[0] > 1
        first, last = g.translation[0], g.translation[0] + (g.shape[0] - 1) * g.scale[0]
        self._extent_lo = np.where(thick, first, -np.inf)
        self._extent_hi = np.where(thick, last, np.inf)
        self._failed: set[int] = set()
        self._failed_arr = np.zeros(0, np.int64)
        self._last_want: I64 | None = None
        self._last_evictions = -1
        self._frame_ms = 0.0
        self._last: StreamFrame | None = None
        self._last_leaf_keys = np.zeros(0, np.int64)
        self._ancestors = np.zeros(0, np.int64)
        self._last_cache_version = -1

    # -- keys ---------------------------------------------------------------------
    @property
    def time_index(self) -> int:
        return self._time_index

    @time_index.setter
    def time_index(self, value: int) -> None:
        if not 0 <= int(value) < self.n_time:
            raise ParameterError(f"time index {value} out of range 0..{self.n_time - 1}")
        self._time_index = int(value)

    @property
    def channel(self) -> int:
        return self._channel

    @channel.setter
    def channel(self, value: int) -> None:
        if not 0 <= int(value) < self.n_channels:
            raise ParameterError(f"channel {value} out of range 0..{self.n_channels - 1}")
        self._channel = int(value)

    def key_base(self, time_index: int | None = None, channel: int | None = None) -> int:
        """Cache key of brick code 0 at this time point and channel (keys = base + code)."""
        t = self._time_index if time_index is None else int(time_index)
        c = self._channel if channel is None else int(channel)
        return (t * self.n_channels + c) * self.grid.n_bricks

    def split_key(self, key: int) -> tuple[int, int, int]:
        """(time index, channel, brick code) of a cache key."""
        tc, code = divmod(int(key), self.grid.n_bricks)
        t, c = divmod(tc, self.n_channels)
        return t, c, code

    def region(self, key: int) -> tuple[int, tuple[slice, ...]]:
        """Level and region (slices over every axis of the source) of a cache key."""
        t, c, code = self.split_key(key)
        lvl, ijk = self.grid.decode([code])
        level = int(lvl[0])
        start, stop = self.grid.voxel_bounds(level, ijk)
        spatial = [slice(int(a), int(b)) for a, b in zip(start[0], stop[0], strict=True)]
        reg: list[slice] = []
        for i, ax in enumerate(self.source.axes[:-3]):
            if i == self._t_axis:
                reg.append(slice(t, t + 1))
            elif i == self._c_axis:
                reg.append(slice(c, c + 1))
            else:  # pragma: no cover - axes are validated to be t/c
                raise ParameterError(f"unsupported axis {ax!r}")
        return level, tuple(reg + spatial)

    def _load(self, key: int) -> npt.NDArray[np.generic]:
        level, reg = self.region(key)
        arr = np.asarray(self.source.read(level, reg))
        shape = tuple(s.stop - s.start for s in reg[-3:])
        return np.ascontiguousarray(arr.reshape(shape))

    # -- frame ----------------------------------------------------------------------
    def update(
        self, views: View | Sequence[View], clip_planes: Iterable[Any] | F64 = ()
    ) -> StreamFrame:
        """One frame: drain arrivals, choose bricks, request what is missing. Never waits.

        Parameters
        ----------
        views : View or sequence of View
            The camera, or both eyes.
        clip_planes : iterable of ClippingPlane, or (K, 4) array
        """
        t0 = time.perf_counter()
        vs = [views] if isinstance(views, View) else list(views)
        arrived = self._drain()
        planes = (
            clip_planes if isinstance(clip_planes, np.ndarray) else clip_planes_array(clip_planes)
        )
        sel = select_bricks(
            self.grid, vs, planes, self.max_error_px * self._bias, self.finest_level
        )
        base = self.key_base()
        grid = self.grid
        leaf_keys = base + sel.leaves
        reuse = (
            self._last is not None
            and self._last_cache_version == self.cache.version
            and np.array_equal(leaf_keys, self._last_leaf_keys)
        )
        if reuse and self._last is not None:
            # Frame coherence: same leaves, same cache content -> same draw list.
            keys, lo, hi = self._last.keys, self._last.crop_lo, self._last.crop_hi
            n_stand, n_undrawn = self._last.stats.stand_ins, self._last.stats.undrawn
        else:
            src, self._ancestors = self._stand_ins(sel, base)
            leaf_lo, leaf_hi = grid.boxes(sel.leaf_levels, sel.leaf_ijk)
            keys, lo, hi = self._draw_items(src, leaf_keys, leaf_lo, leaf_hi)
            n_stand = int(np.count_nonzero((src >= 0) & (src != leaf_keys)))
            n_undrawn = int(np.count_nonzero(src < 0))
        self._last_leaf_keys = leaf_keys
        self._last_cache_version = self.cache.version
        drawn_keys = np.unique(keys)
        self.cache.touch(int(k) for k in drawn_keys)
        gpu = self._texture_bytes(drawn_keys - base)
        over = self._request(sel, base, vs)
        gpu_over = max(gpu, self.textures.used) > self.textures.budget_bytes
        self._adapt_bias(over or gpu_over, sel, gpu)
        self._frame_ms = (time.perf_counter() - t0) * 1e3
        lv = grid.decode(keys - base)[0] if len(keys) else np.zeros(0, np.int64)
        frame = StreamFrame(
            keys=keys,
            crop_lo=lo,
            crop_hi=hi,
            levels=lv,
            arrived=arrived,
            selection=sel,
            stats=self._stats(len(sel.leaves), len(keys), n_stand, n_undrawn, gpu),
        )
        self._last = frame
        return frame

    def _stand_ins(self, sel: Selection, base: int) -> tuple[I64, I64]:
        """Key of the brick drawn for each leaf (itself if resident, else the nearest
        resident ancestor, else -1), and the keys of all ancestors of missing leaves."""
        grid = self.grid
        leaf_keys = base + sel.leaves
        resident = self.cache.contains_array(leaf_keys)
        src = np.where(resident, leaf_keys, -1)
        miss = np.flatnonzero(~resident)
        top = grid.n_levels - 1
        # Two walks up the tree: every still-unresolved leaf (to find its stand-in),
        # and the distinct ancestors of all missing leaves (to request them).
        lvl, ijk = sel.leaf_levels[miss], sel.leaf_ijk[miss]
        clvl, cijk = lvl, ijk
        chain: list[I64] = []
        while len(clvl):
            below = clvl < top
            clvl, cijk = clvl[below] + 1, grid.parent_ijk(clvl[below], cijk[below])
            ckeys = base + grid.encode_mixed(clvl, cijk)
            ckeys, idx = np.unique(ckeys, return_index=True)
            chain.append(ckeys)
            clvl, cijk = clvl[idx], cijk[idx]
        while miss.size:
            below = lvl < top
            miss, lvl, ijk = miss[below], lvl[below], ijk[below]
            if not miss.size:
                break
            ijk = grid.parent_ijk(lvl, ijk)
            lvl = lvl + 1
            keys = base + grid.encode_mixed(lvl, ijk)
            found = self.cache.contains_array(keys)
            src[miss[found]] = keys[found]
            nf = ~found
            miss, lvl, ijk = miss[nf], lvl[nf], ijk[nf]
        anc = np.unique(np.concatenate(chain)) if chain else np.zeros(0, np.int64)
        return src, anc

    def _drain(self) -> I64:
        results: list[BrickResult] = self.scheduler.drain()
        got = []
        for r in results:
            key = r.request.key
            if r.array is None:
                self._failed.add(key)
                continue
            self.cache.put(key, r.array)
            got.append(key)
        if results and self._failed:
            self._failed_arr = np.array(sorted(self._failed), dtype=np.int64)
        return np.asarray(got, dtype=np.int64)

    def _draw_items(
        self, src: I64, leaf_keys: I64, leaf_lo: F64, leaf_hi: F64
    ) -> tuple[I64, F64, F64]:
        """Draw items: a resident leaf whole; a stand-in cropped to the leaves it replaces.

        Leaves sharing one stand-in become one item when their boxes tile their
        bounding box exactly (the usual case: all children of a parent missing).
        """
        own = src == leaf_keys
        keys = [src[own]]
        lo = [leaf_lo[own]]
        hi = [leaf_hi[own]]
        stand = np.flatnonzero((src >= 0) & ~own)
        if stand.size:
            order = stand[np.argsort(src[stand], kind="stable")]
            s = src[order]
            starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
            llo, lhi = leaf_lo[order], leaf_hi[order]
            glo = np.minimum.reduceat(llo, starts, axis=0)
            ghi = np.maximum.reduceat(lhi, starts, axis=0)
            vol = np.add.reduceat(np.prod(lhi - llo, axis=1), starts)
            whole = np.isclose(vol, np.prod(ghi - glo, axis=1), rtol=1e-9)
            keys.append(s[starts][whole])
            lo.append(glo[whole])
            hi.append(ghi[whole])
            counts = np.diff(np.r_[starts, len(s)])
            split = np.repeat(~whole, counts)
            keys.append(s[split])
            lo.append(llo[split])
            hi.append(lhi[split])
        lo_a, hi_a = np.concatenate(lo), np.concatenate(hi)
        # The whole volume is drawn from its first to its last level-0 voxel centre,
        # as a single volume of level 0 is (VtkImage); coarse bricks' borders cover it.
        np.maximum(lo_a, self._extent_lo, out=lo_a)
        np.minimum(hi_a, self._extent_hi, out=hi_a)
        return np.concatenate(keys), lo_a, hi_a

    def _texture_bytes(self, codes: I64) -> int:
        if not len(codes):
            return 0
        lvl, ijk = self.grid.decode(codes)
        start, stop = self.grid.voxel_bounds(lvl, ijk)
        return int(np.prod(stop - start + 2, axis=1).sum()) * self.itemsize

    def _request(self, sel: Selection, base: int, views: Sequence[View]) -> bool:
        """Submit the missing nodes within the budget; True if the budget cut the list.

        The budget is filled coarse level first; the missing bricks are then
        requested coarse first and, within a level, from the view centre outwards.
        """
        # Only leaves and the ancestors of leaves not yet resident are wanted: an
        # intermediate level under resident leaves would be fetched for nothing.
        node_keys = base + sel.nodes
        useful = np.isin(node_keys, self._ancestors) | np.isin(
            node_keys, base + sel.leaves, assume_unique=True
        )
        nodes = sel.nodes[useful]
        sizes = self.grid.nbytes(nodes, self.itemsize)
        cum = np.cumsum(sizes)
        limit = _BUDGET_SHARE * self.cache.budget_bytes
        fits = cum <= limit
        over = not bool(fits.all()) if len(fits) else False
        want = base + nodes[fits]
        if self.n_time > 1 and self.prefetch_time and not over:
            used = int(cum[-1]) if len(cum) else 0
            leaf_sizes = self.grid.nbytes(sel.leaves, self.itemsize)
            extra = []
            for dt in range(1, self.prefetch_time + 1):
                t = self._time_index + dt
                if t >= self.n_time:
                    break
                c2 = used + np.cumsum(leaf_sizes)
                ok = c2 <= limit
                extra.append(self.key_base(time_index=t) + sel.leaves[ok])
                used = int(c2[ok][-1]) if ok.any() else used
                if not ok.all():
                    break
            if extra:
                want = np.concatenate([want, *extra])
        evictions = self.cache.evictions
        same = (
            self._last_want is not None
            and evictions == self._last_evictions
            and np.array_equal(want, self._last_want)
        )
        if not same:
            missing = want[~self.cache.contains_array(want)]
            if len(self._failed_arr):
                missing = missing[~np.isin(missing, self._failed_arr)]
            if len(missing) > 1:
                t_idx, codes = np.divmod(missing, self.grid.n_bricks)
                levels = self.grid.decode(codes)[0]
                score = centre_scores(self.grid, codes, views)
                # time point first (prefetch last), then coarse first, then centre first
                missing = missing[np.lexsort((score, -levels, t_idx))]
            self.scheduler.submit(missing)
            self._last_want = want
            self._last_evictions = evictions
        return over

    def _adapt_bias(self, over: bool, sel: Selection, gpu: int) -> None:
        """Coarsen while over a budget; refine again (with hysteresis) when well under."""
        if over:
            need = int(self.grid.nbytes(sel.nodes, self.itemsize).sum())
            limit = _BUDGET_SHARE * self.cache.budget_bytes
            # Bytes fall roughly with the cube of the error threshold: jump most of
            # the way at once, then settle in small steps.
            step = float(np.clip((need / limit) ** (1 / 3), 1.25, 8.0)) if need > limit else 1.25
            self._bias = min(self._bias * step, 1024.0)
            return
        if self._bias > 1.0:
            need = int(self.grid.nbytes(sel.nodes, self.itemsize).sum())
            # Refining one step multiplies the bytes by up to ~2 (1.25**3): only
            # step back when that would still fit.
            if (
                need * 2.5 < _BUDGET_SHARE * self.cache.budget_bytes
                and gpu * 2.5 < self.textures.budget_bytes
            ):
                self._bias = max(self._bias / 1.25, 1.0)

    def _stats(self, leaves: int, drawn: int, stand: int, undrawn: int, gpu: int) -> StreamStats:
        s = self.scheduler.stats()
        return StreamStats(
            cache_bytes=self.cache.nbytes,
            cache_budget_bytes=self.cache.budget_bytes,
            cache_bricks=len(self.cache),
            gpu_bytes=gpu,
            gpu_budget_bytes=self.textures.budget_bytes,
            pending=s.pending,
            in_flight=s.in_flight,
            loaded=s.completed,
            failed=s.failed,
            dropped=s.dropped,
            bytes_loaded=s.bytes_loaded,
            leaves=leaves,
            drawn=drawn,
            stand_ins=stand,
            undrawn=undrawn,
            complete=stand == 0 and undrawn == 0,
            lod_bias=self._bias,
            frame_ms=self._frame_ms,
        )

    def stats(self) -> StreamStats:
        """Counters now (cache, pending requests, last frame)."""
        if self._last is None:
            return self._stats(0, 0, 0, 0, 0)
        st = self._last.stats
        return self._stats(st.leaves, st.drawn, st.stand_ins, st.undrawn, st.gpu_bytes)

    def settle(
        self,
        views: View | Sequence[View],
        clip_planes: Iterable[Any] | F64 = (),
        timeout: float = 60.0,
    ) -> StreamFrame:
        """Update until every leaf is drawn at its own level (or ``timeout`` s; for
        one-shot renders and tests, never in a frame loop)."""
        deadline = time.monotonic() + timeout
        frame = self.update(views, clip_planes)
        while not frame.complete and time.monotonic() < deadline:
            self.scheduler.wait_idle(timeout=min(0.05, max(deadline - time.monotonic(), 0.0)))
            frame = self.update(views, clip_planes)
            if not frame.complete and frame.stats.pending == 0 and frame.stats.in_flight == 0:
                # Nothing left to load: failed bricks or a budget cut; this is final.
                frame = self.update(views, clip_planes)
                if frame.stats.pending == 0 and frame.stats.in_flight == 0:
                    break
        return frame

    # -- bricks -----------------------------------------------------------------------
    def neighbour_keys(self, key: int) -> I64:
        """Keys (26,) of the same-level neighbours of ``key`` (-1 outside the volume)."""
        t, c, code = self.split_key(key)
        lvl, ijk = self.grid.decode([code])
        level = int(lvl[0])
        n = ijk[0] + _OFFSETS
        inside = ((n >= 0) & (n < self.grid.grid[level])).all(axis=1)
        out = np.full(len(_OFFSETS), -1, dtype=np.int64)
        out[inside] = self.key_base(t, c) + self.grid.encode(level, n[inside])
        return out

    def padded(self, key: int) -> PaddedBrick | None:
        """The resident brick ``key`` with a one-voxel border (None if not resident).

        The border is added on every side that has a neighbouring brick: from
        the neighbour's voxels when it is resident, else by repeating the edge.
        The volume's outer faces get none, so rays enter the volume exactly where
        they would enter a single volume of the level.
        """
        arr = self.cache.peek(int(key))
        if arr is None:
            return None
        t, c, code = self.split_key(key)
        lvl, ijk = self.grid.decode([code])
        level = int(lvl[0])
        start, stop = self.grid.voxel_bounds(level, ijk)
        pad_lo = (ijk[0] > 0).astype(np.int64)
        pad_hi = (ijk[0] < self.grid.grid[level] - 1).astype(np.int64)
        out = np.pad(arr, list(zip(pad_lo.tolist(), pad_hi.tolist(), strict=True)), mode="edge")
        n = np.asarray(arr.shape, dtype=np.int64)
        used = []
        for off, nk in zip(_OFFSETS, self.neighbour_keys(key), strict=True):
            if nk < 0:
                continue
            nb = self.cache.peek(int(nk))
            if nb is None:
                continue
            dst = tuple(
                slice(0, 1)
                if o < 0
                else (slice(-1, None) if o > 0 else slice(int(pl), int(pl + m)))
                for o, pl, m in zip(off, pad_lo, n, strict=True)
            )
            srcs = tuple(
                slice(-1, None) if o < 0 else (slice(0, 1) if o > 0 else slice(None)) for o in off
            )
            out[dst] = nb[srcs]
            used.append(int(nk))
        scale = self.grid.scale[level]
        corner = self.grid.translation[level] + (start[0] - pad_lo) * scale
        lo, hi = self.grid.boxes(level, ijk)
        return PaddedBrick(
            key=int(key),
            level=level,
            region=(
                slice(int(start[0, 0]), int(stop[0, 0])),
                slice(int(start[0, 1]), int(stop[0, 1])),
                slice(int(start[0, 2]), int(stop[0, 2])),
            ),
            array=out,
            origin_um=_t3(corner),
            spacing_um=_t3(scale),
            box_lo_um=_t3(lo[0]),
            box_hi_um=_t3(hi[0]),
            neighbours=frozenset(used),
        )

    # -- lifetime -------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the workers (running loads finish) and drop pending requests."""
        self.scheduler.close()

    def __enter__(self) -> VolumeStreamer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
