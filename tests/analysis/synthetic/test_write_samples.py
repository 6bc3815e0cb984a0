"""Written samples read back by independent readers: ome-zarr-py, zarr, geff, traccuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.io import parse_url
from ome_zarr.reader import Label, Multiscales, Reader
from skimage.measure import regionprops

from analysis.errors import FormatError
from analysis.io import open_volume, truth_path, write_fibsem_sample, write_timelapse_sample
from analysis.synthetic import (
    FIBSEM_LABELS,
    FibsemSample,
    TimelapseSample,
    fibsem_cell,
    timelapse,
)

VERSIONS = ["0.4", "0.5"]


@pytest.fixture(scope="module")
def cell() -> FibsemSample:
    return fibsem_cell(96, seed=4)


@pytest.fixture(scope="module")
def tl() -> TimelapseSample:
    return timelapse(8, size=48, n_cells=3, seed=5)


def _omz_labels(path: Path, version: str) -> dict[str, np.ndarray]:
    """Level 0 of every label image, as ome-zarr-py's reader finds them."""
    fmt = FormatV04() if version == "0.4" else FormatV05()
    nodes = list(Reader(parse_url(str(path), fmt=fmt))())
    out = {}
    for node in nodes:
        if Label in map(type, node.specs):
            out[node.metadata["name"]] = np.asarray(node.data[0])
    image = next(
        n for n in nodes if Multiscales in map(type, n.specs) and Label not in map(type, n.specs)
    )
    out["__image__"] = np.asarray(image.data[0])
    return out


def test_truth_path_is_next_to_the_store(tmp_path: Path) -> None:
    assert truth_path(tmp_path / "cell.zarr") == tmp_path / "cell.truth.csv"
    assert truth_path(tmp_path / "cell") == tmp_path / "cell.truth.csv"


@pytest.mark.parametrize("version", VERSIONS)
def test_fibsem_store_round_trip_and_truth_vs_regionprops(
    tmp_path: Path, cell: FibsemSample, version: str
) -> None:
    store = tmp_path / "cell.zarr"
    truth_file = write_fibsem_sample(cell, store, version=version)  # type: ignore[arg-type]
    assert truth_file == tmp_path / "cell.truth.csv" and truth_file.is_file()
    read = _omz_labels(store, version)
    np.testing.assert_array_equal(read["__image__"], cell.image)
    assert set(FIBSEM_LABELS) <= set(read)
    truth = pd.read_csv(truth_file)
    vox = float(np.prod(cell.scale_um))
    for name in FIBSEM_LABELS:
        labels = read[name]
        np.testing.assert_array_equal(labels, cell.labels[name])
        rows = truth[truth["kind"] == name].set_index("label")
        props = regionprops(labels.astype(np.int32), spacing=cell.scale_um)
        assert sorted(rows.index) == [p.label for p in props]
        for p in props:
            assert rows.loc[p.label, "volume_um3"] == pytest.approx(p.num_pixels * vox, rel=1e-9)
            np.testing.assert_allclose(
                rows.loc[p.label, ["centroid_z_um", "centroid_y_um", "centroid_x_um"]].to_numpy(
                    float
                ),
                p.centroid,
                rtol=1e-9,
            )
    # Our own reader lists every label image with the sample's voxel size.
    vol = open_volume(store)
    assert set(FIBSEM_LABELS) <= set(vol.label_names)
    assert vol.levels[0].scale_um == pytest.approx(cell.scale_um)
    assert zarr.open_group(str(store), mode="r").attrs["vrscope"]["truth"] == truth_file.name


def test_existing_output_is_refused_unless_overwrite(tmp_path: Path, cell: FibsemSample) -> None:
    store = tmp_path / "c.zarr"
    write_fibsem_sample(cell, store)
    with pytest.raises(FormatError, match="already exists"):
        write_fibsem_sample(cell, store)
    write_fibsem_sample(cell, store, overwrite=True)
    with pytest.raises(FormatError, match="does not exist"):
        write_fibsem_sample(cell, tmp_path / "missing" / "c.zarr")


