"""U-Net shapes, size rule and config validation."""

from __future__ import annotations

import pytest
import torch

from analysis.errors import FormatError, ParameterError
from analysis.inference import UNet, UNetConfig


@pytest.mark.parametrize(("dims", "depth"), [(2, 1), (2, 3), (3, 2)])
def test_output_has_input_shape_and_classes(dims: int, depth: int) -> None:
    cfg = UNetConfig(dims=dims, depth=depth, width=4, n_classes=3, in_channels=2)
    size = (cfg.tile_multiple * 3,) * dims
    out = UNet(cfg).eval()(torch.zeros((2, 2, *size)))
    assert tuple(out.shape) == (2, 3, *size)
    assert cfg.tile_multiple == 2 ** (depth - 1)


def test_parameters_grow_with_width_and_depth() -> None:
    def count(cfg: UNetConfig) -> int:
        return sum(p.numel() for p in UNet(cfg).parameters())

    assert count(UNetConfig(width=8)) > count(UNetConfig(width=4))
    assert count(UNetConfig(depth=4)) > count(UNetConfig(depth=3))


def test_config_round_trip_and_validation() -> None:
    cfg = UNetConfig(dims=3, n_classes=2, class_names=("bg", "mito"), norm="group")
    assert UNetConfig.from_json(cfg.to_json()) == cfg
    assert UNetConfig(n_classes=3).class_names == ("background", "class1", "class2")
    for bad in (
        dict(dims=4),
        dict(norm="layer"),
        dict(depth=0),
        dict(n_classes=2, class_names=("a",)),
    ):
        with pytest.raises(ParameterError):
            UNetConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(FormatError):
        UNetConfig.from_json('{"unet": {"dims": 2, "colour": 1}}')
