"""``vrscope render`` streams image volumes in one ray-casting pass (issue 15).

The reference is the same scene drawn by VTK's own ray caster from one whole level
(``--no-stream``): an independent implementation, same camera and transfer function.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import zarr

from vrscope.cli import main

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

pytestmark = pytest.mark.render

SIZE = ["--size", "240", "180"]
COMMON = [*SIZE, "--zoom", "1.6", "--no-overlays", "--no-progress", "--no-invert"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64³ uint8: a gradient box with a bright ball and a dark cube inside; labels ``ball``."""
    from ome_zarr.writer import write_image, write_labels

    path = tmp_path_factory.mktemp("single_pass") / "vol.zarr"
    z, y, x = np.indices((64, 64, 64))
    img = (40 + 1.5 * x + 0.5 * y).astype(np.float64)
    img[(z - 30) ** 2 + (y - 34) ** 2 + (x - 28) ** 2 <= 14**2] = 230
    img[40:52, 10:22, 44:56] = 5
    lab = np.zeros((64, 64, 64), np.uint16)
    lab[(z - 32) ** 2 + (y - 32) ** 2 + (x - 40) ** 2 <= 8**2] = 1
    root = zarr.open_group(str(path), mode="w")
    write_image(img.astype(np.uint8), root, axes="zyx", scale_factors=(2,))
    write_labels(lab, root, name="ball", axes="zyx", scale_factors=(2,))
    return path


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def _render(store: Path, out: Path, *extra: str) -> np.ndarray:
    assert main(["render", str(store), "--out", str(out), *COMMON, *extra]) == 0
    return iio.imread(out)


@pytest.mark.parametrize("rendering", ["composite", "mip"])
def test_single_pass_matches_whole_level_reference(
    store: Path, tmp_path: Path, rendering: str
) -> None:
    ref = _render(store, tmp_path / "ref.png", "--no-stream", "--rendering", rendering)
    assert (ref.max(axis=2) > 30).mean() > 0.2  # the volume fills the view
    for bs in ("16", "32"):
        stats = tmp_path / f"s{bs}.json"
        img = _render(
            store,
            tmp_path / f"b{bs}.png",
            "--rendering",
            rendering,
            "--brick-size",
            bs,
            "--stats",
            str(stats),
        )
        st = json.loads(stats.read_text())
        assert st["volume_passes"] == 1 and st["single_pass"]
        assert st["levels_drawn"] == [0]  # same level as the reference
        assert st["bricks_drawn"] == (64 // int(bs)) ** 3
        assert _psnr(img, ref) >= 40.0, (rendering, bs, _psnr(img, ref))


def test_single_pass_matches_reference_opaque_faces(store: Path, tmp_path: Path) -> None:
    """--invert puts the opaque end of the ramp at the volume's faces: silhouette rays
    cross few samples, so this needs VTK's sample lattice (first sample one step in)."""
    ref = _render(store, tmp_path / "ref.png", "--no-stream", "--invert")
    img = _render(store, tmp_path / "sp.png", "--brick-size", "16", "--invert")
    assert _psnr(img, ref) >= 40.0


def test_one_pass_whatever_the_bricks(store: Path, tmp_path: Path) -> None:
    stats = tmp_path / "s.json"
    _render(store, tmp_path / "a.png", "--brick-size", "8", "--stats", str(stats))
    st = json.loads(stats.read_text())
    assert st["bricks_drawn"] >= 500  # wholly transparent bricks are skipped
    assert st["volume_passes"] == 1
    assert st["gpu_cache_bytes"] >= 512 * 10**3  # 512 slots of (8 + 2)³ uint8
    assert set(st) >= {"volume_passes", "bricks_drawn", "levels_drawn", "frame_ms"}


def test_label_surface_inside_the_volume_intermixes(store: Path, tmp_path: Path) -> None:
    """An opaque label surface inside the volume: rays end at its depth.

    VTK's whole-level render intermixes its own volume with the surface; the single
    pass must give the same picture (drawing the volume over the surface, or ignoring
    its depth and compositing the volume behind it over it, both fail), and the
    surface must change the picture (it is visible)."""
    opts = ["--labels", "ball", "--label-mode", "surface"]
    ref = _render(store, tmp_path / "ref.png", "--no-stream", *opts)
    img = _render(store, tmp_path / "sp.png", "--brick-size", "16", *opts)
    plain = _render(store, tmp_path / "plain.png", "--brick-size", "16")
    assert _psnr(img, plain) < 30  # the surface shows
    assert _psnr(img, ref) >= 35, _psnr(img, ref)


@pytest.mark.parametrize("bad", ["0", "48", "-8", "1024"])
def test_bad_brick_size_exit_2(
    store: Path, tmp_path: Path, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["render", str(store), "--out", str(tmp_path / "o.png"), "--brick-size", bad]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "brick size" in err, err


def test_isosurface_streams_in_one_pass_like_vtks(store: Path, tmp_path: Path) -> None:
    """--rendering isosurface: the single pass (headlight, VTK's volume-property lighting
    defaults) against VTK's iso-surface blend mode on the whole level."""
    iso = ["--rendering", "isosurface"]
    ref = _render(store, tmp_path / "ref.png", "--no-stream", *iso)
    st_path = tmp_path / "st.json"
    img = _render(store, tmp_path / "sp.png", "--brick-size", "16", "--stats", str(st_path), *iso)
    st = json.loads(st_path.read_text())
    assert st["volume_passes"] == 1 and st["bricks_drawn"] > 8
    lit_ref, lit = ref.max(axis=2) > 10, img.max(axis=2) > 10
    assert lit_ref.mean() > 0.1
    assert np.mean(lit_ref != lit) < 0.01  # the same surfaces
    assert _psnr(ref, img) >= 40.0
