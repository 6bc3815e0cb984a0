"""Tracks as two CSV tables (TrackMate-like spots + edges), read and written with pandas.

Written columns
---------------
spots: ``ID, LABEL, TRACK_ID, FRAME, POSITION_T, POSITION_Z, POSITION_Y, POSITION_X,
MASK_LABEL, REVIEWED`` and one column per feature (empty where missing).
``TRACK_ID`` is the one track column: the lineage (a connected tree, TrackMate's
meaning), computed from the links as written. Features that name a track under
another spelling (``track_id``, ``tracklet_id``, ``lineage_id``, e.g. a sample's or
another tool's ids read in with the tracks) are not written: after any edit they no
longer match the links, and a second track-id column with other values misleads.
``POSITION_T`` is in seconds when the frame interval is known, else in frames;
positions in µm.
edges: ``LABEL, TRACK_ID, SPOT_SOURCE_ID, SPOT_TARGET_ID`` and one column per edge
feature (e.g. a GEFF edge property; empty where missing).

Read columns
------------
TrackMate names (``ID``, ``FRAME``, ``POSITION_X/Y/Z``, ``SPOT_SOURCE_ID``,
``SPOT_TARGET_ID``; TrackMate's extra header rows of names and units are skipped)
or GEFF-CSV names as written by ``geff.convert.geff_to_csv`` (``id``, ``t``, ``z``,
``y``, ``x``, ``source``, ``target``). Other numeric columns become features: node
features from the spots table, edge features from the edges table (e.g. TrackMate's
``LINK_COST``).

The edges file sits next to the spots file: ``X_spots.csv`` -> ``X_edges.csv``,
``X-nodes.csv`` -> ``X-edges.csv``, otherwise ``X.csv`` -> ``X_edges.csv``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.errors import FormatError

if TYPE_CHECKING:
    import pandas as pd

    from analysis.tracks import TrackGraph

__all__ = ["edges_csv_path", "read_tracks_csv", "write_tracks_csv"]

log = logging.getLogger(__name__)

_TM = {"id": "ID", "t": "FRAME", "z": "POSITION_Z", "y": "POSITION_Y", "x": "POSITION_X"}
_TM_EDGE = ("SPOT_SOURCE_ID", "SPOT_TARGET_ID")
_GEFF_EDGE = ("source", "target")
_NOT_EDGE_FEATURES = {"LABEL", "TRACK_ID", *_TM_EDGE, *_GEFF_EDGE}
# Columns that are derived or bookkeeping, never features.
_NOT_FEATURES = {
    "ID", "LABEL", "TRACK_ID", "TRACKLET_ID", "FRAME", "POSITION_T", "POSITION_X",
    "POSITION_Y", "POSITION_Z", "MASK_LABEL", "REVIEWED", "id", "t", "z", "y", "x",
    "label", "reviewed", "tracklet_id", "lineage_id",
}  # fmt: skip


#: Feature names that are track ids by another spelling (never written: TRACK_ID is the one).
_TRACK_ID_NAMES = {"track_id", "trackid", "track", "tracklet_id", "lineage_id", "lineage"}


def edges_csv_path(spots_path: str | os.PathLike[str]) -> Path:
    """Where the edges table of the spots table ``spots_path`` lives."""
    p = Path(spots_path)
    name = p.name
    for a, b in (
        ("_spots.csv", "_edges.csv"),
        ("-nodes.csv", "-edges.csv"),
        ("spots.csv", "edges.csv"),
    ):
        if name.endswith(a):
            return p.with_name(name[: -len(a)] + b)
    return p.with_name(p.stem + "_edges.csv")


def write_tracks_csv(
    graph: TrackGraph,
    spots_path: str | os.PathLike[str],
    edges_path: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write spots and edges CSV tables; returns their paths."""
    import pandas as pd

    sp = Path(spots_path).expanduser()
    ep = Path(edges_path).expanduser() if edges_path is not None else edges_csv_path(sp)
    for f in (sp, ep):
        if f.exists() and not overwrite:
            raise FormatError(f"{f} already exists (use overwrite to replace it)")
        if not f.parent.is_dir():
            raise FileNotFoundError(2, "No such file or directory", str(f.parent))
    ids = graph.node_ids
    lineage = graph.lineage_ids()
    dt = graph.attrs.get("frame_interval_s")
    zyx = graph.zyx
    cols: dict[str, Any] = {
        "ID": ids,
        "LABEL": [f"ID{i}" for i in ids.tolist()],
        "TRACK_ID": lineage,
        "FRAME": graph.t,
        "POSITION_T": graph.t * float(dt) if dt else graph.t,
        "POSITION_Z": zyx[:, 0],
        "POSITION_Y": zyx[:, 1],
        "POSITION_X": zyx[:, 2],
        "MASK_LABEL": graph.label,
        "REVIEWED": graph.reviewed.astype(np.int8),
    }
    for name in graph.feature_names:
        if name in cols:
            log.warning("feature %r clashes with a spots column and is not written", name)
            continue
        if name.lower().replace(" ", "_") in _TRACK_ID_NAMES:
            log.info("feature %r is a track id that TRACK_ID replaces: not written", name)
            continue
        cols[name] = _column(*graph.feature(name))
    pd.DataFrame(cols).to_csv(sp, index=False)
    e = graph.edges
    lin_of = dict(zip(ids.tolist(), lineage.tolist(), strict=True))
    ecols: dict[str, Any] = {
        "LABEL": [f"ID{a} → ID{b}" for a, b in e.tolist()],
        "TRACK_ID": [lin_of[int(a)] for a in e[:, 0]],
        "SPOT_SOURCE_ID": e[:, 0],
        "SPOT_TARGET_ID": e[:, 1],
    }
    for name in graph.edge_feature_names:
        if name in ecols:
            log.warning("edge feature %r clashes with an edges column and is not written", name)
            continue
        ecols[name] = _column(*graph.edge_feature(name))
    pd.DataFrame(ecols).to_csv(ep, index=False)
    return sp, ep


