"""Track statistics against analytic paths."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.errors import ParameterError
from analysis.tracks import TrackGraph, msd, track_stats


def chain(
    points: np.ndarray, t: np.ndarray | None = None, first_id: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = len(points)
    ids = np.arange(first_id, first_id + n)
    t = np.arange(n) if t is None else t
    edges = np.stack([ids[:-1], ids[1:]], axis=1)
    return ids, t, points, edges


def build(*chains: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> TrackGraph:
    ids, t, zyx, e = (np.concatenate(parts) for parts in zip(*chains, strict=True))
    return TrackGraph.from_arrays(ids, t, zyx, e)


def test_straight_line_constant_velocity() -> None:
    v = np.array([0.5, 1.0, -2.0])
    n = 11
    g = build(chain(np.arange(n)[:, None] * v + [3.0, 4.0, 5.0]))
    g.attrs["frame_interval_s"] = 10.0
    s = track_stats(g).iloc[0]
    speed = float(np.linalg.norm(v))
    assert s.n_nodes == n and s.duration_frames == n - 1
    assert s.displacement_um == pytest.approx(speed * (n - 1))
    assert s.path_length_um == pytest.approx(speed * (n - 1))
    assert s.straightness == pytest.approx(1.0)
    assert s.mean_speed_um_per_frame == pytest.approx(speed)
    assert s.mean_speed_um_per_s == pytest.approx(speed / 10.0)
    m = msd(g, max_lag=5)
    # Ballistic motion: MSD(τ) = |v|² τ², with n - τ pairs at lag τ.
    np.testing.assert_allclose(m["msd_um2"], speed**2 * m["lag_frames"] ** 2)
    np.testing.assert_array_equal(m["n_pairs"], n - m["lag_frames"])
    np.testing.assert_allclose(m["lag_s"], m["lag_frames"] * 10.0)


def test_half_circle() -> None:
    r, k = 7.0, 12
    ang = np.linspace(0, np.pi, k + 1)
    pts = np.stack([np.zeros_like(ang), r * np.cos(ang), r * np.sin(ang)], axis=1)
    s = track_stats(build(chain(pts))).iloc[0]
    chord = 2 * r * np.sin(np.pi / (2 * k))
    assert s.displacement_um == pytest.approx(2 * r)
    assert s.path_length_um == pytest.approx(k * chord)
    assert s.straightness == pytest.approx(2 * r / (k * chord))
    assert s.max_step_um == pytest.approx(chord)


def test_gap_uses_true_time_and_division_splits_tracks() -> None:
    # A track with a gap (t 0, 1, 3) moving 1 µm per frame along x.
    a = chain(np.array([[0, 0, 0], [0, 0, 1], [0, 0, 3.0]]), t=np.array([0, 1, 3]))
    g = build(a)
    m = msd(g, max_lag=3).set_index("lag_frames")
    assert m.loc[1, "msd_um2"] == pytest.approx(1.0) and m.loc[1, "n_pairs"] == 1
    assert m.loc[2, "msd_um2"] == pytest.approx(4.0)
    assert m.loc[3, "msd_um2"] == pytest.approx(9.0)
    assert track_stats(g).iloc[0].mean_speed_um_per_frame == pytest.approx(1.0)
    # A division makes three tracklets: mother and two daughters.
    g.add_node(4, (0, 1, 3))
    g.add_node(4, (0, -1, 3))
    g.add_edge(2, 3)
    g.add_edge(2, 4)
    st = track_stats(g)
    assert len(st) == 3
    assert sorted(st.n_nodes.tolist()) == [1, 1, 3]
    assert st.lineage_id.nunique() == 1


def test_errors() -> None:
    g = build(chain(np.zeros((3, 3))))
    with pytest.raises(ParameterError):
        msd(g, max_lag=0)
    with pytest.raises(ParameterError):
        track_stats(g, frame_interval_s=-1.0)
    s = track_stats(g).iloc[0]
    assert np.isnan(s.straightness)  # no movement: undefined, not 0 or 1
