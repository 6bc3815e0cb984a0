"""Small models and analytic volumes shared by the inference tests."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from scipy import ndimage as ndi

from analysis.inference import ModelSpec, TorchPredictor


class Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def identity_predictor(dims: int = 3, multiple: int = 1) -> TorchPredictor:
    """A model that returns its input: tiling must give the input back exactly."""
    spec = ModelSpec(dims=dims, in_channels=1, n_classes=1, tile_multiple=multiple, name="identity")
    return TorchPredictor(Identity(), spec, device="cpu")


def spheres(
    seed: int, n: int = 48, count: int = 8, noise: float = 20.0
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int32]]:
    """Bright balls on a dark noisy background, and their instance labels (analytic shapes)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:n, :n, :n]
    lab = np.zeros((n, n, n), np.int32)
    for i in range(count):
        c = rng.uniform(7, n - 7, 3)
        r = rng.uniform(4, 7)
        lab[((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) < r**2] = i + 1
    img = 100.0 + 60.0 * (lab > 0) + rng.normal(0, noise, lab.shape)
    return ndi.gaussian_filter(img, 1.0).astype(np.float32), lab
