"""Our U-Net checkpoints: plain state_dicts, never pickled objects.

A checkpoint is either

- ``model.safetensors`` (or a folder holding one): the weights, with the model
  description as JSON in the safetensors metadata under ``"vrscope"``; or
- a ``.pt`` state dict with the description beside it, read back with
  ``weights_only=True``.

Neither can execute code when loaded, so checkpoints from others are safe to open.
This module works on state dicts and descriptions in memory
(:func:`checkpoint_state`, :func:`unet_from_state`); the files are written and read
by :mod:`analysis.io` (``write_checkpoint`` / ``read_checkpoint``), which
:func:`save_checkpoint` and :func:`load_checkpoint` call.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from analysis.errors import FormatError
from analysis.inference._runtime import ModelSpec, Step
from analysis.inference._unet import UNet, UNetConfig

__all__ = [
    "checkpoint_state",
    "load_checkpoint",
    "save_checkpoint",
    "unet_from_state",
    "unet_spec",
]

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


def checkpoint_state(
    model: UNet, extra: dict[str, Any] | None = None
) -> tuple[dict[str, Any], str]:
    """The state dict (contiguous CPU tensors) and JSON description of ``model``.

    What :func:`analysis.io.write_checkpoint` stores; :func:`unet_from_state` reverses it.
    """
    desc = _description(model.config, extra)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return state, desc


def unet_from_state(
    state: Mapping[str, Any], description: str | None, source: str = "checkpoint"
) -> tuple[UNet, dict[str, Any]]:
    """Rebuild a :class:`UNet` from a state dict and its JSON description.

    Parameters
    ----------
    state : mapping of str to torch.Tensor
    description : str or None
        The ``"vrscope"`` JSON written by :func:`checkpoint_state`.
    source : str
        Names the checkpoint in error messages.

    Returns
    -------
    model : UNet
        In eval mode, on the CPU.
    extra : dict
        What was stored as ``extra``.
    """
    config = _read_description(description, source)
    model = UNet(config)
    try:
        model.load_state_dict(dict(state))
    except RuntimeError as exc:
        raise FormatError(f"{source}: weights do not fit the described U-Net") from exc
    model.eval()
    extra: dict[str, Any] = json.loads(description or "{}").get("extra", {})
    return model, extra


def save_checkpoint(
    model: UNet, path: str | os.PathLike[str], extra: dict[str, Any] | None = None
) -> Path:
    """Save ``model`` as safetensors (``.safetensors`` or a folder) or a ``.pt`` state_dict.

    The file is written by :func:`analysis.io.write_checkpoint`.

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
    from analysis.io import write_checkpoint

    state, desc = checkpoint_state(model, extra)
    return write_checkpoint(path, state, desc)


def _read_description(text: str | None, source: str) -> UNetConfig:
    if not text:
        raise FormatError(f"{source}: no vrscope model description in the checkpoint")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"{source}: model description is not JSON ({exc.msg})") from exc
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise FormatError(f"{source}: not a vrscope U-Net checkpoint")
    return UNetConfig.from_dict(data["unet"])


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[UNet, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint` without unpickling code.

    The file is read by :func:`analysis.io.read_checkpoint`.

    Returns
    -------
    model : UNet
        In eval mode, on the CPU.
    extra : dict
        What was stored as ``extra``.
    """
    from analysis.io import checkpoint_file, read_checkpoint

    state, text = read_checkpoint(path)
    return unet_from_state(state, text, str(checkpoint_file(path)))
