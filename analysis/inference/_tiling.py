"""Smooth tiled inference on a ``VolumeSource`` (or array) of any size.

The volume is covered by a regular grid of overlapping tiles. Each tile is read
with ``halo`` voxels of context on every side (mirrored at the volume border),
run through the model in batches, and only its core (the tile less the halo)
is kept, weighted by a Gaussian window that favours the core's centre (the
window of nnU-Net, sigma = 1/8 of the core; Isensee et al. 2021). Because the
grid is the product of one 1D grid per axis and the window is separable, the
sum of weights at a voxel is the product of three 1D sums: every tile's
contribution is normalised as soon as it is computed and added into ``out``.
Working memory is therefore a batch of tiles, whatever the volume size; ``out``
may be a NumPy array, a memory map or a zarr array.

A 2D model runs plane by plane (z tiles of size 1 without halo or blending).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.errors import ParameterError
from analysis.inference._runtime import ModelSpec, Predictor, Step
from analysis.volume import VolumeSource

__all__ = [
    "AxisPlan",
    "InputVolume",
    "TilePlan",
    "Normalizer",
    "as_input",
    "blend_window",
    "labels_from_probabilities",
    "plan_tiles",
    "predict_tiled",
    "predict_untiled",
    "run_tile_batch",
    "block_moments",
    "merge_moments",
    "moment_blocks",
    "tile_contribution",
    "tile_core",
    "tile_input_region",
    "valid_size",
    "volume_stat_steps",
]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]

# Statistics are streamed over z-blocks of about this many voxels.
_STATS_BLOCK_VOXELS = 1 << 24
# Percentiles need all values at once: use the finest level at most this large.
_PERCENTILE_MAX_VOXELS = 1 << 26
# Window floor: keeps the border voxels of the volume (covered by one tile
# edge only) well defined while giving them no say where other tiles overlap.
_WINDOW_FLOOR = 1e-4


class InputVolume:
    """A (C, Z, Y, X) view of an array or a ``VolumeSource`` (level 0) that reads regions.

    Arrays: (Y, X), (Z, Y, X) or (C, Z, Y, X); a dask, zarr or h5py array (anything
    with ``shape``, ``dtype`` and slicing) is read one tile at a time, so a dask
    graph is computed lazily per tile. Sources: axes ``zyx`` or ``czyx``, with an
    optional ``t`` axis of size 1.
    """

    def __init__(self, data: npt.ArrayLike | VolumeSource) -> None:
        if isinstance(data, VolumeSource):
            self._source: VolumeSource | None = data
            self._array: npt.NDArray[Any] | None = None
            axes = "".join(data.axes)
            shape = data.levels[0].shape
            if "t" in axes:
                if shape[axes.index("t")] != 1:
                    raise ParameterError(
                        f"volume {data.name!r} has {shape[axes.index('t')]} time points; "
                        "select one before inference"
                    )
            if axes.replace("t", "") not in ("zyx", "czyx"):
                raise ParameterError(f"volume {data.name!r} has axes {axes!r}; need zyx or czyx")
            self._axes = axes
            c = shape[axes.index("c")] if "c" in axes else 1
            self.shape: tuple[int, int, int, int] = (c, *shape[-3:])  # type: ignore[assignment]
            self.name = data.name
        else:
            # Lazy arrays (dask, zarr, h5py, memory maps) are indexed tile by tile and
            # never loaded whole; anything else becomes a NumPy array.
            lazy = all(hasattr(data, a) for a in ("shape", "dtype", "__getitem__"))
            arr = data if lazy else np.asarray(data)
            ndim = len(arr.shape)  # type: ignore[union-attr]
            if ndim not in (2, 3, 4):
                raise ParameterError(
                    "input array must be (Y, X), (Z, Y, X) or (C, Z, Y, X), "
                    f"got shape {tuple(arr.shape)}"  # type: ignore[union-attr]
                )
            self._source = None
            self._array = arr  # type: ignore[assignment]
            self._missing = 4 - ndim  # leading axes (c, then z) the array lacks
            shape4 = (1,) * self._missing + tuple(int(n) for n in arr.shape)  # type: ignore[union-attr]
            self._axes = "czyx"
            self.shape = (shape4[0], shape4[1], shape4[2], shape4[3])
            self.name = type(data).__name__ if lazy else "array"
        if min(self.shape) < 1:
            raise ParameterError(f"input {self.name!r} is empty: shape {self.shape}")

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        return (self.shape[1], self.shape[2], self.shape[3])

    def read(self, region: Sequence[slice]) -> FloatArray:
        """Read a (z, y, x) region (inside the volume) as float32 (C, z, y, x)."""
        if self._array is not None:
            key = (slice(None), *region)[self._missing :]
            block = np.asarray(self._array[key], dtype=np.float32)
            return block.reshape((1,) * self._missing + block.shape)
        assert self._source is not None
        full: list[slice] = []
        for ax in self._axes:
            if ax in "zyx":
                full.append(region["zyx".index(ax)])
            else:
                full.append(slice(None))
        block = np.asarray(self._source.read(0, tuple(full)), dtype=np.float32)
        if "t" in self._axes:
            block = block[0]
        if "c" not in self._axes:
            block = block[None]
        return block

    def read_padded(self, starts: Sequence[int], stops: Sequence[int]) -> FloatArray:
        """Read [start, stop) per spatial axis; parts outside the volume are mirrored."""
        inner = []
        pads = [(0, 0)]
        for a, b, n in zip(starts, stops, self.spatial_shape, strict=True):
            lo, hi = max(a, 0), min(b, n)
            if lo >= hi:  # the region lies beyond the volume: read the nearest voxel
                lo, hi = (0, 1) if b <= 0 else (n - 1, n)
            inner.append(slice(lo, hi))
            pads.append((lo - a, b - hi))
        block = self.read(inner)
        if any(p != (0, 0) for p in pads):
            block = np.pad(block, pads, mode="reflect")  # scipy.ndimage mode "mirror"
        return block


def as_input(data: npt.ArrayLike | VolumeSource | InputVolume) -> InputVolume:
    """Wrap ``data`` as an :class:`InputVolume` (a no-op for one)."""
    return data if isinstance(data, InputVolume) else InputVolume(data)


# ----------------------------------------------------------------------------- normalisation


def _axes_of(step: Step) -> set[str] | None:
    axes = step.kwargs.get("axes")
    if axes is None:
        return None
    if isinstance(axes, str):  # bioimage.io 0.4 writes "xy"
        return set(axes)
    return {str(a) for a in axes}


def _stats_scope(step: Step, dims: int) -> str:
    """'plane' when a 2D model normalises each plane on its own, else 'volume'."""
    axes = _axes_of(step)
    if dims == 2 and axes is not None and "z" not in axes:
        return "plane"
    return "volume"


def moment_blocks(inp: InputVolume, zs: range | None = None) -> list[range]:
    """The z-blocks over which whole-volume mean and std are streamed (about
    :data:`_STATS_BLOCK_VOXELS` voxels each); :func:`block_moments` of each, merged in
    this order by :func:`merge_moments`, gives the statistics :class:`Normalizer` uses."""
    c, nz, ny, nx = inp.shape
    zs = range(nz) if zs is None else zs
    nz_block = max(1, _STATS_BLOCK_VOXELS // max(1, ny * nx * c))
    return [range(z0, min(z0 + nz_block, zs.stop)) for z0 in range(zs.start, zs.stop, nz_block)]


def block_moments(
    block: FloatArray, per_channel: bool
) -> tuple[int, npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Count, mean and sum of squared deviations of a (C, z, y, x) block (per channel or all)."""
    c = block.shape[0]
    vals = block.reshape(c, -1).astype(np.float64)
    if not per_channel:
        vals = vals.reshape(1, -1)
    mean_b = vals.mean(axis=1)
    m2_b = ((vals - mean_b[:, None]) ** 2).sum(axis=1)
    return int(vals.shape[1]), mean_b, m2_b


