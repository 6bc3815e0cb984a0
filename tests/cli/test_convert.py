"""``vrscope convert``, in-process, read back with independent readers.

References: imageio (PNG slices), h5py + gzip (ground truth), tifffile, np.load,
zarr-python (raw arrays) and ome-zarr-py's Reader (NGFF metadata and pyramid).
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Any

import h5py
import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import zarr
from ome_zarr.io import parse_url
from ome_zarr.reader import Label, Reader

from analysis.io import open_volume
from tests.analysis.io._support import write_with_ome_zarr
from vrscope.cli import main

MEDULLA = "fibsem-medulla"


def _ome_nodes(path: Path) -> list[Any]:
    """ome-zarr-py's view of a store: the image node first, then its label nodes."""
    return list(Reader(parse_url(str(path)))())


def _scale0(node: Any) -> list[float]:
    first = node.metadata["coordinateTransformations"][0]
    return next(t["scale"] for t in first if t["type"] == "scale")


def _convert(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main(["convert", *(str(a) for a in args), "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_user_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_medulla_converts_in_one_call(
    testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = testdata / MEDULLA
    gt = root / "groundtruth.h5.gz"
    out = tmp_path / "medulla.zarr"
    code, stdout, err = _convert(
        capsys,
        root / "grayscale_maps",
        out,
        "--voxel-size", 0.01, 0.01, 0.01,
        "--unit", "micrometer",
        "--labels-from", f"{gt}:stack",
        "--labels-lookup", f"{gt}:transforms",
        "--labels-name", "bodies",
    )  # fmt: skip
    assert code == 0, err
    assert "medulla.zarr" in stdout

    # Level 0 equals the PNG stack exactly, slices in file-number order.
    pngs = np.stack(
        [iio.imread(root / "grayscale_maps" / f"iso.{n}.png") for n in range(2600, 2850)]
    )
    group = zarr.open_group(out, mode="r")
    np.testing.assert_array_equal(group["s0"][...], pngs)

    # ome-zarr-py sees a pyramid with 0.01 µm voxels and the bodies label image.
    nodes = _ome_nodes(out)
    image = nodes[0]
    assert [a["unit"] for a in image.metadata["axes"]] == ["micrometer"] * 3
    np.testing.assert_allclose(_scale0(image), [0.01, 0.01, 0.01])
    assert len(image.data) >= 2
    np.testing.assert_array_equal(np.asarray(image.data[0]), pngs)
    np.testing.assert_allclose(open_volume(out).levels[0].scale_um, (0.01, 0.01, 0.01))

    # Bodies = transforms[stack], computed here with gzip + h5py + numpy.
    raw = tmp_path / "gt.h5"
    with gzip.open(gt, "rb") as src, open(raw, "wb") as dst:
        shutil.copyfileobj(src, dst)
    with h5py.File(raw, "r") as f:
        stack, transforms = f["stack"][...], f["transforms"][...]
    # The table lists every supervoxel once, in order, so row i maps supervoxel i.
    np.testing.assert_array_equal(transforms[:, 0], np.arange(len(transforms)))
    bodies = transforms[:, 1][stack]
    got = group["labels/bodies/s0"][...]
    np.testing.assert_array_equal(got, bodies)
    assert len(np.unique(got)) > 100  # really bodies, not a constant
    labels_node = next(
        n
        for n in _ome_nodes(out / "labels" / "bodies")
        if any(isinstance(s, Label) for s in n.specs)
    )
    np.testing.assert_array_equal(np.asarray(labels_node.data[0]), bodies)
    np.testing.assert_allclose(_scale0(labels_node), [0.01, 0.01, 0.01])


@pytest.mark.parametrize("ngff", ["0.4", "0.5"])
def test_nanometre_voxels_and_both_ngff_versions_read_by_ome_zarr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ngff: str
) -> None:
    rng = np.random.default_rng(5)
    data = rng.integers(0, 4000, size=(40, 36, 50), dtype=np.uint16)
    np.save(tmp_path / "v.npy", data)
    out = tmp_path / "v.zarr"
    code, _, err = _convert(
        capsys, tmp_path / "v.npy", out, "--voxel-size", 40, 10, 10, "--unit", "nanometer",
        "--ngff", ngff, "--chunks", 16, 16, 16,
    )  # fmt: skip
    assert code == 0, err
    zarr_format = 2 if ngff == "0.4" else 3
    assert zarr.open_group(out, mode="r").metadata.zarr_format == zarr_format
    image = _ome_nodes(out)[0]
    np.testing.assert_array_equal(np.asarray(image.data[0]), data)
    assert image.data[0].chunksize == (16, 16, 16)
    assert len(image.data) == 3  # 40 -> 20 -> 10 fits a 16 chunk
    assert [a["unit"] for a in image.metadata["axes"]] == ["nanometer"] * 3
    np.testing.assert_allclose(_scale0(image), [40, 10, 10])
    np.testing.assert_allclose(open_volume(out).levels[0].scale_um, (0.04, 0.01, 0.01))


def test_tiff_voxel_size_comes_from_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = np.random.default_rng(1).integers(0, 255, size=(6, 20, 24), dtype=np.uint8)
    tifffile.imwrite(
        tmp_path / "s.tif",
        data,
        imagej=True,
        resolution=(1 / 0.1, 1 / 0.1),
        metadata={"spacing": 0.3, "unit": "micron"},
    )
    out = tmp_path / "s.zarr"
    code, _, err = _convert(capsys, tmp_path / "s.tif", out, "--ngff", "0.4")
    assert code == 0, err
    image = _ome_nodes(out)[0]
    np.testing.assert_allclose(_scale0(image), [0.3, 0.1, 0.1], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(image.data[0]), tifffile.imread(tmp_path / "s.tif"))


def test_labels_from_hdf5_with_csv_lookup_keeping_missing_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(9)
    image = rng.integers(0, 255, size=(8, 16, 16), dtype=np.uint8)
    labels = rng.integers(0, 6, size=(8, 16, 16)).astype(np.uint16)
    np.save(tmp_path / "img.npy", image)
    with h5py.File(tmp_path / "seg.h5", "w") as f:
        f["seg"] = labels
    (tmp_path / "map.csv").write_text("# old,new\n1,100\n2,100\n3,7\n")
    out = tmp_path / "o.zarr"
    code, _, err = _convert(
        capsys, tmp_path / "img.npy", out, "--voxel-size", 1, 1, 1,
        "--labels-from", f"{tmp_path / 'seg.h5'}:seg", "--labels-lookup", tmp_path / "map.csv",
        "--labels-missing", "keep", "--labels-name", "cells",
    )  # fmt: skip
    assert code == 0, err
    expected = labels.astype(np.int64)
    for old, new in ((1, 100), (2, 100), (3, 7)):
        expected[labels == old] = new
    np.testing.assert_array_equal(zarr.open_group(out, mode="r")["labels/cells/s0"][...], expected)


def test_ome_zarr_input_changes_version_and_keeps_voxel_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = np.random.default_rng(3).integers(0, 60000, size=(12, 40, 36), dtype=np.uint16)
    src = write_with_ome_zarr(
        tmp_path / "in.zarr",
        data,
        version="0.5",
        scale={"z": 50.0, "y": 8.0, "x": 8.0},
        units={"z": "nanometer", "y": "nanometer", "x": "nanometer"},
    )
    out = tmp_path / "out.zarr"
    code, _, err = _convert(capsys, src, out, "--ngff", "0.4")
    assert code == 0, err
    assert zarr.open_group(out, mode="r").metadata.zarr_format == 2
    image = _ome_nodes(out)[0]
    np.testing.assert_array_equal(np.asarray(image.data[0]), data)
    np.testing.assert_allclose(_scale0(image), [0.05, 0.008, 0.008])  # written in µm


def _bad_cases(tmp_path: Path) -> list[tuple[list[object], tuple[str, ...]]]:
    np.save(tmp_path / "v.npy", np.zeros((4, 8, 8), np.uint8))
    np.save(tmp_path / "small.npy", np.zeros((4, 8, 7), np.int32))
    np.save(tmp_path / "float.npy", np.zeros((4, 8, 8), np.float32))
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["raw"] = np.zeros((4, 8, 8), np.uint8)
    (tmp_path / "bad.h5.gz").write_bytes(b"\x1f\x8b\x08\x00garbage that is not deflate")
    (tmp_path / "slices").mkdir()
    iio.imwrite(tmp_path / "slices" / "a1.png", np.zeros((8, 8), np.uint8))
    iio.imwrite(tmp_path / "slices" / "a2.png", np.zeros((8, 9), np.uint8))
    (tmp_path / "exists.zarr").mkdir()
    v, out, vs = tmp_path / "v.npy", tmp_path / "o.zarr", ["--voxel-size", 1, 1, 1]
    return [
        ([tmp_path / "missing.tif", out, *vs], ("missing.tif",)),
        ([v, out, "--voxel-size", 1, -1, 1], ("--voxel-size", "-1")),
        ([v, out, "--voxel-size", 0, 1, 1], ("--voxel-size",)),
        ([v, out], ("--voxel-size", "v.npy")),
        ([v, out, *vs, "--unit", "parsnip"], ("parsnip",)),
        ([f"{tmp_path / 'f.h5'}:nope", out, *vs], ("nope", "raw")),
        ([f"{tmp_path / 'bad.h5.gz'}:stack", out, *vs], ("corrupt gzip", "bad.h5.gz")),
        ([tmp_path / "slices", out, *vs], ("a2.png",)),
        ([v, out, *vs, "--labels-from", tmp_path / "small.npy"], ("shape",)),
        ([v, out, *vs, "--labels-from", tmp_path / "float.npy"], ("integers",)),
        ([v, out, *vs, "--labels-lookup", tmp_path / "map.csv"], ("--labels-from",)),
        ([v, tmp_path / "exists.zarr", *vs], ("exists.zarr", "--overwrite")),
        ([v, out, *vs, "--chunks", 0, 8, 8], ("--chunks",)),
        ([v, out, "--voxel-size", 1, 1], ("--voxel-size",)),
    ]


def test_bad_inputs_give_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for args, needles in _bad_cases(tmp_path):
        try:
            code, _, err = _convert(capsys, *args)
        except SystemExit as exc:  # argparse errors exit from inside main
            code, err = int(exc.code or 0), capsys.readouterr().err
        _assert_user_error(code, err, *needles)
        assert not (tmp_path / "o.zarr").exists()
