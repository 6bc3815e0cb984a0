"""``vrscope movie``: a turntable or time-lapse video, rendered offscreen."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from vrscope.commands._options import (
    add_remote_timeout_option,
    check_inputs_exist,
    int_range,
    positive_float,
    remote_run,
)

ORDER = 41

_EPILOG = """\
modes:
  turntable   the camera turns --degrees (default 360) about the vertical axis
  timelapse   the current time runs from --t-start to --t-end (tracks, time-lapse images)

examples:
  vrscope movie cell.zarr --labels mitochondria --invert --out turn.mp4 --frames 180 --fps 60
  vrscope movie --tracks lineage.geff --mode timelapse --out growth.mp4 --size 1920 1080
  vrscope movie cell.zarr --out 4k.mp4 --size 3840 2160 --fps 60 --seconds 6
"""


def register(subparsers: Any) -> None:
    from vrscope.commands.render import add_scene_arguments

    p = subparsers.add_parser(
        "movie",
        help="render a turntable or time-lapse video (MP4, up to 4K at 60 fps)",
        description=(
            "Render a video offscreen with the same scene options as 'vrscope render'. "
            "Streams by default: every frame waits until its view is loaded at the level it "
            "needs (--no-stream: one whole level). Encoded as H.264 with imageio's bundled "
            "ffmpeg."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_scene_arguments(p)
    p.add_argument(
        "--mode",
        choices=("turntable", "timelapse"),
        default="turntable",
        help="what changes between frames (default: %(default)s)",
    )
    p.add_argument(
        "--fps", type=int_range(1, 60), default=30, help="frames per second, 1..60 (default: 30)"
    )
    p.add_argument(
        "--frames",
        type=int_range(1, 36000),
        metavar="N",
        help="number of frames (default: --seconds x --fps, or one per time point)",
    )
    p.add_argument(
        "--seconds",
        type=positive_float,
        default=4.0,
        help="turntable length (default: %(default)s)",
    )
    p.add_argument(
        "--degrees", type=float, default=360.0, help="turntable angle (default: %(default)s)"
    )
    p.add_argument("--t-start", type=float, metavar="T", help="time-lapse start (default: first)")
    p.add_argument("--t-end", type=float, metavar="T", help="time-lapse end (default: last)")
    p.add_argument(
        "--quality",
        type=int,
        default=8,
        metavar="Q",
        help="encoder quality 1..10 (default: %(default)s)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_remote_timeout_option(p)
    p.set_defaults(func=remote_run(run))


def run(args: argparse.Namespace) -> int:
    check_inputs_exist(args.store, args.tracks, getattr(args, "features", None))
    import numpy as np

    from analysis.errors import ParameterError
    from viewer.render import (
        SceneRenderer,
        timelapse_step,
        turntable_step,
        write_movie,
    )
    from vrscope.commands.render import (
        print_stream_stats,
        scene_from_args,
        streaming_options,
        use_streaming,
    )

    if not 1 <= args.quality <= 10:
        raise ParameterError(f"--quality must be 1..10, got {args.quality}")
    if not 1 <= args.fps <= 60:
        raise ParameterError(f"--fps must be 1..60, got {args.fps}")
    w, h = args.size
    if w > 4096 or h > 2160 or w < 16 or h < 16 or w % 2 or h % 2:
        raise ParameterError(f"--size {w} {h}: even sides, 16..4096 x 16..2160 (4K)")
    from analysis.errors import FormatError
    from analysis.io import check_output, replacing

    out = Path(args.out)
    inputs = [args.store, args.tracks, getattr(args, "features", None)]
    check_output(out, [i for i in inputs if i])
    if out.suffix.lower() not in {".mp4", ".mkv", ".mov", ".avi"}:
        raise ParameterError(f"--out must end in .mp4, .mkv, .mov or .avi, not {out.name!r}")
    t0 = time.perf_counter()
    from vrscope.commands._analysis_io import progress_enabled

    # A bar only on a terminal: in a log or a pipe, stderr keeps to the one error line.
    show_progress = not args.no_progress and progress_enabled()
    missing = 0
    scene = scene_from_args(args)
    if args.mode == "turntable":
        n = args.frames or max(1, round(args.seconds * args.fps))
        step = turntable_step(scene, n, args.degrees)
    else:
        times = _times(scene)
        lo = args.t_start if args.t_start is not None else (times.min() if len(times) else 0.0)
        hi = args.t_end if args.t_end is not None else (times.max() if len(times) else 0.0)
        if hi < lo:
            raise ParameterError(f"--t-end {hi} is before --t-start {lo}")
        n = args.frames or int(hi - lo) + 1
        step = timelapse_step(scene, list(np.linspace(lo, hi, n)))
    if n < 1:
        raise ParameterError(f"--frames must be >= 1, got {n}")
    show = not args.no_overlays
    opts = streaming_options(args)
    with SceneRenderer(
        scene,
        size=(w, h),
        voxel_budget=int(args.voxel_budget),
        show_scale_bar=show,
        show_axes=show,
    ) as r:
        if use_streaming(args):
            from viewer.render import StreamingController

            # Image layers in one ray-casting pass each (MIP streams too); every brick
            # of a frame is uploaded before it is drawn (one_shot).
            with StreamingController(r, surface_levels=True, one_shot=True, **opts) as ctl:

                def streamed_step(i: int) -> None:
                    # Each frame is drawn once its view is complete (an offline movie
                    # has time to wait; the interactive viewer never does).
                    step(i)
                    ctl.settle(args.stream_timeout)
                    stats = ctl.stats().values()
                    failed = sum(int(st.failed) for st in stats)
                    if failed and not args.allow_missing:
                        first = next((st.first_error for st in stats if st.first_error), "")
                        raise FormatError(
                            f"{failed} brick(s) could not be read "
                            f"({first or 'unreadable chunks'}); frames would have holes. "
                            "Pass --allow-missing to write the movie anyway"
                        )

                # The movie takes its name only when complete (a failure leaves no
                # half-written file, and an older movie of that name stays whole).
                with replacing(out, overwrite=True) as tmp:
                    write_movie(
                        r,
                        tmp,
                        n,
                        streamed_step,
                        fps=args.fps,
                        quality=args.quality,
                        progress=show_progress,
                    )
                print_stream_stats(ctl.stats())
                missing = sum(int(st.failed) for st in ctl.stats().values())
        else:
            with replacing(out, overwrite=True) as tmp:
                write_movie(
                    r, tmp, n, step, fps=args.fps, quality=args.quality,
                    progress=show_progress,
                )  # fmt: skip
    print(
        f"wrote {out} ({n} frames, {w} x {h}, {args.fps} fps) in {time.perf_counter() - t0:.1f} s"
    )
    if missing:
        print(f"INCOMPLETE: {missing} brick(s) could not be read and are missing from {out}")
    return 0


def _times(scene: Any) -> Any:
    import numpy as np

    from viewer.scene import Image, Tracks

    ts = []
    for lay in scene.layers:
        if isinstance(lay, Tracks) and lay.data is not None:
            ts.append(np.unique(lay.data.t))
        elif isinstance(lay, Image) and lay.data is not None and "t" in lay.data.axes:
            n = lay.data.levels[0].shape[lay.data.axes.index("t")]
            ts.append(np.arange(n, dtype=float))
    return np.unique(np.concatenate(ts)) if ts else np.zeros(0)
