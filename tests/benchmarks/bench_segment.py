"""Block-wise segmentation vs the whole-array SciPy / scikit-image operation.

Run: ``.venv/bin/python tests/benchmarks/bench_segment.py [--size 256] [--chunk 64]``
(``make bench``). On a ``size``³ mask of random blobs (Gaussian-smoothed noise, 8 %
foreground) and, in the same run:

- ``remove_small_objects_blockwise`` (labels and output in on-disk
  :class:`analysis.io.ScratchVolume` zarr arrays: the bounded-memory configuration;
  and with NumPy arrays, to separate compute from zarr I/O) against
  ``skimage.morphology.remove_small_objects(connectivity=3)`` on the array;
- ``open_blockwise`` (lazy, halo 2r, stored chunk by chunk into a ScratchVolume)
  against ``scipy.ndimage.binary_opening`` with the same ball on the array.

Each result is asserted equal to the reference. Time: best of ``--repeat``; peak
memory: ``tracemalloc`` peak of a separate run (NumPy buffers; the zarr codecs' C
buffers are not traced, they are one chunk each). Ratio = ours / reference.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
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


def peak_mb(fn: Callable[[], Any]) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main() -> int:
    from scipy import ndimage as ndi
    from skimage import morphology

    from analysis.io import ScratchVolume
    from analysis.segment import (
        apply_blockwise,
        ball_footprint,
        open_blockwise,
        remove_small_objects_blockwise,
    )
    from analysis.volume import ArrayVolumeSource

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    n, c = args.size, args.chunk
    spacing = (1.0, 1.0, 1.0)
    rng = np.random.default_rng(0)
    noise = ndi.gaussian_filter(rng.normal(size=(n, n, n)).astype(np.float32), 2.0)
    mask = noise > np.quantile(noise, 0.92)
    del noise
    src = ArrayVolumeSource(mask, chunks=(c, c, c))
    shape = mask.shape
    print(f"mask {n}³ bool ({mask.nbytes / 2**20:.0f} MiB), chunks {c}³, {mask.mean():.1%} fg")
    rows = []

    # 1. remove small objects (global: block-wise labelling + per-label sizes)
    min_voxels = 50

    def ours_rso() -> Any:
        with (
            ScratchVolume(shape, np.int64, chunks=(c, c, c)) as lab,
            ScratchVolume(shape, bool, chunks=(c, c, c)) as out,
        ):
            remove_small_objects_blockwise(src, float(min_voxels), out, scratch=lab)
            return out.read(0)

    def ref_rso() -> Any:
        return morphology.remove_small_objects(mask, max_size=min_voxels - 1, connectivity=3)

    t_ref, ref = timed(ref_rso, args.repeat)
    t_ours, got = timed(ours_rso, args.repeat)
    assert np.array_equal(got, ref)
    m_ref = peak_mb(ref_rso)
    # Memory without the final whole read-back used for the equality check above.
    m_ours = peak_mb(
        lambda: remove_small_objects_blockwise(
            src,
            float(min_voxels),
            ScratchVolume(shape, bool, chunks=(c, c, c)),
            scratch=ScratchVolume(shape, np.int64, chunks=(c, c, c)),
        )
    )
    rows.append(("remove_small (zarr scr.)", "skimage (whole array)", t_ours, t_ref, m_ours, m_ref))

    # The same with NumPy scratch/output: the compute cost without zarr I/O (not bounded).
    def ours_rso_numpy() -> Any:
        return remove_small_objects_blockwise(src, float(min_voxels))

    t_np, got = timed(ours_rso_numpy, args.repeat)
    assert np.array_equal(got, ref)
    m_np = peak_mb(ours_rso_numpy)
    rows.append(("remove_small (NumPy)", "skimage (whole array)", t_np, t_ref, m_np, m_ref))

    # 2. opening with a ball of radius 2 (local: halo 2r)
    fp = ball_footprint(2.0, spacing)

    def ours_open() -> Any:
        with ScratchVolume(shape, bool, chunks=(c, c, c)) as out:
            apply_blockwise(open_blockwise(src, 2.0), lambda b: b, out=out)
            return out.read(0)

    def ref_open() -> Any:
        # binary_open pads by the edge so objects at the border are not eroded away;
        # the reference does the same with SciPy on the whole array.
        pad = [(h // 2, h // 2) for h in fp.shape]
        res = ndi.binary_opening(np.pad(mask, pad, mode="edge"), structure=fp)
        return res[tuple(slice(p, p + s) for (p, _), s in zip(pad, shape, strict=True))]

    t_ref, ref = timed(ref_open, args.repeat)
    t_ours, got = timed(ours_open, args.repeat)
    assert np.array_equal(got, ref)
    m_ref = peak_mb(ref_open)
    m_ours = peak_mb(
        lambda: apply_blockwise(
            open_blockwise(src, 2.0), lambda b: b, out=ScratchVolume(shape, bool, chunks=(c,) * 3)
        )
    )
    rows.append(("binary opening r=2", "scipy.ndimage (whole array)", t_ours, t_ref, m_ours, m_ref))

    print(
        f"{'operation':24s} {'reference':28s} {'ours s':>8s} {'ref s':>8s} {'ratio':>6s} "
        f"{'ours MiB':>9s} {'ref MiB':>8s} {'ratio':>6s}"
    )
    for name, ref_name, to, tr, mo, mr in rows:
        print(
            f"{name:24s} {ref_name:28s} {to:8.2f} {tr:8.2f} {to / tr:6.2f} "
            f"{mo:9.1f} {mr:8.1f} {mo / mr:6.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
