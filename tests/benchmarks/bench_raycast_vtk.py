"""``vrscope render``'s path on llvmpipe: one ray-casting pass inside VTK's frame, by brick count.

Run: ``VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow .venv/bin/python
tests/benchmarks/bench_raycast_vtk.py [--quick]``.

The same 128³ content (two levels, mean-downsampled) and camera, streamed at level 0 in
bricks of 8 (4096 bricks) to 128 (1) voxels through :func:`viewer.render.render_streamed`;
the ratio is against one brick in the same run. ``frame_ms`` is the settled frame drawn
again and timed until the GPU finished (I/O excluded), the figure ``vrscope render
--stats`` writes; the median of ``reps`` renders. (The old path, one VTK volume per
brick, was removed in issue 15; its last figures are in docs/benchmarks.md.)
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


def _frame_ms(src: ArrayVolumeSource, brick: int, size: int, reps: int) -> dict:
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
    rows = [(brick, _frame_ms(src, brick, size, reps)) for brick in (128, 64, 32, 16, 8)]
    one = rows[0][1]["frame_ms"]
    print("edge  bricks  frame ms  / 1 brick  passes  atlas MiB")
    for brick, a in rows:
        print(
            f"{brick:4d}  {a['bricks_drawn']:6d}  {a['frame_ms']:8.1f}  "
            f"{a['frame_ms'] / one:9.2f}  {a['volume_passes']:6d}  "
            f"{a['gpu_cache_bytes'] / 2**20:9.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
