"""``vrscope render``: an offscreen picture of a store, its labels and tracks."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from vrscope.commands._options import (
    add_cache_option,
    add_remote_timeout_option,
    cache_bytes,
    check_inputs_exist,
    int_range,
    nonnegative_float,
    positive_float,
)

ORDER = 40

log = logging.getLogger(__name__)

_EPILOG = """\
clip planes (repeatable):
  z=0.5     keep the half beyond the middle of z (same as z>0.5)
  x<0.3     keep x below 30 % of the extent
  y>12um    keep y beyond 12 µm (world position)

streaming (default): the picture is drawn once every visible brick is loaded at the
level the view needs. The image volume is ray cast in one pass over all its bricks
(composite, mip, isosurface; --brick-size sets the brick edge); label images stream
too (--label-mode volume in one pass like the image, surfaces as one marching-cubes
mesh per brick, at the level the view needs). --no-stream reads one whole level instead. --stats FILE.json
writes what the final frame drew (volume_passes, bricks_drawn, levels_drawn, frame_ms,
gpu_cache_bytes).

examples:
  vrscope render cell.zarr --out shot.png --labels mitochondria nucleus --invert
  vrscope render --out shot.png --labels mitochondria cell.zarr   (the store may also come last)
  vrscope render cell.zarr --out mito.png --labels mitochondria --no-image \\
      --color-by surface_area_um2/volume_um3 --features cell.truth.csv
  vrscope render --tracks lineage.geff --time 200 --out lineage.png --azimuth 60
  vrscope render medulla.zarr --out cut.png --clip z=0.5 --rendering mip --size 1600 1200
