"""``vrscope convert``: TIFF / PNG slices / .npy / HDF5 to a multiscale OME-Zarr store.

The input is opened lazily (:func:`analysis.io.open_input`) and the writer pulls
chunk-sized regions through it, so inputs larger than memory convert fine.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from vrscope.commands._options import add_store_layout_options

ORDER = 20

_EPILOG = """\
INPUT is one of
  stack.tif / stack.ome.tif      multi-page, ImageJ or OME TIFF
  slices/  or 'slices/*.png'     a folder (or glob) of PNG or TIFF slices, natural sort order
  volume.npy                     a NumPy array (memory-mapped)
  file.h5:dataset                an HDF5 dataset; file.h5.gz:dataset works too (decompressed
                                 to $VRSCOPE_CACHE_DIR or the system temp folder, then removed)
  other.zarr                     an OME-Zarr store (re-chunk, change NGFF version)

example (the Janelia FIB-SEM medulla: PNG slices + supervoxels mapped to neuron bodies):
  vrscope convert fibsem-medulla/grayscale_maps medulla.zarr --voxel-size 10 10 10 \\
      --unit nanometer --labels-from fibsem-medulla/groundtruth.h5.gz:stack \\
      --labels-lookup fibsem-medulla/groundtruth.h5.gz:transforms --labels-name bodies
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "convert",
        help="convert a TIFF stack, PNG/TIFF slices, .npy or HDF5 volume to OME-Zarr",
        description=(
            "Convert a volume to a multiscale OME-Zarr store (full pyramid, written chunk by "
            "chunk), optionally with a label image."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="INPUT", help="volume to convert (see below)")
    p.add_argument("output", metavar="OUTPUT.zarr", help="OME-Zarr store to write")
    p.add_argument(
        "--voxel-size",
        nargs=3,
        type=float,
        metavar=("Z", "Y", "X"),
        help="voxel size in --unit (default: from the input's metadata; required when it has none)",
    )
    p.add_argument(
        "--unit",
        default="micrometer",
        help="length unit of --voxel-size, also written to the store "
        "(e.g. micrometer, nanometer; default: %(default)s)",
    )
    add_store_layout_options(p)
    p.add_argument(
        "--levels",
        type=int,
        metavar="N",
        help="number of pyramid levels (default: down to a chunk)",
    )
    p.add_argument("--name", help="image name in the metadata (default: the input's name)")
    p.add_argument(
        "--labels-from",
        metavar="SPEC",
        help="label image to add (same kinds of INPUT; same shape as the image)",
    )
    p.add_argument(
        "--labels-name",
        metavar="NAME",
        default="labels",
        help="name of the label image under labels/ (default: %(default)s)",
    )
    p.add_argument(
        "--labels-lookup",
        metavar="SPEC",
        help="(N, 2) table of (old id, new id) applied to the labels: FILE.h5:DATASET, "
        ".npy or CSV (e.g. groundtruth.h5.gz:transforms maps supervoxels to bodies)",
    )
    p.add_argument(
        "--labels-missing",
        choices=("zero", "keep", "error"),
        default="zero",
        help="what ids absent from the lookup table become (default: %(default)s, background)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _voxel_size_um(args: argparse.Namespace, source: Any) -> tuple[float, float, float]:
    from analysis.errors import FormatError, ParameterError
    from analysis.io import space_unit_to_um

    try:
        factor = space_unit_to_um(args.unit, "z")
    except FormatError as exc:  # its wording is about store metadata; say it as a CLI error
        raise ParameterError(
            f"--unit {args.unit!r} is not a length unit (e.g. micrometer, nanometer)"
        ) from exc
    if args.voxel_size is not None:
        if not all(math.isfinite(v) and v > 0 for v in args.voxel_size):
            raise ParameterError(
                f"--voxel-size must be three positive numbers, got {' '.join(map(str, args.voxel_size))}"
            )
        z, y, x = (float(v) * factor for v in args.voxel_size)
        return (z, y, x)
    from_file = getattr(source, "voxel_size_um", None)
    if from_file is None and hasattr(source, "ngff_version"):  # an OME-Zarr input
        from_file = source.levels[0].scale_um
    if from_file is None:
        raise ParameterError(f"{args.input} does not store a voxel size; give --voxel-size Z Y X")
    z, y, x = (float(v) for v in from_file)
    return (z, y, x)


def run(args: argparse.Namespace) -> int:
    from analysis.errors import ParameterError
    from analysis.io import (
        LookupVolumeSource,
        check_output,
        open_input,
        read_lookup_table,
        replacing,
        write_labels,
        write_ngff,
    )
    from vrscope.commands._analysis_io import progress_enabled

    out = Path(args.output)
    if args.labels_lookup and not args.labels_from:
        raise ParameterError("--labels-lookup needs --labels-from")
    if args.chunks is not None and any(c <= 0 for c in args.chunks):
        raise ParameterError(f"--chunks must be positive, got {' '.join(map(str, args.chunks))}")
    if args.levels is not None and args.levels < 1:
        raise ParameterError(f"--levels must be at least 1, got {args.levels}")
    inputs = [args.input] + [a for a in (args.labels_from, args.labels_lookup) if a]
    check_output(out, inputs)
    if out.exists() and not args.overwrite:
        raise ParameterError(f"{out} already exists; pass --overwrite to replace it")

    opened: list[Any] = []
    try:
        image = open_input(args.input)
        opened.append(image)
        scale_um = _voxel_size_um(args, image)
        labels = None
        if args.labels_from:
            labels = open_input(args.labels_from)
            opened.append(labels)
            if labels.levels[0].shape != image.levels[0].shape:
                raise ParameterError(
                    f"labels {args.labels_from} have shape {labels.levels[0].shape}, "
                    f"but the image has {image.levels[0].shape}"
                )
            if labels.dtype.kind not in "iu":
                raise ParameterError(
                    f"labels {args.labels_from} hold {labels.dtype} values; labels must be integers"
                )
            if args.labels_lookup:
                table = read_lookup_table(args.labels_lookup)
                labels = LookupVolumeSource(
                    labels, table, missing=args.labels_missing, name=args.labels_name
                )
        chunks = tuple(args.chunks) if args.chunks is not None else None
        progress = not args.no_progress and progress_enabled()
        # Built beside OUTPUT, which it replaces only once complete.
        with replacing(out, overwrite=args.overwrite) as tmp:
            write_ngff(
                image,
                tmp,
                version=args.ngff,
                scale_um=scale_um,
                unit=args.unit,
                chunks=chunks,
                n_levels=args.levels,
                name=args.name if args.name else image.name,
                progress=progress,
            )
            if labels is not None:
                write_labels(tmp, args.labels_name, labels, chunks=chunks, progress=progress)
    finally:
        for src in reversed(opened):
            close = getattr(src, "close", None)
            if callable(close):
                close()
    shape = " x ".join(str(s) for s in image.levels[0].shape)
    voxel = " x ".join(f"{v:g}" for v in scale_um)
    print(f"wrote {out}: NGFF {args.ngff}, {shape} {image.dtype}, voxel {voxel} µm")
    if labels is not None:
        print(f"  labels/{args.labels_name}: {labels.dtype}")
    return 0
