"""``vrscope info``: summarise an OME-Zarr image (local or http) without reading pixels."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from vrscope.commands._options import (
    add_cache_option,
    add_remote_timeout_option,
    cache_bytes,
    check_store_exists,
    int_range,
)

if TYPE_CHECKING:
    from analysis.io import ZarrVolumeSource

ORDER = 10

_EPILOG = """\
--stream opens the image with the viewer's multiscale streamer, loads the first
(coarsest) picture of the whole volume and reports how long it took, the bytes
fetched, cache use and the requests still pending for full detail. To fly a camera
through a store and watch the cache and requests over time, use 'vrscope stream'.

examples:
  vrscope info sample.zarr
  vrscope info https://example.org/data/image.ome.zarr --json
  vrscope info sample.zarr/labels/cells
  vrscope info https://example.org/data/image.ome.zarr --stream
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "info",
        help="summarise an OME-Zarr image: levels, shapes, chunks, voxel size, labels",
        description=(
            "Print the levels (shape, chunks, voxel size), dtype, axes and units, NGFF version "
            "and label images of an OME-Zarr image (NGFF 0.4 or 0.5). Reads metadata only, "
            "unless --stream."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", metavar="PATH_OR_URL", help="image store: a folder or an http(s) URL")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument(
        "--stream",
        action="store_true",
        help="also stream the first (coarsest) picture of the whole volume and report time "
        "to first image, bytes fetched, cache use and pending requests (reads pixels)",
    )
    p.add_argument(
        "--size",
        type=int_range(16, 16384),
        nargs=2,
        default=(1920, 1080),
        metavar=("W", "H"),
        help="--stream: viewport in pixels (default: 1920 1080)",
    )
    add_cache_option(p, "--stream: ")
    add_remote_timeout_option(p)
    p.set_defaults(func=run)


def _fmt_tuple(values: tuple[Any, ...] | list[Any]) -> str:
    return " x ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def _levels(src: ZarrVolumeSource) -> list[dict[str, Any]]:
    return [
        {
            "path": lev.path,
            "shape": list(lev.shape),
            "chunks": list(lev.chunks),
            "scale": list(lev.scale),
            "translation": list(lev.translation),
        }
        for lev in src.levels
    ]


def _space_unit(src: ZarrVolumeSource) -> str | None:
    units = {u for a, u in zip(src.axes, src.units, strict=True) if a in "zyx" and u}
    return ", ".join(sorted(units)) if units else None


def summary(src: ZarrVolumeSource) -> dict[str, Any]:
    """Everything ``vrscope info`` prints, as plain JSON-able data."""
    from analysis.errors import VrscopeError
    from analysis.io import space_unit_to_um

    space = [i for i, a in enumerate(src.axes) if a in "zyx"]
    voxel_um = [src.levels[0].scale[i] for i in space]
    unit = _space_unit(src)
    in_unit = None
    if unit and "," not in unit:
        in_unit = [v / space_unit_to_um(unit) for v in voxel_um]
    labels: list[dict[str, Any]] = []
    for name in src.label_names:
        try:
            lab = src.open_labels(name)
        except VrscopeError as exc:
            labels.append({"name": name, "error": str(exc)})
            continue
        labels.append({"name": name, "dtype": str(lab.dtype), "levels": _levels(lab)})
    return {
        "url": src.url,
        "name": src.name,
        "ngff_version": src.ngff_version,
        "zarr_format": src.zarr_format,
        "is_label": src.is_label,
        "axes": list(src.axes),
        "virtual_axes": list(src.virtual_axes),
        "units": list(src.units),
        "dtype": str(src.dtype),
        "voxel_size_um": voxel_um,
        "unit": unit,
        "voxel_size_in_unit": in_unit,
        "time_step_s": src.levels[0].scale[src.axes.index("t")] if "t" in src.axes else None,
        "levels": _levels(src),
        "labels": labels,
    }


