"""Physical checks of NGFF image metadata, on plain JSON (issue 21).

The checks :func:`~analysis.io.open_volume` makes of a store's multiscales (finite
positive scales, voxel sizes within 1 fm .. 1 km, dataset paths inside the store, no
empty axis, no axis beyond 2**31, levels never larger than level 0) live here, with
nothing heavier than the standard library, so that :func:`check_local_metadata` can
make them on a local store's JSON files *before* zarr and NumPy are imported: a command
given a store with absurd or truncated metadata answers in a fraction of a second, not
after a second of imports. The reader (:mod:`analysis.io._read`) makes the same checks
with the same functions, so both say the same line.

:func:`check_local_metadata` only refuses; whatever it cannot read the way the reader
would (a URL, no multiscales, an unusual layout, a missing level) it leaves to the
reader, which then says what is wrong.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from analysis.errors import FormatError

__all__ = [
    "check_dataset_path",
    "check_level",
    "check_level_not_larger",
    "check_local_metadata",
    "transform",
]

#: Largest voxel size accepted, and smallest (µm): 1 km and 1 fm.
MAX_VOXEL_UM = 1e9
MIN_VOXEL_UM = 1e-9
#: Longest axis accepted (voxels): beyond it the metadata is wrong, not the sample.
MAX_AXIS = 2**31 - 1


def transform(transforms: Any, ndim: int, where: str) -> tuple[list[float], list[float]]:
    """Scale and translation from an NGFF ``coordinateTransformations`` list."""
    scale = [1.0] * ndim
    translation = [0.0] * ndim
    for i, tr in enumerate(transforms or []):
        kind = tr.get("type")
        if kind == "identity":
            continue
        if kind not in ("scale", "translation"):
            raise FormatError(f"unsupported transformation type {kind!r} at {where}[{i}]")
        if kind not in tr:
            raise FormatError(
                f"{where}[{i}] has no inline {kind!r} values (a 'path' to a binary "
                "transformation is not supported)"
            )
        try:
            values = [float(v) for v in tr[kind]]
        except (TypeError, ValueError):
            raise FormatError(f"{where}[{i}].{kind} holds a value that is not a number") from None
        if not all(math.isfinite(v) for v in values):
            raise FormatError(f"{where}[{i}].{kind} holds NaN or infinity: {tr[kind]}")
        if kind == "scale" and not all(v > 0 for v in values):
            raise FormatError(f"{where}[{i}].scale must be positive, got {tr[kind]}")
        if len(values) != ndim:
            raise FormatError(
                f"{where}[{i}].{kind} has {len(values)} values but the image has {ndim} axes"
            )
        if kind == "scale":
            scale = values
        else:
            translation = values
    return scale, translation


def check_dataset_path(where: str, path: Any) -> None:
    """A dataset ``path`` (at ``where``, e.g. ``multiscales[0].datasets[1]``) names a node
    inside the store: not absolute, no ``..``, not empty."""
    parts = str(path).replace("\\", "/").split("/")
    if str(path).startswith("/") or ".." in parts or not str(path).strip("/"):
        raise FormatError(f"{where}.path {path!r} is not a path inside the store")


def check_level(
    where: str,
    path: str,
    shape: tuple[int, ...],
    scale: Sequence[float],
    translation: Sequence[float],
    types: Sequence[str],
) -> None:
    """One level's shape and (unit-converted) transform are physically possible."""
    if any(n < 1 for n in shape):
        raise FormatError(f"{where} ({path!r}) has an empty axis: shape {shape}")
    if any(n > MAX_AXIS for n in shape):
        raise FormatError(f"{where} ({path!r}) has an axis of more than 2**31 voxels: {shape}")
    for s, t, kind in zip(scale, translation, types, strict=True):
        if not (math.isfinite(s) and math.isfinite(t)):
            raise FormatError(f"{where} ({path!r}): its voxel size or offset is not finite")
        if kind == "space" and not MIN_VOXEL_UM <= s <= MAX_VOXEL_UM:
            raise FormatError(
                f"{where} ({path!r}): voxel size {s:g} µm is outside 1 fm .. 1 km "
                "(wrong scale or unit in the metadata)"
            )


def check_level_not_larger(
    where: str, path: str, shape: tuple[int, ...], shape0: tuple[int, ...], types: Sequence[str]
) -> None:
    """A level is never larger than level 0 along a space axis."""
    if any(n > n0 for n, n0, t in zip(shape, shape0, types, strict=True) if t == "space"):
        raise FormatError(
            f"{where} ({path!r}) is larger than level 0 ({shape} vs {shape0}): levels must not grow"
        )


# -- the same checks on a local store's JSON, before zarr is imported ----------------------

_INFERRED = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


class _Skip(Exception):
    """Not decidable from the JSON alone: leave the store to the reader."""


