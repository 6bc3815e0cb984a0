"""U-Net 2D/3D (Ronneberger et al. 2015; Çiçek et al. 2016) for semantic segmentation.

The network is a plain torch module built from a :class:`UNetConfig`. The config
is JSON-serialisable and travels with the weights (safetensors metadata, ONNX
metadata, TorchScript extra files), so a checkpoint never needs pickle.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from analysis.errors import FormatError, ParameterError

__all__ = ["NORMS", "UNet", "UNetConfig"]

NORMS = ("batch", "instance", "group", "none")


@dataclass(frozen=True)
class UNetConfig:
    """Architecture and data conventions of a :class:`UNet`.

    Parameters
    ----------
    dims : {2, 3}, default: 2
        Spatial dimensions of the convolutions.
    in_channels : int, default: 1
    n_classes : int, default: 2
        Output channels; class 0 is background by convention. Probabilities come
        from a softmax over classes (``n_classes >= 2``) or a sigmoid (``n_classes == 1``).
    depth : int, default: 3
        Resolution levels; spatial input sizes must be multiples of ``2 ** (depth - 1)``.
    width : int, default: 16
        Feature channels at the first level, doubled at every level down.
    norm : {"batch", "instance", "group", "none"}, default: "batch"
        "instance" and "group" normalise per tile, so tiled inference can show
        seams; "batch" (running statistics at inference) does not.
    class_names : tuple of str, default: ("background", "class1", ...)
    normalization : str, default: "zero_mean_unit_variance"
        How inputs are normalised: statistics over the whole input volume.
    """

    dims: int = 2
    in_channels: int = 1
    n_classes: int = 2
    depth: int = 3
    width: int = 16
    norm: str = "batch"
    class_names: tuple[str, ...] = field(default=())
    normalization: str = "zero_mean_unit_variance"

    def __post_init__(self) -> None:
        if self.dims not in (2, 3):
            raise ParameterError(f"U-Net dims must be 2 or 3, got {self.dims}")
        if self.in_channels < 1 or self.n_classes < 1:
            raise ParameterError("U-Net in_channels and n_classes must be >= 1")
        if not 1 <= self.depth <= 6:
            raise ParameterError(f"U-Net depth must be 1..6, got {self.depth}")
        if self.width < 1:
            raise ParameterError(f"U-Net width must be >= 1, got {self.width}")
        if self.norm not in NORMS:
            raise ParameterError(f"U-Net norm must be one of {NORMS}, got {self.norm!r}")
        if self.class_names and len(self.class_names) != self.n_classes:
            raise ParameterError(
                f"{len(self.class_names)} class names given for {self.n_classes} classes"
            )
        if not self.class_names:
            names = ("background",) + tuple(f"class{i}" for i in range(1, self.n_classes))
            object.__setattr__(self, "class_names", names[: self.n_classes])
        object.__setattr__(self, "class_names", tuple(self.class_names))

    @property
    def tile_multiple(self) -> int:
        """Spatial input sizes must be multiples of this (one per max-pool)."""
        return int(2 ** (self.depth - 1))

    def to_json(self) -> str:
        return json.dumps({"unet": asdict(self)}, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UNetConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise FormatError(f"unknown U-Net config fields: {sorted(unknown)}")
        data = dict(data)
        if "class_names" in data:
            data["class_names"] = tuple(data["class_names"])
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> UNetConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FormatError(f"model config is not valid JSON: {exc.msg}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("unet"), dict):
            raise FormatError("model config has no 'unet' section")
        return cls.from_dict(data["unet"])


def _norm(kind: str, dims: int, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm3d(channels)
    if kind == "instance":
        return (
            nn.InstanceNorm2d(channels, affine=True)
            if dims == 2
            else nn.InstanceNorm3d(channels, affine=True)
        )
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    return nn.Identity()


class _DoubleConv(nn.Sequential):
    def __init__(self, dims: int, cin: int, cout: int, norm: str) -> None:
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        bias = norm == "none"
        super().__init__(
            conv(cin, cout, 3, padding=1, bias=bias),
            _norm(norm, dims, cout),
            nn.ReLU(inplace=True),
            conv(cout, cout, 3, padding=1, bias=bias),
            _norm(norm, dims, cout),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """A U-Net returning class logits.

    Input ``(B, in_channels, *spatial)`` float32 with every spatial size a
    multiple of ``config.tile_multiple``; output ``(B, n_classes, *spatial)``
    logits (apply softmax, or sigmoid for one class, to get probabilities).
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        d = config.dims
        widths = [config.width * 2**i for i in range(config.depth)]
        self.down = nn.ModuleList()
        cin = config.in_channels
        for w in widths:
            self.down.append(_DoubleConv(d, cin, w, config.norm))
            cin = w
        self.pool = nn.MaxPool2d(2) if d == 2 else nn.MaxPool3d(2)
        tconv = nn.ConvTranspose2d if d == 2 else nn.ConvTranspose3d
        self.up = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        for w_hi, w_lo in zip(widths[::-1][:-1], widths[::-1][1:], strict=True):
            self.up.append(tconv(w_hi, w_lo, 2, stride=2))
            self.up_conv.append(_DoubleConv(d, 2 * w_lo, w_lo, config.norm))
        conv = nn.Conv2d if d == 2 else nn.Conv3d
        self.head = conv(widths[0], config.n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        n_down = len(self.down)
        for i, block in enumerate(self.down):
            x = block(x)
            if i < n_down - 1:
                skips.append(x)
                x = self.pool(x)
        for i, (up, conv) in enumerate(zip(self.up, self.up_conv, strict=True)):
            x = up(x)
            x = conv(torch.cat([skips[n_down - 2 - i], x], dim=1))
        out: torch.Tensor = self.head(x)
        return out
