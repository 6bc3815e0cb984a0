"""Desktop app figures: slice scrolling, an edit's round trip, 3D frame time (run directly).

    .venv/bin/python tests/benchmarks/bench_desktop.py

Prints each figure next to its reference measured in the same run:
- slice scrolling: ``viewer.qt`` slices (whole level cached) vs indexing the zarr
  array directly (zarr-python, the reference reader), 3 orthogonal slices per step;
- an edit: Cut through the project's History (journal fsync'd) vs the bare
  TrackGraph edit;
- an edit on a 1M-node lineage through the desktop session: journaled Cut + the
  incremental tracks-layer patch + tracklet table + the track list's model refresh,
  vs rebuilding the layer and the table from the whole graph (what it did before);
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
        it_j = iter(cut_nodes[:20])
        t_journal = _median_ms(lambda: pr.history.apply(Cut(next(it_j))), 10)
    bare = g.copy()
    it2 = iter(cut_nodes[20:40])
    t_bare = _median_ms(lambda: Cut(next(it2)).apply(bare), 20)
    print(
        f"cut on 100k nodes, journaled (fsync) apply: {t_journal:.2f} ms vs bare edit "
        f"{t_bare:.3f} ms (ratio {t_journal / t_bare:.0f})"
    )

    bench_million(tmp)

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


def bench_million(tmp: Path) -> None:
    """Journaled cut + incremental layer update on 1M nodes vs the full rebuild."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtWidgets

    from analysis.edits import Cut
    from analysis.project import Project
    from analysis.tracks import random_lineages
    from viewer.qt import ProofreadingSession
    from viewer.qt._panels import TracksPanel
    from viewer.qt._slices import QtSliceView
    from viewer.scene import Scene, Tracks, track_data_from_graph

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    g = random_lineages(1_000_000, track_length=50, seed=1)
    with Project.create(tmp / "p1m", tracks=g) as pr:
        g = pr.tracks
        s = ProofreadingSession(Scene([Tracks.from_track_graph(g, name="tracks")]), pr)
        panel = TracksPanel(s)  # refreshes its model on every edit, like in the window
        nodes = [int(n) for n in g.node_ids[:500_000:9973] if g.parent(int(n)) is not None]
        it = iter(nodes)
        t_inc = _median_ms(lambda: s.apply(Cut(next(it))), 20)
        t_undo = _median_ms(s.undo, 10)
        assert s.track_state is not None and s.track_state.rebuilds == 1
        t_full = _median_ms(lambda: (track_data_from_graph(g), s.track_table()), 3)
        view = QtSliceView(s, "xy")
        s.set_time(60)
        t_ov = _median_ms(view.refresh_overlays, 10)
        print(
            f"cut on 1M nodes, journaled + tracks layer patch + track list: {t_inc:.1f} ms "
            f"(undo {t_undo:.1f} ms) vs full layer + table rebuild {t_full:.0f} ms "
            f"(ratio {t_inc / t_full:.3f}; {panel.model.rowCount()} tracklets listed); "
            f"a slice's track overlay redraw: {t_ov:.1f} ms"
        )
        s.close()
    del app


if __name__ == "__main__":
    main()
