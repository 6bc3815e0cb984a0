"""bioimage.io: the published unet2d_nuclei_broad reproduces its own test output."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from analysis.errors import FormatError, ParameterError
from analysis.inference import (
    from_model_layout,
    load_bioimageio,
    load_model,
    predict_tiled,
    read_bioimageio,
    to_model_layout,
)


@pytest.fixture(scope="module")
def model_dir(testdata: Path) -> Path:
    return testdata / "bioimageio" / "unet2d_nuclei_broad"


def test_description_is_read(model_dir: Path) -> None:
    m = read_bioimageio(model_dir / "bioimageio.yaml")
    assert m.format_version.startswith("0.5")
    assert m.input_axes == "bcyx" and m.output_axes == "bcyx"
    assert m.spec.dims == 2 and m.spec.in_channels == 1 and m.spec.n_classes == 1
    assert m.spec.fixed_tile == (512, 512) and m.spec.halo == 32
    assert [s.id for s in m.spec.preprocessing] == [
        "ensure_dtype",
        "zero_mean_unit_variance",
        "ensure_dtype",
    ]
    assert [s.id for s in m.spec.postprocessing] == ["sigmoid", "ensure_dtype"]
    assert set(m.weights) == {"torchscript", "onnx"}


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_reproduces_the_published_test_output(model_dir: Path, runtime: str) -> None:
    m = read_bioimageio(model_dir)
    x, expected = m.load_test_tensors()
    pred = load_bioimageio(m, runtime=runtime, device="cpu")
    probs = predict_tiled(pred, from_model_layout(x, m.input_axes))
    got = to_model_layout(probs, m.output_axes)
    assert got.shape == expected.shape
    assert float(np.abs(got - expected).max()) < 1e-4


def test_load_model_dispatches_yaml_and_bare_onnx(model_dir: Path) -> None:
    assert load_model(model_dir / "bioimageio.yaml").runtime == "torch"
    assert load_model(model_dir / "bioimageio.yaml", runtime="onnx").runtime == "onnx"
    # The bare ONNX file has no description: its static shapes still define the tile.
    bare = load_model(model_dir / "weights.onnx")
    assert bare.spec.fixed_tile == (512, 512) and bare.spec.n_classes == 1
    with pytest.raises(ParameterError, match="ONNX"):
        load_model(model_dir / "weights.onnx", runtime="torch")


def test_sha256_mismatch_is_refused(model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    onnx = copy / "weights.onnx"
    data = bytearray(onnx.read_bytes())
    data[-1] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="sha256"):
        load_bioimageio(copy, runtime="onnx")
    # The untouched TorchScript weights still load.
    assert load_bioimageio(copy, runtime="torch", device="cpu").runtime == "torch"


def test_bad_descriptions_give_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bioimageio.yaml"
    bad.write_text("type: dataset\nformat_version: 0.5.4\n")
    with pytest.raises(FormatError, match="not a bioimage.io model"):
        read_bioimageio(bad)
    bad.write_text("type: model\nformat_version: [\n")
    with pytest.raises(FormatError, match="YAML"):
        read_bioimageio(bad)
