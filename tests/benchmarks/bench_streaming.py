"""Streaming benchmarks (issue 6): first image, full detail after the camera stops, over-fetch,
frame CPU with 100k+ bricks, throughput against plain zarr, peak memory on a huge volume.

Run: ``.venv/bin/python tests/benchmarks/bench_streaming.py [--quick]``. Prints one table
per figure; ratios are against plain zarr read + decode measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import zarr  # noqa: E402

from analysis.io import open_volume, write_ngff  # noqa: E402
from analysis.volume import FunctionVolumeSource  # noqa: E402
from viewer.scene import Camera  # noqa: E402
from viewer.streaming import BrickGrid, View, VolumeStreamer, default_workers, select_bricks  # noqa: E402

SIZE = (1920, 1080)
FRAME_S = 1 / 60


def _store(tmp: Path, n: int = 512) -> Path:
    path = tmp / "bench.zarr"
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32),) * 3, indexing="ij", sparse=True)
    data = (np.sin(z / 9) * np.cos(y / 13) * np.sin(x / 7) * 100 + 128).astype(np.uint8)
    rng = np.random.default_rng(0)
    data += rng.integers(0, 20, data.shape, dtype=np.uint8)  # texture: realistic compression
    write_ngff(data, path, scale_um=(0.01, 0.01, 0.01), unit="micrometer", chunks=(64, 64, 64))
    return path


def _frame_camera(src: object, dolly: float = 1.0) -> Camera:
    lev = src.levels[0]  # type: ignore[attr-defined]
    s = np.asarray(lev.scale_um)
    lo = np.asarray(lev.translation[-3:]) - s / 2
    hi = lo + np.asarray(lev.shape[-3:]) * s
    cam = Camera()
    cam.frame(lo, hi, direction=(1.0, 0.3, 0.2), view_up=(0.0, -1.0, 0.0))
    cam.dolly(dolly)
    return cam


def first_image(src: object, label: str, render: bool = False) -> list[str]:
    t0 = time.perf_counter()
    cam = _frame_camera(src)
    view = View.from_camera(cam, SIZE)
    with VolumeStreamer(src, cache_bytes=1 << 30) as st:  # type: ignore[arg-type]
        # a 60 Hz frame loop polls; it never waits on I/O
        frame = st.first_image(view, frame_s=FRAME_S)
        t_stream = time.perf_counter() - t0
        rows = [
            f"| {label} | first image (coarsest resident, all leaves covered) | "
            f"{t_stream * 1e3:.0f} ms | levels drawn {sorted(set(frame.levels.tolist()))} |"
        ]
    if render:
        from viewer.render import SceneRenderer
        from viewer.render._streaming import StreamingController
        from viewer.scene import Image, Scene

        t0 = time.perf_counter()
        lay = Image(src)
        scene = Scene([lay])
        scene.camera.update(cam.model_dump())
        with SceneRenderer(scene, size=(800, 600)) as r, StreamingController(r) as ctl:
            frames = ctl.update()
            while frames[lay.name].stats.drawn == 0 or frames[lay.name].stats.undrawn:
                time.sleep(FRAME_S)
                frames = ctl.update()
            r.render()
            rows.append(
                f"| {label} | first image rendered (800x600, llvmpipe, incl. VTK setup) | "
                f"{(time.perf_counter() - t0) * 1e3:.0f} ms | |"
            )
    return rows


def full_detail_after_stop(src: object, label: str, n_workers: int = 8) -> list[str]:
    """Fly 30 frames at 60 Hz, stop; time until the final view is complete; over-fetch."""
    cam = _frame_camera(src, dolly=1.0)
    target = _frame_camera(src, dolly=2.5)
    p0, p1 = np.asarray(cam.position), np.asarray(target.position)
    with VolumeStreamer(src, cache_bytes=2 << 30, n_workers=n_workers) as st:  # type: ignore[arg-type]
        for i in range(30):
            cam.position = tuple(p0 + (p1 - p0) * i / 29)
            tick = time.perf_counter()
            st.update(View.from_camera(cam, SIZE))
            time.sleep(max(1 / 60 - (time.perf_counter() - tick), 0))
        loaded0 = st.scheduler.stats().bytes_loaded
        t0 = time.perf_counter()
        view = View.from_camera(cam, SIZE)
        frame = st.update(view)
        while not frame.complete:
            time.sleep(FRAME_S)
            frame = st.update(view)
        dt = time.perf_counter() - t0
        # wait for stragglers, then count everything fetched for this run
        st.scheduler.wait_idle(30)
        fetched = st.scheduler.stats().bytes_loaded
        needed = int(st.grid.nbytes(frame.selection.leaves, st.itemsize).sum())
    return [
        f"| {label} | full detail after the camera stops | {dt * 1e3:.0f} ms | "
        f"{len(frame.selection.leaves)} leaves, {(fetched - loaded0) / 2**20:.1f} MB after stop |",
        f"| {label} | bytes fetched (whole fly + stop) / bytes of the final view | "
        f"{fetched / needed:.2f} | {fetched / 2**20:.1f} MB / {needed / 2**20:.1f} MB |",
    ]


def overfetch_static(src: object, label: str) -> str:
    view = View.from_camera(_frame_camera(src, dolly=2.0), SIZE)
    with VolumeStreamer(src, cache_bytes=2 << 30) as st:  # type: ignore[arg-type]
        t0 = time.perf_counter()
        frame = st.update(view)
        while not frame.complete:
            time.sleep(FRAME_S)
            frame = st.update(view)
        dt = time.perf_counter() - t0
        st.scheduler.wait_idle(30)
        fetched = st.scheduler.stats().bytes_loaded
        needed = int(st.grid.nbytes(frame.selection.leaves, st.itemsize).sum())
    return (
        f"| {label} | one view from an empty cache: full detail in {dt * 1e3:.0f} ms; "
        f"bytes fetched / needed | {fetched / needed:.2f} | "
        f"{fetched / 2**20:.1f} / {needed / 2**20:.1f} MB |"
    )


def _zarr_bricks(path: Path) -> FunctionVolumeSource:
    """A 1600 x 4096 x 4096 volume (102,400 level-0 bricks) whose bricks are real zarr reads:
    each brick reads and zstd-decodes one 64^3 chunk of the 512^3 benchmark store (chunk
    index modulo its 8 x 8 x 8 grid), so loader threads do what they do on a real store,
    batches through ``read_many`` included."""
    small = open_volume(path)

    def chunk(region: tuple[slice, ...]) -> tuple[slice, ...]:
        i, j, k = ((s.start // 64) % 8 for s in region)
        return (slice(i * 64, i * 64 + 64), slice(j * 64, j * 64 + 64), slice(k * 64, k * 64 + 64))

    def crop(a: np.ndarray, region: tuple[slice, ...]) -> np.ndarray:
        return a[tuple(slice(0, s.stop - s.start) for s in region)]

    def fn(level: int, region: tuple[slice, ...]) -> np.ndarray:
        return crop(small.read(0, chunk(region)), region)

    class ZarrBricks(FunctionVolumeSource):
        def read_many(self, requests: list[tuple[int, tuple[slice, ...]]]) -> list[object]:
            got = small.read_many([(0, chunk(reg)) for _, reg in requests])
            return [
                g if isinstance(g, Exception) else crop(g, r)
                for g, (_, r) in zip(got, requests, strict=True)
            ]

    return ZarrBricks((1600, 4096, 4096), fn, chunks=(64, 64, 64))


def _fly(
    st: VolumeStreamer, n: int, still: bool = False
) -> tuple[list[float], list[float], object]:
    """update() per frame along a fly path (or a still camera): wall and thread-CPU seconds."""
    wall, cpu = [], []
    f = None
    for i in range(n):
        j = 0 if still else i
        c = Camera(
            position=(800.0 - 2000 + 25 * j, 2048.0 + 10 * j, 2048.0),
            focal_point=(800.0, 2048.0, 2048.0 + 5 * j),
        )
        v = View.from_camera(c, SIZE)
        t, c0 = time.perf_counter(), time.thread_time()
        f = st.update(v)
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - t)
        time.sleep(1 / 60)
    return wall, cpu, f


def _ms(xs: list[float]) -> str:
    return f"{np.median(xs) * 1e3:.2f} / {np.percentile(xs, 95) * 1e3:.2f}"


def frame_cpu(quick: bool, path: Path) -> list[str]:
    rows = []

    def fn(level: int, region: tuple[slice, ...]) -> np.ndarray:
        return np.zeros([s.stop - s.start for s in region], np.uint8)

    # 4096 x 4096 x 1600 at 64^3: 64 x 64 x 25 = 102,400 level-0 bricks (117k in the pyramid).
    src = FunctionVolumeSource((1600, 4096, 4096), fn, chunks=(64, 64, 64))
    grid = BrickGrid.from_source(src)
    n0 = int(np.prod(grid.grid[0]))
    # worst case: every level-0 brick in view and wanted at level 0
    far = _frame_camera(src, dolly=1.0)
    sel = select_bricks(grid, [View.from_camera(far, SIZE)], max_error_px=1e-9)
    wall, cpu = [], []
    for _ in range(10):
        t, c0 = time.perf_counter(), time.thread_time()
        sel = select_bricks(grid, [View.from_camera(far, SIZE)], max_error_px=1e-9)
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - t)
    rows.append(
        f"| select_bricks, all {n0:,} level-0 bricks wanted ({sel.n_tested:,} tested) | "
        f"{_ms(wall)} | {_ms(cpu)} | {len(sel.leaves):,} leaves |"
    )
    n = 60 if not quick else 20
    # flying through (1 px error, 1920 x 1080), full update() incl. scheduling
    cases = [
        ("loads paused", src, True, False),
        ("8 workers loading (procedural bricks)", src, False, False),
        ("8 workers loading (zarr read + zstd decode per brick)", _zarr_bricks(path), False, False),
        ("camera still, 8 workers loading zarr bricks", _zarr_bricks(path), False, True),
        (
            f"default workers ({default_workers()}) loading zarr bricks",
            _zarr_bricks(path),
            False,
            False,
        ),
    ]
    for what, source, paused, still in cases:
        nw = None if what.startswith("default") else 8
        with VolumeStreamer(source, cache_bytes=512 << 20, n_workers=nw) as st:
            st.scheduler.pause(paused)
            wall, cpu, f = _fly(st, n, still)
            rows.append(
                f"| update(), {n0:,}-brick level 0, 1 px, {'' if still else 'flying, '}{what} | "
                f"{_ms(wall)} | {_ms(cpu)} | {f.selection.n_tested:,} tested, "  # type: ignore[attr-defined]
                f"{len(f.selection.leaves):,} leaves, LOD bias {f.stats.lod_bias:.2f}, "  # type: ignore[attr-defined]
                f"{f.stats.loaded} loaded |"  # type: ignore[attr-defined]
            )
    return rows


def throughput(path: Path) -> list[str]:
    src = open_volume(path)
    arr = zarr.open_array(str(path / src.levels[0].path), mode="r")
    n_bytes = int(np.prod(arr.shape))
    # plain zarr: the whole level in one call (zarr's own async concurrency), and chunk by chunk
    best_bulk = best_loop = np.inf
    for _ in range(3):
        t = time.perf_counter()
        arr[...]
        best_bulk = min(best_bulk, time.perf_counter() - t)
        t = time.perf_counter()
        for iz in range(0, arr.shape[0], 64):
            for iy in range(0, arr.shape[1], 64):
                for ix in range(0, arr.shape[2], 64):
                    arr[iz : iz + 64, iy : iy + 64, ix : ix + 64]
        best_loop = min(best_loop, time.perf_counter() - t)
    grid = BrickGrid.from_source(src)
    keys = np.arange(grid.offsets[0], grid.offsets[1])
    best_stream = np.inf
    for _ in range(3):
        with VolumeStreamer(src, cache_bytes=2 << 30, n_workers=8) as st:
            t = time.perf_counter()
            st.scheduler.submit(keys)
            got = 0
            while got < len(keys):
                for r in st.scheduler.drain():
                    assert r.array is not None
                    st.cache.put(r.request.key, r.array)
                    got += 1
                time.sleep(0.0005)
            best_stream = min(best_stream, time.perf_counter() - t)
    mbs = n_bytes / 2**20
    ref = min(best_bulk, best_loop)
    return [
        f"| plain zarr, whole level in one call | {mbs / best_bulk:.0f} MB/s | |",
        f"| plain zarr, chunk by chunk | {mbs / best_loop:.0f} MB/s | |",
        f"| streaming: scheduler (8 workers) + cache | {mbs / best_stream:.0f} MB/s | "
        f"{ref / best_stream:.2f} of the faster zarr way |",
    ]


def sharded(tmp: Path) -> list[str]:
    """512^3 in 64^3 chunks inside 256^3 shards (ome-zarr-py): the chunk reader against
    zarr's own path, locally and over HTTP with 100 ms per request."""
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_image

    n = 512
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32),) * 3, indexing="ij", sparse=True)
    data = (np.sin(z / 9) * np.cos(y / 13) * np.sin(x / 7) * 100 + 128).astype(np.uint8)
    data += np.random.default_rng(0).integers(0, 20, data.shape, dtype=np.uint8)
    group = zarr.open_group(str(tmp / "sharded.zarr"), mode="w", zarr_format=3)
    opts = {"chunks": (64,) * 3, "shards": (256,) * 3}
    write_image(
        data, group, axes="zyx", fmt=FormatV05(), scale_factors=(2, 4, 8), storage_options=opts
    )
    src = open_volume(tmp / "sharded.zarr")
    arr = zarr.open_array(str(tmp / "sharded.zarr" / src.levels[0].path), mode="r")
    regions = [
        (0, (slice(a, a + 64), slice(b, b + 64), slice(c, c + 64)))
        for a in range(0, n, 64)
        for b in range(0, n, 64)
        for c in range(0, n, 64)
    ]

    def best(fn: object) -> float:
        t = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            fn()  # type: ignore[operator]
            t = min(t, time.perf_counter() - t0)
        return t

    mbs = n**3 / 2**20
    whole = best(lambda: arr[...])
    ours = best(lambda: [src.read_many(regions[i : i + 8]) for i in range(0, len(regions), 8)])
    readers = list(src._chunk_readers)
    src._chunk_readers[:] = [None] * len(readers)
    via_zarr = best(lambda: [src.read_many(regions[i : i + 8]) for i in range(0, len(regions), 8)])
    rows = [
        f"| sharded, local | 512 bricks, batches of 8, one thread | chunk reader {mbs / ours:.0f} MB/s, "
        f"zarr per brick {mbs / via_zarr:.0f} MB/s | zarr whole level {mbs / whole:.0f} MB/s |"
    ]
    sys.path.insert(0, str(ROOT / "tests" / "viewer" / "streaming"))
    from _support import slow_http_server  # type: ignore[import-not-found]

    with slow_http_server(tmp, latency_s=0.1) as (url, _):
        for label, use_reader in (("chunk reader", True), ("zarr per brick", False)):
            remote_src = open_volume(f"{url}/sharded.zarr")
            if not use_reader:
                remote_src._chunk_readers[:] = [None] * len(remote_src.levels)
            rows += full_detail_after_stop(remote_src, f"sharded, HTTP 100 ms, {label}")
    return rows