"""


def add_scene_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``render`` and ``movie``."""
    p.add_argument(
        "store", nargs="?", metavar="STORE.zarr", help="OME-Zarr image (or none with --tracks)"
    )
    p.add_argument("--out", "-o", required=True, metavar="FILE", help="output file")
    p.add_argument(
        "--labels",
        nargs="*",
        metavar="NAME",
        help="label images to draw as surfaces (no NAME: all of them)",
    )
    p.add_argument(
        "--label-mode",
        choices=("surface", "volume"),
        default="surface",
        help="draw labels as meshed surfaces or as a label volume (one colour per id) "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--label-outline",
        action="store_true",
        help="with --label-mode volume: draw each object's outline opaque and its "
        "interior faint, so that objects behind it show through",
    )
    p.add_argument(
        "--color-by",
        metavar="FEATURE",
        help="colour the first --labels image by this feature column (or a ratio a/b)",
    )
    p.add_argument(
        "--features",
        metavar="TABLE.csv",
        help="features table with a 'label' column (CSV or Parquet)",
    )
    p.add_argument("--tracks", metavar="TRACKS.geff", help="GEFF track graph to draw")
    p.add_argument(
        "--time",
        type=float,
        metavar="T",
        help="current time point (default: the last of the tracks)",
    )
    p.add_argument(
        "--tail",
        type=nonnegative_float,
        default=20.0,
        metavar="N",
        help="track tail length in time points (default: %(default)s)",
    )
    p.add_argument(
        "--clip",
        action="append",
        default=[],
        metavar="AXIS=F",
        help="clipping plane, repeatable (see below)",
    )
    p.add_argument(
        "--azimuth",
        type=float,
        default=30.0,
        metavar="DEG",
        help="turn about the vertical axis (default: %(default)s)",
    )
    p.add_argument(
        "--elevation",
        type=float,
        default=20.0,
        metavar="DEG",
        help="tilt up (default: %(default)s)",
    )
    p.add_argument(
        "--zoom",
        type=positive_float,
        default=1.0,
        metavar="Z",
        help="> 1 comes closer (default: %(default)s)",
    )
    p.add_argument(
        "--size",
        type=int_range(16, 16384),
        nargs=2,
        default=(800, 600),
        metavar=("W", "H"),
        help="image size in pixels (default: 800 600)",
    )
    p.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="multiscale streaming (default): every region at the coarsest level whose voxels "
        "project below one pixel, loaded brick by brick within --cache-mb, waiting until the "
        "view is complete; --no-stream reads one whole level within --voxel-budget",
    )
    add_cache_option(p, "streaming: ")
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="streaming: write the picture even when some bricks could not be read "
        "(corrupt or unreadable chunks leave holes; the count is printed). Default: "
        "refuse, exit 2",
    )
    p.add_argument(
        "--stream-timeout",
        type=positive_float,
        default=300.0,
        metavar="S",
        help="streaming: longest wait for the bricks of a picture (default: %(default)s)",
    )
    p.add_argument(
        "--level",
        type=int,
        metavar="N",
        help="pyramid level: with --no-stream the level read (default: the finest within "
        "--voxel-budget); when streaming the finest level used (default: 0)",
    )
    p.add_argument(
        "--voxel-budget",
        type=positive_float,
        default=2**24,
        metavar="VOXELS",
        help="largest level read whole: the image and label surfaces with --no-stream "
        "(default: 2**24 = 256^3)",
    )
    p.add_argument(
        "--rendering",
        choices=("composite", "mip", "isosurface"),
        default="composite",
        help="volume rendering mode (default: %(default)s)",
    )
    p.add_argument(
        "--invert",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="invert the grey values so dark-on-light EM shows bright on black "
        "(default: automatic, on when most of the volume is light)",
    )
    p.add_argument("--colormap", default="gray", help="volume colormap (default: %(default)s)")
    p.add_argument("--no-image", action="store_true", help="draw labels/tracks without the volume")
    p.add_argument("--no-overlays", action="store_true", help="no scale bar and axes")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "render",
        help="render a store (volume, label surfaces, tracks) to a PNG offscreen",
        description=(
            "Render an OME-Zarr image (GPU ray casting), label images as surfaces and a GEFF "
            "track graph offscreen (EGL, no display needed) into a PNG."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_scene_arguments(p)
    add_remote_timeout_option(p)
    p.add_argument(
        "--brick-size",
        type=int,
        default=None,
        metavar="N",
        help="streaming: brick edge in voxels, a power of two from 8 to 512 "
        "(default: 64, see docs/benchmarks.md)",
    )
    p.add_argument(
        "--stats",
        metavar="FILE.json",
        help="write what the final frame drew: volume_passes, bricks_drawn, levels_drawn, "
        "frame_ms (GPU-synchronised, I/O excluded), gpu_cache_bytes",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def scene_from_args(args: argparse.Namespace) -> Any:
    """Build the scene the shared options describe (used by ``render`` and ``movie``)."""
    from analysis.errors import ParameterError
    from viewer.render import build_store_scene
    from vrscope.commands._options import recover_store_from_labels

    recover_store_from_labels(args)
    if args.store is None and args.tracks is None:
        raise ParameterError("give an image STORE.zarr and/or --tracks TRACKS.geff")
    if getattr(args, "label_outline", False):
        if args.label_mode != "volume":
            raise ParameterError("--label-outline needs --label-mode volume")
        if not use_streaming(args):
            raise ParameterError("--label-outline is drawn by the streamed pass: drop --no-stream")
    if args.store is not None and not Path(args.store).exists() and "://" not in args.store:
        raise FileNotFoundError(2, "No such file or directory", args.store)
    features = _read_features(args.features) if args.features else None
    tracks = None
    if args.tracks:
        from analysis.io import read_geff

        tracks = read_geff(args.tracks)
    scene = build_store_scene(
        args.store,
        labels=args.labels,
        color_by=args.color_by,
        features=features,
        tracks=tracks,
        time=args.time,
        tail=args.tail,
        clips=args.clip,
        azimuth=args.azimuth,
        elevation=args.elevation,
        zoom=args.zoom,
        level=args.level,
        rendering=args.rendering,
        invert=args.invert,
        show_image=not args.no_image,
        colormap=args.colormap,
    )
    from viewer.render import use_coarse_contrast
    from viewer.scene import Labels

    for lay in scene.layers:
        if isinstance(lay, Labels):
            lay.mode = args.label_mode
            lay.outline = bool(getattr(args, "label_outline", False))
    use_coarse_contrast(scene)
    return scene


def streaming_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for ``StreamingController`` / ``render_streamed`` from the options."""
    return {
        "cache_bytes": cache_bytes(args),
        "finest_level": int(args.level or 0),
    }


def use_streaming(args: argparse.Namespace) -> bool:
    """Whether to stream (the default; ``--no-stream``: one whole level).

    ``render`` and ``movie`` draw streamed ``Image`` layers in one ray-casting pass
    each, maximum/minimum intensity projection included.
    """
    return bool(args.stream)


def brick_progress(disable: bool) -> Any:
    """A tqdm bar of the bricks drawn at full detail, and the ``progress`` callback feeding it."""
    from tqdm import tqdm

    bar = tqdm(desc="bricks", unit="brick", disable=disable)

    def progress(frames: dict[str, Any]) -> None:
        total = sum(f.stats.leaves for f in frames.values())
        pending = sum(f.stats.stand_ins + f.stats.undrawn for f in frames.values())
        bar.total = total
        bar.n = total - pending
        bar.refresh()

    return bar, progress


def print_stream_stats(stats: dict[str, Any]) -> None:
    for name, st in stats.items():
        print(
            f"streamed {name}: {st.drawn} bricks drawn, {st.loaded} loaded "
            f"({st.bytes_loaded / 2**20:.1f} MB), cache {st.cache_bytes / 2**20:.1f} / "
            f"{st.cache_budget_bytes / 2**20:.0f} MB, {st.pending} pending"
            + ("" if st.complete else ", NOT at full detail (timeout or budget)")
        )


def whole_level_stats(r: Any) -> dict[str, Any]:
    """``--stats`` of a ``--no-stream`` picture: its frame drawn again, timed."""
    from viewer.render import VtkImage

    t0 = time.perf_counter()
    r.render()
    r.window.WaitForCompletion()
    ms = (time.perf_counter() - t0) * 1e3
    images = [a for a in r.adapters.values() if isinstance(a, VtkImage) and a.layer.visible]
    mappers = r.volume_mappers()
    return {
        "volume_passes": len(mappers),
        "bricks_drawn": sum(len(a.bricks) for a in images),
        "levels_drawn": sorted({b.level for a in images for b in a.bricks}),
        "frame_ms": ms,
        "gpu_cache_bytes": sum(int(b.array.nbytes) for a in images for b in a.bricks),
        "single_pass": False,
    }


def _read_features(path: str) -> Any:
    # A features table is a plain CSV/Parquet written by `vrscope measure`/morphology;
    # pandas reads both. (analysis.io has no table reader yet.)
    import pandas as pd

    from analysis.errors import FormatError

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(2, "No such file or directory", path)
    try:
        if p.suffix.lower() in {".parquet", ".pq"}:
            return pd.read_parquet(p)
        return pd.read_csv(p)
    except (ValueError, OSError) as exc:
        raise FormatError(f"cannot read features table {path}: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    from analysis.io import remote_deadline

    with remote_deadline(args.remote_timeout):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    check_inputs_exist(args.store, args.tracks, getattr(args, "features", None))
    from analysis.errors import FormatError, ParameterError
    from analysis.io import check_output

    out = Path(args.out)
    inputs = [args.store, args.tracks, getattr(args, "features", None)]
    check_output(out, [i for i in inputs if i])
    if out.suffix.lower() not in {".png", ".jpg", ".jpeg", ".tif", ".tiff"}:
        raise ParameterError(f"--out must be a .png, .jpg or .tif file, not {out.name!r}")
    w, h = args.size  # 16..16384 each: the option's type
    brick_size = getattr(args, "brick_size", None)
    if brick_size is not None:
        from viewer.streaming import check_brick_size

        check_brick_size(brick_size)
    stats_path = Path(args.stats) if getattr(args, "stats", None) else None
    if stats_path is not None and not stats_path.parent.is_dir():
        raise ParameterError(f"--stats: no directory {str(stats_path.parent)!r}")
    t0 = time.perf_counter()
    missing = 0
    opts = streaming_options(args)
    scene = scene_from_args(args)
    show = not args.no_overlays
    frame: dict[str, Any] = {}
    if use_streaming(args):
        from viewer.render import render_streamed
        from vrscope.commands._analysis_io import progress_enabled

        bar, progress = brick_progress(args.no_progress or not progress_enabled())
        with bar:
            img, stats = render_streamed(
                scene,
                size=(w, h),
                timeout=args.stream_timeout,
                progress=progress,
                voxel_budget=int(args.voxel_budget),
                show_scale_bar=show,
                show_axes=show,
                brick_size=brick_size,
                frame_stats=frame if stats_path is not None else None,
                **opts,
            )
        print_stream_stats(stats)
        missing = sum(int(getattr(st, "failed", 0)) for st in stats.values())
        if missing and not args.allow_missing:
            first = next((e for st in stats.values() if (e := getattr(st, "first_error", ""))), "")
            raise FormatError(
                f"{missing} brick(s) could not be read ({first or 'unreadable chunks'}); "
                "the picture would have holes. Pass --allow-missing to write it anyway"
            )
    else:
        from viewer.render import SceneRenderer

        with SceneRenderer(
            scene,
            size=(w, h),
            voxel_budget=int(args.voxel_budget),
            show_scale_bar=show,
            show_axes=show,
        ) as r:
            img = r.screenshot()
            if stats_path is not None:
                frame = whole_level_stats(r)
    if stats_path is not None:
        import json

        stats_path.write_text(json.dumps(frame, indent=2) + "\n")
    import imageio.v3 as iio

    iio.imwrite(out, img)
    print(f"wrote {out} ({w} x {h}) in {time.perf_counter() - t0:.1f} s")
    if missing:
        print(f"INCOMPLETE: {missing} brick(s) could not be read and are missing from {out}")
    return 0
