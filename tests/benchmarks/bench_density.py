"""Gaussian KDE and kNN distances vs scikit-learn / brute force on the same points.

Run: ``.venv/bin/python tests/benchmarks/bench_density.py [--points 20000] [--bandwidth 0.1]``
(``make bench``). Points are nuclear-pore-like clusters on a 10 µm sphere surface.
Times in the same run, asserting equal results:

- ``gaussian_kde_density`` (cut-off radius, rtol 1e-8) against scikit-learn's
  ``KernelDensity(kernel="gaussian").fit(X)`` + ``exp(score_samples(X))`` (rtol 1e-6);
- ``knn_mean_distance`` (k = 8) against ``sklearn.neighbors.NearestNeighbors``.

Ratio = ours / reference (< 1 is faster).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def pore_like_points(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(n // 20, 1), 3))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    pts = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 0.02, (n, 3))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    return pts * 5.0 + 5.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, nargs="+", default=[2_000, 20_000])
    ap.add_argument("--bandwidth", type=float, default=0.1)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from sklearn.neighbors import KernelDensity, NearestNeighbors

    from analysis.density import gaussian_kde_density, knn_mean_distance

    h = args.bandwidth
    for n in args.points:
        pts = pore_like_points(n)
        ref_t, ref = timed(
            lambda pts=pts: np.exp(
                KernelDensity(kernel="gaussian", bandwidth=h).fit(pts).score_samples(pts)
            ),
            args.repeat,
        )
        ours_t, ours = timed(lambda pts=pts: gaussian_kde_density(pts, h), args.repeat)
        np.testing.assert_allclose(ours, ref, rtol=1e-6)
        print(
            f"KDE   N={n:<7} h={h:g} µm  ours {ours_t * 1e3:9.1f} ms   sklearn KernelDensity "
            f"{ref_t * 1e3:9.1f} ms   ratio {ours_t / ref_t:5.2f}   max rel err "
            f"{np.max(np.abs(ours / ref - 1)):.1e}"
        )
        ref_t, dist = timed(
            lambda pts=pts: NearestNeighbors(n_neighbors=9).fit(pts).kneighbors(pts)[0],
            args.repeat,
        )
        ours_t, knn = timed(lambda pts=pts: knn_mean_distance(pts, 8), args.repeat)
        np.testing.assert_allclose(knn, dist[:, 1:].mean(axis=1), rtol=1e-9)
        print(
            f"kNN-8 N={n:<7}             ours {ours_t * 1e3:9.1f} ms   sklearn NearestNeighbors "
            f"{ref_t * 1e3:6.1f} ms   ratio {ours_t / ref_t:5.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
