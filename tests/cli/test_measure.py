"""``vrscope measure`` and ``vrscope density`` in-process, against scikit-image / scikit-learn
on stores written by ome-zarr-py, and on the generated FIB-SEM sample's truth table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from skimage import draw, measure
from sklearn.neighbors import KernelDensity, NearestNeighbors

from analysis.io import truth_path, write_fibsem_sample, write_labels
from analysis.morphology import BASE_COLUMNS, INTENSITY_COLUMNS, PARENT_COLUMNS
from analysis.synthetic import fibsem_cell
from tests.analysis.io._support import write_with_ome_zarr
from vrscope.cli import main

SCALE = {"z": 0.5, "y": 0.25, "x": 0.25}  # µm, anisotropic


def _run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code, err, *words):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0]


@pytest.fixture(scope="module")
def blobs_store(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    shape = (24, 48, 48)
    lab = np.zeros(shape, np.uint32)
    for i in range(1, 30):
        e = draw.ellipsoid(*rng.integers(2, 5, 3))
        z, y, x = (int(rng.integers(0, s - d)) for s, d in zip(shape, e.shape, strict=True))
        lab[z : z + e.shape[0], y : y + e.shape[1], x : x + e.shape[2]][e] = i
    cell = np.zeros(shape, np.uint32)
    cell[:, :, :30] = 1
    image = rng.integers(0, 4000, shape).astype(np.uint16)
    path = write_with_ome_zarr(
        tmp_path_factory.mktemp("measure") / "blobs.zarr",
        image,
        version="0.5",
        scale=SCALE,
        units={a: "micrometer" for a in "zyx"},
        chunks=(8, 16, 16),
    )
    # Labels via vrscope's writer: ome-zarr-py's label writer leaves the voxel size at 1.
    write_labels(path, "blobs", lab, chunks=(8, 16, 16))
    write_labels(path, "cell", cell)
    write_labels(path, "empty", np.zeros(shape, np.uint16))
    return path, lab, image, cell


def test_measure_matches_regionprops_on_ome_zarr_py_store(blobs_store, tmp_path, capsys):
    path, lab, image, cell = blobs_store
    out = tmp_path / "blobs.csv"
    code, stdout, err = _run(
        capsys,
        "measure",
        str(path),
        "--labels",
        "blobs",
        "--image",
        "--parent",
        "cell",
        "--out",
        str(out),
    )
    assert code == 0, err
    assert "objects" in stdout
    table = pd.read_csv(out)
    assert list(table.columns) == [*BASE_COLUMNS, *INTENSITY_COLUMNS, *PARENT_COLUMNS]
    spacing = (SCALE["z"], SCALE["y"], SCALE["x"])
    ref = pd.DataFrame(
        measure.regionprops_table(
            lab.astype(np.int64),
            image,
            spacing=spacing,
            properties=["label", "area", "centroid", "intensity_mean", "intensity_max"],
        )
    )
    np.testing.assert_array_equal(table["label"], ref["label"])
    np.testing.assert_array_equal(table["volume_um3"], ref["area"])
    for ax, name in enumerate("zyx"):
        np.testing.assert_array_equal(table[f"centroid_{name}_um"], ref[f"centroid-{ax}"])
    np.testing.assert_allclose(table["mean_intensity"], ref["intensity_mean"], rtol=1e-12)
    np.testing.assert_array_equal(table["max_intensity"], ref["intensity_max"])
    assert table["fraction_of_parent"].notna().any()


def test_measure_parquet_and_binary_surface_equal_sample_truth(tmp_path, capsys):
    sample = fibsem_cell(96, seed=3)
    store = tmp_path / "cell.zarr"
    write_fibsem_sample(sample, store)
    truth = pd.read_csv(truth_path(store))
    out = tmp_path / "mito.parquet"
    code, _, err = _run(
        capsys,
        "measure",
        str(store),
        "--labels",
        "mitochondria",
        "--surface",
        "binary",
        "--out",
        str(out),
    )
    assert code == 0, err
    table = pd.read_parquet(out)
    ref = truth[truth["kind"] == "mitochondria"].reset_index(drop=True)
    np.testing.assert_array_equal(table["label"], ref["label"])
    np.testing.assert_array_equal(table["voxel_count"], ref["voxel_count"])
    np.testing.assert_allclose(table["volume_um3"], ref["volume_um3"], rtol=1e-12)
    np.testing.assert_allclose(table["centroid_x_um"], ref["centroid_x_um"], rtol=1e-12)
    # Same definition (marching cubes on the padded binary crop) as the generator's truth.
    np.testing.assert_allclose(table["surface_area_um2"], ref["surface_area_um2"], rtol=1e-9)


def test_density_from_label_image_and_from_table(blobs_store, tmp_path, capsys):
    path, lab, _, _ = blobs_store
    spacing = np.array([SCALE["z"], SCALE["y"], SCALE["x"]])
    out = tmp_path / "density.csv"
    code, _, err = _run(
        capsys,
        "density",
        str(path),
        "--labels",
        "blobs",
        "--k",
        "4",
        "--bandwidth-um",
        "1.5",
        "--out",
        str(out),
    )
    assert code == 0, err
    table = pd.read_csv(out)
    props = measure.regionprops_table(
        lab.astype(np.int64), spacing=spacing, properties=["centroid"]
    )
    pts = np.stack([props[f"centroid-{i}"] for i in range(3)], axis=1)
    dist, _ = NearestNeighbors(n_neighbors=5).fit(pts).kneighbors(pts)
    np.testing.assert_allclose(table["knn_mean_distance_um"], dist[:, 1:].mean(axis=1), rtol=1e-9)
    kde = np.exp(KernelDensity(bandwidth=1.5).fit(pts).score_samples(pts))
    np.testing.assert_allclose(table["kde_density"], kde, rtol=1e-6)
    # The label group itself as INPUT, and a features table as INPUT, give the same values.
    out2 = tmp_path / "density2.parquet"
    code, _, err = _run(
        capsys,
        "density",
        str(path / "labels" / "blobs"),
        "--k",
        "4",
        "--bandwidth-um",
        "1.5",
        "--out",
        str(out2),
    )
    assert code == 0, err
    np.testing.assert_array_equal(pd.read_parquet(out2)["kde_density"], table["kde_density"])
    feats = tmp_path / "feats.csv"
    assert _run(capsys, "measure", str(path), "--labels", "blobs", "--out", str(feats))[0] == 0
    out3 = tmp_path / "density3.csv"
    code, _, err = _run(
        capsys, "density", str(feats), "--k", "4", "--bandwidth-um", "1.5", "--out", str(out3)
    )
    assert code == 0, err
    from_table = pd.read_csv(out3)
    assert "surface_area_um2" in from_table.columns  # input columns are kept
    np.testing.assert_allclose(from_table["kde_density"], kde, rtol=1e-6)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["measure", "{store}", "--labels", "nope", "--out", "{tmp}/a.csv"], ["nope", "blobs"]),
        (
            ["measure", "{store}", "--labels", "empty", "--out", "{tmp}/a.csv"],
            ["empty", "no objects"],
        ),
        (["measure", "{store}", "--labels", "blobs", "--out", "{tmp}/a.txt"], [".csv or .parquet"]),
        (
            ["measure", "{tmp}/missing.zarr", "--labels", "blobs", "--out", "{tmp}/a.csv"],
            ["missing.zarr"],
        ),
        (
            ["measure", "{store}", "--labels", "blobs", "--out", "{tmp}/no/dir/a.csv"],
            ["does not exist"],
        ),
        (
            [
                "density",
                "{store}",
                "--labels",
                "blobs",
                "--bandwidth-um",
                "0",
                "--out",
                "{tmp}/d.csv",
            ],
            ["bandwidth"],
        ),
        (
            ["density", "{store}", "--labels", "blobs", "--k", "40", "--out", "{tmp}/d.csv"],
            ["41 objects"],
        ),
        (["density", "{store}", "--labels", "empty", "--out", "{tmp}/d.csv"], ["no objects"]),
        (["density", "{tmp}/none.csv", "--out", "{tmp}/d.csv"], ["none.csv"]),
    ],
)
def test_bad_inputs_give_one_line_and_exit_2(blobs_store, tmp_path, capsys, args, words):
    path = blobs_store[0]
    argv = [a.format(store=path, tmp=tmp_path) for a in args]
    code, _, err = _run(capsys, *argv)
    _assert_one_line_error(code, err, *words)


def test_density_never_takes_the_grey_image_for_labels(blobs_store, tmp_path, capsys):
    """Without --labels a store's image is refused (issue 21: it reported the grey values
    as 200 "objects"), naming the label images it has."""
    from vrscope.cli import main

    path = blobs_store[0]
    code = main(["density", str(path), "--out", str(tmp_path / "d.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--labels NAME" in err[0], err
    assert "blobs" in err[0]  # the label images it has
    assert not (tmp_path / "d.csv").exists()
