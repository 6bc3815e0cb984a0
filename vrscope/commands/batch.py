"""``vrscope batch``: profile, measure and infer many or huge stores on dask.distributed.

``vrscope batch profile STORE [STORE ...] --out DIR`` runs ``vrscope profile`` on every
store, one task per store; ``vrscope batch measure STORE --labels NAME --out TABLE`` runs
``vrscope measure`` block by block on one store; ``vrscope batch infer STORE [STORE ...]
--model M --out NAME`` runs ``vrscope infer`` block by block on every store; ``vrscope batch
segment STORE [STORE ...] --out DIR`` runs ``vrscope segment`` on every store, one task per
store. All start a
LocalCluster (``--workers N``, default one per core) or use an existing cluster
(``--scheduler tcp://HOST:PORT``). See :mod:`analysis.batch`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ORDER = 43

_EPILOG_PROFILE = """\
DIR receives one folder per store, named after it without .zarr (the files of
`vrscope profile`: CSV tables, summary.json, plots, report.html), and summary.csv with
one row per store (status, error, every number of its summary.json). A worker that dies
mid-run costs only its task, which dask reruns elsewhere; a store that cannot be read
(missing label image, corrupt chunk) is reported and the others finish (exit code 1).
Every chunk is checked: with --allow-missing, damaged chunks (corrupt, a folder in place
of the file, unreadable) count as empty instead, summary.csv's unreadable_chunks says how
many per store, the store's folder gets unreadable_chunks.json, and the last line starts
with INCOMPLETE.

