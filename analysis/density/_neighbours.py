"""k-nearest-neighbour distances and Gaussian kernel density of point sets (µm)."""

from __future__ import annotations

import logging
import math

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from analysis.errors import ParameterError

__all__ = ["cutoff_radius", "gaussian_kde_density", "knn_mean_distance"]

log = logging.getLogger(__name__)


def _points(points: npt.ArrayLike, name: str = "points") -> npt.NDArray[np.float64]:
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ParameterError(f"{name} must be an (N, d) array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{name} contain NaN or infinite coordinates")
    return arr


def knn_mean_distance(points_um: npt.ArrayLike, k: int = 8) -> npt.NDArray[np.float64]:
    """Mean distance from each point to its ``k`` nearest neighbours, the point itself excluded.

    Parameters
    ----------
    points_um : (N, d) float array
        Coordinates in µm (e.g. object centroids, z, y, x).
    k : int, default: 8

    Returns
    -------
    (N,) float array
        Mean of the ``k`` smallest distances to *other* points, in µm.

    Raises
    ------
    ParameterError
        For ``k < 1`` or fewer than ``k + 1`` points.
    """
    pts = _points(points_um)
    if k < 1:
        raise ParameterError(f"k must be at least 1, got {k}")
    if len(pts) < k + 1:
        raise ParameterError(f"k = {k} needs at least {k + 1} points, got {len(pts)}")
    # Query k + 1 and drop the first column: with duplicates the "self" match may be a
    # twin at distance 0, which is equivalent because both are at distance 0.
    dist, _ = cKDTree(pts).query(pts, k=k + 1)
    return np.asarray(dist[:, 1:].mean(axis=1), dtype=np.float64)


def cutoff_radius(n_points: int, bandwidth: float, rtol: float) -> float:
    """Radius beyond which neighbours can be ignored with relative error <= ``rtol``.

    At a training point the density has the point's own term ``1`` (times the common
    normaliser) and every other point contributes at most ``exp(-r² / 2h²)`` when it is
    farther than ``r``. Dropping all ``N - 1`` of them changes the sum by at most
    ``(N - 1) exp(-r² / 2h²)``, relative to a sum of at least 1, so
    ``r = h sqrt(2 ln((N - 1) / rtol))`` bounds the relative error by ``rtol``.
    """
    if n_points <= 1:
        return 0.0
    return bandwidth * math.sqrt(2.0 * math.log(max(n_points - 1, 1) / rtol))


def gaussian_kde_density(
    points_um: npt.ArrayLike,
    bandwidth_um: float = 0.1,
    *,
    rtol: float = 1e-8,
) -> npt.NDArray[np.float64]:
    """Gaussian kernel density at every point, in points per µm^d normalised to 1.

    Defined as scikit-learn's ``KernelDensity(kernel="gaussian", bandwidth=h).fit(X)``
    evaluated with ``exp(score_samples(X))``:
    ``f(x_i) = 1 / (N (2 pi h²)^(d/2)) * sum_j exp(-|x_i - x_j|² / 2h²)``, the point itself
    included. Only neighbours within :func:`cutoff_radius` are summed (a k-d tree
    ball query), which bounds the relative error by ``rtol`` (see there) and makes the
    cost proportional to the number of close pairs instead of N².

    Parameters
    ----------
    points_um : (N, d) float array
    bandwidth_um : float, default: 0.1
        Kernel standard deviation ``h`` in µm.
    rtol : float, default: 1e-8
        Guaranteed bound on the relative error against the exact sum.

    Returns
    -------
    (N,) float array
    """
    pts = _points(points_um)
    if not (np.isfinite(bandwidth_um) and bandwidth_um > 0):
        raise ParameterError(f"bandwidth must be a positive number of µm, got {bandwidth_um!r}")
    if not 0 < rtol < 1:
        raise ParameterError(f"rtol must be in (0, 1), got {rtol!r}")
    n, d = pts.shape
    if n == 0:
        raise ParameterError("kernel density needs at least one point")
    h = float(bandwidth_um)
    radius = cutoff_radius(n, h, rtol)
    tree = cKDTree(pts)
    pairs = tree.query_pairs(radius, output_type="ndarray")
    sums = np.ones(n, dtype=np.float64)  # the point's own kernel, exp(0)
    if len(pairs):
        diff = pts[pairs[:, 0]] - pts[pairs[:, 1]]
        w = np.exp(-np.einsum("ij,ij->i", diff, diff) / (2.0 * h * h))
        sums += np.bincount(pairs[:, 0], weights=w, minlength=n)
        sums += np.bincount(pairs[:, 1], weights=w, minlength=n)
    norm = n * (2.0 * np.pi * h * h) ** (d / 2.0)
    return np.asarray(sums / norm, dtype=np.float64)
