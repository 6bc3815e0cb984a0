"""Desktop app figures: slice scrolling, an edit's round trip, 3D frame time (run directly).

    .venv/bin/python tests/benchmarks/bench_desktop.py

Prints each figure next to its reference measured in the same run:
- slice scrolling: ``viewer.qt`` slices (whole level cached) vs indexing the zarr
  array directly (zarr-python, the reference reader), 3 orthogonal slices per step;
- an edit: Cut through the project's History (journal fsync'd) plus the layer refresh
  the views need, vs the bare TrackGraph edit;
- 3D frame: the render thread's offscreen frame vs pyvista's offscreen render of the
  same volume at the same size (both on whatever OpenGL this machine has).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


def _median_ms(fn, n: int = 20) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def main() -> None:
    import zarr

    from analysis.edits import Cut
    from analysis.io import open_volume, write_fibsem_sample
    from analysis.project import Project
    from analysis.synthetic import fibsem_cell
    from analysis.tracks import random_lineages
    from viewer.qt._slices import CACHE, read_slice
    from viewer.scene import track_data_from_graph

    tmp = Path(tempfile.mkdtemp())
    store = tmp / "cell.zarr"
    write_fibsem_sample(fibsem_cell(size=256, seed=0), store)
    src = open_volume(str(store))
    raw = zarr.open_group(str(store), mode="r")[src.levels[0].path]
    sc = src.levels[0].scale_um
    ks = iter(range(10, 10_000))

    def ours() -> None:
        k = next(ks) % 200 + 20
        for plane, ax in (("xy", 0), ("xz", 1), ("yz", 2)):
            read_slice(src, plane, k * sc[ax], 0)  # type: ignore[arg-type]

    def reference() -> None:
        k = next(ks) % 200 + 20
        np.asarray(raw[k]), np.asarray(raw[:, k]), np.asarray(raw[:, :, k])

    CACHE.get(src, 0, 0)  # the first slice pays for loading the level once
    t_ours, t_ref = _median_ms(ours), _median_ms(reference, 10)
    print(
        f"slice scrolling 256^3 (3 slices/step): {t_ours:.2f} ms vs zarr {t_ref:.1f} ms "
        f"(ratio {t_ours / t_ref:.3f})"
    )

    g = random_lineages(100_000, track_length=50, seed=1)
    cut_nodes = [int(n) for n in g.node_ids if g.parent(int(n)) is not None][:40]
    with Project.create(tmp / "p", tracks=g) as pr:
        it = iter(cut_nodes[:20])

        def edit() -> None:
            pr.history.apply(Cut(next(it)))
            track_data_from_graph(pr.tracks)

        t_edit = _median_ms(edit, 10)
        it_j = iter(cut_nodes[10:20])
        t_journal = _median_ms(lambda: pr.history.apply(Cut(next(it_j))), 10)
    bare = g.copy()
    it2 = iter(cut_nodes[20:40])
    t_bare = _median_ms(lambda: Cut(next(it2)).apply(bare), 20)
    print(
        f"cut on 100k nodes, journaled + layer refresh: {t_edit:.2f} ms (journaled apply "
        f"alone {t_journal:.2f} ms) vs bare edit {t_bare:.3f} ms (ratio {t_edit / t_bare:.0f})"
    )

    import pyvista as pv

    from viewer.render import SceneRenderer
    from viewer.scene import Image, Scene

    vol = np.asarray(src.read(0), dtype=np.float32)
    scene = Scene([Image(vol, name="cell")])
    scene.reset_camera()
    with SceneRenderer(scene, size=(800, 600)) as r:
        r.screenshot()
        t3d = _median_ms(lambda: (scene.camera.orbit(azimuth=3), r.screenshot()), 10)
    p = pv.Plotter(off_screen=True, window_size=(800, 600))
    p.add_volume(vol, cmap="gray")
    p.show(auto_close=False)
    t_pv = _median_ms(lambda: (p.camera.Azimuth(3), p.render(), p.screenshot()), 10)
    p.close()
    print(
        f"3D frame 256^3 volume 800x600: {t3d:.0f} ms vs pyvista {t_pv:.0f} ms "
        f"(ratio {t3d / t_pv:.2f})"
    )


if __name__ == "__main__":
    main()
