"""``vrscope render``'s path on llvmpipe: single pass inside VTK vs one VTK volume per brick.

Run: ``VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow .venv/bin/python
tests/benchmarks/bench_raycast_vtk.py [--quick]``.

The same 128³ content (two levels, mean-downsampled) and camera, streamed at level 0 in
bricks of 32 (64 bricks), 16 (512) and 8 (4096, single pass only) voxels, through
:func:`viewer.render.render_streamed` with ``single_pass`` True and False. ``frame_ms``
is the settled frame drawn again and timed until the GPU finished (I/O excluded), the
figure ``vrscope render --stats`` writes; the median of ``reps`` renders. Then the
single pass at brick edges 16-128 (the default brick size's measurement).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import numpy as np  # noqa: E402

from analysis.volume import ArrayVolumeSource  # noqa: E402
from viewer.render import render_streamed, use_coarse_contrast  # noqa: E402
from viewer.scene import Image, Scene  # noqa: E402


def _source(n: int = 128) -> ArrayVolumeSource:
    z, y, x = np.indices((n, n, n))
    vol = 40 + 1.2 * x + 0.4 * y
    vol[(z - n / 2) ** 2 + (y - n / 2) ** 2 + (x - n / 2) ** 2 < (0.4 * n) ** 2] += 90
    vol = vol.clip(0, 255).astype(np.uint8)
    coarse = vol.reshape(n // 2, 2, n // 2, 2, n // 2, 2).mean(axis=(1, 3, 5)).astype(np.uint8)
    src = ArrayVolumeSource([vol, coarse], chunks=(n, n, n))
    # A mean over 2 voxels is centred half a fine voxel in: the levels nest.
    lv1 = dataclasses.replace(src.levels[1], translation=(0.5, 0.5, 0.5))
    src._levels = (src.levels[0], lv1)
    return src


def _frame_ms(src: ArrayVolumeSource, brick: int, single: bool, size: int, reps: int) -> dict:
    out = []
    st: dict = {}
    for _ in range(reps):
        scene = Scene()
        scene.add(Image(src, name="v"))
        use_coarse_contrast(scene)
        scene.reset_camera()
        scene.camera.orbit(azimuth=30, elevation=20)
        st = {}
        render_streamed(
            scene,
            size=(size, size),
            max_error_px=1e-6,
            single_pass=single,
            brick_size=brick,
            frame_stats=st,
            show_scale_bar=False,
            show_axes=False,
        )
        out.append(st["frame_ms"])
    st["frame_ms"] = statistics.median(out)
    return st


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    size, reps = (128, 1) if args.quick else (256, 3)
    src = _source()
    print(f"load average {os.getloadavg()[0]:.2f}; {size}x{size} px; median of {reps}")
    print("bricks  single-pass ms  per-brick ms  ratio  passes (single / per-brick)")
    for brick in (32, 16):
        a = _frame_ms(src, brick, True, size, reps)
        b = _frame_ms(src, brick, False, size, reps)
        print(
            f"{a['bricks_drawn']:6d}  {a['frame_ms']:14.1f}  {b['frame_ms']:12.1f}  "
            f"{b['frame_ms'] / a['frame_ms']:5.1f}  {a['volume_passes']} / {b['volume_passes']}"
        )
    print("single pass by brick edge (128³ content):")
    for brick in (8, 16, 32, 64, 128):
        a = _frame_ms(src, brick, True, size, reps)
        print(
            f"  edge {brick:3d}: {a['bricks_drawn']:5d} bricks, {a['frame_ms']:7.1f} ms, "
            f"atlas {a['gpu_cache_bytes'] / 2**20:6.1f} MiB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
