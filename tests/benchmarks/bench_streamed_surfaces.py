"""Streamed label surfaces (issue 6): time to first surfaces and to full detail, frame-thread
time while meshes arrive, against meshing the whole level at once (``VtkLabels``).

Run: ``.venv/bin/python tests/benchmarks/bench_streamed_surfaces.py [--quick]``. A synthetic
label image of a few hundred balls and ellipsoids (256³, 64³ chunks, 3 levels by
striding), in memory so the figures are meshing and drawing, not I/O.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from analysis.volume import ArrayVolumeSource  # noqa: E402
from viewer.scene import Labels, Scene  # noqa: E402

SIZE = (1280, 720)
FRAME_S = 1 / 60


def _labels(n: int, objects: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lab = np.zeros((n, n, n), np.uint32)
    zz, yy, xx = np.ogrid[:n, :n, :n]
    for i in range(1, objects + 1):
        c = rng.uniform(8, n - 8, 3)
        ax = rng.uniform(3, 9, 3)
        sl = tuple(
            slice(max(int(ci - ai) - 1, 0), min(int(ci + ai) + 2, n))
            for ci, ai in zip(c, ax, strict=True)
        )
        z, y, x = zz[sl[0]], yy[:, sl[1]], xx[:, :, sl[2]]
        inside = ((z - c[0]) / ax[0]) ** 2 + ((y - c[1]) / ax[1]) ** 2 + ((x - c[2]) / ax[2]) ** 2
        region = lab[sl]
        region[(inside <= 1) & (region == 0)] = i
    return lab


def _source(lab: np.ndarray) -> ArrayVolumeSource:
    return ArrayVolumeSource([lab, lab[::2, ::2, ::2], lab[::4, ::4, ::4]], chunks=(64, 64, 64))


def _scene(lab: np.ndarray, zoom: float) -> tuple[Scene, Labels]:
    lay = Labels(_source(lab), name="cells")
    scene = Scene([lay])
    scene.reset_camera()
    scene.camera.orbit(25, 15)
    scene.camera.dolly(zoom)
    return scene, lay


def whole_level(lab: np.ndarray, smoothing: int) -> tuple[float, int]:
    """Seconds for VtkLabels' first frame meshing level 0 (what the desktop does now)."""
    from viewer.render import SceneRenderer

    scene, lay = _scene(lab, 1.0)
    lay.smoothing_iterations = smoothing
    with SceneRenderer(scene, size=SIZE, voxel_budget=2**30) as r:
        t0 = time.perf_counter()
        r.render()
        dt = time.perf_counter() - t0
        n = sum(len(m.faces) for m in r.adapter(lay).meshes.values())
    return dt, n


def streamed(lab: np.ndarray, zoom: float, workers: int) -> dict[str, float]:
    """Frame loop at 60 Hz from an empty cache until every leaf has its own mesh."""
    from viewer.render import SceneRenderer
    from viewer.render._streaming import StreamingController

    scene, lay = _scene(lab, zoom)
    out: dict[str, float] = {}
    with SceneRenderer(scene, size=SIZE) as r:
        with StreamingController(r, cache_bytes=1 << 30, mesh_workers=workers) as ctl:
            adapter = r.adapter(lay)
            upd, upd_cpu, draw = [], [], []
            t0 = time.perf_counter()
            first = None
            while time.perf_counter() - t0 < 300:
                a = time.perf_counter()
                c = time.thread_time()
                frame = ctl.update()["cells"]
                upd.append(time.perf_counter() - a)
                upd_cpu.append(time.thread_time() - c)
                b = time.perf_counter()
                r.render()
                draw.append(time.perf_counter() - b)
                if first is None and adapter.items:
                    first = time.perf_counter() - t0
                if frame.complete:
                    break
                time.sleep(max(FRAME_S - (time.perf_counter() - a), 0.0))
            out["first_s"] = first if first is not None else float("nan")
            out["full_s"] = time.perf_counter() - t0
            out["frames"] = len(upd)
            out["upd_med_ms"] = float(np.median(upd)) * 1e3
            out["upd_p95_ms"] = float(np.percentile(upd, 95)) * 1e3
            out["upd_max_ms"] = float(np.max(upd)) * 1e3
            out["upd_cpu_med_ms"] = float(np.median(upd_cpu)) * 1e3
            out["draw_med_ms"] = float(np.median(draw)) * 1e3
            out["meshes"] = adapter.built
            out["levels"] = float(len({lv for _, lv, _, _ in adapter.items}))
            out["finest"] = float(min(lv for _, lv, _, _ in adapter.items))
            out["triangles"] = float(sum(len(f) for _, _, f, _ in adapter.drawn_triangles()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="128³ with 60 objects")
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    args = ap.parse_args()
    n, objects = (128, 60) if args.quick else (256, 400)
    lab = _labels(n, objects)
    print(f"label image {n}³, {len(np.unique(lab)) - 1} objects, 64³ chunks, viewport {SIZE}")
    for smoothing in (10, 0):
        dt, tris = whole_level(lab, smoothing)
        print(
            f"whole level 0 (VtkLabels, smoothing {smoothing}): first frame {dt * 1e3:.0f} ms "
            f"on the frame thread, {tris} triangles"
        )
    print(
        "| view | mesh threads | first surfaces | full detail | frames | frame-thread update "
        "median / p95 / max (CPU median) | draw median | meshes built | triangles drawn |"
    )
    for zoom, name in ((1.0, "whole volume"), (4.0, "zoomed 4x")):
        for w in args.workers:
            s = streamed(lab, zoom, w)
            print(
                f"| {name} | {w} | {s['first_s'] * 1e3:.0f} ms | {s['full_s'] * 1e3:.0f} ms | "
                f"{s['frames']:.0f} | {s['upd_med_ms']:.1f} / {s['upd_p95_ms']:.1f} / "
                f"{s['upd_max_ms']:.1f} ms ({s['upd_cpu_med_ms']:.1f}) | "
                f"{s['draw_med_ms']:.1f} ms | {s['meshes']:.0f} | {s['triangles']:.0f} "
                f"(finest level {s['finest']:.0f}) |"
            )


if __name__ == "__main__":
    main()
