"""``vrscope batch infer`` against ``vrscope infer`` (the reference the issue names): the label
image files byte for byte, with a LocalCluster of two workers and with an external scheduler
whose worker is SIGKILLed mid-run; a bad store reported on one line; ``--resume`` recomputing
only the blocks that are missing.

``vrscope infer`` runs torch on one thread here, as every worker does: torch's CPU kernels
round differently in the last bits with other thread counts.

The model is a small 3D U-Net with random weights: its two class probabilities are close
to each other almost everywhere, so the argmax labels flip on the slightest difference in
the blended probabilities, which makes byte equality a sharp test of the block-wise
normalisation statistics and blending.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from analysis.inference import UNet, UNetConfig, save_checkpoint  # noqa: E402
from analysis.io import open_labels, write_ngff  # noqa: E402
from tests.analysis.inference._helpers import spheres  # noqa: E402
from tests.cli.test_batch import loopback_cluster  # noqa: E402, F401  (fixture)
from vrscope.cli import main  # noqa: E402

# 3 x 4 x 4 blocks of 16 x 16 x 16 on a 40 x 56 x 64 image with 32^3 tiles (halo 4): the
# tiles straddle block borders on every axis, and the last blocks are clipped.
SHAPE = (40, 56, 64)
TILE = ["--tile", "32", "32", "32"]
BLOCK = ["--block", "16", "16", "16"]


def _run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _files(label_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(label_dir)): p.read_bytes()
        for p in sorted(label_dir.rglob("*"))
        if p.is_file()
    }


def _assert_same_labels(got: Path, ref: Path, name: str) -> None:
    """Every file of labels/<name> (metadata, every chunk of every level) byte for byte,
    and the labels listing."""
    a, b = _files(got / "labels" / name), _files(ref / "labels" / name)
    assert sorted(a) == sorted(b)
    for key in b:
        assert a[key] == b[key], key
    meta = "zarr.json" if (ref / "labels" / "zarr.json").exists() else ".zattrs"
    assert (got / "labels" / meta).read_bytes() == (ref / "labels" / meta).read_bytes()


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    torch.manual_seed(7)
    net = UNet(UNetConfig(dims=3, depth=2, width=4, class_names=("background", "ball")))
    for p in net.parameters():  # untrained weights, but not the init's near-constant output
        p.data.normal_(0.0, 0.5)
    net.eval()
    path = tmp_path_factory.mktemp("model") / "unet"
    save_checkpoint(net, path)
    return path


@pytest.fixture(scope="module")
def stores(model, tmp_path_factory) -> tuple[list[Path], dict[str, Path]]:
    """Three images (two NGFF 0.4, one 0.5) and copies labelled by ``vrscope infer``."""
    root = tmp_path_factory.mktemp("stores")
    out, refs = [], {}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    for seed, version in ((1, "0.4"), (2, "0.5"), (3, "0.4")):
        img, _ = spheres(seed, n=64, count=10)
        img = img[: SHAPE[0], : SHAPE[1]] * (1.0 + 0.3 * seed)  # other mean and std each
        store = root / f"img{seed}.zarr"
        write_ngff(img, store, scale_um=(0.1, 0.1, 0.1), chunks=(16, 16, 16), version=version)
        ref = root / "ref" / store.name
        shutil.copytree(store, ref)
        rc = main(["infer", str(ref), "--model", str(model), "--out", "pred", *TILE, "--quiet"])
        assert rc == 0
        out.append(store)
        refs[store.name] = ref
    torch.set_num_threads(before)
    return out, refs


def _copies(stores: list[Path], tmp_path: Path) -> list[Path]:
    copies = []
    for store in stores:
        copies.append(tmp_path / store.name)
        shutil.copytree(store, copies[-1])
    return copies


def test_reference_labels_are_not_trivial(stores):
    """Both classes occur: equality below is not equality of constants."""
    _, refs = stores
    for ref in refs.values():
        lab = np.asarray(open_labels(ref, "pred").read(0))
        assert lab.shape == SHAPE
        frac = float(lab.mean())
        assert 0.01 < frac < 0.99, frac


def test_batch_infer_equals_infer_files(stores, model, tmp_path, capsys, monkeypatch):
    originals, refs = stores
    copies = _copies(originals, tmp_path)
    monkeypatch.setattr("vrscope.commands._analysis_io.progress_enabled", lambda: True)
    code, out, err = _run(
        capsys, "batch", "infer", *copies, "--model", model, "--out", "pred", *TILE, *BLOCK,
        "--workers", 2, "--dashboard",
    )  # fmt: skip
    assert code == 0, err
    assert "3 inferred, 0 already done, 0 failed" in out and "dashboard http" in out
    assert out.count("(48 of 48 blocks computed") == 3
    assert "infer blocks: 100%" in err and "statistics: 100%" in err  # the progress bars
    for copy in copies:
        _assert_same_labels(copy, refs[copy.name], "pred")
        assert not copy.with_name(f"{copy.name}.pred.parts").exists()


def test_statistics_reduced_over_many_z_blocks(stores, model, tmp_path, capsys, monkeypatch):
    """Mean and std streamed over ten z-blocks (four planes each) instead of one: the
    moments of each come from a task, merged on the client in order; vrscope infer merges
    the same blocks in one process. The label images are the same files."""
    import analysis.inference._tiling as tiling

    monkeypatch.setattr(tiling, "_STATS_BLOCK_VOXELS", 4 * SHAPE[1] * SHAPE[2])
    originals, _ = stores
    ref, store = _copies(originals[:1], tmp_path / "ref")[0], _copies(originals[:1], tmp_path)[0]
    assert _run(capsys, "infer", ref, "--model", model, "--out", "pred", *TILE, "--quiet")[0] == 0
    code, out, err = _run(
        capsys, "batch", "infer", store, "--model", model, "--out", "pred", *TILE, *BLOCK,
        "--workers", 2,
    )  # fmt: skip
    assert code == 0, err
    _assert_same_labels(store, ref, "pred")


@pytest.mark.parametrize(
    "opts",
    [
        [],
        ["--closing", "0.1", "--min-volume", "0.002"],
        ["--closing", "0.1", "--min-volume", "0.002", "--watershed", "0.4"],
    ],
    ids=["components", "closing-min-volume", "watershed"],
)
def test_batch_objects_equal_infer_objects(stores, model, tmp_path, capsys, opts):
    """--objects: the class's probabilities from the blocks, then threshold, closing,
    small-object removal and components (block-wise, joined across block faces) or
    watershed (on the whole map) as vrscope infer --objects, with objects that cross the
    16³ blocks."""
    from scipy import ndimage as ndi

    originals, _ = stores
    ref, store = _copies(originals[1:2], tmp_path / "ref")[0], _copies(originals[1:2], tmp_path)[0]
    opts = ["--objects", "ball", *opts]
    rc = main(["infer", str(ref), "--model", str(model), "--out", "obj", *TILE, *opts, "--quiet"])
    assert rc == 0
    objects = np.asarray(open_labels(ref, "obj").read(0)).reshape(SHAPE)
    assert int(objects.max()) >= 3  # several objects
    crossing = [
        sl for sl in ndi.find_objects(objects)
        if sl is not None and any(s.start // 16 != (s.stop - 1) // 16 for s in sl)
    ]  # fmt: skip
    assert len(crossing) >= 2
    code, out, err = _run(
        capsys, "batch", "infer", store, "--model", model, "--out", "obj", *TILE, *BLOCK,
        *opts, "--workers", 2,
    )  # fmt: skip
    assert code == 0, err
    _assert_same_labels(store, ref, "obj")


def _corrupt_image_chunk(store: Path) -> None:
    level0 = store / ("s0" if (store / "s0").exists() else "0")
    files = [p for p in level0.rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert files
    max(files, key=lambda p: p.stat().st_size).write_bytes(b"not a compressed chunk" * 4)


def test_bad_store_is_one_line_and_the_others_finish(stores, model, tmp_path, capsys):
    originals, refs = stores
    copies = _copies(originals, tmp_path)
    _corrupt_image_chunk(copies[1])
    code, out, err = _run(
        capsys, "batch", "infer", *copies, "--model", model, "--out", "pred", *TILE, *BLOCK,
        "--workers", 2,
    )  # fmt: skip
    assert code == 1
    assert "2 inferred, 0 already done, 1 failed" in out
    lines = err.strip().splitlines()
    assert lines[0].startswith("1 store(s) failed") and "Traceback" not in err
    assert len(lines) == 2 and "img2.zarr" in lines[1]
    _assert_same_labels(copies[0], refs["img1.zarr"], "pred")
    _assert_same_labels(copies[2], refs["img3.zarr"], "pred")
    assert not (copies[1] / "labels" / "pred").exists()


def test_resume_recomputes_only_the_missing_blocks(stores, model, tmp_path, capsys):
    """The first run fails while writing the label image (a file stands in its way): every
    block is done and kept. Two blocks are then made 'unfinished' (their markers gone,
    their scratch voxels scribbled, as a worker killed mid-block leaves them): --resume
    computes those two only, and the label image equals vrscope infer's."""
    originals, refs = stores
    store = _copies(originals[:1], tmp_path)[0]
    (store / "labels").mkdir(exist_ok=True)
    (store / "labels" / "pred").write_text("in the way")
    args = ["batch", "infer", store, "--model", model, "--out", "pred", *TILE, *BLOCK,
            "--workers", 2]  # fmt: skip
    code, out, err = _run(capsys, *args)
    assert code == 1 and "1 store(s) failed" in err and "Traceback" not in err
    parts = store.with_name(f"{store.name}.pred.parts")
    assert len(list((parts / "blocks").glob("*.json"))) == 48
    for unit in ("z0_y16_x0", "z32_y48_x48"):
        (parts / "blocks" / f"{unit}.json").unlink()
    from analysis.io import ScratchVolume

    vol = ScratchVolume.reopen(parts / "labels.zarr")
    vol[0:16, 16:32, 0:16] = 1 - np.asarray(vol[0:16, 16:32, 0:16])  # block z0_y16_x0
    (store / "labels" / "pred").unlink()
    code, out, err = _run(capsys, *args, "--resume")
    assert code == 0, err
    assert "(2 of 48 blocks computed" in out
    assert "1 inferred, 0 already done, 0 failed" in out
    _assert_same_labels(store, refs[store.name], "pred")
    assert not parts.exists()
    # Done stores are skipped by --resume; without it an existing label image is refused.
    code, out, _ = _run(capsys, *args, "--resume")
    assert code == 0 and "0 inferred, 1 already done, 0 failed" in out
    code, _, err = _run(capsys, *args)
    assert code == 2 and "already has labels/pred" in err and len(err.strip().splitlines()) == 1


