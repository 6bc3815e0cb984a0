"""Batch infer --objects: one class's probability map -> objects, block by block, exactly.

What :func:`analysis.inference.objects_from_probabilities` does on the whole map, and how
each step is made block-wise with the same result voxel for voxel:

1. ``probability > threshold`` is voxel-wise; the closing (``closing_um``) reaches
   twice the ball's half-size: each block is read with that halo
   (:func:`analysis.segment.close_blockwise`, equal to ``binary_close`` on the whole
   array, edge padding at the volume's border included).
2. Each block is labelled with ``scipy.ndimage.label`` (6-connected, the rule of the
   plain command) and, with ``min_volume_um3``, also 26-connected (the components
   ``remove_small_objects_um3`` sizes). The local labels go into a scratch array; per
   label the block returns its voxel count, its first voxel in raster order (global
   flat index) and the 26-connected component it lies in.
3. A second round reads each block with a one-voxel shell and lists the pairs of local
   labels of different blocks that are neighbours (6- and, for the size filter,
   26-neighbours; faces, edges and corners).
4. On the client the pairs are the edges of a graph whose nodes are the blocks' labels;
   its connected components (``scipy.sparse.csgraph``) are the objects of the whole
   map. A 26-component is removed when its summed voxel count times the voxel volume is
   below ``min_volume_um3`` (the very expression of ``remove_small_objects_um3``), with
   every 6-component in it. ``ndimage.label`` numbers components in the raster order of
   their first voxel, so the kept objects are numbered by their smallest first voxel.
5. A last round writes ``lut[local label]`` of every block; the label image is written
   from it as by ``vrscope infer``.

Memory per task is bounded by the block (plus the closing's halo); the client holds a few
numbers per object and block. The watershed (``watershed_um``) floods whole connected
components and has no such exact block-wise form: it runs on the whole map in one task
(:func:`analysis.batch._infer.write_store_labels`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi
from scipy import sparse
from scipy.sparse import csgraph

__all__ = ["label_objects_block", "link_objects_block", "merge_objects", "relabel_block"]

CC = "components.zarr"
OBJECTS = "objects.zarr"


def _grid_dims(shape: Sequence[int], block: Sequence[int]) -> tuple[int, int, int]:
    d = [math.ceil(int(n) / int(b)) for n, b in zip(shape, block, strict=True)]
    return (d[0], d[1], d[2])


def _mask_source(job: Any, parts_dir: str) -> Any:
    """The thresholded (and closed) class map of the scratch probabilities, lazily."""
    from analysis.io import ScratchVolume, open_volume
    from analysis.segment import BlockwiseSource, close_blockwise

    scale = open_volume(job.store).levels[0].scale_um
    probs = ScratchVolume.reopen(Path(parts_dir) / "labels.zarr", scale_um=scale)
    threshold = float(job.threshold)
    mask = BlockwiseSource(probs, lambda b: b > threshold, dtype=bool, name="mask")
    if job.closing_um > 0:
        return close_blockwise(mask, job.closing_um, spacing=scale)
    return mask


def _first_voxels(lab: npt.NDArray[np.integer], n: int) -> npt.NDArray[np.int64]:
    """Flat index of each label's first voxel (raster order) in ``lab``.

    ``ndimage.label`` numbers labels in the order of their first voxel, so the running
    maximum of the flat array steps to ``k`` exactly at label ``k``'s first voxel: one
    pass, instead of a sort of every voxel (``np.unique(return_index=True)``).
    """
    running = np.maximum.accumulate(lab.ravel())
    return np.searchsorted(running, np.arange(1, n + 1)).astype(np.int64)


def label_objects_block(
    job: Any, parts_dir: str, start: tuple[int, int, int], stop: tuple[int, int, int]
) -> dict[str, Any]:
    """Task: label one block of the mask; write the local labels; per label its voxel
    count, first voxel (global flat index) and 26-connected component (with a size
    filter)."""
    from analysis.io import ScratchVolume

    region = tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
    source = _mask_source(job, parts_dir)
    shape = source.levels[0].shape[-3:]
    mask = np.asarray(source.read(0, region), dtype=bool)
    lab, n = ndi.label(mask)
    first = _first_voxels(lab, n)
    local = np.unravel_index(first, mask.shape)
    glob = tuple(c + s for c, s in zip(local, start, strict=True))
    out: dict[str, Any] = {
        "n": int(n),
        "first": np.ravel_multi_index(glob, shape).astype(np.int64),
        "size": np.bincount(lab.ravel(), minlength=n + 1)[1:].astype(np.int64),
    }
    if job.min_volume_um3 > 0:
        lab26, n26 = ndi.label(mask, structure=np.ones((3, 3, 3), bool))
        out["n26"] = int(n26)
        out["comp26"] = lab26.ravel()[first].astype(np.int64)  # 1..n26 per 6-label
    cc = ScratchVolume.reopen(Path(parts_dir) / CC)
    cc[region] = lab.astype(np.int32)
    return out


def link_objects_block(
    parts_dir: str,
    start: tuple[int, int, int],
    stop: tuple[int, int, int],
    block: tuple[int, int, int],
    connectivities: tuple[int, ...],
) -> dict[int, npt.NDArray[np.int64]]:
    """Task: the pairs of local labels of this block and another that are neighbours.

    The block is read with a one-voxel shell; for every offset of the structure (each
    pair looked at once, from its lower voxel) the pairs with exactly one voxel in this
    block are kept. Returns per connectivity (1: faces, 3: faces, edges and corners) the
    unique rows ``(block a, label a, block b, label b)``.
    """
    from analysis.io import ScratchVolume

    cc = ScratchVolume.reopen(Path(parts_dir) / CC)
    shape = cc.levels[0].shape
    outer = tuple(
        slice(max(0, a - 1), min(int(n), b + 1)) for a, b, n in zip(start, stop, shape, strict=True)
    )
    lab = np.asarray(cc[outer])
    own = np.zeros(lab.shape, bool)
    own[
        tuple(slice(a - o.start, b - o.start) for a, b, o in zip(start, stop, outer, strict=True))
    ] = True
    dims = _grid_dims(shape, block)
    result: dict[int, npt.NDArray[np.int64]] = {}
    for conn in connectivities:
        structure = ndi.generate_binary_structure(3, conn)
        rows = []
        for d in np.argwhere(structure) - 1:
            if tuple(d) <= (0, 0, 0):
                continue
            lo = tuple(slice(max(0, -k), lab.shape[i] - max(0, k)) for i, k in enumerate(d))
            hi = tuple(slice(max(0, k), lab.shape[i] + min(0, k)) for i, k in enumerate(d))
            a, b = lab[lo], lab[hi]
            link = (a > 0) & (b > 0) & (own[lo] != own[hi])
            if not link.any():
                continue
            where = np.nonzero(link)
            pa = [w + s.start + o.start for w, s, o in zip(where, lo, outer, strict=True)]
            pb = [p + int(k) for p, k in zip(pa, d, strict=True)]
            ba = np.ravel_multi_index([p // q for p, q in zip(pa, block, strict=True)], dims)
            bb = np.ravel_multi_index([p // q for p, q in zip(pb, block, strict=True)], dims)
            rows.append(np.stack([ba, a[link], bb, b[link]], axis=1).astype(np.int64))
        result[conn] = (
            np.unique(np.concatenate(rows), axis=0) if rows else np.zeros((0, 4), np.int64)
        )
    return result


def merge_objects(
    counts: Sequence[dict[str, Any]],
    links: Sequence[dict[int, npt.NDArray[np.int64]]],
    voxel_volume_um3: float,
    min_volume_um3: float,
) -> list[npt.NDArray[np.int32]]:
    """On the client: the objects of the whole map from the blocks' labels and links.

    Parameters
    ----------
    counts : one dict per block, in grid order (:func:`label_objects_block`'s result)
    links : one dict per block (:func:`link_objects_block`'s result)
    voxel_volume_um3 : float
        ``prod(spacing)``, as ``remove_small_objects_um3`` computes it.
    min_volume_um3 : float

    Returns
    -------
    list of (n + 1,) int32 arrays, one per block
        Final label of each local label (index 0, background, maps to 0).
    """
    n = np.array([c["n"] for c in counts], np.int64)
    base = np.concatenate([[0], np.cumsum(n)])
    total = int(base[-1])

    def nodes(rows: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], ...]:
        return base[rows[:, 0]] + rows[:, 1] - 1, base[rows[:, 2]] + rows[:, 3] - 1

    def components(size: int, a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]) -> Any:
        graph = sparse.coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(size, size))
        return csgraph.connected_components(graph, directed=False)[1]

    pairs6 = np.concatenate([lk[1] for lk in links] or [np.zeros((0, 4), np.int64)])
    comp = components(total, *nodes(pairs6))
    keep = np.ones(total, bool)
    if min_volume_um3 > 0:
        # 26-components: the blocks' 26-labels are extra nodes joined to their 6-labels,
        # and the 26-neighbour pairs across blocks join 6-labels of different blocks.
        n26 = np.array([c["n26"] for c in counts], np.int64)
        base26 = total + np.concatenate([[0], np.cumsum(n26)])
        own = np.arange(total, dtype=np.int64)
        group = np.concatenate(
            [base26[i] + c["comp26"] - 1 for i, c in enumerate(counts)] or [own[:0]]
        )
        pairs26 = np.concatenate([lk[3] for lk in links] or [np.zeros((0, 4), np.int64)])
        a26, b26 = nodes(pairs26)
        comp26 = components(
            int(base26[-1]), np.concatenate([own, a26]), np.concatenate([group, b26])
        )[:total]
        size = np.concatenate([c["size"] for c in counts] or [own[:0]])
        summed = np.zeros(int(comp26.max(initial=-1)) + 1, np.int64)
        np.add.at(summed, comp26, size)
        # remove_small_objects_um3: bincount(components) * voxel volume >= min volume
        keep = (summed * voxel_volume_um3 >= min_volume_um3)[comp26]
    first = np.concatenate([c["first"] for c in counts] or [np.zeros(0, np.int64)])
    n_comp = int(comp.max(initial=-1)) + 1
    start = np.full(n_comp, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(start, comp[keep], first[keep])
    kept = np.flatnonzero(start < np.iinfo(np.int64).max)
    final = np.zeros(n_comp, np.int64)
    final[kept[np.argsort(start[kept], kind="stable")]] = np.arange(1, len(kept) + 1)
    lut = np.where(keep, final[comp], 0)
    return [
        np.concatenate([[0], lut[base[i] : base[i + 1]]]).astype(np.int32)
        for i in range(len(counts))
    ]


def relabel_block(
    parts_dir: str,
    start: tuple[int, int, int],
    stop: tuple[int, int, int],
    lut: npt.NDArray[np.int32],
) -> int:
    """Task: the final labels of one block (``lut[local label]``) into the objects array."""
    from analysis.io import ScratchVolume

    region = tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
    cc = ScratchVolume.reopen(Path(parts_dir) / CC)
    out = ScratchVolume.reopen(Path(parts_dir) / OBJECTS)
    out[region] = np.asarray(lut, np.int32)[np.asarray(cc[region])]
    return int(np.count_nonzero(lut))
