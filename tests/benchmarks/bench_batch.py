"""``vrscope batch`` (dask.distributed) against the single-machine commands, in one run.

Run: ``.venv/bin/python tests/benchmarks/bench_batch.py [--size 1024] [--objects 20000]
[--samples 8] [--sample-size 128]`` (``make bench``). Figures go to docs/benchmarks.md.

Cases, each a separate process (as a user runs them), timed wall-clock:

- measure: a ``--size``³ uint16 label image with ``--objects`` spheres (radius 3-9 voxels,
  many crossing the 256³ blocks), chunks 128³. Reference: ``vrscope measure`` (the whole
  image in one process). Then ``vrscope batch measure --workers 1`` (the dask path's
  overhead) and ``--workers 2`` (strong scaling), each worker limited to
  ``--memory-per-worker`` (2GB). Peak RSS is sampled (psutil, every 0.2 s) for the
  command's own process and for its largest worker process. The tables must be equal.
- profile: ``--samples`` FIB-SEM samples of ``--sample-size``³. Reference: ``vrscope
  profile`` run once per store, one after the other; then ``vrscope batch profile`` with
  1 and 2 workers.
- memory: ``batch measure --workers 2 --block B B B`` (``--memory-block``, 128) on label
  images of ``--memory-sizes`` (256³ and 512³) with the measure case's density of
  objects: the peak RSS of the largest worker must not grow with the volume.
- infer: a ``--infer-size``³ smooth noise image (chunks 32³), a 3D U-Net (depth 2, width 8,
  random weights), tiles of 32³. Reference: ``vrscope infer`` with torch on one thread
  (``OMP_NUM_THREADS=1``, as each worker runs it); then ``vrscope batch infer`` with blocks
  of 64³ and 1 and 2 workers. The label files must be equal byte for byte.

Ratios: overhead = batch 1 worker / reference (goal <= 1.15); scaling = 1 worker / 2
workers (ideal 2.0 on 2 free cores; a shared machine gives less). Besides wall time, the
CPU seconds of each command's process tree (``RUSAGE_CHILDREN``: the command and the
workers it waited for) are printed: the work done, which other people's load on a shared
machine changes far less than the wall time. The load average is printed with each case.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
VRSCOPE = [sys.executable, "-m", "vrscope"]
LAST_CPU = [0.0]  # CPU seconds of the last timed command's process tree


def _spheres(shape: tuple[int, int, int], n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    radius = rng.uniform(3.0, 9.0, n)
    centre = np.stack([rng.uniform(10, s - 10, n) for s in shape], axis=1)
    return centre, radius


def _label_source(shape: tuple[int, int, int], n: int):
    from analysis.volume import FunctionVolumeSource

    centre, radius = _spheres(shape, n)

    def fn(level: int, region: tuple[slice, ...]) -> np.ndarray:
        lo = np.array([s.start for s in region])
        hi = np.array([s.stop for s in region])
        out = np.zeros(tuple(hi - lo), np.uint16)
        near = np.all((centre + radius[:, None] > lo) & (centre - radius[:, None] < hi), axis=1)
        for i in np.flatnonzero(near):
            a = np.maximum(np.floor(centre[i] - radius[i]).astype(int), lo)
            b = np.minimum(np.ceil(centre[i] + radius[i]).astype(int) + 1, hi)
            if np.any(b <= a):
                continue
            zz, yy, xx = np.ogrid[a[0] : b[0], a[1] : b[1], a[2] : b[2]]
            d2 = (zz - centre[i][0]) ** 2 + (yy - centre[i][1]) ** 2 + (xx - centre[i][2]) ** 2
            box = out[
                a[0] - lo[0] : b[0] - lo[0],
                a[1] - lo[1] : b[1] - lo[1],
                a[2] - lo[2] : b[2] - lo[2],
            ]
            box[(d2 <= radius[i] ** 2) & (box == 0)] = i + 1
        return out

    return FunctionVolumeSource(shape, fn, dtype=np.uint16, chunks=(128, 128, 128), n_levels=1)


def _timed(cmd: list[str]) -> tuple[float, float, float, str]:
    """Wall seconds, peak RSS (GB) of the command's process and of its largest child."""
    import psutil

    load = os.getloadavg()[0]
    # CPU seconds of the command and every process it waited for (its workers): the
    # work done, which a loaded machine changes far less than the wall time.
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = {"main": 0, "child": 0}
    done = threading.Event()

    def sample() -> None:
        try:
            p = psutil.Process(proc.pid)
            while not done.is_set():
                try:
                    peak["main"] = max(peak["main"], p.memory_info().rss)
                    for c in p.children(recursive=True):
                        try:
                            peak["child"] = max(peak["child"], c.memory_info().rss)
                        except psutil.Error:
                            pass
                except psutil.Error:
                    return
                time.sleep(0.2)
        except psutil.Error:
            return

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    th.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err[-2000:]}")
    for line in err.splitlines():  # the phases a batch run logs with -v
        if "analysis.batch" in line and (" done in " in line or " tasks, in " in line):
            print("   ", line.split(": ", 1)[-1].strip(), flush=True)
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    LAST_CPU[0] = cpu
    print(f"  {' '.join(cmd[2:5])}: {wall:.1f} s, CPU {cpu:.1f} s (load average {load:.1f} -> "
          f"{os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
    return wall, peak["main"] / 1e9, peak["child"] / 1e9, out


def _label_files(store: Path, name: str) -> dict[str, bytes]:
    root = store / "labels" / name
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _bench_infer(tmp: Path, size: int) -> list[tuple[str, float, float, float, float]]:
    """vrscope infer (torch on one thread, as each worker) vs batch infer, 1 and 2 workers,
    on a size³ image with 64³ blocks and 32³ tiles; the label files must be equal."""
    import shutil

    import torch

    from analysis.inference import UNet, UNetConfig, save_checkpoint
    from analysis.io import write_ngff

    rng = np.random.default_rng(0)
    from scipy import ndimage as ndi

    img = ndi.gaussian_filter(rng.normal(100, 30, (size,) * 3), 2).astype(np.float32)
    store = tmp / "infer.zarr"
    write_ngff(img, store, scale_um=(0.1, 0.1, 0.1), chunks=(32, 32, 32))
    torch.manual_seed(0)
    net = UNet(UNetConfig(dims=3, depth=2, width=8)).eval()
    save_checkpoint(net, tmp / "unet")
    opts = ["--model", str(tmp / "unet"), "--out", "pred", "--tile", "32", "32", "32"]
    ref_store = tmp / "infer_ref.zarr"
    shutil.copytree(store, ref_store)
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        ref_t, ref_mem, _, _ = _timed([*VRSCOPE, "infer", str(ref_store), *opts, "--quiet"])
    finally:
        del os.environ["OMP_NUM_THREADS"]
    ref = _label_files(ref_store, "pred")
    cpus = {0: LAST_CPU[0]}
    rows = [(f"infer {size}³ (torch on 1 thread)", ref_t, ref_t, ref_mem, 0.0)]
    times = {}
    for w in (1, 2):
        copy = tmp / f"infer{w}.zarr"
        shutil.copytree(store, copy)
        t, main_mem, worker_mem, out = _timed(
            [*VRSCOPE, "-v", "batch", "infer", str(copy), *opts, "--block", "64", "64", "64",
             "--workers", str(w)]
        )  # fmt: skip
        assert _label_files(copy, "pred") == ref, "batch infer differs from vrscope infer"
        print("   ", out.strip().splitlines()[-2], flush=True)
        times[w] = t
        cpus[w] = LAST_CPU[0]
        rows.append((f"batch infer, {w} worker(s)", t, ref_t, main_mem, worker_mem))
    print(f"infer: label files equal; scaling 1->2 workers {times[1] / times[2]:.2f}x", flush=True)
    print(
        f"infer: CPU s plain {cpus[0]:.1f}, 1 worker {cpus[1]:.1f} ({cpus[1] / cpus[0]:.2f}x), "
        f"2 workers {cpus[2]:.1f} ({cpus[2] / cpus[0]:.2f}x)",
        flush=True,
    )
    return rows


def _bench_memory(
    tmp: Path, sizes: list[int], block: int, workers: int, objects_per_mvoxel: float
) -> list[tuple[str, float, float, float, float]]:
    """Peak RSS of the largest worker of ``batch measure`` on label images of several
    sizes with the same block shape (and the same density of objects): bounded by the
    block, it stays flat while the volume grows."""
    from analysis.io import write_labels, write_ngff
    from analysis.volume import FunctionVolumeSource

    rows = []
    peaks = {}
    for size in sizes:
        shape = (size,) * 3
        n = max(1, round(objects_per_mvoxel * size**3 / 1e6))
        store = tmp / f"memory{size}.zarr"
        zeros = FunctionVolumeSource(
            shape, lambda lv, r: np.zeros(tuple(s.stop - s.start for s in r), np.uint8),
            chunks=(128, 128, 128), n_levels=1,
        )  # fmt: skip
        write_ngff(zeros, store, chunks=(128, 128, 128), n_levels=1)
        write_labels(store, "objects", _label_source(shape, n), chunks=(128, 128, 128))
        out = tmp / f"memory{size}.parquet"
        t, main_mem, worker_mem, _ = _timed(
            [*VRSCOPE, "batch", "measure", str(store), "--labels", "objects", "--out", str(out),
             "--workers", str(workers), "--block", str(block), str(block), str(block)]
        )  # fmt: skip
        peaks[size] = worker_mem
        print(
            f"memory: {size}³ ({size**3 * 2 / 1e9:.2f} GB of uint16 labels, {n} objects), "
            f"blocks {block}³: peak RSS per worker {worker_mem:.3f} GB, command "
            f"{main_mem:.3f} GB",
            flush=True,
        )
        rows.append((f"batch measure {size}³, {block}³ blocks", t, t, main_mem, worker_mem))
    lo, hi = min(sizes), max(sizes)
    print(
        f"memory: volume x{(hi / lo) ** 3:.0f}, peak RSS per worker x{peaks[hi] / peaks[lo]:.2f}",
        flush=True,
    )
    return rows


def main(argv: list[str]) -> int:
    import pandas as pd

    from analysis.io import write_fibsem_sample, write_labels, write_ngff
    from analysis.synthetic import fibsem_cell
    from analysis.volume import FunctionVolumeSource

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024, help="label image edge (default: 1024)")
    ap.add_argument("--objects", type=int, default=20000, help="objects (default: 20000)")
    ap.add_argument("--samples", type=int, default=8, help="profile samples (default: 8)")
    ap.add_argument("--sample-size", type=int, default=128, help="sample edge (default: 128)")
    ap.add_argument("--memory-per-worker", default="2GB", help="worker limit (default: 2GB)")
    ap.add_argument("--infer-size", type=int, default=96, help="infer image edge (default: 96)")
    ap.add_argument(
        "--skip", choices=("measure", "profile", "infer", "memory"), action="append", default=[]
    )
    ap.add_argument(
        "--memory-sizes", type=int, nargs="+", default=[256, 512],
        help="label image edges of the memory case (default: 256 512)",
    )  # fmt: skip
    ap.add_argument("--memory-block", type=int, default=128, help="its block edge (default: 128)")
    ap.add_argument(
        "--measure-workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="worker counts of batch measure (default: 1 2; 1 alone for the overhead)",
    )
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    rows = []

    if "measure" not in args.skip:
        shape = (args.size,) * 3
        store = tmp / "objects.zarr"
        t0 = time.perf_counter()
        zeros = FunctionVolumeSource(
            shape, lambda lv, r: np.zeros(tuple(s.stop - s.start for s in r), np.uint8),
            chunks=(128, 128, 128), n_levels=1,
        )  # fmt: skip
        write_ngff(zeros, store, chunks=(128, 128, 128), n_levels=1)
        write_labels(store, "objects", _label_source(shape, args.objects), chunks=(128, 128, 128))
        print(f"wrote {args.size}³ labels in {time.perf_counter() - t0:.0f} s", flush=True)
        ref_t, ref_mem, _, _ = _timed(
            [
                *VRSCOPE,
                "measure",
                str(store),
                "--labels",
                "objects",
                "--out",
                str(tmp / "ref.parquet"),
            ]
        )
        ref = pd.read_parquet(tmp / "ref.parquet")
        cpus = {0: LAST_CPU[0]}
        times = {}
        for w in args.measure_workers:
            out = tmp / f"batch{w}.parquet"
            t, main_mem, worker_mem, _ = _timed(
                [*VRSCOPE, "-v", "batch", "measure", str(store), "--labels", "objects", "--out", str(out),
                 "--workers", str(w), "--memory-per-worker", args.memory_per_worker]
            )  # fmt: skip
            got = pd.read_parquet(out)
            pd.testing.assert_frame_equal(got, ref, check_exact=True)
            times[w] = t
            cpus[w] = LAST_CPU[0]
            rows.append((f"batch measure, {w} worker(s)", t, ref_t, main_mem, worker_mem))
        rows.insert(0, (f"measure {args.size}³, {len(ref)} objects", ref_t, ref_t, ref_mem, 0.0))
        if 1 in times and 2 in times:
            print(f"measure: scaling 1->2 workers {times[1] / times[2]:.2f}x", flush=True)
        print("measure: tables equal; CPU s plain " + f"{cpus[0]:.1f}", end="", flush=True)
        for w in args.measure_workers:
            print(f", {w} worker(s) {cpus[w]:.1f} ({cpus[w] / cpus[0]:.2f}x)", end="")
        print(f"; wall ratio 1 worker {times[1] / ref_t:.2f}x" if 1 in times else "", flush=True)

    if "profile" not in args.skip:
        stores = []
        for i in range(args.samples):
            stores.append(tmp / f"cell{i}.zarr")
            write_fibsem_sample(fibsem_cell(args.sample_size, seed=i), stores[-1])
        (tmp / "ref").mkdir()
        t0 = time.perf_counter()
        for s in stores:
            _timed([*VRSCOPE, "profile", str(s), "--out", str(tmp / "ref" / s.stem)])
        ref_t = time.perf_counter() - t0
        rows.append(
            (f"profile x{args.samples} ({args.sample_size}³), one by one", ref_t, ref_t, 0.0, 0.0)
        )
        times = {}
        for w in (1, 2):
            t, main_mem, worker_mem, _ = _timed(
                [*VRSCOPE, "batch", "profile", *map(str, stores), "--out", str(tmp / f"b{w}"),
                 "--workers", str(w)]
            )  # fmt: skip
            times[w] = t
            rows.append((f"batch profile, {w} worker(s)", t, ref_t, main_mem, worker_mem))
        print(f"profile: scaling 1->2 workers {times[1] / times[2]:.2f}x", flush=True)

    if "infer" not in args.skip:
        rows += _bench_infer(tmp, args.infer_size)

    if "memory" not in args.skip:
        # 20,000 objects per 1024³ (the measure case's density); two worker processes.
        rows += _bench_memory(tmp, args.memory_sizes, args.memory_block, 2, 20000 / 1024**3 * 1e6)

    print(f"\nload average (1, 5, 15 min) at the end: {os.getloadavg()}, {os.cpu_count()} cores")
    print(
        f"\n{'case':<44} {'s':>8} {'ref s':>8} {'ratio':>6} {'RSS main GB':>12} {'RSS worker GB':>14}"
    )
    for name, t, ref_t, m, w in rows:
        print(f"{name:<44} {t:>8.1f} {ref_t:>8.1f} {t / ref_t:>6.2f} {m:>12.2f} {w:>14.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
