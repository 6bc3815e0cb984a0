"""Per-track motion statistics: displacement, speed, straightness, mean squared displacement.

A *track* here is a tracklet (a division-free chain, see ``TrackGraph.tracklet``):
statistics of motion are defined along one cell's path, and a division starts
two new paths. Everything is vectorised over all tracklets at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from analysis.errors import ParameterError

if TYPE_CHECKING:
    import pandas as pd

    from analysis.tracks._graph import TrackGraph

__all__ = ["msd", "track_stats"]


def _sorted_tracks(
    graph: TrackGraph,
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]
]:
    """(tracklet id, t, zyx, lineage id) of all nodes sorted by tracklet then time."""
    tid = graph.tracklet_ids()
    t = graph.t
    o = np.lexsort((t, tid))
    return tid[o], t[o], graph.zyx[o], graph.lineage_ids()[o]


def _dt(graph: TrackGraph, frame_interval_s: float | None) -> float | None:
    dt = frame_interval_s if frame_interval_s is not None else graph.attrs.get("frame_interval_s")
    if dt is not None and not float(dt) > 0:
        raise ParameterError(f"frame_interval_s must be positive, got {dt}")
    return None if dt is None else float(dt)


def track_stats(graph: TrackGraph, frame_interval_s: float | None = None) -> pd.DataFrame:
    """One row of motion statistics per tracklet.

    Parameters
    ----------
    graph : TrackGraph
    frame_interval_s : float, optional
        Seconds between time points; default: ``graph.attrs["frame_interval_s"]``.
        When known, speeds are also given per second.

    Returns
    -------
    pandas.DataFrame
        Columns ``tracklet_id, lineage_id, n_nodes, t_start, t_end, duration_frames,
        displacement_um`` (start to end), ``path_length_um`` (sum of steps),
        ``straightness`` (displacement / path length; NaN for a path of length 0),
        ``mean_speed_um_per_frame`` (path length / duration; NaN for one node),
        ``max_step_um`` and, with a frame interval, ``duration_s`` and
        ``mean_speed_um_per_s``.
    """
    import pandas as pd

    dt = _dt(graph, frame_interval_s)
    tid, t, zyx, lin = _sorted_tracks(graph)
    if tid.size == 0:
        cols = ["tracklet_id", "lineage_id", "n_nodes", "t_start", "t_end", "duration_frames",
                "displacement_um", "path_length_um", "straightness", "mean_speed_um_per_frame",
                "max_step_um"]  # fmt: skip
        return pd.DataFrame({c: [] for c in cols})
    start = np.flatnonzero(np.r_[True, tid[1:] != tid[:-1]])
    end = np.r_[start[1:], tid.size] - 1
    step = np.linalg.norm(np.diff(zyx, axis=0), axis=1)
    same = tid[1:] == tid[:-1]
    step = np.where(same, step, 0.0)
    cum = np.r_[0.0, np.cumsum(step)]
    path = cum[end] - cum[start]
    disp = np.linalg.norm(zyx[end] - zyx[start], axis=1)
    duration = t[end] - t[start]
    with np.errstate(invalid="ignore", divide="ignore"):
        straight = np.where(path > 0, disp / np.where(path > 0, path, 1.0), np.nan)
        speed = np.where(duration > 0, path / np.where(duration > 0, duration, 1), np.nan)
    max_step = np.maximum.reduceat(np.r_[step, 0.0], start) if step.size else np.zeros(start.size)
    # reduceat over [start, next start) includes the 0 placed at tracklet borders; the
    # last element of each tracklet has no step of its own, so this is the max step.
    max_step = np.where(end > start, max_step, 0.0)
    data: dict[str, Any] = {
        "tracklet_id": tid[start],
        "lineage_id": lin[start],
        "n_nodes": end - start + 1,
        "t_start": t[start],
        "t_end": t[end],
        "duration_frames": duration,
        "displacement_um": disp,
        "path_length_um": path,
        "straightness": straight,
        "mean_speed_um_per_frame": speed,
        "max_step_um": max_step,
    }
    if dt is not None:
        data["duration_s"] = duration * dt
        data["mean_speed_um_per_s"] = speed / dt
    return pd.DataFrame(data)


def msd(
    graph: TrackGraph, max_lag: int = 20, frame_interval_s: float | None = None
) -> pd.DataFrame:
    """Mean squared displacement per tracklet and time lag.

    For each tracklet and lag ``τ`` (frames, 1..``max_lag``), the mean over all
    node pairs of that tracklet exactly ``τ`` frames apart of ``|r(t+τ) - r(t)|²``.
    Gaps in a tracklet are handled by using true time differences.

    Returns
    -------
    pandas.DataFrame
        Columns ``tracklet_id, lag_frames, msd_um2, n_pairs`` (and ``lag_s`` with a
        frame interval); lags without pairs are omitted.
    """
    import pandas as pd

    if max_lag < 1:
        raise ParameterError(f"max_lag must be at least 1, got {max_lag}")
    dt = _dt(graph, frame_interval_s)
    tid, t, zyx, _ = _sorted_tracks(graph)
    parts_tid, parts_lag, parts_sq = [], [], []
    # Pairs (i, i+s) along the sorted order: time lag >= s inside a tracklet, so
    # shifts beyond max_lag can never give a lag <= max_lag. O(N * max_lag).
    for s in range(1, max_lag + 1):
        if s >= tid.size:
            break
        same = tid[s:] == tid[:-s]
        lag = t[s:] - t[:-s]
        ok = same & (lag <= max_lag)
        if not ok.any():
            continue
        d2 = np.sum((zyx[s:] - zyx[:-s]) ** 2, axis=1)
        parts_tid.append(tid[:-s][ok])
        parts_lag.append(lag[ok])
        parts_sq.append(d2[ok])
    if not parts_tid:
        out = pd.DataFrame({"tracklet_id": [], "lag_frames": [], "msd_um2": [], "n_pairs": []})
    else:
        df = pd.DataFrame(
            {
                "tracklet_id": np.concatenate(parts_tid),
                "lag_frames": np.concatenate(parts_lag),
                "sq": np.concatenate(parts_sq),
            }
        )
        out = (
            df.groupby(["tracklet_id", "lag_frames"], sort=True)["sq"]
            .agg(msd_um2="mean", n_pairs="size")
            .reset_index()
        )
    if dt is not None:
        out["lag_s"] = out["lag_frames"] * dt
    return out
