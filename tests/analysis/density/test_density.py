"""Density and statistics against scikit-learn, SciPy distances and textbook formulas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import cdist
from skimage import draw
from sklearn.neighbors import KernelDensity, NearestNeighbors

from analysis.density import (
    correlation,
    cutoff_radius,
    gaussian_kde_density,
    knn_mean_distance,
    region_of_points,
    split_mask_by_plane,
    t_test,
)
from analysis.errors import ParameterError


def _clustered_points(n, seed):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 5, (6, 3))
    pts = centres[rng.integers(0, 6, n)] + rng.normal(0, 0.3, (n, 3))
    return pts


@pytest.mark.parametrize("k", [1, 8])
def test_knn_mean_distance_matches_brute_force_and_sklearn(k):
    pts = _clustered_points(400, 0)
    d = cdist(pts, pts)
    np.fill_diagonal(d, np.inf)
    brute = np.sort(d, axis=1)[:, :k].mean(axis=1)
    np.testing.assert_allclose(knn_mean_distance(pts, k), brute, rtol=1e-12)
    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(pts).kneighbors(pts)
    np.testing.assert_allclose(knn_mean_distance(pts, k), dist[:, 1:].mean(axis=1), rtol=1e-12)


@pytest.mark.parametrize("bandwidth", [0.05, 0.1, 0.5])
def test_kde_equals_sklearn_kernel_density(bandwidth):
    pts = _clustered_points(1500, 1)
    ref = np.exp(KernelDensity(kernel="gaussian", bandwidth=bandwidth).fit(pts).score_samples(pts))
    got = gaussian_kde_density(pts, bandwidth)
    np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_kde_error_bound_holds_for_loose_tolerance():
    pts = _clustered_points(800, 2)
    h = 0.4
    ref = np.exp(KernelDensity(kernel="gaussian", bandwidth=h).fit(pts).score_samples(pts))
    for rtol in (1e-2, 1e-4):
        got = gaussian_kde_density(pts, h, rtol=rtol)
        assert np.all(got <= ref * (1 + 1e-12))  # dropping terms only lowers the sum
        assert np.max(np.abs(got / ref - 1)) <= rtol
    # The radius grows with N and shrinks with the tolerance.
    assert cutoff_radius(1000, 1.0, 1e-8) > cutoff_radius(1000, 1.0, 1e-2)
    assert cutoff_radius(10, 1.0, 1e-8) < cutoff_radius(10_000, 1.0, 1e-8)


def test_kde_in_two_dimensions_and_single_point():
    pts = _clustered_points(300, 3)[:, :2]
    ref = np.exp(KernelDensity(bandwidth=0.2).fit(pts).score_samples(pts))
    np.testing.assert_allclose(gaussian_kde_density(pts, 0.2), ref, rtol=1e-6)
    one = np.zeros((1, 3))
    assert gaussian_kde_density(one, 0.1)[0] == pytest.approx((2 * np.pi * 0.01) ** -1.5)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: gaussian_kde_density(np.zeros((5, 3)), 0.0), "bandwidth"),
        (lambda: gaussian_kde_density(np.zeros((5, 3)), -1.0), "bandwidth"),
        (lambda: knn_mean_distance(np.zeros((8, 3)), 8), "at least 9 points"),
        (lambda: knn_mean_distance(np.zeros((9, 3)), 0), "k must"),
        (lambda: knn_mean_distance(np.array([[np.nan, 0, 0]] * 10), 2), "NaN"),
        (lambda: knn_mean_distance(np.zeros(5), 2), r"\(N, d\)"),
    ],
)
def test_bad_density_inputs(call, match):
    with pytest.raises(ParameterError, match=match):
        call()


@pytest.mark.parametrize("equal_var", [True, False])
def test_t_tests_match_textbook_formulas(equal_var):
    rng = np.random.default_rng(4)
    a = rng.normal(1.0, 1.0, 25)
    b = rng.normal(1.6, 2.0, 40)
    na, nb = a.size, b.size
    va, vb = a.var(ddof=1), b.var(ddof=1)
    if equal_var:
        sp2 = ((na - 1) * va + (nb - 1) * vb) / (na + nb - 2)
        t = (a.mean() - b.mean()) / np.sqrt(sp2 * (1 / na + 1 / nb))
        df = na + nb - 2
    else:
        se2 = va / na + vb / nb
        t = (a.mean() - b.mean()) / np.sqrt(se2)
        df = se2**2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    p = 2 * stats.t.sf(abs(t), df)
    res = t_test(np.append(a, np.nan), b, equal_var=equal_var)
    assert res.statistic == pytest.approx(t, rel=1e-10)
    assert res.df == pytest.approx(df, rel=1e-10)
    assert res.pvalue == pytest.approx(p, rel=1e-8)
    assert (res.n_a, res.n_b) == (na, nb)
    assert res.method == ("Student" if equal_var else "Welch")


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_correlations_match_pandas_and_t_approximation(method):
    rng = np.random.default_rng(5)
    x = rng.normal(size=60)
    y = 0.5 * x + rng.normal(size=60)
    res = correlation(x, y, method)
    r = pd.Series(x).corr(pd.Series(y), method=method)
    assert res.r == pytest.approx(r, rel=1e-12)
    n = x.size
    t = r * np.sqrt((n - 2) / (1 - r * r))
    assert res.pvalue == pytest.approx(2 * stats.t.sf(abs(t), n - 2), rel=1e-8)
    assert res.pvalue < 0.01


def test_correlation_bad_inputs():
    with pytest.raises(ParameterError, match="differ in length"):
        correlation([1, 2, 3], [1, 2])
    with pytest.raises(ParameterError, match="at least 3"):
        correlation([1, 2, np.nan], [1, 2, 3])
    with pytest.raises(ParameterError, match="at least 2"):
        t_test([1.0], [1.0, 2.0])


def test_region_of_points_and_split_by_plane():
    spacing = (2.0, 1.0, 0.5)
    mask = draw.ellipsoid(6, 6, 20, spacing=spacing)  # elongated along x
    halves = split_mask_by_plane(mask, spacing)
    assert set(np.unique(halves)) == {0, 1, 2}
    assert np.array_equal(halves > 0, mask)
    xs = np.nonzero(mask)[2]
    mid = xs.mean()
    part_of = halves[mask]
    # The plane is perpendicular to the long (x) axis through the centroid.
    assert len(set(part_of[xs < mid - 1])) == 1
    assert len(set(part_of[xs > mid + 1])) == 1
    assert set(part_of[xs < mid - 1]) != set(part_of[xs > mid + 1])
    sizes = np.bincount(halves.ravel())[1:]
    assert abs(sizes[0] - sizes[1]) / sizes.sum() < 0.05
    # Region lookup at nearest voxels, -1 outside.
    z, y, x = np.argwhere(halves == 2)[0]
    pts = np.array([[z * 2.0, y * 1.0, x * 0.5], [0.0, 0.0, 0.0], [-50.0, 0.0, 0.0]])
    np.testing.assert_array_equal(region_of_points(pts, halves, spacing), [2, 0, -1])
