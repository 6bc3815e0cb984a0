"""Distance maps of a mask ``VolumeSource`` larger than memory, chunk by chunk.

The Euclidean distance transform is global, but its clipped version is local: a
voxel's distance to the nearest feature (surface voxel), capped at ``D`` µm, only
depends on the voxels within ``D``. With a halo of ``ceil(D / spacing)`` voxels per axis
every voxel outside the extended block lies more than ``D`` away, so for each voxel
of the block:

- if the extended block's EDT value ``d_box < D``, the nearest feature within the box
  is closer than anything outside it, hence ``d_box`` is the true distance;
- otherwise the true distance is ``>= D`` (a nearer feature would lie in the box and
  make ``d_box < D``), so the capped value is ``D``.

So :func:`surface_distance_map_blockwise` equals
``np.minimum(surface_distance_map(mask), D)`` on the whole array (same SciPy EDT; equal
up to the last bit where equidistant features are found in another order). This is the
"halo bound" method; it needs no second pass. Distances beyond ``D`` are not available
chunk-wise without a global pass, and analyses rarely need them (distances of organelles
to a membrane are bounded by the cell size: use ``D`` = that size).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

from analysis._checks import check_spacing as _spacing
from analysis.errors import ParameterError
from analysis.segment import BlockwiseSource
from analysis.volume import VolumeSource

__all__ = ["surface_distance_map_blockwise"]


def _capped_edt(
    feature_free: npt.NDArray[np.bool_], sp: npt.NDArray[np.float64], cap: float
) -> npt.NDArray[np.float64]:
    """EDT of the True voxels to the nearest False voxel, capped at ``cap``."""
    if feature_free.all():
        # No feature in the extended block: every voxel is >= cap away (SciPy would
        # return distances to a virtual feature outside the array).
        return np.full(feature_free.shape, cap)
    d = ndi.distance_transform_edt(feature_free, sampling=sp)
    return np.minimum(np.asarray(d, dtype=np.float64), cap)


def surface_distance_map_blockwise(
    source: VolumeSource,
    max_distance_um: float,
    *,
    signed: bool = False,
    spacing: Sequence[float] | None = None,
    level: int = 0,
) -> BlockwiseSource:
    """Lazy distance (µm) of every voxel to the mask's surface, capped at ``max_distance_um``.

    Equals ``np.minimum(surface_distance_map(mask, spacing, signed=...), D)`` (with
    ``-D`` as the floor inside when ``signed``) on the whole array; see the module
    docstring for the halo rule and why it is exact. Each ``read`` computes its region
    with a halo of ``ceil(D / spacing)`` voxels per axis.

    Parameters
    ----------
    source : VolumeSource
        Mask (non-zero = inside).
    max_distance_um : float
        The cap ``D``; also sets the halo (memory and time grow with it).
    signed : bool, default: False
        Negative inside the mask.
    spacing : (3,) floats, default: the level's voxel size
    level : int, default: 0

    Returns
    -------
    BlockwiseSource
        float64, one level; read it region by region or write it with
        :func:`analysis.io.write_ngff`.
    """
    if not (math.isfinite(max_distance_um) and max_distance_um > 0):
        raise ParameterError(f"max distance must be a positive number of µm, got {max_distance_um}")
    sp = _spacing(spacing if spacing is not None else source.levels[level].scale_um)
    cap = float(max_distance_um)
    halo = tuple(int(math.ceil(cap / s)) for s in sp)

    def fn(block: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        m = block != 0
        inside = _capped_edt(m, sp, cap)
        outside = _capped_edt(~m, sp, cap)
        return np.where(m, -inside if signed else inside, outside)

    return BlockwiseSource(
        source, fn, halo=halo, dtype=np.float64, level=level, name=f"{source.name}-distance"
    )
