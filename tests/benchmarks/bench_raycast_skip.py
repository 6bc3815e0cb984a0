"""Single pass on llvmpipe (issue 15, round 3): brick skipping by value range for MIP and
iso-surfaces, and the frame budget's knobs (step count, render scale).

Run: ``.venv/bin/python tests/benchmarks/bench_raycast_skip.py [--quick]`` (no VTK; EGL).

1. The same 128³ content and camera (a bright ball with waves, 256 x 256 px) in bricks of
   16³ and 8³: MIP and an iso-surface drawn with ``skip_bricks=False`` (the reference,
   measured in the same run) and with skipping (the default): frame time, the ratio
   skipped / unskipped, samples per frame (the shader's statistics), and the PSNR of the
   skipped picture against the unskipped one.
2. Composite at the frame budget's settings: step factor 1, 2 and 4 (the sample
   distance in voxels / 0.5) with render scale 1, and the budget's floor (step 4, scale
   0.25), as ratios to full quality.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from analysis.volume import FunctionVolumeSource  # noqa: E402
from viewer.raycast import Harness, ResidentVolume, TransferFunction  # noqa: E402
from viewer.streaming import BrickGrid  # noqa: E402

N = 128
CAM = dict(position=(40.0, 150.0, -160.0), focal_point=(64.0, 62.0, 60.0))


def _content(level: int, region: tuple[slice, ...]) -> np.ndarray:
    z, y, x = np.meshgrid(*(np.arange(s.start, s.stop) for s in region), indexing="ij")
    r = np.sqrt((z - N / 2) ** 2 + (y - N / 2) ** 2 + (x - N / 2) ** 2)
    return np.clip(250 * (1 - r / (N / 2)) + 40 * np.sin(x / 9) * np.cos(y / 13), 0, 255).astype(
        np.uint8
    )


def _median_ms(fn, reps: int) -> float:
    fn()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return statistics.median(out)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def skipping(size: int, reps: int) -> list[str]:
    h = Harness((size, size))
    tf_mip = TransferFunction.ramp((20, 235), opacity=(0.0, 1.0))
    tf_iso = TransferFunction.ramp((0, 255), colormap=[(1, 0.6, 0.3)] * 2, opacity=(0.6, 0.6))
    rows = []
    for chunk in (16, 8):
        src = FunctionVolumeSource((N,) * 3, _content, chunks=(chunk,) * 3, n_levels=1)
        vol = ResidentVolume(h.ctx, [src.read(0)], BrickGrid.from_source(src))
        for mode, tf, extra in (
            ("mip", tf_mip, {}),
            ("isosurface", tf_iso, {"iso_value": 200.0}),
        ):
            times, imgs, samples = {}, {}, {}
            for skip in (False, True):
                kw = dict(CAM, mode=mode, skip_bricks=skip, **extra)

                def draw(kw=kw, vol=vol, tf=tf) -> None:
                    h.render(vol, tf, **kw, read=False)
                    h.ctx.finish()

                times[skip] = _median_ms(draw, reps)
                imgs[skip] = h.render(vol, tf, **kw)
                counts = h.render(vol, tf, **kw, statistics=True)
                samples[skip] = (float(counts[..., 0].sum()), float(counts[..., 2].sum()))
            rows.append(
                f"| {mode}, {vol.n_leaves} bricks of {chunk}³ | {times[False]:.1f} ms | "
                f"{times[True]:.1f} ms | {times[True] / times[False]:.2f} | "
                f"{samples[True][0] / samples[False][0]:.2f} ({samples[True][1]:.0f} "
                f"bricks skipped) | {_psnr(imgs[False], imgs[True]):.0f} dB |"
            )
        vol.release()
    h.release()
    return rows


def budget_knobs(size: int, reps: int) -> list[str]:
    h = Harness((size, size), dtype="f1")
    tf = TransferFunction.ramp((20, 235), opacity=(0.0, 0.05))
    src = FunctionVolumeSource((N,) * 3, _content, chunks=(16,) * 3, n_levels=1)
    vol = ResidentVolume(h.ctx, [src.read(0)], BrickGrid.from_source(src))
    rows, base = [], None
    for step, scale in ((1.0, 1.0), (2.0, 1.0), (4.0, 1.0), (4.0, 0.25)):

        def draw(step=step, scale=scale) -> None:
            h.render(vol, tf, **CAM, step_factor=0.5 * step, render_scale=scale, read=False)
            h.ctx.finish()

        ms = _median_ms(draw, reps)
        base = ms if base is None else base
        rows.append(f"| step x{step:g}, render scale {scale:g} | {ms:.1f} ms | {ms / base:.2f} |")
    vol.release()
    h.release()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    reps = 3 if args.quick else 5
    load = os.getloadavg()[0]
    print(
        f"| {args.size}² px, load average {load:.1f} | unskipped | skipped | ratio | "
        "samples ratio | PSNR skipped vs not |\n|---|---|---|---|---|---|"
    )
    print("\n".join(skipping(args.size, reps)))
    print(
        f"\n| composite 128³, {args.size}² px, load average {os.getloadavg()[0]:.1f} | frame | "
        "ratio to full quality |\n|---|---|---|"
    )
    print("\n".join(budget_knobs(args.size, reps)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
