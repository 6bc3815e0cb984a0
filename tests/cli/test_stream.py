"""``vrscope stream`` and ``vrscope render --stream`` in-process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import zarr
from scipy import ndimage

from tests.analysis.io._support import write_with_ome_zarr
from vrscope.cli import main

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    vol = ndimage.gaussian_filter(rng.random((48, 64, 64)), 2)
    vol = ((vol - vol.min()) / np.ptp(vol) * 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("stream") / "img.zarr"
    return write_with_ome_zarr(path, vol, version="0.4", chunks=(16, 16, 16))


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


def test_stream_procedural_reports_cache_and_requests(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "stream",
        "--procedural",
        "4096x4096x2048",
        "--frames",
        "6",
        "--fps",
        "500",
        "--cache-mb",
        "16",
        "--size",
        "320",
        "240",
        "--json",
    ]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cache_budget_bytes"] == 16 * 2**20
    assert 0 < out["cache_bytes"] <= out["cache_budget_bytes"]
    assert out["pending"] == 0 and out["complete"] and out["drawn"] > 0
    assert out["levels"] == 6  # halve until the smallest axis (2048) is one 64 chunk: 2048 -> 64
    assert out["bytes_loaded"] == out["loaded"] * 64**3


def test_stream_store_text(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["stream", str(store), "--frames", "3", "--fps", "500", "--size", "320", "240"]) == 0
    )
    out = capsys.readouterr().out
    assert "cache:" in out and "requests: 0 pending" in out and "full detail" in out


def test_stream_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stream", str(tmp_path / "missing.zarr")]) == 2
    assert "missing.zarr" in _one_error_line(capsys)
    assert main(["stream", "--procedural", "12x3"]) == 2
    assert "--procedural" in _one_error_line(capsys)
    assert main(["stream"]) == 2
    _one_error_line(capsys)


@pytest.mark.render
def test_render_streams_by_default_and_matches_whole_level_render(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "whole.png", tmp_path / "streamed.png"
    common = ["--size", "200", "160", "--no-overlays", "--no-progress"]
    assert (
        main(["render", str(store), "--out", str(a), *common, "--no-stream", "--level", "0"]) == 0
    )
    assert "streamed" not in capsys.readouterr().out
    assert main(["render", str(store), "--out", str(b), *common]) == 0
    out = capsys.readouterr().out
    assert "streamed" in out and "0 pending" in out and "NOT at full detail" not in out
    whole, streamed = iio.imread(a).astype(int), iio.imread(b).astype(int)
    assert whole.max() > 40
    # Full detail at this size is level 0 in bricks: the same picture as level 0 whole,
    # within the seam tolerance of tests/viewer/streaming/test_render_streaming.py.
    d = np.abs(whole - streamed)
    assert d.mean() < 1.0 and np.percentile(d, 99) <= 12


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Image + label image ``cells`` (three balls), both in 16^3 chunks, 3 levels."""
    from ome_zarr.writer import write_image, write_labels

    path = tmp_path_factory.mktemp("labelled") / "cells.zarr"
    zz, yy, xx = np.indices((48, 64, 64))
    lab = np.zeros((48, 64, 64), np.uint16)
    for i, (z, y, x, r) in enumerate([(24, 20, 20, 12), (24, 44, 40, 14), (12, 40, 14, 8)], 1):
        lab[(zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= r * r] = i
    img = (lab * 60 + 20).astype(np.uint8)
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    opts = {"chunks": (16, 16, 16)}
    write_image(img, root, axes="zyx", scale_factors=(2, 4), storage_options=opts)
    write_labels(lab, root, name="cells", axes="zyx", scale_factors=(2, 4), storage_options=opts)
    return path


@pytest.mark.render
def test_streamed_label_volume_matches_the_whole_level_label_volume(
    labelled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "whole.png", tmp_path / "streamed.png"
    common = ["--labels", "cells", "--label-mode", "volume", "--no-image"]
    common += ["--size", "200", "160", "--no-overlays", "--no-progress"]
    assert (
        main(["render", str(labelled), "--out", str(a), *common, "--no-stream", "--level", "0"])
        == 0
    )
    assert main(["render", str(labelled), "--out", str(b), *common]) == 0
    out = capsys.readouterr().out
    assert "streamed cells" in out  # the label image itself was streamed
    whole, streamed = iio.imread(a).astype(int), iio.imread(b).astype(int)
    # Three objects in three colours (independent: count distinct lit colours).
    lit = whole.max(axis=2) > 30
    assert lit.mean() > 0.05
    assert len({tuple(c // 16) for c in whole[lit][::7]}) >= 3
    # Nearest-neighbour ids: pixels agree except along object outlines.
    differs = np.abs(whole - streamed).max(axis=2) > 8
    assert differs.mean() < 0.01


@pytest.mark.render
def test_movie_streams_by_default(
    labelled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "whole.mp4", tmp_path / "streamed.mp4"
    common = ["--size", "96", "64", "--frames", "3", "--fps", "12", "--no-progress"]
    common += ["--no-overlays"]
    assert (
        main(["movie", str(labelled), "--out", str(a), *common, "--no-stream", "--level", "0"]) == 0
    )
    assert "streamed" not in capsys.readouterr().out
    assert main(["movie", str(labelled), "--out", str(b), *common]) == 0
    assert "streamed" in capsys.readouterr().out
    whole = np.stack(list(iio.imiter(a))).astype(int)
    streamed = np.stack(list(iio.imiter(b))).astype(int)
    assert whole.shape == streamed.shape == (3, 64, 96, 3)
    assert whole.max() > 40
    # Same frames up to video coding noise (H.264 of two nearly equal inputs).
    assert np.abs(whole - streamed).mean() < 1.5


def test_movie_streams_maximum_intensity_projection(
    labelled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # MIP used to fall back to one whole level (per-brick volumes cannot combine their
    # projections); the single pass projects across bricks, so the movie streams it.
    a, b = tmp_path / "whole.mp4", tmp_path / "streamed.mp4"
    common = ["--size", "96", "64", "--frames", "3", "--fps", "12", "--no-progress"]
    common += ["--no-overlays", "--rendering", "mip"]
    assert (
        main(["movie", str(labelled), "--out", str(a), *common, "--no-stream", "--level", "0"]) == 0
    )
    assert "streamed" not in capsys.readouterr().out
    assert main(["movie", str(labelled), "--out", str(b), *common]) == 0
    out = capsys.readouterr().out
    assert "streamed" in out and "whole level" not in out
    whole = np.stack(list(iio.imiter(a))).astype(int)
    streamed = np.stack(list(iio.imiter(b))).astype(int)
    assert whole.shape == streamed.shape == (3, 64, 96, 3)
    assert whole.max() > 40
    # The same bound as the composite movie above (H.264 of two nearly equal inputs).
    assert np.abs(whole - streamed).mean() < 1.5


@pytest.mark.render
def test_label_outline_draws_rims_opaque_and_interiors_faint(
    labelled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scipy.ndimage import binary_erosion
    from skimage.morphology import disk
    from skimage.segmentation import find_boundaries

    a, b = tmp_path / "filled.png", tmp_path / "outlined.png"
    common = ["--labels", "cells", "--label-mode", "volume", "--no-image"]
    common += ["--size", "200", "160", "--no-overlays", "--no-progress"]
    assert main(["render", str(labelled), "--out", str(a), *common]) == 0
    assert main(["render", str(labelled), "--out", str(b), *common, "--label-outline"]) == 0
    filled, outlined = iio.imread(a).astype(int), iio.imread(b).astype(int)
    lit = filled.max(axis=2) > 30
    assert lit.mean() > 0.05
    # The balls' silhouettes (scikit-image's boundary of the lit mask) stay drawn ...
    rim = find_boundaries(lit, mode="inner")
    assert (outlined.max(axis=2)[rim] > 30).mean() > 0.8
    # ... while inside them, where a ray crosses no voxel with another id beside it (the
    # ball's terraces are outline voxels too), the object is faint: filled, no interior
    # pixel is under half as bright as its neighbours' colour; outlined, many are.
    inner = binary_erosion(lit, disk(4))
    assert inner.sum() > 200
    fa, fb = filled.max(axis=2)[inner], outlined.max(axis=2)[inner]
    assert (fa < 0.5 * fa.max()).mean() == 0.0
    assert (fb < 0.5 * fa).mean() > 0.05
    # Only in volume mode and in the streamed pass: one line otherwise.
    for bad in (["--label-mode", "surface"], ["--label-mode", "volume", "--no-stream"]):
        args = ["render", str(labelled), "--out", str(tmp_path / "x.png"), "--label-outline"]
        assert main([*args, *bad, "--labels", "cells"]) == 2
    err = capsys.readouterr().err
    assert "--label-outline needs --label-mode volume" in err
    assert "drop --no-stream" in err
