"""``vrscope labels``: proofread a project's label images from the command line.

Each edit is one undoable step of the project's history, journaled (fsync'd) before
the command prints its result; only the touched chunks of every level are written.
"""

from __future__ import annotations

import argparse
from typing import Any

from vrscope.commands._options import check_project_exists

ORDER = 63

_EPILOG = """\
examples
  vrscope project new p --image cells.zarr --labels cells
  vrscope labels merge p --labels cells 12 15 17
  vrscope labels apply-table p --labels cells agglomeration.csv      (columns old,new)
  vrscope labels split p --labels cells 12 --seeds 40,100,120 60,100,180
  vrscope labels delete p --labels cells 33
  vrscope labels relabel p --labels cells 12 --to 400
  vrscope labels lock p --labels cells 12 15          (unlock: the same with 'unlock')
  vrscope labels interpolate p --labels cells 12 --axis z --from 40 --to 60
  vrscope labels paint p --labels cells --id 12 --ball 50,100,120,0.5 --preserve
  vrscope labels erase p --labels cells --ball 50,100,120,0.25
  vrscope labels fill p --labels cells --id 12 --seed 50,100,120 --box 40,80,100,60,120,140
  vrscope labels undo p --steps 2
  vrscope labels redo p --all
  vrscope labels export p --labels cells --out cells_fixed.zarr
  vrscope labels commit p --labels cells      (write merges into the working copy's voxels)

Voxel positions are level-0 indices Z,Y,X; the brush radius is in µm. The label image
is copied into the project folder on its first edit (the image store is never
changed); 'export' writes it, all levels, in the NGFF version of the source. Merges and
tables do not rewrite voxels: they map ids (every view and the export apply the mapping);
'commit' rewrites the working copy's voxels with it, as one undoable step.
undo/redo act on the project's whole history (label, track and annotation edits).
"""


