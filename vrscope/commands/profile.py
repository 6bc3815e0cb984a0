"""``vrscope profile``: the cell-profiling report (tables, plots, summary, report.html)."""

from __future__ import annotations

import argparse
from typing import Any

from vrscope.commands._analysis_io import add_allow_missing_option
from vrscope.commands._options import add_remote_timeout_option, check_store_exists, remote_run

ORDER = 42

_EPILOG = """\
The store needs label images of the cell, the nucleus, the mitochondria and the nuclear
pores: by default named cell, nucleus, mitochondria and nuclear_pores (as written by
`vrscope sample fibsem`); --cell, --nucleus, --mitochondria and --pores name others.
REPORT_DIR receives volumes.csv, mitochondria.csv, pores.csv, correlations.csv,
density_tests.csv, summary.json, PNG plots and a self-contained report.html (open it in any browser; images are embedded).

examples:
  vrscope sample fibsem cell.zarr --size 256
  vrscope profile cell.zarr --out cell_report
  vrscope profile em.zarr --out rep --cell cell_seg --nucleus nuc --mitochondria mito --pores npc
"""

# role (analysis.report.PROFILE_LABELS) -> option
_LABEL_OPTIONS = {
    "cell": "cell",
    "nucleus": "nucleus",
    "mitochondria": "mitochondria",
    "nuclear_pores": "pores",
}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "profile",
        help="cell profile report: organelle volumes, mitochondria S/V vs distance, pore density",
        description=(
            "Run the cell-profiling workflow on an OME-Zarr store: organelle volumes and "
            "percent of cell/cytoplasm; mitochondria surface-to-volume correlated with the "
            "distance to the nucleus and to the plasma membrane; nuclear-pore kNN distance, "
            "Gaussian KDE density and Student/Welch t-tests between the two halves of the "
            "nucleus (cut by its principal plane; summary.json also gives pores per µm² of "
            "envelope per half)."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("store", metavar="STORE", help="OME-Zarr image with the four label images")
    p.add_argument("--out", required=True, metavar="REPORT_DIR", help="output folder")
    add_profile_options(p)
    add_allow_missing_option(p)
    add_remote_timeout_option(p)
    p.set_defaults(func=remote_run(run))


def add_profile_options(p: argparse.ArgumentParser) -> None:
    """The label names and the settings of the workflow (shared with ``vrscope batch``)."""
    g = p.add_argument_group("label images")
    for role, opt in _LABEL_OPTIONS.items():
        g.add_argument(
            f"--{opt}",
            default=role,
            metavar="NAME",
            help=f"label image of the {role.replace('_', ' ')} (default: {role})",
        )
    p.add_argument("--k", type=int, default=8, help="neighbours for pore kNN distance (default: 8)")
    p.add_argument(
        "--bandwidth-um", type=float, default=0.1, help="pore KDE bandwidth in µm (default: 0.1)"
    )
    p.add_argument("--no-image", action="store_true", help="skip intensity columns")


def label_names(args: argparse.Namespace) -> dict[str, str]:
    """Role -> the store's label image name, from the options."""
    return {role: getattr(args, opt) for role, opt in _LABEL_OPTIONS.items()}


def check_profile_options(args: argparse.Namespace) -> None:
    """One-line errors for bad settings, before any work."""
    from analysis.errors import ParameterError

    if not args.bandwidth_um > 0:
        raise ParameterError(f"--bandwidth-um must be positive, got {args.bandwidth_um}")
    names = label_names(args)
    if len(set(names.values())) != len(names):
        raise ParameterError(
            "--cell, --nucleus, --mitochondria and --pores must name four different "
            f"label images, got {', '.join(names.values())}"
        )


def run(args: argparse.Namespace) -> int:
    check_store_exists(args.store)
    from pathlib import Path

    from analysis.errors import FormatError
    from analysis.io import open_volume
    from analysis.report import PROFILE_LABELS, profile_cell, write_report
    from vrscope.commands._analysis_io import (
        progress_enabled,
        read_spatial,
        report_incomplete,
        unreadable_list,
    )

    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise FormatError(f"--out {out} exists and is not a folder")
    if not out.parent.is_dir():
        raise FormatError(f"output folder {out.parent} does not exist")
    check_profile_options(args)
    names = label_names(args)
    bad = unreadable_list(args)
    src = open_volume(args.store)
    missing = [names[r] for r in PROFILE_LABELS if names[r] not in src.label_names]
    if missing:
        raise FormatError(
            f"{args.store} lacks label image(s) {', '.join(missing)} "
            f"(has: {', '.join(src.label_names) or 'none'})"
        )
    labels = {}
    spacing = None
    for role in PROFILE_LABELS:
        name = names[role]
        lab_src = src.open_labels(name)
        labels[role] = read_spatial(lab_src, 0, f"label image {name!r}", bad)
        spacing = lab_src.levels[0].scale_um
    assert spacing is not None
    image = None if args.no_image else read_spatial(src, 0, "image", bad)
    show = progress_enabled()
    profile = profile_cell(
        labels, spacing, image, k=args.k, bandwidth_um=args.bandwidth_um, progress=show
    )
    report = write_report(profile, out, progress=show)
    s = profile.summary
    print(
        f"cell {s['volumes_um3']['cell']:.2f} µm³, nucleus {s['percent_of_cell']['nucleus']:.1f} %, "
        f"{s['counts']['mitochondria']} mitochondria "
        f"({s['percent_of_cytoplasm']['mitochondria']:.1f} % of cytoplasm), "
        f"{s['counts']['nuclear_pores']} nuclear pores"
    )
    print(f"report -> {report}")
    report_incomplete(bad)
    return 0
