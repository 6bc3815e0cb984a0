"""``vrscope track`` and ``vrscope tracks convert|stats``, run in-process."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

from analysis.io import open_labels, read_ctc, read_geff, read_tracks_csv, write_geff
from analysis.tracks import TrackGraph
from vrscope.cli import main


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    err = [e for e in err if "frame/s" not in e]
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.fixture(scope="module")
def ctc(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ctc")
    with zipfile.ZipFile(testdata / "ctc" / "test_data.zip") as z:
        z.extractall(out)
    return out


def test_track_on_sample_timelapse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.analysis.tracks._tra import ctc_scores

    store = tmp_path / "nuclei.zarr"
    assert main(["sample", "timelapse", str(store), "--frames", "12", "--no-progress"]) == 0
    assert main(["track", str(store), "--labels", "nuclei", "--out", str(tmp_path / "t.geff"),
                 "--max-distance", "8", "--no-progress"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "t.geff (geff)" in out
    pred = read_geff(tmp_path / "t.geff")
    truth = read_geff(store / "tracks")  # the sample's true lineage
    labels = np.asarray(open_labels(store, "nuclei").read(0))
    scores = ctc_scores(truth, pred, labels)
    print(f"vrscope track on sample timelapse: TRA={scores['TRA']:.4f}, "
          f"divisions={ {k: v for k, v in scores.items() if 'Division' in k} }")  # fmt: skip
    assert scores["TRA"] >= 0.95
    assert pred.attrs["frame_interval_s"] == pytest.approx(truth.attrs["frame_interval_s"])


def test_track_ctc_folder_to_ctc(ctc: Path, tmp_path: Path) -> None:
    assert main(["track", str(ctc / "res"), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    g, _ = read_ctc(tmp_path / "out")
    ref, _ = read_ctc(ctc / "res")
    assert g.n_nodes == ref.n_nodes == 18 and g.n_edges == ref.n_edges == 15


def test_convert_geff_csv_ctc(
    ctc: Path, testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mouse = testdata / "geff" / "mouse-20250719.zarr"
    assert main(["tracks", "convert", str(mouse), str(tmp_path / "m.csv")]) == 0
    back = read_tracks_csv(tmp_path / "m.csv")
    raw = zarr.open_group(str(mouse / "tracks"), mode="r")
    assert back.n_nodes == raw["nodes/ids"].shape[0] and back.n_edges == raw["edges/ids"].shape[0]
    assert (
        main(
            ["tracks", "convert", str(ctc / "res"), str(tmp_path / "r.geff"), "--zarr-format", "3"]
        )
        == 0
    )
    g = read_geff(tmp_path / "r.geff")
    assert g.n_nodes == 18 and sorted(set(g.label.tolist())) == [130, 200, 240]
    assert main(["tracks", "convert", str(ctc / "res"), str(tmp_path / "ctc_out")]) == 0
    assert (tmp_path / "ctc_out" / "res_track.txt").read_text().count("\n") == 3
    # CTC output from GEFF input has no masks: a one-line error, exit 2.
    capsys.readouterr()
    assert main(["tracks", "convert", str(tmp_path / "r.geff"), str(tmp_path / "ctc2")]) == 2
    assert "needs label masks" in _one_error_line(capsys)


def test_convert_geff_to_ctc_with_label_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """GEFF (no masks) -> CTC with --labels: traccuracy's CTC loader reads our folder and
    scores it TRA = DET = 1.0 against the sample's true lineage on the original labels."""
    from traccuracy import run_metrics
    from traccuracy.loaders import load_ctc_data
    from traccuracy.matchers import CTCMatcher
    from traccuracy.metrics import CTCMetrics

    from tests.analysis.tracks._tra import to_traccuracy

    store = tmp_path / "nuclei.zarr"
    assert main(["sample", "timelapse", str(store), "--frames", "6", "--no-progress"]) == 0
    out = tmp_path / "ctc_res"
    spec = f"{store}:nuclei"
    assert main(["tracks", "convert", str(store / "tracks"), str(out), "--labels", spec]) == 0
    truth = read_geff(store / "tracks")
    labels = np.asarray(open_labels(store, "nuclei").read(0))
    pred = load_ctc_data(str(out), run_checks=True)
    results, _ = run_metrics(to_traccuracy(truth, labels), pred, CTCMatcher(), [CTCMetrics()])
    scores = results[0]["results"]
    assert scores["TRA"] == 1.0 and scores["DET"] == 1.0
    # A label the image does not hold: one line, exit 2.
    bad = TrackGraph.from_arrays(
        truth.node_ids, truth.t, truth.zyx, truth.edges, label=truth.label + 10_000
    )
    write_geff(bad, tmp_path / "bad.geff")
    capsys.readouterr()
    argv = ["tracks", "convert", str(tmp_path / "bad.geff"), str(tmp_path / "c2"), "--labels"]
    assert main([*argv, spec]) == 2
    assert "not in mask frame" in _one_error_line(capsys)
    assert main([*argv, f"{store}:nope"]) == 2
    assert "no label image 'nope'" in _one_error_line(capsys)


