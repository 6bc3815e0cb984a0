"""Automatic tracking: link the objects of a (t, z, y, x) label series into a ``TrackGraph``.

Detections are the labelled objects of each frame (centroids in µm from
``skimage.measure.regionprops_table``). Linking is the linear-assignment
approach of Jaqaman et al. (2008) as implemented by ``laptrack``: frame-to-frame
LAP on squared distances, then a second LAP that closes gaps over up to
``gap_frames`` missing frames and detects divisions (one track end splitting
into two). Merges are not allowed (a lineage is a forest).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from analysis.errors import ParameterError
from analysis.volume import ArrayVolumeSource, VolumeSource

if TYPE_CHECKING:
    from analysis.tracks._graph import TrackGraph

__all__ = ["detect_objects", "link_detections", "link_labels"]

log = logging.getLogger(__name__)


def _as_source(
    labels: VolumeSource | npt.ArrayLike, scale_um: Sequence[float] | None
) -> tuple[VolumeSource, tuple[float, float, float]]:
    if isinstance(labels, VolumeSource):
        src = labels
    else:
        arr = np.asarray(labels)
        if arr.ndim != 4:
            raise ParameterError(f"labels must be a (t, z, y, x) array, got {arr.ndim}D")
        src = ArrayVolumeSource(arr, scale_um=scale_um or (1.0, 1.0, 1.0), axes="tzyx")
    axes = tuple(src.axes)
    if axes != ("t", "z", "y", "x"):
        raise ParameterError(f"labels must have axes (t, z, y, x), got {''.join(axes)}")
    if np.dtype(src.dtype).kind not in "iu":
        raise ParameterError(f"labels must be an integer image, got {src.dtype}")
    if scale_um is None:
        z, y, x = src.levels[0].scale_um
        scale = (float(z), float(y), float(x))
    else:
        if len(scale_um) != 3:
            raise ParameterError(f"scale_um must be three numbers (z, y, x), got {scale_um!r}")
        scale = (float(scale_um[0]), float(scale_um[1]), float(scale_um[2]))
    return src, scale


def detect_objects(
    labels: VolumeSource | npt.ArrayLike,
    scale_um: Sequence[float] | None = None,
    progress: bool = False,
) -> Any:
    """Objects of every frame of a (t, z, y, x) label series.

    Returns
    -------
    pandas.DataFrame
        Columns ``t, label, z, y, x`` (centroid in µm, including the level's
        translation), ``volume_um3``. Reads one frame at a time.
    """
    import pandas as pd
    from skimage.measure import regionprops_table

    src, scale = _as_source(labels, scale_um)
    level = src.levels[0]
    offset = np.asarray(level.translation[-3:], dtype=np.float64)
    n_t = level.shape[0]
    frames = range(n_t)
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, desc="detecting objects", unit="frame")
    parts = []
    voxel = float(np.prod(scale))
    for t in frames:
        frame = np.asarray(src.read(0, (slice(t, t + 1),)))[0]
        props = regionprops_table(  # type: ignore[no-untyped-call]
            frame, properties=("label", "centroid", "area")
        )
        if props["label"].size == 0:
            continue
        parts.append(
            pd.DataFrame(
                {
                    "t": np.full(props["label"].size, t, dtype=np.int64),
                    "label": props["label"].astype(np.int64),
                    "z": props["centroid-0"] * scale[0] + offset[0],
                    "y": props["centroid-1"] * scale[1] + offset[1],
                    "x": props["centroid-2"] * scale[2] + offset[2],
                    "volume_um3": props["area"] * voxel,
                }
            )
        )
    if not parts:
        return pd.DataFrame({c: [] for c in ("t", "label", "z", "y", "x", "volume_um3")})
    return pd.concat(parts, ignore_index=True)


def link_detections(
    detections: Any,
    max_distance_um: float,
    gap_frames: int = 2,
    divisions: bool = True,
    division_distance_um: float | None = None,
) -> TrackGraph:
    """Link a detections table (``t, z, y, x`` [, ``label``, features]) with laptrack.

    Parameters
    ----------
    detections : pandas.DataFrame
        One row per object; ``t`` whole frame numbers, positions in µm.
    max_distance_um : float
        Largest distance an object may move between consecutive frames.
    gap_frames : int, default: 2
        Close gaps where an object is missed for up to this many frames (0: none).
    divisions : bool, default: True
        Detect divisions: a track end linked to the start of two tracks.
    division_distance_um : float, optional
        Largest mother-to-daughter distance; default ``max_distance_um``.

    Returns
    -------
    TrackGraph
        Node ids ``0..N-1`` in table order; ``label`` and numeric columns kept.
    """
    from laptrack import LapTrack

    from analysis.tracks._graph import TrackGraph

    if not max_distance_um > 0:
        raise ParameterError(f"max_distance_um must be positive, got {max_distance_um}")
    if gap_frames < 0:
        raise ParameterError(f"gap_frames must be >= 0, got {gap_frames}")
    df = detections.reset_index(drop=True)
    for col in ("t", "z", "y", "x"):
        if col not in df.columns:
            raise ParameterError(f"detections need a {col!r} column")
    n = len(df)
    t = df["t"].to_numpy()
    zyx = df[["z", "y", "x"]].to_numpy(np.float64)
    label = df["label"].to_numpy(np.int64) if "label" in df.columns else None
    features = {
        c: df[c].to_numpy()
        for c in df.columns
        if c not in ("t", "z", "y", "x", "label") and df[c].dtype.kind in "biuf"
    }
    if n == 0:
        return TrackGraph.from_arrays([], [], np.empty((0, 3)))
    t_int = t.astype(np.int64)
    t0 = int(t_int.min())
    n_frames = int(t_int.max()) - t0 + 1
    # laptrack takes one (K, 3) coordinate array per frame and names nodes (frame, index).
    order = np.argsort(t_int, kind="stable")
    rows_by_frame: list[npt.NDArray[np.int64]] = [np.empty(0, np.int64)] * n_frames
    cuts = np.flatnonzero(np.diff(t_int[order])) + 1
    for grp in np.split(order, cuts):
        rows_by_frame[int(t_int[grp[0]]) - t0] = grp
    coords = [zyx[r] if r.size else np.empty((0, 3)) for r in rows_by_frame]
    d2 = float(max_distance_um) ** 2
    div2 = float(division_distance_um if division_distance_um is not None else max_distance_um) ** 2
    params: dict[str, Any] = dict(
        metric="sqeuclidean",
        cutoff=d2,
        gap_closing_metric="sqeuclidean",
        gap_closing_cutoff=d2 if gap_frames > 0 else False,
        gap_closing_max_frame_count=int(gap_frames) + 1,  # laptrack counts frame differences
        splitting_metric="sqeuclidean",
        splitting_cutoff=div2 if divisions else False,
        merging_cutoff=False,
    )
    tree = LapTrack(**params).predict(coords)
    edges = np.array(
        [(rows_by_frame[a[0]][a[1]], rows_by_frame[b[0]][b[1]]) for a, b in tree.edges()],
        dtype=np.int64,
    ).reshape(-1, 2)
    log.info("linked %d detections over %d frames into %d edges", n, n_frames, len(edges))
    return TrackGraph.from_arrays(
        np.arange(n, dtype=np.int64), t_int, zyx, edges, label=label, features=features
    )


def link_labels(
    labels: VolumeSource | npt.ArrayLike,
    max_distance_um: float,
    *,
    scale_um: Sequence[float] | None = None,
    gap_frames: int = 2,
    divisions: bool = True,
    division_distance_um: float | None = None,
    progress: bool = False,
) -> TrackGraph:
    """Track the objects of a (t, z, y, x) label series.

    Parameters
    ----------
    labels : VolumeSource with axes (t, z, y, x), or (T, Z, Y, X) int array
    max_distance_um : float
        Largest frame-to-frame movement in µm.
    scale_um : (z, y, x) floats, optional
        Voxel size; default: the source's level-0 scale (1 µm for arrays).
    gap_frames, divisions, division_distance_um
        See :func:`link_detections`.
    progress : bool, default: False
        A tqdm bar while reading frames.

    Returns
    -------
    TrackGraph
        ``label`` = the object's label in its frame; feature ``volume_um3``;
        ``attrs["frame_interval_s"]`` from a store's time axis scale.
    """
    det = detect_objects(labels, scale_um=scale_um, progress=progress)
    graph = link_detections(
        det,
        max_distance_um,
        gap_frames=gap_frames,
        divisions=divisions,
        division_distance_um=division_distance_um,
    )
    if isinstance(labels, VolumeSource) and not isinstance(labels, ArrayVolumeSource):
        # A store's t axis scale is the frame interval in seconds (NGFF metadata).
        dt = float(labels.levels[0].scale[0])
        if dt > 0:
            graph.attrs["frame_interval_s"] = dt
    return graph