def _json(path: Path) -> Any:
    """A metadata document; a file that is not JSON is an error naming it (truncated?)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _Skip from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(f"cannot read {path}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        what = "empty" if not text.strip() else f"not valid JSON ({exc.msg} at line {exc.lineno})"
        raise FormatError(
            f"metadata file {path} is {what}: truncated or not zarr metadata"
        ) from None


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Skip
    return value


def _shape(meta: Any) -> tuple[int, ...]:
    shape = _dict(meta).get("shape")
    if not isinstance(shape, list) or not all(type(n) is int for n in shape):
        raise _Skip
    return tuple(shape)


def check_local_metadata(store: str | os.PathLike[str]) -> None:
    """Refuse a local OME-Zarr image whose metadata files :func:`open_volume` would refuse,
    reading them as plain JSON (standard library only).

    Checks: every metadata file the image needs parses (a truncated ``zarr.json`` or
    ``.zattrs`` is one line naming the file), and the checks of :func:`transform`,
    :func:`check_dataset_path`, :func:`check_level` and :func:`check_level_not_larger`.
    A URL, a path that is not a folder, a folder without multiscales, or anything this
    cannot read as the reader would (consolidated metadata is read as zarr reads it) is
    left to the reader: this never refuses what the reader accepts.

    Raises
    ------
    FormatError
        One line naming the file or the field.
    """
    where_s = os.fspath(store)
    if "://" in where_s.removeprefix("file://"):
        return
    root = Path(where_s.removeprefix("file://")).expanduser()
    if not root.is_dir():
        return
    try:
        _check(root)
    except FormatError:
        raise
    except (_Skip, KeyError, TypeError, ValueError, AttributeError, IndexError):
        return  # not readable as the reader would: the reader says what is wrong


def _check(root: Path) -> None:
    from analysis.io._units import unit_factor

    if (root / "zarr.json").is_file():
        doc = _dict(_json(root / "zarr.json"))
        if doc.get("node_type") != "group":
            raise _Skip
        attrs = _dict(doc.get("attributes", {}))
        ome, prefix = _dict(attrs.get("ome", {})), "ome."
        consolidated = (doc.get("consolidated_metadata") or {}).get("metadata")

        def level(path: str) -> Any:
            if isinstance(consolidated, dict) and path in consolidated:
                return consolidated[path]
            meta = _json(root / path / "zarr.json")
            if _dict(meta).get("node_type") != "array":
                raise _Skip
            return meta

    elif (root / ".zattrs").is_file() and (root / ".zgroup").is_file():
        zmeta = root / ".zmetadata"
        consolidated = _dict(_json(zmeta)).get("metadata") if zmeta.is_file() else None
        if isinstance(consolidated, dict) and ".zattrs" in consolidated:
            ome = _dict(consolidated[".zattrs"])
        else:
            _json(root / ".zgroup")
            ome = _dict(_json(root / ".zattrs"))
        prefix = ""

        def level(path: str) -> Any:
            key = f"{path.strip('/')}/.zarray"
            if isinstance(consolidated, dict) and key in consolidated:
                return consolidated[key]
            return _json(root / path / ".zarray")

    else:
        raise _Skip
    multiscales = ome.get("multiscales")
    if not isinstance(multiscales, list) or not multiscales:
        raise _Skip
    ms = _dict(multiscales[0])
    where = f"{prefix}multiscales[0]"
    axes = ms["axes"]
    ndim = len(axes)
    types = [
        str(_dict(ax).get("type") or _INFERRED.get(str(ax.get("name", "")).lower())) for ax in axes
    ]
    if not all(t in ("space", "time", "channel") for t in types):
        raise _Skip
    # Space units as the reader converts them (an unknown one is its error too; space
    # axes are named z, y, x by position). Other axes keep factor 1 here, which is never
    # stricter than the reader (only finiteness is checked for them), and leaves its
    # warning about an unknown time unit to the reader, said once.
    space = iter("zyx"[-types.count("space") :] if "space" in types else "")
    factors = []
    for ax, t in zip(axes, types, strict=True):
        name = next(space) if t == "space" else ""
        unit = ax.get("unit")
        factors.append(unit_factor(str(unit), t, name) if t == "space" and unit else 1.0)
    gscale, gtrans = transform(
        ms.get("coordinateTransformations"), ndim, f"{where}.coordinateTransformations"
    )
    shape0: tuple[int, ...] | None = None
    for i, ds in enumerate(ms["datasets"]):
        path = _dict(ds)["path"]
        check_dataset_path(f"{where}.datasets[{i}]", path)
        shape = _shape(level(str(path)))
        if len(shape) != ndim:
            raise _Skip  # the reader says it
        scale, trans = transform(
            ds["coordinateTransformations"],
            ndim,
            f"{where}.datasets[{i}].coordinateTransformations",
        )
        full_scale = [s * g * f for s, g, f in zip(scale, gscale, factors, strict=True)]
        full_trans = [
            (t * g + gt) * f for t, g, gt, f in zip(trans, gscale, gtrans, factors, strict=True)
        ]
        check_level(f"{where}.datasets[{i}]", str(path), shape, full_scale, full_trans, types)
        if shape0 is None:
            shape0 = shape
        else:
            check_level_not_larger(f"{where}.datasets[{i}]", str(path), shape, shape0, types)
