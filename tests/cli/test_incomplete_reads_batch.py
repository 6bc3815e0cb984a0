"""The ``batch`` commands (and ``segment``) on damaged stores (issue 21): a chunk that exists
but cannot be read (corrupt bytes, a folder where the chunk file should be) fails its unit
with a line naming the store, level and chunk and how to run anyway (``batch measure``: its
block, exit 1, blocks done kept for ``--resume``; the many-stores commands: that store's row
of ``summary.csv``, the others finish, exit 1; ``segment``: one line, exit 2). With
``--allow-missing`` they run and the last line says ``INCOMPLETE: N chunk(s) unreadable``.

References: the same store with the damaged chunk's region set to zero by zarr-python
(``zarr.open_array(...)[region] = 0``), measured by NumPy (voxel counts per label),
labelled by ``scipy.ndimage.label``, or run through the single-store command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr
from scipy import ndimage as ndi

from tests.cli.test_incomplete_reads import CHUNKS, DAMAGED, _chunk_file, _store, _zeroed
from vrscope.cli import main


def _run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _damage(chunk: Path, how: str) -> None:
    if how == "corrupt":
        chunk.write_bytes(b"not a chunk at all" * 4)
    else:
        chunk.unlink()
        chunk.mkdir()  # zarr's own read takes the folder for an absent chunk: zeros
        (chunk / "x").write_bytes(b"1")


def _zero_with_zarr(level: Path, coords: tuple[int, ...], chunks: tuple[int, ...]) -> None:
    """The reference store: the chunk's region set to 0 by zarr-python."""
    arr = zarr.open_array(str(level), mode="r+")
    arr[tuple(slice(c * n, (c + 1) * n) for c, n in zip(coords, chunks, strict=True))] = 0


def _incomplete(stdout: str, n: int) -> None:
    assert stdout.strip().splitlines()[-1].startswith(f"INCOMPLETE: {n} chunk(s) unreadable")


def _counts(lab: np.ndarray) -> dict[int, int]:
    ids, n = np.unique(lab[lab > 0], return_counts=True)
    return dict(zip(ids.tolist(), n.tolist(), strict=True))


@pytest.mark.parametrize(
    ("version", "damage"), [("0.5", "folder"), ("0.4", "folder"), ("0.5", "corrupt")]
)
def test_batch_measure_refuses_a_damaged_chunk_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str, damage: str
) -> None:
    store, lab, level0 = _store(tmp_path, version)
    chunk = _chunk_file(level0, DAMAGED)
    _damage(chunk, damage)
    out = tmp_path / "m.csv"
    argv = [
        "batch", "measure", store, "--labels", "blobs", "--out", out, "--surface", "binary",
        "--workers", 1, "--block", 16, 16, 32,  # blocks of 1 x 1 x 2 chunks
    ]  # fmt: skip
    code, stdout, err = _run(capsys, *argv)
    assert code == 1 and "Traceback" not in err
    failures = [ln for ln in err.splitlines() if "ChunkError" in ln]
    assert len(failures) == 1, err
    key = str(chunk.relative_to(level0.parent))
    for word in (key, "level 0", "s.zarr", "--allow-missing"):
        assert word in failures[0], failures[0]
    assert not out.exists()

    code, stdout, err = _run(capsys, *argv, "--allow-missing")
    assert code == 0, err
    _incomplete(stdout, 1)
    table = pd.read_csv(out)
    expected = _zeroed(lab, DAMAGED)
    assert _counts(expected) != _counts(lab)  # the chunk held objects
    got = dict(zip(table["label"].tolist(), table["voxel_count"].tolist(), strict=True))
    assert got == _counts(expected)


def _segment_store(root: Path, name: str, seed: int) -> tuple[Path, np.ndarray]:
    from analysis.io import write_ngff

    rng = np.random.default_rng(seed)
    img = ndi.gaussian_filter(rng.random((16, 32, 32)), 1.5).astype(np.float32)
    path = root / f"{name}.zarr"
    write_ngff(img, path, version="0.5", chunks=CHUNKS, scale_um=(0.5, 0.25, 0.25))
    return path, img


