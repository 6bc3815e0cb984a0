"""``vrscope project new``: make a project folder for an image store (labels, tracks, classes)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

ORDER = 62

_EPILOG = """\
examples
  vrscope project new review1 --image cells.zarr --labels nuclei --classes mito er
  vrscope labels merge review1 --labels nuclei 12 15
  vrscope serve review1
  vrscope project repair review1     (a journal damaged by a disk fault: open it at the
                                      last good edit, keeping a copy of the damaged one)

A project folder refers to the image (it is not copied) and holds the edit journal;
label images listed with --labels are copied into it on their first edit
(see 'vrscope labels -h').
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "project",
        help="make a project folder (image reference, labels, tracks, classes, journal)",
        description="Create vrscope project folders for editing, serving and exporting.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="project_command", metavar="ACTION", parser_class=type(p))
    n = sub.add_parser(
        "new",
        help="create a project folder for an OME-Zarr image",
        description="Create a project folder referring to an OME-Zarr image store.",
    )
    n.add_argument("folder", metavar="DIR", help="project folder to create")
    n.add_argument("--image", required=True, metavar="STORE", help="OME-Zarr image store or URL")
    n.add_argument(
        "--labels", nargs="+", default=[], metavar="NAME", help="label images of STORE to use"
    )
    n.add_argument("--tracks", metavar="FILE", help="tracks: GEFF, CSV spots table or CTC folder")
    n.add_argument("--classes", nargs="+", default=[], metavar="NAME", help="marker classes")
    n.add_argument(
        "--overwrite", action="store_true", help="replace a project in DIR (its edits are lost)"
    )
    n.set_defaults(func=run_new)
    r = sub.add_parser(
        "repair",
        help="open a project with a damaged journal at its last good edit",
        description=(
            "Cut a damaged project journal back to its last good edit (a damaged line, or an "
            "edit that cannot be replayed, and everything after it are dropped). The damaged "
            "journal is kept next to it as journal.jsonl.damaged-<time>. A journal that is "
            "intact is left as it is."
        ),
    )
    r.add_argument("folder", metavar="DIR", help="project folder")
    r.set_defaults(func=run_repair)


def run_new(args: argparse.Namespace) -> int:
    from analysis.errors import ParameterError
    from analysis.io import check_output, list_labels, open_volume
    from analysis.project import Project

    check_output(args.folder, [args.image] + ([args.tracks] if args.tracks else []))
    image = open_volume(args.image)
    available = list_labels(args.image) if args.labels else []
    for name in args.labels:
        if name not in available:
            raise ParameterError(
                f"label image {name!r} is not in {args.image} "
                f"(it has: {', '.join(available) or 'none'})"
            )
    with Project.create(
        args.folder,
        image=args.image,
        labels=args.labels,
        tracks=args.tracks,
        classes=args.classes,
        overwrite=args.overwrite,
    ) as pr:
        print(
            f"project {pr.path}: image {image.name} {image.levels[0].shape}, "
            f"labels {', '.join(args.labels) or 'none'}, "
            f"tracks {'yes' if pr.tracks is not None else 'none'}"
        )
    return 0


def run_repair(args: argparse.Namespace) -> int:
    from analysis.project import Project

    folder = Path(args.folder)
    before = set(folder.glob("journal.jsonl.damaged-*"))
    with Project.open(folder, repair=True) as pr:
        kept = pr.history.journal.n_lines if pr.history.journal is not None else 0
        copies = sorted(set(folder.glob("journal.jsonl.damaged-*")) - before)
    if copies:
        print(
            f"project {pr.path}: journal cut back to its first {kept} line(s); "
            f"the damaged journal is kept as {copies[-1].name}"
        )
    else:
        print(f"project {pr.path}: journal intact ({kept} line(s)), nothing to repair")
    return 0
