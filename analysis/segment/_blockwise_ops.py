"""Clean-up and splitting operators on a ``VolumeSource`` larger than memory.

Every operator here equals its whole-array counterpart in :mod:`analysis.segment`
(tests compare them voxel for voxel) and keeps one block, plus a table with one entry
per object, in memory. Three kinds of locality decide how a block is computed:

- **Local** (support of ``r`` voxels): opening/closing with a ball of half-size ``r``
  reads each block with a halo of ``2 r`` (erosion then dilation); thresholds are
  voxel-wise. :class:`BlockwiseSource` computes these lazily on read, so they chain
  into :func:`analysis.io.write_labels` without storing anything.
- **Global, one number per object**: remove-small-objects (object sizes) and
  fill-holes (is a background component connected to the volume border?) label the
  volume block-wise (:func:`label_blockwise`, union-find across faces), accumulate the
  per-object statistic over blocks with ``np.bincount``, and decide in a second pass.
  Exact for any block size.
- **Whole-object** (watershed splitting, region growing): a voxel's result depends on
  its whole connected component. Each block is read with a halo and the operator runs
  on the extended block. The result is exact when every component that has a voxel in
  the block lies inside the extended block with its one-voxel shell: **halo >= the
  largest component's extent** (bounding-box size per axis, in voxels; touching
  objects form one component). The distance transform alone would only need the
  largest inscribed radius (see :func:`analysis.distances.distance_map_blockwise`),
  but the flooding follows the whole component. Both operators check the condition
  on every block and raise :class:`ParameterError` naming the halo needed instead of
  returning a silently different result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi
from tqdm.auto import tqdm

from analysis._checks import check_spacing as _check_spacing
from analysis.errors import ParameterError
from analysis.segment._blockwise import WritableArray, _spatial, iter_blocks, label_blockwise
from analysis.segment._cleanup import _watershed_core as watershed_core
from analysis.segment._cleanup import (
    ball_footprint,
    binary_close,
    binary_open,
    label_close,
    label_open,
    region_grow,
)
from analysis.volume import Level, Region, SourceMetadata, VolumeSource, normalize_region

__all__ = [
    "BlockwiseSource",
    "close_blockwise",
    "fill_holes_blockwise",
    "open_blockwise",
    "region_grow_blockwise",
    "remove_small_objects_blockwise",
    "watershed_split_blockwise",
]

log = logging.getLogger(__name__)

Halo = Sequence[int]


def _halo(halo: Halo) -> tuple[int, int, int]:
    h = tuple(int(v) for v in halo)
    if len(h) != 3 or min(h) < 0:
        raise ParameterError(f"halo must be three non-negative ints, got {tuple(halo)}")
    return (h[0], h[1], h[2])


def _outer(
    block: Region, halo: tuple[int, int, int], shape: Sequence[int]
) -> tuple[slice, slice, slice]:
    z, y, x = (
        slice(max(0, b.start - h), min(int(s), b.stop + h))
        for b, h, s in zip(block, halo, shape, strict=True)
    )
    return (z, y, x)


def _inner(block: Region, outer: Region) -> tuple[slice, ...]:
    return tuple(
        slice(b.start - o.start, b.stop - o.start) for b, o in zip(block, outer, strict=True)
    )


class BlockwiseSource(SourceMetadata):
    """A lazy ``VolumeSource``: ``fn`` applied to ``source`` region by region, with a halo.

    ``read(0, region)`` reads ``region`` grown by ``halo`` (clipped at the volume's
    border), applies ``fn`` and returns the region's part. For a filter whose output at
    a voxel depends only on inputs within ``halo`` voxels, this equals ``fn`` on the
    whole array. Nothing is cached or stored: chain it into another block-wise operator
    or straight into :func:`analysis.io.write_labels` / :func:`analysis.io.write_ngff`.

    Parameters
    ----------
    source : VolumeSource
        3D (z, y, x).
    fn : callable ``(block) -> block``
        Shape-preserving; must return ``dtype`` values.
    halo : (3,) ints, default: (0, 0, 0)
    dtype : numpy dtype, default: the source's
    level : int, default: 0
        The source level this single-level source exposes.
    name : str, optional
    """

    def __init__(
        self,
        source: VolumeSource,
        fn: Callable[[npt.NDArray[Any]], npt.NDArray[Any]],
        *,
        halo: Halo = (0, 0, 0),
        dtype: npt.DTypeLike | None = None,
        level: int = 0,
        name: str | None = None,
    ) -> None:
        _spatial(source, level)
        self._source = source
        self._fn = fn
        self._halo = _halo(halo)
        self._level = level
        self._dtype = np.dtype(dtype) if dtype is not None else np.dtype(source.dtype)
        lev = source.levels[level]
        self._levels = (Level("0", lev.shape, lev.chunks, lev.scale, lev.translation),)
        self._name = name or f"{source.name}-filtered"

    def read(self, level: int, region: Region | None = None) -> npt.NDArray[np.generic]:
        if level != 0:
            raise ParameterError(f"a block-wise result has one level, not level {level}")
        shape = self._levels[0].shape
        reg = normalize_region(region, shape)
        outer = _outer(reg, self._halo, shape)
        data = self._source.read(self._level, outer)
        res = np.asarray(self._fn(data))
        if res.shape != data.shape:
            raise ParameterError(f"block function changed the shape {data.shape} -> {res.shape}")
        return np.asarray(res[_inner(reg, outer)], dtype=self._dtype)


def _morph_blockwise(
    source: VolumeSource,
    radius_um: float,
    op: str,
    labels: bool,
    spacing: Sequence[float] | None,
    level: int,
) -> BlockwiseSource:
    sp = _check_spacing(spacing if spacing is not None else source.levels[level].scale_um)
    fp = ball_footprint(radius_um, sp)
    # Erosion then dilation (or the reverse): each reaches half the footprint.
    halo = tuple(2 * (n // 2) for n in fp.shape)
    fn: Callable[[npt.NDArray[Any]], npt.NDArray[Any]]
    if labels:
        fn = partial(label_open if op == "open" else label_close, radius_um=radius_um, spacing=sp)
        dtype = source.dtype
    else:
        base = binary_open if op == "open" else binary_close

        def fn(block: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return base(block != 0, radius_um, sp)

        dtype = np.dtype(bool)
    return BlockwiseSource(source, fn, halo=halo, dtype=dtype, level=level, name=op)


def open_blockwise(
    source: VolumeSource,
    radius_um: float,
    *,
    labels: bool = False,
    spacing: Sequence[float] | None = None,
    level: int = 0,
) -> BlockwiseSource:
    """Lazy opening with a physical ball; equals :func:`binary_open` (or :func:`label_open`
    with ``labels=True``) on the whole array.

    The halo is twice the footprint's half-size per axis. Read it block by block, pass
    it on, or ``apply_blockwise(result, lambda b: b, out=...)`` to store it.

    Parameters
    ----------
    source : VolumeSource
        A mask (non-zero = foreground) or, with ``labels=True``, a label image.
    radius_um : float
    labels : bool, default: False
    spacing : (3,) floats, default: the level's voxel size
    level : int, default: 0
    """
    return _morph_blockwise(source, radius_um, "open", labels, spacing, level)


def close_blockwise(
    source: VolumeSource,
    radius_um: float,
    *,
    labels: bool = False,
    spacing: Sequence[float] | None = None,
    level: int = 0,
) -> BlockwiseSource:
    """Lazy closing; equals :func:`binary_close` (or :func:`label_close`) on the whole array.

    Parameters as :func:`open_blockwise`.
    """
    return _morph_blockwise(source, radius_um, "close", labels, spacing, level)


def _allocate(out: WritableArray | None, shape: tuple[int, ...], dtype: npt.DTypeLike) -> Any:
    if out is None:
        return np.zeros(shape, dtype=dtype)
    if tuple(out.shape) != tuple(shape):
        raise ParameterError(f"output shape {tuple(out.shape)} differs from volume shape {shape}")
    return out


def remove_small_objects_blockwise(
    source: VolumeSource,
    min_volume_um3: float,
    out: WritableArray | None = None,
    *,
    scratch: WritableArray | None = None,
    spacing: Sequence[float] | None = None,
    level: int = 0,
    block_shape: Sequence[int] | None = None,
    progress: bool = False,
) -> WritableArray:
    """Remove objects smaller than ``min_volume_um3``; equals
    :func:`remove_small_objects_um3` on the whole array.

    A bool source is a mask: its 26-connected components are labelled block-wise into
    ``scratch`` (:func:`label_blockwise`), sizes are summed over blocks with
    ``np.bincount``, and a second pass keeps the large ones. An integer source is a
    label image: sizes per label value, then the second pass.

    Parameters
    ----------
    source : VolumeSource
        bool mask or non-negative integer labels.
    min_volume_um3 : float
    out : writable array, optional
        Default: a NumPy array of the source's dtype.
    scratch : writable int64 array, optional
        Component labels of a mask (e.g. a :class:`analysis.io.ScratchVolume`); default
        a NumPy array.
    spacing : (3,) floats, default: the level's voxel size
    """
    shape, chunks = _spatial(source, level)
    sp = _check_spacing(spacing if spacing is not None else source.levels[level].scale_um)
    if not min_volume_um3 >= 0:
        raise ParameterError(f"min volume must be >= 0 µm³, got {min_volume_um3!r}")
    voxel_volume = float(np.prod(sp))
    blocks = list(iter_blocks(shape, tuple(block_shape) if block_shape else chunks))
    is_mask = np.dtype(source.dtype) == np.bool_
    if not (is_mask or np.issubdtype(source.dtype, np.integer)):
        raise ParameterError(f"labels must be integer or bool, got dtype {source.dtype}")
    if is_mask:
        lab_src: Any = _allocate(scratch, shape, np.int64)
        label_blockwise(
            source, lab_src, level=level, block_shape=block_shape, connectivity=3, progress=progress
        )

        def read_labels(block: Region) -> npt.NDArray[np.int64]:
            return np.asarray(lab_src[block], dtype=np.int64)
    else:

        def read_labels(block: Region) -> npt.NDArray[np.int64]:
            lab = np.asarray(source.read(level, block))
            if lab.size and lab.min() < 0:
                raise ParameterError("labels must be non-negative")
            return lab.astype(np.int64, copy=False)

    counts = np.zeros(1, dtype=np.int64)
    for block in tqdm(blocks, desc="object sizes", disable=not progress):
        c = np.bincount(read_labels(block).ravel())
        if c.size > counts.size:
            counts = np.pad(counts, (0, c.size - counts.size))
        counts[: c.size] += c
    keep = counts * voxel_volume >= min_volume_um3
    keep[0] = False
    result = _allocate(out, shape, source.dtype)
    for block in tqdm(blocks, desc="remove small", disable=not progress):
        lab = read_labels(block)
        if is_mask:
            result[block] = keep[lab]
        else:
            result[block] = np.where(keep[lab], lab, 0).astype(source.dtype)
    n_removed = int(np.count_nonzero(~keep[1:] & (counts[1:] > 0)))
    log.info("removed %d objects smaller than %g µm³", n_removed, min_volume_um3)
    return result  # type: ignore[no-any-return]


def fill_holes_blockwise(
    source: VolumeSource,
    out: WritableArray | None = None,
    *,
    scratch: WritableArray | None = None,
    level: int = 0,
    block_shape: Sequence[int] | None = None,
    progress: bool = False,
) -> WritableArray:
    """Fill enclosed holes of a mask; equals ``scipy.ndimage.binary_fill_holes``.

    A hole is a 6-connected background component that does not touch the volume's
    border, which only the whole volume can tell: the background is labelled
    block-wise into ``scratch``, the labels seen on the six border faces are collected
    block by block, and a second pass fills every other background component.

    Parameters
    ----------
    source : VolumeSource
        Non-zero = foreground. (Per-label filling of label images is
        :func:`fill_holes` on arrays only.)
    out : writable bool array, optional
    scratch : writable int64 array, optional
        Background component labels; default a NumPy array.
    """
    shape, chunks = _spatial(source, level)
    blocks = list(iter_blocks(shape, tuple(block_shape) if block_shape else chunks))
    background = BlockwiseSource(source, lambda b: b == 0, dtype=bool, level=level)
    bg: Any = _allocate(scratch, shape, np.int64)
    _, n = label_blockwise(
        background, bg, block_shape=block_shape, connectivity=1, progress=progress
    )
    touches = np.zeros(n + 1, dtype=bool)
    for block in blocks:
        for axis in range(3):
            for edge in (0, shape[axis] - 1):
                if block[axis].start <= edge < block[axis].stop:
                    face = list(block)
                    face[axis] = slice(edge, edge + 1)
                    touches[np.asarray(bg[tuple(face)], dtype=np.int64)] = True
    touches[0] = True  # label 0 = foreground: keep as is
    result = _allocate(out, shape, bool)
    for block in tqdm(blocks, desc="fill holes", disable=not progress):
        lab = np.asarray(bg[block], dtype=np.int64)
        result[block] = (lab == 0) | ~touches[lab]
    log.info("filled %d holes", int(np.count_nonzero(~touches)))
    return result  # type: ignore[no-any-return]


def _check_components(
    grow: npt.NDArray[np.bool_],
    outer: Region,
    block: Region,
    shape: Sequence[int],
    halo: tuple[int, int, int],
    what: str,
) -> npt.NDArray[np.int32]:
    """Label 6-connected components of an extended block; raise when one that reaches
    the block's interior also reaches a face of the extended block that is not the
    volume's border (it may continue outside, so the result could differ)."""
    comp, _ = ndi.label(grow)
    comp = np.asarray(comp, dtype=np.int32)
    truncated: set[int] = set()
    for axis in range(3):
        for side, at_border in ((0, outer[axis].start == 0), (-1, outer[axis].stop == shape[axis])):
            if at_border:
                continue
            face = [slice(None)] * 3
            face[axis] = slice(side, None) if side == -1 else slice(0, 1)
            truncated.update(np.unique(comp[tuple(face)]).tolist())
    truncated.discard(0)
    if truncated:
        inner_ids = np.unique(comp[_inner(block, outer)])
        if np.isin(inner_ids, list(truncated)).any():
            ext = np.array([s.stop - s.start for s in outer])
            raise ParameterError(
                f"{what}: a connected object in block "
                f"{tuple((s.start, s.stop) for s in block)} reaches beyond the halo "
                f"{halo}; use a halo at least the largest object's extent (voxels per axis), "
                f"extended block {tuple(int(e) for e in ext)}"
            )
    return comp


