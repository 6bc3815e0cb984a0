"""``--remote-timeout`` beyond ``info`` and ``render`` (issue 21): ``movie``, ``stream`` and the
analysis commands that read stores by URL (``measure``, ``density``, ``profile``,
``segment``, ``train``; ``infer`` and ``track`` take local stores only). A loopback server answers every request right but late (well within each
request's own timeouts): the command ends with one line naming the deadline and the URL,
exit 2, and writes nothing; within a long deadline the same slow store is read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.io import write_labels
from tests.analysis.io.test_remote_caps import CHUNKS, SHAPE, SLOW_S, _store, fault_server
from vrscope.cli import main


def _labelled_store(tmp_path: Path) -> np.ndarray:
    """The fault server's store with a label image ``blobs``: two boxes."""
    lab = np.zeros(SHAPE, np.uint16)
    lab[2:10, 3:12, 4:20] = 1
    lab[18:30, 16:30, 25:40] = 2
    write_labels(_store(tmp_path), "blobs", lab, chunks=CHUNKS)
    return lab


def _commands(url: str, tmp: Path) -> dict[str, list[str]]:
    return {
        "movie": ["movie", url, "--out", str(tmp / "a.mp4"), "--size", "64", "48",
                  "--frames", "2"],
        "stream": ["stream", url, "--frames", "2", "--size", "64", "48", "--timeout", "5"],
        "measure": ["measure", url, "--labels", "blobs", "--out", str(tmp / "m.csv")],
        "density": ["density", url, "--labels", "blobs", "--k", "1",
                    "--out", str(tmp / "d.csv")],
        "profile": ["profile", url, "--out", str(tmp / "report")],
        "segment": ["segment", url, "--out", str(tmp / "seg.zarr")],
        "train": ["train", url, "--labels", "blobs", "--out", str(tmp / "model")],
    }  # fmt: skip


@pytest.mark.parametrize(
    "command", ["movie", "stream", "measure", "density", "profile", "segment", "train"]
)
def test_slow_answers_end_the_command_at_its_remote_timeout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    _labelled_store(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    with fault_server(tmp_path, "", "slow") as server:
        url = f"{server.url}/s.zarr"
        # Opening the store reads several documents, each SLOW_S late.
        code = main([*_commands(url, out)[command], "--remote-timeout", str(1.5 * SLOW_S)])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert code == 2
    assert f"vrscope {command}: error:" in err[0] and "(--remote-timeout)" in err[0], err[0]
    assert url in err[0], err[0]
    assert list(out.iterdir()) == []


def test_measure_within_its_remote_timeout_reads_the_slow_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = _labelled_store(tmp_path)
    table = tmp_path / "m.csv"
    with fault_server(tmp_path, "", "slow") as server:
        argv = _commands(f"{server.url}/s.zarr", tmp_path)["measure"]
        assert main([*argv, "--remote-timeout", "600"]) == 0, capsys.readouterr().err
    got = pd.read_csv(table)
    ids, counts = np.unique(lab[lab > 0], return_counts=True)
    assert got["label"].tolist() == ids.tolist()
    assert got["voxel_count"].tolist() == counts.tolist()


@pytest.mark.parametrize("command", ["movie", "stream", "measure", "segment"])
@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_a_bad_remote_timeout_is_a_usage_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, value: str
) -> None:
    with pytest.raises(SystemExit) as info:
        main([*_commands(str(tmp_path / "s.zarr"), tmp_path)[command], f"--remote-timeout={value}"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--remote-timeout" in err[0] and value in err[0], err
