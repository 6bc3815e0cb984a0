"""Export a U-Net to ONNX or TorchScript, and load any supported model file.

Exported files carry the :class:`ModelSpec` as JSON (ONNX ``metadata_props`` /
TorchScript extra file ``vrscope.json``, key ``"vrscope"``), so pre- and
post-processing and tile rules survive the export. :func:`load_model` opens
our checkpoints, ONNX and TorchScript files and bioimage.io descriptions.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from analysis.errors import FormatError, ParameterError
from analysis.inference._bioimageio import is_bioimageio, load_bioimageio
from analysis.inference._checkpoint import (
    CHECKPOINT_NAME,
    is_torchscript,
    load_checkpoint,
    unet_spec,
)
from analysis.inference._runtime import (
    ONNX_META_KEY,
    ModelSpec,
    OnnxPredictor,
    Predictor,
    TorchPredictor,
)
from analysis.inference._unet import UNet

__all__ = ["export_onnx", "export_torchscript", "load_model", "model_kind"]

log = logging.getLogger(__name__)

_TS_EXTRA = "vrscope.json"
DEFAULT_OPSET = 18


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' progress prints and deprecation notices (we log instead)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


def _example(model: UNet, size: int | None = None) -> Any:
    import torch

    cfg = model.config
    n = size or 2 * cfg.tile_multiple
    return torch.zeros((1, cfg.in_channels) + (n,) * cfg.dims)


def export_onnx(
    model: UNet, path: str | os.PathLike[str], *, opset: int = DEFAULT_OPSET, check: bool = True
) -> float:
    """Write ``model`` as ONNX with dynamic batch and spatial axes.

    Parameters
    ----------
    model : UNet
    path : path of the ``.onnx`` file
    opset : int, default: 18
    check : bool, default: True
        Run onnxruntime and torch on one random input and compare.

    Returns
    -------
    max_abs_diff : float
        Largest difference of logits between onnxruntime and torch (NaN if not checked).
    """
    import onnx
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    x = _example(model)
    dims = model.config.dims
    names = {0: "batch", **{i + 2: "zyx"[3 - dims + i] for i in range(dims)}}
    with _quiet():
        try:
            # The TorchScript-based exporter takes under a second where the dynamo
            # exporter takes ten or more on a laptop CPU; torch deprecates it, so
            # fall back to dynamo once it is gone.
            torch.onnx.export(
                model,
                (x,),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": names, "logits": names},
            )
        except (TypeError, RuntimeError, NotImplementedError) as exc:
            log.info("TorchScript-based ONNX export failed (%s); using dynamo", exc)
            dynamic = {
                "x": {
                    0: torch.export.Dim("batch"),
                    **{i + 2: torch.export.Dim.AUTO for i in range(dims)},
                }
            }
            torch.onnx.export(
                model,
                (x,),
                str(path),
                dynamo=True,
                opset_version=opset,
                input_names=["input"],
                output_names=["logits"],
                dynamic_shapes=dynamic,
                external_data=False,
            )
    proto = onnx.load(str(path))
    spec = unet_spec(model.config, name=path.stem)
    onnx.helper.set_model_props(proto, {ONNX_META_KEY: json.dumps(spec.to_dict())})
    onnx.save(proto, str(path))
    if not check:
        return float("nan")
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    probe = rng.standard_normal(
        (2, model.config.in_channels) + (3 * model.config.tile_multiple,) * dims
    )
    probe = probe.astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: probe})[0]
    with torch.inference_mode():
        want = model(torch.from_numpy(probe)).numpy()
    diff = float(np.abs(got - want).max())
    log.info("ONNX export %s: max abs difference to torch %.2e", path, diff)
    return diff


def export_torchscript(model: UNet, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` as a scripted TorchScript archive with its spec as an extra file."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = unet_spec(model.config, name=path.stem)
    with _quiet():
        scripted = torch.jit.script(model.cpu().eval())
        torch.jit.save(scripted, str(path), _extra_files={_TS_EXTRA: json.dumps(spec.to_dict())})
    return path


def model_kind(path: str | os.PathLike[str]) -> str:
    """What a model file is: ``checkpoint``, ``onnx``, ``torchscript`` or ``bioimageio``."""
    p = Path(path)
    if is_bioimageio(p):
        return "bioimageio"
    if p.is_dir():
        if (p / CHECKPOINT_NAME).is_file():
            return "checkpoint"
        raise FormatError(f"{p}: folder holds neither {CHECKPOINT_NAME} nor a bioimageio.yaml")
    if not p.exists():
        raise FileNotFoundError(2, "No such file or directory", str(p))
    if p.suffix == ".onnx":
        return "onnx"
    if p.suffix == ".safetensors":
        return "checkpoint"
    if p.suffix in (".pt", ".pth", ".ts", ".torchscript"):
        return "torchscript" if is_torchscript(p) else "checkpoint"
    raise FormatError(
        f"{p.name}: unknown model file (expected .safetensors, .pt, .onnx, TorchScript or bioimageio.yaml)"
    )


def load_model(
    path: str | os.PathLike[str], runtime: str | None = None, device: str = "auto"
) -> Predictor:
    """Open a model file as a :class:`Predictor`.

    Parameters
    ----------
    path : path
        Our checkpoint (folder, ``.safetensors`` or state_dict ``.pt``), an ONNX
        file, a TorchScript file or a bioimage.io description.
    runtime : {"torch", "onnx"} or None
        None: torch for checkpoints, TorchScript and bioimage.io; onnxruntime for
        ONNX. A checkpoint asked to run on onnx is exported to ONNX first.
    device : str, default: "auto"
        Torch device (cuda, mps, cpu); ignored by onnxruntime.
    """
    if runtime not in (None, "torch", "onnx"):
        raise ParameterError(f"runtime must be 'torch' or 'onnx', got {runtime!r}")
    p = Path(path)
    kind = model_kind(p)
    if kind == "bioimageio":
        return load_bioimageio(p, runtime or "torch", device)
    if kind == "onnx":
        if runtime == "torch":
            raise ParameterError(f"{p.name} is an ONNX model: use --runtime onnx")
        return OnnxPredictor(str(p), None)
    if kind == "torchscript":
        if runtime == "onnx":
            raise ParameterError(f"{p.name} is TorchScript: use --runtime torch or export to ONNX")
        import torch

        extra = {_TS_EXTRA: ""}
        try:
            with _quiet():
                module = torch.jit.load(  # type: ignore[no-untyped-call]
                    str(p), map_location="cpu", _extra_files=extra
                )
        except RuntimeError as exc:
            raise FormatError(f"{p.name}: not a loadable TorchScript file") from exc
        if not extra[_TS_EXTRA]:
            raise FormatError(
                f"{p.name}: TorchScript without a vrscope description; describe it with bioimageio.yaml"
            )
        spec = ModelSpec.from_dict(json.loads(extra[_TS_EXTRA]))
        return TorchPredictor(module, spec, device=device)
    model, _ = load_checkpoint(p)
    spec = unet_spec(model.config, name=p.stem if p.is_file() else p.name)
    if runtime == "onnx":
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = Path(tmp) / "model.onnx"
            export_onnx(model, onnx_path, check=False)
            data = onnx_path.read_bytes()
        return OnnxPredictor(data, spec)
    return TorchPredictor(model, spec, device=device)