def remote(path: Path) -> list[str]:
    sys.path.insert(0, str(ROOT / "tests" / "viewer" / "streaming"))
    from _support import slow_http_server  # type: ignore[import-not-found]

    rows = []
    with slow_http_server(path.parent, latency_s=0.1) as (url, info):
        src = open_volume(f"{url}/{path.name}")
        rows += first_image(src, "HTTP, 100 ms/request")
        for w in (8, 32):
            info["bytes"] = 0
            rows += full_detail_after_stop(src, f"HTTP, 100 ms/request, {w} workers", n_workers=w)
        rows.append(f"| HTTP | most requests served at once | {info['max_concurrent']} | |")
    return rows


_RSS_SCRIPT = textwrap.dedent(
    """
    import sys, time, numpy as np
    sys.path.insert(0, {root!r})
    from analysis.volume import FunctionVolumeSource
    from viewer.scene import Camera
    from viewer.streaming import View, VolumeStreamer
    def rss():
        for line in open('/proc/self/status'):
            if line.startswith('VmHWM'):
                return int(line.split()[1]) * 1024
    def fn(level, region):
        z, y, x = (np.arange(s.start, s.stop, dtype=np.int64) << level for s in region)
        return ((z[:, None, None] * 7 + y[None, :, None] * 13 + x[None, None, :] * 29) % 251
                ).astype(np.uint8)
    src = FunctionVolumeSource((16384, 16384, 8192), fn, chunks=(64, 64, 64))
    base = rss()
    budget = {budget}
    with VolumeStreamer(src, cache_bytes=budget, n_workers=8) as st:
        t0 = time.time()
        for i in range({frames}):
            c = Camera(position=(-3000.0 + 40 * i, 8192.0 + 20 * i, 4096.0 + 30 * i),
                       focal_point=(4096.0, 8192.0, 4096.0))
            st.update(View.from_camera(c, (1920, 1080)))
            time.sleep(1 / 60)
        st.settle(View.from_camera(c, (1920, 1080)), timeout=60)
        print(base, rss(), st.scheduler.stats().bytes_loaded, st.cache.nbytes, time.time() - t0)
    """
)


