"""Batch measure: the morphology table of one huge label image, block by block, exactly.

How the per-object reduction stays exact
----------------------------------------
Every block task (one per block of whole chunks) returns, per label it holds, the
voxel count, the integer sums of the voxel coordinates and the bounding box, all in
global voxel indices. Sums of integers and min/max are exact in any order, so the
merged count, centroid (``sum * spacing / count``, the expression of
:func:`analysis.morphology.measure_objects`) and bounding box are the numbers of the
single-process table bit for bit.

The block also measures every object that does not touch a face it shares with
another block (one ``find_objects`` pass gives the boxes of both,
:func:`~analysis.morphology.object_boxes`; :func:`~analysis.morphology.measure_boxes`
takes the sums of all and the rows of these in one pass per object). Such a row is kept
when the merge shows that all of the object's voxels were in that block: its crop is
then the very crop the single-process run measures, so the surface area and the axis
lengths are the same numbers. Every other object (crossing blocks, or touching a
shared face) is measured again on its whole bounding box in a second round of tasks:
again the single-process crop. Where every block kept the object's piece (the mask of
its piece on a shared face, bit-packed, when small) the mask of the whole box is put
together from the pieces (:func:`~analysis.morphology.measure_masks`); otherwise the box
is read from the store. A halo would have to be as wide
as the largest object to give that; reading each crossing object's box is exact and
costs memory bounded by the block and the largest object, not by the volume.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis._checks import check_spacing
from analysis.batch._cluster import UnitResult, run_units
from analysis.errors import ChunkError, ParameterError
from analysis.morphology import (
    BASE_COLUMNS,
    SHAPE_COLUMNS,
    SurfaceMethod,
    measure_boxes,
    measure_masks,
    object_boxes,
)

__all__ = [
    "MeasureJob",
    "MeasureResult",
    "batch_measure",
    "block_grid",
    "budget_block",
    "default_block",
    "measure_block",
]

log = logging.getLogger(__name__)

# Columns a block's measure_objects row contributes (the rest come from integer sums).
_ROW_COLUMNS = SHAPE_COLUMNS
_STAT_COLUMNS = (
    "label",
    "n",
    "sum_z",
    "sum_y",
    "sum_x",
    "min_z",
    "min_y",
    "min_x",
    "max_z",
    "max_y",
    "max_x",
)
# A block keeps the mask of an object's piece on a shared face (bit-packed, in its
# part) when the piece's box has at most this many voxels (an 8 KB string): the crossing
# object is then put together from its pieces instead of decoding its chunks again.
_PIECE_MAX_VOXELS = 40**3
# Objects put together from pieces per task.
_PIECES_PER_TASK = 256

# Beside a block's part: the errors of the damaged chunks it read as empty.
_UNREADABLE = ".unreadable.json"
# A block holds at least this many voxels per axis where the volume allows it.
_DEFAULT_BLOCK_EDGE = 256


@dataclass(frozen=True)
class MeasureJob:
    """What to measure: a label image of a store at one level, in blocks.

    Attributes
    ----------
    store : str
        Store path (absolute, visible to every worker) or URL.
    labels : str
        Label image name.
    level : int
    block : (3,) ints
        Block shape (z, y, x) in voxels, a multiple of the chunk shape.
    surface_method : {"smooth", "binary"}
    allow_missing : bool, default: False
        A damaged chunk (corrupt, a folder in place of its file, unreadable) reads as the
        fill value and is listed (``MeasureResult.unreadable``) instead of failing its
        block (``--allow-missing``). Not part of :meth:`params`: a run refused for a
        damaged chunk can be resumed with it.
    """

    store: str
    labels: str
    level: int
    block: tuple[int, int, int]
    surface_method: SurfaceMethod = "smooth"
    allow_missing: bool = False

    def params(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "labels": self.labels,
            "level": self.level,
            "block": list(self.block),
            "surface_method": self.surface_method,
        }


def default_block(
    shape: Sequence[int], chunks: Sequence[int], edge: int = _DEFAULT_BLOCK_EDGE
) -> tuple[int, int, int]:
    """Whole chunks per axis, at least ``edge`` voxels (or the whole axis)."""
    out = []
    for n, c in zip(shape[-3:], chunks[-3:], strict=True):
        c = max(1, int(c))
        out.append(min(max(c, math.ceil(edge / c) * c), max(n, 1)))
    return (out[0], out[1], out[2])


def budget_block(
    shape: Sequence[int],
    chunks: Sequence[int],
    itemsize: int,
    memory_bytes: int | None,
    workers: int,
) -> tuple[int, int, int]:
    """The largest block of whole chunks that fits a worker's memory and still gives every
    worker work.

    Larger blocks mean fewer objects on shared faces (measured a second time), fewer part
    files and fewer tasks. A block's labels may take a quarter of ``memory_bytes`` (the
    read, the object crops and the pieces come on top: about 1 GB of worker RSS for a
    512³ uint16 block, docs/benchmarks.md), and the volume is cut into at least two
    blocks per worker (a straggler then costs at most half a worker's share). Edges
    double from the chunk up to the whole axis; without a known memory limit the block
    stays at most ``_DEFAULT_BLOCK_EDGE`` per axis.
    """
    shape3 = [max(int(n), 1) for n in shape[-3:]]
    chunk3 = [max(1, min(int(c), n)) for c, n in zip(chunks[-3:], shape3, strict=True)]
    if not memory_bytes:
        return default_block(shape3, chunk3)
    best = (chunk3[0], chunk3[1], chunk3[2])
    edge = 2 * max(chunk3)
    while edge < 2 * max(shape3):
        cand = tuple(
            min(max(c, math.ceil(edge / c) * c), n) for n, c in zip(shape3, chunk3, strict=True)
        )
        if 4 * math.prod(cand) * max(1, int(itemsize)) > memory_bytes:
            break
        n_blocks = math.prod(math.ceil(n / b) for n, b in zip(shape3, cand, strict=True))
        if n_blocks >= 2 * max(1, workers):
            best = (cand[0], cand[1], cand[2])
        edge *= 2
    return best


def block_grid(
    shape: Sequence[int], block: Sequence[int]
) -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """(start, stop) voxel corners of every block, z-major."""
    axes = [range(0, int(n), int(b)) for n, b in zip(shape[-3:], block, strict=True)]
    out = []
    for start in itertools.product(*axes):
        stop = tuple(
            min(s + int(b), int(n)) for s, b, n in zip(start, block, shape[-3:], strict=True)
        )
        out.append(((start[0], start[1], start[2]), (stop[0], stop[1], stop[2])))
    return out


def _unit_name(start: Sequence[int]) -> str:
    return f"z{start[0]}_y{start[1]}_x{start[2]}"


def _open_labels(job: MeasureJob) -> Any:
    from analysis.io import open_volume

    return open_volume(job.store).open_labels(job.labels)


def _read_region(
    source: Any,
    level: int,
    start: Sequence[int],
    stop: Sequence[int],
    unreadable: list[ChunkError] | None = None,
) -> npt.NDArray[np.integer]:
    """Read a (z, y, x) box of a label image whose other axes (t, c) are single.

    Every chunk is checked (``ZarrVolumeSource.read_checked``): a damaged one raises its
    :class:`ChunkError` unless ``unreadable`` is a list, where it is appended.
    """
    shape = source.levels[level].shape
    lead = shape[:-3]
    if any(n != 1 for n in lead):
        raise ParameterError(
            f"label image has axes {''.join(source.axes)} with shape {tuple(shape)}; "
            "only single-time-point, single-channel label images can be measured"
        )
    region = tuple(slice(0, 1) for _ in lead) + tuple(
        slice(int(a), int(b)) for a, b in zip(start, stop, strict=True)
    )
    data, bad = source.read_checked(level, region, allow_missing=unreadable is not None)
    if unreadable is not None:
        unreadable.extend(bad)
    return np.asarray(data).reshape(data.shape[-3:])


def measure_block(
    job: MeasureJob,
    start: tuple[int, int, int],
    stop: tuple[int, int, int],
    parts_dir: str,
) -> str:
    """The task of one block: integer sums per label, rows of the objects inside.

    Writes ``<parts_dir>/<block>.parquet`` atomically and returns the block's name.
    """
    from analysis.io import write_json_atomic, write_part

    source = _open_labels(job)
    spacing = source.levels[job.level].scale_um
    shape = source.levels[job.level].shape[-3:]
    bad: list[ChunkError] | None = [] if job.allow_missing else None
    lab = _read_region(source, job.level, start, stop, bad)
    if bad:  # before the part, which marks the block done
        write_json_atomic(
            Path(parts_dir) / f"{_unit_name(start)}{_UNREADABLE}", [str(e) for e in bad]
        )
    if lab.dtype == np.bool_:
        lab = lab.astype(np.uint8)
    if not np.issubdtype(lab.dtype, np.integer):
        raise ParameterError(f"label image {job.labels!r} has dtype {lab.dtype}, not integer")
    # One find_objects pass and one pass per object give the sums of every object and
    # the rows of those inside (analysis.morphology.measure_boxes).
    objects = object_boxes(lab)
    touching = [
        any(
            (sl[ax].start == 0 and start[ax] > 0)
            or (start[ax] + sl[ax].stop == stop[ax] and stop[ax] < shape[ax])
            for ax in range(3)
        )
        for _, sl in objects
    ]
    rows = measure_boxes(
        lab, objects, spacing, shape=[not t for t in touching], surface_method=job.surface_method
    )
    n = rows["voxel_count"].to_numpy(np.int64)
    stats: dict[str, Any] = {"label": rows["label"].to_numpy(np.int64), "n": n}
    for ax, name in enumerate("zyx"):
        stats[f"sum_{name}"] = rows[f"sum_{name}"].to_numpy(np.int64) + n * start[ax]
        stats[f"min_{name}"] = rows[f"bbox_min_{name}"].to_numpy(np.int64) + start[ax]
        stats[f"max_{name}"] = rows[f"bbox_max_{name}"].to_numpy(np.int64) + start[ax]
    table = pd.DataFrame(stats, columns=list(_STAT_COLUMNS))
    for col in _ROW_COLUMNS:
        table[col] = rows[col].to_numpy(np.float64)
    # The pieces on shared faces, bit-packed where small: the object is put together from
    # them later (its chunks are not decoded a second time).
    pieces: list[bytes | None] = []
    for (lab_id, sl), t in zip(objects, touching, strict=True):
        small = t and math.prod(s.stop - s.start for s in sl) <= _PIECE_MAX_VOXELS
        pieces.append(np.packbits(lab[sl] == lab_id).tobytes() if small else None)
    table["piece"] = pd.Series(pieces, dtype=object)
    out = Path(parts_dir) / f"{_unit_name(start)}.parquet"
    write_part(table, out)
    return out.name


_Object = tuple[int, tuple[int, ...], tuple[int, ...]]
# A piece of an object: its box (global voxel indices) and its bit-packed mask there.
_Piece = tuple[tuple[int, ...], tuple[int, ...], bytes]


def measure_crossing(
    job: MeasureJob,
    lo: tuple[int, ...],
    hi: tuple[int, ...],
    objects: list[_Object],
    counts: list[int],
) -> pd.DataFrame:
    """The task for objects that span blocks: each measured on its whole bounding box.

    ``lo``/``hi`` bound all the objects' boxes: that region is read once and every
    object is measured on its own box in it (neighbouring objects share chunks; reading
    each box on its own would decode the same chunks again and again).
    """
    source = _open_labels(job)
    spacing = source.levels[job.level].scale_um
    # The blocks read (and listed) every chunk of the region before.
    region = _read_region(source, job.level, lo, hi, [] if job.allow_missing else None)
    boxes = [
        (lab_id, tuple(slice(p - q, r - q) for p, r, q in zip(a, b, lo, strict=True)))
        for lab_id, a, b in objects
    ]
    rows = measure_boxes(region, boxes, spacing, surface_method=job.surface_method)
    _check_counts(rows, counts)
    return rows[["label", *_ROW_COLUMNS]]


def measure_pieces(
    job: MeasureJob,
    spacing: tuple[float, ...],
    objects: list[tuple[_Object, list[_Piece]]],
    counts: list[int],
) -> pd.DataFrame:
    """The task for crossing objects whose pieces the blocks kept: each object's mask is
    put together from them (the very ``labels[box] == label`` of its whole box) and
    measured; no chunk is read."""
    masks = []
    for (lab_id, a, b), pieces in objects:
        mask = np.zeros(tuple(r - p for p, r in zip(a, b, strict=True)), dtype=bool)
        for pa, pb, bits in pieces:
            shape = tuple(r - p for p, r in zip(pa, pb, strict=True))
            piece = np.unpackbits(np.frombuffer(bits, np.uint8), count=math.prod(shape))
            box = tuple(slice(p - q, r - q) for p, r, q in zip(pa, pb, a, strict=True))
            mask[box] |= piece.reshape(shape).view(bool)
        masks.append((lab_id, a, mask))
    rows = measure_masks(masks, spacing, surface_method=job.surface_method)
    _check_counts(rows, counts)
    return rows[["label", *_ROW_COLUMNS]]


def _check_counts(rows: pd.DataFrame, counts: Sequence[int]) -> None:
    """Each object has the voxel count the blocks summed (the labels did not change)."""
    got = rows["voxel_count"].to_numpy(np.int64)
    if not np.array_equal(got, np.asarray(counts, dtype=np.int64)):
        bad = rows["label"].to_numpy(np.int64)[got != np.asarray(counts)]
        raise ParameterError(f"labels {bad.tolist()} changed while they were measured")


def _group_crossing(
    objects: list[_Object], block: Sequence[int]
) -> list[tuple[tuple[int, ...], tuple[int, ...], list[_Object]]]:
    """Crossing objects in groups, one task each: by the block of their first corner,
    with the region that holds all their boxes (about a block plus an object's reach).
    An object whose box alone is larger than a block forms its own group, and so does
    each member of a group whose region would exceed eight blocks. (Groups per block face,
    with slab regions, were slower: a slab still decodes whole chunks, and there are
    several per block: 26 s against 16 s for the 2,334 crossing objects of the benchmark.)"""
    budget = math.prod(block)
    groups: dict[tuple[int, ...], list[_Object]] = {}
    alone: list[_Object] = []
    for obj in objects:
        if math.prod(h - q for q, h in zip(obj[1], obj[2], strict=True)) > budget:
            alone.append(obj)
        else:
            cell = tuple(q // b for q, b in zip(obj[1], block, strict=True))
            groups.setdefault(cell, []).append(obj)
    out = []

    def add(members: list[_Object]) -> None:
        lo = tuple(min(o[1][ax] for o in members) for ax in range(3))
        hi = tuple(max(o[2][ax] for o in members) for ax in range(3))
        if len(members) > 1 and math.prod(h - q for q, h in zip(lo, hi, strict=True)) > 8 * budget:
            for o in members:  # long thin objects would stretch the region: one read each
                add([o])
            return
        out.append((lo, hi, members))

    for members in groups.values():
        add(members)
    for o in alone:
        add([o])
    return out


@dataclass(frozen=True)
class MeasureResult:
    """A batch measure's outcome: the table (None when a block failed), every unit, and
    the errors of the damaged chunks read as empty (``MeasureJob.allow_missing``)."""

    table: pd.DataFrame | None
    outcomes: list[UnitResult]
    blocks_total: int
    blocks_run: int
    unreadable: list[str] = field(default_factory=list)


def batch_measure(
    client: Any,
    job: MeasureJob,
    parts_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    progress: bool = False,
) -> MeasureResult:
    """Measure every object of a label image on a dask cluster, block by block.

    Parameters
    ----------
    client : distributed.Client
    job : MeasureJob
    parts_dir : path-like
        Per-block results (one Parquet file each, written atomically); kept when a
        block failed so that ``resume`` redoes only what is missing, removed on success.
    resume : bool, default: False
        Keep the blocks already in ``parts_dir`` (when it was made for the same job).
    progress : bool, default: False

    Returns
    -------
    MeasureResult
        ``table`` has :data:`analysis.morphology.BASE_COLUMNS`, sorted by label, the same
        numbers as ``measure_objects`` on the whole image (see the module's notes).
    """
    from analysis.io import (
        list_done,
        read_json,
        read_part,
        remove_folder,
        remove_temporaries,
        reset_folder,
        write_json_atomic,
    )

    source = _open_labels(job)
    if not 0 <= job.level < len(source.levels):
        raise ParameterError(
            f"label image {job.labels!r} has no level {job.level} (it has {len(source.levels)})"
        )
    spacing = check_spacing(source.levels[job.level].scale_um)
    shape = tuple(int(n) for n in source.levels[job.level].shape[-3:])
    if any(b < 1 for b in job.block):
        raise ParameterError(f"block shape must be positive, got {job.block}")
    parts = Path(parts_dir)
    if resume and parts.is_dir():
        before = read_json(parts / "job.json")
        if before is not None and before != job.params():
            raise ParameterError(
                f"--resume: {parts} holds blocks of another run ({before}); "
                "run without --resume to start again"
            )
    reset_folder(parts, keep=resume)
    remove_temporaries(parts)
    write_json_atomic(parts / "job.json", job.params())

    blocks = block_grid(shape, job.block)
    done = list_done(parts)
    todo = {
        _unit_name(start): (job, start, stop, str(parts))
        for start, stop in blocks
        if f"{_unit_name(start)}.parquet" not in done
    }
    log.info("measure: %d blocks, %d to do", len(blocks), len(todo))
    t0 = time.perf_counter()
    outcomes = run_units(client, measure_block, todo, desc="measure blocks", progress=progress)
    log.info("measure: blocks done in %.1f s", time.perf_counter() - t0)
    skipped = [
        UnitResult(_unit_name(s), True, skipped=True)
        for s, _ in blocks
        if _unit_name(s) not in todo
    ]
    failed = [r for r in outcomes if not r.ok]
    if failed:
        return MeasureResult(None, skipped + outcomes, len(blocks), len(todo))

    stats = pd.concat(
        [read_part(parts / f"{_unit_name(s)}.parquet") for s, _ in blocks], ignore_index=True
    )
    table, crossing = _merge(stats)
    pieces = _pieces(stats, crossing)
    n = table["n"]
    units: dict[str, tuple[Any, ...]] = {}
    by_pieces = [o for o in crossing if o[0] in pieces]
    for i in range(0, len(by_pieces), _PIECES_PER_TASK):
        group = by_pieces[i : i + _PIECES_PER_TASK]
        units[f"objects {i}-{i + len(group) - 1} from their pieces"] = (
            "pieces",
            job,
            tuple(float(v) for v in spacing),
            [(o, pieces[o[0]]) for o in group],
            [int(n[o[0]]) for o in group],
        )
    by_region = [o for o in crossing if o[0] not in pieces]
    for i, (lo, hi, members) in enumerate(_group_crossing(by_region, job.block)):
        units[f"objects {i} near z{lo[0]}_y{lo[1]}_x{lo[2]} ({len(members)})"] = (
            "region",
            job,
            lo,
            hi,
            members,
            [int(n[o[0]]) for o in members],
        )
    t0 = time.perf_counter()
    more = run_units(client, _measure_group, units, desc="measure crossing", progress=progress)
    log.info(
        "measure: %d objects crossing blocks (%d from their pieces), %d tasks, in %.1f s",
        len(crossing),
        len(by_pieces),
        len(units),
        time.perf_counter() - t0,
    )
    failed = [r for r in more if not r.ok]
    if failed:
        return MeasureResult(None, skipped + outcomes + more, len(blocks), len(todo))
    if more:
        redo = pd.concat([r.value for r in more], ignore_index=True).set_index("label")
        table.loc[redo.index, list(_ROW_COLUMNS)] = redo[list(_ROW_COLUMNS)]
    table = _finish(table, spacing)
    damaged: dict[str, None] = {}  # each chunk once, in block order
    for s, _ in blocks:
        for err in read_json(parts / f"{_unit_name(s)}{_UNREADABLE}") or ():
            damaged[str(err)] = None
    remove_folder(parts)
    return MeasureResult(
        table, skipped + outcomes + more, len(blocks), len(todo), unreadable=list(damaged)
    )


def _measure_group(kind: str, *args: Any) -> pd.DataFrame:
    """One task of crossing objects: from their pieces, or from a region of the store."""
    if kind == "pieces":
        return measure_pieces(*args)
    return measure_crossing(*args)


def _pieces(stats: pd.DataFrame, crossing: list[_Object]) -> dict[int, list[_Piece]]:
    """The pieces of every crossing object whose blocks all kept theirs."""
    if "piece" not in stats.columns or not crossing:
        return {}
    ids = {o[0] for o in crossing}
    rows = stats[stats["label"].isin(ids)]
    cols = ["label", "min_z", "min_y", "min_x", "max_z", "max_y", "max_x", "piece"]
    out: dict[int, list[_Piece]] = {}
    missing: set[int] = set()
    for lab, z0, y0, x0, z1, y1, x1, bits in rows[cols].itertuples(index=False, name=None):
        if bits is None:
            missing.add(int(lab))
            continue
        lo, hi = (int(z0), int(y0), int(x0)), (int(z1), int(y1), int(x1))
        out.setdefault(int(lab), []).append((lo, hi, bytes(bits)))
    return {k: v for k, v in out.items() if k not in missing}


def _merge(stats: pd.DataFrame) -> tuple[pd.DataFrame, list[_Object]]:
    """Merge block rows per label: exact integer sums and boxes; kept rows; crossing list."""
    g = stats.groupby("label", sort=True)
    merged = g.agg(
        n=("n", "sum"),
        sum_z=("sum_z", "sum"),
        sum_y=("sum_y", "sum"),
        sum_x=("sum_x", "sum"),
        min_z=("min_z", "min"),
        min_y=("min_y", "min"),
        min_x=("min_x", "min"),
        max_z=("max_z", "max"),
        max_y=("max_y", "max"),
        max_x=("max_x", "max"),
        blocks=("n", "size"),
    )
    # The row of a block stands only where that block held all the object's voxels.
    single = stats[stats["label"].map(merged["blocks"]) == 1].set_index("label")
    for col in _ROW_COLUMNS:
        merged[col] = np.nan
    measured = single[single["volume_um3"].notna()]
    merged.loc[measured.index, list(_ROW_COLUMNS)] = measured[list(_ROW_COLUMNS)]
    todo = merged.index[merged["volume_um3"].isna()]
    lo = merged.loc[todo, ["min_z", "min_y", "min_x"]].to_numpy(np.int64)
    hi = merged.loc[todo, ["max_z", "max_y", "max_x"]].to_numpy(np.int64)
    crossing = [
        (int(lab), tuple(int(v) for v in a), tuple(int(v) for v in b))
        for lab, a, b in zip(todo, lo, hi, strict=True)
    ]
    return merged, crossing


def _finish(merged: pd.DataFrame, spacing: npt.NDArray[np.float64]) -> pd.DataFrame:
    """The final table in ``measure_objects``'s columns, types and order."""
    if merged.empty:
        return pd.DataFrame({c: pd.Series(dtype=np.float64) for c in BASE_COLUMNS})
    n = merged["n"].to_numpy(np.int64)
    sums = merged[["sum_z", "sum_y", "sum_x"]].to_numpy(np.int64)
    origin = np.zeros(3, dtype=np.float64)
    out: dict[str, Any] = {
        "label": merged.index.to_numpy(np.int64),
        "voxel_count": n,
    }
    for col in _ROW_COLUMNS:
        out[col] = merged[col].to_numpy(np.float64)
    # Per object, as measure_objects: (int sums) * spacing / n + origin.
    centroids = np.stack([s * spacing / k + origin for s, k in zip(sums, n, strict=True)])
    for ax, a in enumerate("zyx"):
        out[f"centroid_{a}_um"] = centroids[:, ax]
        out[f"bbox_min_{a}"] = merged[f"min_{a}"].to_numpy(np.int64)
        out[f"bbox_max_{a}"] = merged[f"max_{a}"].to_numpy(np.int64)
    table = pd.DataFrame(out)[list(BASE_COLUMNS)]
    return table.reset_index(drop=True)
