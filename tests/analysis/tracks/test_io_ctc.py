"""CTC I/O against traccuracy's CTC loader and metrics on the official CTC test data."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from traccuracy import run_metrics
from traccuracy.loaders import load_ctc_data
from traccuracy.matchers import CTCMatcher
from traccuracy.metrics import CTCMetrics

from analysis.errors import FormatError, ParameterError
from analysis.io import read_ctc, write_ctc
from analysis.tracks import TrackGraph


@pytest.fixture(scope="module")
def ctc(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ctc")
    with zipfile.ZipFile(testdata / "ctc" / "test_data.zip") as z:
        z.extractall(out)
    return out


def _by_t_label(
    g: TrackGraph,
) -> tuple[set[tuple[int, int]], set[tuple[tuple[int, int], tuple[int, int]]]]:
    key = {int(i): (int(t), int(lab)) for i, t, lab in zip(g.node_ids, g.t, g.label, strict=True)}
    return set(key.values()), {(key[int(a)], key[int(b)]) for a, b in g.edges}


def _tra_graph_sets(
    tg: object,
) -> tuple[set[tuple[int, int]], set[tuple[tuple[int, int], tuple[int, int]]]]:
    G = tg.graph  # type: ignore[attr-defined]
    key = {n: (int(d["t"]), int(d["segmentation_id"])) for n, d in G.nodes(data=True)}
    return set(key.values()), {(key[a], key[b]) for a, b in G.edges}


@pytest.mark.parametrize("sub", ["GT/TRA", "res"])
def test_read_matches_traccuracy_loader(ctc: Path, sub: str) -> None:
    g, masks = read_ctc(ctc / sub)
    ref = load_ctc_data(str(ctc / sub), run_checks=True)
    assert g.n_nodes == ref.graph.number_of_nodes() == 18
    assert g.n_edges == ref.graph.number_of_edges()
    assert _by_t_label(g) == _tra_graph_sets(ref)
    assert masks.shape == ref.segmentation.shape
    np.testing.assert_array_equal(masks, ref.segmentation)
    # Positions are the mask centroids (traccuracy computes them with regionprops too).
    for _n, d in ref.graph.nodes(data=True):
        sel = (g.t == d["t"]) & (g.label == d["segmentation_id"])
        assert g.zyx[sel, 1:].tolist() == [pytest.approx([d["y"], d["x"]])]


def test_export_scores_perfect_against_gt(ctc: Path, tmp_path: Path) -> None:
    g, masks = read_ctc(ctc / "res")
    out = write_ctc(g, tmp_path / "res", masks)
    assert out.name == "res_track.txt"
    gt = load_ctc_data(str(ctc / "GT" / "TRA"))
    pred = load_ctc_data(str(tmp_path / "res"), run_checks=True)
    results, _ = run_metrics(gt, pred, CTCMatcher(), [CTCMetrics()])
    r = results[0]["results"]
    assert r["TRA"] == 1.0 and r["DET"] == 1.0
    # Round trip: same detections (positions) and links after re-reading our export.
    back, back_masks = read_ctc(tmp_path / "res")
    assert back.n_nodes == g.n_nodes and back.n_edges == g.n_edges
    a = sorted(map(tuple, np.column_stack([g.t, g.zyx]).tolist()))
    b = sorted(map(tuple, np.column_stack([back.t, back.zyx]).tolist()))
    assert a == b
    np.testing.assert_array_equal(back_masks > 0, masks > 0)


def _division_case() -> tuple[TrackGraph, np.ndarray]:
    """A cell (label 5) for frames 0-1 dividing into labels 8 and 9 at frame 2,
    and a second cell (label 3) seen at frames 0 and 2 only (a gap)."""
    m = np.zeros((4, 20, 20), np.uint16)
    m[0, 2:5, 2:5] = 5
    m[1, 3:6, 3:6] = 5
    m[2, 1:4, 1:4] = 8
    m[2, 6:9, 6:9] = 9
    m[3, 6:9, 7:10] = 9
    m[0, 12:15, 12:15] = 3
    m[2, 13:16, 13:16] = 3
    ids = [0, 1, 2, 3, 4, 10, 11]
    t = [0, 1, 2, 2, 3, 0, 2]
    lab = [5, 5, 8, 9, 9, 3, 3]
    zyx = np.zeros((7, 3))
    edges = [[0, 1], [1, 2], [1, 3], [3, 4], [10, 11]]
    return TrackGraph.from_arrays(ids, t, zyx, edges, label=lab), m


def test_division_and_gap_export_is_valid_ctc(tmp_path: Path) -> None:
    g, m = _division_case()
    write_ctc(g, tmp_path / "out", m)
    table = np.loadtxt(tmp_path / "out" / "res_track.txt", dtype=int).reshape(-1, 4)
    # 5 CTC tracks: mother, two daughters, and the gapped cell split in two (parent link).
    assert len(table) == 5
    tg = load_ctc_data(str(tmp_path / "out"), run_checks=True)  # traccuracy's format checks
    assert tg.graph.number_of_nodes() == 7
    assert tg.graph.number_of_edges() == 5
    out_degree = sorted(d for _, d in tg.graph.out_degree())
    assert out_degree.count(2) == 1  # one division
    back, _ = read_ctc(tmp_path / "out")
    assert back.n_edges == 5
    assert sorted(len(back.lineage(int(r))) for r in back.node_ids[back.t == 0]) == [2, 5]


def test_errors(ctc: Path, tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="no CTC track file"):
        read_ctc(ctc / "GT" / "SEG")
    with pytest.raises(FileNotFoundError):
        read_ctc(tmp_path / "nope")
    g, m = _division_case()
    g.add_node(0, (0, 0, 0))  # a node without a label
    with pytest.raises(ParameterError, match="no segmentation label"):
        write_ctc(g, tmp_path / "x", m)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "res_track.txt").write_text("1 0 0 0\n2 0 0 7\n")
    import tifffile

    tifffile.imwrite(bad / "mask000.tif", np.array([[1, 2]], np.uint16))
    with pytest.raises(FormatError, match="parent 7, which does not exist"):
        read_ctc(bad)
