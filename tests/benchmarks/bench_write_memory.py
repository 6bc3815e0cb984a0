"""Peak memory of writing a procedural volume as OME-Zarr with a full pyramid.

Run as a script (each writer runs in its own subprocess so the peak RSS is its
own)::

    .venv/bin/python tests/benchmarks/bench_write_memory.py            # 1024^3 uint8
    .venv/bin/python tests/benchmarks/bench_write_memory.py --size 512 --reference

The volume is generated on the fly by an ``analysis.volume.FunctionVolumeSource``
(never held in memory). ``--reference`` also runs ome-zarr-py's writer on the
same procedural volume expressed as a lazy dask array (``da.map_blocks``), the
way one writes a larger-than-memory image with ome-zarr-py, and prints the
ratio of peak RSS and time. The target (issue 2) is a peak RSS under 1.5 GB for
1024^3 uint8; the script exits with status 1 when vrscope exceeds it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LIMIT_BYTES = 1.5e9
CHUNK = 64


def voxels(region: tuple[slice, ...]) -> np.ndarray:
    """Deterministic texture: a smooth ramp plus hashed noise (compresses like real data)."""
    z, y, x = (np.arange(s.start, s.stop, dtype=np.uint32) for s in region)
    zz, yy, xx = z[:, None, None], y[None, :, None], x[None, None, :]
    noise = (zz * np.uint32(73856093)) ^ (yy * np.uint32(19349663)) ^ (xx * np.uint32(83492791))
    return (((zz + yy + xx) >> 3) + (noise & np.uint32(31))).astype(np.uint8)


def _peak_rss() -> int:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(impl: str, size: int, out: Path) -> dict[str, float]:
    if impl == "vrscope":
        from analysis.io import write_ngff
        from analysis.volume import FunctionVolumeSource

        start_rss = _peak_rss()
        source = FunctionVolumeSource(
            (size,) * 3, lambda level, region: voxels(region), chunks=(CHUNK,) * 3
        )
        t0 = time.perf_counter()
        write_ngff(source, out, scale_um=(0.01, 0.01, 0.01), chunks=(CHUNK,) * 3)
        seconds = time.perf_counter() - t0
    elif impl == "ome-zarr-py":
        import dask.array as da
        import zarr
        from ome_zarr.format import FormatV05
        from ome_zarr.writer import write_image

        start_rss = _peak_rss()
        lazy = da.zeros((size,) * 3, dtype=np.uint8, chunks=(CHUNK,) * 3).map_blocks(
            lambda block, block_info=None: voxels(
                tuple(slice(a, b) for a, b in block_info[0]["array-location"])
            ),
            dtype=np.uint8,
        )
        group = zarr.open_group(str(out), mode="w", zarr_format=3)
        t0 = time.perf_counter()
        n_levels = 1
        while (size >> n_levels) >= CHUNK:
            n_levels += 1
        write_image(
            lazy,
            group,
            fmt=FormatV05(),
            axes="zyx",
            scale_factors=[{"z": 2**k, "y": 2**k, "x": 2**k} for k in range(1, n_levels)],
            storage_options={"chunks": (CHUNK,) * 3},
        )
        seconds = time.perf_counter() - t0
    else:
        raise SystemExit(f"unknown writer {impl!r}")
    return {"peak_rss": float(_peak_rss()), "start_rss": float(start_rss), "seconds": seconds}


def run_child(impl: str, size: int, workdir: Path) -> dict[str, float]:
    out = workdir / f"{impl}.zarr"
    cmd = [sys.executable, __file__, "--child", impl, "--size", str(size), "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{impl} failed:\n{proc.stderr}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["disk_bytes"] = float(sum(f.stat().st_size for f in out.rglob("*") if f.is_file()))
    shutil.rmtree(out, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="edge length (default: 1024)")
    parser.add_argument("--reference", action="store_true", help="also run ome-zarr-py + dask")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.size, args.out)))
        return 0

    raw = args.size**3
    workdir = Path(tempfile.mkdtemp(prefix="bench_write_memory_"))
    try:
        results = {"vrscope": run_child("vrscope", args.size, workdir)}
        if args.reference:
            results["ome-zarr-py"] = run_child("ome-zarr-py", args.size, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"procedural {args.size}^3 uint8 volume (raw {raw / 1e9:.3f} GB), chunks {CHUNK}^3")
    print(f"{'writer':<12} {'peak RSS':>10} {'RSS/raw':>8} {'after imports':>14} {'time':>8}")
    for impl, r in results.items():
        print(
            f"{impl:<12} {r['peak_rss'] / 1e6:>7.0f} MB {r['peak_rss'] / raw:>8.3f} "
            f"{r['start_rss'] / 1e6:>11.0f} MB {r['seconds']:>7.1f}s"
        )
    if "ome-zarr-py" in results:
        ours, ref = results["vrscope"], results["ome-zarr-py"]
        print(
            f"vrscope / ome-zarr-py: peak RSS {ours['peak_rss'] / ref['peak_rss']:.2f}x, "
            f"time {ours['seconds'] / ref['seconds']:.2f}x"
        )
    ok = results["vrscope"]["peak_rss"] < LIMIT_BYTES
    print(f"target peak RSS < {LIMIT_BYTES / 1e9:.1f} GB: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
