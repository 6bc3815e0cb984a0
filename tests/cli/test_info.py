"""``vrscope info``: the summary matches what zarr and ome-zarr-py read from the same store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from ome_zarr.data import create_zarr
from ome_zarr.format import FormatV04, FormatV05

from tests.analysis.io._support import serve_directory, write_with_ome_zarr
from vrscope.cli import main


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["info", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(params=["0.4", "0.5"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    data = np.random.default_rng(0).integers(0, 255, (12, 40, 56), dtype=np.uint16)
    path = write_with_ome_zarr(
        tmp_path / "img.zarr",
        data,
        version=request.param,
        scale={"z": 40.0, "y": 10.0, "x": 10.0},
        units={"z": "nanometer", "y": "nanometer", "x": "nanometer"},
        labels={"cells": (data > 30000).astype(np.uint32)},
        chunks=(4, 16, 16),
    )
    return path, request.param


def _raw_levels(path: Path) -> list[dict[str, Any]]:
    """Shapes and chunks straight from zarr, the independent reference."""
    group = zarr.open_group(str(path), mode="r")
    out = []
    for name in sorted(k for k in group.array_keys()):
        arr = group[name]
        out.append({"path": name, "shape": list(arr.shape), "chunks": list(arr.chunks)})
    return out


def test_info_json_matches_zarr(
    store: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, version = store
    code, out, err = _run(capsys, str(path), "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["ngff_version"] == version
    assert info["zarr_format"] == (2 if version == "0.4" else 3)
    assert info["axes"] == ["z", "y", "x"]
    assert info["dtype"] == "uint16"
    assert info["unit"] == "nanometer"
    assert info["voxel_size_um"] == pytest.approx([0.04, 0.01, 0.01])
    assert info["voxel_size_in_unit"] == pytest.approx([40.0, 10.0, 10.0])
    assert [{k: lev[k] for k in ("path", "shape", "chunks")} for lev in info["levels"]] == (
        _raw_levels(path)
    )
    assert [lab["name"] for lab in info["labels"]] == ["cells"]
    assert info["labels"][0]["dtype"] == "uint32"
    lab_levels = info["labels"][0]["levels"]
    assert [{k: lev[k] for k in ("path", "shape", "chunks")} for lev in lab_levels] == (
        _raw_levels(path / "labels" / "cells")
    )


def test_info_text(store: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    path, version = store
    code, out, _ = _run(capsys, str(path))
    assert code == 0
    assert f"NGFF version: {version}" in out
    assert "dtype:        uint16" in out
    assert "0.04 x 0.01 x 0.01 µm" in out and "40 x 10 x 10 nanometer" in out
    for lev in _raw_levels(path):
        shape = " x ".join(map(str, lev["shape"]))
        chunks = " x ".join(map(str, lev["chunks"]))
        assert any(
            line.split()[0] == lev["path"] and shape in line and chunks in line
            for line in out.splitlines()
            if line.startswith("    ")
        ), (lev, out)
    assert "labels:       1" in out and "cells" in out and "uint32" in out


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_info_on_ome_zarr_coins(
    tmp_path: Path, version: str, capsys: pytest.CaptureFixture[str]
) -> None:
    create_zarr(str(tmp_path / "coins.zarr"), fmt=FormatV04() if version == "0.4" else FormatV05())
    code, out, _ = _run(capsys, str(tmp_path / "coins.zarr"), "--json")
    assert code == 0
    info = json.loads(out)
    raw = _raw_levels(tmp_path / "coins.zarr")
    assert [lev["shape"][1:] for lev in info["levels"]] == [lev["shape"] for lev in raw]
    assert info["virtual_axes"] == ["z"]
    assert info["unit"] is None
    assert [lab["name"] for lab in info["labels"]] == ["coins"]
    code, out, _ = _run(capsys, str(tmp_path / "coins.zarr"))
    assert "no unit" in out and "virtual" in out


@pytest.mark.network
def test_info_over_http(store: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    path, version = store
    with serve_directory(path.parent) as (url, _requests):
        code, out, err = _run(capsys, f"{url}/{path.name}", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["url"].startswith("http://") and info["ngff_version"] == version
    assert [lev["shape"] for lev in info["levels"]] == [lev["shape"] for lev in _raw_levels(path)]
    assert [lab["name"] for lab in info["labels"]] == ["cells"]


def _assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0]


def test_info_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, str(tmp_path / "missing.zarr"))
    _assert_one_line_error(code, err, "does not exist", "missing.zarr")
    (tmp_path / "plain").mkdir()
    code, _, err = _run(capsys, str(tmp_path / "plain"))
    _assert_one_line_error(code, err, "not a zarr store")
    # Bad metadata: an axis type NGFF does not know (leaves too few space axes).
    path = write_with_ome_zarr(tmp_path / "bad.zarr", np.zeros((4, 8, 8), np.uint8), version="0.4")
    attrs = json.loads((path / ".zattrs").read_text())
    attrs["multiscales"][0]["axes"][0]["type"] = "spaaace"
    (path / ".zattrs").write_text(json.dumps(attrs))
    code, _, err = _run(capsys, str(path))
    _assert_one_line_error(code, err, "multiscales[0].axes")


def test_info_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["info", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "PATH_OR_URL" in out and "--json" in out


def test_info_time_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = np.zeros((3, 4, 8, 8), np.uint8)
    path = write_with_ome_zarr(
        tmp_path / "t.zarr",
        data,
        version="0.5",
        axes="tzyx",
        scale={"t": 2.0, "z": 1.0, "y": 1.0, "x": 1.0},
        units={"t": "minute", "z": "micrometer", "y": "micrometer", "x": "micrometer"},
    )
    code, out, _ = _run(capsys, str(path), "--json")
    assert code == 0
    assert json.loads(out)["time_step_s"] == pytest.approx(120.0)
    code, out, _ = _run(capsys, str(path))
    assert "time step:    120 s" in out