def _column(values: np.ndarray[Any, Any], miss: np.ndarray[Any, Any]) -> Any:
    """A column with empty cells where ``miss`` (nullable dtypes keep ints as ints)."""
    import pandas as pd

    s = pd.Series(values)
    if miss.any():
        s = s.astype("Float64" if values.dtype.kind == "f" else "Int64")
        s = s.mask(miss)
    return s.to_numpy()


def _numeric_rows(df: pd.DataFrame, key: str) -> pd.DataFrame:
    """Drop TrackMate's extra header rows (names, short names, units) under the keys."""
    import pandas as pd

    ok = pd.to_numeric(df[key], errors="coerce").notna()
    return df[ok].reset_index(drop=True)


def read_tracks_csv(
    spots_path: str | os.PathLike[str],
    edges_path: str | os.PathLike[str] | None = None,
) -> TrackGraph:
    """Read a spots CSV (and its edges CSV, if present) into a ``TrackGraph``.

    Raises
    ------
    FormatError
        Missing required columns (an id, a frame and at least x and y), non-numeric
        values, or an invalid lineage (see :meth:`TrackGraph.from_arrays`).
    """
    import pandas as pd

    from analysis.tracks import TrackGraph

    sp = Path(spots_path).expanduser()
    if not sp.is_file():
        raise FileNotFoundError(2, "No such file or directory", str(sp))
    ep = Path(edges_path).expanduser() if edges_path is not None else edges_csv_path(sp)
    try:
        spots = pd.read_csv(sp, low_memory=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise FormatError(f"{sp} is not a readable CSV: {exc}") from exc
    spots = spots.loc[:, [c for c in spots.columns if not str(c).startswith("Unnamed")]]
    if "ID" in spots.columns:
        names = dict(_TM)
    elif "id" in spots.columns:
        names = {k: k for k in _TM}
    else:
        raise FormatError(f"{sp} has no 'ID' (TrackMate) or 'id' (GEFF CSV) column")
    spots = _numeric_rows(spots, names["id"])
    for need in ("t", "y", "x"):
        if names[need] not in spots.columns:
            raise FormatError(f"{sp} has no {names[need]!r} column")

    def num(col: str) -> np.ndarray[Any, Any]:
        try:
            return pd.to_numeric(spots[col]).to_numpy()
        except ValueError as exc:
            raise FormatError(f"{sp}: column {col!r} is not numeric: {exc}") from exc

    n = len(spots)
    zyx = np.zeros((n, 3))
    for k, axis in enumerate(("z", "y", "x")):
        if names[axis] in spots.columns:
            zyx[:, k] = num(names[axis]).astype(np.float64)
    label = num("MASK_LABEL") if "MASK_LABEL" in spots.columns else None
    if label is None and "label" in spots.columns:
        label = num("label")
    reviewed = None
    for col in ("REVIEWED", "reviewed"):
        if col in spots.columns:
            reviewed = num(col).astype(bool)
    features, missing = _numeric_columns(spots, _NOT_FEATURES)

    edges = np.empty((0, 2), np.int64)
    edge_features: dict[str, Any] = {}
    edge_missing: dict[str, Any] = {}
    if ep.is_file():
        try:
            e = pd.read_csv(ep, low_memory=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise FormatError(f"{ep} is not a readable CSV: {exc}") from exc
        pair = _TM_EDGE if _TM_EDGE[0] in e.columns else _GEFF_EDGE
        if pair[0] not in e.columns or pair[1] not in e.columns:
            raise FormatError(f"{ep} has no {_TM_EDGE} or {_GEFF_EDGE} columns")
        e = _numeric_rows(e, pair[0])
        e = e.loc[:, [c for c in e.columns if not str(c).startswith("Unnamed")]]
        edges = np.stack([pd.to_numeric(e[pair[0]]), pd.to_numeric(e[pair[1]])], axis=1)
        edge_features, edge_missing = _numeric_columns(e, _NOT_EDGE_FEATURES)
    else:
        log.warning("no edges table %s next to %s: reading spots only", ep, sp)
    try:
        return TrackGraph.from_arrays(
            num(names["id"]),
            num(names["t"]),
            zyx,
            edges,
            label=label,
            reviewed=reviewed,
            features=features,
            feature_missing=missing,
            edge_features=edge_features,
            edge_feature_missing=edge_missing,
        )
    except FormatError as exc:
        raise FormatError(f"{sp}: {exc}") from exc


def _numeric_columns(df: pd.DataFrame, skip: set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Numeric columns (not in ``skip``) as ``(values, missing or None)`` feature columns."""
    import pandas as pd

    features: dict[str, Any] = {}
    missing: dict[str, Any] = {}
    for col in df.columns:
        if col in skip:
            continue
        s = pd.to_numeric(df[col], errors="coerce")
        if s.isna().all():
            continue  # a text column (e.g. a name): not a feature
        miss = s.isna().to_numpy()
        is_int = bool(np.all(s.dropna() == np.round(s.dropna())))
        vals = s.fillna(0).to_numpy(
            np.int64 if is_int and df[col].dtype.kind in "iuO" else np.float64
        )
        features[str(col)] = vals
        missing[str(col)] = miss if miss.any() else None
    return features, missing
