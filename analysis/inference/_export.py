"""Export a U-Net to ONNX or TorchScript, and load any supported model file.

Exported files carry the :class:`ModelSpec` as JSON (ONNX ``metadata_props`` /
TorchScript extra file ``vrscope.json``, key ``"vrscope"``), so pre- and
post-processing and tile rules survive the export. :func:`load_model` opens
our checkpoints, ONNX and TorchScript files and bioimage.io descriptions.

Serialization happens in memory (:func:`onnx_bytes`, :func:`torchscript_bytes`);
the files are written and read by :mod:`analysis.io` (``write_model_bytes``,
``read_model_bytes``, ``read_checkpoint``).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from analysis.errors import FormatError, ParameterError
from analysis.inference._bioimageio import load_bioimageio
from analysis.inference._checkpoint import load_checkpoint, unet_spec
from analysis.inference._runtime import (
    ONNX_META_KEY,
    ModelSpec,
    OnnxPredictor,
    Predictor,
    TorchPredictor,
)
from analysis.inference._unet import UNet

__all__ = [
    "check_onnx",
    "export_onnx",
    "export_torchscript",
    "load_model",
    "model_kind",
    "onnx_bytes",
    "torchscript_bytes",
    "torchscript_predictor",
]

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


def onnx_bytes(model: UNet, *, opset: int = DEFAULT_OPSET, name: str = "unet") -> bytes:
    """Serialize ``model`` as ONNX (dynamic batch and spatial axes) with its spec.

    Parameters
    ----------
    model : UNet
    opset : int, default: 18
    name : str, default: "unet"
        The model name stored in the spec (metadata ``"vrscope"``).

    Returns
    -------
    The serialized ``ModelProto``.
    """
    import onnx
    import torch

    model = model.cpu().eval()
    x = _example(model)
    dims = model.config.dims
    names = {0: "batch", **{i + 2: "zyx"[3 - dims + i] for i in range(dims)}}
    with _quiet():
        try:
            # The TorchScript-based exporter takes under a second where the dynamo
            # exporter takes ten or more on a laptop CPU; torch deprecates it, so
            # fall back to dynamo once it is gone.
            # The TorchScript-based exporter writes to a file-like object (its
            # documented contract; the shared signature only names paths).
            buffer = io.BytesIO()
            torch.onnx.export(
                model,
                (x,),
                buffer,  # type: ignore[arg-type]
                dynamo=False,
                opset_version=opset,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": names, "logits": names},
            )
            proto = onnx.load_model_from_string(buffer.getvalue())
        except (TypeError, RuntimeError, NotImplementedError) as exc:
            log.info("TorchScript-based ONNX export failed (%s); using dynamo", exc)
            dynamic = {
                "x": {
                    0: torch.export.Dim("batch"),
                    **{i + 2: torch.export.Dim.AUTO for i in range(dims)},
                }
            }
            program = torch.onnx.export(
                model,
                (x,),
                None,
                dynamo=True,
                opset_version=opset,
                input_names=["input"],
                output_names=["logits"],
                dynamic_shapes=dynamic,
            )
            assert program is not None
            proto = program.model_proto
    spec = unet_spec(model.config, name=name)
    onnx.helper.set_model_props(proto, {ONNX_META_KEY: json.dumps(spec.to_dict())})
    data: bytes = proto.SerializeToString()
    return data


def check_onnx(model: UNet, data: bytes) -> float:
    """Largest difference of logits between onnxruntime (``data``) and torch on a random batch."""
    import onnxruntime as ort
    import torch

    dims = model.config.dims
    rng = np.random.default_rng(0)
    probe = rng.standard_normal(
        (2, model.config.in_channels) + (3 * model.config.tile_multiple,) * dims
    )
    probe = probe.astype(np.float32)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: probe})[0]
    with torch.inference_mode():
        want = model.cpu().eval()(torch.from_numpy(probe)).numpy()
    return float(np.abs(got - want).max())


def export_onnx(
    model: UNet, path: str | os.PathLike[str], *, opset: int = DEFAULT_OPSET, check: bool = True
) -> float:
    """Write ``model`` as ONNX with dynamic batch and spatial axes.

    Serialized by :func:`onnx_bytes`, written by :func:`analysis.io.write_model_bytes`.

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
    from analysis.io import write_model_bytes

    path = Path(path)
    data = onnx_bytes(model, opset=opset, name=path.stem)
    write_model_bytes(path, data)
    if not check:
        return float("nan")
    diff = check_onnx(model, data)
    log.info("ONNX export %s: max abs difference to torch %.2e", path, diff)
    return diff


