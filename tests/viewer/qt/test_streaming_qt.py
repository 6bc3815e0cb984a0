"""The desktop app on stores bigger than its caches: 3D streaming and slices read off the UI thread.

References are independent of the viewer: the procedural volume's formula evaluated
here with NumPy, and the OME-Zarr arrays read with zarr-python itself.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from PySide6 import QtCore

from tests.viewer.qt.conftest import wait_rendered, wait_slices

pytestmark = pytest.mark.qt

Qt = QtCore.Qt


def pattern(z: Any, y: Any, x: Any, level: int) -> Any:
    """The procedural volume's voxels at level ``level`` (integer index grids)."""
    return ((z << level) * 7 + (y << level) * 13 + (x << level) * 29) % 251


class Recording:
    """A VolumeSource wrapper that slows reads down and records which thread made them."""

    def __init__(self, src: Any, delay_s: float = 0.0, slow_level: int | None = None) -> None:
        self.src = src
        self.delay_s = delay_s
        self.slow_level = slow_level
        self.threads: list[str] = []
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return str(self.src.name)

    @property
    def axes(self) -> Any:
        return self.src.axes

    @property
    def dtype(self) -> Any:
        return self.src.dtype

    @property
    def levels(self) -> Any:
        return self.src.levels

    def read(self, level: int, region: Any = None) -> Any:
        with self._lock:
            self.threads.append(threading.current_thread().name)
        if self.slow_level is None or level == self.slow_level:
            time.sleep(self.delay_s)
        return self.src.read(level, region)


def _viewer(qtbot: Any, scene: Any, **kw: Any) -> Any:
    from viewer.qt import ProofreadingSession, QtViewer

    win = QtViewer(ProofreadingSession(scene), size=(1000, 700), **kw)
    win.show()
    qtbot.waitExposed(win)
    return win