def _text(info: dict[str, Any]) -> str:
    lines = [
        f"{info['url']}",
        f"  name:         {info['name']}",
        f"  NGFF version: {info['ngff_version']} (zarr v{info['zarr_format']})"
        + ("  [label image]" if info["is_label"] else ""),
        "  axes:         "
        + ", ".join(
            f"{a} (virtual: 2D image)" if a in info["virtual_axes"] else (f"{a} ({u})" if u else a)
            for a, u in zip(info["axes"], info["units"], strict=True)
        ),
        f"  dtype:        {info['dtype']}",
    ]
    voxel = f"  voxel size:   {_fmt_tuple(info['voxel_size_um'])} µm (z, y, x)"
    if info["unit"] is None:
        voxel += "  [the store gives no unit; read as micrometer]"
    elif info["voxel_size_in_unit"] is not None and info["unit"] != "micrometer":
        voxel += f"  = {_fmt_tuple(info['voxel_size_in_unit'])} {info['unit']}"
    lines.append(voxel)
    if info["time_step_s"] is not None:
        lines.append(f"  time step:    {info['time_step_s']:g} s")
    lines.append(f"  levels:       {len(info['levels'])}")
    space = [i for i, a in enumerate(info["axes"]) if a in "zyx"]
    for lev in info["levels"]:
        vox = _fmt_tuple([lev["scale"][i] for i in space])
        lines.append(
            f"    {lev['path']:<6} shape {_fmt_tuple(lev['shape']):<22} "
            f"chunks {_fmt_tuple(lev['chunks']):<16} voxel {vox} µm"
        )
    lines.append(f"  labels:       {len(info['labels']) or 'none'}")
    for lab in info["labels"]:
        if "error" in lab:
            lines.append(f"    {lab['name']}: unreadable: {lab['error']}")
            continue
        shapes = ", ".join(f"{lev['path']} {_fmt_tuple(lev['shape'])}" for lev in lab["levels"])
        lines.append(
            f"    {lab['name']:<14} {lab['dtype']:<8} {len(lab['levels'])} levels: {shapes}"
        )
    return "\n".join(lines)


def stream_report(
    src: Any, size: tuple[int, int] = (1920, 1080), cache_bytes: int | None = None
) -> dict[str, Any]:
    """Stream the first picture of the whole volume (default camera) and report it.

    Returns time to first image (s), bytes and bricks fetched, cache use and the
    requests still pending for the full detail of that view.
    """
    import time

    import numpy as np

    from viewer.scene import Camera
    from viewer.streaming import View, VolumeStreamer

    lev = src.levels[0]
    scale = np.asarray(lev.scale[-3:], dtype=np.float64)
    lo = np.asarray(lev.translation[-3:], dtype=np.float64) - scale / 2
    hi = lo + np.asarray(lev.shape[-3:]) * scale
    cam = Camera()
    # The renderer's default view (viewer.scene.Scene.reset_camera + a turn).
    cam.frame(lo, hi, direction=(1.0, 0.3, 0.2), view_up=(0.0, -1.0, 0.0))
    view = View.from_camera(cam, size)
    t0 = time.perf_counter()
    with VolumeStreamer(src, cache_bytes=cache_bytes) as st:
        frame = st.first_image(view, timeout=120.0)
        seconds = time.perf_counter() - t0
        stats = frame.stats
        levels = sorted({int(x) for x in frame.levels.tolist()})
        # What full detail of this view needs, for context.
        need = st.grid.nbytes(frame.selection.leaves, st.itemsize)
    return {
        "viewport": list(size),
        "time_to_first_image_s": seconds,
        "first_image_complete": stats.drawn > 0 and stats.undrawn == 0,
        "levels_drawn": levels,
        "bricks_fetched": stats.loaded,
        "bytes_fetched": stats.bytes_loaded,
        "failed": stats.failed,
        "cache_bytes": stats.cache_bytes,
        "cache_budget_bytes": stats.cache_budget_bytes,
        "cache_bricks": stats.cache_bricks,
        "pending": stats.pending,
        "in_flight": stats.in_flight,
        "full_detail_bricks": stats.leaves,
        "full_detail_bytes": int(need.sum()),
    }


def _stream_text(rep: dict[str, Any]) -> str:
    mb = 2**20
    w, h = rep["viewport"]
    first = "first image: " + (
        f"{rep['time_to_first_image_s']:.2f} s, levels {', '.join(map(str, rep['levels_drawn']))}"
        if rep["first_image_complete"]
        else f"not complete after {rep['time_to_first_image_s']:.1f} s"
    )
    return "\n".join(
        [
            f"  streaming:    whole volume in a {w} x {h} view",
            f"    {first}",
            f"    fetched:     {rep['bricks_fetched']} bricks, {rep['bytes_fetched'] / mb:.2f} MB"
            + (f", {rep['failed']} failed" if rep["failed"] else ""),
            f"    cache:       {rep['cache_bytes'] / mb:.2f} / {rep['cache_budget_bytes'] / mb:.0f} MB, "
            f"{rep['cache_bricks']} bricks",
            f"    requests:    {rep['pending']} pending, {rep['in_flight']} in flight "
            f"(full detail: {rep['full_detail_bricks']} bricks, "
            f"{rep['full_detail_bytes'] / mb:.1f} MB)",
        ]
    )


def run(args: argparse.Namespace) -> int:
    from analysis.io import remote_deadline

    with remote_deadline(args.remote_timeout):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    check_store_exists(args.path)
    from analysis.io import open_volume

    src = open_volume(args.path)
    info = summary(src)
    if args.stream:
        w, h = args.size  # 16..16384 each: the option's type
        info["stream"] = stream_report(src, (int(w), int(h)), cache_bytes(args))
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(_text(info))
        if args.stream:
            print(_stream_text(info["stream"]))
    return 0