def torchscript_bytes(model: UNet, name: str = "unet") -> bytes:
    """Serialize ``model`` as a scripted TorchScript archive with its spec as an extra file."""
    import torch

    spec = unet_spec(model.config, name=name)
    buffer = io.BytesIO()
    with _quiet():
        scripted = torch.jit.script(model.cpu().eval())
        torch.jit.save(scripted, buffer, _extra_files={_TS_EXTRA: json.dumps(spec.to_dict())})
    return buffer.getvalue()


def export_torchscript(model: UNet, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` as TorchScript (:func:`torchscript_bytes`) to ``path``."""
    from analysis.io import write_model_bytes

    path = Path(path)
    return write_model_bytes(path, torchscript_bytes(model, name=path.stem))


def model_kind(path: str | os.PathLike[str]) -> str:
    """What a model file is: ``checkpoint``, ``onnx``, ``torchscript`` or ``bioimageio``.

    Delegates to :func:`analysis.io.model_file_kind`.
    """
    from analysis.io import model_file_kind

    return model_file_kind(path)


def torchscript_predictor(data: bytes, name: str, device: str = "auto") -> TorchPredictor:
    """A :class:`TorchPredictor` for a TorchScript archive (bytes) that carries our spec."""
    import torch

    extra = {_TS_EXTRA: ""}
    try:
        with _quiet():
            module = torch.jit.load(  # type: ignore[no-untyped-call]
                io.BytesIO(data), map_location="cpu", _extra_files=extra
            )
    except (RuntimeError, UnicodeDecodeError) as exc:  # Unicode: an extra file not UTF-8
        raise FormatError(f"{name}: not a loadable TorchScript file") from exc
    if not extra[_TS_EXTRA]:
        raise FormatError(
            f"{name}: TorchScript without a vrscope description; describe it with bioimageio.yaml"
        )
    try:
        described = json.loads(extra[_TS_EXTRA])
    except ValueError as exc:
        raise FormatError(f"{name}: its vrscope description is not JSON") from exc
    spec = ModelSpec.from_dict(described)
    return TorchPredictor(module, spec, device=device)


def load_model(
    path: str | os.PathLike[str], runtime: str | None = None, device: str = "auto"
) -> Predictor:
    """Open a model file as a :class:`Predictor`.

    Files are read through :mod:`analysis.io`; this function only decides what to build.

    Parameters
    ----------
    path : path
        Our checkpoint (folder, ``.safetensors`` or state_dict ``.pt``), an ONNX
        file, a TorchScript file or a bioimage.io description.
    runtime : {"torch", "onnx"} or None
        None: torch for checkpoints, TorchScript and bioimage.io; onnxruntime for
        ONNX. A checkpoint asked to run on onnx is exported to ONNX (in memory) first.
    device : str, default: "auto"
        Torch device (cuda, mps, cpu); ignored by onnxruntime.
    """
    from analysis.io import read_model_bytes

    if runtime not in (None, "torch", "onnx"):
        raise ParameterError(f"runtime must be 'torch' or 'onnx', got {runtime!r}")
    p = Path(path)
    kind = model_kind(p)
    if kind == "bioimageio":
        return load_bioimageio(p, runtime or "torch", device)
    if kind == "onnx":
        if runtime == "torch":
            raise ParameterError(f"{p.name} is an ONNX model: use --runtime onnx")
        return OnnxPredictor(read_model_bytes(p), None, name=p.name)
    if kind == "torchscript":
        if runtime == "onnx":
            raise ParameterError(f"{p.name} is TorchScript: use --runtime torch or export to ONNX")
        return torchscript_predictor(read_model_bytes(p), p.name, device=device)
    model, _ = load_checkpoint(p)
    name = p.stem if p.suffix in (".safetensors", ".pt", ".pth") else p.name
    spec = unet_spec(model.config, name=name)
    if runtime == "onnx":
        return OnnxPredictor(onnx_bytes(model, name=name), spec, name=name)
    return TorchPredictor(model, spec, device=device)