def watershed_split_blockwise(
    source: VolumeSource,
    halo: Halo,
    out: WritableArray | None = None,
    *,
    min_distance_um: float = 1.0,
    min_peak_um: float = 0.0,
    spacing: Sequence[float] | None = None,
    level: int = 0,
    block_shape: Sequence[int] | None = None,
    progress: bool = False,
) -> tuple[WritableArray, int]:
    """Split touching objects block by block; the same objects as :func:`watershed_split`.

    Each block is read with ``halo`` voxels per side; the distance transform, its peaks
    (markers) and the watershed run on the extended block and the block's interior is
    kept. **Exactness**: every connected component (6-connected, touching objects
    together) with a voxel in a block must lie inside the block grown by ``halo``; the
    function checks this on every block and raises :class:`ParameterError` otherwise.
    So ``halo`` must be at least the largest component's bounding-box size per axis.

    Markers get ids that every block agrees on (1 + the smallest linear index of the
    marker's voxels), so an object cut by block borders keeps one id; a final pass
    renumbers them ``1..n`` in the order of those indices.

    Parameters
    ----------
    source : VolumeSource
        Mask (non-zero = foreground).
    halo : (3,) ints
    out : writable 64-bit integer array, optional
        Default: an int64 NumPy array. Holds the raw ids before the renumbering pass.
    min_distance_um, min_peak_um : float
        As :func:`watershed_split`.
    spacing : (3,) floats, default: the level's voxel size

    Returns
    -------
    (out, n)
    """
    shape, chunks = _spatial(source, level)
    sp = _check_spacing(spacing if spacing is not None else source.levels[level].scale_um)
    h = _halo(halo)
    blocks = list(iter_blocks(shape, tuple(block_shape) if block_shape else chunks))
    result: Any = _allocate(out, shape, np.int64)
    dtype = np.dtype(getattr(result, "dtype", np.int64))
    if not (np.issubdtype(dtype, np.integer) and dtype.itemsize == 8):
        raise ParameterError(f"watershed output needs a 64-bit integer array, got {dtype}")
    ids: list[npt.NDArray[np.int64]] = []
    for block in tqdm(blocks, desc="watershed blocks", disable=not progress):
        outer = _outer(block, h, shape)
        mask = np.asarray(source.read(level, outer)) != 0
        comp = _check_components(mask, outer, block, shape, h, "watershed")
        local, markers = watershed_core(mask, sp, min_distance_um, min_peak_um, comp)
        n_markers = int(markers.max())
        if n_markers:
            coords = np.nonzero(markers)
            linear = np.ravel_multi_index(
                tuple(c + o.start for c, o in zip(coords, outer, strict=True)), shape
            )
            lut = np.full(n_markers + 1, np.iinfo(np.int64).max, dtype=np.int64)
            np.minimum.at(lut, markers[coords], linear)
            lut = lut + 1
            lut[0] = 0
            raw = lut[local[_inner(block, outer)]]
        else:
            raw = np.zeros(tuple(b.stop - b.start for b in block), np.int64)
        result[block] = raw
        ids.append(np.unique(raw[raw > 0]))
    uniq = np.unique(np.concatenate(ids)) if ids else np.zeros(0, np.int64)
    for block in tqdm(blocks, desc="renumber", disable=not progress):
        raw = np.asarray(result[block], dtype=np.int64)
        result[block] = np.where(raw > 0, np.searchsorted(uniq, raw) + 1, 0)
    return result, int(uniq.size)


