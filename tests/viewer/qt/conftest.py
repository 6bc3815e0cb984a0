"""Qt fixtures: small generated samples and a viewer factory that closes what it made.

Run under Xvfb with ``QT_QPA_PLATFORM=xcb`` (scripts/test.sh does). The 3D view
renders offscreen through ``VTK_DEFAULT_OPENGL_WINDOW`` (EGL in CI) on its
render thread, so no GL window is needed; the Qt widgets need the X server.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def fibsem_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from analysis.io import write_fibsem_sample
    from analysis.synthetic import fibsem_cell

    out = tmp_path_factory.mktemp("fib") / "cell.zarr"
    write_fibsem_sample(fibsem_cell(size=96, seed=3), out)
    return out


@pytest.fixture(scope="session")
def timelapse_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from analysis.io import write_timelapse_sample
    from analysis.synthetic import timelapse

    out = tmp_path_factory.mktemp("tl") / "tl.zarr"
    write_timelapse_sample(timelapse(frames=6, size=48, n_cells=2, seed=1), out)
    return out


def wait_slices(qtbot: Any, win: Any, timeout_ms: int = 60_000) -> None:
    """Wait until every slice the views asked for has landed (read on the loader's workers)."""

    def settled() -> bool:
        return win.slice_loader.idle() and not any(v.busy for v in win.slices.values())

    qtbot.waitUntil(settled, timeout=timeout_ms)
    qtbot.wait(20)
    qtbot.waitUntil(settled, timeout=timeout_ms)  # a redraw the last result scheduled


def wait_rendered(qtbot: Any, win: Any, timeout_ms: int = 180_000) -> None:
    """Wait until the 3D view painted a frame and the render thread is idle (fully streamed)."""
    qtbot.waitUntil(lambda: win.render_view.render_thread.frames >= 1, timeout=timeout_ms)
    assert win.render_view.render_thread.wait_idle(timeout_ms / 1000)
    wait_slices(qtbot, win)
    qtbot.wait(50)


@pytest.fixture(autouse=True)
def user_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The desktop's user settings (recent projects) in a fresh folder, never the user's."""
    from PySide6 import QtCore

    folder = tmp_path_factory.mktemp("settings")
    fmt, scope = QtCore.QSettings.Format.IniFormat, QtCore.QSettings.Scope.UserScope
    QtCore.QSettings.setPath(fmt, scope, str(folder))
    yield folder


@pytest.fixture
def make_viewer(qtbot: Any) -> Iterator[Callable[..., Any]]:
    """Build a ``QtViewer`` like napari's ``make_napari_viewer``; closes them all afterwards."""
    from viewer.qt import ProofreadingSession, QtViewer

    made: list[Any] = []

    def make(*args: Any, size: tuple[int, int] = (1100, 760), **kw: Any) -> Any:
        session = ProofreadingSession.open(*args, **kw)
        win = QtViewer(session, size=size)
        win.show()
        qtbot.waitExposed(win)
        win.activateWindow()
        made.append(win)
        wait_rendered(qtbot, win)
        return win

    yield make
    for win in made:
        # A test's in-memory edits would make closing ask (tests of the prompt answer it).
        win.session.unsaved_edits = 0
        win.close()
    # Nothing a test opened may outlive it: a message box left open (an error shown in
    # the window) keeps the next test's window from becoming active.
    from PySide6 import QtWidgets

    for w in QtWidgets.QApplication.topLevelWidgets():
        if w.isVisible():
            w.close()
    qtbot.wait(10)


@pytest.fixture
def tl_viewer(make_viewer: Any, timelapse_store: Path, tmp_path: Path) -> Any:
    """The time-lapse sample with its tracks, in a project (edits journaled)."""
    return make_viewer(
        str(timelapse_store),
        ["nuclei"],
        tracks=str(timelapse_store / "tracks"),
        project=str(tmp_path / "proj"),
    )


def truth(timelapse_store: Path) -> Any:
    """The time-lapse sample's ground truth (pandas, indexed by node id)."""
    import pandas as pd

    return pd.read_csv(timelapse_store.with_name("tl.truth.csv")).set_index("node_id")
