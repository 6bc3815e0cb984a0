"""GEFF (graph exchange file format, zarr v2/v3) <-> :class:`~analysis.tracks.TrackGraph`.

Reading and writing go through the ``geff`` package (``geff.core_io.read_to_memory``
and ``write_arrays``), which validates the structure. Files written by older GEFF
versions (0.2, e.g. geff-java's, with float node ids and no property metadata)
are upgraded *in memory*: the store is copied into a ``zarr`` ``MemoryStore``
(compressed chunks, no decoding), ids are cast to int64 after checking they are
whole numbers, and property metadata is derived from the arrays' dtypes; then
the same ``geff`` reader runs on the copy. The file itself is never modified.

Mapping: the axis of type ``time`` becomes ``t`` (whole frame numbers), the space
axes become ``z``, ``y``, ``x`` in µm (converted from the axis unit; no unit means
µm; 2D data gets ``z = 0``), the labels property (named by a ``labels`` related
object's ``node_prop``, else ``label``/``seg_id``/``segmentation_id``) becomes
``label``, ``reviewed`` is the proofreading flag, and every other 1D numeric or
boolean node property becomes a feature column with its missing mask, except the
tracklet/lineage id properties named in ``track_node_props``, which are derived
from the edges and recomputed by the graph.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from analysis.errors import FormatError, ParameterError

if TYPE_CHECKING:
    from analysis.tracks._graph import TrackGraph

__all__ = ["read_geff", "write_geff"]

log = logging.getLogger(__name__)

_LABEL_NAMES = ("label", "seg_id", "segmentation_id")
_SPACE_NAMES = ("z", "y", "x")


def _store_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(2, "No such file or directory", str(p))
    return p


def _find_geff_group(p: Path) -> Path:
    """The group holding the ``geff`` attributes: ``p`` itself or a ``tracks`` child."""
    import zarr

    def has_geff(q: Path) -> bool:
        try:
            return "geff" in zarr.open_group(str(q), mode="r").attrs
        except Exception:  # zarr raises several error types for "not a group"
            return False

    if has_geff(p):
        return p
    if (p / "tracks").is_dir() and has_geff(p / "tracks"):
        return p / "tracks"
    raise FormatError(
        f"{p} holds no GEFF (no zarr group with 'geff' attributes here or in tracks/)"
    )


def _legacy_memory_store(p: Path, meta: dict[str, Any]) -> Any:
    """Copy a pre-1.0 GEFF into memory and upgrade what the current reader requires."""
    import zarr
    from zarr.core.buffer import default_buffer_prototype
    from zarr.storage import LocalStore, MemoryStore

    src = LocalStore(str(p), read_only=True)

    async def copy() -> dict[str, Any]:
        out: dict[str, Any] = {}
        proto = default_buffer_prototype()
        async for key in src.list():
            out[key] = await src.get(key, proto)
        return out

    mem = MemoryStore(asyncio.run(copy()))
    root = zarr.open_group(mem, mode="r+")
    for path in ("nodes/ids", "edges/ids"):
        if path not in root:
            raise FormatError(f"GEFF {p} has no {path} array")
        arr = root[path]
        assert isinstance(arr, zarr.Array)
        values = np.asarray(arr[:])
        if values.dtype.kind == "f":
            if not np.all(values == np.round(values)):
                raise FormatError(f"GEFF {p}: {path} holds non-integer ids")
            values = values.astype(np.int64)
            del root[path]
            root.create_array(path, data=values, chunks=values.shape or (1,))
    props: dict[str, dict[str, Any]] = {}
    for kind in ("nodes", "edges"):
        found: dict[str, Any] = {}
        if f"{kind}/props" in root:
            grp = root[f"{kind}/props"]
            assert isinstance(grp, zarr.Group)
            for name in grp.group_keys():
                prop_values = grp[f"{name}/values"]
                assert isinstance(prop_values, zarr.Array)
                dt = np.dtype(prop_values.dtype)
                found[name] = {
                    "identifier": name,
                    "dtype": "str" if dt.kind in "US" else dt.name,
                }
        props[kind] = found
    meta = dict(meta)
    meta.setdefault("node_props_metadata", props["nodes"])
    meta.setdefault("edge_props_metadata", props["edges"])
    root.attrs["geff"] = meta
    log.info("upgraded GEFF %s (version %s) in memory", p, meta.get("geff_version"))
    return mem


def read_geff(path: str | os.PathLike[str]) -> TrackGraph:
    """Read a GEFF store (zarr v2 or v3, GEFF 0.2 and later) into a ``TrackGraph``.

    Parameters
    ----------
    path : path-like
        The GEFF group, or a zarr group with the GEFF in its ``tracks`` child
        (as written by ``vrscope sample timelapse``).

    Returns
    -------
    TrackGraph
        ``attrs`` gets ``frame_interval_s`` when the time axis has a scale in a time unit.

    Raises
    ------
    FormatError
        Not a GEFF, invalid structure, non-integer ids or times, merges (a node
        with two parents), more than two children, edges not forward in time.
    """
    import zarr
    from geff.core_io import read_to_memory
    from pydantic import ValidationError

    from analysis.tracks._graph import TrackGraph

    p = _find_geff_group(_store_path(path))
    raw_meta = zarr.open_group(str(p), mode="r").attrs["geff"]
    if not isinstance(raw_meta, dict):
        raise FormatError(f"{p}: the 'geff' attributes are not a JSON object")
    meta = dict(raw_meta)
    source: Any = str(p)
    if "node_props_metadata" not in meta or "edge_props_metadata" not in meta:
        source = _legacy_memory_store(p, meta)
    try:
        mem = read_to_memory(source)
    except (ValueError, ValidationError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FormatError(f"invalid GEFF {p}: {first}") from exc
    metadata = mem["metadata"]
    props = dict(mem["node_props"])
    if mem["edge_props"]:
        log.warning("GEFF %s: edge properties %s are not kept", p, sorted(mem["edge_props"]))
    if not metadata.directed:
        raise FormatError(f"GEFF {p} is undirected; tracks need parent -> child edges")

    t_name, space, units = _axes(metadata, props, p)
    if t_name not in props:
        raise FormatError(f"GEFF {p} has no time property {t_name!r}")
    n = len(mem["node_ids"])
    t = _values(props.pop(t_name), t_name, p)
    zyx = np.zeros((n, 3), dtype=np.float64)
    for k, name in enumerate(space[-3:]):
        col = 3 - len(space[-3:]) + k
        zyx[:, col] = _values(props.pop(name), name, p).astype(np.float64) * units[name]

    # Tracklet / lineage ids named in the metadata are derived from the edges; the
    # graph recomputes them (TrackGraph.tracklet_ids) so stale copies never linger.
    for name in (metadata.track_node_props or {}).values():
        props.pop(name, None)
    label_name = _label_prop(metadata, props)
    label = None
    if label_name is not None:
        lab = props.pop(label_name)
        label = np.asarray(lab["values"]).astype(np.int64)
        if lab.get("missing") is not None:
            label[np.asarray(lab["missing"], dtype=bool)] = 0
    reviewed = None
    if "reviewed" in props and np.asarray(props["reviewed"]["values"]).dtype.kind == "b":
        reviewed = np.asarray(props.pop("reviewed")["values"], dtype=bool)

    features: dict[str, npt.NDArray[Any]] = {}
    missing: dict[str, npt.NDArray[np.bool_] | None] = {}
    for name, prop in props.items():
        values = np.asarray(prop["values"])
        if values.dtype == object or values.ndim != 1 or values.dtype.kind not in "biuf":
            log.warning(
                "GEFF %s: node property %r (%s, %dD) is not kept",
                p,
                name,
                values.dtype,
                values.ndim,
            )
            continue
        features[name] = values
        m = prop.get("missing")
        missing[name] = None if m is None else np.asarray(m, dtype=bool)

    g = TrackGraph.from_arrays(
        mem["node_ids"],
        t,
        zyx,
        mem["edge_ids"],
        label=label,
        reviewed=reviewed,
        features=features,
        feature_missing=missing,
    )
    dt = _frame_interval_s(metadata, t_name)
    if dt is not None:
        g.attrs["frame_interval_s"] = dt
    return g


def _values(prop: Any, name: str, p: Path) -> npt.NDArray[Any]:
    m = prop.get("missing")
    if m is not None and np.any(m):
        raise FormatError(f"GEFF {p}: property {name!r} is missing on some nodes")
    return np.asarray(prop["values"])


def _axes(metadata: Any, props: dict[str, Any], p: Path) -> tuple[str, list[str], dict[str, float]]:
    from analysis.io._units import space_unit_to_um

    axes = list(metadata.axes or [])
    if not axes:
        # No axis metadata: fall back to the conventional property names.
        space = [n for n in _SPACE_NAMES if n in props]
        if "t" not in props or not space:
            raise FormatError(f"GEFF {p} has no axes metadata and no t/z/y/x properties")
        return "t", space, dict.fromkeys(space, 1.0)
    times = [a for a in axes if a.type == "time"]
    if len(times) != 1:
        raise FormatError(f"GEFF {p} needs exactly one axis of type 'time', found {len(times)}")
    space_axes = [
        a for a in axes if a.type == "space" or (a.type is None and a.name in _SPACE_NAMES)
    ]
    if not 1 <= len(space_axes) <= 3:
        raise FormatError(f"GEFF {p} needs 1 to 3 space axes, found {len(space_axes)}")
    names = [a.name for a in space_axes]
    if set(names) <= set(_SPACE_NAMES):
        names = [n for n in _SPACE_NAMES if n in names]  # put them in z, y, x order
    units: dict[str, float] = {}
    for a in space_axes:
        if a.unit in (None, "pixel"):
            units[a.name] = 1.0  # no physical unit stated: taken as µm
        else:
            units[a.name] = space_unit_to_um(str(a.unit), a.name)
    return str(times[0].name), names, units


def _label_prop(metadata: Any, props: dict[str, Any]) -> str | None:
    for obj in metadata.related_objects or []:
        if obj.type == "labels":
            name = getattr(obj, "node_prop", None) or getattr(obj, "label_prop", None)
            if name and name in props:
                return str(name)
    for name in _LABEL_NAMES:
        if name in props and np.asarray(props[name]["values"]).dtype.kind in "iu":
            return name
    return None


def _frame_interval_s(metadata: Any, t_name: str) -> float | None:
    from analysis.io._units import time_unit_to_s

    for a in metadata.axes or []:
        if a.name != t_name:
            continue
        try:
            if a.unit not in (None, "frame"):
                return float(a.scale or 1.0) * time_unit_to_s(str(a.unit), a.name)
            if a.scale is not None and a.scaled_unit not in (None, "frame"):
                return float(a.scale) * time_unit_to_s(str(a.scaled_unit), a.name)
        except FormatError:
            return None
    return None


def write_geff(
    graph: TrackGraph,
    path: str | os.PathLike[str],
    *,
    zarr_format: Literal[2, 3] | int = 2,
    overwrite: bool = False,
    track_ids: bool = True,
) -> Path:
    """Write ``graph`` as GEFF with the ``geff`` package.

    Parameters
    ----------
    graph : TrackGraph
    path : path-like
        The GEFF group to create (e.g. ``tracks.geff`` or ``sample.zarr/tracks``).
    zarr_format : {2, 3}, default: 2
    overwrite : bool, default: False
        Replace an existing GEFF at ``path``.
    track_ids : bool, default: True
        Also write ``tracklet_id`` and ``lineage_id`` node properties (named in the
        metadata's ``track_node_props``) for other tools; they are derived data.

    Returns
    -------
    pathlib.Path
    """
    from geff.core_io import write_arrays
    from geff_spec import Axis, GeffMetadata

    if zarr_format not in (2, 3):
        raise ParameterError(f"zarr_format must be 2 or 3, got {zarr_format}")
    p = Path(path).expanduser()
    if not p.parent.is_dir():
        raise FileNotFoundError(2, "No such file or directory", str(p.parent))
    if p.exists() and not overwrite:
        raise FormatError(f"{p} already exists (use overwrite to replace it)")
    if p.exists() and overwrite:
        import shutil

        shutil.rmtree(p)
    props: dict[str, Any] = {
        "t": {"values": graph.t, "missing": None},
        "z": {"values": graph.zyx[:, 0], "missing": None},
        "y": {"values": graph.zyx[:, 1], "missing": None},
        "x": {"values": graph.zyx[:, 2], "missing": None},
        "label": {"values": graph.label, "missing": None},
        "reviewed": {"values": graph.reviewed, "missing": None},
    }
    reserved = set(props) | {"tracklet_id", "lineage_id"}
    for name in graph.feature_names:
        if name in reserved:
            log.warning("feature %r clashes with a core property and is not written", name)
            continue
        values, miss = graph.feature(name)
        props[name] = {"values": values, "missing": miss if miss.any() else None}
    track_props = None
    if track_ids:
        props["tracklet_id"] = {"values": graph.tracklet_ids(), "missing": None}
        props["lineage_id"] = {"values": graph.lineage_ids(), "missing": None}
        track_props = {"tracklet": "tracklet_id", "lineage": "lineage_id"}
    dt = graph.attrs.get("frame_interval_s")
    axes = [
        Axis(
            name="t",
            type="time",
            unit="frame",
            scale=float(dt) if dt else None,
            scaled_unit="second" if dt else None,
        ),
        *(Axis(name=n, type="space", unit="micrometer") for n in _SPACE_NAMES),
    ]
    metadata = GeffMetadata(
        directed=True,
        axes=axes,
        node_props_metadata={},
        edge_props_metadata={},
        track_node_props=track_props,
        extra={"vrscope": {"writer": "analysis.io.write_geff"}},
    )
    fmt: Literal[2, 3] = 3 if zarr_format == 3 else 2
    write_arrays(
        str(p),
        graph.node_ids.astype(np.int64),
        props,
        graph.edges.astype(np.int64).reshape(-1, 2),
        None,
        metadata,
        zarr_format=fmt,
    )
    return p
