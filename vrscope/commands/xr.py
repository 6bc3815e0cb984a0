"""``vrscope xr``: the OpenXR mode (headset, controllers or bare hands)."""

from __future__ import annotations

import argparse
import os
from typing import Any

ORDER = 60

_EPILOG = """\
tools (switch with the menu button on the left hand; grab always works):
  grab      squeeze one hand to move/rotate the volume, both hands to scale and turn it
  measure   trigger places points: distance (2), angle (3), path (B/Y ends it;
            with no point placed B/Y removes the measurement at the tip);
            A/X changes the kind; the value is shown in µm next to the hand
  count     trigger places a marker of the current class (on a marker: drag it),
            B/Y removes the one at the tip; stick left/right or A/X changes the
            class; counts on the wrist
  track     point at a node; trigger selects, A/X cuts before the pointed node,
            B/Y merges the selected end with the pointed start, stick click
            prolongs the selected end at the next time point; stick scrubs time
  classify  point at an object, trigger gives it the current class
  clip      hold the trigger to place and orient the clipping plane; A/X on/off
  crop      hold both triggers: a crop box between the hands; A/X on/off
  slice     a 15 cm square of the image at full resolution ahead of the hand;
            trigger leaves it in the data (and takes it back)
  laser     a pointer for showing
left hand: menu opens the wrist menu (tools, undo, redo, play/pause, "layers >": the
wrist panel for each layer's visibility, opacity, contrast, colormap and the
background), Y/B undo, X/A redo, stick left/right steps time, stick click re-centres
the volume in front of you.
bare hands (hand tracking): pinch = trigger, fist = grab, left palm up = the wrist
menu (point with the right hand, pinch to pick).

runtimes: any OpenXR runtime offering XR_KHR_opengl_enable (SteamVR, Meta, WMR,
Monado; on a headless machine: scripts/monado.sh, docs/xr.md). XR_RUNTIME_JSON
selects the runtime. OpenGL binding (--graphics auto): EGL where the runtime offers
XR_MNDX_egl_enable (Monado, no display needed), else GLX (Linux, needs DISPLAY) or
WGL (Windows).

collaboration: --join URL (printed by `vrscope serve PROJECT_DIR`) edits the served
session instead of a project folder: everyone's edits are shared, the others
appear as avatars (head, hands, laser) in their colours, and clipping planes and
the time point are shared (the latest change wins). When the presenter leads, you
follow their view: the world glides so you see from their viewpoint (your head is
never moved; the room stays level). The left hand's menu switches "follow
presenter" off (roam freely) and on; a --role presenter gets "lead the session".

examples:
  vrscope xr cell.zarr --labels mitochondria --project cell.vrproj --tool count
  vrscope xr --tracks lineage.geff --project lineage.vrproj --tool track
  vrscope xr --join 'ws://127.0.0.1:8765/lineage?token=...' --name Ana --tool track
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "xr",
        help="view, measure, count and proofread in an OpenXR headset",
        description=(
            "Open a volume (and its labels and tracks) in an OpenXR headset. Every "
            "measurement, marker and track edit is journaled in the project folder "
            "and opens again on the desktop."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "store", nargs="?", metavar="STORE.zarr", help="OME-Zarr image (default: the project's)"
    )
    p.add_argument(
        "--labels", nargs="*", metavar="NAME", help="label images to show (no NAME: all)"
    )
    p.add_argument("--tracks", metavar="FILE", help="track graph (GEFF; CSV/CTC with --project)")
    p.add_argument(
        "--project",
        metavar="DIR",
        help="project folder: opened if it exists, else created (edits are journaled there)",
    )
    p.add_argument(
        "--tool",
        default="measure",
        choices=[
            "grab",
            "measure",
            "count",
            "track",
            "classify",
            "labels",
            "clip",
            "crop",
            "slice",
            "laser",
        ],
        help="tool in hand at start (default: %(default)s)",
    )
    p.add_argument(
        "--classes",
        nargs="+",
        default=[],
        metavar="NAME",
        help="marker / object classes for a new project (default: the project's, or 'marker')",
    )
    p.add_argument(
        "--join",
        metavar="URL",
        help="join a collaborative session (ws://HOST:PORT/SESSION?token=..., from vrscope "
        "serve) instead of opening a project; the image comes from the session unless given",
    )
    p.add_argument(
        "--name", default=None, help="your name in a joined session (default: your user name)"
    )
    p.add_argument(
        "--role",
        default="editor",
        choices=["editor", "presenter", "observer"],
        help="your role in a joined session (default: %(default)s)",
    )
    p.add_argument(
        "--exit-after",
        type=float,
        metavar="SECONDS",
        help="end the session this long after it gets focus (demos, tests; not before a "
        "--snapshot is saved)",
    )
    p.add_argument(
        "--background",
        nargs=3,
        type=float,
        default=(0.18, 0.18, 0.2),
        metavar=("R", "G", "B"),
        help="room colour, 0..1 (default: a neutral dark grey)",
    )
    p.add_argument(
        "--opacity",
        type=float,
        default=None,
        help="image layer opacity 0..1 (default: 0.12 with --labels, so the objects show "
        "through; else 1)",
    )
    p.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="multiscale streaming: each region of the image at the level both eyes need, "
        "loaded brick by brick; --no-stream reads one whole level (default: stream when "
        "the finest level is over 2**24 voxels)",
    )
    p.add_argument(
        "--adaptive-quality",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="lower the ray sampling and render scale while frames overrun (default); "
        "--no-adaptive-quality keeps full quality (recordings, snapshots)",
    )
    p.add_argument(
        "--graphics",
        default="auto",
        choices=["auto", "egl", "glx", "wgl"],
        help="OpenGL binding to the runtime (default: %(default)s: EGL where offered, "
        "else GLX on Linux, WGL on Windows)",
    )
    p.add_argument(
        "--no-hand-tracking", action="store_true", help="do not use XR_EXT_hand_tracking"
    )
    p.add_argument(
        "--trace", metavar="FILE.jsonl", help="append session events and frame timings here"
    )
    p.add_argument(
        "--snapshot",
        metavar="DIR",
        help="save both eye images (PNG, read back) here, from the first focused frame "
        "at full detail (streamed bricks all drawn; at most 60 s after focus)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from analysis.errors import ParameterError
    from vrscope.cli import require_extra
    from vrscope.commands._options import recover_store_from_labels

    recover_store_from_labels(args)

    if args.exit_after is not None and args.exit_after < 0:
        raise ParameterError(f"--exit-after must be >= 0, got {args.exit_after}")
    if args.opacity is not None and not 0.0 <= args.opacity <= 1.0:
        raise ParameterError(f"--opacity must be within 0..1, got {args.opacity}")
    if args.join and (args.project or args.tracks):
        raise ParameterError(
            "--join takes the tracks and annotations from the session; "
            "leave out --project and --tracks"
        )
    if args.tool == "labels" and not args.project:
        raise ParameterError("the labels tool edits label images in a project: give --project DIR")
    if args.join:
        require_extra("websockets", "collab")
    require_extra("xr", "xr")
    require_extra("vtk", "viewer")
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    from xrmode import XrOptions, run_xr
    from xrmode.session import XrRuntimeError, no_runtime_message, probe_runtime

    # Find the runtime before loading any data: no runtime is the common case on a desktop.
    problem = probe_runtime()
    if problem is not None:
        raise XrRuntimeError(no_runtime_message(problem))
    opts = XrOptions(
        store=args.store,
        labels=args.labels,
        tracks=args.tracks,
        project=args.project,
        tool=args.tool,
        exit_after=args.exit_after,
        trace=args.trace,
        snapshot=args.snapshot,
        background=tuple(args.background),
        opacity=args.opacity,
        stream=args.stream,
        adaptive_quality=args.adaptive_quality,
        hand_tracking=not args.no_hand_tracking,
        classes=list(args.classes),
        graphics=args.graphics,
        join=args.join,
        name=args.name or _user_name(),
        role=args.role,
    )
    return run_xr(opts)


def _user_name() -> str:
    import getpass

    try:
        return getpass.getuser()[:64] or "xr"
    except (KeyError, OSError):  # no user database entry (containers)
        return "xr"
