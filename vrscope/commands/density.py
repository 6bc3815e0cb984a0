"""``vrscope density``: kNN mean distance and Gaussian KDE density per object."""

from __future__ import annotations

import argparse
from typing import Any

from vrscope.commands._analysis_io import add_allow_missing_option
from vrscope.commands._options import add_remote_timeout_option, check_store_exists, remote_run

ORDER = 41

_EPILOG = """\
INPUT is either a features table (.csv/.parquet with label, centroid_z_um, centroid_y_um,
centroid_x_um, e.g. from `vrscope measure`) or an OME-Zarr label image: a store with
--labels NAME, or the label group itself (STORE.zarr/labels/NAME). The output keeps the
input columns (or label + centroids) and adds knn_mean_distance_um (mean distance to the
K nearest other objects) and kde_density (scikit-learn's Gaussian KernelDensity at each
object, bandwidth in µm, normalised to 1 over space).

examples:
  vrscope density cell.zarr --labels nuclear_pores --out pores.csv
  vrscope density pores_features.csv --k 8 --bandwidth-um 0.1 --out pores_density.csv
"""

_CENTROIDS = ["centroid_z_um", "centroid_y_um", "centroid_x_um"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "density",
        help="k-nearest-neighbour distance and kernel density per object",
        description=(
            "Add knn_mean_distance_um and kde_density to every object of a features table or "
            "a label image, from the objects' centroids in µm."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="INPUT", help="features table (.csv/.parquet) or label image")
    p.add_argument("--labels", metavar="NAME", help="label image name when INPUT is a store")
    p.add_argument("--k", type=int, default=8, help="neighbours for the mean distance (default: 8)")
    p.add_argument(
        "--bandwidth-um",
        type=float,
        default=0.1,
        help="Gaussian KDE bandwidth in µm (default: 0.1)",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="output table: .csv or .parquet")
    add_allow_missing_option(p)
    add_remote_timeout_option(p)
    p.set_defaults(func=remote_run(run))


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vrscope.commands._analysis_io import TABLE_SUFFIXES

    # a missing input is answered before the heavy imports (the messages reading it gives)
    if Path(args.input).suffix.lower() not in TABLE_SUFFIXES:
        check_store_exists(args.input)
    elif not Path(args.input).is_file():
        raise FileNotFoundError(2, "No such file", args.input)

    import numpy as np

    from analysis.density import gaussian_kde_density, knn_mean_distance
    from analysis.errors import ParameterError
    from vrscope.commands._analysis_io import (
        check_table_output,
        read_spatial,
        read_table,
        report_incomplete,
        unreadable_list,
        write_table,
    )

    out = check_table_output(args.out, [args.input])
    bad = unreadable_list(args)
    if args.k < 1:
        raise ParameterError(f"--k must be at least 1, got {args.k}")
    if not (np.isfinite(args.bandwidth_um) and args.bandwidth_um > 0):
        raise ParameterError(f"--bandwidth-um must be a positive number, got {args.bandwidth_um}")
    src_path = Path(args.input)
    if src_path.suffix.lower() in TABLE_SUFFIXES:
        table = read_table(src_path)
        missing = [c for c in ["label", *_CENTROIDS] if c not in table.columns]
        if missing:
            raise ParameterError(f"{src_path} lacks column(s) {', '.join(missing)}")
        what = str(src_path)
    else:
        from analysis.io import open_volume
        from analysis.morphology import measure_objects

        src = open_volume(args.input)
        if args.labels:
            src = src.open_labels(args.labels)
        elif not getattr(src, "is_label", False):
            # Never guess: the grey values of an image are not object ids.
            names = ", ".join(getattr(src, "label_names", ())) or "none"
            raise ParameterError(
                f"{args.input} is an image, not a label image: name one with --labels NAME "
                f"(its label images: {names})"
            )
        what = f"label image {args.labels or args.input!r}"
        labels = read_spatial(src, 0, what, bad)
        if not np.issubdtype(labels.dtype, np.integer):
            raise ParameterError(f"{what} is not an integer label image (dtype {labels.dtype})")
        if not labels.any():
            raise ParameterError(f"{what} has no objects (all zero)")
        table = measure_objects(labels, src.levels[0].scale_um, surface=False)
        table = table[["label", *_CENTROIDS, "volume_um3"]]
    try:
        pts = table[_CENTROIDS].to_numpy(np.float64)
    except (ValueError, TypeError) as exc:  # a text cell in a centroid column
        raise ParameterError(f"{what}: the centroid columns hold non-numbers ({exc})") from exc
    if not np.isfinite(pts).all():
        row = int(np.flatnonzero(~np.isfinite(pts).all(axis=1))[0])
        raise ParameterError(f"{what}: centroid of row {row + 1} is not finite")
    if len(pts) < args.k + 1:
        raise ParameterError(
            f"--k {args.k} needs at least {args.k + 1} objects, {what} has {len(pts)}"
        )
    table = table.copy()
    table["knn_mean_distance_um"] = knn_mean_distance(pts, args.k)
    table["kde_density"] = gaussian_kde_density(pts, args.bandwidth_um)
    write_table(table, out)
    print(f"{len(table)} objects -> {out}")
    report_incomplete(bad)
    return 0
