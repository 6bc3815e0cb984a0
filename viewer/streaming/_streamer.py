"""``VolumeStreamer``: each frame, views in -> the bricks to draw out, never waiting on I/O.

One frame (:meth:`VolumeStreamer.update`):

1. drain the bricks the workers finished into the cache (and a residency bitmap);
2. choose the leaves (:func:`select_bricks`: frustum and clipping-plane culling,
   screen-space error), or keep last frame's choice while the camera moved less
   than ``reuse_px`` pixels / finest voxels;
3. for every leaf draw the best resident data: the leaf itself, else its nearest
   resident ancestor *cropped to the leaf's box* (so a coarse parent stands in
   for exactly the missing part and never overlaps finer bricks already drawn);
4. ask the scheduler for the missing leaves and their missing ancestors (up to
   the nearest resident one), coarse first then by distance from the view
   centre, within the cache budget, at most ``max_requests`` per frame; during
   time-lapse playback the next time points' leaves follow at lowest priority.

Steps 3 and 4 are skipped when neither the selection nor the resident set
changed. Every step is a fixed number of NumPy operations over the selection's
per-node arrays (one pass per pyramid level at most); the only Python loops run
per *arrived* or evicted brick (inside one :meth:`BrickCache.put_many` per
frame), never per brick in view. A frame costs a few hundred NumPy calls of
1-5 µs each on a busy machine, so calls are counted: masks and ``take`` instead
of ``np.unique``/``np.isin`` and boolean fancy indexing where it matters.
``benchmarks.md`` ("Streaming", "Frame work") has the figures: about 1-1.5 ms of
CPU per frame with 100k bricks, loads running or not, while the camera is still; a
moving camera costs a new selection and draw list, 12 ms at 100k leaves.

Off the frame thread (``background=True``, what the desktop and headset controllers use).
Steps 2-4 need only the views, the grid (immutable) and the residency bitmap, so they run
on one worker thread as a :class:`_Plan` (selection, draw list, requests); the frame
drains arrivals, hands the latest views to the worker when it is idle, and draws the latest
finished plan: late while the camera moves (by one plan's time, 12 ms at 100k leaves on
this machine, longer under load), never waiting. Adopting a plan (marking its bricks drawn,
handing its requests to the scheduler) is the only per-plan work left on the frame thread.
The worker reads the live bitmap, which this thread keeps writing as bricks arrive and
are evicted: a plan made from a bitmap older than the frame's has its draw items checked
against the current one (one ``take``) and loses those whose brick left the cache. The
first frame, ``update(wait=True)`` and :meth:`settle` compute on the calling thread.

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

import bisect
import concurrent.futures
import dataclasses
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.errors import ParameterError
from analysis.volume import VolumeSource, read_many

from ._cache import BrickCache, TextureBudget
from ._lod import BrickGrid, Selection, View, centre_scores_ijk, clip_planes_array
from ._residency import Residency
from ._reuse import SelectionReuse
from ._scheduler import BrickResult, ChunkScheduler, default_batch, default_workers

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
_OFFSETS_PY = [tuple(int(v) for v in o) for o in _OFFSETS]
#: The 26 neighbours of a brick as (z, y, x) index offsets, faces first (public for the GPU
#: cache, which refreshes the borders of neighbours of arrivals the same way).
NEIGHBOUR_OFFSETS = _OFFSETS
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
        Bricks wanted and not loaded yet (queued in the scheduler or held back for a
        later frame), and loads running.
    held_back : int
        Of ``pending``, the bricks not handed to the scheduler yet (beyond
        ``max_requests``).
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
        Wall-clock time of the last :meth:`VolumeStreamer.update`.
    frame_cpu_ms : float
        CPU time of the calling thread in the last :meth:`VolumeStreamer.update`
        (the wall-clock time less what other threads and processes took).
    selecting : bool
        The bricks drawn may not be the latest views' yet: the selection worker
        (``background=True``) is computing theirs, or just handed a new plan over. A
        host that draws on demand keeps drawing while this is true.
    """

    cache_bytes: int
    cache_budget_bytes: int
    cache_bricks: int
    gpu_bytes: int
    gpu_budget_bytes: int
    pending: int
    in_flight: int
    held_back: int
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
    frame_cpu_ms: float
    selecting: bool = False
    #: Why the first brick that failed to load failed (empty: none failed).
    first_error: str = ""

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


def _pad_edge(
    arr: npt.NDArray[np.generic], lo: list[int], hi: list[int]
) -> npt.NDArray[np.generic]:
    """``np.pad(arr, zip(lo, hi), mode="edge")`` for a 3-D array and pads of 0 or 1,
    without ``np.pad``'s general machinery (4x faster on bricks)."""
    n = arr.shape
    out = np.empty(tuple(m + a + b for m, a, b in zip(n, lo, hi, strict=True)), arr.dtype)
    inner = tuple(slice(a, a + m) for a, m in zip(lo, n, strict=True))
    out[inner] = arr
    # Repeat the edge planes axis by axis, each over the extent already filled.
    for ax in range(3):
        idx: list[slice | int] = [slice(None)] * 3
        for later in range(ax + 1, 3):
            idx[later] = inner[later]
        if lo[ax]:
            idx[ax] = 0
            src = list(idx)
            src[ax] = 1
            out[tuple(idx)] = out[tuple(src)]
        if hi[ax]:
            idx[ax] = out.shape[ax] - 1
            src = list(idx)
            src[ax] = out.shape[ax] - 2
            out[tuple(idx)] = out[tuple(src)]
    return out


