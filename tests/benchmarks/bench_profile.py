"""``vrscope profile`` on the standard 256³ FIB-SEM sample, against its main ingredients.

Run: ``.venv/bin/python tests/benchmarks/bench_profile.py [--size 256]`` (``make bench``).
Writes the sample, then times in the same run:

- the whole command, ``vrscope profile STORE --out DIR`` (read the four label images and
  the image, the workflow, the HTML report), in-process;
- the reference: scikit-image's ``regionprops_table`` (area, centroid, intensity mean) on
  the same mitochondria and nuclear-pore label images plus SciPy's
  ``distance_transform_edt`` of the cell mask, the standard-library steps a profile of
  one cell needs at the least.

Ratio = the command / the reference. (Moved here from the unit suite, where the
command's wall time was asserted; timings belong in benchmarks.)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main(argv: list[str]) -> int:
    from scipy import ndimage
    from skimage.measure import regionprops_table

    from analysis.io import open_volume, write_fibsem_sample
    from analysis.synthetic import fibsem_cell
    from vrscope.cli import main as cli

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="sample edge in voxels (default: 256)")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp())
    store = tmp / "cell.zarr"
    write_fibsem_sample(fibsem_cell(size=args.size, seed=0), store)

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli(["profile", str(store), "--out", str(tmp / "rep")])
    ours = time.perf_counter() - t0
    if code != 0:
        print(f"profile failed with exit {code}")
        return 1

    src = open_volume(str(store))
    image = np.asarray(src.read(0))
    labs = {
        n: np.asarray(src.open_labels(n).read(0)) for n in ("cell", "mitochondria", "nuclear_pores")
    }
    spacing = src.levels[0].scale_um
    t0 = time.perf_counter()
    for name in ("mitochondria", "nuclear_pores"):
        regionprops_table(
            labs[name],
            image,
            properties=("label", "area", "centroid", "intensity_mean"),
            spacing=spacing,
        )
    ndimage.distance_transform_edt(labs["cell"] > 0, sampling=spacing)
    ref = time.perf_counter() - t0

    print(f"{'case':<34} {'ours s':>8} {'reference s':>12} {'ratio':>6}")
    print(f"{f'profile, {args.size}³ sample':<34} {ours:>8.2f} {ref:>12.2f} {ours / ref:>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
