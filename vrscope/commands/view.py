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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from analysis.errors import ParameterError
    from vrscope.cli import require_extra

    if args.store is None and args.project is None:
        raise ParameterError("give an image store (STORE.zarr) or --project DIR")
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

    labels = args.labels
    if labels is not None and not labels and args.store is not None:
        from analysis.io import list_labels

        labels = list_labels(args.store)
    return run_viewer(
        args.store,
        labels,
        args.tracks,
        args.project,
        exit_after=args.exit_after,
        screenshot=args.screenshot,
    )
