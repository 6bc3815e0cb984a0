"""Regenerate the desktop screenshots of docs/desktop.md (needs an X server, e.g. Xvfb).

    xvfb-run -a -s "-screen 0 1920x1080x24" env QT_QPA_PLATFORM=xcb \\
        .venv/bin/python docs/img/desktop_screenshots.py
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import numpy as np
from PySide6 import QtCore, QtWidgets

OUT = Path(__file__).parent


def settle(app: QtWidgets.QApplication, win: object, seconds: float = 0.3) -> None:
    rt = win.render_view.render_thread  # type: ignore[attr-defined]
    end = time.monotonic() + 180
    while time.monotonic() < end:
        app.processEvents()
        busy = not win.slice_loader.idle() or any(v.busy for v in win.slices.values())  # type: ignore[attr-defined]
        if rt.frames and rt.wait_idle(0.01) and not busy:
            break
        time.sleep(0.02)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def wait_job(app: QtWidgets.QApplication, job: object) -> None:
    while not job.done.is_set():  # type: ignore[attr-defined]
        app.processEvents()
        time.sleep(0.02)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.01)


def fibsem(app: QtWidgets.QApplication, tmp: Path) -> None:
    from analysis.io import write_fibsem_sample
    from analysis.synthetic import fibsem_cell
    from viewer.qt import ProofreadingSession, QtViewer

    store = tmp / "cell.zarr"
    write_fibsem_sample(fibsem_cell(size=128, seed=3), store)
    s = ProofreadingSession.open(str(store), ["mitochondria", "nucleus"], project=str(tmp / "p"))
    win = QtViewer(s, size=(1600, 1000))
    win.show()
    settle(app, win)
    job = win.run_measure(s.layer("mitochondria"))
    assert job is not None
    wait_job(app, job)
    table = win.features.table.sort_values("volume_um3")
    for labels, name in ((table["label"].iloc[-3:], "large"), (table["label"].iloc[:3], "small")):
        s.select_labels("mitochondria", [int(v) for v in labels])
        s.classify_selected(name)
    cj = win.run_classifier()
    assert cj is not None
    wait_job(app, cj)
    win.features.xcol.setCurrentText("volume_um3")
    win.features.ycol.setCurrentText("sphericity")
    c = np.asarray(s.cursor)
    s.set_mode("count")
    for d in ((0, -1.5, -2.0), (0, 1.0, 0.5), (0, 2.0, -1.0)):
        s.add_point(c + d)
    s.set_mode("distance")
    s.add_point(c + (0, -3.0, -3.0))
    s.add_point(c + (0, 2.5, 3.0))
    s.set_mode("navigate")
    s.clipping.add("-x", origin=c + (0, 0, 2.0))
    win.docks["Clipping"].raise_()
    s.scene.camera.orbit(azimuth=-25, elevation=10)
    s.scene.camera.dolly(1.6)
    settle(app, win, 1.0)
    win.screenshot(OUT / "desktop_fibsem.png")
    win.close()


def timelapse(app: QtWidgets.QApplication, tmp: Path) -> None:
    from analysis.io import write_timelapse_sample
    from analysis.synthetic import timelapse as make
    from viewer.qt import ProofreadingSession, QtViewer

    store = tmp / "tl.zarr"
    write_timelapse_sample(make(frames=12, size=64, n_cells=4, seed=1), store)
    s = ProofreadingSession.open(
        str(store), ["nuclei"], tracks=str(store / "tracks"), project=str(tmp / "tlp")
    )
    win = QtViewer(s, size=(1600, 1000))
    win.show()
    settle(app, win)
    first = s.next_unreviewed()
    s.toggle_reviewed()
    s.next_unreviewed()
    s.set_time(8)
    if first is not None:
        s.select_node(int(s.tracks.tracklet(first)[-1]))
    win.docks["Tracks"].raise_()
    win.tracks_panel.filter.setCurrentText("unreviewed")
    settle(app, win, 1.0)
    win.screenshot(OUT / "desktop_timelapse.png")
    # The review loop: suspicious tracks listed with their issues, Shift+N on the first,
    # its lineage tree beside the list.
    win.tracks_panel.filter.setCurrentText("suspicious")
    s.run("tracks.next_suspicious")
    win.removeDockWidget(win.docks["Lineage"])
    win.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, win.docks["Lineage"])
    win.docks["Lineage"].show()
    win.docks["Tracks"].raise_()
    settle(app, win, 1.0)
    win.screenshot(OUT / "desktop_review.png")
    win.close()


def main() -> None:
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["vrscope"])
    QtCore.QLocale.setDefault(QtCore.QLocale.c())
    with tempfile.TemporaryDirectory() as d:
        fibsem(app, Path(d))
        timelapse(app, Path(d))


if __name__ == "__main__":
    main()
