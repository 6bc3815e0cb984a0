"""``vrscope render`` and ``vrscope movie`` in-process, on stores written by ome-zarr-py."""

from __future__ import annotations

import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import zarr

from analysis.io import write_geff
from vrscope.cli import main

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

pytestmark = pytest.mark.render


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Image + labels ``objs``: ball 1 at x = 8 µm (left), ball 2 at x = 24 µm (right)."""
    from ome_zarr.writer import write_image, write_labels

    path = tmp_path_factory.mktemp("render") / "two.zarr"
    img = np.zeros((32, 32, 32), np.uint8)
    img[8:24, 8:24, 8:24] = 120
    lab = np.zeros((32, 32, 32), np.uint16)
    zz, yy, xx = np.indices(lab.shape)
    lab[(zz - 16) ** 2 + (yy - 16) ** 2 + (xx - 8) ** 2 <= 25] = 1
    lab[(zz - 16) ** 2 + (yy - 16) ** 2 + (xx - 24) ** 2 <= 25] = 2
    root = zarr.open_group(str(path), mode="w")
    write_image(img, root, axes="zyx", scale_factors=(2,))
    write_labels(lab, root, name="objs", axes="zyx", scale_factors=(2,))
    return path


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


def test_render_png_nonblank(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "shot.png"
    assert main(["render", str(store), "--out", str(out), "--size", "160", "120", "--labels"]) == 0
    img = iio.imread(out)
    assert img.shape == (120, 160, 3)
    assert (img.max(axis=2) > 30).mean() > 0.05
    assert "wrote" in capsys.readouterr().out


def test_render_colour_by_feature_and_clip(store: Path, tmp_path: Path) -> None:
    table = tmp_path / "features.csv"
    pd.DataFrame({"label": [1, 2], "area": [2.0, 10.0], "vol": [2.0, 1.0]}).to_csv(table)
    common = [
        "--labels",
        "objs",
        "--no-image",
        "--azimuth",
        "0",
        "--elevation",
        "0",
        "--color-by",
        "area/vol",
        "--features",
        str(table),
        "--size",
        "160",
        "120",
    ]
    out = tmp_path / "feat.png"
    assert main(["render", str(store), "--out", str(out), *common]) == 0
    img = iio.imread(out).astype(int)
    # viridis: ratio 1 (object 1) -> dark purple, ratio 10 (object 2) -> yellow.
    yellow = (img[..., 0] > 120) & (img[..., 1] > 120) & (img[..., 2] < 90)
    purple = (img[..., 2] > 40) & (img[..., 2] > img[..., 1] + 20) & (img[..., 0] > 25)
    assert yellow.sum() > 30 and purple.sum() > 30
    # Looking down z with x to the right: object 2 (x = 24 µm) is right of object 1.
    assert np.argwhere(yellow)[:, 1].mean() > np.argwhere(purple)[:, 1].mean() + 20
    out2 = tmp_path / "clip.png"
    assert main(["render", str(store), "--out", str(out2), *common, "--clip", "x>0.5"]) == 0
    img2 = iio.imread(out2).astype(int)
    purple2 = (img2[..., 2] > 40) & (img2[..., 2] > img2[..., 1] + 20) & (img2[..., 0] > 25)
    yellow2 = (img2[..., 0] > 120) & (img2[..., 1] > 120) & (img2[..., 2] < 90)
    assert purple2.sum() == 0 and yellow2.sum() > 0.8 * yellow.sum()


def test_render_tracks_from_geff(tmp_path: Path) -> None:
    from analysis.tracks import TrackGraph

    t = np.arange(10)
    zyx = np.c_[np.zeros(10), np.linspace(0, 50, 10), np.linspace(0, 50, 10)]
    g = TrackGraph.from_arrays(np.arange(10), t, zyx, np.c_[np.arange(9), np.arange(1, 10)])
    geff = tmp_path / "walk.geff"
    write_geff(g, str(geff))
    out = tmp_path / "tracks.png"
    args = [
        "render",
        "--tracks",
        str(geff),
        "--out",
        str(out),
        "--size",
        "120",
        "120",
        "--azimuth",
        "0",
        "--elevation",
        "0",
        "--no-overlays",
    ]
    assert main(args) == 0
    img = iio.imread(out)
    lit = np.argwhere(img.max(axis=2) > 40)
    assert len(lit) > 30
    # The walk runs along the diagonal y = x on screen (x right, y down).
    corr = np.corrcoef(lit[:, 0], lit[:, 1])[0, 1]
    assert corr > 0.9


def test_movie_turntable(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "turn.mp4"
    args = [
        "movie",
        str(store),
        "--out",
        str(out),
        "--size",
        "96",
        "64",
        "--frames",
        "6",
        "--fps",
        "12",
        "--no-progress",
        "--labels",
        "objs",
        "--no-image",
    ]
    assert main(args) == 0
    frames = np.stack(list(iio.imiter(out)))
    assert frames.shape == (6, 64, 96, 3)
    assert frames[0].max() > 50
    # The camera turns: consecutive frames differ.
    assert np.abs(frames[0].astype(int) - frames[2].astype(int)).mean() > 1.0


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["render", "{missing}", "--out", "{out}.png"], "No such file"),
        (["render", "{store}", "--out", "{out}.png", "--clip", "q=3"], "bad clip"),
        (["render", "{store}", "--out", "{out}.png", "--labels", "nope"], "no label image 'nope'"),
        (["render", "{store}", "--out", "{out}.gif"], "--out must be"),
        (["render", "--out", "{out}.png"], "STORE"),
        (
            [
                "render",
                "{store}",
                "--out",
                "{out}.png",
                "--labels",
                "objs",
                "--color-by",
                "x",
                "--features",
                "{missing}",
            ],
            "No such file",
        ),
        (["movie", "{store}", "--out", "{out}.mp4", "--size", "97", "64"], "even"),
        (["movie", "{store}", "--out", "{out}.mp4", "--fps", "120"], "fps"),
    ],
)
def test_bad_input_exit_2(
    argv: list[str], needle: str, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    subs = {"store": str(store), "out": str(tmp_path / "o"), "missing": str(tmp_path / "no.zarr")}
    try:
        code = main([a.format(**subs) for a in argv])
    except SystemExit as exc:  # refused by the option's type, at parse time
        code = exc.code
    assert code == 2
    assert needle in _one_error_line(capsys)


def test_labels_before_the_store_still_find_the_store(store: Path, tmp_path: Path) -> None:
    """``--labels NAME STORE.zarr`` (store last) renders like ``STORE.zarr --labels NAME``."""
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    opts = ["--size", "96", "80", "--no-progress"]
    assert main(["render", str(store), "--labels", "objs", "--out", str(a), *opts]) == 0
    assert main(["render", "--out", str(b), *opts, "--labels", "objs", str(store)]) == 0
    assert main(["render", "--out", str(c), *opts, "--labels", str(store)]) == 0  # all labels
    ia, ib, ic = (iio.imread(p).astype(int) for p in (a, b, c))
    assert np.array_equal(ia, ib) and np.array_equal(ia, ic)
    plain = tmp_path / "plain.png"
    assert main(["render", str(store), "--out", str(plain), *opts]) == 0
    assert not np.array_equal(iio.imread(plain).astype(int), ia)  # the labels were drawn
