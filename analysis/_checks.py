"""Argument checks shared by the compute packages (one message for one mistake)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from analysis.errors import ParameterError

__all__ = ["check_spacing"]


def check_spacing(spacing: Sequence[float] | npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Voxel spacing (z, y, x) in µm as a float array; ParameterError unless 3 positive finite."""
    sp = np.asarray(spacing, dtype=np.float64)
    if sp.shape != (3,) or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise ParameterError(
            f"spacing must be three positive numbers (z, y, x) in µm, got {spacing!r}"
        )
    return sp