def merge_moments(
    parts: Sequence[tuple[int, npt.NDArray[np.float64], npt.NDArray[np.float64]]],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Mean and (population) std from :func:`block_moments` of consecutive blocks.

    Blocks are merged in order with Chan et al.'s pairwise update, which stays accurate
    where summing squares in one pass would cancel. The same parts in the same order give
    the same numbers bit for bit, wherever they were computed.
    """
    groups = parts[0][1].shape[0]
    count = np.zeros(groups)
    mean = np.zeros(groups)
    m2 = np.zeros(groups)
    for n_b, mean_b, m2_b in parts:
        delta = mean_b - mean
        total = count + n_b
        mean = mean + delta * n_b / total
        m2 = m2 + m2_b + delta**2 * count * n_b / total
        count = total
    return mean, np.sqrt(m2 / count)


def _blockwise_mean_std(
    inp: InputVolume, zs: range, per_channel: bool
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Exact mean and (population) std streamed over z-blocks."""
    parts = [
        block_moments(inp.read((slice(r.start, r.stop), slice(None), slice(None))), per_channel)
        for r in moment_blocks(inp, zs)
    ]
    return merge_moments(parts)


def volume_stat_steps(steps: Sequence[Step], dims: int) -> list[int]:
    """Indices of the pre-processing steps that need whole-volume statistics."""
    return [
        i
        for i, step in enumerate(steps)
        if step.id in ("zero_mean_unit_variance", "scale_range")
        and _stats_scope(step, dims) == "volume"
    ]


class Normalizer:
    """Applies a model's pre-processing to tiles with whole-volume statistics.

    Statistics are computed once, on creation (streamed over the volume), or
    per plane on first use for a 2D model normalised over ``x, y`` only.
    """

    def __init__(
        self,
        steps: Sequence[Step],
        inp: InputVolume,
        dims: int,
        *,
        stats: Mapping[int, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] | None = None,
    ) -> None:
        self.steps = tuple(steps)
        self.inp = inp
        self.dims = dims
        self._volume_stats: dict[int, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = {}
        self._plane_stats: dict[tuple[int, int], tuple[Any, Any]] = {}
        # ``stats`` (whole-volume statistics per step index, computed elsewhere: a
        # distributed reduction) skips the pass over the volume.
        given = dict(stats or {})
        for i in self.volume_steps():
            self._volume_stats[i] = (
                given[i] if i in given else self.stats(self.steps[i], range(inp.shape[1]))
            )

    def volume_steps(self) -> list[int]:
        """Indices of the steps normalised with whole-volume statistics."""
        return volume_stat_steps(self.steps, self.dims)

    def per_channel(self, step: Step) -> bool:
        """Whether ``step``'s statistics are taken per channel (else over all channels)."""
        axes = _axes_of(step)
        return axes is None or not ({"c", "channel"} & axes)

    def stats(
        self, step: Step, zs: range
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The statistics of ``step`` over planes ``zs``: (mean, std) or (low, high)
        percentiles."""
        per_channel = self.per_channel(step)
        if step.id == "zero_mean_unit_variance":
            return _blockwise_mean_std(self.inp, zs, per_channel)
        lo_p = float(step.kwargs.get("min_percentile", 0.0))
        hi_p = float(step.kwargs.get("max_percentile", 100.0))
        vals = self._percentile_sample(zs)
        c = vals.shape[0]
        flat = vals.reshape(c, -1) if per_channel else vals.reshape(1, -1)
        lo = np.percentile(flat, lo_p, axis=1).astype(np.float64)
        hi = np.percentile(flat, hi_p, axis=1).astype(np.float64)
        return lo, hi

    def _percentile_sample(self, zs: range) -> FloatArray:
        c, _, ny, nx = self.inp.shape
        n = c * len(zs) * ny * nx
        if n <= _PERCENTILE_MAX_VOXELS:
            return self.inp.read((slice(zs.start, zs.stop), slice(None), slice(None)))
        # Too large for exact percentiles in memory: a regular subsample estimates them.
        step = math.ceil((n / _PERCENTILE_MAX_VOXELS) ** (1 / 3))
        log.info("percentiles estimated on every %d-th voxel per axis", step)
        parts = [
            self.inp.read((slice(z, z + 1), slice(None), slice(None)))[:, :, ::step, ::step]
            for z in range(zs.start, zs.stop, step)
        ]
        return np.concatenate(parts, axis=1)

    def __call__(self, tile: FloatArray, z0: int) -> FloatArray:
        """Normalise ``tile`` (C, z, y, x); ``z0`` is its first plane (for per-plane stats)."""
        out = tile.astype(np.float32, copy=True)
        c = out.shape[0]
        for i, step in enumerate(self.steps):
            kw = step.kwargs
            eps = float(kw.get("eps", 1e-6))
            if step.id in ("zero_mean_unit_variance", "scale_range"):
                if i in self._volume_stats:
                    a, b = self._volume_stats[i]
                    a_full = np.broadcast_to(a.reshape(-1, 1, 1, 1), (c, 1, 1, 1))
                    b_full = np.broadcast_to(b.reshape(-1, 1, 1, 1), (c, 1, 1, 1))
                else:
                    a_list, b_list = [], []
                    for z in range(z0, z0 + out.shape[1]):
                        if (i, z) not in self._plane_stats:
                            self._plane_stats[(i, z)] = self.stats(step, range(z, z + 1))
                        pa, pb = self._plane_stats[(i, z)]
                        a_list.append(np.broadcast_to(pa.reshape(-1, 1), (c, 1)))
                        b_list.append(np.broadcast_to(pb.reshape(-1, 1), (c, 1)))
                    a_full = np.stack(a_list, axis=1)[..., None]
                    b_full = np.stack(b_list, axis=1)[..., None]
                if step.id == "zero_mean_unit_variance":
                    out = ((out - a_full) / (b_full + eps)).astype(np.float32)
                else:
                    out = ((out - a_full) / (b_full - a_full + eps)).astype(np.float32)
            elif step.id == "fixed_zero_mean_unit_variance":
                mean = np.asarray(kw.get("mean", 0.0), dtype=np.float64).reshape(-1, 1, 1, 1)
                std = np.asarray(kw.get("std", 1.0), dtype=np.float64).reshape(-1, 1, 1, 1)
                out = ((out - mean) / (std + eps)).astype(np.float32)
            elif step.id == "scale_linear":
                gain = np.asarray(kw.get("gain", 1.0), dtype=np.float64).reshape(-1, 1, 1, 1)
                offset = np.asarray(kw.get("offset", 0.0), dtype=np.float64).reshape(-1, 1, 1, 1)
                out = (out * gain + offset).astype(np.float32)
            elif step.id == "clip":
                out = np.clip(out, kw.get("min", None), kw.get("max", None)).astype(np.float32)
            elif step.id == "binarize":
                out = (out > float(kw.get("threshold", 0.5))).astype(np.float32)
            elif step.id == "sigmoid":
                out = (1.0 / (1.0 + np.exp(-out))).astype(np.float32)
        return out


# ----------------------------------------------------------------------------- tile plan


def blend_window(size: int) -> npt.NDArray[np.float64]:
    """1D Gaussian window over a tile core of ``size`` voxels (sigma = size / 8, max 1)."""
    centre = (size - 1) / 2.0
    sigma = max(size / 8.0, 1e-6)
    w = np.exp(-0.5 * ((np.arange(size) - centre) / sigma) ** 2)
    out: npt.NDArray[np.float64] = np.maximum(w / w.max(), _WINDOW_FLOOR)
    return out


@dataclass(frozen=True)
class AxisPlan:
    """Tiles along one axis: input size ``tile``, core starts, and per-tile core weights."""

    length: int
    tile: int
    halo: int
    core: int
    starts: tuple[int, ...]
    weight_sum: npt.NDArray[np.float64]

    def core_weights(self, i: int) -> npt.NDArray[np.float64]:
        """Normalised blending weights over the core of tile ``i`` (they sum to 1 over tiles)."""
        s = self.starts[i]
        n = min(self.core, self.length - s)
        w = blend_window(self.core)[:n]
        out: npt.NDArray[np.float64] = w / self.weight_sum[s : s + n]
        return out


def valid_size(n: int, spec: ModelSpec) -> int:
    """The smallest input size >= ``n`` that the model accepts (``min_tile + k * tile_multiple``)."""
    if n <= spec.min_tile:
        return spec.min_tile
    return spec.min_tile + math.ceil((n - spec.min_tile) / spec.tile_multiple) * spec.tile_multiple


def _axis_plan(length: int, tile: int, halo: int, overlap: int, spec: ModelSpec | None) -> AxisPlan:
    core = tile - 2 * halo
    if core < 1:
        raise ParameterError(f"tile {tile} leaves no core inside a halo of {halo} on each side")
    if length <= core:
        if spec is not None and spec.fixed_tile is None:
            # One tile covers the axis: shrink it to what the model accepts.
            tile = valid_size(length + 2 * halo, spec)
        core = length
        starts: tuple[int, ...] = (0,)
    else:
        if not 0 <= overlap < core:
            raise ParameterError(
                f"overlap {overlap} must be in [0, {core}) for a tile core of {core}"
            )
        stride = core - overlap
        n = math.ceil((length - core) / stride) + 1
        starts = tuple(int(round(s)) for s in np.linspace(0, length - core, n))
    weight_sum = np.zeros(length)
    win = blend_window(core)
    for s in starts:
        n_core = min(core, length - s)
        weight_sum[s : s + n_core] += win[:n_core]
    return AxisPlan(length, tile, halo, core, starts, weight_sum)


@dataclass(frozen=True)
class TilePlan:
    """The tile grid over (z, y, x): one :class:`AxisPlan` per axis."""

    axes: tuple[AxisPlan, AxisPlan, AxisPlan]
    dims: int

    @property
    def n_tiles(self) -> int:
        return math.prod(len(a.starts) for a in self.axes)

    @property
    def tile_shape(self) -> tuple[int, ...]:
        """Spatial shape of one model input (2 or 3 axes)."""
        return tuple(a.tile for a in self.axes[3 - self.dims :])

    def tiles(self) -> Iterator[tuple[int, int, int]]:
        """Tile indices (iz, iy, ix) in raster order."""
        z, y, x = (range(len(a.starts)) for a in self.axes)
        yield from itertools.product(z, y, x)


def _per_axis(value: int | Sequence[int] | None, dims: int, name: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    vals = (
        (int(value),) * dims
        if isinstance(value, (int, np.integer))
        else tuple(int(v) for v in value)
    )
    if len(vals) != dims:
        raise ParameterError(f"{name} needs {dims} values for a {dims}D model, got {len(vals)}")
    if any(v < 0 for v in vals):
        raise ParameterError(f"{name} must not be negative, got {vals}")
    return vals


def plan_tiles(
    shape_zyx: Sequence[int],
    spec: ModelSpec,
    tile: int | Sequence[int] | None = None,
    overlap: int | Sequence[int] | None = None,
    halo: int | Sequence[int] | None = None,
) -> TilePlan:
    """Plan the tile grid for a volume of ``shape_zyx`` and a model.

    Parameters
    ----------
    shape_zyx : (3,) ints
    spec : ModelSpec
    tile : int or (dims,) ints, default: the model's fixed or default tile, else 256 (2D) / 64 (3D)
        Model input size per spatial axis (core + 2 * halo); a multiple of ``spec.tile_multiple``.
    overlap : int or (dims,) ints, default: a quarter of the core
        Overlap between neighbouring tile cores, in voxels.
    halo : int or (dims,) ints, default: the model's halo, at most an eighth of the tile
        (0 along an axis that fits in one tile)
        Context voxels read around each core and discarded after prediction.
    """
    d = spec.dims
    tiles = _per_axis(tile, d, "tile")
    if tiles is None:
        if spec.fixed_tile is not None:
            tiles = spec.fixed_tile
        elif spec.default_tile is not None:
            tiles = spec.default_tile
        else:
            tiles = (256,) * 2 if d == 2 else (64,) * 3
    if spec.fixed_tile is not None and tuple(tiles) != tuple(spec.fixed_tile):
        raise ParameterError(
            f"model {spec.name!r} accepts only tiles of {spec.fixed_tile}, not {tiles}"
        )
    for t in tiles:
        if valid_size(t, spec) != t:
            raise ParameterError(
                f"tile size {t} is not accepted by model {spec.name!r}: use "
                f"{spec.min_tile} + a multiple of {spec.tile_multiple}"
            )
    halos = _per_axis(halo, d, "halo")
    if halos is None:
        # An axis that fits in one tile needs no context from beyond the volume:
        # the tile then sees exactly what an untiled run sees.
        lengths = shape_zyx[3 - d :]
        halos = tuple(
            0 if n <= t else min(spec.halo, t // 8) for n, t in zip(lengths, tiles, strict=True)
        )
    overlaps = _per_axis(overlap, d, "overlap")
    if overlaps is None:
        overlaps = tuple(max(0, (t - 2 * h) // 4) for t, h in zip(tiles, halos, strict=True))
    plans: list[AxisPlan] = []
    if d == 2:
        plans.append(_axis_plan(shape_zyx[0], 1, 0, 0, None))
    for axis in range(d):
        length = shape_zyx[3 - d + axis]
        plans.append(_axis_plan(length, tiles[axis], halos[axis], overlaps[axis], spec))
    return TilePlan((plans[0], plans[1], plans[2]), d)


# ----------------------------------------------------------------------------- prediction


def _check_input(inp: InputVolume, spec: ModelSpec) -> None:
    if inp.shape[0] != spec.in_channels:
        raise ParameterError(
            f"model {spec.name!r} needs {spec.in_channels} input channel(s); "
            f"input {inp.name!r} has {inp.shape[0]}"
        )


def run_tile_batch(
    predictor: Predictor,
    tiles: list[FloatArray],
    dims: int,
) -> FloatArray:
    """The model's (B, K, z, y, x) output for normalised (C, z, y, x) tiles (a 2D model's
    tiles are one plane thick)."""
    batch = np.stack(tiles)  # (B, C, z, y, x)
    if dims == 2:
        batch = batch[:, :, 0]
    out = predictor(batch)
    if dims == 2:
        out = out[:, :, None]
    return out


def tile_input_region(plan: TilePlan, idx: tuple[int, int, int]) -> tuple[list[int], list[int]]:
    """(starts, stops) of tile ``idx``'s model input (core and halo; may reach outside
    the volume, where :meth:`InputVolume.read_padded` mirrors)."""
    starts, stops = [], []
    for a, i in zip(plan.axes, idx, strict=True):
        s = a.starts[i] - a.halo
        starts.append(s)
        stops.append(s + a.tile)
    return starts, stops


def tile_core(plan: TilePlan, idx: tuple[int, int, int]) -> tuple[slice, slice, slice]:
    """The (z, y, x) region of the volume that tile ``idx``'s core covers."""
    z, y, x = (
        slice(a.starts[i], min(a.starts[i] + a.core, a.length))
        for a, i in zip(plan.axes, idx, strict=True)
    )
    return z, y, x


def tile_contribution(
    plan: TilePlan, probs: FloatArray, idx: tuple[int, int, int]
) -> tuple[tuple[slice, slice, slice], FloatArray]:
    """Tile ``idx``'s weighted share of the blended result.

    Parameters
    ----------
    probs : (K, z, y, x) float32
        The model's output for the tile's input.

    Returns
    -------
    (core, contribution)
        The region of the volume it adds to, and the (K, *core) float32 values to add.
        The blended result is the float32 sum of the contributions of every tile, added
        in raster order (:meth:`TilePlan.tiles`) starting from zero.
    """
    crop, weights = [], []
    for a, i in zip(plan.axes, idx, strict=True):
        w = a.core_weights(i)
        crop.append(slice(a.halo, a.halo + w.size))
        weights.append(w)
    wz, wy, wx = weights
    weight = (wz[:, None, None] * wy[None, :, None] * wx[None, None, :]).astype(np.float32)
    contrib: FloatArray = probs[(slice(None), *crop)] * weight
    return tile_core(plan, idx), contrib


def predict_tiled(
    predictor: Predictor,
    data: npt.ArrayLike | VolumeSource | InputVolume,
    *,
    tile: int | Sequence[int] | None = None,
    overlap: int | Sequence[int] | None = None,
    halo: int | Sequence[int] | None = None,
    batch_size: int = 4,
    out: Any = None,
    progress: bool | Callable[[int], None] = False,
) -> Any:
    """Predict class probabilities for a whole volume with smoothly blended tiles.

    Parameters
    ----------
    predictor : Predictor
    data : (Y, X), (Z, Y, X) or (C, Z, Y, X) array, or VolumeSource (axes zyx / czyx)
    tile, overlap, halo : see :func:`plan_tiles`
    batch_size : int, default: 4
        Tiles per model call; working memory is about ``batch_size`` tiles.
    out : (K, Z, Y, X) float32 array-like, optional
        Where to accumulate; must hold zeros (a NumPy array, memory map or zarr
        array). Allocated in memory when omitted.
    progress : bool or callable, default: False
        True shows a tqdm bar; a callable is called with the number of tiles done.

    Returns
    -------
    out : (K, Z, Y, X) float32 array-like
        Probabilities per class (post-processing of the model applied).
    """
    spec = predictor.spec
    inp = as_input(data)
    _check_input(inp, spec)
    if batch_size < 1:
        raise ParameterError(f"batch_size must be >= 1, got {batch_size}")
    plan = plan_tiles(inp.spatial_shape, spec, tile, overlap, halo)
    norm = Normalizer(spec.preprocessing, inp, spec.dims)
    shape = (spec.n_classes, *inp.spatial_shape)
    if out is None:
        out = np.zeros(shape, dtype=np.float32)
    elif tuple(out.shape) != shape:
        raise ParameterError(f"out has shape {tuple(out.shape)}, expected {shape}")
    log.info(
        "tiled inference: %d tiles of %s (halo %s, cores %s) over %s",
        plan.n_tiles,
        plan.tile_shape,
        [a.halo for a in plan.axes],
        [a.core for a in plan.axes],
        inp.spatial_shape,
    )
    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=plan.n_tiles, desc="inference", unit="tile")

    pending_in: list[FloatArray] = []
    pending_idx: list[tuple[int, int, int]] = []
    done = 0

    def flush() -> None:
        nonlocal done
        if not pending_in:
            return
        probs = run_tile_batch(predictor, pending_in, spec.dims)
        for k, idx in enumerate(pending_idx):
            core, contrib = tile_contribution(plan, probs[k], idx)
            region = (slice(None), *core)
            out[region] = out[region] + contrib
        done += len(pending_idx)
        if bar is not None:
            bar.update(len(pending_idx))
        elif callable(progress):
            progress(done)
        pending_in.clear()
        pending_idx.clear()

    try:
        for idx in plan.tiles():
            starts, stops = tile_input_region(plan, idx)
            block = inp.read_padded(starts, stops)
            pending_in.append(norm(block, max(starts[0], 0)))
            pending_idx.append(idx)
            if len(pending_in) >= batch_size:
                flush()
        flush()
    finally:
        if bar is not None:
            bar.close()
    return out