def _write_ctc(tl: TimelapseSample, folder: Path) -> None:
    """The sample in Cell Tracking Challenge form: one mask TIFF per frame + man_track.txt."""
    folder.mkdir()
    for t, frame in enumerate(tl.labels):
        tifffile.imwrite(folder / f"man_track{t:03d}.tif", frame)
    np.savetxt(folder / "man_track.txt", tl.tracks.to_numpy(), fmt="%d")


@pytest.mark.parametrize("version", VERSIONS)
def test_timelapse_geff_matches_labels_and_ctc_lineage(
    tmp_path: Path, tl: TimelapseSample, version: str
) -> None:
    import geff
    from geff.core_io import read_to_memory
    from geff.validate.data import ValidationConfig
    from traccuracy import run_metrics
    from traccuracy.loaders import load_ctc_data, load_geff_data
    from traccuracy.matchers import CTCMatcher
    from traccuracy.metrics import CTCMetrics, DivisionMetrics

    store = tmp_path / "tl.zarr"
    truth_file = write_timelapse_sample(tl, store, version=version)  # type: ignore[arg-type]
    assert pd.read_csv(truth_file).equals(tl.nodes)

    # geff's reader and validators (structure, graph, tracklets).
    geff.validate_structure(str(store / "tracks"))
    mem = read_to_memory(
        str(store / "tracks"), data_validation=ValidationConfig(graph=True, tracklet=True)
    )
    axes = {a.name: a for a in mem["metadata"].axes or []}
    assert axes["t"].type == "time" and axes["t"].scale == tl.frame_interval_s
    assert all(axes[a].type == "space" and axes[a].unit == "micrometer" for a in "zyx")
    graph, _ = geff.read(str(store / "tracks"))
    assert graph.number_of_nodes() == len(tl.nodes)
    assert sorted(graph.edges) == sorted(map(tuple, tl.edges.tolist()))

    # Labels read back with plain zarr; every node's centroid lies in its own label.
    labels = np.asarray(zarr.open_array(str(store / "labels" / "nuclei" / "s0"), mode="r")[:])
    np.testing.assert_array_equal(labels, tl.labels)
    scale = np.asarray(tl.scale_um)
    for node, data in graph.nodes(data=True):
        voxel = tuple(np.rint(np.array([data["z"], data["y"], data["x"]]) / scale).astype(int))
        assert labels[int(data["t"])][voxel] == data["label"] == data["track_id"], node
    divisions = [n for n in graph.nodes if graph.out_degree(n) == 2]
    assert divisions and all(graph.out_degree(n) <= 2 for n in graph.nodes)

    # traccuracy: the CTC form (masks + track table, checked by its loader) as ground truth
    # and our GEFF as prediction must agree perfectly, divisions included.
    _write_ctc(tl, tmp_path / "ctc")
    gt = load_ctc_data(str(tmp_path / "ctc"), run_checks=True)
    pred = load_geff_data(
        str(store / "tracks"),
        seg_path=str(store / "labels" / "nuclei" / "s0"),
        seg_property="label",
    )
    results, _ = run_metrics(
        gt_data=gt, pred_data=pred, matcher=CTCMatcher(), metrics=[CTCMetrics(), DivisionMetrics()]
    )
    by_name = {r["metric"]["name"]: r["results"] for r in results}
    assert by_name["CTCMetrics"]["TRA"] == pytest.approx(1.0)
    assert by_name["CTCMetrics"]["DET"] == pytest.approx(1.0)
    div = by_name["DivisionMetrics"]
    assert any(k.startswith("Frame Buffer 0") for k in div)
    f1 = next(v for k, v in div.items() if k.startswith("Frame Buffer 0"))["Division F1"]
    assert f1 == pytest.approx(1.0)
    # The image carries the frame interval on its t axis.
    vol = open_volume(store)
    assert vol.axes == ("t", "z", "y", "x") and vol.levels[0].scale[0] == tl.frame_interval_s
    assert "nuclei" in vol.label_names
