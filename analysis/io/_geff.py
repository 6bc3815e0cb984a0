"""GEFF (graph exchange file format, zarr v2/v3) <-> :class:`~analysis.tracks.TrackGraph`.

Reading and writing go through the ``geff`` package (``geff.core_io.read_to_memory``
and ``write_arrays``), which validates the structure. Files written by older GEFF
versions (0.2, e.g. geff-java's, with float node ids and no property metadata)
are upgraded *in memory*: the store is copied into a ``zarr`` ``MemoryStore``
(compressed chunks, no decoding), ids are cast to int64 after checking they are
whole numbers, and property metadata is derived from the arrays' dtypes; then
the same ``geff`` reader runs on the copy. The file itself is never modified.

Mapping
-------
- The axis of type ``time`` becomes ``t``, the *frame index* edits and picking use.
  Whole-number times are frame numbers as they are. Other times (e.g. seconds) are
  mapped to frames: on a regular grid (step ``d``) ``t = round(value / d)`` (or
  counted from the first time when the grid is offset), otherwise the sorted unique
  times are numbered 0, 1, 2, ... The original values are kept, unchanged, in the
  feature column ``time_<unit>`` (``time_s`` for seconds, ``time_min``,
  ``time_ms``, ``time_h``, ``time_d``, ``time_<unit>`` otherwise, ``time`` without
  a unit); ``attrs["geff_time"]`` remembers it, and :func:`write_geff` writes those
  values back as the time axis (with its unit) and our frame index as the node
  property ``frame`` (named in ``extra.vrscope.frame_prop``, which the reader
  prefers over re-deriving frames). Nodes added by edits get times interpolated
  from their frame.
- The space axes become ``z``, ``y``, ``x`` in µm (converted from the axis unit; no
  unit means µm; 2D data gets ``z = 0``).
- The labels property (named by a ``labels`` related object's ``node_prop``, else
  ``label``/``seg_id``/``segmentation_id``) becomes ``label``; ``reviewed`` is the
  proofreading flag.
- Every other 1D numeric or boolean node property becomes a feature column with its
  missing mask, *including* the tracklet/lineage id properties named in
  ``track_node_props`` (e.g. ``track_id``): they keep their name and the file's
  values (``attrs["geff_track_node_props"]`` records the file's mapping). Our own
  derived ids (``TrackGraph.tracklet_ids()`` / ``lineage_ids()``, always current
  after edits) are written as ``tracklet_id`` / ``lineage_id`` and are the ones
  named in the written ``track_node_props``. A file property that uses one of those
  two names is dropped on read only when it equals what the graph derives (then
  nothing is lost); otherwise it is kept as ``tracklet_id_file`` / ``lineage_id_file``.
- Every 1D numeric or boolean edge property becomes an edge feature column
  (``TrackGraph.edge_feature``) with its missing mask and is written back.
  Properties of other kinds (strings, arrays) are not kept; a warning names them.
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
    from analysis.tracks import TrackGraph

__all__ = ["read_geff", "write_geff"]

log = logging.getLogger(__name__)

_LABEL_NAMES = ("label", "seg_id", "segmentation_id")
_SPACE_NAMES = ("z", "y", "x")
_DERIVED = {"tracklet": "tracklet_id", "lineage": "lineage_id"}
_TIME_ABBR = {"second": "s", "millisecond": "ms", "minute": "min", "hour": "h", "day": "d"}
_FRAME_PROP = "frame"


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

    from analysis.tracks import TrackGraph

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
    except (ValueError, ValidationError, KeyError, RuntimeError) as exc:
        # RuntimeError: a chunk that its codec cannot decode (numcodecs' zstd, blosc)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FormatError(f"invalid GEFF {p}: {first}") from exc
    metadata = mem["metadata"]
    props = dict(mem["node_props"])
    if not metadata.directed:
        raise FormatError(f"GEFF {p} is undirected; tracks need parent -> child edges")

    t_name, space, units = _axes(metadata, props, p)
    if t_name not in props:
        raise FormatError(f"GEFF {p} has no time property {t_name!r}")
    n = len(mem["node_ids"])
    raw_t = _values(props.pop(t_name), t_name, p)
    extra = metadata.extra if isinstance(metadata.extra, dict) else {}
    ours_raw = extra.get("vrscope")
    ours: dict[str, Any] = ours_raw if isinstance(ours_raw, dict) else {}
    frame_prop = ours.get("frame_prop")
    frames = None
    if isinstance(frame_prop, str) and frame_prop in props:
        frames = _values(props.pop(frame_prop), frame_prop, p)
    t, time_col, time_attrs, grid_interval_s = _frames(raw_t, frames, metadata, t_name, p)
    zyx = np.zeros((n, 3), dtype=np.float64)
    for k, name in enumerate(space[-3:]):
        col = 3 - len(space[-3:]) + k
        zyx[:, col] = _values(props.pop(name), name, p).astype(np.float64) * units[name]

    # Tracklet / lineage ids named in the metadata are kept as the file wrote them
    # (a scientist's track ids are data), except copies of the ids the graph derives
    # itself under the same names (checked below, once the graph exists).
    track_props = dict(metadata.track_node_props or {})
    derived_copies = {
        key: props.pop(name)
        for key, name in track_props.items()
        if key in _DERIVED and name == _DERIVED[key] and name in props
    }
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
    if time_col is not None:
        while time_col in features:  # a file property already has that name
            time_col = f"t_{time_col}"
        time_attrs["geff_time"]["feature"] = time_col
        features[time_col] = raw_t
        missing[time_col] = None
    edge_features, edge_missing = _edge_columns(mem["edge_props"], p)

    g = TrackGraph.from_arrays(
        mem["node_ids"],
        t,
        zyx,
        mem["edge_ids"],
        label=label,
        reviewed=reviewed,
        features=features,
        feature_missing=missing,
        edge_features=edge_features,
        edge_feature_missing=edge_missing,
    )
    for key, prop in derived_copies.items():
        values = np.asarray(prop["values"])
        m = prop.get("missing")
        derived = g.tracklet_ids() if key == "tracklet" else g.lineage_ids()
        if (m is None or not np.any(m)) and np.array_equal(values, derived):
            continue  # exactly what the graph derives: recomputed, nothing lost
        name = f"{_DERIVED[key]}_file"
        log.info("GEFF %s: %s ids differ from the derived ones; kept as %r", p, key, name)
        if values.dtype.kind in "biuf" and values.ndim == 1:
            g.set_feature(name, values, None if m is None else np.asarray(m, dtype=bool))
    if track_props:
        g.attrs["geff_track_node_props"] = track_props
    g.attrs.update(time_attrs)
    if time_col is None:
        dt = _frame_interval_s(metadata, t_name)
    elif frames is not None and isinstance(ours.get("frame_interval_s"), (int, float)):
        dt = float(ours["frame_interval_s"])  # ours, from before the times were mapped
    else:
        dt = grid_interval_s
    if dt is not None:
        g.attrs["frame_interval_s"] = dt
    return g


def _edge_columns(
    edge_props: dict[str, Any], p: Path
) -> tuple[dict[str, npt.NDArray[Any]], dict[str, npt.NDArray[np.bool_] | None]]:
    """The 1D numeric/boolean GEFF edge properties as edge feature columns."""
    values: dict[str, npt.NDArray[Any]] = {}
    missing: dict[str, npt.NDArray[np.bool_] | None] = {}
    for name, prop in edge_props.items():
        v = np.asarray(prop["values"])
        if v.dtype == object or v.ndim != 1 or v.dtype.kind not in "biuf":
            log.warning("GEFF %s: edge property %r (%s, %dD) is not kept", p, name, v.dtype, v.ndim)
            continue
        values[name] = v
        m = prop.get("missing")
        missing[name] = None if m is None else np.asarray(m, dtype=bool)
    return values, missing


def _seconds_per_unit(axis: Any) -> float | None:
    """Seconds per one unit of the time axis' *values*, if the metadata says."""
    from analysis.io._units import time_unit_to_s

    try:
        if axis.unit not in (None, "frame"):
            return time_unit_to_s(str(axis.unit), axis.name)
        if axis.scale is not None and axis.scaled_unit not in (None, "frame"):
            return float(axis.scale) * time_unit_to_s(str(axis.scaled_unit), axis.name)
    except FormatError:
        return None
    return None


