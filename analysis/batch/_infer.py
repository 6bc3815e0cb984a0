"""Batch infer: tiled model inference of many stores and/or big ones, block by block, exactly.

How the blocks give the single-process result bit for bit
----------------------------------------------------------
``vrscope infer`` (:func:`analysis.inference.predict_tiled`) normalises every tile with
whole-volume statistics and blends overlapping tiles: a voxel's probability is the
float32 sum, in the raster order of the tiles, of the weighted outputs of every tile
whose core covers it. Here:

1. **Statistics first, as a reduction.** Mean and std (``zero_mean_unit_variance``) are
   the moments of the same z-blocks the single process streams over
   (:func:`~analysis.inference.moment_blocks`), one task each, merged on the client in
   the same order with the same pairwise update (:func:`~analysis.inference.merge_moments`):
   the same float64 numbers. Percentiles (``scale_range``) need all values at once: one
   task per store computes them with the single-process code. Per-plane statistics (2D
   models normalised over x, y) are taken by each block from its whole planes.
2. **Blocks of whole chunks.** A block task runs every tile whose core meets the block
   (the tile grid of the whole volume, :func:`~analysis.inference.plan_tiles`) and adds
   the tiles' contributions (:func:`~analysis.inference.tile_contribution`) in raster
   order into a zero float32 block: per voxel, the same additions in the same order as
   the single process. Tiles that straddle a block border are evaluated by every block
   they touch (the price of independent blocks: ``tile_evaluations`` against ``tiles``).
   The class labels (argmax, or the threshold for one class) are voxel-wise and go into a
   scratch zarr array of the image's chunk shape (one writer per chunk).
3. **Objects** (``--objects``): without a watershed, the class map becomes objects block
   by block, joined exactly across block faces (:mod:`analysis.batch._objects`); with a
   watershed, in one task per store on the whole map (step 4).
4. **The label image** is written from the scratch array by
   :func:`analysis.io.write_labels`, the writer of ``vrscope infer``, in one task per
   store: the same files, chunk for chunk, with the stride pyramid.

Equal output needs equal model outputs per tile: the model must not depend on which
other tiles share its batch (true of eval-mode U-Nets on CPU; the tests compare files
byte for byte).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis._checks import check_spacing
from analysis.batch import _objects
from analysis.batch._cluster import UnitResult, run_units
from analysis.batch._measure import block_grid
from analysis.errors import ChunkError, FormatError, ParameterError

__all__ = [
    "InferJob",
    "InferOutcome",
    "batch_infer",
    "blend_block",
    "default_infer_block",
    "infer_block",
]

log = logging.getLogger(__name__)

# A block holds at least this many voxels per axis where the volume allows it (larger
# blocks evaluate fewer border tiles twice; memory is K classes x the block in float32).
_DEFAULT_BLOCK_EDGE = 256
_SCRATCH = "labels.zarr"
_BLOCKS = "blocks"
_STATS = "stats.json"
_JOB = "job.json"


@dataclass(frozen=True)
class InferJob:
    """One store's inference: the model, the tiling and the output label image.

    Attributes
    ----------
    store : str
        Store path (absolute, visible to every worker).
    model : str
        Model path (absolute, visible to every worker).
    name : str
        Label image written into the store (``labels/<name>``).
    block : (3,) ints
        Block shape (z, y, x), whole chunks of the image.
    runtime, device, tile, overlap, halo, batch_size, threshold
        As ``vrscope infer``.
    objects : int, optional
        Write the objects of this class instead of the class labels (``vrscope infer
        --objects``), with ``closing_um``, ``min_volume_um3`` and ``watershed_um``.
    allow_missing : bool, default: False
        A damaged chunk of the image (corrupt, a folder in place of its file,
        unreadable) reads as the fill value and is listed (``InferOutcome.unreadable``)
        instead of failing the store (``--allow-missing``). Not part of :meth:`params`:
        a run refused for a damaged chunk can be resumed with it.
    """

    store: str
    model: str
    name: str
    block: tuple[int, int, int]
    runtime: str | None = None
    device: str = "auto"
    tile: tuple[int, ...] | None = None
    overlap: int | None = None
    halo: int | None = None
    batch_size: int = 4
    threshold: float = 0.5
    objects: int | None = None
    closing_um: float = 0.0
    min_volume_um3: float = 0.0
    watershed_um: float | None = None
    allow_missing: bool = False

    def params(self) -> dict[str, Any]:
        out = asdict(self)
        del out["allow_missing"]
        for key in ("block", "tile"):
            if out[key] is not None:
                out[key] = list(out[key])
        return out


def default_infer_block(
    shape: Sequence[int], chunks: Sequence[int], edge: int = _DEFAULT_BLOCK_EDGE
) -> tuple[int, int, int]:
    """Whole chunks per axis, at least ``edge`` voxels (or the whole axis)."""
    out = []
    for n, c in zip(shape[-3:], chunks[-3:], strict=True):
        c = max(1, int(c))
        out.append(min(max(c, math.ceil(edge / c) * c), max(int(n), 1)))
    return (out[0], out[1], out[2])


# -- on a worker -------------------------------------------------------------------------

# One model per worker process and model file: loading it for every block would cost
# more than a small block's inference.
_MODELS: dict[tuple[str, str | None, str], Any] = {}
_MODELS_LOCK = threading.Lock()


def _predictor(job: InferJob, *, on_worker: bool = True) -> Any:
    from analysis.inference import load_model

    if not on_worker:  # the client only plans: it must not change its process's torch
        return load_model(job.model, runtime=job.runtime, device=job.device)
    key = (job.model, job.runtime, job.device)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _one_thread()
            _MODELS[key] = load_model(job.model, runtime=job.runtime, device=job.device)
        return _MODELS[key]


def _one_thread() -> None:
    """Torch on one thread: workers are single-threaded, one per core (more threads would
    only fight over the cores), and a CPU model's output depends on its thread count in
    the last bits, so every worker, however started, computes the same numbers."""
    import torch

    torch.set_num_threads(1)


def _setup(
    job: InferJob, *, on_worker: bool = True, unreadable: list[ChunkError] | None = None
) -> tuple[Any, Any, Any, Any]:
    """(predictor, image source, input volume, tile plan) of a job.

    The input reads every chunk checked (``ZarrVolumeSource.checked``): a damaged one
    raises its :class:`ChunkError` unless ``job.allow_missing``; then it reads as the
    fill value and its error goes to ``unreadable`` (when given).
    """
    from analysis.inference import InputVolume, plan_tiles
    from analysis.io import open_volume

    predictor = _predictor(job, on_worker=on_worker)
    src = open_volume(job.store)
    if job.allow_missing and unreadable is None:
        unreadable = []  # listed by the blocks, which read every chunk
    inp = InputVolume(src.checked(unreadable if job.allow_missing else None))
    if inp.shape[0] != predictor.spec.in_channels:
        raise ParameterError(
            f"model {predictor.spec.name!r} needs {predictor.spec.in_channels} input "
            f"channel(s); {job.store} has {inp.shape[0]}"
        )
    plan = plan_tiles(inp.spatial_shape, predictor.spec, job.tile, job.overlap, job.halo)
    return predictor, src, inp, plan


def stats_moments(job: InferJob, step: int, z0: int, z1: int) -> tuple[Any, ...]:
    """The task of one z-block of one mean/std statistic: its moments."""
    from analysis.inference import Normalizer, block_moments

    predictor, _, inp, _ = _setup(job)
    norm = Normalizer((), inp, predictor.spec.dims)
    per_channel = norm.per_channel(predictor.spec.preprocessing[step])
    n, mean, m2 = block_moments(inp.read((slice(z0, z1), slice(None), slice(None))), per_channel)
    return n, mean.tolist(), m2.tolist()


def stats_whole(job: InferJob, step: int) -> tuple[list[float], list[float]]:
    """The task of a statistic that needs all values at once (percentiles)."""
    from analysis.inference import Normalizer

    predictor, _, inp, _ = _setup(job)
    norm = Normalizer((), inp, predictor.spec.dims)
    a, b = norm.stats(predictor.spec.preprocessing[step], range(inp.shape[1]))
    return np.asarray(a).tolist(), np.asarray(b).tolist()


def _tiles_meeting(plan: Any, start: Sequence[int], stop: Sequence[int]) -> list[list[int]]:
    """Per axis, the tiles whose core meets [start, stop)."""
    out = []
    for a, lo, hi in zip(plan.axes, start, stop, strict=True):
        out.append([i for i, s in enumerate(a.starts) if s < hi and min(s + a.core, a.length) > lo])
    return out


def _batches(
    plan: Any, tiles: list[tuple[int, int, int]], batch_size: int
) -> list[tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]]:
    """The model calls of a block: (tiles kept, tiles run) per call, in raster order.

    A CPU model's output for a tile is the same in any batch of two or more tiles, but a
    batch of one takes other kernels (oneDNN) and differs in the last bits. So a tile
    runs alone exactly where :func:`~analysis.inference.predict_tiled` runs it alone
    (``batch_size`` 1, or the last tile when ``n_tiles % batch_size == 1``); a lone
    remainder of the block's other tiles is run beside a copy of its neighbour (one
    evaluation more) instead of alone.
    """
    nz, ny, nx = (len(a.starts) for a in plan.axes)
    n_tiles = nz * ny * nx
    last = (nz - 1, ny - 1, nx - 1)
    alone = batch_size == 1 or n_tiles % batch_size == 1
    rest = [t for t in tiles if not (alone and (batch_size == 1 or t == last))]
    out = []
    for first in range(0, len(rest), batch_size):
        batch = rest[first : first + batch_size]
        run = batch + (rest[first - 1 : first] or batch) if len(batch) == 1 else batch
        out.append((batch, run))
    out += [([t], [t]) for t in tiles if t not in rest]  # the plan's lone tiles (last)
    return out


def blend_block(
    predictor: Any,
    inp: Any,
    plan: Any,
    norm: Any,
    start: Sequence[int],
    stop: Sequence[int],
    batch_size: int = 4,
) -> tuple[npt.NDArray[np.float32], int]:
    """Blended probabilities of the block [start, stop): what
    :func:`~analysis.inference.predict_tiled` gives there, bit for bit.

    Every tile of ``plan`` whose core meets the block is run (in batches of
    ``batch_size``, see :func:`_batches`) and its contribution added in raster order into
    a zero float32 block: per voxel the same float32 additions, in the same order, as the
    single process.

    Returns
    -------
    (probabilities, evaluations)
        (K, *block) float32, and the number of tile evaluations.
    """
    from analysis.inference import run_tile_batch, tile_contribution, tile_input_region

    spec = predictor.spec
    shape = tuple(b - a for a, b in zip(start, stop, strict=True))
    acc = np.zeros((spec.n_classes, *shape), dtype=np.float32)
    tiles: list[tuple[int, int, int]] = list(
        itertools.product(*_tiles_meeting(plan, start, stop))  # type: ignore[arg-type]
    )  # raster order
    evaluations = 0
    for batch, run in _batches(plan, tiles, batch_size):
        inputs = []
        for idx in run:
            lo, hi = tile_input_region(plan, idx)
            inputs.append(norm(inp.read_padded(lo, hi), max(lo[0], 0)))
        probs = run_tile_batch(predictor, inputs, spec.dims)
        evaluations += len(run)
        for k, idx in enumerate(batch):
            core, contrib = tile_contribution(plan, probs[k], idx)
            # The part of the core inside the block, in block and in core coordinates.
            a = [max(c.start, s) for c, s in zip(core, start, strict=True)]
            b = [min(c.stop, e) for c, e in zip(core, stop, strict=True)]
            dst = tuple(slice(p - s, q - s) for p, q, s in zip(a, b, start, strict=True))
            src = tuple(slice(p - c.start, q - c.start) for p, q, c in zip(a, b, core, strict=True))
            acc[(slice(None), *dst)] = acc[(slice(None), *dst)] + contrib[(slice(None), *src)]
    return acc, evaluations


def infer_block(
    job: InferJob,
    stats: dict[int, tuple[list[float], list[float]]],
    start: tuple[int, int, int],
    stop: tuple[int, int, int],
    parts_dir: str,
) -> int:
    """The task of one block: blended probabilities, class labels into the scratch array.

    Returns the number of tile evaluations.
    """
    from analysis.inference import Normalizer, labels_from_probabilities
    from analysis.io import ScratchVolume, write_json_atomic

    bad: list[ChunkError] = []
    predictor, _, inp, plan = _setup(job, unreadable=bad)
    given = {
        int(i): (np.asarray(a, np.float64), np.asarray(b, np.float64))
        for i, (a, b) in stats.items()
    }
    norm = Normalizer(predictor.spec.preprocessing, inp, predictor.spec.dims, stats=given)
    probs, evaluations = blend_block(predictor, inp, plan, norm, start, stop, job.batch_size)
    if job.objects is None:
        result = labels_from_probabilities(probs, threshold=job.threshold)
    else:
        result = probs[job.objects]  # objects need the whole map (see write_store_labels)
    parts = Path(parts_dir)
    scratch = ScratchVolume.reopen(parts / _SCRATCH)
    scratch[tuple(slice(a, b) for a, b in zip(start, stop, strict=True))] = result
    write_json_atomic(
        parts / _BLOCKS / f"{_unit_name(start)}.json",
        {"tiles": evaluations, "unreadable": [str(e) for e in bad]},
    )
    return evaluations


def write_store_labels(job: InferJob, parts_dir: str) -> str:
    """The task that writes the label image from the finished scratch array.

    Class labels are copied chunk by chunk, and so are objects made block-wise
    (:mod:`._objects`). Objects split by a watershed (``job.watershed_um``) are made here
    from the class's whole probability map by
    :func:`~analysis.inference.objects_from_probabilities`, as in ``vrscope infer
    --objects``, whose memory bound (the volume) this step shares: the flooding follows
    whole connected components, which have no exact block-wise form.
    """
    from analysis.io import ScratchVolume, open_volume, write_labels

    image = open_volume(job.store)
    scale = image.levels[0].scale_um
    scratch = ScratchVolume.reopen(Path(parts_dir) / _SCRATCH, scale_um=scale, name=job.name)
    result: Any = scratch
    if job.objects is not None and not job.watershed_um:  # made block-wise (._objects)
        result = ScratchVolume.reopen(
            Path(parts_dir) / _objects.OBJECTS, scale_um=scale, name=job.name
        )
    elif job.objects is not None:
        from analysis.inference import objects_from_probabilities

        result = objects_from_probabilities(
            scratch.read(0),
            spacing=scale,
            threshold=job.threshold,
            closing_um=job.closing_um,
            min_volume_um3=job.min_volume_um3,
            method="watershed" if job.watershed_um else "components",
            min_distance_um=job.watershed_um or 1.0,
        )
    # overwrite: refusing an existing label image is the command's decision, taken before
    # the run; here it can only be this run's own half-written image (a killed worker).
    write_labels(job.store, job.name, result, overwrite=True)
    return job.name


def _unit_name(start: Sequence[int]) -> str:
    return f"z{start[0]}_y{start[1]}_x{start[2]}"


# -- on the client -----------------------------------------------------------------------


@dataclass(frozen=True)
class InferOutcome:
    """One store's outcome.

    Attributes
    ----------
    store : str
    ok : bool
    error : str
        The first failure's line, with the number of failed units.
    skipped : bool
        ``resume`` found the label image written by an earlier run.
    blocks_total, blocks_run : int
    tiles, tile_evaluations : int
        Tiles of the plan, and tiles evaluated by the blocks run (border tiles once per
        block they touch).
    unreadable : tuple of str
        The errors of the damaged chunks read as empty (``InferJob.allow_missing``).
    """

    store: str
    ok: bool
    error: str = ""
    skipped: bool = False
    blocks_total: int = 0
    blocks_run: int = 0
    tiles: int = 0
    tile_evaluations: int = 0
    unreadable: tuple[str, ...] = ()


def _failed(store: str, results: Sequence[UnitResult]) -> InferOutcome:
    """One line for a store whose units failed: the first failure, and how many."""
    bad = [r for r in results if not r.ok]
    unit = bad[0].unit.removeprefix(f"{store} ")
    more = f" ({len(bad)} units failed)" if len(bad) > 1 else ""
    return InferOutcome(store, False, error=f"{unit}: {bad[0].error}{more}")


def batch_infer(
    client: Any,
    jobs: Sequence[InferJob],
    parts_dirs: Sequence[str | os.PathLike[str]],
    *,
    resume: bool = False,
    progress: bool = False,
) -> list[InferOutcome]:
    """Run tiled inference of every job on a dask cluster, block by block.

    Parameters
    ----------
    client : distributed.Client
    jobs : sequence of InferJob
        One per store (block shapes resolved, paths absolute).
    parts_dirs : sequence of path-like, one per job
        Per-store work folder (statistics, scratch labels, one marker per finished
        block); kept when the store failed so that ``resume`` redoes only what is
        missing, removed once its label image is written.
    resume : bool, default: False
        Keep what an earlier run of the same jobs finished.
    progress : bool, default: False

    Returns
    -------
    list of InferOutcome, in the order of ``jobs``
        A store that failed does not stop the others.
    """
    from analysis.inference import merge_moments, moment_blocks, volume_stat_steps
    from analysis.io import (
        ScratchVolume,
        list_done,
        open_volume,
        read_json,
        remove_folder,
        reset_folder,
        write_json_atomic,
    )

    outcomes: dict[str, InferOutcome] = {}
    live: dict[str, tuple[InferJob, Path, Any, Any, Any]] = {}
    for job, parts_path in zip(jobs, parts_dirs, strict=True):
        parts = Path(parts_path)
        try:
            image = open_volume(job.store)
            if resume and not parts.exists() and job.name in image.label_names:
                outcomes[job.store] = InferOutcome(job.store, True, skipped=True)
                continue
            predictor, _, inp, plan = _setup(job, on_worker=False)
            chunks = image.levels[0].chunks[-3:]
            if any(
                b % c and b < n
                for b, c, n in zip(job.block, chunks, inp.spatial_shape, strict=True)
            ):
                raise ParameterError(
                    f"block {job.block} is not made of whole chunks {tuple(chunks)}"
                )
            if resume and parts.is_dir():
                before = read_json(parts / _JOB)
                if before is not None and before != job.params():
                    raise ParameterError(
                        f"--resume: {parts} holds blocks of another run; "
                        "run without --resume to start again"
                    )
            keep = resume and (parts / _SCRATCH).is_dir()
            reset_folder(parts, keep=keep)
            if not keep:
                if job.objects is not None:
                    if not 0 <= job.objects < predictor.spec.n_classes:
                        raise ParameterError(f"the model has no class {job.objects}")
                    dtype: Any = np.float32  # the class's probabilities
                else:
                    dtype = np.uint8 if predictor.spec.n_classes <= 255 else np.uint16
                ScratchVolume(inp.spatial_shape, dtype, chunks=chunks, folder=parts / _SCRATCH)
                reset_folder(parts / _BLOCKS, keep=False)
            write_json_atomic(parts / _JOB, job.params())
        except (FormatError, ParameterError, OSError, ValueError, KeyError) as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            outcomes[job.store] = InferOutcome(job.store, False, error=msg)
            continue
        live[job.store] = (job, parts, predictor, inp, plan)

    # 1. Whole-volume statistics: a reduction over z-blocks (or one task for percentiles).
    stat_units: dict[str, tuple[Any, ...]] = {}
    stat_plan: dict[str, dict[int, list[str]]] = {}
    stats: dict[str, dict[int, tuple[list[float], list[float]]]] = {}
    for store, (job, parts, predictor, inp, _) in live.items():
        done = read_json(parts / _STATS)
        if done is not None:
            stats[store] = {int(k): (v[0], v[1]) for k, v in done.items()}
            continue
        steps = predictor.spec.preprocessing
        plan_i: dict[int, list[str]] = {}
        for i in volume_stat_steps(steps, predictor.spec.dims):
            if steps[i].id == "zero_mean_unit_variance":
                names = []
                for zs in moment_blocks(inp):
                    unit = f"{store} stats {i} z{zs.start}-{zs.stop}"
                    stat_units[unit] = ("moments", job, i, zs.start, zs.stop)
                    names.append(unit)
                plan_i[i] = names
            else:
                unit = f"{store} stats {i}"
                stat_units[unit] = ("whole", job, i)
                plan_i[i] = [unit]
        stat_plan[store] = plan_i
    t0 = time.perf_counter()
    results = {
        r.unit: r
        for r in run_units(client, _stats_unit, {u: (a,) for u, a in stat_units.items()},
                           desc="statistics", progress=progress)
    }  # fmt: skip
    log.info(
        "infer: statistics done in %.1f s (%d tasks)", time.perf_counter() - t0, len(stat_units)
    )
    for store, plan_i in stat_plan.items():
        mine = [results[u] for names in plan_i.values() for u in names]
        if any(not r.ok for r in mine):
            outcomes[store] = _failed(store, mine)
            del live[store]
            continue
        merged: dict[int, tuple[list[float], list[float]]] = {}
        for i, names in plan_i.items():
            values = [results[u].value for u in names]
            if stat_units[names[0]][0] == "moments":
                mean, std = merge_moments(
                    [
                        (n, np.asarray(m, np.float64), np.asarray(q, np.float64))
                        for n, m, q in values
                    ]
                )
                merged[i] = (mean.tolist(), std.tolist())
            else:
                merged[i] = (list(values[0][0]), list(values[0][1]))
        write_json_atomic(live[store][1] / _STATS, {str(k): list(v) for k, v in merged.items()})
        stats[store] = merged

    # 2. Blocks.
    block_units: dict[str, tuple[Any, ...]] = {}
    owner: dict[str, str] = {}
    counts: dict[str, tuple[int, int]] = {}
    for store, (job, parts, _, inp, _plan) in live.items():
        done = list_done(parts / _BLOCKS)
        grid = block_grid(inp.spatial_shape, job.block)
        todo = [(s, e) for s, e in grid if f"{_unit_name(s)}.json" not in done]
        counts[store] = (len(grid), len(todo))
        for s, e in todo:
            unit = f"{store} {_unit_name(s)}"
            block_units[unit] = (job, stats[store], s, e, str(parts))
            owner[unit] = store
    t0 = time.perf_counter()
    block_results = run_units(
        client, infer_block, block_units, desc="infer blocks", progress=progress
    )
    log.info("infer: blocks done in %.1f s (%d tasks)", time.perf_counter() - t0, len(block_units))
    by_store: dict[str, list[UnitResult]] = {}
    for r in block_results:
        by_store.setdefault(owner[r.unit], []).append(r)
    evaluations: dict[str, int] = {}
    for store in list(live):
        mine = by_store.get(store, [])
        if any(not r.ok for r in mine):
            outcomes[store] = _failed(store, mine)
            del live[store]
        else:
            evaluations[store] = sum(int(r.value) for r in mine)

    # 3. Objects (--objects without --watershed): label, link and renumber block-wise.
    blockwise = {
        store: entry for store, entry in live.items() if entry[0].objects is not None
        and not entry[0].watershed_um
    }  # fmt: skip
    if blockwise:
        for store, bad in _objects_blockwise(client, blockwise, progress).items():
            outcomes[store] = bad
            del live[store]

    # 4. The label images, one task per store.
    write_units = {f"{store} labels": (job, str(parts)) for store, (job, parts, *_) in live.items()}
    t0 = time.perf_counter()
    written = run_units(
        client, write_store_labels, write_units, desc="write labels", progress=progress
    )
    log.info(
        "infer: label images done in %.1f s (%d tasks)", time.perf_counter() - t0, len(written)
    )
    for r in written:
        store = r.unit[: -len(" labels")]
        job, parts, _, _, plan = live[store]
        if not r.ok:
            outcomes[store] = _failed(store, [r])
            continue
        damaged: dict[str, None] = {}  # each chunk once (tiles of two blocks share some)
        for marker in sorted(list_done(parts / _BLOCKS)):
            for err in (read_json(parts / _BLOCKS / marker) or {}).get("unreadable", ()):
                damaged[str(err)] = None
        remove_folder(parts)
        total, run = counts[store]
        outcomes[store] = InferOutcome(
            store, True, blocks_total=total, blocks_run=run, tiles=plan.n_tiles,
            tile_evaluations=evaluations[store], unreadable=tuple(damaged),
        )  # fmt: skip
    return [outcomes[job.store] for job in jobs]


def _objects_blockwise(
    client: Any, live: dict[str, tuple[InferJob, Path, Any, Any, Any]], progress: bool
) -> dict[str, InferOutcome]:
    """The objects of every store's class map, block by block (:mod:`._objects`): three
    rounds of block tasks with a merge on the client. Returns the stores that failed."""
    from analysis.io import ScratchVolume, open_volume, remove_folder

    failed: dict[str, InferOutcome] = {}
    grids: dict[str, list[tuple[tuple[int, int, int], tuple[int, int, int]]]] = {}
    for store, (job, parts, _, inp, _) in live.items():
        grids[store] = block_grid(inp.spatial_shape, job.block)
        chunks = open_volume(job.store).levels[0].chunks[-3:]
        for folder in (_objects.CC, _objects.OBJECTS):  # redone whole on --resume
            remove_folder(parts / folder)
            ScratchVolume(inp.spatial_shape, np.int32, chunks=chunks, folder=parts / folder)

    def run(round_name: str, func: Any, args: dict[str, tuple[Any, ...]]) -> dict[str, Any]:
        t0 = time.perf_counter()
        results = run_units(client, func, args, desc=round_name, progress=progress)
        log.info("infer: %s done in %.1f s (%d tasks)", round_name, time.perf_counter() - t0,
                 len(results))  # fmt: skip
        by_store: dict[str, list[UnitResult]] = {}
        for r in results:
            by_store.setdefault(r.unit.rsplit(" ", 1)[0], []).append(r)
        for store, mine in by_store.items():
            if store not in failed and any(not r.ok for r in mine):
                failed[store] = _failed(store, mine)
        return {r.unit: r.value for r in results if r.ok}

    names = {store: [f"{store} {_unit_name(s)}" for s, _ in grid] for store, grid in grids.items()}
    counts = run(
        "label objects",
        _objects.label_objects_block,
        {
            u: (live[store][0], str(live[store][1]), s, e)
            for store, grid in grids.items()
            for u, (s, e) in zip(names[store], grid, strict=True)
        },
    )
    conns: dict[str, tuple[int, ...]] = {
        store: (1, 3) if live[store][0].min_volume_um3 > 0 else (1,) for store in grids
    }
    links = run(
        "link objects",
        _objects.link_objects_block,
        {
            u: (str(live[store][1]), s, e, live[store][0].block, conns[store])
            for store, grid in grids.items()
            if store not in failed
            for u, (s, e) in zip(names[store], grid, strict=True)
        },
    )
    relabel: dict[str, tuple[Any, ...]] = {}
    for store, grid in grids.items():
        if store in failed:
            continue
        job, parts, *_ = live[store]
        spacing = check_spacing(open_volume(job.store).levels[0].scale_um)
        luts = _objects.merge_objects(
            [counts[u] for u in names[store]],
            [links[u] for u in names[store]],
            float(np.prod(spacing)),
            job.min_volume_um3,
        )
        for u, (s, e), lut in zip(names[store], grid, luts, strict=True):
            relabel[u] = (str(parts), s, e, lut)
    run("relabel objects", _objects.relabel_block, relabel)
    return failed


def _stats_unit(spec: tuple[Any, ...]) -> Any:
    kind, job, *rest = spec
    if kind == "moments":
        return stats_moments(job, *rest)
    return stats_whole(job, *rest)
