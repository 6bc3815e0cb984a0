"""``vrscope sample``: in-process runs, the stores they write, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analysis.io import open_volume
from analysis.synthetic import FIBSEM_LABELS, n_mitochondria_for_size
from vrscope.cli import main


def test_sample_fibsem_writes_store_with_all_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cell.zarr"
    rc = main(["sample", "fibsem", str(out), "--size", "96", "--seed", "3", "--ngff", "0.4"])
    assert rc == 0
    captured = capsys.readouterr()
    truth = tmp_path / "cell.truth.csv"
    assert f"truth: {truth}" in captured.out
    assert "generating fibsem" in captured.err  # progress bar on stderr
    vol = open_volume(out)
    assert vol.ngff_version == "0.4"
    assert set(FIBSEM_LABELS) <= set(vol.label_names)
    assert vol.levels[0].shape == (96, 96, 96)
    table = pd.read_csv(truth)
    counts = table["kind"].value_counts()
    assert counts["cell"] == counts["nucleus"] == 1
    assert counts["mitochondria"] == n_mitochondria_for_size(96)
    assert counts["nuclear_pores"] == int(vol.open_labels("nuclear_pores").read(0).max())


def test_sample_timelapse_writes_labels_and_geff(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import geff

    out = tmp_path / "nuclei.zarr"
    argv = ["sample", "timelapse", str(out), "--frames", "5", "--size", "48", "--no-progress"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # --no-progress
    assert "tracks" in captured.out and "truth:" in captured.out
    vol = open_volume(out)
    assert vol.axes == ("t", "z", "y", "x") and vol.levels[0].shape[0] == 5
    assert "nuclei" in vol.label_names
    graph, meta = geff.read(str(out / "tracks"))
    nodes = pd.read_csv(tmp_path / "nuclei.truth.csv")
    assert graph.number_of_nodes() == len(nodes) > 0
    assert meta.directed
    # The same seed gives the same lineage through the CLI too.
    again = tmp_path / "again.zarr"
    assert main([*argv[:2], str(again), *argv[3:]]) == 0
    assert pd.read_csv(tmp_path / "again.truth.csv").equals(nodes)


def test_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.zarr"
    argv = ["sample", "timelapse", str(out), "--frames", "3", "--size", "40", "--no-progress"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already exists" in err and "Traceback" not in err
    assert main([*argv, "--overwrite", "--seed", "7"]) == 0


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["fibsem", "{out}", "--size", "10"], "size"),
        (["fibsem", "{out}", "--seed", "-1"], "seed"),
        (["fibsem", "{out}", "--voxel-size", "0"], "voxel_size"),
        (["fibsem", "{out}", "--chunks", "0", "8", "8"], "chunks"),
        (["fibsem", "{missing}"], "does not exist"),
        (["timelapse", "{out}", "--frames", "1"], "frames"),
        (["timelapse", "{out}", "--cells", "500", "--size", "32"], "n_cells"),
        (["fibsem", "{out}", "--size", "many"], "invalid int"),
        (["cube", "{out}"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], word: str
) -> None:
    paths = {"out": str(tmp_path / "x.zarr"), "missing": str(tmp_path / "no" / "x.zarr")}
    args = ["sample", *[a.format(**paths) for a in argv]]
    try:
        rc = main(args)
    except SystemExit as exc:  # argparse errors exit from inside parse_args
        rc = int(exc.code or 0)
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert word in err and "Traceback" not in err
    assert not (tmp_path / "x.zarr").exists()


def test_help_texts(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["sample", "--help"],
        ["sample", "fibsem", "--help"],
        ["sample", "timelapse", "--help"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "fibsem" in out and "timelapse" in out
    assert "truth.csv" in out and "--seed" in out and "--ngff" in out
