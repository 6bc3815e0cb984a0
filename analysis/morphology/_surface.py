"""Surface area of one binary object by marching cubes on its padded crop."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi
from skimage import measure

from analysis.errors import ParameterError

__all__ = ["SurfaceMethod", "object_surface", "object_surface_area"]

log = logging.getLogger(__name__)

SurfaceMethod = Literal["smooth", "binary"]

# Gaussian sigma (in voxels of each axis) applied to the binary crop before marching
# cubes. Chosen on analytic ellipsoids (skimage.draw.ellipsoid_stats) at spacings up to
# 3:1: it removes the staircase that makes marching cubes on raw binary masks overestimate
# areas by 7-19 %, and with the volume correction below the error stays within 1 % for
# objects with >= 5 voxels per semi-axis (tests/analysis/morphology/test_surface.py).
_SMOOTH_SIGMA_VOX = 1.2


def _mesh_volume(verts: npt.NDArray[np.floating], faces: npt.NDArray[np.integer]) -> float:
    """Enclosed volume of a closed triangle mesh (divergence theorem)."""
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    return float(abs(np.einsum("ij,ij->i", a, np.cross(b, c)).sum()) / 6.0)


def object_surface_area(
    mask: npt.NDArray[np.bool_],
    spacing: Sequence[float] | npt.NDArray[np.floating],
    method: SurfaceMethod = "smooth",
) -> float:
    """Surface area (µm²) of the object in a binary crop.

    Parameters
    ----------
    mask : (z, y, x) bool array
        The object's crop (its bounding box is enough; it is padded here).
    spacing : (3,) floats
        Voxel size (z, y, x) in µm.
    method : {"smooth", "binary"}, default: "smooth"
        ``"binary"``: marching cubes at level 0.5 on the padded binary crop. It follows
        the voxel staircase and overestimates smooth surfaces by 7-19 %.
        ``"smooth"``: the crop is blurred with a Gaussian of 1.2 voxels per axis, the
        0.5 iso-surface is extracted, and its area is scaled by
        ``(V_voxels / V_mesh) ** (2/3)`` so that the blur's inward shift does not bias
        it (a similarity correction, exact for a sphere to first order). Within 1 % of
        the analytic area for ellipsoids with >= 5 voxels per semi-axis at anisotropy
        up to 3:1.

    Returns
    -------
    float
        The area in µm²; 0.0 for an empty mask.
    """
    return object_surface(mask, spacing, method)[0]


def object_surface(
    mask: npt.NDArray[np.bool_],
    spacing: Sequence[float] | npt.NDArray[np.floating],
    method: SurfaceMethod = "smooth",
) -> tuple[float, float]:
    """Surface area (µm², as :func:`object_surface_area`) and sphericity of one object.

    Sphericity is ``(36 pi V**2) ** (1/3) / A`` with ``V`` and ``A`` the volume and area
    *of the same surface* (the extracted mesh), so it is at most 1 for any closed
    surface (isoperimetric inequality). For the smooth surface this equals the ratio
    of the voxel volume and the corrected area (the similarity correction cancels);
    mixing the voxel count's volume with a mesh's area, as before, gave values above
    1 for small and thin objects, whose marching-cubes surface encloses far less than
    their voxels (one voxel: an octahedron of a sixth of its volume, sphericity 2.8).

    NaN sphericity (the reason: no shape to measure) for an object nowhere thicker
    than about two voxels with ``method="smooth"``: its blurred mask never reaches the
    iso-level, so its area falls back to the binary facets, whose volume says nothing
    about its shape. An object cut by the volume's border is closed by the border
    plane (the crop is padded), as a hemisphere (0.84) is by its disc.
    """
    if method not in ("smooth", "binary"):
        raise ParameterError(f"surface method must be 'smooth' or 'binary', got {method!r}")
    count = int(np.count_nonzero(mask))
    if count == 0:
        return 0.0, float("nan")
    sp = tuple(float(s) for s in spacing)
    if method == "binary":
        padded = np.pad(mask, 1).astype(np.float32)
        verts, faces, _, _ = measure.marching_cubes(  # type: ignore[no-untyped-call]
            padded, 0.5, spacing=sp
        )
        area = float(measure.mesh_surface_area(verts, faces))  # type: ignore[no-untyped-call]
        return area, _sphericity(_mesh_volume(verts, faces), area)
    pad = int(np.ceil(3 * _SMOOTH_SIGMA_VOX)) + 1
    field = ndi.gaussian_filter(np.pad(mask, pad).astype(np.float32), _SMOOTH_SIGMA_VOX)
    if float(field.max()) <= 0.5:
        # A speck or a one-voxel sheet or line blurs below the iso-level: its facets
        # give an area, but it has no shape to call round or not.
        return object_surface(mask, sp, "binary")[0], float("nan")
    verts, faces, _, _ = measure.marching_cubes(  # type: ignore[no-untyped-call]
        field, 0.5, spacing=sp
    )
    area = float(measure.mesh_surface_area(verts, faces))  # type: ignore[no-untyped-call]
    mesh_volume = _mesh_volume(verts, faces)
    voxel_volume = count * float(np.prod(sp))
    if mesh_volume <= 0.0:
        return area, float("nan")
    return float(area * (voxel_volume / mesh_volume) ** (2.0 / 3.0)), _sphericity(mesh_volume, area)


def _sphericity(volume: float, area: float) -> float:
    """``(36 pi V**2) ** (1/3) / A`` of one closed surface (NaN when degenerate)."""
    if not (area > 0.0 and volume > 0.0):
        return float("nan")
    return float((36.0 * np.pi * volume**2) ** (1.0 / 3.0) / area)
