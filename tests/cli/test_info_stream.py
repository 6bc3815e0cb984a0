"""``vrscope info --stream``: time to first image, bytes fetched, cache use, pending requests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from tests.analysis.io._support import write_with_ome_zarr
from vrscope.cli import main


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    data = np.random.default_rng(3).integers(0, 255, (48, 80, 72), dtype=np.uint8)
    path = tmp_path_factory.mktemp("info") / "img.zarr"
    write_with_ome_zarr(path, data, version="0.5", chunks=(16, 16, 16))
    return path, data


def test_info_stream_reports_the_first_image(
    store: tuple[Path, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    path, data = store
    argv = ["info", str(path), "--stream", "--json", "--size", "320", "240", "--cache-mb", "32"]
    assert main(argv) == 0
    rep = json.loads(capsys.readouterr().out)["stream"]
    assert rep["first_image_complete"] and rep["time_to_first_image_s"] > 0
    # Independent (zarr): a first picture of the whole volume needs all of the coarsest
    # level, and full detail at this size is all of level 0.
    group = zarr.open_group(str(path), mode="r")
    paths = [d["path"] for d in group.attrs["ome"]["multiscales"][0]["datasets"]]
    coarsest = group[paths[-1]][...]
    assert rep["bytes_fetched"] >= coarsest.nbytes
    assert rep["full_detail_bytes"] == data.nbytes
    assert rep["cache_budget_bytes"] == 32 * 2**20
    assert 0 < rep["cache_bytes"] <= rep["bytes_fetched"]
    # Whatever is not fetched yet of the full-detail view is pending or in flight (on a
    # fast disk all of it may already be fetched by the time the first image is ready).
    if rep["bytes_fetched"] < rep["full_detail_bytes"]:
        assert rep["pending"] + rep["in_flight"] > 0


def test_info_stream_text_and_bad_input(
    store: tuple[Path, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = store
    assert main(["info", str(path), "--stream", "--size", "320", "240"]) == 0
    out = capsys.readouterr().out
    assert "first image:" in out and "pending" in out and "cache:" in out
    with pytest.raises(SystemExit) as info:  # refused by the option's type
        main(["info", str(path), "--stream", "--cache-mb", "0"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "--cache-mb" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert main(["info", str(tmp_path / "missing.zarr"), "--stream"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
