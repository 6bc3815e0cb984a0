"""``vrscope stream`` and ``vrscope render --stream`` in-process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from scipy import ndimage

from tests.analysis.io._support import write_with_ome_zarr
from vrscope.cli import main

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    vol = ndimage.gaussian_filter(rng.random((48, 64, 64)), 2)
    vol = ((vol - vol.min()) / np.ptp(vol) * 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("stream") / "img.zarr"
    return write_with_ome_zarr(path, vol, version="0.4", chunks=(16, 16, 16))


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


def test_stream_procedural_reports_cache_and_requests(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "stream",
        "--procedural",
        "4096x4096x2048",
        "--frames",
        "6",
        "--fps",
        "500",
        "--cache-mb",
        "16",
        "--size",
        "320",
        "240",
        "--json",
    ]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cache_budget_bytes"] == 16 * 2**20
    assert 0 < out["cache_bytes"] <= out["cache_budget_bytes"]
    assert out["pending"] == 0 and out["complete"] and out["drawn"] > 0
    assert out["levels"] == 6  # halve until the smallest axis (2048) is one 64 chunk: 2048 -> 64
    assert out["bytes_loaded"] == out["loaded"] * 64**3


def test_stream_store_text(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["stream", str(store), "--frames", "3", "--fps", "500", "--size", "320", "240"]) == 0
    )
    out = capsys.readouterr().out
    assert "cache:" in out and "requests: 0 pending" in out and "full detail" in out


def test_stream_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stream", str(tmp_path / "missing.zarr")]) == 2
    assert "missing.zarr" in _one_error_line(capsys)
    assert main(["stream", "--procedural", "12x3"]) == 2
    assert "--procedural" in _one_error_line(capsys)
    assert main(["stream"]) == 2
    _one_error_line(capsys)


@pytest.mark.render
def test_render_stream_matches_whole_level_render(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "whole.png", tmp_path / "streamed.png"
    common = ["--size", "200", "160", "--no-overlays", "--level", "0"]
    assert main(["render", str(store), "--out", str(a), *common]) == 0
    assert (
        main(
            [
                "render",
                str(store),
                "--out",
                str(b),
                "--stream",
                "--size",
                "200",
                "160",
                "--no-overlays",
            ]
        )
        == 0
    )
    assert "streamed" in capsys.readouterr().out
    whole, streamed = iio.imread(a).astype(int), iio.imread(b).astype(int)
    assert whole.max() > 40
    # Full detail at this size is level 0 in bricks: the same picture as level 0 whole.
    d = np.abs(whole - streamed)
    assert d.mean() < 1.0 and np.percentile(d, 99) <= 12