def test_procedural_volume_streams_and_reads_never_block_the_ui(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analysis.volume import FunctionVolumeSource
    from viewer.qt import _slices
    from viewer.render._gl_volumes import VtkRaycastImage
    from viewer.scene import Image, Scene

    def fn(level: int, region: tuple[slice, ...]) -> Any:
        z, y, x = (np.arange(s.start, s.stop, dtype=np.int64) for s in region)
        return pattern(z[:, None, None], y[None, :, None], x[None, None, :], level).astype(np.uint8)

    # Slices bigger than the slice cache and a 3D brick cache far below the volume.
    monkeypatch.setattr(_slices, "CACHE", _slices.VolumeCache(budget_bytes=2**20))
    monkeypatch.setattr(_slices, "BASE_PIXELS", 128 * 128)
    proc = FunctionVolumeSource((128, 512, 512), fn, chunks=(32, 64, 64), name="proc")
    src = Recording(proc, delay_s=0.03)
    scene = Scene([Image(src, name="proc")])
    scene.reset_camera()
    win = _viewer(qtbot, scene, stream_cache_bytes=4 * 2**20)
    stats_seen: list[dict[str, Any]] = []
    win.render_view.stream_stats.connect(stats_seen.append)
    s = win.session
    rv = win.render_view
    centre = rv.rect().center()
    xy = win.slices["xy"]
    for i in range(12):  # orbit, scroll and zoom while bricks and slices load
        qtbot.mousePress(rv, Qt.MouseButton.LeftButton, pos=centre)
        qtbot.mouseMove(rv, centre + QtCore.QPoint(12, 3))
        qtbot.mouseRelease(rv, Qt.MouseButton.LeftButton, pos=centre + QtCore.QPoint(12, 3))
        c = np.asarray(s.cursor)
        s.set_cursor(c + [1.0, 0, 0])
        if i == 4:
            xy.view.scaleBy((0.3, 0.3))
        qtbot.wait(40)
    wait_rendered(qtbot, win)

    # Every read ran on a loader thread: never on the UI thread.
    main = threading.main_thread().name
    assert src.threads and main not in src.threads
    # The 3D view streamed this layer, refined while bricks landed and ended at full detail.
    ctl = rv.render_thread.streaming
    # Drawn in one ray-casting pass (no VTK volume per brick), every brick of the view
    # on the GPU atlas by the end.
    assert ctl is not None and isinstance(ctl.adapters["proc"], VtkRaycastImage)
    host = ctl.host
    assert host is not None and host.errors == 0 and not host.behind
    assert host.stats.volume_passes == 1 and host.stats.bricks_drawn > 0
    assert any(st["proc"].pending + st["proc"].in_flight > 0 for st in stats_seen)
    final = ctl.stats()["proc"]
    assert final.complete and final.pending == 0 and final.in_flight == 0
    assert final.cache_bytes <= final.cache_budget_bytes
    text = win.stream_label.text()
    assert f"{final.cache_bytes / 2**20:.1f}/" in text and "0 pending" in text

    # The zoomed XY view shows a finer level than its base, equal to the formula.
    res = xy.shown("proc", "detail")
    assert res is not None and xy.shown_level("proc") == res.request.level
    base = xy.shown("proc", "base")
    assert base is not None and res.request.level < base.request.level
    req = res.request
    k = int(round((s.cursor[0] - proc.levels[req.level].translation[0]) / (2**req.level)))
    assert req.k == k
    yy = np.arange(*req.rows)[:, None]
    xx = np.arange(*req.cols)[None, :]
    np.testing.assert_array_equal(xy.detail.image, pattern(k, yy, xx, req.level))

    win.close()


def test_zoomed_slice_shows_coarse_level_until_the_fine_one_lands(
    qtbot: Any, fibsem_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analysis.io import open_volume
    from viewer.qt import _slices
    from viewer.scene import Image, Scene

    monkeypatch.setattr(_slices, "CACHE", _slices.VolumeCache(budget_bytes=2**16))
    monkeypatch.setattr(_slices, "BASE_PIXELS", 48 * 48)  # level s1 is the base
    store = open_volume(str(fibsem_store))
    src = Recording(store, delay_s=0.6, slow_level=0)
    scene = Scene([Image(src, name="em")])
    scene.reset_camera()
    win = _viewer(qtbot, scene)
    xy = win.slices["xy"]
    s = win.session
    xy.view.scaleBy((0.25, 0.25))
    wait_slices(qtbot, win)
    base = xy.shown("em", "base")
    assert base is not None and base.request.level == 1  # the whole slice, coarse
    res = xy.shown("em", "detail")
    assert res is not None and xy.shown_level("em") == 0
    req = res.request
    grp = zarr.open_group(str(fibsem_store), mode="r")
    raw = np.asarray(grp[store.levels[0].path])
    assert req.rows[1] - req.rows[0] < 96  # only the visible part (and a margin) was read
    np.testing.assert_array_equal(
        xy.detail.image, raw[req.k, slice(*req.rows), slice(*req.cols)].astype(np.float32)
    )
    # One step deeper: the coarse base of the new depth shows until level 0 (slow) lands.
    s.set_cursor(np.asarray(s.cursor) + [3 * store.levels[0].scale_um[0], 0, 0])
    lev1 = store.levels[1]
    k1 = int(round((s.cursor[0] - lev1.translation[0]) / lev1.scale_um[0]))
    new_base = lambda: xy.shown("em", "base")  # noqa: E731
    qtbot.waitUntil(lambda: new_base() is not None and new_base().request.k != base.request.k)
    assert abs(new_base().request.k - k1) <= 1
    assert xy.shown_level("em") == 1 and xy.shown("em", "detail") is None
    wait_slices(qtbot, win)
    assert xy.shown_level("em") == 0
    # Scrolling on: stale requests are dropped, the final slice is the zarr one.
    for _ in range(8):
        s.set_cursor(np.asarray(s.cursor) + [store.levels[0].scale_um[0], 0, 0])
        qtbot.wait(5)
    wait_slices(qtbot, win)
    res = xy.shown("em", "detail")
    assert res is not None
    k = int(round(s.cursor[0] / store.levels[0].scale_um[0]))
    assert res.request.k == k
    np.testing.assert_array_equal(
        xy.detail.image, raw[k, slice(*res.request.rows), slice(*res.request.cols)]
    )
    assert win.slice_loader.dropped > 0
    win.close()
