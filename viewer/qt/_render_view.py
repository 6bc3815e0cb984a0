"""``QtRenderView``: the 3D view, drawn by a ``SceneRenderer`` on its own render thread.

Why not a ``QVTKRenderWindowInteractor``: (1) the layering contract keeps VTK
imports inside ``viewer.render`` (import-linter), (2) a GL child window cannot be
grabbed by ``QWidget.grab`` (screenshots, tests) and under Xvfb needs a GLX
window while the rest of the project renders through EGL, and (3) most of all,
a volume frame on a software rasteriser (llvmpipe) takes 100-400 ms, which
would freeze the UI. So one thread owns the renderer (all its GL calls happen
there), renders offscreen, and hands finished frames to the widget, which only
paints the latest image. The scene stays the single source of truth: its
events only mark the view dirty; the thread coalesces them into one frame.

Every image layer is streamed (``viewer.render.StreamingController``): each
frame the thread calls ``update()`` (level of detail for the current camera,
bricks requested on the streamer's loader threads), draws the resident bricks,
and while bricks are still loading (or still being uploaded to the GPU brick
atlas) it draws again every :data:`REFINE_S` seconds, so the picture sharpens
as they land. ``Image`` layers and label volumes are drawn in one ray-casting pass
each (``viewer.render._gl_volumes``: composite, MIP, iso-surface, label volumes).
Nothing here waits for I/O. The
streamers' statistics (cache use, pending and running requests) go to the
window's status bar after every frame.

Mouse: left drag orbits, right drag or wheel zooms, middle drag (or Shift+left)
pans; a click without drag emits :attr:`QtRenderView.clicked`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import numpy as np
import numpy.typing as npt

if sys.platform.startswith("linux"):
    # EGL renders offscreen in any thread with or without an X server.
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

from PySide6 import QtCore, QtGui, QtWidgets

from viewer.render import PickResult, SceneRenderer, StreamingController
from viewer.scene import Layer, Scene

__all__ = ["REFINE_S", "QtRenderView", "RenderThread"]

log = logging.getLogger(__name__)

#: Time a desktop 3D frame may take for its volumes (30 fps) before the render scale drops.
DESKTOP_FRAME_BUDGET_MS = 33.0

#: Zoom of one wheel click in the 3D view (three clicks: about 2x; 1.1 felt weak).
WHEEL_ZOOM = 1.25

#: While bricks are loading, the render thread draws again this often (seconds).
REFINE_S = 0.05

#: After a time step, frames whose streamed image still shows the previous time point
#: are held back at most this long (seconds); then they are shown anyway.
HOLD_TIME_S = 1.0


def _preload() -> None:
    """Import in the GUI thread what the renderer imports lazily.

    Two threads importing a package with internal cycles (matplotlib) at the same
    time can see it half initialised; importing it once up front avoids that.
    """
    import importlib

    for name in ("matplotlib", "matplotlib.colors", "skimage.measure", "scipy.ndimage", "trimesh"):
        try:
            importlib.import_module(name)
        except ImportError:  # optional for some layer types
            log.debug("preload: %s not available", name)


class _Bridge(QtCore.QObject):
    """Lives in the GUI thread; signals emitted from the render thread arrive queued."""

    frame = QtCore.Signal(object, float)
    call = QtCore.Signal(object)
    stats = QtCore.Signal(object)


class RenderThread:
    """Owns a :class:`SceneRenderer` and does every VTK call on one thread.

    Parameters
    ----------
    scene : Scene
    on_frame : callable(image (H, W, 3) uint8, render seconds)
        Called in the GUI thread with each finished frame.
    size : (width, height)
    streaming : bool, default: True
        Stream every image layer (``StreamingController``) instead of reading a whole level.
    cache_bytes : int, optional
        RAM budget of the streamed bricks (default: the controller's, a quarter of RAM).
    stream_workers : int, optional
        Loader threads per streamed layer (default: one per core, at most 8).
    on_stats : callable(dict name -> StreamStats), optional
        Called in the GUI thread after each streamed frame.
    held : bool, default: False
        Draw no frame until :meth:`release` (jobs still run): a view holds its first
        frame until it is laid out, so that frame has the widget's size and aspect.
    """

    def __init__(
        self,
        scene: Scene,
        on_frame: Callable[[npt.NDArray[np.uint8], float], None],
        size: tuple[int, int] = (640, 480),
        background: tuple[float, float, float] = (0.08, 0.08, 0.1),
        streaming: bool = True,
        cache_bytes: int | None = None,
        stream_workers: int | None = None,
        on_stats: Callable[[dict[str, Any]], None] | None = None,
        held: bool = False,
    ) -> None:
        self.scene = scene
        self._held = bool(held)
        self._synced = False
        self._bridge = _Bridge()
        self._bridge.frame.connect(on_frame)
        if on_stats is not None:
            self._bridge.stats.connect(on_stats)
        self._stream = bool(streaming)
        self._cache_bytes = cache_bytes
        self._stream_workers = None if stream_workers is None else int(stream_workers)
        #: The streaming controller (made with the renderer, on the render thread).
        self.streaming: StreamingController | None = None
        #: Bricks are still loading: the thread keeps drawing as they land.
        self.refining = False
        self._bridge.call.connect(lambda fn: fn())
        self._size = size
        self._background = background
        self._cond = threading.Condition()
        self._dirty = True
        self._gen = 0
        self._jobs: list[tuple[Callable[[SceneRenderer], Any], Future[Any]]] = []
        # What changed since the current frame started syncing (see ``_frame``).
        self._touched: set[int] = set()
        self._scene_touched = False
        self._handlers: dict[int, Callable[..., None]] = {}
        self._stop = False
        #: Held by the render thread while it syncs the renderer with the scene (reads
        #: layer data); the GUI thread takes it to replace layer data or add/remove
        #: layers, so a sync never sees half of an update.
        self.lock = threading.RLock()
        #: Held while VTK draws and reads the frame back. Adding or removing a layer
        #: changes the renderer's props at once (in the scene's event), so it must not
        #: happen mid-draw: do it inside :meth:`structural`, which takes both locks.
        self.draw_lock = threading.RLock()
        self.renderer: SceneRenderer | None = None
        self.frames = 0
        #: While the user drags the camera, frames use the "interactive" volume quality
        #: (fewer rays, ~2-3x faster on a software renderer); the frame after the drag
        #: ends is drawn at "still" quality again.
        self.interactive = False
        self._quality = ""
        self.last_render_s = 0.0
        #: Of the last frame handed to the widget: the scene time it was synced at (tracks,
        #: markers) and, per streamed time-lapse layer, the time point of its drawn bricks.
        self.shown_times: tuple[float, dict[str, int]] | None = None
        #: Frames not shown because their image lagged the time (see ``_frame``).
        self.held_frames = 0
        #: The last frame drawn still had a time-lapse image at the previous time point.
        self.image_behind = False
        self._held_since: float | None = None
        _preload()
        self._thread = threading.Thread(target=self._run, name="vrscope-render", daemon=True)
        self._connect(scene)
        self._thread.start()

    # -- scene events (GUI thread): only mark dirty ----------------------------
    def _connect(self, scene: Scene) -> None:
        scene.camera.events.all.connect(self.request)
        scene.clipping_planes.events.connect(self.request)
        scene.events.current_time.connect(self._on_scene_level)
        scene.selection.events.all.connect(self._on_scene_level)
        scene.layers.events.inserted.connect(self._on_inserted)
        scene.layers.events.removed.connect(self.request)
        scene.layers.events.moved.connect(self.request)
        for lay in scene.layers:
            self._watch(lay)

    def _watch(self, layer: Layer) -> None:
        key = id(layer)

        def touched(*_: object) -> None:
            with self._cond:
                self._touched.add(key)
            self.request()

        self._handlers[key] = touched
        layer.events.all.connect(touched)
        layer.data_changed.connect(touched)
        labels_update = getattr(layer, "labels_update", None)
        if labels_update is not None:
            labels_update.connect(touched)

    def _on_scene_level(self, *_: object) -> None:
        with self._cond:
            self._scene_touched = True
        self.request()

    def _on_inserted(self, index: int, layer: Layer) -> None:
        self._watch(layer)
        self.request()

    def request(self, *_: object) -> None:
        """Ask for a new frame (coalesced; cheap, any thread)."""
        with self._cond:
            self._gen += 1
            self._dirty = True
            self._cond.notify()

    def resize(self, width: int, height: int) -> None:
        self._size = (max(int(width), 16), max(int(height), 16))
        self.request()

    def release(self) -> None:
        """Start drawing frames (see ``held``)."""
        with self._cond:
            self._held = False
            self._cond.notify()

    @contextlib.contextmanager
    def structural(self) -> Iterator[None]:
        """Hold both locks: add or remove layers inside (waits for a frame being drawn)."""
        with self.lock, self.draw_lock:
            yield

    def submit(self, fn: Callable[[SceneRenderer], Any]) -> Future[Any]:
        """Run ``fn(renderer)`` on the render thread; returns a Future of its result."""
        fut: Future[Any] = Future()
        with self._cond:
            self._jobs.append((fn, fut))
            self._cond.notify()
        return fut

    def pick(self, x: float, y: float, callback: Callable[[PickResult], None]) -> None:
        """Pick at render pixel (x, y); ``callback`` runs in the GUI thread."""

        def job(r: SceneRenderer) -> PickResult:
            return r.pick(x, y)

        def done(f: Future[PickResult]) -> None:
            err = f.exception()
            if err is None:
                self._bridge.call.emit(lambda: callback(f.result()))
                return
            # A failed pick still answers (nothing under the mouse), so a caller that
            # waits for its answer before picking again is never left waiting.
            log.warning("pick failed: %s", err)
            self._bridge.call.emit(lambda: callback(PickResult(None, None, None, None, None)))

        self.submit(job).add_done_callback(done)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until no frame or job is pending (tests and exports)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._cond:
                drawn = not self._dirty or self._held
                if drawn and not self._jobs and not self._busy and not self.refining:
                    return True
            time.sleep(0.01)
        return False

    _busy = False

    # -- render thread ---------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while (
                    not self._stop
                    and not self._jobs
                    and not (self._dirty and (not self._held or not self._synced))
                ):
                    if self.refining and not self._held:
                        # Bricks are on their way: look again soon, without being asked.
                        self._cond.wait(REFINE_S)
                        if not self._stop:
                            self._dirty = True
                        break
                    self._cond.wait()
                if self._stop:
                    break
                jobs, self._jobs = self._jobs, []
                render = self._dirty and not self._held
                sync_only = self._dirty and self._held and not self._synced
                self._dirty = self._dirty and self._held
                gen = self._gen
                self._touched.clear()
                self._scene_touched = False
                self._busy = True
            try:
                with self.lock:
                    r = self._renderer()
                for fn, fut in jobs:
                    try:
                        with self.lock:
                            fut.set_result(fn(r))
                    except BaseException as exc:
                        fut.set_exception(exc)
                if render:
                    self._frame(r, gen)
                elif sync_only:
                    self._sync_only(r)
            except Exception:
                log.exception("render thread: frame failed")
                self.refining = False  # no redraw loop on a failing frame; the next event retries
            finally:
                with self._cond:
                    self._busy = False
        if self.streaming is not None:
            self.streaming.close()
        if self.renderer is not None:
            with self.lock:
                self.renderer.close()

    def _renderer(self) -> SceneRenderer:
        if self.renderer is None:
            self.renderer = SceneRenderer(self.scene, size=self._size, background=self._background)
            if self._stream:
                # Replaces the image adapters before their first sync: no whole level is read.
                # Image layers are drawn in one ray-casting pass each (GLVolumeHost).
                self.streaming = StreamingController(
                    self.renderer,
                    cache_bytes=self._cache_bytes,
                    n_workers=self._stream_workers,
                    # Over budget while the view moves, fewer rays are cast; when it
                    # rests the picture refines back to full quality (issue 15).
                    frame_budget_ms=DESKTOP_FRAME_BUDGET_MS,
                )
        if self.renderer.size != self._size:
            self.renderer.set_size(*self._size)
        return self.renderer

    def _sync_only(self, r: SceneRenderer) -> None:
        """While held: bring the renderer up to date with the scene once, without drawing,
        so that what the first sync fixes (a volume's opacity ramp over the values the
        layer has then) is fixed as early as before the first frame was held."""
        with self.lock:
            if self.streaming is not None:
                self.streaming.update()
            r.sync()
        self._synced = True
        self._redirty(r)

    def _redirty(self, r: SceneRenderer) -> None:
        """An event that landed while the adapters synced may have had its dirty flag
        cleared with theirs: make exactly those adapters sync again next frame."""
        with self._cond:
            touched, scene_touched = set(self._touched), self._scene_touched
        for adapter in r.adapters.values():
            if id(adapter.layer) in touched or (
                scene_touched and (adapter.time_dependent or adapter.selection_dependent)
            ):
                adapter.dirty = True

    def _frame(self, r: SceneRenderer, gen: int) -> None:
        t0 = time.perf_counter()
        # Only the sync reads layer data (and builds VTK inputs from it), so only the sync
        # holds the scene lock; drawing works on VTK's own copies and runs unlocked.
        quality = "interactive" if self.interactive else "still"
        if quality != self._quality:
            r.set_quality(quality)
            self._quality = quality
        with self.lock:
            frames = self.streaming.update() if self.streaming is not None else {}
            r.sync()
            now = float(self.scene.current_time)
        with self.draw_lock:
            r.window.Render()
            img = r._grab()  # the renderer's read-back (viewer-internal API)
        dt = time.perf_counter() - t0
        self._redirty(r)
        self.frames += 1
        self.last_render_s = dt
        # Keep drawing while something is still coming; a brick that failed or was cut by
        # the budget leaves nothing pending, and then the view rests.
        host = self.streaming.host if self.streaming is not None else None
        self.refining = any(
            (not f.complete and (f.stats.pending > 0 or f.stats.in_flight > 0))
            or f.stats.selecting  # the selection worker has not caught up with the camera
            for f in frames.values()
        ) or (host is not None and host.behind)
        times = self._image_times(frames)
        self.image_behind = any(drawn != wanted for drawn, wanted in times.values())
        if self.image_behind:
            # The streamer still draws the previous time point's bricks (the selection for
            # the new one is on its way): this frame would show the old image under the
            # new time's tracks (issue 18.12). The widget keeps the last frame; draw again.
            t = time.monotonic()
            self._held_since = self._held_since or t
            if t - self._held_since < HOLD_TIME_S:
                self.held_frames += 1
                self.refining = True
                return
        self._held_since = None
        self.shown_times = (now, {n: drawn for n, (drawn, _) in times.items()})
        self._bridge.frame.emit(img, dt)
        if self.streaming is not None:
            self._bridge.stats.emit({k: f.stats for k, f in frames.items()})

    def _image_times(self, frames: dict[str, Any]) -> dict[str, tuple[int, int]]:
        """(time point of the bricks drawn, time point wanted) per streamed time-lapse
        image layer that draws something."""
        out: dict[str, tuple[int, int]] = {}
        ctl = self.streaming
        if ctl is None:
            return out
        for name, f in frames.items():
            st = getattr(ctl.adapters.get(name), "streamer", None)
            keys = getattr(f, "keys", None)
            if st is None or st.n_time <= 1 or keys is None or len(keys) == 0:
                continue
            out[name] = (int(st.split_key(int(keys[0]))[0]), int(st.time_index))
        return out

    def set_interactive(self, on: bool) -> None:
        """Draw at interactive quality while ``on`` (a drag); redraw at still quality after."""
        if on != self.interactive:
            self.interactive = on
            if not on:
                self.request()

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout)


class QtRenderView(QtWidgets.QWidget):
    """The 3D view widget: shows the render thread's frames, turns mouse drags into camera moves.

    Signals
    -------
    clicked(x, y, modifiers)
        A click without drag, in render pixels (column, row from the top).
    frame_shown(seconds)
        A new frame was painted (its render time).
    stream_stats(dict name -> StreamStats)
        After each streamed frame: cache use, pending and running requests per layer.
    """

    clicked = QtCore.Signal(float, float, object)
    frame_shown = QtCore.Signal(float)
    stream_stats = QtCore.Signal(object)

    def __init__(
        self,
        scene: Scene,
        parent: QtWidgets.QWidget | None = None,
        streaming: bool = True,
        cache_bytes: int | None = None,
    ) -> None:
        super().__init__(parent)
        self.scene = scene
        self.setMinimumSize(160, 120)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.ClickFocus)
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._image: QtGui.QImage | None = None
        self._press: QtCore.QPointF | None = None
        self._last: QtCore.QPointF | None = None
        self._dragged = False
        self.render_thread = RenderThread(
            scene,
            self._on_frame,
            size=self._render_size(),
            streaming=streaming,
            cache_bytes=cache_bytes,
            on_stats=self.stream_stats.emit,
            # The first frame waits for the layout (showEvent): drawn at the size the
            # widget has before it, it was stretched onto the widget (issue 18.7).
            held=True,
        )

    # -- frames -----------------------------------------------------------------
    def _render_size(self) -> tuple[int, int]:
        dpr = self.devicePixelRatioF()
        return max(int(self.width() * dpr), 16), max(int(self.height() * dpr), 16)

    def _on_frame(self, img: npt.NDArray[np.uint8], seconds: float) -> None:
        h, w, _ = img.shape
        data = np.ascontiguousarray(img)
        qimg = QtGui.QImage(data.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888)
        self._image = qimg.copy()  # own the pixels; ``data`` goes away
        self.update()
        self.frame_shown.emit(seconds)

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        p = QtGui.QPainter(self)
        p.fillRect(self.rect(), QtGui.QColor(20, 20, 26))
        if self._image is not None:
            p.drawImage(self._image_rect(), self._image)
        p.end()

    def _image_rect(self) -> QtCore.QRectF:
        """Where the frame goes: the whole widget when it has the widget's size; a frame
        of another size (drawn before a resize) keeps its aspect, its height fitted (the
        camera's view angle is vertical) and centred, never stretched."""
        assert self._image is not None
        dpr = self.devicePixelRatioF()
        iw, ih = self._image.width() / dpr, self._image.height() / dpr
        w, h = float(self.width()), float(self.height())
        if abs(iw - w) < 1 and abs(ih - h) < 1:
            return QtCore.QRectF(self.rect())
        s = h / max(ih, 1e-9)
        return QtCore.QRectF((w - iw * s) / 2, 0.0, iw * s, h)

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        self.render_thread.resize(*self._render_size())

    def showEvent(self, event: QtGui.QShowEvent) -> None:
        super().showEvent(event)
        # Laid out now: the first frame is drawn at the widget's own size.
        self.render_thread.resize(*self._render_size())
        self.render_thread.release()

    def last_image(self) -> QtGui.QImage | None:
        return self._image

    # -- mouse -------------------------------------------------------------------
    def _to_render(self, pos: QtCore.QPointF) -> tuple[float, float]:
        dpr = self.devicePixelRatioF()
        return float(pos.x() * dpr), float(pos.y() * dpr)

    def mousePressEvent(self, e: QtGui.QMouseEvent) -> None:
        self._press = self._last = e.position()
        self._dragged = False

    def mouseMoveEvent(self, e: QtGui.QMouseEvent) -> None:
        if self._last is None or self._press is None:
            return
        pos = e.position()
        d = pos - self._last
        if (pos - self._press).manhattanLength() > 3 and not self._dragged:
            self._dragged = True
            self.render_thread.set_interactive(True)
        if not self._dragged:
            return
        self._last = pos
        cam = self.scene.camera
        buttons = e.buttons()
        shift = bool(e.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier)
        if buttons & QtCore.Qt.MouseButton.MiddleButton or (
            buttons & QtCore.Qt.MouseButton.LeftButton and shift
        ):
            self._pan(d.x(), d.y())
        elif buttons & QtCore.Qt.MouseButton.RightButton:
            cam.dolly(1.01 ** (-d.y()))
        elif buttons & QtCore.Qt.MouseButton.LeftButton:
            cam.orbit(azimuth=-0.4 * d.x(), elevation=0.4 * d.y())

    def mouseReleaseEvent(self, e: QtGui.QMouseEvent) -> None:
        if self._press is not None and not self._dragged:
            x, y = self._to_render(e.position())
            self.clicked.emit(x, y, e.modifiers())
        if self._dragged:
            self.render_thread.set_interactive(False)
        self._press = self._last = None

    def wheelEvent(self, e: QtGui.QWheelEvent) -> None:
        steps = e.angleDelta().y() / 120.0
        if steps:
            self.scene.camera.dolly(WHEEL_ZOOM**steps)

    def _pan(self, dx: float, dy: float) -> None:
        cam = self.scene.camera
        fwd = cam.direction
        up = np.asarray(cam.view_up, dtype=np.float64)
        right = np.cross(fwd[::-1], up[::-1])[::-1]
        right /= np.linalg.norm(right) or 1.0
        up = np.cross(right[::-1], fwd[::-1])[::-1]
        h = max(self.height(), 1)
        view_h = 2 * cam.distance * np.tan(np.radians(cam.view_angle) / 2)
        shift = (-dx * right + dy * up) * view_h / h
        cam.update(
            {
                "position": tuple(float(v) for v in np.asarray(cam.position) + shift),
                "focal_point": tuple(float(v) for v in np.asarray(cam.focal_point) + shift),
            }
        )

    def close_renderer(self) -> None:
        self.render_thread.close()
