"""Time from N (next unreviewed track) to that track centred in every view (issue 18).

Run: ``.venv/bin/python tests/benchmarks/bench_review_loop.py`` (Qt offscreen unless
``QT_QPA_PLATFORM`` is set). A time-lapse sample (24 frames, 128³, 12 cells) opens in a
project; each step presses N (a real key event), then R (reviewed). Timed per N: the key
press until the crosshair, the 3D focus and the slice views' middles are at the track's
first node *and* the three slices of its time point have landed (the loader idle, every
view settled), and until the 3D view painted a frame after that. Reference, same run: the
same wait after moving only the crosshair (``set_cursor``) to another node at another
time, which is what any jump costs (reading three slices of another time point).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")

from PySide6 import QtCore, QtWidgets  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

Qt = QtCore.Qt


def _wait_until(cond: Any, timeout_s: float = 120) -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError("condition not reached")
        QTest.qWait(1)


def _settled(win: Any) -> bool:
    return win.slice_loader.idle() and not any(v.busy for v in win.slices.values())


def main(steps: int = 10) -> None:
    from analysis.io import write_timelapse_sample
    from analysis.synthetic import timelapse
    from viewer.qt import ProofreadingSession, QtViewer

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    tmp = Path(tempfile.mkdtemp())
    store = tmp / "tl.zarr"
    write_timelapse_sample(timelapse(frames=24, size=128, n_cells=12, seed=1), store)
    s = ProofreadingSession.open(
        str(store), ["nuclei"], tracks=str(store / "tracks"), project=str(tmp / "proj")
    )
    win = QtViewer(s, size=(1400, 900))
    win.show()
    QTest.qWaitForWindowExposed(win)
    _wait_until(lambda: win.render_view.render_thread.frames >= 1, 300)
    win.render_view.render_thread.wait_idle(300)
    _wait_until(lambda: _settled(win))
    g = s.tracks
    shown, painted, ref = [], [], []
    rng = np.random.default_rng(0)
    for _ in range(steps):
        t0 = time.perf_counter()
        frames = win.render_view.render_thread.frames
        QTest.keyClick(win, Qt.Key.Key_N)
        node = s.scene.selection.node_ids[0]
        want = np.asarray(g.position(node))

        def centred(want: Any = want) -> bool:
            c = win.slices["xy"].view.viewRect().center()
            return bool(
                np.allclose(s.cursor, want)
                and np.allclose(s.scene.camera.focal_point, want)
                and np.allclose((c.x(), c.y()), want[[2, 1]], atol=1e-3)
                and _settled(win)
            )

        _wait_until(centred)
        shown.append(time.perf_counter() - t0)
        _wait_until(lambda f=frames: win.render_view.render_thread.frames > f)
        painted.append(time.perf_counter() - t0)
        QTest.keyClick(win, Qt.Key.Key_R)
        win.render_view.render_thread.wait_idle(60)
        _wait_until(lambda: _settled(win))
        # reference: move the crosshair only, to a random node at another time
        other = int(rng.choice(g.node_ids))
        t0 = time.perf_counter()
        s.set_time(g.time(other))
        s.set_cursor(g.position(other))
        _wait_until(lambda: _settled(win))
        ref.append(time.perf_counter() - t0)
        win.render_view.render_thread.wait_idle(60)
    ms = lambda xs: f"p50 {1000 * np.median(xs):.0f} ms, max {1000 * np.max(xs):.0f} ms"  # noqa: E731
    print(f"N -> centred in every view, slices landed: {ms(shown)}")
    print(f"N -> 3D frame painted after it:          {ms(painted)}")
    print(f"reference, crosshair + time only:        {ms(ref)}")
    print(f"load average: {os.getloadavg()[0]:.1f}")
    win.close()
    app.processEvents()


if __name__ == "__main__":
    main()
