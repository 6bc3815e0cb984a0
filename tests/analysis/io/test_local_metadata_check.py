"""``analysis.io.check_local_metadata`` (issue 21: an error before the imports) never
refuses a store the reader opens: with consolidated metadata (which zarr reads instead
of the per-node files) a broken per-node file the reader never looks at is not refused
either; a broken consolidated document is refused by both."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from analysis.errors import FormatError
from analysis.io import check_local_metadata, open_volume
from tests.analysis.io._support import write_with_ome_zarr


@pytest.mark.filterwarnings("ignore::UserWarning")  # zarr: consolidated v3 is not in the spec
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_consolidated_metadata_is_read_as_zarr_reads_it(tmp_path: Path, version: str) -> None:
    data = np.arange(16**3, dtype=np.uint8).reshape(16, 16, 16)
    store = write_with_ome_zarr(tmp_path / "s.zarr", data, version=version, chunks=(8, 8, 8))
    zarr.consolidate_metadata(str(store))
    level = store / "s0" / ("zarr.json" if version == "0.5" else ".zarray")
    level.write_text(level.read_text()[:30])  # never read: the consolidated copy is
    check_local_metadata(store)
    assert open_volume(store).levels[0].shape == (16, 16, 16)

    # A level larger than level 0 in the consolidated metadata: both refuse.
    if version == "0.5":
        doc = json.loads((store / "zarr.json").read_text())
        doc["consolidated_metadata"]["metadata"]["s1"]["shape"] = [64, 64, 64]
        (store / "zarr.json").write_text(json.dumps(doc))
    else:
        doc = json.loads((store / ".zmetadata").read_text())
        doc["metadata"]["s1/.zarray"]["shape"] = [64, 64, 64]
        (store / ".zmetadata").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="larger than level 0"):
        check_local_metadata(store)
    with pytest.raises(FormatError, match="larger than level 0"):
        open_volume(store)


def test_what_it_cannot_read_is_left_to_the_reader(tmp_path: Path) -> None:
    """No multiscales, a file, a URL, a missing level: no error here (the reader says)."""
    (tmp_path / "plain.zarr").mkdir()
    (tmp_path / "plain.zarr" / "zarr.json").write_text(
        json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}})
    )
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    for path in ("plain.zarr", "table.csv", "missing.zarr"):
        check_local_metadata(tmp_path / path)
    check_local_metadata("http://127.0.0.1:9/s.zarr")
    data = np.zeros((4, 4, 4), np.uint8)
    store = write_with_ome_zarr(tmp_path / "s.zarr", data, version="0.5", chunks=(4, 4, 4))
    (store / "s0" / "zarr.json").unlink()
    check_local_metadata(store)
    with pytest.raises(FormatError, match="does not exist"):
        open_volume(store)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_time_lapses_and_units_pass_as_the_reader_reads_them(tmp_path: Path, version: str) -> None:
    """A t, z, y, x sample with units in its axes: nothing refused; a space unit in
    nanometres with a scale of 1e-20 nm is refused by both, naming the field."""
    from analysis.io import write_timelapse_sample
    from analysis.synthetic import timelapse

    store = tmp_path / "t.zarr"
    sample = timelapse(frames=3, size=48, n_cells=2, seed=1)
    write_timelapse_sample(sample, store, version=version)  # type: ignore[arg-type]
    check_local_metadata(store)
    assert open_volume(store).axes[0] == "t"
    meta = store / ("zarr.json" if version == "0.5" else ".zattrs")
    doc = json.loads(meta.read_text())
    ms = (doc["attributes"]["ome"] if version == "0.5" else doc)["multiscales"][0]
    for ax in ms["axes"]:
        if ax.get("type") == "space":
            ax["unit"] = "nanometer"
    ms["datasets"][0]["coordinateTransformations"][0]["scale"][-1] = 1e-20
    meta.write_text(json.dumps(doc))
    for check in (check_local_metadata, open_volume):
        with pytest.raises(FormatError, match="outside 1 fm"):
            check(store)
