"""``vrscope sample``: write a synthetic sample with known ground truth as OME-Zarr.

``vrscope sample fibsem OUT.zarr`` writes a FIB-SEM-like HeLa cell (labels ``cell``,
``nucleus``, ``mitochondria``, ``nuclear_pores``) and its per-object truth table
``OUT.truth.csv``; ``vrscope sample timelapse OUT.zarr`` writes moving, dividing
nuclei (t, z, y, x) with ``labels/nuclei``, the true lineage as GEFF in ``OUT.zarr/tracks``
and the lineage nodes as ``OUT.truth.csv``. See :mod:`analysis.synthetic`.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from vrscope.commands._options import add_store_layout_options, int_range

ORDER = 15

_EPILOG_FIBSEM = """\
The voxel size defaults to 10.24 µm / SIZE (0.04 µm at --size 256), so the cell keeps its
physical size and a larger SIZE resolves it more finely. The truth table (one row per
object: kind, label, voxel_count, volume_um3, surface_area_um2, centroid_z/y/x_um) is
written next to the store as OUTPUT.truth.csv (OUTPUT without .zarr).

example:
  vrscope sample fibsem cell.zarr --size 256 --seed 1
"""

_EPILOG_TIMELAPSE = """\
Labels follow the Cell Tracking Challenge convention (one id per track segment; daughters
get new ids). The lineage is GEFF in OUTPUT.zarr/tracks (node props t, z, y, x in µm,
label, track_id; edges parent -> child) and a CSV of the nodes is written next to the store
as OUTPUT.truth.csv.

example:
  vrscope sample timelapse nuclei.zarr --frames 30 --seed 2
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sample",
        help="write a synthetic sample with known ground truth (fibsem cell, timelapse)",
        description="Generate a synthetic sample with exact ground truth and write it as OME-Zarr.",
    )
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)

    f = kinds.add_parser(
        "fibsem",
        help="a FIB-SEM-like HeLa cell: nucleus, mitochondria, nuclear pores, ER",
        description=(
            "A FIB-SEM-like HeLa cell (dark-on-light EM contrast, noise, texture): cell body, "
            "nucleus with an invagination and a double envelope, nuclear pores with "
            "under-pore pockets, 50-300 mitochondria, ER-like texture; label images cell, "
            "nucleus, mitochondria, nuclear_pores."
        ),
        epilog=_EPILOG_FIBSEM,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    f.add_argument("output", metavar="OUTPUT.zarr", help="store to write")
    f.add_argument(
        "--size",
        type=int,
        default=256,
        metavar="N",
        help="edge length of the cubic volume in voxels, 96-512 (default: %(default)s)",
    )
    f.add_argument(
        "--voxel-size",
        type=float,
        metavar="UM",
        help="isotropic voxel size in µm (default: 10.24 / SIZE)",
    )
    _common(f)
    f.set_defaults(func=run)

    t = kinds.add_parser(
        "timelapse",
        help="moving, dividing fluorescent nuclei (t, z, y, x) with the true lineage",
        description=(
            "A 3D time-lapse of fluorescent nuclei that move (smooth random walk) and divide, "
            "with CTC-style instance labels and the true lineage as GEFF."
        ),
        epilog=_EPILOG_TIMELAPSE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument("output", metavar="OUTPUT.zarr", help="store to write")
    t.add_argument(
        "--frames",
        type=int_range(1, 10000),
        default=20,
        metavar="T",
        help="time points (default: %(default)s)",
    )
    t.add_argument(
        "--size",
        type=int,
        default=96,
        metavar="N",
        help="x and y size in voxels (0.5 µm); z covers the same 0.5 * N µm at 1 µm "
        "(default: %(default)s)",
    )
    t.add_argument(
        "--cells",
        type=int,
        metavar="N",
        help="nuclei in the first frame (default: one per 12,000 µm³, 8 at --size 96)",
    )
    _common(t)
    t.set_defaults(func=run)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--seed", type=int, default=0, help="random seed; same seed, same sample (default: 0)"
    )
    add_store_layout_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--no-progress", action="store_true", help="no progress output")


def run(args: argparse.Namespace) -> int:
    from analysis.errors import ParameterError
    from analysis.io import check_sample_output, write_fibsem_sample, write_timelapse_sample

    progress = not args.no_progress
    chunks: tuple[int, int, int] | None = None
    if args.chunks:
        if any(c < 1 for c in args.chunks):
            raise ParameterError(
                f"--chunks must be positive, got {' '.join(map(str, args.chunks))}"
            )
        chunks = (args.chunks[0], args.chunks[1], args.chunks[2])
    # Fail on a bad output path before spending time generating.
    store, _ = check_sample_output(args.output, args.overwrite)

    def say(message: str) -> None:
        if progress:
            print(message, file=sys.stderr, flush=True)

    bar: Any = None

    def on_stage(stage: str, done: int, total: int) -> None:
        # Created on the first call, i.e. after the generator has checked its arguments,
        # so a bad argument still gives a single error line.
        nonlocal bar
        if not progress:
            return
        if bar is None:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, desc=f"generating {args.kind}", unit="step")
        bar.set_postfix_str(stage)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    start = time.perf_counter()
    if args.kind == "fibsem":
        from analysis.synthetic import fibsem_cell

        sample = fibsem_cell(
            args.size, seed=args.seed, voxel_size_um=args.voxel_size, progress=on_stage
        )
        say(f"generated in {time.perf_counter() - start:.1f} s; writing {store}")
        truth = write_fibsem_sample(
            sample,
            store,
            version=args.ngff,
            chunks=chunks,
            overwrite=args.overwrite,
            progress=progress,
        )
        vz, vy, vx = sample.scale_um
        print(
            f"wrote {store} (NGFF {args.ngff}): image {sample.image.shape} uint8, voxel "
            f"{vz:g} x {vy:g} x {vx:g} µm"
        )
        print(
            f"labels: cell, nucleus, mitochondria ({sample.n_mitochondria}), "
            f"nuclear_pores ({sample.n_pores})"
        )
    else:
        from analysis.synthetic import timelapse

        tl = timelapse(
            args.frames, size=args.size, n_cells=args.cells, seed=args.seed, progress=on_stage
        )
        say(f"generated in {time.perf_counter() - start:.1f} s; writing {store}")
        truth = write_timelapse_sample(
            tl,
            store,
            version=args.ngff,
            chunks=chunks,
            overwrite=args.overwrite,
            progress=progress,
        )
        print(f"wrote {store} (NGFF {args.ngff}): image {tl.image.shape} uint16 (t, z, y, x)")
        print(
            f"labels: nuclei; lineage: {store / 'tracks'} (GEFF, {len(tl.nodes)} nodes, "
            f"{len(tl.tracks)} tracks, {len(tl.divisions)} divisions)"
        )
    print(f"truth: {truth}")
    say(f"done in {time.perf_counter() - start:.1f} s")
    return 0