def _time_column_name(unit: str | None) -> str:
    from analysis.io._units import _TIME_ALIASES

    if unit in (None, "frame"):
        return "time"
    key = _TIME_ALIASES.get(str(unit), str(unit).lower())
    return f"time_{_TIME_ABBR.get(key, key)}"


def _frames(
    raw: npt.NDArray[Any],
    frames: npt.NDArray[Any] | None,
    metadata: Any,
    t_name: str,
    p: Path,
) -> tuple[npt.NDArray[np.int64], str | None, dict[str, Any], float | None]:
    """Frame index per node from the time values.

    Returns ``(t, time column or None, attrs to set, frame interval in s or None)``;
    the time column (holding ``raw``) is None when the times are frame numbers.
    """
    if raw.dtype.kind not in "biuf":
        raise FormatError(f"GEFF {p}: time values must be numbers, got dtype {raw.dtype}")
    if raw.size and not np.all(np.isfinite(raw)):
        raise FormatError(f"GEFF {p}: time values must be finite")
    whole = raw.dtype.kind in "biu" or bool(np.all(raw == np.round(raw)))
    if whole and frames is None:
        return raw.astype(np.int64), None, {}, None
    axis = next((a for a in metadata.axes or [] if a.name == t_name), None)
    unit = None if axis is None else axis.unit
    col = _time_column_name(unit)
    attrs = {"geff_time": {"feature": col, "unit": unit, "axis": t_name}}
    per_unit = None if axis is None else _seconds_per_unit(axis)
    values = raw.astype(np.float64)
    uniq, inverse = np.unique(values, return_inverse=True)
    if frames is not None:
        fr = np.asarray(frames)
        if fr.dtype.kind == "f" and np.any(fr != np.round(fr)):
            raise FormatError(f"GEFF {p}: the frame property holds non-integer values")
        return fr.astype(np.int64), col, attrs, None
    step = float(np.min(np.diff(uniq))) if uniq.size > 1 else 0.0
    if step > 0:
        k = (uniq - uniq[0]) / step
        if np.allclose(k, np.round(k), rtol=0, atol=1e-6):
            # A regular grid: frames count grid steps, from time 0 when 0 lies on it.
            origin = uniq[0] / step
            off = round(origin) if abs(origin - round(origin)) < 1e-6 else 0
            t = np.round(k).astype(np.int64)[inverse] + int(off)
            dt = None if per_unit is None else step * per_unit
            return t, col, attrs, dt
    # Irregular times: number the distinct time points in order.
    return inverse.astype(np.int64).reshape(-1), col, attrs, None


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
    if not times:  # untyped axes (e.g. geff.write without axis_types): go by the name
        times = [a for a in axes if a.type is None and a.name in ("t", "time")]
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
    time_axis, frame_prop = _time_axis_for_write(graph)
    props: dict[str, Any] = {
        "t": {"values": graph.t, "missing": None},
        "z": {"values": graph.zyx[:, 0], "missing": None},
        "y": {"values": graph.zyx[:, 1], "missing": None},
        "x": {"values": graph.zyx[:, 2], "missing": None},
        "label": {"values": graph.label, "missing": None},
        "reviewed": {"values": graph.reviewed, "missing": None},
    }
    skip = set()
    if time_axis is not None:
        props["t"] = {"values": time_axis[0], "missing": None}
        props[frame_prop] = {"values": graph.t, "missing": None}
        skip.add(str(graph.attrs["geff_time"]["feature"]))
    reserved = set(props) | {"tracklet_id", "lineage_id"}
    for name in graph.feature_names:
        if name in skip:
            continue
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
    edge_props: dict[str, Any] = {}
    for name in graph.edge_feature_names:
        values, miss = graph.edge_feature(name)
        edge_props[name] = {"values": values, "missing": miss if miss.any() else None}
    dt = graph.attrs.get("frame_interval_s")
    if time_axis is not None:
        t_axis = Axis(name="t", type="time", unit=time_axis[1])
    else:
        t_axis = Axis(
            name="t",
            type="time",
            unit="frame",
            scale=float(dt) if dt else None,
            scaled_unit="second" if dt else None,
        )
    axes = [t_axis, *(Axis(name=n, type="space", unit="micrometer") for n in _SPACE_NAMES)]
    ours: dict[str, Any] = {"writer": "analysis.io.write_geff"}
    if time_axis is not None:
        ours["frame_prop"] = frame_prop
        if dt:
            ours["frame_interval_s"] = float(dt)
    metadata = GeffMetadata(
        directed=True,
        axes=axes,
        node_props_metadata={},
        edge_props_metadata={},
        track_node_props=track_props,
        extra={"vrscope": ours},
    )
    fmt: Literal[2, 3] = 3 if zarr_format == 3 else 2
    write_arrays(
        str(p),
        graph.node_ids.astype(np.int64),
        props,
        graph.edges.astype(np.int64).reshape(-1, 2),
        edge_props or None,
        metadata,
        zarr_format=fmt,
    )
    return p


