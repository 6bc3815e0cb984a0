"""Probabilities -> objects: threshold, closing, small-object removal, components or watershed.

The clean-up operators are those of :mod:`analysis.segment` (physical radii and
volumes in µm), so a U-Net's output is cleaned exactly like a classical
segmentation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

from analysis.errors import ParameterError
from analysis.segment import binary_close, remove_small_objects_um3, watershed_split

__all__ = ["objects_from_probabilities"]


def objects_from_probabilities(
    probability: npt.ArrayLike,
    *,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    threshold: float = 0.5,
    closing_um: float = 0.0,
    min_volume_um3: float = 0.0,
    method: str = "components",
    min_distance_um: float = 1.0,
) -> npt.NDArray[np.int32]:
    """Instance labels from one class's probability map.

    Parameters
    ----------
    probability : (Z, Y, X) float array
        Probability of the object class (e.g. ``probabilities[k]`` from
        :func:`predict_tiled`).
    spacing : (3,) floats, default: (1, 1, 1)
        Voxel size (z, y, x) in µm.
    threshold : float, default: 0.5
    closing_um : float, default: 0
        Radius of a morphological closing (0: none).
    min_volume_um3 : float, default: 0
        Objects smaller than this are removed.
    method : {"components", "watershed"}, default: "components"
        6-connected components, or a distance-transform watershed that splits
        touching objects (:func:`analysis.segment.watershed_split`).
    min_distance_um : float, default: 1.0
        Watershed only: peaks closer than this merge.

    Returns
    -------
    labels : (Z, Y, X) int32, objects numbered 1..n
    """
    prob = np.asarray(probability)
    if prob.ndim != 3:
        raise ParameterError(f"probability map must be (Z, Y, X), got shape {prob.shape}")
    if method not in ("components", "watershed"):
        raise ParameterError(f"method must be 'components' or 'watershed', got {method!r}")
    mask = prob > threshold
    if closing_um > 0:
        mask = binary_close(mask, closing_um, spacing)
    if min_volume_um3 > 0:
        mask = np.asarray(remove_small_objects_um3(mask, min_volume_um3, spacing), dtype=bool)
    if method == "watershed":
        return watershed_split(mask, spacing, min_distance_um)
    labels, _ = ndi.label(mask)
    return np.asarray(labels, dtype=np.int32)