def test_stats(tmp_path: Path) -> None:
    n = 6
    g = TrackGraph.from_arrays(np.arange(n), np.arange(n), np.arange(n)[:, None] * [0.0, 3.0, 4.0],
                               np.stack([np.arange(n - 1), np.arange(1, n)], axis=1))  # fmt: skip
    write_geff(g, tmp_path / "line.geff")
    assert main(["tracks", "stats", str(tmp_path / "line.geff"), "--out", str(tmp_path / "s.csv"),
                 "--msd", str(tmp_path / "m.csv"), "--frame-interval", "2"]) == 0  # fmt: skip
    s = pd.read_csv(tmp_path / "s.csv").iloc[0]
    assert s.displacement_um == pytest.approx(5.0 * (n - 1))  # 3-4-5 steps
    assert s.straightness == pytest.approx(1.0)
    assert s.mean_speed_um_per_s == pytest.approx(2.5)
    m = pd.read_csv(tmp_path / "m.csv")
    np.testing.assert_allclose(m.msd_um2, 25.0 * m.lag_frames**2)


@pytest.mark.parametrize(
    "argv",
    [
        ["tracks", "convert", "{tmp}/missing.geff", "{tmp}/x.csv"],
        ["tracks", "stats", "{tmp}/missing.csv", "--out", "{tmp}/s.csv"],
        ["track", "{tmp}/missing.zarr", "--labels", "nuclei", "--out", "{tmp}/t.geff"],
        ["track", "{tmp}", "--out", "{tmp}/t.geff"],
    ],
)
def test_bad_input_exit_2(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [a.format(tmp=tmp_path) for a in argv]
    assert main(args) == 2
    _one_error_line(capsys)


def test_tracks_csv_has_one_track_id_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 18.14: the CSV had TRACK_ID, TRACKLET_ID and the sample's own track_id,
    with different values. Now one column, the lineage: checked against SciPy's
    connected components of the written edges."""
    import pandas as pd
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    store = tmp_path / "tl.zarr"
    assert main(["sample", "timelapse", str(store), "--frames", "6", "--no-progress"]) == 0
    out = tmp_path / "t.csv"
    assert main(["tracks", "convert", str(store / "tracks"), str(out)]) == 0
    spots = pd.read_csv(out)
    edges = pd.read_csv(tmp_path / "t_edges.csv")
    track_cols = [c for c in spots.columns if "track" in c.lower() or "lineage" in c.lower()]
    assert track_cols == ["TRACK_ID"], list(spots.columns)
    index = {int(n): i for i, n in enumerate(spots["ID"])}
    a = [index[int(v)] for v in edges["SPOT_SOURCE_ID"]]
    b = [index[int(v)] for v in edges["SPOT_TARGET_ID"]]
    n = len(spots)
    _, comp = connected_components(coo_matrix(([1] * len(a), (a, b)), shape=(n, n)))
    # Same partition of the spots: each component has one TRACK_ID and vice versa.
    pairs = set(zip(comp.tolist(), spots["TRACK_ID"].tolist(), strict=True))
    assert len(pairs) == len(set(comp.tolist())) == spots["TRACK_ID"].nunique()
