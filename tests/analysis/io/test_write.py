"""Writing OME-Zarr: round trips through ome-zarr-py, pyramids checked against scikit-image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.io import parse_url
from ome_zarr.reader import Label, Multiscales, Reader
from skimage.measure import block_reduce
from skimage.transform import downscale_local_mean

from analysis.errors import FormatError, ParameterError
from analysis.io import open_labels, open_volume, write_labels, write_ngff
from analysis.volume import ArrayVolumeSource, FunctionVolumeSource

VERSIONS = ["0.4", "0.5"]


def _image(shape: tuple[int, ...] = (32, 48, 64), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _omz_nodes(path: Path, version: str) -> list[Any]:
    fmt = FormatV04() if version == "0.4" else FormatV05()
    return list(Reader(parse_url(str(path), fmt=fmt))())


def _rounded_mean(a: np.ndarray) -> np.ndarray:
    """Independent reference: scikit-image's 2x local mean, rounded half to even."""
    return np.rint(downscale_local_mean(a.astype(np.float64), 2)).astype(a.dtype)


@pytest.mark.parametrize("version", VERSIONS)
def test_round_trip_through_ome_zarr_py(tmp_path: Path, version: str) -> None:
    data = _image()
    path = tmp_path / "w.zarr"
    write_ngff(
        data, path, version=version, scale_um=(0.04, 0.01, 0.01), unit="nanometer",  # type: ignore[arg-type]
        chunks=(16, 16, 16), name="em",
    )  # fmt: skip
    nodes = _omz_nodes(path, version)
    image = next(n for n in nodes if Multiscales in map(type, n.specs))
    assert image.metadata["name"] == "em"
    assert [a["name"] for a in image.metadata["axes"]] == ["z", "y", "x"]
    assert {a["unit"] for a in image.metadata["axes"]} == {"nanometer"}
    # Halve until every axis fits in one 16-chunk.
    assert [tuple(d.shape) for d in image.data] == [(32, 48, 64), (16, 24, 32), (8, 12, 16)]
    np.testing.assert_array_equal(np.asarray(image.data[0]), data)
    prev = data
    for k, (arr, transforms) in enumerate(
        zip(image.data, image.metadata["coordinateTransformations"], strict=True)
    ):
        if k:
            expected = _rounded_mean(prev)
            np.testing.assert_array_equal(np.asarray(arr), expected)
            prev = expected
        scale = next(t["scale"] for t in transforms if t["type"] == "scale")
        trans = next(t["translation"] for t in transforms if t["type"] == "translation")
        np.testing.assert_allclose(scale, np.array([40.0, 10.0, 10.0]) * 2**k)  # nanometres
        # A mean of 2^k voxels is centred (2^k - 1) / 2 voxels in.
        np.testing.assert_allclose(trans, np.array([40.0, 10.0, 10.0]) * (2**k - 1) / 2)
    # Chunks and zarr format as asked.
    group = zarr.open_group(str(path), mode="r")
    assert group.metadata.zarr_format == (2 if version == "0.4" else 3)
    assert group["s0"].chunks == (16, 16, 16)


@pytest.mark.parametrize("version", VERSIONS)
def test_metadata_layout_per_version(tmp_path: Path, version: str) -> None:
    path = tmp_path / "m.zarr"
    write_ngff(_image((8, 8, 8)), path, version=version, scale_um=(1, 1, 1))  # type: ignore[arg-type]
    if version == "0.4":
        attrs = json.loads((path / ".zattrs").read_text())
        assert attrs["multiscales"][0]["version"] == "0.4"
        assert json.loads((path / "s0" / ".zarray").read_text())["dimension_separator"] == "/"
    else:
        attrs = json.loads((path / "zarr.json").read_text())["attributes"]
        assert attrs["ome"]["version"] == "0.5"
        assert "version" not in attrs["ome"]["multiscales"][0]
        meta = json.loads((path / "s0" / "zarr.json").read_text())
        assert meta["dimension_names"] == ["z", "y", "x"]


def test_pyramid_equals_skimage_for_float_and_uint16(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.uint16):
        data = (rng.random((16, 32, 32)) * 1000).astype(dtype)
        path = tmp_path / f"{np.dtype(dtype).name}.zarr"
        write_ngff(data, path, scale_um=(1, 1, 1), chunks=(8, 8, 8))
        src = open_volume(path)
        prev = data
        for k in range(1, len(src.levels)):
            got = src.read(k)
            if dtype == np.float32:
                expected = downscale_local_mean(prev.astype(np.float64), 2).astype(np.float32)
            else:
                expected = _rounded_mean(prev)
            np.testing.assert_allclose(got, expected, rtol=1e-6)
            prev = got