def region_grow_blockwise(
    seeds: VolumeSource,
    mask: VolumeSource,
    halo: Halo,
    out: WritableArray | None = None,
    *,
    image: VolumeSource | None = None,
    spacing: Sequence[float] | None = None,
    level: int = 0,
    block_shape: Sequence[int] | None = None,
    progress: bool = False,
) -> WritableArray:
    """Grow seed labels into a mask block by block; equals :func:`region_grow`.

    **Exactness**: every connected component of ``mask | seeds`` with a voxel in a
    block must lie inside the block grown by ``halo`` (checked; halo >= the largest
    component's extent). Without an image the flooding order is the Euclidean distance
    to the nearest seed, which must be exact on those components too: checked as
    "each voxel's distance is below its distance to the extended block's faces" (then
    the nearest seed is inside); a halo of twice the largest seeded component's extent
    always passes.

    Parameters
    ----------
    seeds : VolumeSource
        Integer seed labels (global ids, kept).
    mask : VolumeSource
        Where regions may grow (non-zero).
    halo : (3,) ints
    out : writable array, optional
        Default: a NumPy array of the seeds' dtype.
    image : VolumeSource, optional
        Flood by intensity instead of distance (see :func:`region_grow`).
    spacing : (3,) floats, default: the seeds' voxel size
    """
    shape, chunks = _spatial(seeds, level)
    mshape, _ = _spatial(mask, level)
    if mshape != shape:
        raise ParameterError(f"mask shape {mshape} differs from seeds shape {shape}")
    if image is not None and _spatial(image, level)[0] != shape:
        raise ParameterError(f"image shape {_spatial(image, level)[0]} differs from {shape}")
    if not np.issubdtype(seeds.dtype, np.integer):
        raise ParameterError(f"seeds must be integer labels, got dtype {seeds.dtype}")
    sp = _check_spacing(spacing if spacing is not None else seeds.levels[level].scale_um)
    h = _halo(halo)
    blocks = list(iter_blocks(shape, tuple(block_shape) if block_shape else chunks))
    result: Any = _allocate(out, shape, seeds.dtype)
    for block in tqdm(blocks, desc="region grow blocks", disable=not progress):
        outer = _outer(block, h, shape)
        sd = np.asarray(seeds.read(level, outer))
        m = np.asarray(mask.read(level, outer)) != 0
        comp = _check_components(m | (sd > 0), outer, block, shape, h, "region growing")
        img = None if image is None else np.asarray(image.read(level, outer))
        if img is None and (sd > 0).any():
            # Distance to the nearest seed, exact where it is below the distance to a face
            # of the extended block that is not the volume border.
            dist = ndi.distance_transform_edt(sd == 0, sampling=sp)
            face = np.full(m.shape, np.inf)
            for axis in range(3):
                idx = np.arange(m.shape[axis], dtype=np.float64)
                view = [None, None, None]
                view[axis] = slice(None)  # type: ignore[call-overload]
                if outer[axis].start > 0:
                    face = np.minimum(face, ((idx + 1) * sp[axis])[tuple(view)])
                if outer[axis].stop < shape[axis]:
                    face = np.minimum(face, ((m.shape[axis] - idx) * sp[axis])[tuple(view)])
            seeded = np.unique(comp[sd > 0])
            relevant = np.isin(comp, seeded[seeded > 0]) & np.isin(
                comp, np.unique(comp[_inner(block, outer)])
            )
            if np.any(dist[relevant] >= face[relevant]):
                raise ParameterError(
                    f"region growing: a voxel near block "
                    f"{tuple((s.start, s.stop) for s in block)} may have its nearest seed "
                    f"beyond the halo {h}; use a halo of twice the largest object's extent"
                )
        grown = region_grow(sd, m, sp, image=img)  # per component, as on the whole array
        result[block] = grown[_inner(block, outer)]
    return result  # type: ignore[no-any-return]
