"""``vrscope info``: summarise an OME-Zarr image (local or http) without reading pixels."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analysis.io import ZarrVolumeSource

ORDER = 10

_EPILOG = """\
examples:
  vrscope info sample.zarr
  vrscope info https://example.org/data/image.ome.zarr --json
  vrscope info sample.zarr/labels/cells
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "info",
        help="summarise an OME-Zarr image: levels, shapes, chunks, voxel size, labels",
        description=(
            "Print the levels (shape, chunks, voxel size), dtype, axes and units, NGFF version "
            "and label images of an OME-Zarr image (NGFF 0.4 or 0.5). Reads metadata only."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", metavar="PATH_OR_URL", help="image store: a folder or an http(s) URL")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
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


def run(args: argparse.Namespace) -> int:
    from analysis.io import open_volume

    src = open_volume(args.path)
    info = summary(src)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(_text(info))
    return 0
