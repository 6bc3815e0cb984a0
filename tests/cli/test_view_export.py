"""``vrscope export`` (no window) and ``vrscope view`` (Qt, under Xvfb), in-process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from geff.core_io import read_to_memory

from analysis.annotations import AddMarker, AddMeasurement
from analysis.edits import Cut
from analysis.project import Project
from analysis.tracks import TrackGraph
from vrscope.cli import main


def _project(folder: Path) -> Path:
    g = TrackGraph.from_arrays(
        [0, 1, 2, 3],
        [0, 1, 2, 3],
        [[0.0, 0.0, float(i)] for i in range(4)],
        [[0, 1], [1, 2], [2, 3]],
    )
    with Project.create(folder, tracks=g, classes=["mito"]) as pr:
        pr.history.apply(Cut(2))
        pr.history.apply(AddMarker("mito", (1.0, 2.0, 3.0)))
        pr.history.apply(AddMarker("pore", (4.0, 5.0, 6.0), t=1))
        pr.history.apply(AddMeasurement("distance", [(0, 0, 0), (0, 6, 8)]))
    return folder


def _one_line_error(capsys: pytest.CaptureFixture[str], rc: int, match: str) -> None:
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert match in err, err


def test_export_writes_markers_measurements_tracks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proj = _project(tmp_path / "p")
    m, ms, t = tmp_path / "m.csv", tmp_path / "ms.csv", tmp_path / "t.geff"
    rc = main(
        ["export", str(proj), "--markers", str(m), "--measurements", str(ms), "--tracks", str(t)]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "2 markers" in out and "1 measurements" in out and "2 edges" in out
    mk = pd.read_csv(m)
    assert mk["class"].tolist() == ["mito", "pore"]
    np.testing.assert_allclose(mk[["z_um", "y_um", "x_um"]], [[1, 2, 3], [4, 5, 6]])
    assert np.isnan(mk["t"][0]) and mk["t"][1] == 1
    mm = pd.read_csv(ms)
    assert mm["value"].tolist() == [pytest.approx(10.0)] and mm["unit"].tolist() == ["µm"]
    assert json.loads(mm["points_um"][0]) == [[0, 0, 0], [0, 6, 8]]
    edges = {tuple(map(int, e)) for e in read_to_memory(str(t))["edge_ids"]}
    assert edges == {(0, 1), (2, 3)}  # the journaled cut is applied
    # a second run refuses to overwrite, then overwrites when told
    _one_line_error(capsys, main(["export", str(proj), "--markers", str(m)]), "already exists")
    assert main(["export", str(proj), "--markers", str(m), "--overwrite"]) == 0


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["export", "{tmp}"], "not a vrscope project"),
        (["export", "{tmp}/missing"], "does not exist"),
        (["export", "{proj}"], "nothing to export"),
        (["export", "{proj}", "--format", "onnx"], "are for models"),
    ],
)
def test_export_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], match: str
) -> None:
    if any("{proj}" in a for a in argv):
        _project(tmp_path / "p")
    argv = [a.format(tmp=tmp_path, proj=tmp_path / "p") for a in argv]
    if argv[1] == str(tmp_path):
        argv += ["--markers", str(tmp_path / "x.csv")]
    _one_line_error(capsys, main(argv), match)


def test_export_forwards_models_to_export_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")  # the ml extra; installed in CI
    rc = main(["export", str(tmp_path / "net.safetensors"), "--format", "onnx"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("vrscope export-model: error"), err


def test_view_needs_a_store_or_project(capsys: pytest.CaptureFixture[str]) -> None:
    _one_line_error(capsys, main(["view"]), "give an image store")


@pytest.mark.qt
def test_view_opens_the_sample_and_saves_a_screenshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import imageio.v3 as iio

    from analysis.io import write_fibsem_sample
    from analysis.synthetic import fibsem_cell

    if not os.environ.get("DISPLAY"):
        pytest.fail("Qt tests need a display: run under xvfb-run (scripts/test.sh does)")
    store = tmp_path / "cell.zarr"
    write_fibsem_sample(fibsem_cell(size=96, seed=1), store)
    png = tmp_path / "win.png"
    argv = [
        "view",
        str(store),
        "--labels",
        "mitochondria",
        "nucleus",
        "--project",
        str(tmp_path / "p"),
    ]
    assert main([*argv, "--exit-after", "1", "--screenshot", str(png)]) == 0
    img = iio.imread(png)
    assert img.ndim == 3 and img.shape[0] > 300 and img.std() > 20
    assert (tmp_path / "p" / "project.json").is_file()
    # reopening the project alone finds the image and labels again
    assert main(["view", "--project", str(tmp_path / "p"), "--exit-after", "0.5"]) == 0
    _one_line_error(
        capsys, main(["view", str(tmp_path / "nope.zarr"), "--exit-after", "0.1"]), "nope.zarr"
    )


def test_view_without_labels_shows_every_label_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18.10: ``--labels`` omitted opens all label images, as ``--help`` says."""
    import zarr

    import viewer.qt
    from analysis.io import write_fibsem_sample
    from analysis.synthetic import fibsem_cell

    store = tmp_path / "cell.zarr"
    write_fibsem_sample(fibsem_cell(size=96, seed=1), store)
    grp = zarr.open_group(str(store / "labels"), mode="r")
    attrs = grp.attrs.asdict()
    names = list(attrs.get("ome", attrs)["labels"])  # the NGFF labels listing, read with zarr
    assert len(names) >= 2
    seen: list[object] = []

    def fake_run_viewer(store: str, labels: object, *a: object, **k: object) -> int:
        seen.append(labels)
        return 0

    monkeypatch.setattr(viewer.qt, "run_viewer", fake_run_viewer)
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert main(["view", str(store)]) == 0
    assert main(["view", str(store), "--labels"]) == 0
    assert main(["view", str(store), "--labels", names[0]]) == 0
    assert seen == [names, names, [names[0]]]
