"""Point density and statistics: kNN distances, Gaussian kernel density, tests.

- :func:`knn_mean_distance`: mean distance to the k nearest other points (cKDTree).
- :func:`gaussian_kde_density`: scikit-learn's Gaussian ``KernelDensity`` values,
  computed from neighbours within a cut-off radius with a guaranteed relative error.
- :func:`t_test`, :func:`correlation`: SciPy tests returning small frozen results.
- :func:`region_of_points`, :func:`split_mask_by_plane`: assign objects to regions.

Functions take coordinates in µm (``(N, 3)`` z, y, x) or arrays with a spacing; they
never read files. Add a new statistic as a function returning a frozen dataclass.
"""

from analysis.density._neighbours import cutoff_radius, gaussian_kde_density, knn_mean_distance
from analysis.density._stats import (
    CorrelationResult,
    TTestResult,
    correlation,
    principal_plane,
    region_of_points,
    split_mask_by_plane,
    t_test,
)

__all__ = [
    "CorrelationResult",
    "TTestResult",
    "correlation",
    "cutoff_radius",
    "gaussian_kde_density",
    "knn_mean_distance",
    "principal_plane",
    "region_of_points",
    "split_mask_by_plane",
    "t_test",
]
