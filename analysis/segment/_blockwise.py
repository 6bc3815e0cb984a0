"""Chunk-wise segmentation of a ``VolumeSource`` larger than memory.

Filters read each block with a halo (overlap) wide enough that the block's interior
equals the whole-array result; connected components are labelled per block and merged
across block faces (a graph of linked labels, SciPy ``csgraph.connected_components``); Otsu uses a histogram accumulated over blocks.
Results go into any writable array (``numpy.memmap``, a zarr array from
``analysis.io``), so only one block plus the label equivalence table are in memory.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi
from scipy import sparse
from scipy.sparse import csgraph
from skimage import filters
from tqdm.auto import tqdm

from analysis.errors import ParameterError
from analysis.volume import VolumeSource

__all__ = [
    "WritableArray",
    "apply_blockwise",
    "iter_blocks",
    "label_blockwise",
    "otsu_threshold_blockwise",
]

log = logging.getLogger(__name__)


class WritableArray(Protocol):
    """What an output needs: shape, dtype, slicing read and write (NumPy, zarr, memmap)."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def __getitem__(self, key: Any) -> Any: ...

    def __setitem__(self, key: Any, value: Any) -> None: ...


def _spatial(source: VolumeSource, level: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    if not 0 <= level < len(source.levels):
        raise ParameterError(f"level {level} does not exist (the volume has {len(source.levels)})")
    lev = source.levels[level]
    if len(lev.shape) != 3:
        raise ParameterError(
            f"block-wise segmentation needs a 3D (z, y, x) source, got axes {source.axes}"
        )
    z, y, x = lev.shape
    cz, cy, cx = lev.chunks
    return (z, y, x), (cz, cy, cx)


def iter_blocks(
    shape: Sequence[int], block_shape: Sequence[int]
) -> Iterator[tuple[slice, slice, slice]]:
    """Blocks tiling ``shape`` in C order (the last ones clipped)."""
    if any(int(b) < 1 for b in block_shape):
        raise ParameterError(f"block shape must be positive, got {tuple(block_shape)}")
    ranges = [range(0, int(s), int(b)) for s, b in zip(shape, block_shape, strict=True)]
    for starts in itertools.product(*ranges):
        yield tuple(  # type: ignore[misc]
            slice(st, min(st + int(b), int(s)))
            for st, b, s in zip(starts, block_shape, shape, strict=True)
        )


def apply_blockwise(
    source: VolumeSource,
    fn: Callable[[npt.NDArray[Any]], npt.NDArray[Any]],
    *,
    halo: Sequence[int] = (0, 0, 0),
    block_shape: Sequence[int] | None = None,
    level: int = 0,
    out: WritableArray | None = None,
    dtype: npt.DTypeLike | None = None,
    progress: bool = False,
) -> WritableArray:
    """Apply a shape-preserving filter block by block with an overlap of ``halo`` voxels.

    Each block is read with ``halo`` extra voxels per side (clipped at the volume's
    border, where ``fn`` sees the true border), filtered, and its interior written to
    ``out``. For any filter whose output at a voxel depends only on inputs within
    ``halo`` voxels, the result equals ``fn`` applied to the whole array.

    Parameters
    ----------
    source : VolumeSource
    fn : callable ``(block) -> block``
        Must return an array of the block's shape.
    halo : (3,) ints, default: (0, 0, 0)
    block_shape : (3,) ints, default: the level's chunks (aligned reads)
    level : int, default: 0
    out : writable array, optional
        Destination with the level's shape; a NumPy array is allocated when omitted.
    dtype : numpy dtype, optional
        For the allocated output; default: ``fn``'s output dtype on the first block.
    progress : bool, default: False

    Returns
    -------
    The output array.
    """
    shape, chunks = _spatial(source, level)
    blocks = tuple(block_shape) if block_shape is not None else chunks
    h = tuple(int(v) for v in halo)
    if len(h) != 3 or min(h) < 0:
        raise ParameterError(f"halo must be three non-negative ints, got {tuple(halo)}")
    all_blocks = list(iter_blocks(shape, blocks))
    for block in tqdm(all_blocks, desc="blocks", disable=not progress):
        outer = tuple(
            slice(max(0, b.start - hh), min(s, b.stop + hh))
            for b, hh, s in zip(block, h, shape, strict=True)
        )
        data = source.read(level, outer)
        res = np.asarray(fn(data))
        if res.shape != data.shape:
            raise ParameterError(f"block function changed the shape {data.shape} -> {res.shape}")
        inner = tuple(
            slice(b.start - o.start, b.stop - o.start) for b, o in zip(block, outer, strict=True)
        )
        if out is None:
            out = np.zeros(shape, dtype=dtype if dtype is not None else res.dtype)
        out[block] = res[inner]
    if out is None:
        out = np.zeros(shape, dtype=dtype if dtype is not None else source.dtype)
    return out


def otsu_threshold_blockwise(
    source: VolumeSource, *, level: int = 0, nbins: int = 256, progress: bool = False
) -> float:
    """Otsu's threshold of the whole volume from a histogram accumulated over chunks.

    Two passes (range, then histogram), one chunk in memory at a time, with the
    histogram ``skimage.filters.threshold_otsu(image, nbins)`` builds, so the result is
    the same: for an integer image one bin per integer value from min to max
    (scikit-image's ``exposure.histogram`` ignores ``nbins`` there; ranges wider than
    ``2**24`` values fall back to ``nbins`` bins, where scikit-image would allocate one
    bin per value), for a float image ``nbins`` equal bins over ``[min, max]``.
    """
    shape, chunks = _spatial(source, level)
    blocks = list(iter_blocks(shape, chunks))
    lo, hi = np.inf, -np.inf
    for block in tqdm(blocks, desc="otsu range", disable=not progress):
        data = source.read(level, block)
        lo, hi = min(lo, float(data.min())), max(hi, float(data.max()))
    if lo == hi:
        raise ParameterError(f"volume is constant ({lo}); Otsu needs two intensity levels")
    if np.issubdtype(source.dtype, np.integer) and hi - lo < 2**24:
        ilo = int(lo)
        counts = np.zeros(int(hi) - ilo + 1, dtype=np.int64)
        for block in tqdm(blocks, desc="otsu histogram", disable=not progress):
            data = np.asarray(source.read(level, block)).ravel().astype(np.int64) - ilo
            counts += np.bincount(data, minlength=len(counts))
        centres = np.arange(ilo, int(hi) + 1, dtype=np.float64)
    else:
        counts = np.zeros(nbins, dtype=np.int64)
        edges = np.linspace(lo, hi, nbins + 1)
        for block in tqdm(blocks, desc="otsu histogram", disable=not progress):
            data = source.read(level, block)
            counts += np.histogram(data, bins=edges)[0]
        centres = (edges[:-1] + edges[1:]) / 2
    return float(filters.threshold_otsu(hist=(counts, centres)))  # type: ignore[no-untyped-call]


def label_blockwise(
    source: VolumeSource,
    out: WritableArray | None = None,
    *,
    level: int = 0,
    block_shape: Sequence[int] | None = None,
    connectivity: int = 1,
    progress: bool = False,
) -> tuple[WritableArray, int]:
    """Connected components of a mask volume, block by block.

    Parameters
    ----------
    source : VolumeSource
        Non-zero voxels are foreground.
    out : writable integer array, optional
        Destination (e.g. uint32/uint64 zarr array); an int64 NumPy array by default.
    connectivity : {1, 2, 3}, default: 1
        As ``scipy.ndimage.generate_binary_structure(3, connectivity)``: 1 = faces
        (6-connected), 3 = 26-connected.

    Returns
    -------
    (out, n)
        Labels ``1..n`` that define the same partition as ``scipy.ndimage.label`` on the
        whole array with the same structure (numbering may differ).
    """
    if connectivity not in (1, 2, 3):
        raise ParameterError(f"connectivity must be 1, 2 or 3, got {connectivity}")
    shape, chunks = _spatial(source, level)
    blocks = list(iter_blocks(shape, tuple(block_shape) if block_shape else chunks))
    structure = ndi.generate_binary_structure(3, connectivity)
    if out is None:
        out = np.zeros(shape, dtype=np.int64)
    if tuple(out.shape) != shape:
        raise ParameterError(f"output shape {tuple(out.shape)} differs from volume shape {shape}")
    offset = 0
    for block in tqdm(blocks, desc="label blocks", disable=not progress):
        lab, n = ndi.label(source.read(level, block) != 0, structure=structure)
        lab = lab.astype(np.int64)
        lab[lab > 0] += offset
        out[block] = lab
        offset += n
    links: list[npt.NDArray[np.int64]] = []
    # Merge across block faces, edges and corners: read each block with a one-voxel shell
    # and link labels of voxel pairs that are neighbours under the structuring element
    # with one voxel in the block and the other in the shell (another block).
    for block in tqdm(blocks, desc="merge faces", disable=not progress):
        outer = tuple(
            slice(max(0, b.start - 1), min(s, b.stop + 1))
            for b, s in zip(block, shape, strict=True)
        )
        region: npt.NDArray[np.int64] = np.asarray(out[outer], dtype=np.int64)
        own: npt.NDArray[np.bool_] = np.zeros(region.shape, dtype=np.bool_)
        own[
            tuple(
                slice(b.start - o.start, b.stop - o.start)
                for b, o in zip(block, outer, strict=True)
            )
        ] = True
        for dz, dy, dx in np.argwhere(structure) - 1:
            if (dz, dy, dx) <= (0, 0, 0):
                continue  # each neighbour pair once: look from the lower voxel
            # Pairs (p, p + d) with exactly one of the two voxels inside this block.
            a = region[
                max(0, -dz) : region.shape[0] - max(0, dz),
                max(0, -dy) : region.shape[1] - max(0, dy),
                max(0, -dx) : region.shape[2] - max(0, dx),
            ]
            b = region[
                max(0, dz) : region.shape[0] + min(0, dz),
                max(0, dy) : region.shape[1] + min(0, dy),
                max(0, dx) : region.shape[2] + min(0, dx),
            ]
            oa = own[
                max(0, -dz) : own.shape[0] - max(0, dz),
                max(0, -dy) : own.shape[1] - max(0, dy),
                max(0, -dx) : own.shape[2] - max(0, dx),
            ]
            ob = own[
                max(0, dz) : own.shape[0] + min(0, dz),
                max(0, dy) : own.shape[1] + min(0, dy),
                max(0, dx) : own.shape[2] + min(0, dx),
            ]
            link = (a > 0) & (b > 0) & (oa != ob)
            if link.any():
                links.append(np.unique(np.stack([a[link], b[link]], axis=1), axis=0))
    # The per-block labels linked across faces form a graph; its connected components
    # (SciPy's csgraph, instead of a hand-written union-find) are the global objects.
    pairs = np.concatenate(links) if links else np.zeros((0, 2), np.int64)
    graph = sparse.coo_matrix(
        (np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(offset + 1,) * 2
    )
    _, roots = csgraph.connected_components(graph, directed=False)
    # Components are numbered in order of their lowest node; node 0 (background) is
    # isolated, so it keeps 0 and objects become 1..n in order of their first label.
    lut = np.asarray(roots, dtype=np.int64)
    for block in tqdm(blocks, desc="relabel", disable=not progress):
        out[block] = lut[np.asarray(out[block])]
    return out, int(lut.max())
