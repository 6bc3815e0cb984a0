"""``vrscope profile`` on a written FIB-SEM sample: reproduces the sample's ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

from analysis.io import truth_path, write_fibsem_sample, write_ngff
from analysis.synthetic import fibsem_cell
from analysis.volume import ArrayVolumeSource
from vrscope.cli import main


def _run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _check_against_truth(report_dir: Path, truth: pd.DataFrame) -> None:
    summary = json.loads((report_dir / "summary.json").read_text())
    vols = summary["volumes_um3"]
    by_kind = truth.groupby("kind")
    for kind in ("cell", "nucleus", "mitochondria", "nuclear_pores"):
        assert vols[kind] == pytest.approx(by_kind["volume_um3"].sum()[kind], rel=0.02)
    assert summary["counts"]["mitochondria"] == by_kind.size()["mitochondria"]
    assert summary["counts"]["nuclear_pores"] == pytest.approx(
        by_kind.size()["nuclear_pores"], rel=0.05
    )
    mito = pd.read_csv(report_dir / "mitochondria.csv")
    ref = truth[truth["kind"] == "mitochondria"].set_index("label").loc[mito["label"]]
    np.testing.assert_allclose(mito["volume_um3"], ref["volume_um3"], rtol=0.02)
    assert (report_dir / "report.html").stat().st_size > 50_000


def _pore_halves(report_dir: Path, store: Path) -> tuple[dict, dict, int, int]:
    """The profile's summary, the generator's pore layout (store attributes, read with
    zarr) and which profile part is the layout's dense / sparse half."""
    summary = json.loads((report_dir / "summary.json").read_text())
    layout = zarr.open_group(str(store), mode="r").attrs["vrscope"]["pore_layout"]
    plane = summary["pores"]["nucleus_split_plane"]
    dot = float(np.dot(plane["normal"], layout["normal"]))
    # The profile's principal plane is the generator's split plane.
    assert abs(dot) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(plane["centre_um"], layout["centre_um"], atol=1e-6)
    dense = 2 if dot > 0 else 1
    parts = summary["pores"]["nucleus_parts"]
    # Same halves: the same pores in each.
    assert parts[str(dense)]["n_pores"] == layout["counts"]["dense"]
    assert parts[str(3 - dense)]["n_pores"] == layout["counts"]["sparse"]
    # The same halves in nucleus_parts.csv and in report.html's per-half section.
    table = pd.read_csv(report_dir / "nucleus_parts.csv").set_index("part")
    assert table.loc[dense, "n_pores"] == layout["counts"]["dense"]
    assert table.loc[3 - dense, "n_pores"] == layout["counts"]["sparse"]
    html = (report_dir / "report.html").read_text(encoding="utf-8")
    assert "id='nucleus-halves'" in html and 'id="nucleus-parts"' in html
    return summary, layout, dense, 3 - dense


def test_profile_cli_reproduces_sample_truth(tmp_path, capsys):
    store = tmp_path / "cell.zarr"
    write_fibsem_sample(fibsem_cell(96, seed=2), store, version="0.4")
    code, out, err = _run(capsys, "profile", str(store), "--out", str(tmp_path / "rep"))
    assert code == 0, err
    assert "nuclear pores" in out and "report.html" in out
    _check_against_truth(tmp_path / "rep", pd.read_csv(truth_path(store)))
    _pore_halves(tmp_path / "rep", store)


@pytest.mark.slow
def test_profile_cli_on_standard_256_sample(tmp_path, capsys):
    """The issue's done-when: `vrscope sample fibsem --size 256` then `vrscope profile`."""
    store = tmp_path / "cell256.zarr"
    assert _run(capsys, "sample", "fibsem", str(store), "--size", "256")[0] == 0
    code, _, err = _run(capsys, "profile", str(store), "--out", str(tmp_path / "rep"))
    assert code == 0, err
    _check_against_truth(tmp_path / "rep", pd.read_csv(truth_path(store)))
    # Its run time is a figure of tests/benchmarks/bench_profile.py, not asserted here.
    # Pores: realistic density and the known denser half found by both t-tests at the
    # default 0.1 µm bandwidth.
    summary, layout, dense, sparse = _pore_halves(tmp_path / "rep", store)
    parts = summary["pores"]["nucleus_parts"]
    area = sum(p["envelope_area_um2"] for p in parts.values())
    assert 3.0 <= summary["counts"]["nuclear_pores"] / area <= 4.5
    ratio = parts[str(dense)]["pores_per_um2"] / parts[str(sparse)]["pores_per_um2"]
    assert ratio == pytest.approx(layout["target_ratio"], rel=0.25)
    tests = summary["pores"]["density_t_tests"]
    assert [t["method"] for t in tests] == ["Student", "Welch"]
    for t in tests:
        assert t[f"mean_part{dense}"] > t[f"mean_part{sparse}"]
        assert t["pvalue"] < 0.05


def test_profile_bad_inputs_exit_2_with_one_line(tmp_path, capsys):
    store = tmp_path / "plain.zarr"
    write_ngff(ArrayVolumeSource(np.zeros((8, 8, 8), np.uint8)), store)
    for argv, word in (
        (["profile", str(store), "--out", str(tmp_path / "r")], "lacks label image"),
        (["profile", str(tmp_path / "nope.zarr"), "--out", str(tmp_path / "r")], "nope.zarr"),
        (["profile", str(store), "--out", str(tmp_path / "x" / "y")], "does not exist"),
        (["profile", str(store), "--out", str(tmp_path / "r"), "--bandwidth-um", "0"], "bandwidth"),
    ):
        code, _, err = _run(capsys, *argv)
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert word in err