def predict_untiled(
    predictor: Predictor,
    data: npt.ArrayLike | VolumeSource | InputVolume,
    *,
    halo: int = 0,
) -> FloatArray:
    """Predict the whole volume in one model call per plane (2D) or one call (3D).

    The input is mirrored by ``halo`` voxels on every side and then up to the
    model's size multiple, exactly as :func:`predict_tiled` does at the volume
    border; used as the reference for tiling and for small volumes.

    Returns
    -------
    probabilities : (K, Z, Y, X) float32
    """
    spec = predictor.spec
    inp = as_input(data)
    _check_input(inp, spec)
    norm = Normalizer(spec.preprocessing, inp, spec.dims)
    shape = inp.spatial_shape
    d = spec.dims
    starts, stops = [0] * 3, list(shape)
    for axis in range(3 - d, 3):
        n = shape[axis]
        size = (
            spec.fixed_tile[axis - (3 - d)] if spec.fixed_tile else valid_size(n + 2 * halo, spec)
        )
        if size < n + 2 * halo:
            raise ParameterError(
                f"model {spec.name!r} has a fixed input {spec.fixed_tile}; use tiles"
            )
        starts[axis] = -halo
        stops[axis] = -halo + size
    block = norm(inp.read_padded(starts, stops), 0)
    if d == 2:
        planes = [block[:, z : z + 1] for z in range(block.shape[1])]
        probs = run_tile_batch(predictor, planes, 2)[:, :, 0].transpose(1, 0, 2, 3)
    else:
        probs = run_tile_batch(predictor, [block], 3)[0]
    crop = (
        [slice(None), slice(0, shape[0])] if d == 2 else [slice(None), slice(halo, halo + shape[0])]
    )
    crop += [slice(halo, halo + shape[1]), slice(halo, halo + shape[2])]
    result: FloatArray = np.ascontiguousarray(probs[tuple(crop)], dtype=np.float32)
    return result


def labels_from_probabilities(
    probabilities: Any,
    *,
    threshold: float = 0.5,
    out: Any = None,
    block_planes: int = 16,
) -> Any:
    """Class labels from probabilities, block by block along z.

    Parameters
    ----------
    probabilities : (K, Z, Y, X) float array-like
    threshold : float, default: 0.5
        For one channel: label 1 where the probability exceeds it, else 0.
    out : (Z, Y, X) integer array-like, optional
    block_planes : int, default: 16

    Returns
    -------
    labels : (Z, Y, X) uint8 (uint16 for more than 255 classes)
        The most probable class index (0 is the first class).
    """
    k, nz, ny, nx = probabilities.shape
    dtype = np.uint8 if k <= 255 else np.uint16
    if out is None:
        out = np.zeros((nz, ny, nx), dtype=dtype)
    for z0 in range(0, nz, block_planes):
        p = np.asarray(probabilities[:, z0 : z0 + block_planes])
        lab = (p[0] > threshold) if k == 1 else np.argmax(p, axis=0)
        out[z0 : z0 + block_planes] = lab.astype(dtype)
    return out
