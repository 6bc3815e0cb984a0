"""Reading OME-Zarr written by other tools (ome-zarr-py), lazily, with units in µm."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
import zarr.storage
from ome_zarr.data import create_zarr
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.io import parse_url
from ome_zarr.reader import Label, Multiscales, Reader

from analysis.errors import ChunkError, FormatError, ParameterError
from analysis.io import list_labels, open_labels, open_volume, space_unit_to_um
from tests.analysis.io._support import RecordingStore, serve_directory, write_with_ome_zarr

VERSIONS = ["0.4", "0.5"]


def _data(shape: tuple[int, ...] = (16, 40, 48), seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)


@pytest.fixture(params=VERSIONS)
def omz_store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str, np.ndarray]:
    """An image with one label image, written by ome-zarr-py in nanometres."""
    data = _data()
    labels = (data > 128).astype(np.uint32) * 7
    path = write_with_ome_zarr(
        tmp_path / "omz.zarr",
        data,
        version=request.param,
        scale={"z": 30.0, "y": 8.0, "x": 8.0},
        units={"z": "nanometer", "y": "nanometer", "x": "nanometer"},
        labels={"mask": labels},
        chunks=(8, 16, 16),
    )
    return path, request.param, data


def _ome_zarr_nodes(path: Path, version: str) -> list[object]:
    fmt = FormatV04() if version == "0.4" else FormatV05()
    return list(Reader(parse_url(str(path), fmt=fmt))())


def test_reads_ome_zarr_py_image(omz_store: tuple[Path, str, np.ndarray]) -> None:
    path, version, data = omz_store
    src = open_volume(path)
    assert src.ngff_version == version
    assert src.zarr_format == (2 if version == "0.4" else 3)
    assert src.axes == ("z", "y", "x")
    assert src.units == ("nanometer",) * 3
    # ome-zarr-py's own reader gives the reference levels and transformations.
    image = next(n for n in _ome_zarr_nodes(path, version) if Multiscales in map(type, n.specs))  # type: ignore[attr-defined]
    assert len(src.levels) == len(image.data)  # type: ignore[attr-defined]
    for k, (level, ref, transforms) in enumerate(
        zip(src.levels, image.data, image.metadata["coordinateTransformations"], strict=True)  # type: ignore[attr-defined]
    ):
        assert level.shape == ref.shape
        scale = next(t["scale"] for t in transforms if t["type"] == "scale")
        trans = next(t["translation"] for t in transforms if t["type"] == "translation")
        np.testing.assert_allclose(level.scale, np.asarray(scale) * 1e-3)  # nm -> µm
        np.testing.assert_allclose(level.translation, np.asarray(trans) * 1e-3)
        np.testing.assert_array_equal(src.read(k), np.asarray(ref))
    np.testing.assert_array_equal(src.read(0), data)
    assert src.levels[0].scale_um == pytest.approx((0.03, 0.008, 0.008))


def test_reads_ome_zarr_py_labels(omz_store: tuple[Path, str, np.ndarray]) -> None:
    path, version, data = omz_store
    assert list_labels(path) == ["mask"]
    src = open_volume(path)
    assert src.label_names == ("mask",)
    lab = open_labels(path, "mask")
    assert lab.is_label and lab.ngff_version == version
    node = next(n for n in _ome_zarr_nodes(path, version) if Label in map(type, n.specs))  # type: ignore[attr-defined]
    np.testing.assert_array_equal(lab.read(0), np.asarray(node.data[0]))  # type: ignore[attr-defined]
    np.testing.assert_array_equal(lab.read(0), (data > 128).astype(np.uint32) * 7)
    assert lab.dtype == np.uint32
    with pytest.raises(FormatError, match=r"no label image 'cells'.*available: mask"):
        src.open_labels("cells")


@pytest.mark.parametrize("version", VERSIONS)
def test_reads_ome_zarr_coins(tmp_path: Path, version: str) -> None:
    """`ome_zarr create --method=coins`: a 2D image with labels, no units."""
    fmt = FormatV04() if version == "0.4" else FormatV05()
    create_zarr(str(tmp_path / "coins.zarr"), fmt=fmt)
    src = open_volume(tmp_path / "coins.zarr")
    group = zarr.open_group(str(tmp_path / "coins.zarr"), mode="r")
    s0 = np.asarray(group["s0"][...])
    assert s0.ndim == 2
    # A 2D image gets a virtual z of length 1.
    assert src.axes == ("z", "y", "x")
    assert src.levels[0].shape == (1, *s0.shape)
    np.testing.assert_array_equal(src.read(0)[0], s0)
    np.testing.assert_array_equal(
        src.read(1, (slice(0, 1), slice(10, 50), slice(3, 9)))[0], group["s1"][10:50, 3:9]
    )
    assert src.units == (None, None, None)
    assert src.label_names == ("coins",)
    lab = src.open_labels("coins")
    np.testing.assert_array_equal(lab.read(0)[0], group["labels/coins/s0"][...])


@pytest.mark.parametrize("version", VERSIONS)
def test_time_and_channel_axes(tmp_path: Path, version: str) -> None:
    data = np.random.default_rng(2).integers(0, 1000, (3, 2, 8, 16, 16), dtype=np.uint16)
    path = write_with_ome_zarr(
        tmp_path / "tc.zarr",
        data,
        version=version,
        axes="tczyx",
        scale={"t": 2.0, "c": 1.0, "z": 1.0, "y": 0.5, "x": 0.5},
        units={"t": "minute", "z": "millimeter", "y": "millimeter", "x": "millimeter"},
    )
    src = open_volume(path)
    assert src.axes == tuple("tczyx")
    np.testing.assert_array_equal(src.read(0), data)
    np.testing.assert_array_equal(
        src.read(0, (slice(1, 2), slice(1, 2), slice(2, 5))), data[1:2, 1:2, 2:5]
    )
    # minutes -> seconds, millimetres -> micrometres
    assert src.levels[0].scale == pytest.approx((120.0, 1.0, 1000.0, 500.0, 500.0))


@pytest.mark.parametrize(
    ("unit", "um"),
    [
        ("nanometer", 1e-3),
        ("angstrom", 1e-4),
        ("millimeter", 1e3),
        ("meter", 1e6),
        ("micrometer", 1.0),
        ("picometer", 1e-6),
        ("centimeter", 1e4),
        ("micron", 1.0),
        ("inch", 25400.0),
    ],
)
def test_unit_conversion(unit: str, um: float) -> None:
    assert space_unit_to_um(unit) == pytest.approx(um, rel=1e-12)


def _set_attr(path: Path, version: str, edit: object) -> None:
    meta = path / ("zarr.json" if version == "0.5" else ".zattrs")
    doc = json.loads(meta.read_text())
    body = doc["attributes"]["ome"] if version == "0.5" else doc
    edit(body)  # type: ignore[operator]
    meta.write_text(json.dumps(doc))


@pytest.mark.parametrize("version", VERSIONS)
def test_unknown_unit_is_a_format_error(tmp_path: Path, version: str) -> None:
    path = write_with_ome_zarr(tmp_path / "u.zarr", _data((4, 8, 8)), version=version)

    def edit(body: dict) -> None:  # type: ignore[type-arg]
        body["multiscales"][0]["axes"][1]["unit"] = "furlong"

    _set_attr(path, version, edit)
    with pytest.raises(FormatError, match=r"unknown unit 'furlong' on space axis 'y'"):
        open_volume(path)


def test_metadata_only_on_open_and_only_touched_chunks_on_read(tmp_path: Path) -> None:
    data = _data((32, 32, 32))
    path = write_with_ome_zarr(tmp_path / "c.zarr", data, version="0.5", chunks=(8, 8, 8))
    store = RecordingStore(zarr.storage.LocalStore(path, read_only=True))
    src = open_volume(store)
    assert src.levels[0].chunks == (8, 8, 8)
    assert store.chunk_keys() == []  # opening reads metadata only
    # Region z 6..10 spans chunk rows 0 and 1; y, x inside chunk 1.
    got = src.read(0, (slice(6, 10), slice(9, 15), slice(8, 16)))
    np.testing.assert_array_equal(got, data[6:10, 9:15, 8:16])
    assert sorted(store.chunk_keys()) == ["s0/c/0/1/1", "s0/c/1/1/1"]


@pytest.mark.network
def test_http_reads_only_metadata_then_touched_chunks(tmp_path: Path) -> None:
    data = _data((32, 32, 32))
    write_with_ome_zarr(tmp_path / "h.zarr", data, version="0.4", chunks=(16, 16, 16))
    with serve_directory(tmp_path) as (url, requests):
        src = open_volume(f"{url}/h.zarr")
        assert src.ngff_version == "0.4" and src.label_names == ()
        assert not [r for r in requests if re.search(r"/s\d+/\d+/\d+/\d+$", r)]
        requests.clear()
        np.testing.assert_array_equal(src.read(0, (slice(0, 4),) * 3), data[:4, :4, :4])
        chunks = [r for r in requests if re.search(r"/s\d+/\d+/\d+/\d+$", r)]
        assert chunks == ["/h.zarr/s0/0/0/0"]


@pytest.mark.parametrize("version", VERSIONS)
def test_missing_chunk_reads_as_fill_value(tmp_path: Path, version: str) -> None:
    data = _data((16, 16, 16)) | 1  # no zeros, so the fill value is visible
    path = write_with_ome_zarr(tmp_path / "m.zarr", data, version=version, chunks=(8, 8, 8))
    key = "s0/c/1/0/1" if version == "0.5" else "s0/1/0/1"
    (path / key).unlink()
    fill = zarr.open_array(str(path / "s0"), mode="r").fill_value
    got = open_volume(path).read(0)
    expected = data.copy()
    expected[8:16, 0:8, 8:16] = fill
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("version", "separator", "key"),
    [("0.5", "/", "s0/c/1/0/1"), ("0.4", "/", "s0/1/0/1"), ("0.4", ".", "0/1.0.1")],
)
def test_corrupt_chunk_names_its_key(
    tmp_path: Path, version: str, separator: str, key: str
) -> None:
    data = _data((16, 16, 16))
    if separator == "/":
        path = write_with_ome_zarr(tmp_path / "k.zarr", data, version=version, chunks=(8, 8, 8))
    else:
        # zarr v2 with "." separators and level path "0", as older writers did.
        path = tmp_path / "k.zarr"
        group = zarr.open_group(str(path), mode="w", zarr_format=2)
        arr = group.create_array(
            "0", shape=data.shape, chunks=(8, 8, 8), dtype=data.dtype,
            chunk_key_encoding={"name": "v2", "separator": "."},
        )  # fmt: skip
        arr[...] = data
        axes = [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
        ct = [{"type": "scale", "scale": [1.0, 1.0, 1.0]}]
        group.attrs["multiscales"] = [
            {"version": "0.4", "axes": axes, "datasets": [{"path": "0", "coordinateTransformations": ct}]}
        ]  # fmt: skip
    (path / key).write_bytes(b"this is not a compressed chunk")
    src = open_volume(path)
    with pytest.raises(ChunkError) as info:
        src.read(0)
    assert info.value.key == key
    assert key in str(info.value) and "\n" not in str(info.value)
    # Regions that avoid the corrupt chunk still read.
    np.testing.assert_array_equal(src.read(0, (slice(0, 8),)), data[:8])
    assert src.chunk_key(0, (1, 0, 1)) == key


def test_bad_inputs_are_format_errors(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="does not exist"):
        open_volume(tmp_path / "nope.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(FormatError, match="not a zarr store"):
        open_volume(tmp_path / "plain")
    (tmp_path / "file.txt").write_text("hello")
    with pytest.raises(FormatError, match="not a zarr store"):
        open_volume(tmp_path / "file.txt")
    zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=3)
    with pytest.raises(FormatError, match="no multiscales"):
        open_volume(tmp_path / "g.zarr")
    path = write_with_ome_zarr(tmp_path / "ok.zarr", _data((4, 8, 8)), version="0.5")
    with pytest.raises(FormatError, match="zarr array"):
        open_volume(path / "s0")
    with pytest.raises(ParameterError, match="level_hint"):
        open_volume(path, level_hint=7)
    shutil.rmtree(path / "s1")
    with pytest.raises(FormatError, match=r"datasets\[1\]\.path 's1' does not exist"):
        open_volume(path)


def test_level_hint_and_labels_path(tmp_path: Path) -> None:
    data = _data((8, 16, 16))
    path = write_with_ome_zarr(
        tmp_path / "l.zarr", data, version="0.4", labels={"a": (data > 9).astype(np.uint8)}
    )
    assert open_volume(path, level_hint=-1).level_hint == 2
    # A label image opens directly by its path too.
    lab = open_volume(path / "labels" / "a")
    assert lab.is_label and lab.label_names == ()
    np.testing.assert_array_equal(lab.read(0), (data > 9).astype(np.uint8))


def test_bioformats2raw_layout(tmp_path: Path) -> None:
    root = tmp_path / "b2r.zarr"
    zarr.open_group(str(root), mode="w", zarr_format=2).attrs["bioformats2raw.layout"] = 3
    data = _data((4, 8, 8))
    write_with_ome_zarr(root / "0", data, version="0.4")
    src = open_volume(root)
    assert src.url.endswith("/0")
    np.testing.assert_array_equal(src.read(0), data)


@pytest.mark.network
def test_bad_urls_are_format_errors(tmp_path: Path) -> None:
    with serve_directory(tmp_path) as (url, _requests):
        with pytest.raises(FormatError, match="not a zarr store"):
            open_volume(f"{url}/missing.zarr")
    # Nothing listens on port 1 of the loopback interface.
    with pytest.raises(FormatError, match="cannot open http://127.0.0.1:1/"):
        open_volume("http://127.0.0.1:1/x.zarr")


def test_transient_read_error_is_still_a_chunk_error(tmp_path: Path) -> None:
    """An error that does not reproduce chunk by chunk (a network hiccup) stays a ChunkError."""
    path = write_with_ome_zarr(tmp_path / "t.zarr", _data((8, 8, 8)), version="0.5")
    src = open_volume(path)
    real = src._arrays[0]
    calls = {"n": 0}

    class Flaky:
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        def __getitem__(self, key: object) -> object:
            calls["n"] += 1
            if calls["n"] == 1:
                raise TimeoutError("connection reset")
            return real[key]

    src._arrays[0] = Flaky()  # type: ignore[assignment]
    src._chunk_readers[0] = None  # the general zarr path (the one-chunk path: test_chunks.py)
    with pytest.raises(ChunkError, match="connection reset") as info:
        src.read(0)
    assert info.value.key == ""
    assert "level s0" in str(info.value)