def test_odd_sizes_use_the_mean_of_existing_voxels(tmp_path: Path) -> None:
    data = _image((9, 17, 5))
    write_ngff(data, tmp_path / "o.zarr", scale_um=(1, 1, 1), chunks=(4, 4, 4), n_levels=2)
    src = open_volume(tmp_path / "o.zarr")
    assert src.levels[1].shape == (5, 9, 3)
    lvl1 = src.read(1)
    # Inner voxels: the plain 2x2x2 block mean (skimage's block_reduce).
    inner = block_reduce(data[:8, :16, :4].astype(np.float64), (2, 2, 2), np.mean)
    np.testing.assert_array_equal(lvl1[:4, :8, :2], np.rint(inner).astype(np.uint8))
    # The corner voxel covers the single last voxel in every axis.
    assert lvl1[4, 8, 2] == data[8, 16, 4]
    # An edge voxel in z only: mean of the 2x2 block of the last plane.
    assert lvl1[4, 0, 0] == np.rint(data[8, 0:2, 0:2].astype(np.float64).mean())


@pytest.mark.parametrize(
    ("axes", "shape"),
    [("tzyx", (3, 8, 16, 16)), ("czyx", (2, 8, 16, 16)), ("tczyx", (2, 2, 8, 8, 8))],
)
def test_time_and_channel_axes_are_not_downsampled(
    tmp_path: Path, axes: str, shape: tuple[int, ...]
) -> None:
    data = _image(shape)
    src = ArrayVolumeSource(data, scale_um=(1.0, 0.5, 0.5), axes=axes)
    write_ngff(src, tmp_path / "tc.zarr", chunks=(4, 4, 4))
    back = open_volume(tmp_path / "tc.zarr")
    assert back.axes == tuple(axes)
    np.testing.assert_array_equal(back.read(0), data)
    lvl1 = back.read(1)
    assert lvl1.shape == shape[:-3] + tuple(s // 2 for s in shape[-3:])
    for idx in np.ndindex(*shape[:-3]):
        np.testing.assert_array_equal(lvl1[idx], _rounded_mean(data[idx]))
    assert zarr.open_array(str(tmp_path / "tc.zarr" / "s0"), mode="r").chunks[: len(axes) - 3] == (
        1,
    ) * (len(axes) - 3)


def test_writer_reads_the_source_block_by_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole volume is never requested at once (memory stays bounded)."""
    import analysis.io._write as w

    # A block budget of 4 chunks (uint8 blocks are budgeted at 8 bytes per voxel).
    monkeypatch.setattr(w, "_BLOCK_BYTES", 4 * 32**3 * 8)
    shape = (64, 256, 256)
    requested: list[int] = []
    starts: list[tuple[int, ...]] = []

    def fn(level: int, region: tuple[slice, ...]) -> np.ndarray:
        requested.append(int(np.prod([s.stop - s.start for s in region])))
        starts.append(tuple(s.start for s in region))
        z, y, x = np.meshgrid(*(np.arange(s.start, s.stop) for s in region), indexing="ij")
        return ((z + y + x) % 256).astype(np.uint8)

    source = FunctionVolumeSource(shape, fn, chunks=(32, 32, 32))
    write_ngff(source, tmp_path / "f.zarr", chunks=(32, 32, 32), scale_um=(1, 1, 1))
    assert sum(requested) == int(np.prod(shape))  # each voxel read exactly once
    assert max(requested) <= 4 * 32**3
    assert all(s % 32 == 0 for start in starts for s in start)  # chunk aligned
    back = open_volume(tmp_path / "f.zarr")
    np.testing.assert_array_equal(
        back.read(0, (slice(60, 64), slice(250, 256))),
        fn(0, (slice(60, 64), slice(250, 256), slice(0, 256))),
    )
    assert back.levels[-1].shape == (8, 32, 32)  # every axis fits in one chunk


def test_default_chunks_and_levels(tmp_path: Path) -> None:
    data = _image((70, 130, 140))
    write_ngff(data, tmp_path / "d.zarr", scale_um=(1, 1, 1))
    src = open_volume(tmp_path / "d.zarr")
    assert src.levels[0].chunks == (64, 64, 64)
    assert [lev.shape for lev in src.levels] == [(70, 130, 140), (35, 65, 70), (18, 33, 35)]


@pytest.mark.parametrize("version", VERSIONS)
def test_labels_round_trip_and_stride_pyramid(tmp_path: Path, version: str) -> None:
    img = _image((16, 32, 32))
    path = tmp_path / "l.zarr"
    write_ngff(img, path, version=version, scale_um=(0.1, 0.05, 0.05), chunks=(8, 8, 8))  # type: ignore[arg-type]
    labels = (np.random.default_rng(5).integers(0, 50, img.shape)).astype(np.uint32)
    write_labels(path, "cells", labels, colors={3: (255, 0, 0, 255)})
    write_labels(path, "other", labels > 25)
    # ome-zarr-py finds both label images, their colours and pixels.
    nodes = _omz_nodes(path, version)
    found = {n.metadata["name"]: n for n in nodes if Label in map(type, n.specs)}
    assert set(found) == {"cells", "other"}
    np.testing.assert_array_equal(np.asarray(found["cells"].data[0]), labels)
    assert found["cells"].metadata["color"] == {3: [1.0, 0.0, 0.0, 1.0]}
    lab = open_labels(path, "cells")
    assert open_volume(path).label_names == ("cells", "other")
    assert lab.label_colors == {3: (255, 0, 0, 255)}
    assert len(lab.levels) == len(open_volume(path).levels)
    for k in range(len(lab.levels)):
        # Stride rule: never invents a label value; equals the [::2] subsample.
        np.testing.assert_array_equal(
            lab.read(k), labels[tuple(slice(None, None, 2**k) for _ in range(3))]
        )
        assert set(np.unique(lab.read(k))) <= set(np.unique(labels))
        assert lab.levels[k].scale == pytest.approx(open_volume(path).levels[k].scale)


def test_labels_errors(tmp_path: Path) -> None:
    path = tmp_path / "e.zarr"
    write_ngff(_image((8, 16, 16)), path, scale_um=(1, 1, 1))
    with pytest.raises(ParameterError, match="integer dtype"):
        write_labels(path, "f", np.zeros((8, 16, 16), np.float32))
    with pytest.raises(ParameterError, match="axis y differs"):
        write_labels(path, "s", np.zeros((8, 15, 16), np.uint8))
    with pytest.raises(ParameterError, match="without '/'"):
        write_labels(path, "a/b", np.zeros((8, 16, 16), np.uint8))
    write_labels(path, "x", np.ones((8, 16, 16), np.uint8))
    with pytest.raises(FormatError, match="already exists"):
        write_labels(path, "x", np.zeros((8, 16, 16), np.uint8))
    write_labels(path, "x", np.full((8, 16, 16), 2, np.uint8), overwrite=True)
    assert open_labels(path, "x").read(0).max() == 2
    assert open_volume(path).label_names == ("x",)


def test_write_errors_and_overwrite(tmp_path: Path) -> None:
    data = _image((8, 8, 8))
    with pytest.raises(ParameterError, match="scale_um"):
        write_ngff(data, tmp_path / "a.zarr")
    with pytest.raises(ParameterError, match="3D"):
        write_ngff(np.zeros((8, 8)), tmp_path / "a.zarr", scale_um=(1, 1, 1))
    with pytest.raises(FormatError, match="unknown unit 'parsecs'"):
        write_ngff(data, tmp_path / "a.zarr", scale_um=(1, 1, 1), unit="parsecs")
    with pytest.raises(FormatError, match="unsupported NGFF version"):
        write_ngff(data, tmp_path / "a.zarr", scale_um=(1, 1, 1), version="0.3")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="chunks"):
        write_ngff(data, tmp_path / "a.zarr", scale_um=(1, 1, 1), chunks=(0, 4, 4))
    with pytest.raises(ParameterError, match="n_levels"):
        write_ngff(data, tmp_path / "a.zarr", scale_um=(1, 1, 1), n_levels=9)
    write_ngff(data, tmp_path / "a.zarr", scale_um=(1, 1, 1))
    with pytest.raises(FormatError, match="already exists"):
        write_ngff(data, tmp_path / "a.zarr", scale_um=(1, 1, 1))
    write_ngff(data + 1, tmp_path / "a.zarr", scale_um=(2, 2, 2), overwrite=True)
    back = open_volume(tmp_path / "a.zarr")
    np.testing.assert_array_equal(back.read(0), data + 1)
    assert back.levels[0].scale == (2.0, 2.0, 2.0)
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "precious.txt").write_text("do not delete")
    with pytest.raises(FormatError, match="not a zarr store"):
        write_ngff(data, tmp_path / "keep", scale_um=(1, 1, 1), overwrite=True)
    assert (tmp_path / "keep" / "precious.txt").exists()


def test_source_voxel_size_and_zarr_source_round_trip(tmp_path: Path) -> None:
    data = _image((8, 16, 16))
    write_ngff(data, tmp_path / "a.zarr", scale_um=(0.3, 0.1, 0.1), unit="nanometer", version="0.4")
    # Re-write a ZarrVolumeSource (0.4, nm) as 0.5 in µm: voxel size carries over.
    write_ngff(open_volume(tmp_path / "a.zarr"), tmp_path / "b.zarr", unit="micrometer")
    back = open_volume(tmp_path / "b.zarr")
    assert back.units == ("micrometer",) * 3
    assert back.levels[0].scale == pytest.approx((0.3, 0.1, 0.1))
    np.testing.assert_array_equal(back.read(0), data)


def test_progress_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_ngff(_image((8, 8, 8)), tmp_path / "p.zarr", scale_um=(1, 1, 1), progress=True)
    assert "writing OME-Zarr" in capsys.readouterr().err