def _point(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not Z,Y,X voxel indices") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"{text!r} is not Z,Y,X (three integers)")
    return (values[0], values[1], values[2])


def _ball(text: str) -> tuple[int, int, int, float]:
    import math

    parts = text.split(",")
    try:
        if len(parts) != 4:
            raise ValueError
        z, y, x = (int(p) for p in parts[:3])
        r = float(parts[3])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not Z,Y,X,RADIUS_UM (three voxel indices and a radius)"
        ) from None
    if not (math.isfinite(r) and r > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: the radius must be a number > 0 (µm)")
    return (z, y, x, r)


def _box(text: str) -> tuple[int, ...]:
    parts = text.split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not Z0,Y0,X0,Z1,Y1,X1") from None
    if len(values) != 6:
        raise argparse.ArgumentTypeError(f"{text!r} is not Z0,Y0,X0,Z1,Y1,X1 (six integers)")
    return values


def _label_id(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer id") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text} is outside 0..: ids are not negative")
    return v


def _steps(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 1 <= v <= 100000:
        raise argparse.ArgumentTypeError(f"{text} is outside 1..100000")
    return v


def _common(p: argparse.ArgumentParser, labels: bool = True) -> None:
    p.add_argument("folder", metavar="DIR", help="project folder (vrscope project new)")
    if labels:
        p.add_argument("--labels", required=True, metavar="NAME", help="label image to edit")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "labels",
        help="proofread label images: merge, split, delete, relabel, lock, paint, fill, "
        "interpolate, undo, commit, export",
        description=(
            "Edit the label images of a project folder: every edit is journaled and "
            "undoable, and only the touched chunks of every level are rewritten."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="labels_command", metavar="ACTION", parser_class=type(p))

    m = sub.add_parser("merge", help="merge objects into one id (the smallest, or --into)")
    _common(m)
    m.add_argument("ids", nargs="+", type=_label_id, metavar="ID", help="two or more ids")
    m.add_argument("--into", type=_label_id, metavar="ID", help="the id they all get")
    m.set_defaults(func=run, action_name="merge")

    t = sub.add_parser("apply-table", help="relabel many ids from a CSV table (columns old,new)")
    _common(t)
    t.add_argument("table", metavar="TABLE.csv", help="CSV with columns old,new")
    t.set_defaults(func=run, action_name="apply-table")

    s = sub.add_parser("split", help="split an object by two or more seed points")
    _common(s)
    s.add_argument("id", type=_label_id, metavar="ID", help="the object to split")
    s.add_argument(
        "--seeds", nargs="+", required=True, type=_point, metavar="Z,Y,X",
        help="two or more level-0 voxels inside the object",
    )  # fmt: skip
    s.set_defaults(func=run, action_name="split")

    d = sub.add_parser("delete", help="set objects to the background")
    _common(d)
    d.add_argument("ids", nargs="+", type=_label_id, metavar="ID")
    d.set_defaults(func=run, action_name="delete")

    r = sub.add_parser("relabel", help="give an object a new id (or a chosen free id)")
    _common(r)
    r.add_argument("id", type=_label_id, metavar="ID", help="the object")
    r.add_argument(
        "--to", type=_label_id, metavar="NEW",
        help="a free id (not in the image, not locked); default: one above the largest",
    )  # fmt: skip
    r.set_defaults(func=run, action_name="relabel")

    for name, what in (("lock", "lock"), ("unlock", "unlock")):
        lk = sub.add_parser(
            name,
            help=f"{what} objects"
            + (": no edit changes their voxels until unlocked" if name == "lock" else ""),
        )
        _common(lk)
        lk.add_argument("ids", nargs="+", type=_label_id, metavar="ID")
        lk.set_defaults(func=run, action_name=name)

    ip = sub.add_parser(
        "interpolate", help="fill an object between two of its sections (shape interpolation)"
    )
    _common(ip)
    ip.add_argument("id", type=_label_id, metavar="ID", help="the object")
    ip.add_argument("--axis", required=True, choices=("z", "y", "x"), help="the sections' axis")
    ip.add_argument("--from", dest="start", required=True, type=_label_id, metavar="K1")
    ip.add_argument("--to", dest="stop", required=True, type=_label_id, metavar="K2")
    ip.set_defaults(func=run, action_name="interpolate")

    pa = sub.add_parser("paint", help="paint a 3D ball with an id")
    _common(pa)
    pa.add_argument("--id", required=True, type=_label_id, metavar="ID", help="the id to paint")
    pa.add_argument(
        "--ball", required=True, type=_ball, metavar="Z,Y,X,RADIUS_UM",
        help="centre (level-0 voxel) and radius in µm",
    )  # fmt: skip
    pa.add_argument(
        "--preserve", action="store_true",
        help="never overwrite other objects' voxels (locked objects are never overwritten)",
    )  # fmt: skip
    pa.set_defaults(func=run, action_name="paint")

    e = sub.add_parser("erase", help="erase a 3D ball (set it to the background)")
    _common(e)
    e.add_argument(
        "--ball", required=True, type=_ball, metavar="Z,Y,X,RADIUS_UM",
        help="centre (level-0 voxel) and radius in µm",
    )  # fmt: skip
    e.add_argument("--only", type=_label_id, metavar="ID", help="erase only this object")
    e.set_defaults(func=run, action_name="erase")

    f = sub.add_parser("fill", help="3D flood fill from a seed, limited to a box")
    _common(f)
    f.add_argument("--id", required=True, type=_label_id, metavar="ID", help="the fill value")
    f.add_argument("--seed", required=True, type=_point, metavar="Z,Y,X")
    f.add_argument(
        "--box", required=True, type=_box, metavar="Z0,Y0,X0,Z1,Y1,X1",
        help="level-0 voxel box (end exclusive) the fill stays in",
    )  # fmt: skip
    f.set_defaults(func=run, action_name="fill")

    for name, what in (("undo", "undo"), ("redo", "redo")):
        u = sub.add_parser(name, help=f"{what} the project's last edits (one step by default)")
        _common(u, labels=False)
        g = u.add_mutually_exclusive_group()
        g.add_argument("--steps", type=_steps, default=1, metavar="N", help="how many steps")
        g.add_argument("--all", action="store_true", help=f"{what} every step")
        u.set_defaults(func=run_history, action_name=name)

    c = sub.add_parser(
        "commit",
        help="rewrite the working copy's voxels with its merges and tables (one undo step)",
    )
    _common(c)
    c.set_defaults(func=run, action_name="commit")
    x = sub.add_parser("export", help="write the edited label image (all levels) as OME-Zarr")
    _common(x)
    x.add_argument("--out", required=True, metavar="OUT.zarr", help="store to write")
    x.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    x.set_defaults(func=run_export)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def run(args: argparse.Namespace) -> int:
    check_project_exists(args.folder)
    from analysis.edits import (
        ApplyTable,
        Command,
        CommitLabels,
        DeleteLabels,
        FillLabel,
        InterpolateLabel,
        LockLabels,
        MergeLabels,
        PaintBall,
        RelabelLabel,
        SplitLabel,
        UnlockLabels,
        locked_ids,
    )
    from analysis.errors import ParameterError
    from analysis.io import read_id_table
    from analysis.project import Project

    action = args.action_name
    cmd: Command
    if action == "merge":
        cmd = MergeLabels(args.labels, args.ids, args.into)
    elif action == "apply-table":
        cmd = ApplyTable(args.labels, read_id_table(args.table))
    elif action == "split":
        cmd = SplitLabel(args.labels, args.id, args.seeds)
    elif action == "delete":
        cmd = DeleteLabels(args.labels, args.ids)
    elif action == "relabel":
        cmd = RelabelLabel(args.labels, args.id, args.to)
    elif action == "lock":
        cmd = LockLabels(args.labels, args.ids)
    elif action == "unlock":
        cmd = UnlockLabels(args.labels, args.ids)
    elif action == "interpolate":
        axis = "zyx".index(args.axis)
        cmd = InterpolateLabel(args.labels, args.id, axis, args.start, args.stop)
    elif action == "paint":
        if args.id == 0:
            raise ParameterError("--id 0 is the background: use 'vrscope labels erase'")
        z, y, x, r = args.ball
        cmd = PaintBall(args.labels, (z, y, x), r, args.id, preserve=args.preserve)
    elif action == "erase":
        z, y, x, r = args.ball
        cmd = PaintBall(args.labels, (z, y, x), r, 0, erase_id=args.only)
    elif action == "commit":
        cmd = CommitLabels(args.labels)
    else:  # fill
        cmd = FillLabel(args.labels, args.seed, args.id, args.box)
    with Project.open(args.folder) as pr:
        img = pr.edit_labels(args.labels)
        pr.history.apply(cmd)
        locked = sorted(locked_ids(img))
    n = getattr(cmd, "n_voxels", 0)
    if isinstance(cmd, LockLabels):
        verb = "unlocked" if isinstance(cmd, UnlockLabels) else "locked"
        done = " ".join(str(i) for i in cmd.changed or [])
        print(f"{verb} {done} (locked now: {' '.join(str(i) for i in locked) or 'none'})")
    elif isinstance(cmd, RelabelLabel):
        print(f"relabelled {args.id} as {cmd.to} ({n} voxels)")
    elif isinstance(cmd, SplitLabel):
        print(f"split {args.id} into ids {' '.join(str(i) for i in cmd.result_ids)} ({n} voxels)")
    elif isinstance(cmd, MergeLabels):
        print(f"merged {' '.join(str(i) for i in args.ids)} into {cmd.into} ({n} voxels)")
    elif isinstance(cmd, CommitLabels):
        print(f"committed {len(cmd.entries or [])} remapped ids: {n} voxels rewritten")
    else:
        print(f"{cmd.description}: {n} voxels changed")
    return 0


def run_history(args: argparse.Namespace) -> int:
    check_project_exists(args.folder)
    from analysis.errors import ParameterError
    from analysis.project import Project

    undo = args.action_name == "undo"
    with Project.open(args.folder) as pr:
        h = pr.history
        available = len(h.undo_steps) if undo else len(h.redo_steps)
        n = available if args.all else args.steps
        if n > available:
            raise ParameterError(
                f"cannot {args.action_name} {n} step(s): {available} can be "
                f"{'undone' if undo else 'redone'}"
            )
        names = []
        for _ in range(n):
            step = h.undo() if undo else h.redo()
            names.append(step.name)
    done = "undid" if undo else "redid"
    print(f"{done} {n} step(s)" + (f": {', '.join(names)}" if names else ""))
    return 0


def run_export(args: argparse.Namespace) -> int:
    check_project_exists(args.folder)
    from analysis.project import Project

    with Project.open(args.folder) as pr:
        out = pr.export_labels(args.labels, args.out, overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0