def _slab(
    off: tuple[int, ...], pad_lo: list[int], shape: tuple[int, ...]
) -> tuple[tuple[slice, slice, slice], tuple[slice, slice, slice]]:
    """Where the neighbour at offset ``off`` goes in a padded brick, and which of its voxels.

    ``shape`` is the brick's own (unpadded) shape, ``pad_lo`` its low-side border (0/1).
    """
    dst = tuple(
        slice(0, 1) if o < 0 else (slice(-1, None) if o > 0 else slice(pl, pl + m))
        for o, pl, m in zip(off, pad_lo, shape, strict=True)
    )
    src = tuple(slice(-1, None) if o < 0 else (slice(0, 1) if o > 0 else slice(None)) for o in off)
    return dst, src  # type: ignore[return-value]


@dataclass(frozen=True)
class _Plan:
    """What a frame draws and asks for, computed from one selection and resident set
    (on the worker thread with ``background=True``).

    ``stamp`` is (id(selection), residency version, key base); ``used`` the selection's
    node indices drawn, ``drawn_codes`` their brick codes; ``requests`` the keys to hand
    to the scheduler when the plan is adopted.
    """

    sel: Selection
    stamp: tuple[int, int, int]
    keys: I64
    lo: F64
    hi: F64
    levels: I64
    n_stand: int
    n_undrawn: int
    gpu: int
    used: I64
    drawn_codes: I64
    requests: I64 | None
    over: bool
    held_back: int
    need_bytes: int


def _contains(have: I64, keys: I64) -> npt.NDArray[np.bool_]:
    """Membership of ``keys`` in the sorted ``have`` (BrickCache.contains_array on a copy)."""
    if not len(have) or not len(keys):
        return np.zeros(len(keys), dtype=bool)
    i = np.minimum(np.searchsorted(have, keys), len(have) - 1)
    return np.asarray(have.take(i) == keys)


def _view_key(v: View) -> tuple[Any, ...]:
    """What a view's selection depends on, comparable (equal views give equal keys)."""
    return (
        v.position_um.tobytes(),
        v.forward.tobytes(),
        v.planes.tobytes(),
        v.focal_px,
        v.perspective,
        v.size,
    )


