"""Inference throughput (voxels/s) and the cost of smooth tiling.

For a 2D and a 3D U-Net (width 16, depth 3; random weights give the same
arithmetic as trained ones) on the CPU and, when present, on CUDA:

- ``untiled``: the whole volume in one forward pass per plane (2D) or one pass
  (3D), the raw model throughput — the reference;
- ``tiled``: :func:`predict_tiled` with default tiles, halo and overlap (the
  redundant halo/overlap work plus reading, blending and normalising);
- ``overhead`` = tiled time / untiled time, measured in the same run;
- onnxruntime (CPU) on the same tiles, and the bioimage.io ``unet2d_nuclei_broad``
  model on its 512 x 512 test image with both runtimes.

Run: ``.venv/bin/python tests/benchmarks/bench_inference.py [--threads 2] [--repeat 2]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
from tests._testdata import TESTDATA  # noqa: E402


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(pred: Any, vol: np.ndarray, repeat: int) -> tuple[float, float]:
    """Seconds for untiled and tiled prediction of ``vol`` (best of ``repeat``)."""
    from analysis.inference import predict_tiled, predict_untiled

    t_untiled = best_of(lambda: predict_untiled(pred, vol), repeat)
    t_tiled = best_of(lambda: predict_tiled(pred, vol, batch_size=8), repeat)
    return t_untiled, t_tiled


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--scale", type=int, default=1, help="multiply volume sizes (GPU: 2-4)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from analysis.inference import (
        OnnxPredictor,
        TorchPredictor,
        UNet,
        UNetConfig,
        export_onnx,
        from_model_layout,
        load_bioimageio,
        plan_tiles,
        predict_tiled,
        read_bioimageio,
        unet_spec,
    )

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rng = np.random.default_rng(0)
    s = args.scale
    cases = {
        2: rng.normal(size=(16 * s, 512 * s, 512 * s)).astype(np.float32),
        3: rng.normal(size=(64 * s, 128 * s, 128 * s)).astype(np.float32),
    }
    rows = []
    for dims, vol in cases.items():
        torch.manual_seed(0)
        model = UNet(UNetConfig(dims=dims, width=16, depth=3)).eval()
        spec = unet_spec(model.config)
        n = vol.size
        plan = plan_tiles(vol.shape, spec)
        # Voxels the model computes / voxels in the volume: the halo and overlap share
        # of the overhead; the rest is reading, normalising and blending.
        redundancy = plan.n_tiles * int(np.prod(plan.tile_shape)) / vol.size
        plan_text = f"{plan.n_tiles} tiles of {plan.tile_shape}, {redundancy:.2f}x voxels computed"
        for device in devices:
            pred = TorchPredictor(model, spec, device=device)
            predict_tiled(pred, vol[: max(2, 8 if dims == 3 else 1)])  # warm-up
            t_untiled, t_tiled = measure(pred, vol, args.repeat)
            rows.append(
                (f"{dims}D U-Net {vol.shape} torch {device}", n / t_untiled, n / t_tiled,
                 t_tiled / t_untiled, plan_text)
            )  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            export_onnx(model, Path(tmp) / "m.onnx", check=False)
            onnx_pred = OnnxPredictor(str(Path(tmp) / "m.onnx"), spec, threads=args.threads)
        predict_tiled(onnx_pred, vol[:8])
        t_untiled, t_tiled = measure(onnx_pred, vol, args.repeat)
        rows.append(
            (f"{dims}D U-Net {vol.shape} onnxruntime cpu", n / t_untiled, n / t_tiled,
             t_tiled / t_untiled, plan_text)
        )  # fmt: skip

    yaml = TESTDATA / "bioimageio" / "unet2d_nuclei_broad" / "bioimageio.yaml"
    if yaml.exists():
        desc = read_bioimageio(yaml)
        x, _ = desc.load_test_tensors()
        vol = from_model_layout(x, desc.input_axes)
        for runtime in ("torch", "onnx"):
            pred = load_bioimageio(desc, runtime=runtime, device="cpu")
            predict_tiled(pred, vol)
            t_raw, t = measure(pred, vol, args.repeat)
            rows.append(
                (f"bioimage.io unet2d_nuclei_broad 512^2 {runtime} cpu", vol.size / t_raw,
                 vol.size / t, t / t_raw, "1 tile (fixed 512^2)")
            )  # fmt: skip

    print(f"torch threads: {args.threads}; best of {args.repeat}")
    head = ("case", "untiled vox/s", "tiled vox/s", "tiled/untiled time", "plan")
    width = max(len(r[0]) for r in rows)
    print(f"{head[0]:<{width}}  {head[1]:>14}  {head[2]:>12}  {head[3]:>18}  {head[4]}")
    for name, a, b, ratio, plan_text in rows:
        print(f"{name:<{width}}  {a:>14.3g}  {b:>12.3g}  {ratio:>18.2f}  {plan_text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
