"""``vrscope measure``: the per-object morphology table of a label image (CSV or Parquet)."""

from __future__ import annotations

import argparse
from typing import Any

from vrscope.commands._analysis_io import add_allow_missing_option
from vrscope.commands._options import add_remote_timeout_option, check_store_exists, remote_run

ORDER = 40

_EPILOG = """\
columns: label, voxel_count, volume_um3, surface_area_um2, surface_to_volume, sphericity,
centroid_z_um, centroid_y_um, centroid_x_um, bbox_min_z/y/x, bbox_max_z/y/x (voxels, max
exclusive), equivalent_diameter_um, axis_major/middle/minor_length_um; with --image also
mean_intensity, min_intensity, max_intensity; with --parent also fraction_of_parent.

examples:
  vrscope measure cell.zarr --labels mitochondria --out mito.csv
  vrscope measure cell.zarr --labels mitochondria --image --parent cell --out mito.parquet
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "measure",
        help="per-object morphology table (volume, surface, shape, centroid) of a label image",
        description=(
            "Measure every object of a label image of an OME-Zarr store in physical units "
            "(µm, from the store's voxel size) and write one row per label to CSV or Parquet."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("store", metavar="STORE", help="OME-Zarr image with labels/ (folder or URL)")
    p.add_argument("--labels", required=True, metavar="NAME", help="label image to measure")
    p.add_argument(
        "--image", action="store_true", help="add mean/min/max intensity from the store's image"
    )
    p.add_argument(
        "--parent",
        metavar="NAME",
        help="label image of the parent (e.g. cell): adds fraction_of_parent",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="output table: .csv or .parquet")
    p.add_argument("--level", type=int, default=0, help="resolution level to measure (default: 0)")
    p.add_argument(
        "--surface",
        choices=("smooth", "binary"),
        default="smooth",
        help="surface area method (default: smooth; binary = marching cubes on the raw mask)",
    )
    add_allow_missing_option(p)
    add_remote_timeout_option(p)
    p.set_defaults(func=remote_run(run))


def run(args: argparse.Namespace) -> int:
    check_store_exists(args.store)
    from analysis.errors import ParameterError
    from analysis.io import open_volume
    from analysis.morphology import measure_objects
    from vrscope.commands._analysis_io import (
        check_table_output,
        progress_enabled,
        read_spatial,
        report_incomplete,
        unreadable_list,
        write_table,
    )

    out = check_table_output(args.out, [args.store])
    bad = unreadable_list(args)
    image_src = open_volume(args.store)
    labels_src = image_src.open_labels(args.labels)
    labels = read_spatial(labels_src, args.level, f"label image {args.labels!r}", bad)
    if not labels.any():
        raise ParameterError(f"label image {args.labels!r} has no objects (all zero)")
    spacing = labels_src.levels[args.level].scale_um
    image = None
    if args.image:
        image = read_spatial(image_src, args.level, "image", bad)
        if image.shape != labels.shape:
            raise ParameterError(
                f"image level {args.level} has shape {image.shape} but labels {labels.shape}"
            )
    parent = None
    if args.parent:
        parent_src = image_src.open_labels(args.parent)
        parent = read_spatial(parent_src, args.level, f"label image {args.parent!r}", bad)
        if parent.shape != labels.shape:
            raise ParameterError(
                f"parent {args.parent!r} has shape {parent.shape} but labels {labels.shape}"
            )
    table = measure_objects(
        labels,
        spacing,
        image=image,
        parent=parent,
        surface_method=args.surface,
        progress=progress_enabled(),
    )
    write_table(table, out)
    print(f"{len(table)} objects of {args.labels!r} -> {out}")
    report_incomplete(bad)
    return 0