examples:
  vrscope batch profile cells/*.zarr --out reports --workers 4
  vrscope batch profile cells/*.zarr --out reports --scheduler tcp://10.0.0.5:8786 --resume
  vrscope batch profile em.zarr --out rep --cell cell_seg --nucleus nuc --mitochondria mito \\
      --pores npc
"""

_EPILOG_MEASURE = """\
The label image is cut into blocks of whole chunks, one task each (--block; default: the
largest blocks whose labels take at most a quarter of a worker's memory limit, with at
least two blocks per worker). With --workers 1 the worker is a thread of the command
(no worker process to start; over --memory-per-worker it is paused, not restarted).
The table equals `vrscope measure` on the same store (same objects, volumes, centroids,
bounding boxes and surfaces): objects that cross blocks are reduced exactly (integer sums)
and measured again on their whole bounding box. Blocks done are kept in TABLE.parts/ until
the table is written, so --resume after an interrupted or failed run computes only the
missing blocks (with the blocks of that run). A block with a damaged chunk (corrupt, a
folder in place of the file, unreadable) fails, naming it; with --allow-missing such
chunks count as empty and the last line starts with INCOMPLETE.

examples:
  vrscope batch measure huge.zarr --labels mitochondria --out mito.parquet --workers 8
  vrscope batch measure s3-or-shared.zarr --labels cells --out cells.csv \\
      --scheduler tcp://10.0.0.5:8786
"""


_EPILOG_INFER = """\
Every store gets labels/NAME, the same files as `vrscope infer STORE --model M --out NAME`
with the same options: class labels (0 = first class) or, with --objects CLASS, the
objects of one class (threshold, closing, small-object removal, components or watershed).
Each store's image is cut into blocks of whole chunks (--block, default: at least 256
voxels per axis), one task each; whole-volume normalisation statistics are reduced first,
and every block blends all the tiles that reach into it, so the probabilities equal the
single-process ones bit for bit (torch on CPU). The files are those of `vrscope infer` run
with one torch thread (OMP_NUM_THREADS=1), as each worker runs; with more threads torch
rounds the last bits of the probabilities differently, which changes a label only at an
exact tie. --objects (threshold, --closing, --min-volume, 6-connected components) is
block-wise too, exact across block faces: each block is labelled, the labels touching
across faces are joined (a graph's connected components) and renumbered in the order of
vrscope infer (memory: a block). --watershed floods whole components, which has no exact
block-wise form: with it, the objects are made from the class's whole probability map in
one task per store, as vrscope infer does (memory: the volume). Finished blocks are kept in
STORE.NAME.parts/ until the label image is written, so --resume after an interrupted or
failed run computes only the missing blocks.

examples:
  vrscope batch infer cells/*.zarr --model mito/ --out mito_pred --workers 4
  vrscope batch infer huge.zarr --model model.onnx --out pred --tile 64 128 128 \\
      --scheduler tcp://10.0.0.5:8786 --resume
"""

_EPILOG_SEGMENT = """\
DIR receives one folder per store, named after it without .zarr: segmentation.zarr (the
files of `vrscope segment STORE --out segmentation.zarr` with the same options, voxel for
voxel) and result.json (threshold, objects), and summary.csv with one row per store
(status, error, threshold, objects). A store's folder appears only when complete, so
--resume skips exactly the stores done; a store that cannot be read is reported and the
others finish (exit code 1). With --allow-missing, damaged chunks of the image count as
empty (summary.csv's unreadable_chunks, the store's unreadable_chunks.json, a last line
starting with INCOMPLETE).

examples:
  vrscope batch segment cells/*.zarr --out seg --workers 4 --min-volume 0.5
  vrscope batch segment cells/*.zarr --out seg --scheduler tcp://10.0.0.5:8786 --resume
"""


def _cluster_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("cluster")
    x = g.add_mutually_exclusive_group()
    x.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="address of an existing dask scheduler (tcp://HOST:PORT); stores must be "
        "readable by its workers under the same paths",
    )
    x.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes of the LocalCluster this command starts (default: one per core)",
    )
    g.add_argument(
        "--memory-per-worker",
        metavar="SIZE",
        help="memory limit of each LocalCluster worker, e.g. 2GB (default: RAM / workers)",
    )
    g.add_argument(
        "--dashboard",
        nargs="?",
        const=":0",
        metavar="ADDRESS",
        help="serve the LocalCluster's dask dashboard (at ADDRESS, e.g. :8787; default: any "
        "free port) and print its address; off by default, as the statistical profiler that "
        "feeds it costs CPU all run long",
    )
    g.add_argument(
        "--resume",
        action="store_true",
        help="skip units already done by an earlier run (stores, blocks)",
    )


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "batch",
        help="profile, measure, infer or segment many or huge stores on a dask cluster (local or remote)",
        description=(
            "Run the analysis pipelines on dask.distributed: many stores (one task each) or "
            "huge ones (one task per block). Results equal the single-machine commands."
        ),
    )
    kinds = p.add_subparsers(dest="pipeline", metavar="PIPELINE", required=True)

    pr = kinds.add_parser(
        "profile",
        help="vrscope profile on many stores, one task per store",
        description="Run the cell-profiling report on every store, one dask task per store.",
        epilog=_EPILOG_PROFILE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pr.add_argument("stores", nargs="+", metavar="STORE", help="OME-Zarr stores (paths or URLs)")
    pr.add_argument("--out", required=True, metavar="DIR", help="output folder")
    from vrscope.commands._analysis_io import add_allow_missing_option
    from vrscope.commands.profile import add_profile_options

    add_profile_options(pr)
    add_allow_missing_option(pr)
    _cluster_options(pr)
    pr.set_defaults(func=run_profile)

    me = kinds.add_parser(
        "measure",
        help="vrscope measure on one huge label image, one task per block",
        description=(
            "Measure every object of a label image block by block on a dask cluster: the "
            "same table as vrscope measure, in memory bounded by the block size."
        ),
        epilog=_EPILOG_MEASURE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    me.add_argument("store", metavar="STORE", help="OME-Zarr image with labels/ (path or URL)")
    me.add_argument("--labels", required=True, metavar="NAME", help="label image to measure")
    me.add_argument("--out", required=True, metavar="TABLE", help="output table: .csv or .parquet")
    me.add_argument("--level", type=int, default=0, help="resolution level (default: 0)")
    me.add_argument(
        "--block",
        nargs=3,
        type=int,
        metavar=("Z", "Y", "X"),
        help="block shape in voxels, best a multiple of the chunk shape "
        "(default: from the workers' memory limit and number, see below)",
    )
    me.add_argument(
        "--surface",
        choices=("smooth", "binary"),
        default="smooth",
        help="surface area method, as in vrscope measure (default: smooth)",
    )
    add_allow_missing_option(me)
    _cluster_options(me)
    me.set_defaults(func=run_measure)

    from vrscope.commands._options import int_range
    from vrscope.commands.infer import add_object_options

    inf = kinds.add_parser(
        "infer",
        help="vrscope infer on many or huge stores, one task per block",
        description=(
            "Segment the images of many stores, or of a huge one, with a model on a dask "
            "cluster, block by block: the same label images as vrscope infer."
        ),
        epilog=_EPILOG_INFER,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    inf.add_argument("stores", nargs="+", metavar="STORE", help="OME-Zarr image stores (paths)")
    inf.add_argument("--model", required=True, metavar="MODEL", help="model file or folder")
    inf.add_argument(
        "--out", required=True, metavar="NAME", help="label image written into every store"
    )
    inf.add_argument(
        "--tile", type=int_range(1, 4096), nargs="+", metavar="N",
        help="tile size: Z Y X (3D) or Y X (2D)",
    )  # fmt: skip
    inf.add_argument(
        "--overlap", type=int, metavar="N", help="overlap of tile cores (default: 1/4)"
    )
    inf.add_argument("--halo", type=int, metavar="N", help="context discarded at tile borders")
    inf.add_argument(
        "--batch-size", type=int_range(1, 4096), default=4, help="tiles per model call (default: 4)"
    )
    inf.add_argument("--runtime", choices=("torch", "onnx"), help="default: torch, onnx for .onnx")
    inf.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, mps")
    inf.add_argument(
        "--threshold", type=float, default=0.5, help="one-class models: probability cut (0.5)"
    )
    add_object_options(inf)
    inf.add_argument(
        "--block", nargs=3, type=int, metavar=("Z", "Y", "X"),
        help="block shape in voxels, whole chunks (default: at least 256 per axis)",
    )  # fmt: skip
    inf.add_argument("--overwrite", action="store_true", help="replace existing label images")
    add_allow_missing_option(inf)
    _cluster_options(inf)
    inf.set_defaults(func=run_infer)

    from vrscope.commands.segment import add_segment_options

    se = kinds.add_parser(
        "segment",
        help="vrscope segment on many stores, one task per store",
        description="Segment the image of every store (threshold, components, clean-up), "
        "one dask task per store: the same label images as vrscope segment.",
        epilog=_EPILOG_SEGMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    se.add_argument("stores", nargs="+", metavar="STORE", help="OME-Zarr stores (paths or URLs)")
    se.add_argument("--out", required=True, metavar="DIR", help="output folder")
    add_segment_options(se)
    _cluster_options(se)
    se.set_defaults(func=run_segment)


def _abs_store(store: str) -> str:
    from pathlib import Path

    return store if "://" in store else str(Path(store).expanduser().resolve())


_HINT = " (pass --allow-missing to count unreadable chunks as empty)"


def _with_hint(error: str) -> str:
    """A failure's line; a damaged chunk's says how to run anyway."""
    return error + _HINT if "ChunkError: " in error else error


def _report_failures(outcomes: Sequence[Any], what: str) -> int:
    failed = [r for r in outcomes if not r.ok]
    if not failed:
        return 0
    print(f"{len(failed)} {what} failed:", file=sys.stderr)
    for r in failed:
        print(f"  {r.unit}: {_with_hint(r.error)}", file=sys.stderr)
    return 1


def _client(args: argparse.Namespace, *, processes: bool = True) -> Any:
    import logging

    import distributed  # noqa: F401  (its import sets up its loggers, at INFO)

    from analysis.batch import cluster_client
    from analysis.errors import ParameterError

    if not getattr(args, "verbose", 0):
        # distributed logs every start, connection and stop at INFO: keep warnings (a worker
        # lost, a task rerun) and errors only, unless -v.
        logging.getLogger("distributed").setLevel(logging.WARNING)
    if args.workers is not None and args.workers < 1:
        raise ParameterError(f"--workers must be at least 1, got {args.workers}")
    return cluster_client(
        args.scheduler,
        args.workers,
        memory_limit=args.memory_per_worker,
        processes=processes,
        dashboard=args.dashboard,
    )


def _announce(client: Any, args: argparse.Namespace) -> None:
    from analysis.batch import dashboard_link

    n = len(client.scheduler_info().get("workers", {}))
    # A cluster of ours serves a dashboard only when asked for; a remote one's is shown.
    link = dashboard_link(client) if args.dashboard or args.scheduler else None
    where = f"scheduler {client.scheduler.address}, {n} worker(s)"
    print(where + (f", dashboard {link}" if link else ""), flush=True)


def _stores_output_folder(args: argparse.Namespace) -> Path:
    """``--out`` of a many-stores command: a folder (new or not) that holds no input."""
    from analysis.errors import FormatError
    from analysis.io import check_output

    out = Path(args.out).expanduser()
    check_output(out, args.stores)  # outputs never destroy inputs
    if out.exists() and not out.is_dir():
        raise FormatError(f"--out {out} exists and is not a folder")
    if not out.parent.is_dir():
        raise FormatError(f"output folder {out.parent} does not exist")
    return out


def _check_stores_exist(stores: Sequence[str]) -> None:
    from analysis.errors import FormatError

    for store in stores:
        if "://" not in store and not Path(store).expanduser().exists():
            raise FormatError(f"store {store} does not exist")


def _report_stores(outcomes: Sequence[Any], verb: str, out: Path) -> int:
    """One line of counts for a many-stores run, then the failures (exit 1 if any); with
    damaged chunks read as empty (``--allow-missing``), ``INCOMPLETE: ...`` last."""
    done = sum(1 for r in outcomes if r.ok and not r.skipped)
    skipped = sum(1 for r in outcomes if r.skipped)
    print(
        f"{done} {verb}, {skipped} already done, "
        f"{sum(1 for r in outcomes if not r.ok)} failed -> {out / 'summary.csv'}"
    )
    code = _report_failures(outcomes, "store(s)")
    damaged = [len(r.value["unreadable_chunks"]) for r in outcomes if r.ok]
    _report_incomplete(
        sum(damaged),
        f"in {sum(1 for n in damaged if n)} store(s) (summary.csv's unreadable_chunks; each "
        "store's unreadable_chunks.json names them)",
    )
    return code


def _report_incomplete(chunks: int, where: str = "(the warnings above name them)") -> None:
    """The last line of a run that read damaged chunks as empty (``--allow-missing``)."""
    if chunks:
        print(f"INCOMPLETE: {chunks} chunk(s) unreadable, counted as empty {where}")


def run_profile(args: argparse.Namespace) -> int:
    from analysis.batch import ProfileOptions, batch_profile
    from vrscope.commands._analysis_io import progress_enabled
    from vrscope.commands.profile import check_profile_options, label_names

    out = _stores_output_folder(args)
    check_profile_options(args)
    _check_stores_exist(args.stores)
    options = ProfileOptions(
        label_names=label_names(args), k=args.k, bandwidth_um=args.bandwidth_um,
        image=not args.no_image, allow_missing=args.allow_missing,
    )  # fmt: skip
    with _client(args) as client:
        _announce(client, args)
        outcomes, _ = batch_profile(
            client, args.stores, out, options, resume=args.resume, progress=progress_enabled()
        )
    return _report_stores(outcomes, "profiled", out)


def run_segment(args: argparse.Namespace) -> int:
    from analysis.batch import batch_segment
    from vrscope.commands._analysis_io import progress_enabled
    from vrscope.commands.segment import segment_options

    out = _stores_output_folder(args)
    options = segment_options(args)
    _check_stores_exist(args.stores)
    with _client(args) as client:
        _announce(client, args)
        outcomes = batch_segment(
            client, args.stores, out, options, resume=args.resume, progress=progress_enabled()
        )
    return _report_stores(outcomes, "segmented", out)


def run_measure(args: argparse.Namespace) -> int:
    import numpy as np

    from analysis.batch import MeasureJob, batch_measure, budget_block, worker_memory
    from analysis.errors import ParameterError
    from analysis.io import open_volume, read_json, write_table
    from vrscope.commands._analysis_io import check_table_output, progress_enabled

    out = check_table_output(args.out, [args.store])
    store = _abs_store(args.store)
    labels_src = open_volume(store).open_labels(args.labels)
    if not 0 <= args.level < len(labels_src.levels):
        raise ParameterError(
            f"label image {args.labels!r} has no level {args.level} "
            f"(it has {len(labels_src.levels)})"
        )
    level = labels_src.levels[args.level]
    block: tuple[int, ...] | None = None
    if args.block is not None:
        block = tuple(args.block)
        if any(b < 1 for b in block):
            raise ParameterError(f"--block must be positive, got {' '.join(map(str, block))}")
    parts = out.with_name(out.name + ".parts")
    if block is None and args.resume:
        before = read_json(parts / "job.json")  # the blocks of the run to finish
        if before is not None and len(before.get("block", ())) == 3:
            block = tuple(int(b) for b in before["block"])
    # One worker runs as a thread of this process: no worker process to start, no second
    # import of the analysis stack (the results are the same; docs/benchmarks.md).
    with _client(args, processes=args.scheduler is not None or args.workers != 1) as client:
        _announce(client, args)
        if block is None:
            n_workers = len(client.scheduler_info().get("workers", {})) or 1
            block = budget_block(
                level.shape, level.chunks, np.dtype(labels_src.dtype).itemsize,
                worker_memory(client), n_workers,
            )  # fmt: skip
        job = MeasureJob(
            store, args.labels, args.level, (block[0], block[1], block[2]), args.surface,
            allow_missing=args.allow_missing,
        )  # fmt: skip
        result = batch_measure(client, job, parts, resume=args.resume, progress=progress_enabled())
    if result.table is None:
        print(
            f"no table written; blocks done so far are kept in {parts} (rerun with --resume)",
            file=sys.stderr,
        )
        return _report_failures(result.outcomes, "unit(s)")
    if result.table.empty:
        raise ParameterError(f"label image {args.labels!r} has no objects (all zero)")
    write_table(result.table, out)
    print(
        f"{len(result.table)} objects of {args.labels!r} -> {out} "
        f"({result.blocks_run} of {result.blocks_total} blocks computed)"
    )
    if result.unreadable:
        import logging

        for err in result.unreadable:
            logging.getLogger("vrscope").warning("%s", err)
        _report_incomplete(len(result.unreadable))
    return 0


def run_infer(args: argparse.Namespace) -> int:
    from pathlib import Path

    from analysis.batch import InferJob, batch_infer, default_infer_block
    from analysis.errors import FormatError, ParameterError
    from analysis.io import open_volume
    from vrscope.cli import require_extra
    from vrscope.commands._analysis_io import progress_enabled
    from vrscope.commands.infer import class_index, label_target

    require_extra("torch", "ml")
    from analysis.inference import load_model

    model = Path(args.model).expanduser()
    if not model.exists():
        raise FormatError(f"model {args.model} does not exist")
    spec = load_model(str(model), runtime=args.runtime, device=args.device).spec
    if args.tile and len(args.tile) != spec.dims:
        raise ParameterError(f"--tile needs {spec.dims} sizes for this {spec.dims}D model")
    k_obj = class_index(spec.class_names, args.objects) if args.objects is not None else None
    if args.block is not None and any(b < 1 for b in args.block):
        raise ParameterError(f"--block must be positive, got {' '.join(map(str, args.block))}")
    jobs: list[InferJob] = []
    parts: list[Path] = []
    for store in args.stores:
        path = Path(store).expanduser()
        if "://" in store or not path.is_dir():
            raise FormatError(f"store {store} does not exist (batch infer writes local stores)")
        name = label_target(store, args.out)
        path = path.resolve()
        if str(path) in (j.store for j in jobs):
            raise ParameterError(f"store {store} is given twice")
        part = path.with_name(f"{path.name}.{name}.parts")
        try:
            image = open_volume(str(path))
        except (FormatError, ParameterError, OSError, ValueError, KeyError):
            image = None  # reported as this store's failure by the run
        # --resume: a label image there is done (no parts) or this run's own (parts).
        if image is not None and name in image.label_names and not (args.overwrite or args.resume):
            raise FormatError(f"{store} already has labels/{name} (use --overwrite or --resume)")
        level = image.levels[0] if image is not None else None
        block = (
            tuple(args.block)
            if args.block is not None
            else default_infer_block(level.shape, level.chunks)
            if level is not None
            else (1, 1, 1)
        )
        jobs.append(
            InferJob(
                str(path), str(model.resolve()), name, block,
                runtime=args.runtime, device=args.device,
                tile=tuple(args.tile) if args.tile else None, overlap=args.overlap,
                halo=args.halo, batch_size=args.batch_size, threshold=args.threshold,
                objects=k_obj, closing_um=args.closing, min_volume_um3=args.min_volume,
                watershed_um=args.watershed, allow_missing=args.allow_missing,
            )
        )  # fmt: skip
        parts.append(part)
    with _client(args) as client:
        _announce(client, args)
        outcomes = batch_infer(client, jobs, parts, resume=args.resume, progress=progress_enabled())
    for job, res in zip(jobs, outcomes, strict=True):
        if res.ok and not res.skipped:
            print(
                f"{job.store} -> labels/{job.name} ({res.blocks_run} of {res.blocks_total} "
                f"blocks computed, {res.tile_evaluations} tile evaluations)"
            )
    done = sum(1 for r in outcomes if r.ok and not r.skipped)
    skipped = sum(1 for r in outcomes if r.skipped)
    failed = [r for r in outcomes if not r.ok]
    print(f"{done} inferred, {skipped} already done, {len(failed)} failed")
    if failed:
        print(
            f"{len(failed)} store(s) failed (rerun with --resume to finish them):",
            file=sys.stderr,
        )
        for r in failed:
            print(f"  {r.store}: {_with_hint(r.error)}", file=sys.stderr)
    damaged = [r for r in outcomes if r.ok and r.unreadable]
    if damaged:
        import logging

        for r in damaged:
            for err in r.unreadable:
                logging.getLogger("vrscope").warning("%s", err)
        _report_incomplete(
            sum(len(r.unreadable) for r in damaged),
            f"in {len(damaged)} store(s) (the warnings above name them)",
        )
    return 1 if failed else 0
