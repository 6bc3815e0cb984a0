"""Importer speed and memory: vrscope's lazy readers against reading with the library directly.

Run: ``.venv/bin/python tests/benchmarks/bench_import.py`` (``make bench``). Prints one
line per case with our time, the reference's time measured in the same run, and the
ratio (ours / reference; < 1 is faster). The last cases read and convert a 256 MiB
TIFF in child processes and report their peak RSS against the data size.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests._testdata import TESTDATA  # noqa: E402

MEDULLA = TESTDATA / "fibsem-medulla"


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def report(case: str, ours: float, ref: float, ref_name: str) -> None:
    print(
        f"{case:<48} ours {ours * 1e3:8.1f} ms   {ref_name} {ref * 1e3:8.1f} ms   ratio {ours / ref:5.2f}"
    )


def writer_blocks(shape: tuple[int, ...]) -> list[tuple[slice, ...]]:
    """The blocks write_ngff pulls from a source (64-deep slabs, widened in x then y)."""
    from analysis.io._write import _BLOCK_BYTES, _blocks

    return list(_blocks(shape, (64, 64, 64), _BLOCK_BYTES // 8))


def read_all(source: object, shape: tuple[int, ...]) -> None:
    for block in writer_blocks(shape):
        source.read(0, block)  # type: ignore[attr-defined]


def bench_medulla(tmp: Path) -> None:
    import imageio.v3 as iio

    from analysis.io import (
        LookupVolumeSource,
        import_hdf5,
        open_input,
        read_lookup_table,
        write_ngff,
    )
    from vrscope.cli import main

    maps = MEDULLA / "grayscale_maps"
    files = sorted(maps.glob("*.png"))

    def ours() -> None:
        src = open_input(maps)  # fresh source: cold slice cache
        read_all(src, src.levels[0].shape)

    ref = best_of(lambda: np.stack([iio.imread(f) for f in files]))
    report("medulla 250 PNG slices, writer blocks", best_of(ours), ref, "imageio loop")

    gt = MEDULLA / "groundtruth.h5.gz"
    with import_hdf5(gt, "stack") as stack:
        labels = stack.read(0)
        table = read_lookup_table(f"{gt}:transforms")
        lookup = LookupVolumeSource(stack, table)
        forward = np.zeros(int(table[:, 0].max()) + 1, np.uint32)
        forward[table[:, 0]] = table[:, 1]
        report(
            "medulla bodies lookup, 250^3 (dense table path)",
            best_of(lambda: lookup.apply(labels)),
            best_of(lambda: forward[labels]),
            "dense LUT",
        )
        # Ids far apart (64-bit, as in DVID exports): the searchsorted path; the reference
        # is the usual NumPy idiom, np.unique(return_inverse) and a per-id gather.
        sparse_labels = labels.astype(np.int64) * 2**20 + 2**40
        sparse_table = np.stack([table[:, 0] * 2**20 + 2**40, table[:, 1]], axis=1)
        sparse = LookupVolumeSource(stack, sparse_table)
        mapping = dict(zip(sparse_table[:, 0].tolist(), sparse_table[:, 1].tolist(), strict=True))

        def unique_inverse() -> np.ndarray:
            uniq, inverse = np.unique(sparse_labels, return_inverse=True)
            mapped = np.array([mapping.get(u, 0) for u in uniq.tolist()], np.uint32)
            return mapped[inverse].reshape(sparse_labels.shape)

        assert np.array_equal(sparse.apply(sparse_labels), unique_inverse())
        report(
            "medulla bodies lookup, 64-bit ids (searchsorted)",
            best_of(lambda: sparse.apply(sparse_labels)),
            best_of(unique_inverse),
            "np.unique inverse",
        )

    def gunzip_h5py() -> None:
        import h5py

        raw = tmp / "gt.h5"
        with gzip.open(gt, "rb") as src_f, open(raw, "wb") as dst:
            shutil.copyfileobj(src_f, dst)
        with h5py.File(raw, "r") as f:
            f["stack"][...]
        raw.unlink()

    def ours_h5() -> None:
        with import_hdf5(gt, "stack", cache_dir=tmp / "cache") as src:
            read_all(src, src.levels[0].shape)

    report(
        "medulla .h5.gz stack, writer blocks", best_of(ours_h5), best_of(gunzip_h5py), "gzip+h5py"
    )

    pngs = np.stack([iio.imread(f) for f in files])
    out = tmp / "m.zarr"

    def convert() -> None:
        main(["convert", str(maps), str(out), "--voxel-size", "10", "10", "10", "--unit",
              "nanometer", "--overwrite", "--no-progress"])  # fmt: skip

    def write_only() -> None:
        write_ngff(pngs, tmp / "w.zarr", scale_um=(0.01, 0.01, 0.01), overwrite=True)

    report("medulla vrscope convert (image only)", best_of(convert), best_of(write_only),
           "write_ngff(in-memory)")  # fmt: skip


def bench_tiff(tmp: Path) -> None:
    import tifffile

    from analysis.io import open_input

    rng = np.random.default_rng(0)
    data = (rng.normal(30000, 3000, size=(128, 512, 512))).astype(np.uint16)
    path = tmp / "stack.tif"
    tifffile.imwrite(path, data, compression="zlib")

    def ours() -> None:
        src = open_input(path)
        read_all(src, src.levels[0].shape)
        src.close()  # type: ignore[attr-defined]

    report("TIFF 128x512x512 u16 zlib, writer blocks", best_of(ours),
           best_of(lambda: tifffile.imread(path)), "tifffile.imread")  # fmt: skip


CHILD = """
import sys
mode, path, out = sys.argv[1:4]
if mode == "read":
    from analysis.io import open_input
    from analysis.io._write import _BLOCK_BYTES, _blocks
    src = open_input(path)
    for block in _blocks(src.levels[0].shape, (64, 64, 64), _BLOCK_BYTES // 8):
        src.read(0, block)
elif mode == "convert":
    from vrscope.cli import main
    main(["convert", path, out, "--voxel-size", "1", "1", "1", "--no-progress"])
else:  # the same imports, nothing read: the interpreter's own baseline
    import analysis.io, vrscope.cli, tifffile, zarr
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the (large) parent across exec.
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")))
"""


def bench_memory(tmp: Path) -> None:
    import tifffile

    shape = (256, 1024, 1024)  # 256 MiB of uint8

    def pages():  # type: ignore[no-untyped-def]
        y, x = np.mgrid[: shape[1], : shape[2]]
        for z in range(shape[0]):
            yield ((x + 2 * y + 3 * z) % 251).astype(np.uint8)

    path = tmp / "big.tif"
    tifffile.imwrite(path, pages(), shape=shape, dtype=np.uint8)
    size_mb = np.prod(shape) / 2**20
    for mode, what in (
        ("baseline", "imports only"),
        ("read", "read in writer blocks"),
        ("convert", "vrscope convert -> OME-Zarr"),
    ):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, mode, str(path), str(tmp / "big.zarr")],
            capture_output=True, text=True, cwd=ROOT, check=True,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        peak_mb = int(proc.stdout.strip().splitlines()[-1]) / 1024
        print(
            f"{'TIFF 256x1024x1024 u8, ' + what:<48} {seconds:6.1f} s   peak RSS "
            f"{peak_mb:6.0f} MB   (data {size_mb:.0f} MB, ratio {peak_mb / size_mb:4.2f})"
        )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="vrscope-bench-import-") as d:
        tmp = Path(d)
        if MEDULLA.is_dir():
            bench_medulla(tmp)
        else:
            print(f"skipping the medulla cases: {MEDULLA} not found")
        bench_tiff(tmp)
        bench_memory(tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