def peak_rss(frames: int) -> list[str]:
    budget = 512 << 20
    out = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT.format(root=str(ROOT), budget=budget, frames=frames)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    base, peak, loaded, held, secs = (float(x) for x in out)
    mb = 2**20
    return [
        f"| procedural 16384x16384x8192 fly-through ({frames} frames, {secs:.0f} s), "
        f"budget {budget / mb:.0f} MB | peak RSS {peak / mb:.0f} MB | "
        f"imports {base / mb:.0f} MB; peak - budget = {(peak - budget) / mb:.0f} MB (target < 500); "
        f"{loaded / mb:.0f} MB streamed, {held / mb:.0f} MB held |"
    ]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--frame-only", action="store_true", help="only the frame-work table")
    ap.add_argument("--throughput-only", action="store_true", help="only the throughput table")
    ap.add_argument("--sharded", action="store_true", help="only the sharded-store table")
    args = ap.parse_args()
    if args.sharded:
        with tempfile.TemporaryDirectory() as tmp:
            print(
                f"\n| sharded store, load average {os.getloadavg()[0]:.1f} | measure | value | "
                "notes |\n|---|---|---|---|"
            )
            for row in sharded(Path(tmp)):
                print(row, flush=True)
        return 0
    if args.throughput_only:
        with tempfile.TemporaryDirectory() as tmp:
            path = _store(Path(tmp), 512)
            print(
                f"\n| throughput (level 0, 512 chunks of 64^3), load average "
                f"{os.getloadavg()[0]:.1f} | rate | ratio |\n|---|---|---|"
            )
            for row in throughput(path):
                print(row, flush=True)
        return 0
    if args.frame_only:
        with tempfile.TemporaryDirectory() as tmp:
            path = _store(Path(tmp), 512)
            print(
                f"\n| frame work, load average {os.getloadavg()[0]:.1f} "
                "| wall ms median / p95 | thread CPU ms median / p95 | notes |\n|---|---|---|---|"
            )
            for row in frame_cpu(args.quick, path):
                print(row, flush=True)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = _store(Path(tmp), 256 if args.quick else 512)
        src = open_volume(path)
        print("\n| case | measure | value | notes |\n|---|---|---|---|")
        for row in first_image(src, "local 512^3", render=True):
            print(row, flush=True)
        proc = FunctionVolumeSource(
            (16384, 16384, 8192),
            lambda lv, reg: np.full([s.stop - s.start for s in reg], lv * 20, np.uint8),
            chunks=(64, 64, 64),
        )
        for row in first_image(proc, "procedural 16384x16384x8192"):
            print(row, flush=True)
        for row in full_detail_after_stop(src, "local 512^3"):
            print(row, flush=True)
        print(overfetch_static(src, "local 512^3"), flush=True)
        for row in remote(path):
            print(row, flush=True)
        print(
            f"\n| frame work (LOD + culling + scheduling), load average {os.getloadavg()[0]:.1f} "
            "| wall ms median / p95 | thread CPU ms median / p95 | notes |\n|---|---|---|---|"
        )
        for row in frame_cpu(args.quick, path):
            print(row, flush=True)
        print("\n| throughput (level 0, 512 chunks of 64^3) | rate | ratio |\n|---|---|---|")
        for row in throughput(path):
            print(row, flush=True)
    print("\n| memory | value | notes |\n|---|---|---|")
    for row in peak_rss(60 if args.quick else 180):
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
