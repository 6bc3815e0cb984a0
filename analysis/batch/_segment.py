"""Classic segmentation of a store (``vrscope segment``) and its many-stores batch.

The pipeline is block-wise throughout (:mod:`analysis.segment`): Otsu's threshold from a
histogram of the whole level, a lazy threshold mask, an optional closing, connected
components labelled block by block and joined across block faces, an optional removal of
small objects; memory is a block plus one entry per object. ``vrscope segment`` and
``vrscope batch segment`` both call :func:`segment_store`, so their files are the same.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analysis.batch._cluster import UnitResult
from analysis.batch._profile import UNREADABLE_FILE, run_per_store
from analysis.errors import ChunkError, ParameterError

__all__ = ["SEGMENT_LABELS", "SegmentOptions", "batch_segment", "segment_store"]

log = logging.getLogger(__name__)

SEGMENT_LABELS = "segmentation"
"""Name of the label image in the output store (``OUT.zarr/labels/segmentation``)."""

SEGMENT_STORE = "segmentation.zarr"
"""Name of a store's output inside its folder of a batch run."""


@dataclass(frozen=True)
class SegmentOptions:
    """The settings of ``vrscope segment``.

    Attributes
    ----------
    level : int, default: 0
    threshold : float or None, default: None
        Foreground is ``image > threshold``; None: Otsu's threshold of the whole level
        (``skimage.filters.threshold_otsu`` with 256 bins, computed block-wise).
    min_volume_um3 : float, default: 0
        Objects below this volume are removed (their ids stay unused).
    closing_um : float, default: 0
        Radius of a physical ball closing the mask before labelling (0: none).
    allow_missing : bool, default: False
        A damaged chunk of the image (corrupt, a folder in place of its file,
        unreadable) reads as the fill value and is listed instead of failing
        (``--allow-missing``).
    """

    level: int = 0
    threshold: float | None = None
    min_volume_um3: float = 0.0
    closing_um: float = 0.0
    allow_missing: bool = False


def _identity(block: Any) -> Any:
    return block