def _volumes(d: F64) -> F64:
    """Products of the rows of ``d`` (N, 3) (``np.prod(axis=1)`` is ~7x slower at N ~ 1000)."""
    return np.asarray(d[:, 0] * d[:, 1] * d[:, 2])


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
    n_workers : int, optional
        Loader threads; default :func:`default_workers` (one per core, at most 8).
    batch : int, optional
        Most bricks one loader reads in one call, for sources with ``read_many``
        (their chunks are fetched concurrently: up to ``n_workers * batch`` requests
        in flight, which is what hides HTTP latency); default :func:`default_batch`
        (32 for a remote store, else 8).
    max_error_px : float, default: 1.0
        Largest projected voxel (pixels) before a finer level is used.
    time_index, channel : int, default: 0
        Which time point / channel of a t/c source is streamed.
    prefetch_time : int, default: 1
        Time points after ``time_index`` whose bricks are fetched at lowest priority.
    labels : bool, default: False
        The source holds labels (drawn with nearest-neighbour sampling; same streaming).
    finest_level : int, default: 0
    max_requests : int, default: 256
        Most requests handed to the scheduler per frame (the most wanted ones); the
        rest wait for a later frame (they are counted in ``StreamStats.held_back``).
    reuse_px : float, default: 0.5
        Keep last frame's brick selection while the camera moved less than this many
        pixels (turning) and finest voxels (moving); 0 recomputes every frame.
    background : bool, default: False
        Compute the selection, draw list and requests on a worker thread from the
        latest views (:meth:`update`); the frame draws the latest finished ones. False:
        on the calling thread every frame (one-shot renders, tests).

    Notes
    -----
    Only the thread calling :meth:`update` touches the cache; the workers only
    read the source. Call :meth:`close` (or use ``with``) to stop the workers.

    Which bricks of the current time point and channel are resident is kept in a
    bitmap of one byte per brick of the pyramid (``grid.n_bricks``; 9.6 MB for a
    16384 x 16384 x 8192 volume in 64³ chunks) so that a frame looks residency up
    with one indexing operation.
    """

    def __init__(
        self,
        source: VolumeSource,
        *,
        cache: BrickCache | None = None,
        cache_bytes: int | None = None,
        gpu_budget_bytes: int = 1 << 30,
        n_workers: int | None = None,
        batch: int | None = None,
        max_error_px: float = 1.0,
        time_index: int = 0,
        channel: int = 0,
        prefetch_time: int = 1,
        labels: bool = False,
        finest_level: int = 0,
        max_requests: int = 256,
        reuse_px: float = 0.5,
        background: bool = False,
    ) -> None:
        axes = tuple(source.axes)
        if axes[-3:] != ("z", "y", "x"):
            raise ParameterError(f"a streamed volume needs z, y, x as its last axes, got {axes}")
        if not max_error_px > 0:
            raise ParameterError(f"max_error_px must be > 0, got {max_error_px}")
        if max_requests < 1:
            raise ParameterError(f"max_requests must be >= 1, got {max_requests}")
        if reuse_px < 0:
            raise ParameterError(f"reuse_px must be >= 0, got {reuse_px}")
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
        # Sources that read several chunks in one call (ZarrVolumeSource.read_many) get
        # batches: concurrent fetches, and far less Python per brick on the workers.
        many = self._load_many if callable(getattr(source, "read_many", None)) else None
        self.scheduler = ChunkScheduler(
            self._load,
            n_workers=default_workers() if n_workers is None else n_workers,
            load_many=many,
            batch=default_batch(source) if batch is None else batch,
        )
        self.max_error_px = float(max_error_px)
        self.prefetch_time = max(int(prefetch_time), 0)
        self.finest_level = int(finest_level)
        self.max_requests = int(max_requests)
        self.reuse_px = float(reuse_px)
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
        # Plain-int copies of the grid for the workers' key -> region (no NumPy per brick).
        self._py_offsets = [int(o) for o in g.offsets]
        self._py_levels = [
            (
                int(g.grid[i, 1] * g.grid[i, 2]),
                int(g.grid[i, 2]),
                tuple(int(c) for c in g.chunks[i]),
                tuple(int(s) for s in g.shape[i]),
            )
            for i in range(g.n_levels)
        ]
        # Distinct values per brick of a label source (written by the workers).
        self._ids: dict[int, npt.NDArray[np.generic]] = {}
        self._frame_ms = 0.0
        self._frame_cpu_ms = 0.0
        self._last: StreamFrame | None = None
        # Resident, drawn and failed bricks of the current (time, channel).
        self.residency = Residency(self.cache, g.n_bricks)
        # Bytes of one brick per level, as RAM and as a texture with its border. Full
        # chunks: the last brick along an axis may be smaller, so budgets are conservative.
        voxels = np.prod(g.chunks, axis=1)
        self._brick_bytes = voxels * self.itemsize
        self._tex_bytes = np.prod(g.chunks + 2, axis=1) * self.itemsize
        # Last selection, the views and error it was made for, and its leaves' boxes.
        self._selector = SelectionReuse(g, self.reuse_px)
        # What the last draw list / request list were computed from.
        self._held_back = 0
        self._over = False
        self._need_bytes = 0
        self._frames = 0
        # The plan drawn now, the worker computing the next one (background=True).
        self.background = bool(background)
        self._plan: _Plan | None = None
        self._job: Future[_Plan] | None = None
        self._worker: ThreadPoolExecutor | None = None
        # Inputs of the last frame (background only), of the running job, and of the last
        # job that changed nothing (the plan drawn is that frame's when the first and the
        # last are equal).
        self._frame_key: tuple[Any, ...] | None = None
        self._job_key: tuple[Any, ...] | None = None
        self._settled_key: tuple[Any, ...] | None = None
        self._lock = threading.Lock()  # guards _worker against close()

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
        """Level and region (slices over every axis of the source) of a cache key.

        Plain integer arithmetic: it runs on the worker threads once per brick, and
        NumPy calls on tiny arrays there would only compete with the frame thread
        for the GIL.
        """
        t, c, code = self.split_key(key)
        if not 0 <= code < self._py_offsets[-1]:
            raise ParameterError(f"brick key {key} out of range")
        level = bisect.bisect_right(self._py_offsets, code) - 1
        syx, sx, chunks, shape = self._py_levels[level]
        z, rem = divmod(code - self._py_offsets[level], syx)
        y, x = divmod(rem, sx)
        spatial = [
            slice(i * ch, min(i * ch + ch, n))
            for i, ch, n in zip((z, y, x), chunks, shape, strict=True)
        ]
        reg: list[slice] = []
        for i, ax in enumerate(self.source.axes[:-3]):
            if i == self._t_axis:
                reg.append(slice(t, t + 1))
            elif i == self._c_axis:
                reg.append(slice(c, c + 1))
            else:  # pragma: no cover - axes are validated to be t/c
                raise ParameterError(f"unsupported axis {ax!r}")
        return level, tuple(reg + spatial)

    def reload(self, level: int, region: tuple[slice, ...]) -> list[int]:
        """Read again the resident bricks of ``level`` that meet ``region`` ((z, y, x)
        voxels of that level), at the current time and channel: their voxels changed (a
        label edit). Returns their keys. Call it on the frame thread (it owns the cache)."""
        syx, sx, chunks, shape = self._py_levels[level]
        base = self.key_base() + self._py_offsets[level]
        ranges = [
            range(max(s.start, 0) // ch, (min(s.stop, n) - 1) // ch + 1)
            for s, ch, n in zip(region[-3:], chunks, shape, strict=True)
        ]
        keys = [
            base + z * syx + y * sx + x for z in ranges[0] for y in ranges[1] for x in ranges[2]
        ]
        keys = [k for k in keys if k in self.cache]
        for k in keys:
            self.cache.put(k, self._load(k))
        return keys

    def reload_ids(self, ids: Sequence[int]) -> list[int]:
        """Read again the resident bricks that hold one of ``ids`` (label ids an id
        mapping change shows differently: a merge or a table, which writes no voxel and
        names no region). Returns their keys. Call it on the frame thread."""
        want = np.unique(np.asarray(list(ids), dtype=np.int64))
        if not self.labels or want.size == 0:
            return []
        keys = [
            k
            for k in list(self.cache)
            if np.isin(self.brick_ids(k), want, assume_unique=True).any()
        ]
        for k in keys:
            self.cache.put(k, self._load(k))
        return keys

    def _load(self, key: int) -> npt.NDArray[np.generic]:
        level, reg = self.region(key)
        return self._brick(key, reg, self.source.read(level, reg))

    def _load_many(self, keys: list[int]) -> list[npt.NDArray[np.generic] | Exception]:
        """Several bricks through the source's ``read_many`` (one result or error per key)."""
        regions = [self.region(k) for k in keys]
        got = read_many(self.source, regions)
        out: list[npt.NDArray[np.generic] | Exception] = []
        for key, (_, reg), arr in zip(keys, regions, got, strict=True):
            out.append(arr if isinstance(arr, Exception) else self._brick(key, reg, arr))
        return out

    def _brick(
        self, key: int, reg: tuple[slice, ...], arr: npt.ArrayLike
    ) -> npt.NDArray[np.generic]:
        shape = tuple(s.stop - s.start for s in reg[-3:])
        out = np.ascontiguousarray(np.asarray(arr).reshape(shape))
        if self.labels:
            # The ids a brick holds (to colour them), found here on the worker: the
            # sort runs without the GIL and never on the frame thread.
            self._ids[key] = np.unique(out)
        return out

    def brick_ids(self, key: int) -> npt.NDArray[np.generic]:
        """Sorted distinct values of a resident brick (label ids; empty if not resident)."""
        ids = self._ids.get(int(key))
        if ids is None:
            arr = self.cache.peek(int(key))
            if arr is None:
                return np.zeros(0, self.source.dtype)
            ids = self._ids[int(key)] = np.unique(arr)
        return ids

    # -- frame ----------------------------------------------------------------------
    def update(
        self,
        views: View | Sequence[View],
        clip_planes: Iterable[Any] | F64 = (),
        wait: bool = False,
    ) -> StreamFrame:
        """One frame: drain arrivals, choose bricks, request what is missing. Never waits
        on I/O.

        Parameters
        ----------
        views : View or sequence of View
            The camera, or both eyes.
        clip_planes : iterable of ClippingPlane, or (K, 4) array
        wait : bool, default: False
            With ``background=True``: compute this frame's selection on the calling
            thread (waiting for a running one first), as one-shot renders need.

        Notes
        -----
        Work is skipped when its inputs did not change: the brick selection while
        the camera moved less than ``reuse_px`` (and the error bound is the same),
        the draw list and the request list while neither the selection nor the
        resident set changed. With ``background=True`` the selection, the draw list
        and the request list (a :class:`_Plan`) are computed on a worker thread from
        the latest views; the frame draws the latest finished plan (at most one
        frame late while the camera moves) and never waits for the worker, except
        for the very first frame (nothing to draw yet) and ``wait=True``.
        """
        t0 = time.perf_counter()
        c0 = time.thread_time()
        self._frames += 1
        vs = [views] if isinstance(views, View) else list(views)
        arrived = self._drain()
        planes = (
            clip_planes if isinstance(clip_planes, np.ndarray) else clip_planes_array(clip_planes)
        )
        base = self.key_base()
        self.residency.sync(base)
        err = self.max_error_px * self._bias
        refill = bool(self._held_back) and self.scheduler.n_queued() <= self.max_requests // 2
        if not self.background or wait or self._plan is None:
            self._frame_key = None  # this frame's plan is computed here
            self._collect(block=True)
            self._adopt(
                self._compute(
                    vs, planes, err, base, self.residency.resident, self._plan, refill, None
                )
            )
        else:
            # The views only: arrivals and budget steps change plans too, but those are
            # announced by pending / in_flight; equal views give the same selection.
            key = (tuple(_view_key(v) for v in vs), planes.tobytes(), base)
            self._frame_key = key
            self._collect(block=False)
            if self._job is None:
                self._job_key = key
                # The worker reads the live residency bitmap (bytes written by this thread
                # between its reads at worst: _adopt checks the draw list against it).
                self._job = self._executor().submit(
                    self._compute,
                    vs,
                    planes,
                    err,
                    base,
                    self.residency.resident,
                    self._plan,
                    refill,
                    self._cache_keys(),
                )
        plan = self._plan
        assert plan is not None  # the first frame computes one above
        gpu_over = max(plan.gpu, self.textures.used) > self.textures.budget_bytes
        self._adapt_bias(self._over or gpu_over, plan.gpu)
        self._frame_ms = (time.perf_counter() - t0) * 1e3
        self._frame_cpu_ms = (time.thread_time() - c0) * 1e3
        sel = plan.sel
        frame = StreamFrame(
            keys=plan.keys,
            crop_lo=plan.lo,
            crop_hi=plan.hi,
            levels=plan.levels,
            arrived=arrived,
            selection=sel,
            stats=self._stats(
                len(sel.leaves), len(plan.keys), plan.n_stand, plan.n_undrawn, plan.gpu
            ),
        )
        self._last = frame
        return frame

    def join(self, timeout: float | None = None) -> None:
        """Wait until the worker's running selection is finished (the next :meth:`update`
        draws it); for tests and benchmarks, never in a frame loop."""
        job = self._job
        if job is not None:
            concurrent.futures.wait([job], timeout=timeout)

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._worker is None:
                self._worker = ThreadPoolExecutor(1, thread_name_prefix="vrscope-select")
            return self._worker

    def _cache_keys(self) -> I64 | None:
        """The cache's keys for the time-lapse prefetch of a worker's plan (the cache is
        this thread's: the worker reads this sorted copy). None without prefetch."""
        if self.n_time > 1 and self.prefetch_time:
            return self.cache.keys_array()
        return None

    def _collect(self, block: bool) -> None:
        """Adopt the worker's plan when it is finished (``block``: wait for it)."""
        job = self._job
        if job is not None and (block or job.done()):
            self._job = None
            plan = job.result()
            # A job that changed nothing: the same inputs again will not either.
            self._settled_key = self._job_key if plan is self._plan else None
            self._adopt(plan)

    def _compute(
        self,
        vs: list[View],
        planes: F64,
        err: float,
        base: int,
        resident: npt.NDArray[np.bool_],
        prev: _Plan | None,
        refill: bool,
        cache_keys: I64 | None,
    ) -> _Plan:
        """Selection, draw list and requests for these inputs (pure but for the reused
        selection, so it runs on the worker or, with no job running, on the frame thread).
        Returns ``prev`` itself when nothing changed."""
        sel = self._select(vs, planes, err)
        # The version first: the bitmap read after it is at least that recent.
        version = self.residency.version
        stamp = (id(sel), version, base)
        if prev is not None and prev.stamp == stamp:
            # Frame coherence: same selection, same resident bricks -> same draw list.
            if not refill:
                return prev
            # Only the next batch of requests.
            res = resident.take(sel.nodes)
            req = self._plan_requests(sel, res, prev.used, base, vs, cache_keys)
            return dataclasses.replace(prev, requests=req[0], over=req[1], held_back=req[2])
        res = resident.take(sel.nodes)
        item_nodes, lo, hi, src = self._draw_items(sel, res)
        keys = base + sel.nodes.take(item_nodes)
        lv = sel.node_levels.take(item_nodes)
        n_stand = int(np.count_nonzero((src >= 0) & (src != sel.leaf_index)))
        n_undrawn = int(np.count_nonzero(src < 0))
        # Sorted distinct nodes drawn, by a mask over the selection's nodes
        # (np.unique hashes and sorts: ~0.2 ms a frame here).
        drawn = np.zeros(len(sel.nodes), dtype=bool)
        drawn[item_nodes] = True
        used = np.flatnonzero(drawn)
        gpu = int(self._tex_bytes[sel.node_levels.take(used)].sum())
        req = self._plan_requests(sel, res, used, base, vs, cache_keys)
        return _Plan(
            sel=sel,
            stamp=stamp,
            keys=keys,
            lo=lo,
            hi=hi,
            levels=lv,
            n_stand=n_stand,
            n_undrawn=n_undrawn,
            gpu=gpu,
            used=used,
            drawn_codes=sel.nodes.take(used),
            requests=req[0],
            over=req[1],
            held_back=req[2],
            need_bytes=self._need_bytes_of(sel),
        )

    def _adopt(self, plan: _Plan) -> None:
        """Draw ``plan`` from now on (frame thread): mark its bricks drawn, hand its
        requests over. A plan of another time point / channel is dropped; items whose
        brick left the cache since the worker read the bitmap are dropped (drawn again
        by the next plan, computed from the bitmap that says so)."""
        cur = self._plan
        if plan is cur:
            return
        base = self.key_base()
        if plan.stamp[2] != base:
            return
        if cur is None or plan.keys is not cur.keys:
            if plan.stamp[1] != self.residency.version:
                ok = self.residency.resident.take(plan.keys - base)
                if not ok.all():
                    plan = dataclasses.replace(
                        plan,
                        keys=plan.keys[ok],
                        lo=plan.lo[ok],
                        hi=plan.hi[ok],
                        levels=plan.levels[ok],
                    )
            self.residency.mark_drawn(plan.drawn_codes)
        if plan.requests is not None:
            self.scheduler.submit(plan.requests)
        self._over = plan.over
        self._held_back = plan.held_back
        self._need_bytes = plan.need_bytes
        self._plan = plan

    def _select(self, vs: list[View], planes: F64, err: float | None = None) -> Selection:
        """:func:`select_bricks` at ``err`` (default: the error bound of the budget's
        bias), reused while the views barely move (:class:`SelectionReuse`)."""
        if err is None:
            err = self.max_error_px * self._bias
        return self._selector.select(vs, planes, err, self.finest_level)

    def _drain(self) -> I64:
        """Move finished bricks into the cache, keeping the bitmap in step.

        One :meth:`BrickCache.put_many` for all arrivals (in-use checks vectorised
        over the drawn bitmap) and one bitmap write each for the evicted and the
        stored keys: the per-brick Python work is a few attribute reads.
        """
        results: list[BrickResult] = self.scheduler.drain()
        if not results:
            return np.zeros(0, np.int64)
        keys: list[int] = []
        arrays: list[npt.NDArray[np.generic]] = []
        failed: list[int] = []
        for r in results:
            if r.array is None:
                failed.append(r.request.key)
            else:
                keys.append(r.request.key)
                arrays.append(r.array)
        self.residency.add_failed(failed)
        evicted = self.residency.store(keys, arrays)
        if self.labels:
            for k in evicted:
                self._ids.pop(k, None)
        return np.asarray(keys, dtype=np.int64)

    def _stand_ins(self, sel: Selection, res: npt.NDArray[np.bool_]) -> I64:
        """Node index drawn for each leaf (M,): itself if resident, else its nearest
        resident ancestor, else -1. One pass down the levels of the selection.

        Nodes are stored coarsest level first, so an ancestor's index is smaller than
        its descendants': per level, ``max(own index if resident else -1, the parent's
        result)`` is the nearest resident one (two NumPy calls a level).
        """
        best = np.where(res, np.arange(len(res)), -1)
        parent = sel.node_parent
        for _, s, e in sel.level_bounds[1:]:
            seg = best[s:e]
            np.maximum(seg, best.take(parent[s:e]), out=seg)
        return np.asarray(best.take(sel.leaf_index))

    def _draw_items(self, sel: Selection, res: npt.NDArray[np.bool_]) -> tuple[I64, F64, F64, I64]:
        """Draw items (node index, crop box): a resident leaf whole; a stand-in cropped to
        the leaves it replaces. Also returns each leaf's source node (-1: nothing).

        Leaves sharing one stand-in become one item when their boxes tile their
        bounding box exactly (the usual case: all children of a parent missing).
        """
        src = self._stand_ins(sel, res)
        leaf_lo, leaf_hi = self._selector.leaf_lo, self._selector.leaf_hi
        own = src == sel.leaf_index
        n_own = int(np.count_nonzero(own))
        if n_own == len(src):
            idx, lo_a, hi_a = sel.leaf_index, leaf_lo.copy(), leaf_hi.copy()
        else:
            mine = own.nonzero()[0]
            nodes = [src.take(mine)]
            lo = [leaf_lo.take(mine, 0)]
            hi = [leaf_hi.take(mine, 0)]
            # Drawn by a stand-in: something resident (src >= 0) and not the leaf itself
            # (own implies src >= 0, so the exclusive or is the difference).
            stand = ((src >= 0) ^ own).nonzero()[0]
            if len(stand):
                order = stand.take(np.argsort(src.take(stand), kind="stable"))
                s = src.take(order)
                first = np.empty(len(s), bool)
                first[0] = True
                np.not_equal(s[1:], s[:-1], out=first[1:])
                starts = first.nonzero()[0]
                llo, lhi = leaf_lo.take(order, 0), leaf_hi.take(order, 0)
                glo = np.minimum.reduceat(llo, starts, axis=0)
                ghi = np.maximum.reduceat(lhi, starts, axis=0)
                vol = np.add.reduceat(_volumes(lhi - llo), starts)
                box = _volumes(ghi - glo)
                whole = np.abs(vol - box) <= 1e-9 * box
                nodes.append(s[starts[whole]])
                lo.append(glo[whole])
                hi.append(ghi[whole])
                split = ~whole[np.cumsum(first) - 1]
                nodes.append(s[split])
                lo.append(llo[split])
                hi.append(lhi[split])
            idx, lo_a, hi_a = np.concatenate(nodes), np.concatenate(lo), np.concatenate(hi)
        # The whole volume is drawn from its first to its last level-0 voxel centre,
        # as a single volume of level 0 is (VtkImage); coarse bricks' borders cover it.
        np.maximum(lo_a, self._extent_lo, out=lo_a)
        np.minimum(hi_a, self._extent_hi, out=hi_a)
        return idx, lo_a, hi_a, src

    def _need_bytes_of(self, sel: Selection) -> int:
        """RAM bytes of every node of the selection (full chunks)."""
        bb = self._brick_bytes
        return sum(int(bb[lv]) * (e - s) for lv, s, e in sel.level_bounds)

    def _plan_requests(
        self,
        sel: Selection,
        res: npt.NDArray[np.bool_],
        used: I64,
        base: int,
        views: list[View],
        cache_keys: I64 | None,
    ) -> tuple[I64, bool, int]:
        """The most wanted missing bricks, whether the RAM budget cut the list, and how
        many were held back for a later frame.

        Wanted: every leaf, and the ancestors of a missing leaf up to its nearest
        resident ancestor (coarse stand-ins arrive first). The budget is filled
        coarse level first; the missing bricks are requested coarse first and,
        within a level, from the view centre outwards. Only the first
        ``max_requests`` are handed over; a refill (:meth:`update`) hands over more
        when the workers run low. Reads no state the frame thread writes but the
        cache's keys, passed as ``cache_keys`` (None: read them here).
        """
        missing = ~res
        # need: missing, and a leaf or the parent of a needed node. Finest level first,
        # so a level's flags are complete (own leaves, needed children) before masking.
        need = sel.node_leaf.copy()
        parent = sel.node_parent
        bounds = sel.level_bounds
        for _, s, e in reversed(bounds[1:]):
            seg = need[s:e]
            seg &= missing[s:e]
            need[parent[s:e][seg]] = True
        if bounds:
            need[: bounds[0][2]] &= missing[: bounds[0][2]]
        wanted = need | sel.node_leaf
        wanted[used] = True
        # Bytes per level are constant (full chunks): sums from counts, no per-node array.
        bb = self._brick_bytes
        total = sum(int(bb[lv]) * int(np.count_nonzero(wanted[s:e])) for lv, s, e in bounds)
        limit = _BUDGET_SHARE * self.cache.budget_bytes
        over = total > limit
        if over:
            widx = wanted.nonzero()[0]
            cum = np.cumsum(bb.take(sel.node_levels.take(widx)))
            widx = widx[: int(np.searchsorted(cum, limit, side="right"))]
            miss = widx[missing.take(widx)]
        else:
            wanted &= missing
            miss = wanted.nonzero()[0]
        keys = base + sel.nodes.take(miss)
        failed = self.residency.failed_keys
        if len(failed):
            ok = ~np.isin(keys, failed)
            miss, keys = miss[ok], keys[ok]
        n_cap = self.max_requests
        if len(miss) > 1:
            levels = sel.node_levels.take(miss)
            cand = len(miss)
            if cand > n_cap:
                # ``miss`` is in node order, coarsest level first, and the priority sorts
                # by level before the centre score (4 a level against a score in [0, 2]):
                # the first ``n_cap`` come from the levels down to the one that straddles
                # ``n_cap``, so only those are scored (not the 100k of a cold view).
                cut = int(levels[n_cap - 1])
                cand = int(np.searchsorted(-levels, -cut, side="right"))
                miss_c, levels, keys = miss[:cand], levels[:cand], keys[:cand]
            else:
                miss_c = miss
            # Coarse first, then from the view centre (1 - cos is in [0, 2]).
            prio = centre_scores_ijk(self.grid, levels, sel.node_ijk.take(miss_c, 0), views)
            prio -= 4.0 * levels
            if cand > n_cap:
                top = np.argpartition(prio, n_cap - 1)[:n_cap]
                keys = keys.take(top.take(np.argsort(prio.take(top), kind="stable")))
            else:
                keys = keys.take(np.argsort(prio, kind="stable"))
        held = max(len(miss) - n_cap, 0)
        if self.n_time > 1 and self.prefetch_time and not over and len(keys) < n_cap:
            keys = np.concatenate([keys, self._prefetch(sel, total, cache_keys)])
            keys = keys[:n_cap]
        return keys, over, held

    def _prefetch(self, sel: Selection, used_bytes: int, cache_keys: I64 | None) -> I64:
        """Keys of the next time points' leaves that fit in the budget and are not held."""
        limit = _BUDGET_SHARE * self.cache.budget_bytes
        leaf_sizes = self._brick_bytes[sel.leaf_levels]
        have = self.cache.keys_array() if cache_keys is None else cache_keys
        extra = []
        used = used_bytes
        for dt in range(1, self.prefetch_time + 1):
            t = self._time_index + dt
            if t >= self.n_time:
                break
            c2 = used + np.cumsum(leaf_sizes)
            ok = c2 <= limit
            k = self.key_base(time_index=t) + sel.leaves[ok]
            extra.append(k[~_contains(have, k)])
            used = int(c2[ok][-1]) if ok.any() else used
            if not ok.all():
                break
        return np.concatenate(extra) if extra else np.zeros(0, np.int64)

    def _adapt_bias(self, over: bool, gpu: int) -> None:
        """Coarsen while over a budget; refine again (with hysteresis) when well under."""
        need = self._need_bytes
        limit = _BUDGET_SHARE * self.cache.budget_bytes
        if over:
            # Bytes fall roughly with the cube of the error threshold: jump most of
            # the way at once, then settle in small steps.
            step = float(np.clip((need / limit) ** (1 / 3), 1.25, 8.0)) if need > limit else 1.25
            self._bias = min(self._bias * step, 1024.0)
            return
        # Refining one step multiplies the bytes by up to ~2 (1.25**3): only
        # step back when that would still fit.
        if self._bias > 1.0 and need * 2.5 < limit and gpu * 2.5 < self.textures.budget_bytes:
            self._bias = max(self._bias / 1.25, 1.0)

    def _stats(self, leaves: int, drawn: int, stand: int, undrawn: int, gpu: int) -> StreamStats:
        s = self.scheduler.stats()
        return StreamStats(
            cache_bytes=self.cache.nbytes,
            cache_budget_bytes=self.cache.budget_bytes,
            cache_bricks=len(self.cache),
            gpu_bytes=gpu,
            gpu_budget_bytes=self.textures.budget_bytes,
            pending=s.pending + self._held_back,
            in_flight=s.in_flight,
            held_back=self._held_back,
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
            frame_cpu_ms=self._frame_cpu_ms,
            selecting=self._frame_key is not None and self._frame_key != self._settled_key,
            first_error=s.first_error,
        )

    def stats(self) -> StreamStats:
        """Counters now (cache, pending requests, last frame)."""
        if self._last is None:
            return self._stats(0, 0, 0, 0, 0)
        st = self._last.stats
        return self._stats(st.leaves, st.drawn, st.stand_ins, st.undrawn, st.gpu_bytes)

    def wait(self, timeout: float) -> None:
        """Block until the workers finished what they have, or need the next batch
        (for one-shot renders and tests, never in a frame loop)."""
        if self._held_back:
            self.scheduler.wait_below(self.max_requests // 2, timeout=timeout)
        else:
            self.scheduler.wait_idle(timeout=timeout)

    def first_image(
        self,
        views: View | Sequence[View],
        clip_planes: Iterable[Any] | F64 = (),
        timeout: float = 60.0,
        frame_s: float = 1 / 60,
    ) -> StreamFrame:
        """Update at ``frame_s`` intervals until every leaf is drawn, by itself or by a
        coarser stand-in: the first complete (coarse) picture. For reports and
        benchmarks (``vrscope info --stream``); a viewer simply draws every frame."""
        deadline = time.monotonic() + timeout
        frame = self.update(views, clip_planes, wait=True)
        while (frame.stats.drawn == 0 or frame.stats.undrawn) and time.monotonic() < deadline:
            if frame.stats.pending == 0 and frame.stats.in_flight == 0:
                break  # nothing left to load (failures)
            time.sleep(frame_s)
            frame = self.update(views, clip_planes, wait=True)
        return frame

    def settle(
        self,
        views: View | Sequence[View],
        clip_planes: Iterable[Any] | F64 = (),
        timeout: float = 60.0,
    ) -> StreamFrame:
        """Update until every leaf is drawn at its own level (or ``timeout`` s; for
        one-shot renders and tests, never in a frame loop)."""
        deadline = time.monotonic() + timeout
        frame = self.update(views, clip_planes, wait=True)
        while not frame.complete and time.monotonic() < deadline:
            self.wait(min(0.05, max(deadline - time.monotonic(), 0.0)))
            frame = self.update(views, clip_planes, wait=True)
            if not frame.complete and frame.stats.pending == 0 and frame.stats.in_flight == 0:
                # Nothing left to load: failed bricks or a budget cut; this is final.
                frame = self.update(views, clip_planes, wait=True)
                if frame.stats.pending == 0 and frame.stats.in_flight == 0:
                    break
        return frame

    # -- bricks -----------------------------------------------------------------------
    def _locate(self, key: int) -> tuple[int, int, int, tuple[int, int, int]]:
        """(time, channel, level, (z, y, x) brick index) of a key, in plain ints."""
        t, c, code = self.split_key(key)
        if not 0 <= code < self._py_offsets[-1]:
            raise ParameterError(f"brick key {key} out of range")
        level = bisect.bisect_right(self._py_offsets, code) - 1
        syx, sx = self._py_levels[level][:2]
        z, rem = divmod(code - self._py_offsets[level], syx)
        y, x = divmod(rem, sx)
        return t, c, level, (z, y, x)

    def neighbour_keys(self, key: int) -> I64:
        """Keys (26,) of the same-level neighbours of ``key`` (-1 outside the volume)."""
        t, c, level, (z, y, x) = self._locate(key)
        syx, sx = self._py_levels[level][:2]
        gz, gy, gx = (int(n) for n in self.grid.grid[level])
        base = self.key_base(t, c) + self._py_offsets[level]
        out = [
            base + (z + a) * syx + (y + b) * sx + (x + d)
            if 0 <= z + a < gz and 0 <= y + b < gy and 0 <= x + d < gx
            else -1
            for a, b, d in _OFFSETS_PY
        ]
        return np.asarray(out, dtype=np.int64)

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
        _, _, level, ijk_t = self._locate(int(key))
        ijk = np.asarray([ijk_t], dtype=np.int64)
        start, stop = self.grid.voxel_bounds(level, ijk)
        pad_lo = (ijk[0] > 0).astype(np.int64)
        pad_hi = (ijk[0] < self.grid.grid[level] - 1).astype(np.int64)
        out = _pad_edge(arr, pad_lo.tolist(), pad_hi.tolist())
        used = []
        for off, nk in zip(_OFFSETS_PY, self.neighbour_keys(key), strict=True):
            if nk < 0:
                continue
            nb = self.cache.peek(int(nk))
            if nb is None:
                continue
            dst, srcs = _slab(off, pad_lo.tolist(), arr.shape)
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

    def border_patch(
        self, brick: PaddedBrick, neighbour: int
    ) -> tuple[tuple[slice, slice, slice], npt.NDArray[np.generic]] | None:
        """The part of ``brick.array``'s border that the resident ``neighbour`` fills.

        Returns ``(where, values)`` so a caller can write ``array[where] = values``
        (and the same into a texture) instead of rebuilding the whole brick when a
        neighbour arrives; None when ``neighbour`` is not resident or not adjacent.
        """
        nb = self.cache.peek(int(neighbour))
        if nb is None:
            return None
        keys = self.neighbour_keys(brick.key)
        hit = np.flatnonzero(keys == int(neighbour))
        if not len(hit):
            return None
        _, _, level, ijk = self._locate(brick.key)
        pad_lo = [int(i > 0) for i in ijk]
        shape = tuple(s.stop - s.start for s in brick.region)
        dst, srcs = _slab(_OFFSETS_PY[int(hit[0])], pad_lo, shape)
        return dst, nb[srcs]

    # -- lifetime -------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the workers (running loads finish) and drop pending requests."""
        self.scheduler.close()
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.shutdown(wait=True, cancel_futures=True)
        self._job = None

    def __enter__(self) -> VolumeStreamer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
