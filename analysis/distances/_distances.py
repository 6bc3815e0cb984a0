"""Distances in µm between points, objects and mask surfaces (anisotropic voxels)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from analysis._checks import check_spacing as _spacing
from analysis.errors import ParameterError

__all__ = [
    "distance_to_mask",
    "distance_to_masks",
    "nearest_object_distance",
    "object_to_mask_distance",
    "surface_distance_map",
]

log = logging.getLogger(__name__)


def _mask(mask: npt.ArrayLike, name: str = "mask") -> npt.NDArray[np.bool_]:
    m = np.asarray(mask)
    if m.ndim != 3:
        raise ParameterError(f"{name} must be a 3D (z, y, x) array, got {m.ndim} dimensions")
    m = m.astype(bool, copy=False)
    if not m.any():
        raise ParameterError(f"{name} is empty: it has no foreground voxel to measure to")
    if m.all():
        raise ParameterError(f"{name} fills the whole volume: it has no surface")
    return m


def surface_distance_map(
    mask: npt.ArrayLike, spacing: Sequence[float] | npt.NDArray[np.float64], *, signed: bool = False
) -> npt.NDArray[np.float64]:
    """Distance (µm) from every voxel to the mask's surface.

    Inside the mask: the distance to the nearest voxel outside it; outside: the distance
    to the nearest voxel inside it. Both come from ``scipy.ndimage.distance_transform_edt``
    with ``sampling=spacing`` (exact Euclidean distances between voxel centres), so a
    voxel next to the surface is one voxel size away from it.

    Parameters
    ----------
    mask : (z, y, x) bool array
    spacing : (3,) floats
        Voxel size in µm.
    signed : bool, default: False
        Negative inside the mask.

    Returns
    -------
    (z, y, x) float64 array
    """
    m = _mask(mask)
    sp = _spacing(spacing)
    outside = ndi.distance_transform_edt(~m, sampling=sp)
    inside = ndi.distance_transform_edt(m, sampling=sp)
    if signed:
        return np.asarray(np.where(m, -inside, outside), dtype=np.float64)
    return np.asarray(np.where(m, inside, outside), dtype=np.float64)


def _voxel_positions(
    shape: tuple[int, ...],
    points_um: npt.ArrayLike,
    spacing: npt.NDArray[np.float64],
    origin_um: Sequence[float],
    order: int,
) -> npt.NDArray[np.float64]:
    pts = np.asarray(points_um, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ParameterError(f"points must be an (N, 3) array of (z, y, x) µm, got {pts.shape}")
    if order not in (0, 1):
        raise ParameterError(f"order must be 0 (nearest voxel) or 1 (trilinear), got {order}")
    vox = (pts - np.asarray(origin_um, dtype=np.float64)) / spacing
    outside = np.any((vox < -0.5) | (vox > np.asarray(shape) - 0.5), axis=1)
    if outside.any():
        first = pts[np.argmax(outside)]
        raise ParameterError(
            f"{int(outside.sum())} point(s) lie outside the volume, e.g. {first.tolist()} µm"
        )
    return np.rint(vox) if order == 0 else vox


def distance_to_mask(
    points_um: npt.ArrayLike,
    mask: npt.ArrayLike,
    spacing: Sequence[float] | npt.NDArray[np.float64],
    *,
    origin_um: Sequence[float] = (0.0, 0.0, 0.0),
    signed: bool = False,
    order: int = 1,
) -> npt.NDArray[np.float64]:
    """Distance (µm) from points (e.g. object centroids) to the nearest surface of a mask.

    Parameters
    ----------
    points_um : (N, 3) float array
        (z, y, x) positions in µm.
    mask : (z, y, x) bool array
        E.g. the nucleus or the cell (plasma membrane = the cell mask's surface).
    spacing : (3,) floats
    origin_um : (3,) floats, default: (0, 0, 0)
        World position of voxel (0, 0, 0).
    signed : bool, default: False
        Negative for points inside the mask.
    order : {0, 1}, default: 1
        Interpolation of the distance map at the points: 0 the nearest voxel, 1
        trilinear (centroids fall between voxel centres).

    Returns
    -------
    (N,) float array
    """
    sp = _spacing(spacing)
    m = _mask(mask)
    vox = _voxel_positions(m.shape, points_um, sp, origin_um, order)
    # Only the voxels around the points are sampled; when they all lie on one side of the
    # surface (centroids of organelles outside the nucleus, inside the cell), one distance
    # transform instead of two is enough.
    hi = np.asarray(m.shape) - 1
    corners = [
        np.clip(np.floor(vox) + np.array(offset), 0, hi).astype(np.intp)
        for offset in np.ndindex(2, 2, 2)
    ]
    at = np.concatenate([m[tuple(c.T)] for c in corners]) if len(vox) else np.zeros(0, bool)
    field = np.zeros(m.shape, dtype=np.float64)
    if (~at).any():
        field[~m] = ndi.distance_transform_edt(~m, sampling=sp)[~m]
    if at.any():
        inside = ndi.distance_transform_edt(m, sampling=sp)[m]
        field[m] = -inside if signed else inside
    values = ndi.map_coordinates(field, vox.T, order=order, mode="nearest")
    return np.asarray(values, dtype=np.float64)


def distance_to_masks(
    points_um: npt.ArrayLike,
    masks: Mapping[str, npt.ArrayLike],
    spacing: Sequence[float] | npt.NDArray[np.float64],
    *,
    origin_um: Sequence[float] = (0.0, 0.0, 0.0),
    order: int = 1,
) -> pd.DataFrame:
    """Distance from points to each of several mask surfaces, and the minimum over them.

    Returns
    -------
    pandas.DataFrame
        One row per point: ``distance_to_<name>_um`` per mask, ``min_distance_um`` and
        ``nearest_surface`` (the name of the closest mask).
    """
    if not masks:
        raise ParameterError("distance_to_masks needs at least one mask")
    cols = {
        f"distance_to_{name}_um": distance_to_mask(
            points_um, m, spacing, origin_um=origin_um, order=order
        )
        for name, m in masks.items()
    }
    table = pd.DataFrame(cols)
    values = table.to_numpy()
    names = list(masks)
    table["min_distance_um"] = values.min(axis=1)
    table["nearest_surface"] = [names[i] for i in values.argmin(axis=1)]
    return table


def _objects(
    labels: npt.ArrayLike,
) -> tuple[npt.NDArray[np.integer], list[int], list[tuple[slice, ...]]]:
    lab = np.asarray(labels)
    if lab.ndim != 3 or not np.issubdtype(lab.dtype, np.integer):
        raise ParameterError(f"labels must be a 3D integer array, got {lab.ndim}D {lab.dtype}")
    slices = ndi.find_objects(lab)
    ids = [i + 1 for i, s in enumerate(slices) if s is not None]
    return lab, ids, [s for s in slices if s is not None]


def object_to_mask_distance(
    labels: npt.ArrayLike, mask: npt.ArrayLike, spacing: Sequence[float] | npt.NDArray[np.float64]
) -> pd.DataFrame:
    """Surface-to-surface distance (µm) from every object to a mask's surface.

    For each object, the smallest :func:`surface_distance_map` value over its voxels:
    the gap between the object and the mask (objects outside the mask, e.g. mitochondria
    to the nucleus) or between the object and the mask's boundary (objects inside it,
    e.g. mitochondria to the plasma membrane). Objects that straddle the surface get
    the distance of the voxel nearest to it.

    Returns
    -------
    pandas.DataFrame
        Columns ``label`` and ``distance_um``.
    """
    sp = _spacing(spacing)
    field = surface_distance_map(mask, sp)
    lab, ids, slices = _objects(labels)
    if lab.shape != field.shape:
        raise ParameterError(f"labels shape {lab.shape} differs from mask shape {field.shape}")
    dist = [float(field[sl][lab[sl] == i].min()) for i, sl in zip(ids, slices, strict=True)]
    return pd.DataFrame({"label": np.asarray(ids, dtype=np.int64), "distance_um": dist})


def _boundary_points(
    lab: npt.NDArray[np.integer], lab_id: int, sl: tuple[slice, ...], sp: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """µm positions of an object's surface voxels (the closest pair always lies on them)."""
    m = lab[sl] == lab_id
    edge = m & ~ndi.binary_erosion(m, border_value=0)
    start = np.array([s.start for s in sl], dtype=np.float64)
    return np.asarray((np.argwhere(edge) + start) * sp, dtype=np.float64)


