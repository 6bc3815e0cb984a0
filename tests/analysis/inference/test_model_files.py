"""Model files live in analysis.io; analysis.inference works on in-memory objects."""

from __future__ import annotations

import ast
import hashlib
import io
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from safetensors import safe_open

import analysis.inference
from analysis.errors import FormatError
from analysis.inference import (
    UNet,
    UNetConfig,
    checkpoint_state,
    onnx_bytes,
    torchscript_bytes,
    unet_from_state,
)
from analysis.io import (
    read_checkpoint,
    read_verified_bytes,
    read_verified_npy,
    sha256_file,
    write_checkpoint,
)

_PACKAGE = Path(analysis.inference.__file__).parent
# Calls that open files or stores; analysis.inference must leave them to analysis.io.
_FILE_CALLS = {
    "open",
    "save",
    "load",
    "save_file",
    "load_file",
    "safe_open",
    "read_text",
    "write_text",
    "read_bytes",
    "write_bytes",
    "open_memmap",
    "TemporaryDirectory",
    "NamedTemporaryFile",
    "mkdtemp",
    "mkdir",
    "to_csv",
    "InferenceSession",
}


def _in_memory(arg: ast.expr) -> bool:
    """``io.BytesIO(...)`` or the name ``buffer`` (our BytesIO variables)."""
    if isinstance(arg, ast.Call):
        return getattr(arg.func, "attr", getattr(arg.func, "id", "")) == "BytesIO"
    return isinstance(arg, ast.Name) and arg.id == "buffer"


def _model() -> UNet:
    torch.manual_seed(1)
    return UNet(UNetConfig(dims=2, width=4, depth=2, n_classes=2)).eval()


def test_inference_package_opens_no_files() -> None:
    offenders = []
    for path in sorted(_PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else getattr(f, "attr", "")
                if name in ("load", "save") and any(_in_memory(a) for a in node.args):
                    continue  # torch.jit.load/save on an io.BytesIO
                # onnxruntime's session is fed the serialized model (checked below)
                if name in _FILE_CALLS and name != "InferenceSession":
                    offenders.append(f"{path.name}:{node.lineno} {name}()")
                if name == "InferenceSession" and not (
                    node.args and isinstance(node.args[0], ast.Name) and node.args[0].id == "data"
                ):
                    offenders.append(f"{path.name}:{node.lineno} InferenceSession(path?)")
            if isinstance(node, ast.Import | ast.ImportFrom):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                mods.append(getattr(node, "module", "") or "")
                bad = [m for m in mods if m.split(".")[0] in ("tempfile", "safetensors", "yaml")]
                offenders += [f"{path.name}:{node.lineno} import {m}" for m in bad]
    assert offenders == [], offenders


def test_in_memory_state_round_trip_through_io(tmp_path: Path) -> None:
    model = _model()
    state, desc = checkpoint_state(model, extra={"k": 1})
    written = write_checkpoint(tmp_path / "ckpt", state, desc)
    assert written == tmp_path / "ckpt" / "model.safetensors"
    # The metadata as safetensors itself reads it (independent reader).
    with safe_open(str(written), framework="pt") as f:
        assert f.metadata()["vrscope"] == desc
        assert set(f.keys()) == set(model.state_dict())
    state2, desc2 = read_checkpoint(tmp_path / "ckpt")
    loaded, extra = unet_from_state(state2, desc2)
    assert extra == {"k": 1}
    x = torch.randn(1, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    with pytest.raises(FormatError, match="no vrscope model description"):
        unet_from_state(state2, None, "here")


def test_serialized_exports_are_valid_models() -> None:
    model = _model()
    proto = onnx.load_model_from_string(onnx_bytes(model, name="m"))
    onnx.checker.check_model(proto)
    assert any(p.key == "vrscope" for p in proto.metadata_props)
    extra = {"vrscope.json": ""}
    module = torch.jit.load(io.BytesIO(torchscript_bytes(model)), _extra_files=extra)
    assert extra["vrscope.json"]
    x = torch.randn(1, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(module(x), model(x), atol=1e-5)


def test_verified_reads_check_sha256_against_hashlib(tmp_path: Path) -> None:
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = tmp_path / "a.npy"
    np.save(path, arr)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert sha256_file(path) == digest
    np.testing.assert_array_equal(read_verified_npy(path, digest.upper()), arr)
    assert read_verified_bytes(path, None) == path.read_bytes()
    with pytest.raises(FormatError, match="sha256"):
        read_verified_bytes(path, "0" * 64, "test input")
    with pytest.raises(FormatError, match="missing"):
        read_verified_bytes(tmp_path / "nope.npy", digest, "test input")
    obj = tmp_path / "o.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FormatError, match="not a .npy array"):
        read_verified_npy(obj, None)


def test_npy_and_scratch_helpers(tmp_path: Path) -> None:
    from analysis.io import read_npy, scratch_array, write_npy

    arr = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    write_npy(tmp_path / "a.npy", arr)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), arr)  # numpy's own reader
    assert isinstance(read_npy(tmp_path / "a.npy"), np.memmap)
    with pytest.raises(FormatError, match="does not exist"):
        write_npy(tmp_path / "no" / "a.npy", arr)
    (tmp_path / "bad.npy").write_bytes(b"junk")
    with pytest.raises(FormatError, match="not a readable .npy"):
        read_npy(tmp_path / "bad.npy")
    with scratch_array((2, 3, 4), np.float32) as acc:
        assert isinstance(acc, np.memmap) and not acc.any()
        folder = Path(acc.filename).parent
        acc[:] = 1.5
        assert folder.is_dir()
    assert not folder.exists()  # deleted on exit
