"""Snapshots of the shared state as JSON-able columnar dicts (no pickle, no eval).

A ``TrackGraph`` becomes ``{"kind": "trackgraph", "columns": {...}, "next_id": N}``
where each column is ``{"dtype", "shape", "data"}`` with ``data`` the base64 of the
little-endian bytes. Decoding accepts only a fixed set of numeric dtypes and checks
every shape before building the graph with ``TrackGraph.from_arrays`` (which
validates the structure). A ``Workspace`` (``analysis.project``) becomes
``{"kind": "workspace", "tracks": <trackgraph or None>, "annotations": {...}}``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.errors import FormatError
from analysis.tracks import TrackGraph

__all__ = ["decode_state", "encode_state", "state_digest"]

_DTYPES = {"<i8", "<f8", "|b1", "<i4", "<f4", "<u8", "<u4", "|u1", "|i1"}
_MAX_ITEMS = 50_000_000


def _col(a: npt.NDArray[Any]) -> dict[str, Any]:
    a = np.ascontiguousarray(a)
    a = a.astype(a.dtype.newbyteorder("<"), copy=False)
    return {
        "dtype": a.dtype.str,
        "shape": list(a.shape),
        "data": base64.b64encode(a.tobytes()).decode("ascii"),
    }


def _uncol(d: Any, name: str) -> npt.NDArray[Any]:
    if not isinstance(d, dict) or set(d) != {"dtype", "shape", "data"}:
        raise FormatError(f"snapshot column {name!r} is malformed")
    dtype, shape, data = d["dtype"], d["shape"], d["data"]
    if dtype not in _DTYPES:
        raise FormatError(f"snapshot column {name!r} has unsupported dtype {dtype!r}")
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 2
        or not all(isinstance(s, int) and 0 <= s <= _MAX_ITEMS for s in shape)
    ):
        raise FormatError(f"snapshot column {name!r} has a bad shape {shape!r}")
    try:
        raw = base64.b64decode(str(data), validate=True)
    except ValueError as exc:
        raise FormatError(f"snapshot column {name!r} is not base64") from exc
    dt = np.dtype(dtype)
    if len(raw) != int(np.prod(shape)) * dt.itemsize:
        raise FormatError(f"snapshot column {name!r} has {len(raw)} bytes for shape {shape}")
    return np.frombuffer(raw, dtype=dt).reshape(shape).copy()


def _encode_graph(g: TrackGraph) -> dict[str, Any]:
    snap = g.snapshot()
    cols = {k: _col(v) for k, v in snap.items()}
    return {"kind": "trackgraph", "columns": cols, "next_id": int(g.next_id), "attrs": g.attrs}


def _decode_graph(d: dict[str, Any]) -> TrackGraph:
    cols = d.get("columns")
    if not isinstance(cols, dict):
        raise FormatError("track snapshot has no columns")
    arr = {str(k): _uncol(v, str(k)) for k, v in cols.items()}
    for k in ("id", "t", "zyx", "label", "reviewed", "edges"):
        if k not in arr:
            raise FormatError(f"track snapshot lacks column {k!r}")
    feats = {k[8:]: v for k, v in arr.items() if k.startswith("feature:")}
    missing = {k[8:]: v for k, v in arr.items() if k.startswith("missing:")}
    next_id = d.get("next_id")
    g = TrackGraph.from_arrays(
        arr["id"],
        arr["t"],
        arr["zyx"],
        arr["edges"].reshape(-1, 2),
        label=arr["label"],
        reviewed=arr["reviewed"],
        features=feats,
        feature_missing={k: missing.get(k) for k in feats},
        next_id=int(next_id) if isinstance(next_id, int) else None,
    )
    attrs = d.get("attrs")
    if isinstance(attrs, dict):
        g.attrs = dict(attrs)
    return g


def _dump_annotations(ann: Any) -> Any:
    # Annotations.to_json is the annotations.json text (versioned, validated on load).
    return json.loads(ann.to_json(indent=None))


def encode_state(target: Any) -> dict[str, Any]:
    """A JSON-able snapshot of ``target`` (a ``TrackGraph`` or a ``Workspace``)."""
    if isinstance(target, TrackGraph):
        return _encode_graph(target)
    if hasattr(target, "tracks") and hasattr(target, "annotations"):
        tracks = target.tracks
        return {
            "kind": "workspace",
            "tracks": _encode_graph(tracks) if tracks is not None else None,
            "annotations": _dump_annotations(target.annotations),
        }
    raise FormatError(f"cannot share a {type(target).__name__} in a session")


def decode_state(data: Any) -> Any:
    """Rebuild the target from :func:`encode_state` output (validated; raises FormatError)."""
    if not isinstance(data, dict):
        raise FormatError("snapshot is not an object")
    kind = data.get("kind")
    if kind == "trackgraph":
        return _decode_graph(data)
    if kind == "workspace":
        from analysis.annotations import Annotations
        from analysis.project import Workspace

        t = data.get("tracks")
        tracks = _decode_graph(t) if t is not None else None
        # Annotations.from_json validates against the versioned pydantic schema.
        ann = Annotations.from_json(json.dumps(data.get("annotations")))
        return Workspace(tracks=tracks, annotations=ann)
    raise FormatError(f"unknown snapshot kind {kind!r}")


def state_digest(target: Any) -> str:
    """A digest of the whole state, for comparing replicas."""
    return hashlib.blake2b(
        json.dumps(encode_state(target), sort_keys=True).encode(), digest_size=16
    ).hexdigest()
