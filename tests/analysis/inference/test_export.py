"""Checkpoints (no pickle), ONNX and TorchScript export, and loading every model kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.errors import FormatError
from analysis.inference import (
    UNet,
    UNetConfig,
    export_onnx,
    export_torchscript,
    load_checkpoint,
    load_model,
    model_kind,
    predict_tiled,
    save_checkpoint,
)


def _model(dims: int = 2) -> UNet:
    torch.manual_seed(0)
    model = UNet(UNetConfig(dims=dims, width=4, depth=2, n_classes=3, class_names=("bg", "a", "b")))
    return model.eval()


@pytest.mark.parametrize("name", ["ckpt", "m.safetensors", "m.pt"])
def test_checkpoint_round_trip(tmp_path: Path, name: str) -> None:
    model = _model()
    written = save_checkpoint(model, tmp_path / name, extra={"note": "x"})
    loaded, extra = load_checkpoint(tmp_path / name)
    assert extra == {"note": "x"} and written.exists()
    assert loaded.config == model.config
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pwned",))


def test_pickled_code_is_never_executed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "evil": _Boom()}, path)
    with pytest.raises(FormatError):
        load_checkpoint(path)
    assert "pwned" not in capsys.readouterr().out


@pytest.mark.parametrize("dims", [2, 3])
def test_onnx_and_torchscript_agree_with_torch(tmp_path: Path, dims: int) -> None:
    model = _model(dims)
    diff = export_onnx(model, tmp_path / "m.onnx")
    assert diff < 1e-4
    export_torchscript(model, tmp_path / "m.ts")
    save_checkpoint(model, tmp_path / "ckpt")
    assert model_kind(tmp_path / "m.onnx") == "onnx"
    assert model_kind(tmp_path / "m.ts") == "torchscript"
    assert model_kind(tmp_path / "ckpt") == "checkpoint"
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(8, 20, 24)).astype(np.float32)
    ref = predict_tiled(load_model(tmp_path / "ckpt", device="cpu"), vol, tile=16, overlap=4)
    for path in ("m.onnx", "m.ts"):
        pred = load_model(tmp_path / path, device="cpu")
        # The exported spec carries pre/post-processing and class names.
        assert pred.spec.class_names == ("bg", "a", "b")
        got = predict_tiled(pred, vol, tile=16, overlap=4)
        assert float(np.abs(got - ref).max()) < 1e-4, path


def test_checkpoint_runs_on_onnxruntime(tmp_path: Path) -> None:
    model = _model()
    save_checkpoint(model, tmp_path / "m.safetensors")
    vol = np.random.default_rng(1).normal(size=(2, 16, 16)).astype(np.float32)
    a = predict_tiled(load_model(tmp_path / "m.safetensors", device="cpu"), vol)
    b = predict_tiled(load_model(tmp_path / "m.safetensors", runtime="onnx"), vol)
    assert float(np.abs(a - b).max()) < 1e-4


def test_unknown_model_files_are_format_errors(tmp_path: Path) -> None:
    p = tmp_path / "model.bin"
    p.write_bytes(b"nothing")
    with pytest.raises(FormatError, match="unknown model file"):
        load_model(p)
    q = tmp_path / "m.safetensors"
    q.write_bytes(b"\x00" * 16)
    with pytest.raises(FormatError):
        load_model(q)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.onnx")