class _Above:
    """``block > t`` (a class, not a lambda, so a task could pickle it)."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self, block: Any) -> Any:
        return np.asarray(block) > self.t


def _count_ids(labels: Any) -> int:
    """Number of distinct non-zero ids of a label source, one block at a time."""
    from analysis.segment import iter_blocks

    lev = labels.levels[0]
    ids: set[int] = set()
    for block in iter_blocks(lev.shape, lev.chunks):
        ids.update(int(v) for v in np.unique(np.asarray(labels.read(0, block))))
    ids.discard(0)
    return len(ids)


def segment_store(
    store: str, out: str | os.PathLike[str], options: SegmentOptions, *, progress: bool = False
) -> dict[str, Any]:
    """Segment one store's image into a new OME-Zarr store ``out``.

    ``out`` (which must not exist) gets the image's level ``options.level`` as its image
    (so the result opens on its own in vrscope) and ``labels/segmentation``: the
    6-connected components of the foreground (the partition of ``scipy.ndimage.label``),
    ids ``1..n`` as :func:`analysis.segment.label_blockwise` numbers them on the level's
    chunks (deterministic for a given store; objects removed by ``min_volume_um3`` leave
    their ids unused), uint32 (uint64 past 2**32 voxels). Same NGFF version and chunks as
    the source level. Returns ``{"threshold", "objects", "shape", "ngff",
    "unreadable_chunks"}``, the last the errors of the damaged chunks read as empty
    (``options.allow_missing``; without it the first raises its :class:`ChunkError`,
    naming the store, level and chunk: every chunk is checked, see
    ``ZarrVolumeSource.checked``).
    """
    from analysis.io import ScratchVolume, open_volume, write_labels, write_ngff
    from analysis.segment import (
        BlockwiseSource,
        close_blockwise,
        label_blockwise,
        otsu_threshold_blockwise,
        remove_small_objects_blockwise,
    )

    opened = open_volume(store)
    bad: list[ChunkError] | None = [] if options.allow_missing else None
    src: Any = opened.checked(bad)
    lv = options.level
    if not 0 <= lv < len(src.levels):
        raise ParameterError(f"{store} has no level {lv} (it has {len(src.levels)})")
    if len(src.levels[lv].shape) != 3:
        raise ParameterError(
            f"{store} has axes {''.join(src.axes)}; segment needs a single-channel, "
            "single-time-point (z, y, x) image"
        )
    level = src.levels[lv]
    if options.threshold is None:
        threshold = float(otsu_threshold_blockwise(src, level=lv, progress=progress))
    else:
        threshold = float(options.threshold)
    image = BlockwiseSource(src, _identity, level=lv, name=src.name)
    mask: Any = BlockwiseSource(src, _Above(threshold), dtype=bool, level=lv, name="mask")
    if options.closing_um > 0:
        mask = close_blockwise(mask, options.closing_um)
    n_vox = int(np.prod(level.shape))
    dtype = np.uint32 if n_vox < 2**32 else np.uint64
    with ScratchVolume(level.shape, dtype, chunks=level.chunks, scale_um=level.scale_um) as lab:
        _, n = label_blockwise(mask, lab, connectivity=1, progress=progress)
        labels: Any = lab
        kept = int(n)
        with ScratchVolume(
            level.shape, dtype, chunks=level.chunks, scale_um=level.scale_um
        ) as small:
            if options.min_volume_um3 > 0 and n > 0:
                remove_small_objects_blockwise(
                    lab, options.min_volume_um3, small, progress=progress
                )
                labels = small
                kept = _count_ids(small)
            write_ngff(image, out, version=src.ngff_version, chunks=tuple(level.chunks))
            write_labels(out, SEGMENT_LABELS, labels, progress=progress)
    return {
        "threshold": threshold,
        "objects": kept,
        "shape": list(level.shape),
        "ngff": src.ngff_version,
        "unreadable_chunks": [str(e) for e in bad or ()],
    }


def _segment_unit(store: str, unit_dir: str, options: SegmentOptions) -> dict[str, Any]:
    """One store of a batch: ``unit_dir/segmentation.zarr`` and ``result.json``, atomically
    (the folder appears under its final name only when complete)."""
    from analysis.io import commit_folder, reset_folder, write_json_atomic

    def fill(tmp: Path) -> dict[str, Any]:
        reset_folder(tmp, keep=False)
        info = segment_store(store, tmp / SEGMENT_STORE, options)
        damaged = info.pop("unreadable_chunks")
        if damaged:
            write_json_atomic(tmp / UNREADABLE_FILE, damaged)
        write_json_atomic(tmp / "result.json", info)
        return info

    return commit_folder(unit_dir, fill)  # type: ignore[no-any-return]


def batch_segment(
    client: Any,
    stores: Sequence[str],
    out_dir: str | os.PathLike[str],
    options: SegmentOptions,
    *,
    resume: bool = False,
    progress: bool = False,
) -> list[UnitResult]:
    """Segment many stores on a dask cluster: one task per store.

    Each store's result is ``DIR/<store name>/segmentation.zarr`` (the files of
    ``vrscope segment STORE --out ...`` with the same options) and ``result.json``
    (threshold, number of objects); ``DIR/summary.csv`` has one row per store
    (``store``, ``name``, ``status``, ``error``, ``threshold``, ``objects``). With
    ``resume``, stores whose folder is there (complete by construction) are skipped.
    """
    outcomes, _ = run_per_store(
        client,
        stores,
        out_dir,
        _segment_unit,
        options,
        done_file="result.json",
        row=lambda v: {"threshold": v["threshold"], "objects": v["objects"]},
        desc="segment",
        resume=resume,
        progress=progress,
    )
    return outcomes
