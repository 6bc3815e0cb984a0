"""Planted code in model files never runs (issue 21: the campaign's 32 model files).

Every command that loads a model the user names (``infer``, ``batch infer``,
``export-model``) is given files built to run code when loaded the naive way: a
pickle whose ``__reduce__`` writes a marker file (as a state-dict ``.pt``, inside a
TorchScript archive's ``data.pkl`` / ``constants.pkl``, inside a ``.npy`` input), a
bioimage.io YAML with ``!!python/object/apply`` tags or weights that only exist as
Python architecture code, an ONNX model with an op from a custom domain. Each must be
refused in one line (exit 2, no traceback) in a fresh process, and the marker file
must never appear. The payload is checked to be live: ``pickle.loads`` / PyYAML's
unsafe loader on the same bytes do create the marker.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.cli._bounded import check_clean, run_cli


class _Plant:
    """Pickles to a call of ``exec`` that creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.code = f"open({str(marker)!r}, 'w').write('planted code ran')"

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (self.code,))


def _evil_pickle(marker: Path) -> bytes:
    return pickle.dumps({"state_dict": {}, "vrscope": "{}", "x": _Plant(marker)}, protocol=2)


def _state_dict_pt(tmp: Path, marker: Path) -> str:
    import torch

    torch.save({"state_dict": {"w": torch.zeros(2)}, "evil": _Plant(marker)}, tmp / "m.pt")
    return "m.pt"


def _raw_pickle_pth(tmp: Path, marker: Path) -> str:
    (tmp / "m.pth").write_bytes(_evil_pickle(marker))
    return "m.pth"


def _torchscript(tmp: Path) -> Path:
    from analysis.inference import UNet, UNetConfig, export_torchscript

    model = UNet(UNetConfig(dims=2, width=2, depth=1, n_classes=2, class_names=("bg", "fg")))
    return export_torchscript(model.eval(), tmp / "good.pt")


def _replace_in_zip(src: Path, dst: Path, suffix: str, data: bytes) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        hit = False
        for info in zin.infolist():
            if info.filename.endswith(suffix):
                zout.writestr(info, data)
                hit = True
            else:
                zout.writestr(info, zin.read(info.filename))
    assert hit, suffix


def _torchscript_data_pkl(tmp: Path, marker: Path) -> str:
    _replace_in_zip(_torchscript(tmp), tmp / "m.pt", "/data.pkl", _evil_pickle(marker))
    return "m.pt"


def _torchscript_constants_pkl(tmp: Path, marker: Path) -> str:
    _replace_in_zip(_torchscript(tmp), tmp / "m.ts", "/constants.pkl", _evil_pickle(marker))
    return "m.ts"


def _torchscript_extra_file(tmp: Path, marker: Path) -> str:
    """The description travels as an extra file: a pickle there must not be unpickled."""
    _replace_in_zip(_torchscript(tmp), tmp / "m.pt", "extra/vrscope.json", _evil_pickle(marker))
    return "m.pt"


def _yaml_apply(tmp: Path, marker: Path) -> str:
    (tmp / "rdf.yaml").write_text(
        "format_version: 0.5.3\ntype: model\nname: evil\n"
        f"description: !!python/object/apply:builtins.exec [\"open('{marker}', 'w')\"]\n"
    )
    return "rdf.yaml"


def _yaml_object_new(tmp: Path, marker: Path) -> str:
    (tmp / "bioimageio.yaml").write_text(
        "format_version: 0.5.3\ntype: model\nname: evil\n"
        "weights:\n  torchscript: !!python/object/new:builtins.exec\n"
        f"    - \"open('{marker}', 'w')\"\n"
    )
    return "."


def _yaml_state_dict_only(tmp: Path, marker: Path) -> str:
    """Weights only as ``pytorch_state_dict`` with the author's architecture code: running
    it would need importing that code."""
    code = f"open({str(marker)!r}, 'w').write('imported')\nclass Net: pass\n"
    (tmp / "net.py").write_text(code)
    (tmp / "w.pt").write_bytes(_evil_pickle(marker))
    sha = hashlib.sha256((tmp / "w.pt").read_bytes()).hexdigest()
    (tmp / "rdf.yaml").write_text(
        "format_version: 0.5.3\ntype: model\nname: evil\n"
        "inputs:\n  - id: raw\n    axes: [{type: batch}, {type: channel, channel_names: [r]},"
        " {type: space, id: y, size: 16}, {type: space, id: x, size: 16}]\n"
        "outputs:\n  - id: out\n    axes: [{type: batch}, {type: channel, channel_names: [a]},"
        " {type: space, id: y, size: 16}, {type: space, id: x, size: 16}]\n"
        "weights:\n  pytorch_state_dict:\n    source: w.pt\n"
        f"    sha256: {sha}\n    architecture:\n      source: net.py\n      callable: Net\n"
    )
    return "rdf.yaml"


