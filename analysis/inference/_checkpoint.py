"""Our U-Net checkpoints: plain state_dicts, never pickled objects.

A checkpoint is either

- ``model.safetensors`` (or a folder holding one): the weights, with the model
  description as JSON in the safetensors metadata under ``"vrscope"``; or
- a ``.pt`` file written by ``torch.save({"vrscope": json, "state_dict": ...})``,
  read back with ``torch.load(weights_only=True)``.

Neither can execute code when loaded, so checkpoints from others are safe to open.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

from analysis.errors import FormatError
from analysis.inference._runtime import ModelSpec, Step
from analysis.inference._unet import UNet, UNetConfig

__all__ = [
    "CHECKPOINT_NAME",
    "is_torchscript",
    "load_checkpoint",
    "save_checkpoint",
    "unet_spec",
]

CHECKPOINT_NAME = "model.safetensors"
_FORMAT = "vrscope.unet"


def unet_spec(config: UNetConfig, name: str = "unet") -> ModelSpec:
    """The :class:`ModelSpec` of a :class:`UNet` built from ``config``.

    The halo (context discarded at tile borders) is a quarter of the receptive
    field's growth per level, enough to make tile borders invisible in practice
    (see tests/analysis/inference/test_tiling.py) without wasting most of a tile.
    """
    post = (Step("softmax"),) if config.n_classes > 1 else (Step("sigmoid"),)
    pre = (Step(config.normalization, {"axes": ["z", "y", "x"]}),)
    m = config.tile_multiple
    return ModelSpec(
        dims=config.dims,
        in_channels=config.in_channels,
        n_classes=config.n_classes,
        class_names=config.class_names,
        tile_multiple=m,
        min_tile=m,
        halo=4 * m,
        default_tile=(256, 256) if config.dims == 2 else (64, 64, 64),
        preprocessing=pre,
        postprocessing=post,
        name=name,
    )


def _description(config: UNetConfig, extra: dict[str, Any] | None) -> str:
    data: dict[str, Any] = json.loads(config.to_json())
    data["format"] = _FORMAT
    data["version"] = 1
    if extra:
        data["extra"] = extra
    return json.dumps(data, sort_keys=True)


def save_checkpoint(
    model: UNet, path: str | os.PathLike[str], extra: dict[str, Any] | None = None
) -> Path:
    """Save ``model`` as safetensors (``.safetensors`` or a folder) or a ``.pt`` state_dict.

    Parameters
    ----------
    model : UNet
    path : path
        ``*.safetensors``, ``*.pt`` / ``*.pth``, or a folder (gets ``model.safetensors``).
    extra : dict, optional
        JSON-serialisable facts stored alongside (training settings, scores).

    Returns
    -------
    Path of the written file.
    """
    import torch

    path = Path(path)
    desc = _description(model.config, extra)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if path.suffix in (".pt", ".pth"):
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"vrscope": desc, "state_dict": state}, path)
        return path
    from safetensors.torch import save_file

    if path.suffix != ".safetensors":
        path.mkdir(parents=True, exist_ok=True)
        path = path / CHECKPOINT_NAME
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"vrscope": desc})
    return path


def is_torchscript(path: Path) -> bool:
    """True for a TorchScript archive (it holds code), False for a state_dict ``.pt``."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    return any("/code/" in n or n.endswith("constants.pkl") for n in names)


def _read_description(text: str | None, path: Path) -> UNetConfig:
    if not text:
        raise FormatError(f"{path}: no vrscope model description in the checkpoint")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path}: model description is not JSON ({exc.msg})") from exc
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise FormatError(f"{path}: not a vrscope U-Net checkpoint")
    return UNetConfig.from_dict(data["unet"])


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[UNet, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint` without unpickling code.

    Returns
    -------
    model : UNet
        In eval mode, on the CPU.
    extra : dict
        What was stored as ``extra``.
    """
    import torch

    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            state = load_file(str(path))
        except Exception as exc:  # safetensors raises its own untyped errors
            raise FormatError(f"{path}: not a readable safetensors file ({exc})") from exc
        text = meta.get("vrscope")
    else:
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # the unpickler raises many types for foreign files
            raise FormatError(
                f"{path}: not a state_dict checkpoint ({type(exc).__name__})"
            ) from exc
        if not isinstance(blob, dict) or "state_dict" not in blob:
            raise FormatError(f"{path}: no 'state_dict' in the checkpoint")
        text, state = blob.get("vrscope"), blob["state_dict"]
    config = _read_description(text, path)
    model = UNet(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise FormatError(f"{path}: weights do not fit the described U-Net") from exc
    model.eval()
    extra = json.loads(text or "{}").get("extra", {})
    return model, extra