def nearest_object_distance(
    labels: npt.ArrayLike, spacing: Sequence[float] | npt.NDArray[np.float64]
) -> pd.DataFrame:
    """Surface-to-surface distance (µm) from every object to its nearest other object.

    The distance between two objects is the smallest distance between their voxel
    centres (0 never occurs for distinct labels; touching objects are one voxel apart).
    Exact: candidate objects are pruned with bounding boxes against an upper bound
    taken from the nearest object by centroid, then compared with k-d trees.

    Returns
    -------
    pandas.DataFrame
        Columns ``label``, ``nearest_label``, ``distance_um`` (NaN and -1 when there is
        only one object).
    """
    sp = _spacing(spacing)
    lab, ids, slices = _objects(labels)
    n = len(ids)
    out = pd.DataFrame(
        {
            "label": np.asarray(ids, dtype=np.int64),
            "nearest_label": np.full(n, -1, dtype=np.int64),
            "distance_um": np.full(n, np.nan),
        }
    )
    if n < 2:
        return out
    points = [_boundary_points(lab, i, sl, sp) for i, sl in zip(ids, slices, strict=True)]
    trees = [cKDTree(p) for p in points]
    lo = np.array([[s.start for s in sl] for sl in slices], dtype=np.float64) * sp
    hi = (np.array([[s.stop - 1 for s in sl] for sl in slices], dtype=np.float64)) * sp
    centroids = np.array([p.mean(axis=0) for p in points])
    _, cand = cKDTree(centroids).query(centroids, k=2)
    for a in range(n):
        b0 = int(cand[a, 1])
        best = float(trees[b0].query(points[a], k=1)[0].min())
        best_b = b0
        # Lower bound of any pair's distance: the gap between the two bounding boxes.
        gap = np.maximum(0.0, np.maximum(lo - hi[a], lo[a] - hi))
        lower = np.sqrt((gap * gap).sum(axis=1))
        for b in np.argsort(lower):
            if lower[b] > best:
                break
            if b == a or b == b0:
                continue
            d = float(trees[b].query(points[a], k=1, distance_upper_bound=best)[0].min())
            if d < best:
                best, best_b = d, int(b)
        out.loc[a, "distance_um"] = best
        out.loc[a, "nearest_label"] = ids[best_b]
    return out
