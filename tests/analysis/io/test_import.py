"""Importers (TIFF, slice folders, .npy, HDF5, .h5.gz) against independent readers.

References: tifffile.imread, imageio.v3.imread, np.load and h5py read the same
files directly; a lookup is checked against a dense NumPy table (gala's rule).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from pathlib import Path

import h5py
import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

import analysis.io._import as imp
from analysis.errors import FormatError, ParameterError
from analysis.io._import import (
    LookupVolumeSource,
    open_input,
    read_lookup_table,
    split_hdf5_spec,
)
from analysis.volume import VolumeSource
from tests.analysis.io.test_volume_conformance import Case, VolumeSourceTests

RNG = np.random.default_rng(2)
REGIONS = [
    None,
    (slice(2, 5), slice(3, 20), slice(1, 9)),
    (slice(6, 7), slice(0, 33), slice(40, 41)),
    (slice(0, 1),),
]


def _volume(dtype: type = np.uint16, shape: tuple[int, int, int] = (7, 33, 41)) -> np.ndarray:
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def _check_regions(source: VolumeSource, reference: np.ndarray) -> None:
    assert isinstance(source, VolumeSource)
    assert source.levels[0].shape == reference.shape
    assert source.dtype == reference.dtype
    assert source.axes == ("z", "y", "x")
    for region in REGIONS:
        got = source.read(0, region)
        want = reference[region] if region is not None else reference
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg
    return msg


# --------------------------------------------------------------------------- TIFF


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"compression": "zlib"},
        {"tile": (16, 16), "compression": "zlib"},
        {"imagej": True},
        {"ome": True, "metadata": {"axes": "ZYX"}},
    ],
    ids=["plain", "zlib", "tiled", "imagej", "ome"],
)
def test_tiff_stack_matches_tifffile(tmp_path: Path, kwargs: dict) -> None:
    data = _volume()
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, data, **kwargs)
    reference = tifffile.imread(path)
    with open_input(path) as src:  # type: ignore[attr-defined]
        _check_regions(src, reference)


def test_tiff_single_page_is_one_slice(tmp_path: Path) -> None:
    plane = _volume(np.uint8, (1, 20, 30))[0]
    tifffile.imwrite(tmp_path / "p.tif", plane)
    src = open_input(tmp_path / "p.tif")
    assert src.levels[0].shape == (1, 20, 30)
    np.testing.assert_array_equal(src.read(0)[0], tifffile.imread(tmp_path / "p.tif"))


def test_tiff_voxel_size_from_imagej_and_ome(tmp_path: Path) -> None:
    data = _volume(np.uint8)
    tifffile.imwrite(
        tmp_path / "ij.tif",
        data,
        imagej=True,
        resolution=(1 / 0.02, 1 / 0.025),
        metadata={"spacing": 0.05, "unit": "micron"},
    )
    tifffile.imwrite(
        tmp_path / "o.ome.tif",
        data,
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 20.0,
            "PhysicalSizeXUnit": "nm",
            "PhysicalSizeY": 0.03,
            "PhysicalSizeZ": 0.1,
        },
    )
    ij = open_input(tmp_path / "ij.tif")
    np.testing.assert_allclose(ij.voxel_size_um, (0.05, 0.025, 0.02), rtol=1e-6)  # type: ignore[attr-defined]
    np.testing.assert_allclose(ij.levels[0].scale_um, (0.05, 0.025, 0.02), rtol=1e-6)
    ome = open_input(tmp_path / "o.ome.tif")
    np.testing.assert_allclose(ome.voxel_size_um, (0.1, 0.03, 0.02), rtol=1e-6)  # type: ignore[attr-defined]
    tifffile.imwrite(tmp_path / "bare.tif", data)
    assert open_input(tmp_path / "bare.tif").voxel_size_um is None  # type: ignore[attr-defined]


def test_tiff_bad_inputs(tmp_path: Path) -> None:
    (tmp_path / "junk.tif").write_bytes(b"not a tiff at all" * 10)
    with pytest.raises(FormatError) as exc:
        open_input(tmp_path / "junk.tif")
    assert "junk.tif" in _one_line(exc)
    rgb = RNG.integers(0, 255, size=(2, 10, 10, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgbstack.tif", rgb, photometric="rgb")
    with pytest.raises(FormatError) as exc:
        open_input(tmp_path / "rgbstack.tif")
    assert "rgbstack.tif" in _one_line(exc)
    tzyx = _volume(np.uint8, (6, 10, 10)).reshape(2, 3, 10, 10)
    tifffile.imwrite(tmp_path / "tzyx.tif", tzyx, imagej=True, metadata={"axes": "TZYX"})
    with pytest.raises(FormatError) as exc:
        open_input(tmp_path / "tzyx.tif")
    assert "TZYX" in _one_line(exc)


# --------------------------------------------------------------------------- slices


def _write_slices(folder: Path, data: np.ndarray, names: list[str]) -> None:
    folder.mkdir()
    for plane, name in zip(data, names, strict=True):
        if name.endswith(".png"):
            iio.imwrite(folder / name, plane)
        else:
            tifffile.imwrite(folder / name, plane)


# Names whose plain string sort differs from the natural (numeric) order.
NATURAL = ["iso.9.png", "iso.10.png", "iso.11.png", "iso.100.png", "iso.101.png", "iso.1000.png"]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_folder_natural_order_matches_imageio(tmp_path: Path, dtype: type) -> None:
    data = _volume(dtype, (6, 21, 17))
    _write_slices(tmp_path / "maps", data, NATURAL)
    # Independent reference: imageio reading the files in the order we wrote them.
    reference = np.stack([iio.imread(tmp_path / "maps" / n) for n in NATURAL])
    np.testing.assert_array_equal(reference, data)
    (tmp_path / "maps" / ".hidden.png").write_bytes(b"ignored")
    (tmp_path / "maps" / "notes.txt").write_text("ignored")
    src = open_input(tmp_path / "maps")
    assert [p.name for p in src.files] == NATURAL  # type: ignore[attr-defined]
    _check_regions(src, reference)
    glob_src = open_input(str(tmp_path / "maps" / "iso.1*.png"))
    np.testing.assert_array_equal(glob_src.read(0), reference[[1, 2, 3, 4, 5]])


def test_tiff_folder_matches_tifffile(tmp_path: Path) -> None:
    data = _volume(np.uint16, (5, 12, 9))
    names = [f"z{i}.tif" for i in range(5)]
    _write_slices(tmp_path / "t", data, names)
    reference = np.stack([tifffile.imread(tmp_path / "t" / n) for n in names])
    _check_regions(open_input(tmp_path / "t"), reference)


def test_slices_decoded_only_when_needed_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _volume(np.uint8, (12, 16, 16))
    _write_slices(tmp_path / "s", data, [f"s{i:03d}.png" for i in range(12)])
    decoded: list[str] = []
    real = imp._decode_slice

    def counting(path: Path) -> np.ndarray:
        decoded.append(path.name)
        return real(path)

    monkeypatch.setattr(imp, "_decode_slice", counting)
    src = imp.import_slices(tmp_path / "s", cache_bytes=3 * 16 * 16)
    decoded.clear()  # the constructor decodes slice 0 for its dtype
    np.testing.assert_array_equal(src.read(0, (slice(4, 7), slice(2, 9))), data[4:7, 2:9])
    assert decoded == ["s004.png", "s005.png", "s006.png"]
    src.read(0, (slice(4, 7), slice(9, 16)))  # another (y, x) chunk of the same slab
    assert len(decoded) == 3
    src.read(0, (slice(7, 8),))  # evicts s004 (capacity 3 slices)
    src.read(0, (slice(4, 5),))
    assert decoded[3:] == ["s007.png", "s004.png"]


def test_slices_of_different_size_name_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    _write_slices(folder, _volume(np.uint8, (3, 10, 10)), ["a1.png", "a2.png", "a3.png"])
    iio.imwrite(folder / "a2.png", _volume(np.uint8, (1, 10, 11))[0])
    with pytest.raises(FormatError) as exc:
        open_input(folder)
    msg = _one_line(exc)
    assert "a2.png" in msg and "(10, 11)" in msg


def test_slices_other_bad_inputs(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="no PNG or TIFF slices"):
        open_input(tmp_path / "empty")
    mixed = tmp_path / "mixed"
    _write_slices(mixed, _volume(np.uint8, (2, 8, 8)), ["a.png", "b.tif"])
    with pytest.raises(FormatError, match="mixes"):
        open_input(mixed)
    dtypes = tmp_path / "dtypes"
    dtypes.mkdir()
    iio.imwrite(dtypes / "1.png", _volume(np.uint8, (1, 8, 8))[0])
    iio.imwrite(dtypes / "2.png", _volume(np.uint16, (1, 8, 8))[0])
    with pytest.raises(FormatError) as exc:
        open_input(dtypes)
    assert "2.png" in _one_line(exc)
    colour = tmp_path / "colour"
    colour.mkdir()
    iio.imwrite(colour / "1.png", RNG.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    with pytest.raises(FormatError) as exc:
        open_input(colour)
    assert "1.png" in _one_line(exc)


# --------------------------------------------------------------------------- .npy


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_npy_is_memory_mapped_and_matches_np_load(tmp_path: Path, dtype: type) -> None:
    data = RNG.normal(100, 20, size=(7, 33, 41)).astype(dtype)
    np.save(tmp_path / "v.npy", data)
    src = open_input(tmp_path / "v.npy")
    assert isinstance(src._arr, np.memmap)  # type: ignore[attr-defined]
    _check_regions(src, np.load(tmp_path / "v.npy"))
    np.save(tmp_path / "p.npy", data[0])
    assert open_input(tmp_path / "p.npy").levels[0].shape == (1, 33, 41)


def test_npy_bad_inputs(tmp_path: Path) -> None:
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "four.npy", np.zeros((2, 2, 2, 2), np.uint8))
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    for name in ("obj.npy", "four.npy", "junk.npy"):
        with pytest.raises(FormatError) as exc:
            open_input(tmp_path / name)
        assert name in _one_line(exc)


# --------------------------------------------------------------------------- HDF5


def _h5(path: Path, **datasets: np.ndarray) -> None:
    with h5py.File(path, "w") as f:
        for name, arr in datasets.items():
            f.create_dataset(name.replace("__", "/"), data=arr, chunks=True, compression="gzip")


def test_hdf5_dataset_matches_h5py(tmp_path: Path) -> None:
    data = _volume(np.uint16)
    _h5(tmp_path / "f.h5", group__raw=data, other=np.zeros((3, 3)))
    with h5py.File(tmp_path / "f.h5", "r") as f:
        reference = f["group/raw"][...]
    src = open_input(f"{tmp_path / 'f.h5'}:group/raw")
    _check_regions(src, reference)
    assert src.name.endswith("group/raw")
    src.close()  # type: ignore[attr-defined]


def test_hdf5_single_dataset_needs_no_name_and_element_size(tmp_path: Path) -> None:
    data = _volume(np.uint8)
    with h5py.File(tmp_path / "one.hdf5", "w") as f:
        f.create_dataset("data", data=data).attrs["element_size_um"] = (0.5, 0.25, 0.25)
    src = open_input(tmp_path / "one.hdf5")
    np.testing.assert_array_equal(src.read(0), data)
    assert src.voxel_size_um == (0.5, 0.25, 0.25)  # type: ignore[attr-defined]


def test_hdf5_missing_dataset_lists_the_available_ones(tmp_path: Path) -> None:
    _h5(tmp_path / "f.h5", raw=_volume(np.uint8), seg=_volume(np.uint8))
    with pytest.raises(FormatError) as exc:
        open_input(f"{tmp_path / 'f.h5'}:nope")
    msg = _one_line(exc)
    assert "'nope'" in msg and "raw" in msg and "seg" in msg
    with pytest.raises(FormatError, match="name one as"):
        open_input(tmp_path / "f.h5")
    (tmp_path / "fake.h5").write_bytes(b"no hdf5 here")
    with pytest.raises(FormatError, match="not an HDF5 file"):
        open_input(f"{tmp_path / 'fake.h5'}:raw")


def test_h5_gz_is_decompressed_lazily_and_cleaned_up(tmp_path: Path) -> None:
    data = _volume(np.int32)
    _h5(tmp_path / "gt.h5", stack=data, transforms=np.array([[1, 2]]))
    with open(tmp_path / "gt.h5", "rb") as raw, gzip.open(tmp_path / "gt.h5.gz", "wb") as gz:
        gz.write(raw.read())
    cache = tmp_path / "cache"
    with h5py.File(tmp_path / "gt.h5", "r") as f:
        reference = f["stack"][...]
    src = imp.import_hdf5(tmp_path / "gt.h5.gz", "stack", cache_dir=cache)
    other = imp.import_hdf5(tmp_path / "gt.h5.gz", "transforms", cache_dir=cache)
    assert len(list(cache.iterdir())) == 1  # one decompressed copy shared by both
    _check_regions(src, reference)
    other.close()
    np.testing.assert_array_equal(src.read(0, (slice(3, 4),)), reference[3:4])
    src.close()
    assert list(cache.iterdir()) == []


def test_corrupt_gzip_is_a_format_error_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "bad.h5.gz").write_bytes(os.urandom(300))
    cache = tmp_path / "cache"
    with pytest.raises(FormatError) as exc:
        imp.import_hdf5(tmp_path / "bad.h5.gz", "stack", cache_dir=cache)
    assert "bad.h5.gz" in _one_line(exc)
    _h5(tmp_path / "gt.h5", stack=_volume(np.uint8))
    blob = gzip.compress((tmp_path / "gt.h5").read_bytes())
    (tmp_path / "cut.h5.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(FormatError) as exc:
        imp.import_hdf5(tmp_path / "cut.h5.gz", "stack", cache_dir=cache)
    assert "cut.h5.gz" in _one_line(exc)
    (tmp_path / "text.h5.gz").write_bytes(gzip.compress(b"hello"))
    with pytest.raises(FormatError, match="not an HDF5 file"):
        imp.import_hdf5(tmp_path / "text.h5.gz", "stack", cache_dir=cache)
    assert list(cache.iterdir()) == []


def test_split_hdf5_spec() -> None:
    assert split_hdf5_spec("/a/b.h5:stack") == (Path("/a/b.h5"), "stack")
    assert split_hdf5_spec("x.H5.gz:g/d") == (Path("x.H5.gz"), "g/d")
    assert split_hdf5_spec("x.hdf5") == (Path("x.hdf5"), None)
    assert split_hdf5_spec("x.tif") is None


# --------------------------------------------------------------------------- dispatcher


def test_missing_and_unsupported_inputs(tmp_path: Path) -> None:
    for spec in (tmp_path / "nope.tif", f"{tmp_path / 'nope.h5'}:x", tmp_path / "nope"):
        with pytest.raises(FormatError) as exc:
            open_input(spec)
        assert "nope" in _one_line(exc)
    (tmp_path / "a.mrc").write_bytes(b"x")
    with pytest.raises(FormatError, match="unsupported input"):
        open_input(tmp_path / "a.mrc")


def test_region_and_level_errors(tmp_path: Path) -> None:
    np.save(tmp_path / "v.npy", np.zeros((2, 3, 4), np.uint8))
    src = open_input(tmp_path / "v.npy")
    with pytest.raises(ParameterError):
        src.read(1)
    with pytest.raises(ParameterError):
        src.read(0, (slice(0, 2, 2),))


# --------------------------------------------------------------------------- lookup


def _dense_lookup(labels: np.ndarray, table: np.ndarray) -> np.ndarray:
    # gala's apply_segmentation_map: a dense forward map, 0 for ids not in the table.
    forward = np.zeros(max(int(labels.max()), int(table[:, 0].max())) + 1, np.int64)
    forward[table[:, 0]] = table[:, 1]
    return forward[labels]


def _dict_lookup(labels: np.ndarray, table: np.ndarray, missing: str) -> np.ndarray:
    # A plain dict over the distinct ids: independent of both code paths (dense, sorted).
    mapping = {int(a): int(b) for a, b in table}
    uniq, inverse = np.unique(labels, return_inverse=True)
    fallback = {"zero": lambda u: 0, "keep": lambda u: u}[missing]
    mapped = np.array([mapping.get(int(u), fallback(int(u))) for u in uniq], np.int64)
    return mapped[inverse].reshape(labels.shape)


@pytest.mark.parametrize(
    ("offset", "dtype"),
    [(0, np.int32), (2**36, np.int64), (-250, np.int32), (0, np.uint16)],
    ids=["dense", "sparse-64bit", "negative", "dense-uint16"],
)
def test_lookup_matches_reference(tmp_path: Path, offset: int, dtype: type) -> None:
    labels = (RNG.integers(0, 500, size=(9, 20, 20)) + offset).astype(dtype)
    ids = RNG.permutation(500)[:400] + offset  # 100 ids missing from the table
    table = np.stack([ids, RNG.integers(1, 70_000, size=ids.size)], axis=1)
    np.save(tmp_path / "l.npy", labels)
    src = LookupVolumeSource(open_input(tmp_path / "l.npy"), table)
    assert src.dtype == np.uint32
    want = _dict_lookup(labels, table, "zero")
    if offset == 0:  # gala's dense forward map agrees too
        np.testing.assert_array_equal(want, _dense_lookup(labels, table))
    np.testing.assert_array_equal(src.read(0), want)
    np.testing.assert_array_equal(src.read(0, (slice(2, 5), slice(1, 7))), want[2:5, 1:7])
    keep = LookupVolumeSource(open_input(tmp_path / "l.npy"), table, missing="keep")
    np.testing.assert_array_equal(keep.read(0), _dict_lookup(labels, table, "keep"))
    strict = LookupVolumeSource(open_input(tmp_path / "l.npy"), table, missing="error")
    with pytest.raises(FormatError, match="not in the lookup table"):
        strict.read(0)
    covered = labels[np.isin(labels, ids)]  # only ids in the table: no error
    np.testing.assert_array_equal(strict.apply(covered), _dict_lookup(covered, table, "zero"))


def test_lookup_block_outside_dense_table(tmp_path: Path) -> None:
    table = np.array([[0, 0], [1, 11], [2, 12]])
    block = np.array([[[2, 1, 0, 7, 5_000_000]]], np.int64)  # beyond the dense table
    src = LookupVolumeSource(open_input_array(tmp_path, block), table, missing="keep")
    np.testing.assert_array_equal(src.read(0), [[[12, 11, 0, 7, 5_000_000]]])


def test_lookup_table_errors_and_formats(tmp_path: Path) -> None:
    labels = open_input_array(tmp_path, np.zeros((2, 2, 2), np.int32))
    with pytest.raises(FormatError, match="maps id 3 to both"):
        LookupVolumeSource(labels, np.array([[3, 1], [3, 2]]))
    with pytest.raises(ParameterError):
        LookupVolumeSource(labels, np.array([1, 2, 3]))
    floats = open_input_array(tmp_path, np.zeros((2, 2, 2), np.float32), "f.npy")
    with pytest.raises(ParameterError, match="integer labels"):
        LookupVolumeSource(floats, np.array([[1, 2]]))
    table = np.array([[5, 50], [1, 10], [2, 10]])
    np.savetxt(tmp_path / "t.csv", table, delimiter=",", fmt="%d", header="old,new")
    np.save(tmp_path / "t.npy", table)
    _h5(tmp_path / "t.h5", transforms=table)
    for spec in (tmp_path / "t.csv", tmp_path / "t.npy", f"{tmp_path / 't.h5'}:transforms"):
        np.testing.assert_array_equal(read_lookup_table(spec), table)
    np.save(tmp_path / "bad.npy", np.zeros((4, 3), np.int64))
    with pytest.raises(FormatError, match=r"\(N, 2\)"):
        read_lookup_table(tmp_path / "bad.npy")


def open_input_array(folder: Path, arr: np.ndarray, name: str = "a.npy") -> VolumeSource:
    np.save(folder / name, arr)
    return open_input(folder / name)


# --------------------------------------------------------------------------- real data


def test_medulla_png_stack_in_file_order(testdata: Path) -> None:
    folder = testdata / "fibsem-medulla" / "grayscale_maps"
    src = open_input(folder)
    assert src.levels[0].shape == (250, 250, 250) and src.dtype == np.uint8
    for i in (0, 1, 137, 249):
        want = iio.imread(folder / f"iso.{2600 + i}.png")
        np.testing.assert_array_equal(src.read(0, (slice(i, i + 1),))[0], want)


def test_medulla_bodies_cover_every_supervoxel(testdata: Path) -> None:
    """The data decides the missing-id policy: every supervoxel id is in ``transforms``."""
    gz = testdata / "fibsem-medulla" / "groundtruth.h5.gz"
    with imp.import_hdf5(gz, "stack") as stack:
        ids = np.unique(stack.read(0))
    table = read_lookup_table(f"{gz}:transforms")
    assert np.isin(ids, table[:, 0]).all()
    assert table[table[:, 0] == 0, 1].tolist() == [0]  # background stays background


# --------------------------------------------------------------------------- conformance
# Every importer passes the shared VolumeSource conformance tests; the reference
# arrays come from the independent readers.


class TestTiffConformance(VolumeSourceTests):
    @pytest.fixture
    def case(self, tmp_path: Path) -> Case:
        tifffile.imwrite(tmp_path / "c.tif", _volume(np.uint16, (9, 40, 30)), tile=(16, 16))
        return open_input(tmp_path / "c.tif"), [tifffile.imread(tmp_path / "c.tif")]


class TestSliceFolderConformance(VolumeSourceTests):
    @pytest.fixture
    def case(self, tmp_path: Path) -> Case:
        names = [f"s{i}.png" for i in range(9)]
        _write_slices(tmp_path / "s", _volume(np.uint8, (9, 40, 30)), names)
        reference = np.stack([iio.imread(tmp_path / "s" / n) for n in names])
        return imp.import_slices(tmp_path / "s", cache_bytes=2 * 40 * 30), [reference]


class TestNpyConformance(VolumeSourceTests):
    @pytest.fixture
    def case(self, tmp_path: Path) -> Case:
        np.save(tmp_path / "c.npy", RNG.normal(size=(9, 40, 30)).astype(np.float32))
        return open_input(tmp_path / "c.npy"), [np.load(tmp_path / "c.npy")]


class TestGzipHdf5Conformance(VolumeSourceTests):
    @pytest.fixture
    def case(self, tmp_path: Path) -> Iterator[Case]:
        _h5(tmp_path / "c.h5", data=_volume(np.int32, (9, 40, 30)))
        (tmp_path / "c.h5.gz").write_bytes(gzip.compress((tmp_path / "c.h5").read_bytes()))
        with h5py.File(tmp_path / "c.h5", "r") as f:
            reference = f["data"][...]
        src = imp.import_hdf5(tmp_path / "c.h5.gz", "data", cache_dir=tmp_path / "cache")
        yield src, [reference]
        src.close()


class TestLookupConformance(VolumeSourceTests):
    @pytest.fixture
    def case(self, tmp_path: Path) -> Case:
        labels = RNG.integers(0, 50, size=(9, 40, 30)).astype(np.uint16)
        table = np.stack([np.arange(0, 50, 2), RNG.integers(0, 2**40, 25)], axis=1)
        src = LookupVolumeSource(open_input_array(tmp_path, labels), table)
        assert src.dtype == np.uint64
        return src, [_dense_lookup(labels, table).astype(np.uint64)]
