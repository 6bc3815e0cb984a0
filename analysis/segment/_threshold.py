"""Global (Otsu) and local (adaptive) thresholds for 2D/3D images."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import numpy.typing as npt
from skimage import filters

from analysis.errors import ParameterError

__all__ = ["local_threshold_mask", "otsu_mask", "otsu_threshold"]

log = logging.getLogger(__name__)


def _image(image: npt.ArrayLike) -> npt.NDArray[np.generic]:
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise ParameterError(f"image must be 2D or 3D, got {arr.ndim} dimensions")
    if arr.size == 0:
        raise ParameterError("image is empty")
    return arr


def otsu_threshold(image: npt.ArrayLike, nbins: int = 256) -> float:
    """Otsu's threshold of the whole image (``skimage.filters.threshold_otsu``).

    Raises :class:`ParameterError` for a constant image, which has no threshold.
    """
    arr = _image(image)
    if arr.min() == arr.max():
        raise ParameterError(f"image is constant ({arr.flat[0]}); Otsu needs two intensity levels")
    return float(filters.threshold_otsu(arr, nbins=nbins))  # type: ignore[no-untyped-call]


def otsu_mask(image: npt.ArrayLike, nbins: int = 256) -> npt.NDArray[np.bool_]:
    """Foreground mask ``image > otsu_threshold(image)``."""
    arr = np.asarray(_image(image), dtype=np.float64)
    return np.asarray(arr > otsu_threshold(arr, nbins), dtype=np.bool_)


def local_threshold_mask(
    image: npt.ArrayLike,
    block_size: int = 35,
    method: Literal["gaussian", "mean", "median"] = "gaussian",
    offset: float = 0.0,
) -> npt.NDArray[np.bool_]:
    """Adaptive threshold: each voxel against a weighted mean of its neighbourhood.

    ``skimage.filters.threshold_local`` (n-dimensional) with ``mode="reflect"``.

    Parameters
    ----------
    image : (z, y, x) or (y, x) array
    block_size : int, default: 35
        Odd neighbourhood size in voxels.
    method : {"gaussian", "mean", "median"}, default: "gaussian"
    offset : float, default: 0
        Subtracted from the local threshold.

    Returns
    -------
    bool array of the image's shape
    """
    arr = _image(image)
    if block_size < 3 or block_size % 2 == 0:
        raise ParameterError(f"block_size must be an odd integer >= 3, got {block_size}")
    thresh = filters.threshold_local(  # type: ignore[no-untyped-call]
        arr.astype(np.float64, copy=False), block_size, method=method, offset=offset
    )
    return np.asarray(arr > thresh, dtype=bool)
