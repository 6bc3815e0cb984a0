"""``vrscope segment`` against an independent reference (scikit-image ``threshold_otsu``,
``scipy.ndimage.label``, a NumPy volume cut), and ``vrscope batch segment`` against
``vrscope segment`` per store, file for file, with a bad store among them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from analysis.io import open_volume, write_ngff
from vrscope.cli import main

SPACING = (0.5, 0.25, 0.25)  # µm: one voxel is 1/32 µm³
SHAPE = (40, 48, 56)
CHUNKS = (16, 16, 16)  # objects cross chunk (block) faces


def _image(seed: int) -> np.ndarray:
    """Smoothed noise: blobs of many sizes, many of them cut by chunk faces."""
    rng = np.random.default_rng(seed)
    img = ndi.gaussian_filter(rng.random(SHAPE), 2.0)
    # float: scikit-image's threshold_otsu bins integer images per value, not in 256 bins
    return ((img - img.min()) / np.ptp(img)).astype(np.float32)


def _store(root: Path, name: str, seed: int, version: str = "0.4") -> tuple[Path, np.ndarray]:
    img = _image(seed)
    path = root / f"{name}.zarr"
    write_ngff(img, path, version=version, scale_um=SPACING, chunks=CHUNKS)
    return path, img


def _labels(out: Path) -> np.ndarray:
    return np.asarray(open_volume(out).open_labels("segmentation").read(0))


def _same_partition(got: np.ndarray, ref: np.ndarray) -> None:
    """Equal up to renumbering: the same foreground, and a one-to-one map of ids."""
    np.testing.assert_array_equal(got > 0, ref > 0)
    fg = ref > 0
    pairs = np.unique(np.stack([got[fg], ref[fg]]), axis=1)
    n_ref = len(np.unique(ref[fg]))
    assert n_ref > 5  # the test volume has objects to tell apart
    assert pairs.shape[1] == n_ref == len(np.unique(got[fg]))


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_segment_otsu_equals_skimage_and_scipy(tmp_path, capsys, version):
    store, img = _store(tmp_path, "cell", seed=1, version=version)
    out = tmp_path / "seg.zarr"
    assert main(["segment", str(store), "--out", str(out)]) == 0
    t = threshold_otsu(img)  # 256 equal bins over [min, max] for a float image
    ref, n = ndi.label(img > t)  # 6-connected
    got = _labels(out)
    assert got.dtype == np.uint32
    _same_partition(got, ref)
    assert f"{n} objects" in capsys.readouterr().out
    res = open_volume(out)
    assert res.ngff_version == version
    np.testing.assert_array_equal(np.asarray(res.read(0)), img)
    np.testing.assert_allclose(res.levels[0].scale_um, SPACING)


def test_segment_level_value_threshold_and_min_volume(tmp_path):
    store, img = _store(tmp_path, "cell", seed=2)
    coarse = np.asarray(open_volume(store).read(1))
    assert coarse.shape == tuple((s + 1) // 2 for s in SHAPE)
    t = float(np.percentile(coarse, 70))
    out = tmp_path / "seg.zarr"
    # level 1: voxels of 1 x 0.5 x 0.5 µm = 0.25 µm³; keep objects of >= 2 µm³ (8 voxels)
    args = ["segment", str(store), "--out", str(out), "--level", "1", "--threshold", str(t)]
    assert main([*args, "--min-volume", "2"]) == 0
    ref, n = ndi.label(coarse > t)
    sizes = np.bincount(ref.ravel())
    small = np.flatnonzero(sizes * 0.25 < 2.0)
    assert 0 < len(small) - 1 < n  # some objects go, some stay
    ref[np.isin(ref, small)] = 0
    _same_partition(_labels(out), ref)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--threshold", "bright"], ["--threshold", "neither otsu nor"]),
        (["--min-volume", "-1"], ["--min-volume", "must not be negative"]),
        (["--level", "9"], ["no level 9"]),
    ],
)
def test_segment_bad_input_one_line(tmp_path, capsys, args, words):
    store, _ = _store(tmp_path, "cell", seed=3)
    try:
        code = main(["segment", str(store), "--out", str(tmp_path / "o.zarr"), *args])
    except SystemExit as exc:  # argparse's usage error
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert len([ln for ln in err.strip().splitlines() if "error" in ln]) == 1
    for w in words:
        assert w in err
    assert not (tmp_path / "o.zarr").exists()


def test_segment_missing_store_one_line(tmp_path, capsys):
    code = main(["segment", str(tmp_path / "nope.zarr"), "--out", str(tmp_path / "o.zarr")])
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1


def test_batch_segment_equals_segment_per_store(tmp_path, capsys):
    stores = [_store(tmp_path, f"cell{s}", seed=s)[0] for s in (4, 5, 6)]
    bad = tmp_path / "cell5.zarr"  # one chunk of its image no codec decodes
    chunk = max((p for p in (bad / "s0").rglob("*") if p.is_file() and not p.name.startswith(".")),
                key=lambda p: p.stat().st_size)  # fmt: skip
    chunk.write_bytes(b"this is not a compressed chunk" * 4)
    opts = ["--min-volume", "0.5"]
    refs = {}
    for store in (stores[0], stores[2]):
        refs[store.stem] = tmp_path / f"ref-{store.stem}.zarr"
        assert main(["segment", str(store), "--out", str(refs[store.stem]), *opts]) == 0
    capsys.readouterr()
    out = tmp_path / "out"
    code = main(["batch", "segment", *map(str, stores), "--out", str(out), "--workers", "2", *opts])
    stdout, err = capsys.readouterr()
    assert code == 1
    assert "2 segmented, 0 already done, 1 failed" in stdout
    assert "1 store(s) failed" in err and "cell5:" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["cell4", "cell6", "summary.csv"]
    for name, ref in refs.items():
        got = out / name / "segmentation.zarr"
        assert _files(got) == _files(ref), name  # file for file, byte for byte
    table = pd.read_csv(out / "summary.csv").set_index("name")
    assert table["status"].to_dict() == {"cell4": "ok", "cell5": "failed", "cell6": "ok"}
    # --resume after the fault is repaired computes the missing store only
    shutil.rmtree(bad)
    _store(tmp_path, "cell5", seed=5)
    ref5 = tmp_path / "ref-cell5.zarr"
    assert main(["segment", str(bad), "--out", str(ref5), *opts]) == 0
    capsys.readouterr()
    args = ["batch", "segment", *map(str, stores), "--out", str(out), "--workers", "1", *opts]
    assert main([*args, "--resume"]) == 0
    assert "1 segmented, 2 already done, 0 failed" in capsys.readouterr().out
    assert _files(out / "cell5" / "segmentation.zarr") == _files(ref5)


def test_segment_closing_equals_scipy_closing(tmp_path):
    store, img = _store(tmp_path, "cell", seed=7)
    t = 0.65
    out = tmp_path / "seg.zarr"
    assert (
        main(["segment", str(store), "--out", str(out), "--threshold", str(t), "--closing", "0.5"])
        == 0
    )
    # The ball of 0.5 µm in voxels of 0.5 x 0.25 x 0.25 µm: half-sizes 1, 2, 2.
    z, y, x = np.ogrid[-1:2, -2:3, -2:3]
    ball = (z * 0.5) ** 2 + (y * 0.25) ** 2 + (x * 0.25) ** 2 <= 0.5**2
    # The volume's border continues the data (edge padding), so the closing does not
    # erode objects that touch the border; a margin of the footprint's size on each side.
    pad = [(3, 3), (5, 5), (5, 5)]
    closed = ndi.binary_closing(np.pad(img > t, pad, mode="edge"), structure=ball)
    closed = closed[3:-3, 5:-5, 5:-5]
    assert closed.sum() > (img > t).sum()  # the closing changed the mask
    ref, _ = ndi.label(closed)
    _same_partition(_labels(out), ref)
