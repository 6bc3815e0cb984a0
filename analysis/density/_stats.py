"""Group comparisons, correlations and splitting objects into regions by a mask."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from analysis.errors import ParameterError

__all__ = [
    "CorrelationResult",
    "TTestResult",
    "correlation",
    "principal_plane",
    "region_of_points",
    "split_mask_by_plane",
    "t_test",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TTestResult:
    """A two-tailed two-sample t-test."""

    statistic: float
    pvalue: float
    df: float
    equal_var: bool
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float

    @property
    def method(self) -> str:
        return "Student" if self.equal_var else "Welch"


@dataclass(frozen=True)
class CorrelationResult:
    """A correlation coefficient with its two-sided p-value."""

    r: float
    pvalue: float
    n: int
    method: str


def _sample(values: npt.ArrayLike, name: str, minimum: int) -> npt.NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64).ravel()
    arr = arr[np.isfinite(arr)]
    if arr.size < minimum:
        raise ParameterError(f"{name} needs at least {minimum} finite values, got {arr.size}")
    return arr


def t_test(a: npt.ArrayLike, b: npt.ArrayLike, *, equal_var: bool = False) -> TTestResult:
    """Two-tailed two-sample t-test (``scipy.stats.ttest_ind``); NaNs are dropped.

    Parameters
    ----------
    a, b : (N,), (M,) float arrays
    equal_var : bool, default: False
        True for Student's test (pooled variance), False for Welch's.
    """
    xa = _sample(a, "group a", 2)
    xb = _sample(b, "group b", 2)
    res = stats.ttest_ind(xa, xb, equal_var=equal_var, alternative="two-sided")
    return TTestResult(
        statistic=float(res.statistic),
        pvalue=float(res.pvalue),
        df=float(res.df),
        equal_var=equal_var,
        n_a=int(xa.size),
        n_b=int(xb.size),
        mean_a=float(xa.mean()),
        mean_b=float(xb.mean()),
    )


def correlation(
    x: npt.ArrayLike, y: npt.ArrayLike, method: Literal["pearson", "spearman"] = "pearson"
) -> CorrelationResult:
    """Pearson or Spearman correlation with a two-sided p-value (SciPy).

    Pairs where either value is NaN are dropped.
    """
    xa = np.asarray(x, dtype=np.float64).ravel()
    ya = np.asarray(y, dtype=np.float64).ravel()
    if xa.shape != ya.shape:
        raise ParameterError(f"x and y differ in length ({xa.size} vs {ya.size})")
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[keep], ya[keep]
    if xa.size < 3:
        raise ParameterError(f"a correlation needs at least 3 finite pairs, got {xa.size}")
    if method == "pearson":
        res = stats.pearsonr(xa, ya)
        r, p = float(res.statistic), float(res.pvalue)
    elif method == "spearman":
        sres = stats.spearmanr(xa, ya)
        r, p = float(sres.statistic), float(sres.pvalue)
    else:
        raise ParameterError(f"method must be 'pearson' or 'spearman', got {method!r}")
    return CorrelationResult(r=r, pvalue=p, n=int(xa.size), method=method)


def region_of_points(
    points_um: npt.ArrayLike,
    regions: npt.ArrayLike,
    spacing: Sequence[float],
    origin_um: Sequence[float] = (0.0, 0.0, 0.0),
) -> npt.NDArray[np.int64]:
    """Region id (value of ``regions``) at each point's nearest voxel; -1 outside the volume.

    Parameters
    ----------
    points_um : (N, 3) float array
        (z, y, x) positions in µm, e.g. centroids.
    regions : (z, y, x) bool or integer array
        A mask (-> 0/1) or a region label image.
    spacing : (3,) floats
        Voxel size in µm.
    """
    pts = np.asarray(points_um, dtype=np.float64)
    reg = np.asarray(regions)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ParameterError(f"points must be an (N, 3) array, got shape {pts.shape}")
    if reg.ndim != 3:
        raise ParameterError(f"regions must be a 3D array, got {reg.ndim} dimensions")
    sp = np.asarray(spacing, dtype=np.float64)
    idx = np.rint((pts - np.asarray(origin_um, dtype=np.float64)) / sp).astype(np.int64)
    inside = np.all((idx >= 0) & (idx < np.asarray(reg.shape)), axis=1)
    out = np.full(len(pts), -1, dtype=np.int64)
    if inside.any():
        ii = idx[inside]
        out[inside] = reg[ii[:, 0], ii[:, 1], ii[:, 2]].astype(np.int64)
    return out


def principal_plane(
    mask: npt.ArrayLike, spacing: Sequence[float]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Centroid (µm) and unit major principal axis of a mask: the plane that cuts it in two
    "ends" (e.g. two halves of a nucleus) passes through the centroid with that normal."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 3:
        raise ParameterError(f"mask must be 3D, got {m.ndim} dimensions")
    coords = np.argwhere(m)
    if len(coords) < 2:
        raise ParameterError("cannot split a mask with fewer than 2 voxels")
    phys = coords * np.asarray(spacing, dtype=np.float64)
    centre = phys.mean(axis=0)
    _, vecs = np.linalg.eigh(np.cov((phys - centre).T))
    return centre, np.asarray(vecs[:, -1], dtype=np.float64)


def split_mask_by_plane(
    mask: npt.ArrayLike,
    spacing: Sequence[float],
    normal: Sequence[float] | None = None,
) -> npt.NDArray[np.uint8]:
    """Split a mask into two parts (1 and 2) by a plane through its centroid.

    Parameters
    ----------
    mask : (z, y, x) bool array
    spacing : (3,) floats
        Voxel size in µm (the plane is placed in physical space).
    normal : (3,) floats, optional
        Plane normal (z, y, x). Default: the mask's major principal axis
        (:func:`principal_plane`).

    Returns
    -------
    (z, y, x) uint8 array
        0 outside the mask, 1 behind the plane (``(p - centre) . normal <= 0``), 2 in
        front of it.
    """
    m = np.asarray(mask, dtype=bool)
    centre, n = principal_plane(m, spacing)
    if normal is not None:
        n = np.asarray(normal, dtype=np.float64)
        if n.shape != (3,) or not np.linalg.norm(n) > 0:
            raise ParameterError(f"normal must be a non-zero (z, y, x) vector, got {normal!r}")
    coords = np.argwhere(m)
    phys = coords * np.asarray(spacing, dtype=np.float64)
    side = (phys - centre) @ n > 0
    out = np.zeros(m.shape, dtype=np.uint8)
    out[tuple(coords.T)] = np.where(side, 2, 1).astype(np.uint8)
    return out
