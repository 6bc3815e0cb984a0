"""Geometry helpers shared by the sample generators: noise fields, tubes, ellipsoids, boxes.

Everything works in voxel coordinates (z, y, x) on float32 arrays and on small
bounding boxes, so a generator touches the whole volume only a handful of times.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

__all__ = [
    "Box",
    "ProgressCallback",
    "box_around",
    "polyline_distance",
    "random_rotation",
    "random_unit_vectors",
    "smooth_noise",
]

FloatArray = npt.NDArray[np.float32]
Box = tuple[slice, slice, slice]

#: ``progress(stage, done, total)``: the generators' progress callback.
ProgressCallback = Callable[[str, int, int], None]


def smooth_noise(shape: Sequence[int], correlation: float, rng: np.random.Generator) -> FloatArray:
    """Zero-mean, unit-variance Gaussian random field with a given correlation length.

    The field is drawn on a grid ``correlation`` times coarser, smoothed there and
    linearly upsampled: the full-resolution Gaussian filter this replaces costs
    ``correlation**3`` times more and looks the same at this length scale.

    Parameters
    ----------
    shape : (z, y, x) ints
    correlation : float
        Correlation length in voxels (>= 1).
    rng : numpy Generator

    Returns
    -------
    field : (z, y, x) float32 array
    """
    step = max(1.0, float(correlation))
    coarse_shape = tuple(max(2, int(np.ceil(s / step)) + 2) for s in shape)
    coarse = rng.standard_normal(coarse_shape, dtype=np.float32)
    coarse = ndi.gaussian_filter(coarse, 1.0, mode="wrap")
    # zoom's output shape is round(coarse * factor), which is exactly ``shape`` here.
    zoom = [s / c for s, c in zip(shape, coarse_shape, strict=True)]
    field = ndi.zoom(coarse, zoom, order=1, output=np.float32)
    std = float(field.std())
    field -= np.float32(field.mean())
    if std > 0:
        field /= np.float32(std)
    return np.ascontiguousarray(field, dtype=np.float32)


def random_unit_vectors(n: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """``n`` directions uniform on the sphere, shape (n, 3) in (z, y, x) order."""
    v = rng.standard_normal((n, 3))
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    norm[norm == 0] = 1.0
    out: npt.NDArray[np.float64] = v / norm
    return out


def random_rotation(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """A rotation matrix (3, 3) drawn uniformly from SO(3) (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    out: npt.NDArray[np.float64] = q
    return out


def box_around(
    lo: npt.ArrayLike, hi: npt.ArrayLike, shape: Sequence[int]
) -> tuple[Box, npt.NDArray[np.int64]] | None:
    """Integer bounding box covering the real interval [lo, hi] per axis, clipped to ``shape``.

    Returns
    -------
    box : tuple of 3 slices, or None when the box is empty after clipping
    origin : (3,) int array
        Voxel index of the box's first corner.
    """
    lo_i = np.maximum(np.floor(np.asarray(lo, dtype=float)).astype(np.int64), 0)
    hi_i = np.minimum(np.ceil(np.asarray(hi, dtype=float)).astype(np.int64) + 1, np.asarray(shape))
    if np.any(hi_i <= lo_i):
        return None
    box: Box = (
        slice(int(lo_i[0]), int(hi_i[0])),
        slice(int(lo_i[1]), int(hi_i[1])),
        slice(int(lo_i[2]), int(hi_i[2])),
    )
    return box, lo_i


def polyline_distance(points: npt.NDArray[np.float64], box: Box) -> tuple[FloatArray, FloatArray]:
    """Distance from every voxel of ``box`` to a polyline, and the arc length of the closest point.

    Parameters
    ----------
    points : (K, 3) float array
        Polyline vertices in voxel coordinates (z, y, x), K >= 2.
    box : tuple of 3 slices

    Returns
    -------
    distance : (bz, by, bx) float32 array
    arc_length : (bz, by, bx) float32 array
        Arc length (voxels) along the polyline of the nearest point.
    """
    zz, yy, xx = (
        np.arange(sl.start, sl.stop, dtype=np.float32).reshape(
            [-1 if i == axis else 1 for i in range(3)]
        )
        for axis, sl in enumerate(box)
    )
    shape = (box[0].stop - box[0].start, box[1].stop - box[1].start, box[2].stop - box[2].start)
    best = np.full(shape, np.inf, dtype=np.float32)
    arc = np.zeros(shape, dtype=np.float32)
    start_len = 0.0
    for a, b in zip(points[:-1], points[1:], strict=True):
        seg = b - a
        seg_len2 = float(seg @ seg)
        seg_len = float(np.sqrt(seg_len2))
        dz, dy, dx = zz - np.float32(a[0]), yy - np.float32(a[1]), xx - np.float32(a[2])
        t = (
            dz * np.float32(seg[0]) + dy * np.float32(seg[1]) + dx * np.float32(seg[2])
        ) / np.float32(max(seg_len2, 1e-12))
        np.clip(t, 0.0, 1.0, out=t)
        d2 = (
            (dz - t * np.float32(seg[0])) ** 2
            + (dy - t * np.float32(seg[1])) ** 2
            + (dx - t * np.float32(seg[2])) ** 2
        )
        closer = d2 < best
        best = np.where(closer, d2, best)
        arc = np.where(closer, np.float32(start_len) + t * np.float32(seg_len), arc)
        start_len += seg_len
    return np.sqrt(best).astype(np.float32), arc.astype(np.float32)