def test_resume_refuses_the_parts_of_another_run(stores, model, tmp_path, capsys):
    originals, _ = stores
    store = _copies(originals[:1], tmp_path)[0]
    parts = store.with_name(f"{store.name}.pred.parts")
    parts.mkdir()
    (parts / "job.json").write_text(json.dumps({"store": "elsewhere"}))
    code, out, err = _run(
        capsys, "batch", "infer", store, "--model", model, "--out", "pred", *TILE, "--workers", 1,
        "--resume",
    )  # fmt: skip
    assert code == 1 and "another run" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--workers", "0"], ["--workers", "at least 1"]),
        (["--block", "0", "8", "8"], ["--block"]),
        (["--tile", "32", "32"], ["--tile", "3 sizes"]),
    ],
)
def test_bad_options_one_line(stores, model, tmp_path, capsys, args, words):
    originals, _ = stores
    code, _, err = _run(
        capsys, "batch", "infer", originals[0], "--model", model, "--out", "x", *args
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for w in words:
        assert w in err


def test_missing_store_or_model_one_line(stores, model, tmp_path, capsys):
    originals, _ = stores
    code, _, err = _run(capsys, "batch", "infer", tmp_path / "no.zarr", "--model", model,
                        "--out", "x")  # fmt: skip
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, "batch", "infer", originals[0], "--model", tmp_path / "m",
                        "--out", "x")  # fmt: skip
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1


def test_killed_worker_leaves_the_labels_equal(stores, model, loopback_cluster, tmp_path):  # noqa: F811
    originals, refs = stores
    address, client, pids = loopback_cluster
    copies = _copies(originals[:2], tmp_path)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "vrscope", "batch", "infer", *map(str, copies), "--model",
           str(model), "--out", "pred", *TILE, *BLOCK, "--scheduler", address]  # fmt: skip
    run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        killed = None
        deadline = time.monotonic() + 180
        while killed is None and run.poll() is None and time.monotonic() < deadline:
            busy = [
                w for w, keys in client.processing().items()
                if any("infer_block" in str(k) or "infer blocks" in str(k) for k in keys)
            ]  # fmt: skip
            if busy:
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed = busy[0]
            else:
                time.sleep(0.02)
        stdout, stderr = run.communicate(timeout=400)
    finally:
        if run.poll() is None:
            run.kill()
    assert killed is not None, "no block ran on a worker before the command ended"
    assert run.returncode == 0, stderr[-3000:]
    assert "2 inferred, 0 already done, 0 failed" in stdout
    assert list(client.scheduler_info()["workers"]) == [w for w in pids if w != killed]
    for copy in copies:
        _assert_same_labels(copy, refs[copy.name], "pred")