def _yaml_torchscript_planted(tmp: Path, marker: Path) -> str:
    """A description whose TorchScript weights (sha256 right) carry a planted pickle."""
    _torchscript_data_pkl(tmp, marker)
    sha = hashlib.sha256((tmp / "m.pt").read_bytes()).hexdigest()
    (tmp / "rdf.yaml").write_text(
        "format_version: 0.5.3\ntype: model\nname: evil\n"
        "inputs:\n  - id: raw\n    axes: [{type: batch}, {type: channel, channel_names: [r]},"
        " {type: space, id: y, size: 16}, {type: space, id: x, size: 16}]\n"
        "outputs:\n  - id: out\n    axes: [{type: batch}, {type: channel, channel_names: [a, b]},"
        " {type: space, id: y, size: 16}, {type: space, id: x, size: 16}]\n"
        f"weights:\n  torchscript:\n    source: m.pt\n    sha256: {sha}\n"
    )
    return "rdf.yaml"


def _onnx_custom_domain(tmp: Path, marker: Path) -> str:
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Pwn", ["x"], ["y"], domain="evil.ops", cmd=f"touch {marker}")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 16, 16])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("evil.ops", 1)]
    )
    onnx.save(model, tmp / "m.onnx")
    return "m.onnx"


def _safetensors_evil_metadata(tmp: Path, marker: Path) -> str:
    """The description is JSON in the metadata: a pickle (or a YAML tag) there is data."""
    from safetensors.numpy import save_file

    meta = {"vrscope": _evil_pickle(marker).decode("latin-1")}
    save_file({"w": np.zeros(3, np.float32)}, str(tmp / "m.safetensors"), metadata=meta)
    return "m.safetensors"


MODELS: dict[str, Callable[[Path, Path], str]] = {
    "state-dict-pt": _state_dict_pt,
    "raw-pickle-pth": _raw_pickle_pth,
    "torchscript-data-pkl": _torchscript_data_pkl,
    "torchscript-constants-pkl": _torchscript_constants_pkl,
    "torchscript-extra-file": _torchscript_extra_file,
    "yaml-python-apply": _yaml_apply,
    "yaml-python-object-new": _yaml_object_new,
    "yaml-state-dict-only": _yaml_state_dict_only,
    "yaml-torchscript-planted": _yaml_torchscript_planted,
    "onnx-custom-domain": _onnx_custom_domain,
    "safetensors-pickle-metadata": _safetensors_evil_metadata,
}


def _argv(command: str, spec: str, tmp: Path) -> list[str]:
    if command == "infer":
        np.save(tmp / "v.npy", np.zeros((2, 16, 16), np.float32))
        return ["infer", "v.npy", "--model", spec, "--out", "p.npy"]
    if command == "batch-infer":
        from analysis.io import write_ngff

        write_ngff(np.zeros((2, 16, 16), np.uint8), tmp / "s.zarr", scale_um=(1.0, 1.0, 1.0))
        return ["batch", "infer", "s.zarr", "--model", spec, "--out", "pred"]
    return ["export-model", spec, "--format", "onnx", "--out", "e.onnx"]


@pytest.mark.parametrize("kind", MODELS, ids=str)
@pytest.mark.parametrize("command", ["infer", "batch-infer", "export-model"])
def test_planted_code_in_a_model_file_never_runs(tmp_path: Path, kind: str, command: str) -> None:
    marker = tmp_path / "PLANTED"
    spec = MODELS[kind](tmp_path, marker)
    assert not marker.exists()
    outcome = run_cli(_argv(command, spec, tmp_path), tmp_path)
    assert not marker.exists(), f"planted code ran: {outcome.err}"
    why = check_clean(outcome)
    assert why is None, why


def test_an_object_npy_input_is_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "PLANTED"
    arr = np.empty(1, dtype=object)
    arr[0] = _Plant(marker)
    np.save(tmp_path / "v.npy", arr, allow_pickle=True)
    from analysis.inference import UNet, UNetConfig, save_checkpoint

    save_checkpoint(UNet(UNetConfig(dims=2, width=2, depth=1, n_classes=2)), tmp_path / "ckpt")
    outcome = run_cli(["infer", "v.npy", "--model", "ckpt", "--out", "p.npy"], tmp_path)
    assert not marker.exists(), f"planted code ran: {outcome.err}"
    assert check_clean(outcome) is None, check_clean(outcome)


def test_the_payloads_are_live(tmp_path: Path) -> None:
    """The same bytes do run their code when loaded naively (so the tests above can fail)."""
    import yaml

    marker = tmp_path / "PLANTED"
    pickle.loads(_evil_pickle(marker))
    assert marker.exists()
    marker.unlink()
    _yaml_apply(tmp_path, marker)
    yaml.unsafe_load((tmp_path / "rdf.yaml").read_text())
    assert marker.exists()
    marker.unlink()
    _torchscript_data_pkl(tmp_path, marker)
    with zipfile.ZipFile(tmp_path / "m.pt") as zf:
        name = next(n for n in zf.namelist() if n.endswith("/data.pkl"))
        pickle.load(io.BytesIO(zf.read(name)))
    assert marker.exists()
    marker.unlink()
    _yaml_state_dict_only(tmp_path, marker)
    exec(compile((tmp_path / "net.py").read_text(), "net.py", "exec"), {})
    assert marker.exists()
    os.remove(marker)
