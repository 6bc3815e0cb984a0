"""``vrscope view``: the desktop proofreading app on a store, its labels, tracks and a project."""

from __future__ import annotations

import argparse
import os
from typing import Any

ORDER = 20

_EPILOG = """\
mouse: left drag orbits the 3D view, right drag/wheel zooms, middle or Shift+left drag pans;
a click in any view moves the crosshair (and selects the track or object there).
keys: C cut, M merge, S swap, P prolong, Delete delete track, R reviewed, N next unreviewed,
K count, D distance, A angle, L path (Return finishes), Esc navigate, Left/Right time,
Ctrl+Z undo, Ctrl+Shift+Z redo, Ctrl+S save.

examples:
  vrscope view cell.zarr --labels mitochondria nucleus
  vrscope view timelapse.zarr --labels nuclei --tracks timelapse.zarr/tracks --project review1
  vrscope view --project review1            (reopens everything, undo history included)
  vrscope view --join 'ws://127.0.0.1:8765/review1?token=...' --name Ana
      (a review session from `vrscope serve`: shared edits, pointers, clipping planes, time)
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "view",
        help="open the desktop viewer to proofread tracks, count and measure",
        description=(
            "Open the desktop viewer: a 3D view with synchronized XY/XZ/YZ slices, layers, "
            "contrast, time, features and track proofreading. With --project every edit is "
            "journaled in that folder and reopening it restores everything."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("store", nargs="?", metavar="STORE.zarr", help="OME-Zarr image (path or URL)")
    p.add_argument("--labels", nargs="*", metavar="NAME", help="label images to show (none: all)")
    p.add_argument("--tracks", metavar="FILE", help="tracks: GEFF, CSV spots table or CTC folder")
    p.add_argument(
        "--project",
        metavar="DIR",
        help="project folder: opened if it exists, else created from STORE/--labels/--tracks",
    )
    p.add_argument(
        "--exit-after",
        type=float,
        metavar="SECONDS",
        help="close the window after this many seconds (smoke tests, screenshots)",
    )
    p.add_argument("--screenshot", metavar="PNG", help="with --exit-after: save the window first")
    p.add_argument(
        "--join",
        metavar="URL",
        help="join a review session (ws://HOST:PORT/SESSION?token=..., printed by vrscope "
        "serve); the data is opened from the path/URL the session names (STORE overrides it)",
    )
    p.add_argument(
        "--name", default=None, help="your name in a joined session (default: your user name)"
    )
    p.add_argument(
        "--role",
        choices=("editor", "presenter", "observer"),
        default="editor",
        help="your role in a joined session (default: %(default)s)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from analysis.errors import ParameterError
    from vrscope.cli import require_extra
    from vrscope.commands._options import check_inputs_exist, recover_store_from_labels

    recover_store_from_labels(args)
    if not getattr(args, "join", None):
        check_inputs_exist(args.store, args.tracks)

    join = getattr(args, "join", None)
    if join and (args.project or args.tracks):
        raise ParameterError(
            "--join takes the tracks and annotations from the session; leave out --project "
            "and --tracks"
        )
    if join:
        from viewer.collab import check_url

        check_url(join)
    elif args.store is None and args.project is None:
        raise ParameterError("give an image store (STORE.zarr), --project DIR or --join URL")
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and os.environ.get(
        "QT_QPA_PLATFORM", ""
    ) not in ("offscreen", "minimal"):
        raise ParameterError(
            "no display (DISPLAY is unset): run it in a desktop session, or use "
            "'vrscope render' for a picture without a window"
        )
    if args.screenshot and args.exit_after is None:
        raise ParameterError("--screenshot needs --exit-after")
    require_extra("PySide6", "viewer")
    require_extra("pyqtgraph", "viewer")
    from viewer.qt import run_viewer

    if join:
        import getpass

        from viewer.qt import run_joined

        require_extra("websockets", "collab")
        name = args.name
        if not name:
            try:
                name = getpass.getuser()
            except (KeyError, OSError):  # no user name in this environment
                name = "desktop"
        return run_joined(
            join,
            name=name or "desktop",
            role=args.role,
            store=args.store,
            labels=args.labels or None,
            exit_after=args.exit_after,
            screenshot=args.screenshot,
        )
    labels = args.labels
    # --labels omitted or given without names: every label image of the store, as
    # --help says ("none: all"); an existing project keeps the labels it was made with.
    if not labels and args.store is not None:
        from analysis.io import is_project, list_labels

        if args.labels is not None or args.project is None or not is_project(args.project):
            labels = list_labels(args.store)
    return run_viewer(
        args.store,
        labels,
        args.tracks,
        args.project,
        exit_after=args.exit_after,
        screenshot=args.screenshot,
    )
