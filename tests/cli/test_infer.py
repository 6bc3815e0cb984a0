"""``vrscope train``, ``infer`` and ``export-model`` in-process: stores, .npy, bioimage.io, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from analysis.io import open_labels, open_volume, write_labels, write_ngff
from tests.analysis.inference._helpers import spheres
from vrscope.cli import main

SMALL = ["--width", "8", "--depth", "2", "--patch", "48", "48", "--batch-size", "4", "--quiet"]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    """A store of analytic spheres with instance labels, and a model trained on every 8th plane."""
    tmp = tmp_path_factory.mktemp("cli")
    img, lab = spheres(1, n=48, count=9)
    store = tmp / "spheres.zarr"
    write_ngff(img, store, scale_um=(0.1, 0.1, 0.1), chunks=(16, 16, 16))
    write_labels(store, "balls", lab.astype(np.uint16))
    model = tmp / "model"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    rc = main(
        ["train", str(store), "--labels", "balls", "--instances", "--every", "8",
         "--out", str(model), "--epochs", "12", "--steps", "16", *SMALL]
    )  # fmt: skip
    torch.set_num_threads(before)
    assert rc == 0
    return store, model, lab


def test_train_writes_checkpoint_and_history(trained: tuple[Path, Path, np.ndarray]) -> None:
    _, model, _ = trained
    assert (model / "model.safetensors").is_file()
    assert '"history"' in (model / "training.json").read_text()


def test_infer_into_the_store_segments_the_spheres(
    trained: tuple[Path, Path, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    store, model, lab = trained
    probs = store.parent / "probs.zarr"
    rc = main(
        ["infer", str(store), "--model", str(model), "--out", "pred", "--tile", "32", "32",
         "--probabilities", str(probs), "--quiet"]
    )  # fmt: skip
    assert rc == 0
    assert "labels/pred" in capsys.readouterr().out
    pred = np.asarray(open_labels(store, "pred").read(0))
    # Seven of every eight planes were never annotated; compare with the analytic truth.
    assert f1_score((lab > 0).ravel(), (pred == 1).ravel()) > 0.93
    p = open_volume(probs)
    assert p.levels[0].shape == (2, 48, 48, 48) and len(p.levels) >= 2
    np.testing.assert_allclose(np.asarray(p.read(0)).sum(axis=0), 1.0, atol=1e-4)
    # Objects of class 1 (the spheres) as instance labels.
    rc = main(
        ["infer", str(store), "--model", str(model), "--out", f"{store}:labels/objects",
         "--objects", "object", "--min-volume", "0.01", "--quiet"]
    )  # fmt: skip
    assert rc == 0
    objs = np.asarray(open_labels(store, "objects").read(0))
    assert objs.max() >= 5 and f1_score((lab > 0).ravel(), (objs > 0).ravel()) > 0.93


def test_export_onnx_and_infer_npy_agree(
    trained: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    _, model, lab = trained
    img, _ = spheres(2, n=48, count=9)
    np.save(tmp_path / "in.npy", img)
    assert main(["export-model", str(model), "--format", "onnx"]) == 0
    assert main(["export-model", str(model), "--format", "torchscript"]) == 0
    outs = {}
    for name, m in (("ckpt", model), ("onnx", model / "model.onnx"), ("ts", model / "model.pt")):
        out = tmp_path / f"{name}.npy"
        assert (
            main(
                ["infer", str(tmp_path / "in.npy"), "--model", str(m), "--out", str(out), "--quiet"]
            )
            == 0
        )
        outs[name] = np.load(out)
    assert outs["ckpt"].shape == (2, 48, 48, 48)
    for name in ("onnx", "ts"):
        assert float(np.abs(outs[name] - outs["ckpt"]).max()) < 1e-4


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_infer_bioimageio_npy_reproduces_test_output(
    testdata: Path, tmp_path: Path, runtime: str
) -> None:
    d = testdata / "bioimageio" / "unet2d_nuclei_broad"
    out = tmp_path / "out.npy"
    rc = main(
        ["infer", str(d / "test_input.npy"), "--model", str(d / "bioimageio.yaml"),
         "--out", str(out), "--runtime", runtime, "--quiet"]
    )  # fmt: skip
    assert rc == 0
    got, want = np.load(out), np.load(d / "test_output.npy")
    assert got.shape == want.shape and float(np.abs(got - want).max()) < 1e-4


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_bad_inputs_exit_2_with_one_line(
    trained: tuple[Path, Path, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, model, _ = trained
    np.save(tmp_path / "x.npy", np.zeros((8, 8), np.float32))
    assert (
        main(["infer", str(tmp_path / "missing.npy"), "--model", str(model), "--out", "o.npy"]) == 2
    )
    assert "missing.npy" in _one_line_error(capsys)
    assert main(["infer", str(tmp_path / "x.npy"), "--model", str(model), "--out", "o.zarr"]) == 2
    assert ".npy" in _one_line_error(capsys)
    bad_model = tmp_path / "junk.onnx"
    bad_model.write_bytes(b"not onnx")
    assert (
        main(
            [
                "infer",
                str(tmp_path / "x.npy"),
                "--model",
                str(bad_model),
                "--out",
                str(tmp_path / "o.npy"),
            ]
        )
        == 2
    )
    assert "ONNX" in _one_line_error(capsys)
    assert main(["train", str(store), "--labels", "nope", "--out", str(tmp_path / "m")]) == 2
    assert "nope" in _one_line_error(capsys)
    assert (
        main(["infer", str(store), "--model", str(model), "--out", "pred2", "--tile", "31", "32"])
        == 2
    )
    assert "tile size 31" in _one_line_error(capsys)
    assert main(["export-model", str(tmp_path / "x.npy"), "--format", "onnx"]) == 2
    _one_line_error(capsys)


def test_vrscope_export_forwards_a_checkpoint_to_export_model(
    trained: tuple[Path, Path, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnx
    import onnxruntime as ort

    from analysis.inference import load_checkpoint

    _, model, _ = trained
    out = tmp_path / "fwd.onnx"
    rc = main(["export", str(model), "--format", "onnx", "--out", str(out), "--opset", "17"])
    assert rc == 0
    assert "opset 17" in capsys.readouterr().out
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto)
    assert {o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")} == {17}
    # onnxruntime on the file, against the checkpoint's U-Net in torch.
    net, _ = load_checkpoint(model)
    x = np.random.default_rng(0).normal(size=(2, 1, 24, 40)).astype(np.float32)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    assert float(np.abs(got - want).max()) < 1e-4
    # TorchScript from the safetensors file itself.
    ts = tmp_path / "fwd.pt"
    rc = main(["export", str(model / "model.safetensors"), "--format", "torchscript",
               "--out", str(ts)])  # fmt: skip
    assert rc == 0 and "TorchScript" in capsys.readouterr().out
    scripted = torch.jit.load(str(ts))
    with torch.no_grad():
        assert float((scripted(torch.from_numpy(x)) - torch.from_numpy(want)).abs().max()) < 1e-5
    # Existing output: one line, exit 2; --overwrite replaces it.
    assert main(["export", str(model), "--format", "onnx", "--out", str(out)]) == 2
    assert "exists" in _one_line_error(capsys)
    assert main(["export", str(model), "--format", "onnx", "--out", str(out), "--overwrite"]) == 0
    capsys.readouterr()
    # An ONNX file is not a checkpoint to export.
    assert main(["export", str(out), "--format", "torchscript"]) == 2
    assert "checkpoints" in _one_line_error(capsys)


def test_infer_npy_through_a_scratch_memory_map_matches_ram(
    trained: tuple[Path, Path, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vrscope.commands.infer as infer_cmd

    _, model, _ = trained
    img, _ = spheres(3, n=32, count=4)
    np.save(tmp_path / "in.npy", img)
    argv = ["infer", str(tmp_path / "in.npy"), "--model", str(model), "--quiet", "--out"]
    assert main([*argv, str(tmp_path / "ram.npy")]) == 0
    monkeypatch.setattr(infer_cmd, "_IN_MEMORY_BYTES", 0)  # every output goes to disk
    assert main([*argv, str(tmp_path / "disk.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "disk.npy"), np.load(tmp_path / "ram.npy"))
