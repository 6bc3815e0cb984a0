"""``vrscope stream``: fly through a store (or a procedural volume) with multiscale streaming.

No rendering and no display: it runs the streaming pipeline the viewer runs
(level of detail, culling, scheduler, cache) for a scripted camera path and
reports cache use, pending requests and bytes loaded, so a store's (or a
server's) streaming behaviour can be checked anywhere.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from vrscope.commands._options import (
    add_cache_option,
    add_remote_timeout_option,
    cache_bytes,
    int_range,
    positive_float,
    remote_run,
)

ORDER = 45

_EPILOG = """\
examples:
  vrscope stream sample.zarr
  vrscope stream https://example.org/data/image.ome.zarr --frames 120 --cache-mb 512
  vrscope stream --procedural 16384x16384x8192 --frames 300 --json
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "stream",
        help="fly a camera through a store with multiscale streaming; report cache and requests",
        description=(
            "Stream an OME-Zarr image (local or http) or a procedural volume along a camera "
            "path into the volume, as the viewer does (no drawing), then wait until the last "
            "view is at full detail. Prints cache use, pending requests and bytes loaded."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", nargs="?", metavar="PATH_OR_URL", help="image store or http(s) URL")
    p.add_argument(
        "--procedural",
        metavar="ZxYxX",
        help="stream a generated volume of this size instead of a store (e.g. 16384x16384x8192)",
    )
    p.add_argument(
        "--frames",
        type=int_range(1, 1_000_000),
        default=60,
        help="frames of the path (default: 60)",
    )
    p.add_argument(
        "--fps", type=positive_float, default=60.0, help="frame rate of the path (default: 60)"
    )
    p.add_argument(
        "--size",
        type=int_range(16, 16384),
        nargs=2,
        default=(1920, 1080),
        metavar=("W", "H"),
        help="viewport in pixels (default: 1920 1080)",
    )
    add_cache_option(p)
    p.add_argument(
        "--max-error",
        type=float,
        default=1.0,
        metavar="PX",
        help="largest projected voxel in pixels before a finer level is used (default: 1)",
    )
    p.add_argument(
        "--workers",
        type=int_range(1, 64),
        default=None,
        help="loader threads (default: one per core, at most 8)",
    )
    p.add_argument(
        "--timeout", type=positive_float, default=120.0, help="seconds to wait at the end"
    )
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    add_remote_timeout_option(p)
    p.set_defaults(func=remote_run(run))


def _procedural(spec: str) -> Any:
    import numpy as np

    from analysis.errors import ParameterError
    from analysis.volume import FunctionVolumeSource

    try:
        shape = tuple(int(s) for s in spec.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ParameterError(f"--procedural {spec!r}: expected ZxYxX, e.g. 16384x16384x8192")

    def fn(level: int, region: tuple[slice, ...]) -> Any:
        z, y, x = (np.arange(s.start, s.stop, dtype=np.int64) << level for s in region)
        v = (z[:, None, None] * 7 + y[None, :, None] * 13 + x[None, None, :] * 29) % 251
        return v.astype(np.uint8)

    return FunctionVolumeSource(shape, fn, chunks=(64, 64, 64), name="procedural")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from analysis.errors import ParameterError
    from viewer.scene import Camera
    from viewer.streaming import View, VolumeStreamer

    if (args.path is None) == (args.procedural is None):
        raise ParameterError("give one of PATH_OR_URL or --procedural ZxYxX")
    if (
        args.frames < 1
        or args.fps <= 0
        or args.max_error <= 0
        or (args.workers is not None and args.workers < 1)
    ):
        raise ParameterError("--frames, --fps, --max-error and --workers must be positive")
    cache = cache_bytes(args)
    if args.procedural:
        src = _procedural(args.procedural)
    else:
        from analysis.io import open_volume

        src = open_volume(args.path)
    lev = src.levels[0]
    scale = np.asarray(lev.scale_um)
    lo = np.asarray(lev.translation[-3:]) - scale / 2
    hi = lo + np.asarray(lev.shape[-3:]) * scale
    centre = (lo + hi) / 2
    # Path: from in front of the volume (whole volume in view) to its centre, along z.
    start = centre.copy()
    start[0] = lo[0] - 1.2 * float(np.max(hi - lo))
    size = (int(args.size[0]), int(args.size[1]))
    period = 1.0 / args.fps
    frame_ms: list[float] = []
    frame_cpu_ms: list[float] = []
    t0 = time.perf_counter()
    with VolumeStreamer(
        src, cache_bytes=cache, max_error_px=args.max_error, n_workers=args.workers
    ) as st:
        cam = Camera(position=tuple(start), focal_point=tuple(centre), view_up=(0.0, -1.0, 0.0))
        for i in tqdm(range(args.frames), desc="frames", unit="frame", disable=args.json):
            f = i / max(args.frames - 1, 1)
            pos = start + (centre - start) * f * 0.98
            cam.update({"position": tuple(float(v) for v in pos)})
            tick = time.perf_counter()
            f = st.update(View.from_camera(cam, size))
            frame_ms.append((time.perf_counter() - tick) * 1e3)
            frame_cpu_ms.append(f.stats.frame_cpu_ms)
            time.sleep(max(period - (time.perf_counter() - tick), 0.0))
        final = st.settle(View.from_camera(cam, size), timeout=args.timeout)
        stats = final.stats.as_dict()
    out = {
        "source": args.path or f"procedural {args.procedural}",
        "levels": len(src.levels),
        "frames": args.frames,
        "frame_ms_median": float(np.median(frame_ms)),
        "frame_ms_p95": float(np.percentile(frame_ms, 95)),
        "frame_cpu_ms_median": float(np.median(frame_cpu_ms)),
        "seconds": time.perf_counter() - t0,
        **stats,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    mb = 2**20
    print(
        f"{out['source']}: {out['levels']} levels, {args.frames} frames in {out['seconds']:.1f} s"
    )
    print(
        f"  streaming work per frame: median {out['frame_ms_median']:.2f} ms, "
        f"p95 {out['frame_ms_p95']:.2f} ms (CPU of the frame thread: median "
        f"{out['frame_cpu_ms_median']:.2f} ms)"
    )
    print(
        f"  cache:    {stats['cache_bytes'] / mb:.1f} / {stats['cache_budget_bytes'] / mb:.0f} MB, "
        f"{stats['cache_bricks']} bricks"
    )
    print(
        f"  requests: {stats['pending']} pending, {stats['in_flight']} in flight, "
        f"{stats['loaded']} loaded ({stats['bytes_loaded'] / mb:.1f} MB), "
        f"{stats['dropped']} dropped, {stats['failed']} failed"
    )
    print(
        f"  view:     {stats['drawn']} bricks drawn for {stats['leaves']} wanted, "
        f"{stats['stand_ins']} by coarser stand-ins, "
        + ("full detail" if stats["complete"] else "not yet at full detail")
        + (f", LOD bias {stats['lod_bias']:.2f} (memory budget)" if stats["lod_bias"] > 1 else "")
    )
    if stats["held_back"]:
        print(f"  ({stats['held_back']} of the pending requests wait beyond the per-frame cap)")
    return 0