def _time_axis_for_write(graph: TrackGraph) -> tuple[tuple[npt.NDArray[Any], Any] | None, str]:
    """``((time values, unit), frame property name)`` when the graph came from a GEFF
    with non-frame times (``attrs["geff_time"]``), else ``(None, name)``.

    Nodes without a time value (added by edits) get one interpolated linearly from
    their frame between known frames, extrapolated with the mean step outside.
    """
    info = graph.attrs.get("geff_time")
    frame_prop = _FRAME_PROP
    while frame_prop in graph.feature_names:
        frame_prop = f"vrscope_{frame_prop}"
    if not isinstance(info, dict) or info.get("feature") not in graph.feature_names:
        return None, frame_prop
    values, miss = graph.feature(str(info["feature"]))
    values = values.copy()
    if miss.any():
        t = graph.t
        known_t, first = np.unique(t[~miss], return_index=True)
        known_v = values[~miss][first].astype(np.float64)
        if known_t.size == 0:
            raise ParameterError(f"no node has a {info['feature']!r} value to write times from")
        step = (known_v[-1] - known_v[0]) / (known_t[-1] - known_t[0]) if known_t.size > 1 else 1.0
        tm = t[miss].astype(np.float64)
        fill = np.interp(tm, known_t, known_v)
        lo, hi = tm < known_t[0], tm > known_t[-1]
        fill[lo] = known_v[0] + (tm[lo] - known_t[0]) * step
        fill[hi] = known_v[-1] + (tm[hi] - known_t[-1]) * step
        values = values.astype(np.result_type(values.dtype, np.float64))
        values[miss] = fill
    return (values, info.get("unit")), frame_prop