def _same_partition(got: np.ndarray, ref: np.ndarray) -> None:
    """Equal up to renumbering: the same foreground, and a one-to-one map of ids."""
    np.testing.assert_array_equal(got > 0, ref > 0)
    fg = ref > 0
    pairs = np.unique(np.stack([got[fg], ref[fg]]), axis=1)
    n_ref = len(np.unique(ref[fg]))
    assert n_ref > 3
    assert pairs.shape[1] == n_ref == len(np.unique(got[fg]))


def _image_chunk(store: Path) -> Path:
    return _chunk_file(store / "s0", DAMAGED)


def test_batch_segment_reports_a_damaged_store_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from analysis.io import open_volume

    (tmp_path / "in").mkdir()
    (good, good_img), (bad, bad_img) = (
        _segment_store(tmp_path / "in", name, seed) for name, seed in (("a", 1), ("b", 2))
    )
    threshold = float(np.quantile(bad_img, 0.7))
    chunk = _image_chunk(bad)
    _damage(chunk, "folder")
    out = tmp_path / "seg"
    argv = ["batch", "segment", good, bad, "--out", out, "--threshold", threshold]
    code, stdout, err = _run(capsys, *argv, "--workers", 1)
    assert code == 1 and "Traceback" not in err
    assert "1 segmented, 0 already done, 1 failed" in stdout
    table = pd.read_csv(out / "summary.csv").set_index("name")
    assert table["status"].to_dict() == {"a": "ok", "b": "failed"}
    key = str(chunk.relative_to(bad))
    assert key in table.at["b", "error"] and "level 0" in table.at["b", "error"]
    assert any(key in ln and "--allow-missing" in ln for ln in err.splitlines()), err
    assert not (out / "b").exists()

    code, stdout, err = _run(capsys, *argv, "--workers", 1, "--allow-missing", "--resume")
    assert code == 0, err
    assert "1 segmented, 1 already done, 0 failed" in stdout
    _incomplete(stdout, 1)
    table = pd.read_csv(out / "summary.csv").set_index("name")
    assert table["unreadable_chunks"].to_dict() == {"a": 0, "b": 1}
    assert key in json.loads((out / "b" / "unreadable_chunks.json").read_text())[0]
    for name, img, damaged in (("a", good_img, False), ("b", bad_img, True)):
        if damaged:
            img = _zeroed(img, DAMAGED)
        ref, _ = ndi.label(img > threshold)  # 6-connected
        got = open_volume(out / name / "segmentation.zarr").open_labels("segmentation")
        _same_partition(np.asarray(got.read(0)), ref)


def test_segment_refuses_a_damaged_chunk_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from analysis.io import open_volume

    store, img = _segment_store(tmp_path, "a", 3)
    chunk = _image_chunk(store)
    _damage(chunk, "corrupt")
    threshold = float(np.quantile(img, 0.7))
    out = tmp_path / "out.zarr"
    argv = ["segment", store, "--out", out, "--threshold", threshold]
    code, _, err = _run(capsys, *argv)
    assert code == 2 and "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("WARNING")]
    assert len(lines) == 1, err
    for word in (str(chunk.relative_to(store)), "level 0", "--allow-missing"):
        assert word in lines[0]
    assert not out.exists()
    code, stdout, err = _run(capsys, *argv, "--allow-missing")
    assert code == 0, err
    _incomplete(stdout, 1)
    ref, _ = ndi.label(_zeroed(img, DAMAGED) > threshold)
    _same_partition(np.asarray(open_volume(out).open_labels("segmentation").read(0)), ref)


