"""The ``VolumeSource`` protocol: a lazy, multiscale, chunked volume.

Every volume in vrscope (an OME-Zarr store on disk or over HTTP, an array in
memory, a procedurally generated test volume) is seen through this protocol.
Reading metadata never reads pixels; ``read(level, region)`` reads only the
chunks the region touches.

Conventions
-----------
- ``axes`` are lower-case NGFF axis names in array order, a subsequence of
  ``("t", "c", "z", "y", "x")``; spatial axes are always the last three.
- ``Level.scale`` holds the physical size of one voxel per axis: micrometres
  for space axes (converted from the store's unit), seconds for time, 1 for
  channels. ``Level.translation`` likewise (µm for space).
- Level 0 is the finest. Each level's ``path`` is what the store calls it
  (``"s0"``, ``"0"``, ...); never assume a naming scheme.

To add a source, implement the protocol and add it to the shared conformance
tests in ``tests/analysis/io/test_volume_conformance.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from analysis.errors import ChunkError, ParameterError

__all__ = [
    "ArrayVolumeSource",
    "FunctionVolumeSource",
    "Level",
    "Region",
    "SourceMetadata",
    "VolumeSource",
    "normalize_region",
    "read_many",
]

Region = tuple[slice, ...]


@dataclass(frozen=True)
class Level:
    """One resolution level of a multiscale volume."""

    path: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    scale: tuple[float, ...]
    translation: tuple[float, ...]

    @property
    def scale_um(self) -> tuple[float, float, float]:
        """Voxel size of the three spatial axes (z, y, x) in µm."""
        z, y, x = self.scale[-3:]
        return (z, y, x)


@runtime_checkable
class VolumeSource(Protocol):
    """A lazy multiscale volume. See the module docstring for conventions."""

    @property
    def name(self) -> str: ...

    @property
    def axes(self) -> tuple[str, ...]: ...

    @property
    def dtype(self) -> np.dtype[np.generic]: ...

    @property
    def levels(self) -> tuple[Level, ...]: ...

    def read(self, level: int, region: Region | None = None) -> npt.NDArray[np.generic]:
        """Read ``region`` (slices per axis, in that level's voxels) of ``level``."""
        ...


def normalize_region(region: Region | None, shape: Sequence[int]) -> tuple[slice, ...]:
    """Turn ``region`` into one clipped, step-1 slice per axis.

    Raises :class:`ParameterError` for a wrong number of axes or a step other than 1.
    """
    if region is None:
        region = ()
    if len(region) > len(shape):
        raise ParameterError(f"region has {len(region)} axes but the volume has {len(shape)}")
    out = []
    for axis, size in enumerate(shape):
        sl = region[axis] if axis < len(region) else slice(None)
        if not isinstance(sl, slice):
            raise ParameterError(f"region axis {axis} must be a slice, got {sl!r}")
        start, stop, step = sl.indices(size)
        if step != 1:
            raise ParameterError(f"region axis {axis} has step {step}; only step 1 is supported")
        out.append(slice(start, max(start, stop)))
    return tuple(out)


def read_many(
    source: VolumeSource, requests: Sequence[tuple[int, Region | None]]
) -> list[npt.NDArray[np.generic] | ChunkError]:
    """``source.read(level, region)`` for each request, batched when the source can.

    Sources with a ``read_many`` method (``ZarrVolumeSource``: whole chunks fetched
    concurrently and decoded without zarr's per-call overhead) get the whole list;
    others are read one by one. A chunk that cannot be read gives its
    :class:`~analysis.errors.ChunkError` in the list instead of an array, so one bad
    chunk does not lose the others; other errors (a bad level or region) raise.
    """
    many = getattr(source, "read_many", None)
    if callable(many):
        return list(many(requests))
    out: list[npt.NDArray[np.generic] | ChunkError] = []
    for level, region in requests:
        try:
            out.append(source.read(level, region))
        except ChunkError as exc:
            out.append(exc)
    return out


def _level_for(levels: tuple[Level, ...], level: int) -> Level:
    if not 0 <= level < len(levels):
        raise ParameterError(f"level {level} does not exist (the volume has {len(levels)})")
    return levels[level]


class SourceMetadata:
    """The metadata half of :class:`VolumeSource`, read from attributes set in ``__init__``.

    Subclasses set ``_name``, ``_dtype`` and ``_levels`` (and ``_axes`` when not
    z, y, x) and implement ``read``.
    """

    _name: str
    _dtype: np.dtype[np.generic]
    _levels: tuple[Level, ...]
    _axes: tuple[str, ...] = ("z", "y", "x")

    @property
    def name(self) -> str:
        return self._name

    @property
    def axes(self) -> tuple[str, ...]:
        return self._axes

    @property
    def dtype(self) -> np.dtype[np.generic]:
        return self._dtype

    @property
    def levels(self) -> tuple[Level, ...]:
        return self._levels


class ArrayVolumeSource(SourceMetadata):
    """A ``VolumeSource`` over in-memory arrays (one per level, finest first).

    Parameters
    ----------
    data : array or sequence of arrays
        Level 0, or all levels finest first. Levels after the first are used as given.
    scale_um : (3,) floats, default: (1, 1, 1)
        Voxel size (z, y, x) of level 0 in µm. Coarser levels get the scale
        multiplied by the shape ratio.
    axes : str, default: last ``ndim`` of ``"tczyx"``
    name : str, default: ``"array"``
    """

    def __init__(
        self,
        data: npt.ArrayLike | Sequence[npt.ArrayLike],
        scale_um: Sequence[float] = (1.0, 1.0, 1.0),
        axes: str | None = None,
        name: str = "array",
        chunks: Sequence[int] | None = None,
    ) -> None:
        arrays: list[npt.NDArray[np.generic]]
        if isinstance(data, (list, tuple)):
            arrays = [np.asarray(a) for a in data]
        else:
            arrays = [np.asarray(data)]
        if not arrays or arrays[0].ndim < 3:
            raise ParameterError("an ArrayVolumeSource needs at least a 3D (z, y, x) array")
        ndim = arrays[0].ndim
        if axes is None:
            axes = "tczyx"[-ndim:]
        if len(axes) != ndim:
            raise ParameterError(f"axes {axes!r} do not match an array with {ndim} dimensions")
        if len(scale_um) != 3 or any(float(s) <= 0 for s in scale_um):
            raise ParameterError(f"scale_um must be three positive numbers, got {scale_um!r}")
        self._arrays = arrays
        self._dtype = arrays[0].dtype
        self._name = name
        self._axes = tuple(axes)
        base = [1.0] * (ndim - 3) + [float(s) for s in scale_um]
        shape0 = arrays[0].shape
        levels = []
        for i, arr in enumerate(arrays):
            factor = [s0 / s for s0, s in zip(shape0, arr.shape, strict=True)]
            scale = tuple(
                b * f if ax in "zyx" else b for b, f, ax in zip(base, factor, axes, strict=True)
            )
            ch = tuple(chunks) if chunks is not None else arr.shape
            ch = tuple(min(c, s) for c, s in zip(ch, arr.shape, strict=True))
            levels.append(Level(str(i), tuple(arr.shape), ch, scale, (0.0,) * ndim))
        self._levels = tuple(levels)

    def read(self, level: int, region: Region | None = None) -> npt.NDArray[np.generic]:
        lev = _level_for(self._levels, level)
        return np.array(self._arrays[level][normalize_region(region, lev.shape)])


class FunctionVolumeSource(SourceMetadata):
    """A procedural ``VolumeSource``: voxels come from ``fn(level, region)`` on demand.

    Used to test sizes far beyond RAM and disk. ``fn`` must return an array of
    the region's shape and ``dtype``; levels halve every spatial axis.

    Parameters
    ----------
    shape : (z, y, x) ints
    fn : callable ``(level, region) -> array``
    dtype : numpy dtype, default: uint8
    chunks : (z, y, x) ints, default: (64, 64, 64)
    scale_um : (3,) floats, default: (1, 1, 1)
    n_levels : int, default: as many as keep every axis >= one chunk
    """

    def __init__(
        self,
        shape: Sequence[int],
        fn: Callable[[int, Region], npt.NDArray[np.generic]],
        dtype: npt.DTypeLike = np.uint8,
        chunks: Sequence[int] = (64, 64, 64),
        scale_um: Sequence[float] = (1.0, 1.0, 1.0),
        n_levels: int | None = None,
        name: str = "procedural",
    ) -> None:
        if len(shape) != 3 or len(chunks) != 3:
            raise ParameterError("FunctionVolumeSource needs a 3D shape and 3D chunks")
        if n_levels is None:
            n_levels = 1
            while all((s >> n_levels) >= c for s, c in zip(shape, chunks, strict=True)):
                n_levels += 1
        levels = []
        for i in range(n_levels):
            shp = tuple(max(1, -(-int(s) // 2**i)) for s in shape)
            ch = tuple(min(int(c), s) for c, s in zip(chunks, shp, strict=True))
            scale = tuple(float(s) * 2**i for s in scale_um)
            trans = tuple(float(s) * (2**i - 1) / 2 for s in scale_um)
            levels.append(Level(f"s{i}", shp, ch, scale, trans))
        self._levels = tuple(levels)
        self._fn = fn
        self._dtype = np.dtype(dtype)
        self._name = name

    def read(self, level: int, region: Region | None = None) -> npt.NDArray[np.generic]:
        lev = _level_for(self._levels, level)
        reg = normalize_region(region, lev.shape)
        out = np.asarray(self._fn(level, reg), dtype=self._dtype)
        expected = tuple(s.stop - s.start for s in reg)
        if out.shape != expected:
            raise ParameterError(
                f"procedural function returned shape {out.shape}, expected {expected}"
            )
        return out
