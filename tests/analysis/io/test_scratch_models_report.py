"""analysis.io's scratch volumes, classifier files and report folders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import zarr
from scipy import ndimage as ndi

from analysis.errors import FormatError, ParameterError
from analysis.io import ScratchVolume, load_classifier, save_classifier, write_report_folder
from analysis.segment import BlockwiseSource
from analysis.volume import ArrayVolumeSource
from tests.analysis.io.test_volume_conformance import Case, VolumeSourceTests


class TestScratchVolume(VolumeSourceTests):
    """A scratch volume filled block-wise reads back like any VolumeSource."""

    @pytest.fixture
    def case(self, tmp_path) -> Case:
        data = np.arange(20 * 24 * 28, dtype=np.int64).reshape(20, 24, 28)
        vol = ScratchVolume(data.shape, np.int64, chunks=(8, 8, 8), folder=tmp_path / "s.zarr")
        vol[...] = data
        return vol, [data]


class TestBlockwiseSource(VolumeSourceTests):
    """A lazy block-wise filter reads like any VolumeSource: equal to SciPy's result."""

    @pytest.fixture
    def case(self) -> Case:
        rng = np.random.default_rng(0)
        img = rng.normal(size=(18, 20, 22)).astype(np.float32)
        src = ArrayVolumeSource(img, chunks=(8, 8, 8))
        lazy = BlockwiseSource(
            src, lambda b: ndi.uniform_filter(b, 3, mode="reflect"), halo=(1, 1, 1)
        )
        return lazy, [ndi.uniform_filter(img, 3, mode="reflect")]


def test_scratch_volume_is_zarr_on_disk_and_temporary_by_default(tmp_path):
    with ScratchVolume((4, 5, 6), np.uint16, chunks=(2, 2, 2)) as vol:
        vol[1:3, :, 2] = 7
        folder = vol.folder
        assert folder.is_dir()
        arr = zarr.open_array(folder, mode="r")  # an ordinary zarr array
        assert arr.dtype == np.uint16 and arr.chunks == (2, 2, 2)
        assert int(arr[2, 4, 2]) == 7 and int(arr[0, 0, 0]) == 0
    assert not folder.exists()
    kept = ScratchVolume((2, 2, 2), bool, folder=tmp_path / "keep.zarr")
    kept.close()
    assert (tmp_path / "keep.zarr").exists()  # a folder the caller named is the caller's
    with pytest.raises(FormatError, match="already exists"):
        ScratchVolume((2, 2, 2), bool, folder=tmp_path / "keep.zarr")
    with pytest.raises(ParameterError, match="3D shape"):
        ScratchVolume((2, 2), bool)


class _Blob:
    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def to_bytes(self) -> bytes:
        return self.payload

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "x") -> _Blob:
        return cls(data + source.encode()[-4:])


def test_classifier_files_round_trip_bytes(tmp_path):
    path = save_classifier(_Blob(b"abc"), tmp_path / "m.npz")
    assert path.read_bytes() == b"abc"
    assert load_classifier(_Blob, path).payload == b"abc.npz"  # source is the path
    with pytest.raises(FormatError, match="does not exist"):
        save_classifier(_Blob(b"x"), tmp_path / "no" / "m.npz")
    with pytest.raises(FileNotFoundError):
        load_classifier(_Blob, tmp_path / "missing.npz")


def test_write_report_folder(tmp_path):
    table = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5]})
    out = write_report_folder(
        tmp_path / "rep",
        tables={"t": table},
        texts={"report.html": "<p>µm</p>"},
        images={"fig": b"\x89PNG"},
    )
    pd.testing.assert_frame_equal(pd.read_csv(out / "t.csv"), table)
    assert (out / "report.html").read_text(encoding="utf-8") == "<p>µm</p>"
    assert (out / "fig.png").read_bytes() == b"\x89PNG"
    with pytest.raises(FormatError, match="does not exist"):
        write_report_folder(tmp_path / "x" / "rep", tables={}, texts={}, images={})
    (tmp_path / "file").write_text("")
    with pytest.raises(FormatError, match="not a folder"):
        write_report_folder(tmp_path / "file", tables={}, texts={}, images={})
    with pytest.raises(ParameterError, match="plain file name"):
        write_report_folder(tmp_path / "rep", tables={}, texts={"../evil": ""}, images={})


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_tables_round_trip_with_pandas(tmp_path, suffix):
    from analysis.io import read_table, write_table

    table = pd.DataFrame({"label": [1, 2, 3], "volume_um3": [0.5, 1.25, 2.0]})
    path = write_table(table, tmp_path / f"t{suffix}")
    ref = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    pd.testing.assert_frame_equal(ref, table)
    pd.testing.assert_frame_equal(read_table(path), table)


def test_table_bad_paths(tmp_path):
    from analysis.io import read_table, write_table

    table = pd.DataFrame({"a": [1]})
    with pytest.raises(ParameterError, match=r"\.csv or \.parquet"):
        write_table(table, tmp_path / "t.xlsx")
    with pytest.raises(FormatError, match="does not exist"):
        write_table(table, tmp_path / "no" / "t.csv")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(FormatError, match="cannot read table"):
        read_table(tmp_path / "bad.parquet")