def test_batch_profile_reports_a_damaged_store_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The report of the store read with the chunk as empty equals ``vrscope profile`` of
    the store whose chunk zarr-python set to zero."""
    from analysis.io import write_fibsem_sample
    from analysis.synthetic import fibsem_cell

    store = tmp_path / "cell.zarr"
    chunks = (32, 32, 32)
    write_fibsem_sample(fibsem_cell(96, seed=1), store, version="0.5", chunks=chunks)
    level0 = store / "labels" / "mitochondria" / "s0"
    files = [p for p in level0.rglob("*") if p.is_file() and p.name != "zarr.json"]
    chunk = max(files, key=lambda p: p.stat().st_size)  # one with objects in it
    coords = tuple(int(c) for c in chunk.relative_to(level0).parts[1:])
    ref_store = tmp_path / "zeroed.zarr"
    shutil.copytree(store, ref_store)
    _zero_with_zarr(ref_store / "labels" / "mitochondria" / "s0", coords, chunks)
    ref = tmp_path / "ref"
    assert _run(capsys, "profile", ref_store, "--out", ref)[0] == 0
    _damage(chunk, "folder")

    out = tmp_path / "reports"
    code, stdout, err = _run(capsys, "batch", "profile", store, "--out", out, "--workers", 1)
    assert code == 1 and "Traceback" not in err
    table = pd.read_csv(out / "summary.csv")
    assert table["status"].tolist() == ["failed"]
    assert str(chunk.relative_to(level0.parent)) in table.at[0, "error"]
    assert not (out / "cell").exists()

    code, stdout, err = _run(
        capsys, "batch", "profile", store, "--out", out, "--workers", 1, "--allow-missing"
    )
    assert code == 0, err
    _incomplete(stdout, 1)
    got = json.loads((out / "cell" / "summary.json").read_text())
    want = json.loads((ref / "summary.json").read_text())
    got.pop("timings_s", None)
    want.pop("timings_s", None)
    assert got == want
    for name in ("volumes", "mitochondria", "correlations"):
        assert (out / "cell" / f"{name}.csv").read_bytes() == (ref / f"{name}.csv").read_bytes()


def test_batch_infer_reports_a_damaged_store_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The label image of the store read with the chunk as empty equals, file for file,
    ``vrscope infer``'s on the store whose chunk zarr-python set to zero."""
    torch = pytest.importorskip("torch")
    from analysis.inference import UNet, UNetConfig, save_checkpoint
    from analysis.io import write_ngff
    from tests.analysis.inference._helpers import spheres
    from tests.cli.test_batch_infer import _assert_same_labels

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as every worker: the same bits (see test_batch_infer)
    try:
        torch.manual_seed(7)
        net = UNet(UNetConfig(dims=3, depth=2, width=4, class_names=("background", "ball")))
        for p in net.parameters():
            p.data.normal_(0.0, 0.5)
        net.eval()
        model = tmp_path / "unet"
        save_checkpoint(net, model)
        img, _ = spheres(1, n=32, count=4)
        store = tmp_path / "img.zarr"
        chunks = (16, 16, 16)
        write_ngff(img, store, scale_um=(0.1, 0.1, 0.1), chunks=chunks, version="0.5")
        coords = (1, 0, 1)
        ref = tmp_path / "ref" / "img.zarr"
        shutil.copytree(store, ref)
        _zero_with_zarr(ref / "s0", coords, chunks)
        tile = ["--tile", 16, 16, 16]
        assert _run(capsys, "infer", ref, "--model", model, "--out", "pred", *tile)[0] == 0
        chunk = _chunk_file(store / "s0", coords)
        _damage(chunk, "folder")
        argv = ["batch", "infer", store, "--model", model, "--out", "pred", *tile]
        code, stdout, err = _run(capsys, *argv, "--workers", 1)
        assert code == 1 and "Traceback" not in err
        assert "0 inferred, 0 already done, 1 failed" in stdout
        failures = [ln for ln in err.splitlines() if "ChunkError" in ln]
        assert len(failures) == 1, err
        for word in (str(chunk.relative_to(store)), "level 0", "--allow-missing"):
            assert word in failures[0], failures[0]
        assert not (store / "labels" / "pred").exists()

        code, stdout, err = _run(capsys, *argv, "--workers", 1, "--allow-missing", "--resume")
        assert code == 0, err
        _incomplete(stdout, 1)
        _assert_same_labels(store, ref, "pred")
    finally:
        torch.set_num_threads(before)
