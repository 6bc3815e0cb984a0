"""Absurd NGFF metadata is refused with one line naming the field (issue 21): non-finite,
zero, negative or out-of-range voxel sizes, dataset paths leaving the store, empty axes,
levels larger than level 0, non-numeric dtypes. Stores written by ome-zarr-py, then
edited with plain JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from analysis.errors import FormatError
from analysis.io import open_volume
from tests.analysis.io._support import write_with_ome_zarr
from vrscope.cli import main


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    data = np.arange(16 * 16 * 16, dtype=np.uint8).reshape(16, 16, 16)
    return write_with_ome_zarr(tmp_path / "s.zarr", data, version="0.4", chunks=(8, 8, 8))


def _edit(store: Path, change: Any) -> None:
    attrs = json.loads((store / ".zattrs").read_text())
    change(attrs["multiscales"][0])
    (store / ".zattrs").write_text(json.dumps(attrs))


def _set_scale(value: Any) -> Any:
    def change(ms: dict) -> None:
        ms["datasets"][0]["coordinateTransformations"][0]["scale"][-1] = value

    return change


def _set_path(value: str) -> Any:
    def change(ms: dict) -> None:
        ms["datasets"][0]["path"] = value

    return change


CASES = {
    "nan scale": (_set_scale(float("nan")), "NaN or infinity"),
    "inf scale": (_set_scale(float("inf")), "NaN or infinity"),
    "zero scale": (_set_scale(0), "must be positive"),
    "negative scale": (_set_scale(-1.0), "must be positive"),
    "tiny scale": (_set_scale(1e-300), "outside 1 fm .. 1 km"),
    "huge scale": (_set_scale(1e300), "outside 1 fm .. 1 km"),
    "text scale": (_set_scale("one"), "scale"),
    "path up": (_set_path("../../etc"), "not a path inside the store"),
    "absolute path": (_set_path("/etc"), "not a path inside the store"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_absurd_metadata_is_refused_naming_the_field(
    store: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    change, needle = CASES[case]
    # JSON has no NaN/inf: Python writes them as NaN/Infinity, as careless writers do.
    _edit(store, change)
    with pytest.raises(FormatError, match="multiscales|datasets") as exc:
        open_volume(store)
    assert needle in str(exc.value)
    assert main(["info", str(store)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0]


def test_an_empty_axis_and_a_level_larger_than_level_0_are_refused(store: Path) -> None:
    root = zarr.open_group(str(store), mode="r+")
    names = [d["path"] for d in root.attrs["multiscales"][0]["datasets"]]
    # Level 1 replaced by a larger array (a scale level that would allocate more).
    root.create_array(names[1], shape=(32, 32, 32), dtype="u1", overwrite=True)
    with pytest.raises(FormatError, match="larger than level 0"):
        open_volume(store)
    root.create_array(names[1], shape=(8, 0, 8), dtype="u1", overwrite=True)
    with pytest.raises(FormatError, match="empty axis"):
        open_volume(store)


def test_non_numeric_voxels_are_refused(tmp_path: Path) -> None:
    path = write_with_ome_zarr(
        tmp_path / "t.zarr", np.zeros((4, 4, 4), np.uint8), version="0.4", chunks=(4, 4, 4)
    )
    root = zarr.open_group(str(path), mode="r+")
    names = [d["path"] for d in root.attrs["multiscales"][0]["datasets"]]
    for name in names:
        root.create_array(name, shape=(4, 4, 4), dtype="U4", overwrite=True)
    with pytest.raises(FormatError, match="numbers only"):
        open_volume(path)
