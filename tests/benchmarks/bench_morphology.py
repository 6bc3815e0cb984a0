"""Morphology table vs scikit-image ``regionprops_table`` on the same properties.

Run: ``.venv/bin/python tests/benchmarks/bench_morphology.py [--size 512] [--objects 10000]``
(``make bench``). Builds a ``size``³ label image with ``objects`` random ellipsoids
(anisotropic voxels), then times, in the same run:

- ``measure_objects(surface=False)`` against ``regionprops_table`` with the same
  properties (area, centroid, bbox, axis_major/minor_length, equivalent_diameter_area,
  intensity_mean/min/max), asserting the numbers are equal;
- ``measure_objects`` with surfaces (marching cubes per object), against the reference
  plus ``marching_cubes`` + ``mesh_surface_area`` on every regionprops crop (the
  "binary" definition; our default "smooth" method adds a Gaussian pass per crop).

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

SPACING = (0.02, 0.01, 0.01)
PROPS = [
    "label",
    "area",
    "centroid",
    "bbox",
    "axis_major_length",
    "axis_minor_length",
    "equivalent_diameter_area",
    "intensity_mean",
    "intensity_min",
    "intensity_max",
]


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def make_labels(size: int, n: int, seed: int = 0) -> np.ndarray:
    from skimage.draw import ellipsoid

    rng = np.random.default_rng(seed)
    lab = np.zeros((size, size, size), np.uint16 if n < 65535 else np.uint32)
    shapes = {}
    for i in range(1, n + 1):
        r = tuple(int(v) for v in rng.integers(2, 6, 3))
        e = shapes.setdefault(r, ellipsoid(r[0] * 0.5, r[1], r[2]))
        z, y, x = (int(rng.integers(0, size - d)) for d in e.shape)
        view = lab[z : z + e.shape[0], y : y + e.shape[1], x : x + e.shape[2]]
        view[e] = i
    return lab


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--objects", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()

    import pandas as pd
    from skimage import measure

    from analysis.morphology import measure_objects

    t0 = time.perf_counter()
    lab = make_labels(args.size, args.objects)
    image = np.random.default_rng(1).integers(0, 255, lab.shape, dtype=np.uint8)
    n = len(np.unique(lab)) - 1
    print(
        f"labels {lab.shape} {lab.dtype}, {n} objects (built in {time.perf_counter() - t0:.1f} s)"
    )

    ref_t, ref = timed(
        lambda: pd.DataFrame(
            measure.regionprops_table(lab, image, spacing=SPACING, properties=PROPS)
        ),
        args.repeat,
    )
    ours_t, ours = timed(
        lambda: measure_objects(lab, SPACING, image=image, surface=False), args.repeat
    )
    np.testing.assert_array_equal(ours["volume_um3"], ref["area"])
    for ax, name in enumerate("zyx"):
        np.testing.assert_allclose(ours[f"centroid_{name}_um"], ref[f"centroid-{ax}"], rtol=1e-12)
        np.testing.assert_array_equal(ours[f"bbox_min_{name}"], ref[f"bbox-{ax}"])
    np.testing.assert_allclose(ours["axis_major_length_um"], ref["axis_major_length"], rtol=1e-9)
    np.testing.assert_allclose(ours["mean_intensity"], ref["intensity_mean"], rtol=1e-12)
    np.testing.assert_array_equal(ours["max_intensity"], ref["intensity_max"])
    print(
        f"{'table, no surface':<28} ours {ours_t:7.2f} s   regionprops_table {ref_t:7.2f} s"
        f"   ratio {ours_t / ref_t:5.2f}   (numbers equal)"
    )

    def reference_with_surface() -> list[float]:
        areas = []
        for rp in measure.regionprops(lab, spacing=SPACING):
            v, f, _, _ = measure.marching_cubes(
                np.pad(rp.image, 1).astype(np.float32), 0.5, spacing=SPACING
            )
            areas.append(measure.mesh_surface_area(v, f))
        return areas

    ref_s_t, ref_areas = timed(reference_with_surface, 1)
    ref_s_t += ref_t
    for method in ("binary", "smooth"):
        t, table = timed(
            lambda m=method: measure_objects(lab, SPACING, image=image, surface_method=m), 1
        )
        if method == "binary":
            np.testing.assert_allclose(table["surface_area_um2"], ref_areas, rtol=1e-9)
        print(
            f"{'table + surface ' + method:<28} ours {t:7.2f} s   regionprops + marching cubes"
            f" {ref_s_t:7.2f} s   ratio {t / ref_s_t:5.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
