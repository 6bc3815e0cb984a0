"""Automatic tracking on the synthetic dividing-nuclei time-lapse, scored with traccuracy."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.errors import ParameterError
from analysis.synthetic import TimelapseSample, timelapse
from analysis.tracks import TrackGraph, detect_objects, link_labels
from analysis.volume import ArrayVolumeSource

from ._tra import ctc_scores


@pytest.fixture(scope="module")
def sample() -> TimelapseSample:
    return timelapse(frames=20, size=96, seed=0)


def truth(s: TimelapseSample) -> TrackGraph:
    n = s.nodes
    return TrackGraph.from_arrays(
        n["node_id"], n["t"], n[["z", "y", "x"]].to_numpy(), s.edges, label=n["label"]
    )


def test_detections_match_truth_centroids(sample: TimelapseSample) -> None:
    det = detect_objects(ArrayVolumeSource(sample.labels, scale_um=sample.scale_um, axes="tzyx"))
    ref = sample.nodes.sort_values(["t", "label"]).reset_index(drop=True)
    det = det.sort_values(["t", "label"]).reset_index(drop=True)
    assert len(det) == len(ref)
    np.testing.assert_array_equal(det["label"], ref["label"])
    np.testing.assert_allclose(det[["z", "y", "x"]], ref[["z", "y", "x"]], atol=1e-6)


def test_tracking_scores_on_timelapse(
    sample: TimelapseSample, capsys: pytest.CaptureFixture[str]
) -> None:
    gt = truth(sample)
    pred = link_labels(sample.labels, 8.0, scale_um=sample.scale_um, gap_frames=1)
    pred.validate()
    scores = ctc_scores(gt, pred, sample.labels)
    divisions = {k: v for k, v in scores.items() if k.startswith("Frame Buffer 1/")}
    with capsys.disabled():
        print(f"\ntracking on timelapse: TRA={scores['TRA']:.4f} DET={scores['DET']:.4f} "
              f"LNK={scores['LNK']:.4f} divisions={divisions}")  # fmt: skip
    assert scores["TRA"] >= 0.95
    assert scores["DET"] == 1.0  # same segmentation: every object becomes a node
    assert divisions["Frame Buffer 1/Total GT Divisions"] > 0
    assert divisions["Frame Buffer 1/Division Recall"] >= 0.75


def test_gap_closing_bridges_a_missed_frame(sample: TimelapseSample) -> None:
    gt = truth(sample)
    labels = sample.labels.copy()
    # Hide one nucleus that is in the middle of a long, division-free stretch.
    tracks = sample.tracks
    long = tracks[(tracks["end"] - tracks["start"]) >= 10].iloc[0]
    t_hide = int(long["start"]) + 5
    lab = int(
        sample.nodes[(sample.nodes.t == t_hide) & (sample.nodes.track_id == long["track_id"])][
            "label"
        ].iloc[0]
    )
    labels[t_hide][labels[t_hide] == lab] = 0
    pred = link_labels(labels, 8.0, scale_um=sample.scale_um, gap_frames=1)
    key = {
        int(i): (int(t), int(la))
        for i, t, la in zip(pred.node_ids, pred.t, pred.label, strict=True)
    }
    links = {(key[int(a)], key[int(b)]) for a, b in pred.edges}
    assert ((t_hide - 1, lab), (t_hide + 1, lab)) in links
    no_gap = link_labels(labels, 8.0, scale_um=sample.scale_um, gap_frames=0)
    key = {
        int(i): (int(t), int(la))
        for i, t, la in zip(no_gap.node_ids, no_gap.t, no_gap.label, strict=True)
    }
    assert ((t_hide - 1, lab), (t_hide + 1, lab)) not in {
        (key[int(a)], key[int(b)]) for a, b in no_gap.edges
    }
    assert gt.n_nodes == pred.n_nodes + 1


def test_bad_parameters(sample: TimelapseSample) -> None:
    with pytest.raises(ParameterError, match="max_distance_um"):
        link_labels(sample.labels[:2], 0.0)
    with pytest.raises(ParameterError, match=r"\(t, z, y, x\)"):
        link_labels(sample.labels[0], 5.0)
    with pytest.raises(ParameterError, match="integer"):
        link_labels(sample.labels[:2].astype(float), 5.0)
