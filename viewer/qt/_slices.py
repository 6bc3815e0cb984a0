"""Orthogonal slice views (XY, XZ, YZ) with label, track and marker overlays and a crosshair.

Each :class:`QtSliceView` is a pyqtgraph view whose coordinates are world µm:
the image item is placed with its voxel size, so a click maps straight to
(z, y, x). All three follow the session's cursor (the shared crosshair) and the
current time; a click moves the cursor (navigate mode) or feeds the current tool.

Reading never happens on the UI thread. A view asks a :class:`SliceLoader`
(worker threads, one shared by the three views) for

- a *base* image: the whole slice from the finest level that has at most
  :data:`BASE_PIXELS` pixels per slice (for the samples, level 0), and
- when the view is zoomed in further than the base level can show, a *detail*
  image: the visible part (plus a margin) of the coarsest level that still has
  one voxel per screen pixel (:func:`level_for_zoom`).

The base stays visible under the detail, so a coarser picture shows until the
fine one lands. Requests are frozen dataclasses with a generation number per
(view, layer, item); a newer request replaces a queued older one and results
that are no longer wanted are dropped (napari's ``_layer_slicer``). Whole
levels small enough for :class:`VolumeCache` are read once and then sliced in
memory, so scrolling through a sample costs well under a millisecond per slice.
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from analysis.volume import VolumeSource
from viewer.actions import MEASURE_POINTS, Pick, nearest_on_screen
from viewer.render import id_colors, image_colors
from viewer.scene import Image, Labels, Measurement, Measurements, Points, Tracks

from ._session import ProofreadingSession

__all__ = [
    "BASE_PIXELS",
    "PLANES",
    "QtSliceView",
    "SliceLoader",
    "SliceRequest",
    "level_for_zoom",
    "read_slice",
    "slice_axes",
]

log = logging.getLogger(__name__)

Plane = Literal["xy", "xz", "yz"]
PLANES: tuple[Plane, ...] = ("xy", "xz", "yz")
#: Largest detail image (pixels) read for one view; beyond it a coarser level is used.
MAX_SLICE_PIXELS = 1024 * 1024
#: Largest whole-slice base image (pixels).
BASE_PIXELS = 512 * 512
#: Whole levels up to this size are read once into :class:`VolumeCache` and sliced in memory.
WHOLE_LEVEL_BYTES = 64 * 2**20


def slice_axes(plane: Plane) -> tuple[int, int, int]:
    """(row axis, column axis, fixed axis) as indices into zyx."""
    return {"xy": (1, 2, 0), "xz": (0, 2, 1), "yz": (0, 1, 2)}[plane]


def base_level(src: VolumeSource, plane: Plane) -> int:
    """The finest level whose whole slice has at most :data:`BASE_PIXELS` pixels."""
    r, c, _ = slice_axes(plane)
    for i, lev in enumerate(src.levels):
        shp = lev.shape[-3:]
        if shp[r] * shp[c] <= BASE_PIXELS:
            return i
    return len(src.levels) - 1


def level_for_zoom(
    src: VolumeSource, plane: Plane, um_per_px: float, n_pixels: Callable[[int], int]
) -> int:
    """The coarsest level whose in-plane voxel is at most ``um_per_px`` (>= 1 voxel per pixel).

    ``n_pixels(level)`` is the size of the region to read at that level; levels whose
    region exceeds :data:`MAX_SLICE_PIXELS` are skipped for coarser ones.
    """
    r, c, _ = slice_axes(plane)
    best = 0
    for i, lev in enumerate(src.levels):
        sc = lev.scale_um
        if max(sc[r], sc[c]) <= um_per_px * (1 + 1e-6):
            best = i
    while best < len(src.levels) - 1 and n_pixels(best) > MAX_SLICE_PIXELS:
        best += 1
    return best


def _spatial_region(
    src: VolumeSource, level: int, t: int, zyx: tuple[slice, slice, slice]
) -> tuple[slice, ...]:
    lev = src.levels[level]
    region: list[slice] = []
    k = 0
    for ax, size in zip(src.axes, lev.shape, strict=True):
        if ax == "t":
            i = min(max(t, 0), size - 1)
            region.append(slice(i, i + 1))
        elif ax == "c":
            region.append(slice(0, 1))
        else:
            region.append(zyx[k])
            k += 1
    return tuple(region)


class VolumeCache:
    """Whole pyramid levels kept in memory for slicing, least recently used first out.

    Scrolling re-slices three views per step; reading each slice through zarr costs
    ~10 ms (decode plus its async machinery), far more than indexing an array. A
    level of at most :data:`WHOLE_LEVEL_BYTES` (and a quarter of the budget) is
    read once; larger ones are sliced from the store. Thread-safe: the loader's
    workers fill it, any thread may look up.

    Entries are keyed by the source object itself (through a weak reference), never
    by ``id(src)``: an id can be reused by a new source once the old one is gone,
    and would then hand out the old volume's voxels. A source's arrays are dropped
    when it is garbage-collected.
    """

    def __init__(self, budget_bytes: int = 512 * 2**20) -> None:
        self.budget = int(budget_bytes)
        self._arrays: dict[tuple[int, int, int], npt.NDArray[Any]] = {}
        #: id(src) -> (reference to src, token): the token names src in the keys.
        self._sources: dict[int, tuple[Callable[[], Any], int]] = {}
        self._next_token = 0
        #: Tokens of collected sources; purged under the lock (a GC callback may run
        #: on any thread, even this one inside the lock, so it only appends here).
        self._dead: list[tuple[int, int]] = []
        self._lock = threading.Lock()

    def _token(self, src: VolumeSource) -> int:
        """The key of ``src`` (under the lock); a new one for a new object."""
        while self._dead:
            key, token = self._dead.pop()
            got = self._sources.get(key)
            if got is not None and got[1] == token:
                del self._sources[key]
            self._forget(token)
        got = self._sources.get(id(src))
        if got is not None and got[0]() is src:
            return got[1]
        if got is not None:  # the id of a dead source, reused
            self._forget(got[1])
        token = self._next_token
        self._next_token += 1
        try:
            ref: Callable[[], Any] = weakref.ref(
                src, functools.partial(_note_dead, self._dead, (id(src), token))
            )
        except TypeError:  # not weak-referenceable: held (the budget bounds what is cached)
            ref = functools.partial(lambda o: o, src)
        self._sources[id(src)] = (ref, token)
        return token

    def _forget(self, token: int) -> None:
        for key in [k for k in self._arrays if k[0] == token]:
            del self._arrays[key]

    def fits(self, src: VolumeSource, level: int) -> bool:
        lev = src.levels[level]
        nbytes = int(np.prod(lev.shape[-3:], dtype=np.int64)) * np.dtype(src.dtype).itemsize
        return nbytes <= min(self.budget // 4, WHOLE_LEVEL_BYTES)

    def peek(self, src: VolumeSource, level: int, t: int) -> npt.NDArray[Any] | None:
        """The level if it is resident (never reads)."""
        with self._lock:
            return self._arrays.get((self._token(src), level, t))

    def get(self, src: VolumeSource, level: int, t: int) -> npt.NDArray[Any] | None:
        """The whole level (read now if it fits and is not resident), or None if too big."""
        with self._lock:
            key = (self._token(src), level, t)
            arr = self._arrays.pop(key, None)
            if arr is not None:
                self._arrays[key] = arr  # most recently used last
                return arr
        if not self.fits(src, level):
            return None
        lev = src.levels[level]
        whole = (slice(None), slice(None), slice(None))
        arr = np.asarray(src.read(level, _spatial_region(src, level, t, whole)))
        arr = arr.reshape(lev.shape[-3:])
        with self._lock:
            key = (self._token(src), level, t)
            while (
                self._arrays
                and sum(a.nbytes for a in self._arrays.values()) + arr.nbytes > self.budget
            ):
                self._arrays.pop(next(iter(self._arrays)))
            self._arrays[key] = arr
        return arr


def _note_dead(dead: list[tuple[int, int]], entry: tuple[int, int], _ref: object) -> None:
    dead.append(entry)


#: Shared by the slice views of a process.
CACHE = VolumeCache()


def slice_rect(
    src: VolumeSource,
    plane: Plane,
    level: int,
    rows: tuple[int, int] | None = None,
    cols: tuple[int, int] | None = None,
) -> QtCore.QRectF:
    """World rectangle (x: columns, y: rows, µm) covered by voxels ``rows`` x ``cols`` of a level."""
    lev = src.levels[level]
    r, c, _ = slice_axes(plane)
    scale = np.asarray(lev.scale_um, dtype=np.float64)
    origin = np.asarray(lev.translation[-3:], dtype=np.float64)
    shp = lev.shape[-3:]
    r0, r1 = rows if rows is not None else (0, shp[r])
    c0, c1 = cols if cols is not None else (0, shp[c])
    # Pixel centres sit at origin + i*scale: the rectangle spans half a voxel beyond them.
    return QtCore.QRectF(
        origin[c] + (c0 - 0.5) * scale[c],
        origin[r] + (r0 - 0.5) * scale[r],
        (c1 - c0) * scale[c],
        (r1 - r0) * scale[r],
    )


def slice_index(src: VolumeSource, plane: Plane, level: int, pos_um: float) -> int | None:
    """Index along the plane's fixed axis of world position ``pos_um`` (None: outside)."""
    lev = src.levels[level]
    f = slice_axes(plane)[2]
    k = int(round((pos_um - lev.translation[-3:][f]) / lev.scale_um[f]))
    return k if 0 <= k < lev.shape[-3:][f] else None


def read_slice(
    src: VolumeSource,
    plane: Plane,
    pos_um: float,
    t: int = 0,
    level: int | None = None,
    rows: tuple[int, int] | None = None,
    cols: tuple[int, int] | None = None,
) -> tuple[npt.NDArray[Any], QtCore.QRectF] | None:
    """The 2D slice (or its ``rows`` x ``cols`` part) through world position ``pos_um``.

    Reads (call it off the UI thread). Returns the (rows, cols) array and its
    rectangle in world µm (x: columns, y: rows), or None when the position is
    outside the volume.
    """
    lev_i = base_level(src, plane) if level is None else level
    k = slice_index(src, plane, lev_i, pos_um)
    if k is None:
        return None
    return read_slice_index(src, plane, k, t, lev_i, rows, cols)


def read_slice_index(
    src: VolumeSource,
    plane: Plane,
    k: int,
    t: int,
    level: int,
    rows: tuple[int, int] | None = None,
    cols: tuple[int, int] | None = None,
) -> tuple[npt.NDArray[Any], QtCore.QRectF]:
    r, c, f = slice_axes(plane)
    shp = src.levels[level].shape[-3:]
    rr = rows if rows is not None else (0, shp[r])
    cc = cols if cols is not None else (0, shp[c])
    rect = slice_rect(src, plane, level, rr, cc)
    whole = CACHE.get(src, level, t)
    sl: list[slice] = [slice(None)] * 3
    sl[r], sl[c], sl[f] = slice(*rr), slice(*cc), slice(k, k + 1)
    if whole is not None:
        arr = whole[tuple(sl)]
    else:
        arr = np.asarray(src.read(level, _spatial_region(src, level, t, (sl[0], sl[1], sl[2]))))
    return np.ascontiguousarray(arr.reshape(rr[1] - rr[0], cc[1] - cc[0])), rect


# ---------------------------------------------------------------------------- loader
@dataclass(frozen=True)
class SliceRequest:
    """One slice (part) a view wants; ``gen`` orders requests of the same ``key``.

    ``key`` is (view, layer name, item) with item ``"base"`` or ``"detail"``;
    ``what`` identifies the pixels (so a view can tell it already shows them).
    """

    key: tuple[str, str, str]
    gen: int
    source: VolumeSource = field(compare=False)
    plane: Plane
    k: int
    t: int
    level: int
    rows: tuple[int, int]
    cols: tuple[int, int]
    labels: bool = False

    @property
    def what(self) -> tuple[Any, ...]:
        return (id(self.source), self.plane, self.k, self.t, self.level, self.rows, self.cols)


@dataclass(frozen=True)
class SliceResult:
    """A loaded slice: the array (labels: also its unique ids and the inverse map)."""

    request: SliceRequest
    array: npt.NDArray[Any]
    rect: QtCore.QRectF
    ids: npt.NDArray[Any] | None = None
    inverse: npt.NDArray[np.intp] | None = None


class _LoaderSignals(QtCore.QObject):
    loaded = QtCore.Signal(object)
    #: (request, message): a slice could not be read.
    failed = QtCore.Signal(object, str)
    called = QtCore.Signal(object, object)


class SliceLoader:
    """Worker threads that read slices; latest request per key wins, stale results are dropped.

    Parameters
    ----------
    n_workers : int, default: 2

    Signals (``loader.signals``)
    ----------------------------
    loaded(SliceResult)
        In the GUI thread, only for requests still wanted.
    """

    def __init__(self, n_workers: int = 2) -> None:
        self.signals = _LoaderSignals()
        self.signals.called.connect(lambda fn, value: fn(value))
        self._cond = threading.Condition()
        self._queue: dict[tuple[str, str, str], SliceRequest] = {}
        self._calls: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {}
        self._latest: dict[tuple[str, str, str], int] = {}
        self._gen = 0
        self._running = 0
        self._stop = False
        self.reads = 0
        self.dropped = 0
        self._threads = [
            threading.Thread(target=self._run, name=f"vrscope-slices-{i}", daemon=True)
            for i in range(n_workers)
        ]
        for th in self._threads:
            th.start()

    def next_gen(self) -> int:
        with self._cond:
            self._gen += 1
            return self._gen

    def submit(self, req: SliceRequest) -> None:
        """Queue ``req``; a queued request with the same key is replaced (dropped)."""
        with self._cond:
            if req.key in self._queue:
                self.dropped += 1
            self._queue[req.key] = req
            self._latest[req.key] = req.gen
            self._cond.notify()

    def cancel(self, key: tuple[str, str, str]) -> None:
        """Forget ``key``: a queued request is dropped, a running one's result too."""
        with self._cond:
            self._queue.pop(key, None)
            self._latest[key] = -1

    def call(self, name: str, fn: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Run ``fn()`` on a worker, then ``done(result)`` in the GUI thread (latest per name)."""
        with self._cond:
            self._calls[name] = (fn, done)
            self._cond.notify()

    def wanted(self, req: SliceRequest) -> bool:
        with self._cond:
            return self._latest.get(req.key) == req.gen

    def idle(self) -> bool:
        with self._cond:
            return not self._queue and not self._calls and self._running == 0

    def _take(self) -> SliceRequest | tuple[Callable[[], Any], Callable[[Any], None]] | None:
        with self._cond:
            while not self._stop and not self._queue and not self._calls:
                self._cond.wait()
            if self._stop:
                return None
            self._running += 1
            if self._calls:
                return self._calls.pop(next(iter(self._calls)))
            # Base images (whole slices, coarse) first: they are what the user sees first.
            key = min(self._queue, key=lambda k: (k[2] != "base", self._queue[k].gen))
            return self._queue.pop(key)

    def _run(self) -> None:
        while True:
            job = self._take()
            if job is None:
                return
            try:
                if isinstance(job, SliceRequest):
                    self._load(job)
                else:
                    fn, done = job
                    self.signals.called.emit(done, fn())
            except Exception as exc:
                log.exception("slice loader: a read failed")
                if isinstance(job, SliceRequest):
                    self.signals.failed.emit(
                        job,
                        f"could not read {job.key[1]} ({job.plane} slice {job.k}, "
                        f"level {job.level}): {exc}",
                    )
            finally:
                with self._cond:
                    self._running -= 1

    def _load(self, req: SliceRequest) -> None:
        if not self.wanted(req):
            return
        arr, rect = read_slice_index(
            req.source, req.plane, req.k, req.t, req.level, req.rows, req.cols
        )
        self.reads += 1
        ids = inv = None
        if req.labels:
            # The unique ids are the expensive part of colouring labels: done here, so the
            # GUI thread only maps colours per id.
            ids, inv = np.unique(arr, return_inverse=True)
            inv = inv.reshape(arr.shape)
        if self.wanted(req):
            self.signals.loaded.emit(SliceResult(req, arr, rect, ids, inv))
        else:
            with self._cond:
                self.dropped += 1

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._queue.clear()
            self._calls.clear()
            self._cond.notify_all()
        for th in self._threads:
            th.join(5)


def _label_colors(
    ids: npt.NDArray[Any], layer: Labels, selected: set[int]
) -> npt.NDArray[np.uint8]:
    """(len(ids), 4) RGBA per label id by the layer's colour mode (0 and hidden ids clear)."""
    cols = np.zeros((len(ids), 4), dtype=np.uint8)
    rgb = id_colors(ids)
    if (
        layer.color_mode == "feature"
        and layer.feature is not None
        and layer.feature in layer.features
    ):
        from viewer.render import values_to_colors

        rgb = values_to_colors(
            ids, layer.features[layer.feature], layer.colormap, layer.feature_limits
        )
    elif layer.color_mode == "fixed":
        rgb = np.tile(np.asarray(layer.fixed_color), (len(ids), 1))
    cols[:, :3] = (np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    alpha = int(round(110 * layer.opacity))
    cols[:, 3] = alpha
    hidden = set(layer.hidden_ids)
    for j, i in enumerate(ids.tolist()):
        if i == 0 or i in hidden:
            cols[j, 3] = 0
        elif i in selected:
            # A light tint, the EM still visible through it (the outline marks the edge).
            cols[j, :3] = (cols[j, :3].astype(np.int64) + 255) // 2
    return cols


@functools.lru_cache(maxsize=32)
def image_lut(colormap: str, gamma: float, invert: bool) -> npt.NDArray[np.uint8] | None:
    """(256, 3) uint8 lookup table of an image layer's display on a slice (None: identity).

    Entry i shows the values at fraction i / 255 of the contrast limits, through
    :func:`viewer.render.image_colors` like the 3D volume. The plain grey ramp is
    None, so pyqtgraph maps levels straight to grey without a table.
    """
    if colormap == "gray" and gamma == 1.0 and not invert:
        return None
    rgb = image_colors(colormap, gamma, invert)
    lut = np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)
    lut.setflags(write=False)
    return lut


#: Colour of the outline drawn around selected objects on a slice.
SELECTION_OUTLINE = (255, 255, 255, 255)


def _outline_selected(
    rgba: npt.NDArray[np.uint8], arr: npt.NDArray[Any], selected: set[int]
) -> npt.NDArray[np.uint8]:
    """Draw an opaque outline on the edge pixels of the selected objects (in place)."""
    if not selected or not arr.size:
        return rgba
    sel = np.isin(arr, np.fromiter(selected, dtype=np.int64))
    if not sel.any():
        return rgba
    same = np.ones_like(sel)
    for axis in (0, 1):
        for shift in (1, -1):
            nb = np.roll(arr, shift, axis=axis)
            edge_row = 0 if shift == 1 else -1
            idx: list[Any] = [slice(None), slice(None)]
            idx[axis] = edge_row
            nb[tuple(idx)] = arr[tuple(idx)]
            same &= nb == arr
    rgba[sel & ~same] = SELECTION_OUTLINE
    return rgba


def _label_rgba(arr: npt.NDArray[Any], layer: Labels, selected: set[int]) -> npt.NDArray[np.uint8]:
    ids, inv = np.unique(arr, return_inverse=True)
    rgba = _label_colors(ids, layer, selected)[inv.reshape(arr.shape)]
    return _outline_selected(rgba, arr, selected)


class QtSliceView(pg.GraphicsLayoutWidget):  # type: ignore[misc]
    """One orthogonal slice (world µm coordinates) with overlays and the crosshair.

    Parameters
    ----------
    session : ProofreadingSession
    plane : {"xy", "xz", "yz"}
    loader : SliceLoader, optional
        Shared worker threads (one is made when not given; it is then closed with the view).

    Signals
    -------
    clicked(zyx, modifiers)
        A click without drag, as a world position on this slice.
    """

    clicked = QtCore.Signal(object, object)
    #: The mouse moved over this view (slice keys then step this one).
    used = QtCore.Signal()
    #: What lies under the mouse (:meth:`readout`), as it moves over the slice.
    pointed = QtCore.Signal(str)
    #: A slice of a layer could not be read (the message says which and why).
    failed = QtCore.Signal(str)

    def __init__(
        self,
        session: ProofreadingSession,
        plane: Plane,
        parent: Any = None,
        loader: SliceLoader | None = None,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.plane = plane
        self._own_loader = loader is None
        self.loader = loader if loader is not None else SliceLoader()
        self.setBackground((20, 20, 26))
        self.view: pg.ViewBox = self.addViewBox(lockAspect=True, invertY=True)
        self.view.setMenuEnabled(False)
        lbl = {
            "xy": "XY  (z = {:.2f} µm)",
            "xz": "XZ  (y = {:.2f} µm)",
            "yz": "YZ  (x = {:.2f} µm)",
        }
        self._title_fmt = lbl[plane]
        self.title = pg.TextItem(color=(230, 230, 230), anchor=(0, 0))
        self.title.setParentItem(self.view)
        #: The image layer's whole-slice (base) item; the contrast histogram binds to it.
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        self.detail = pg.ImageItem(axisOrder="row-major")
        self.detail.setZValue(1)
        self.view.addItem(self.detail)
        #: The isosurface's line on this slice (the image in isosurface rendering).
        self.iso = pg.IsocurveItem(pen=pg.mkPen((255, 220, 0), width=1.5), axisOrder="row-major")
        self.iso.setZValue(7)
        self.iso.setVisible(False)
        self.view.addItem(self.iso)
        self._iso_key: tuple[Any, ...] | None = None
        #: Base item of each labels layer, by name (details in ``_items``).
        self.labels: dict[str, pg.ImageItem] = {}
        self._items: dict[tuple[str, str], pg.ImageItem] = {}
        self._shown: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._asked: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._results: dict[tuple[str, str], SliceResult] = {}
        self._painted: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._image_name: str | None = None
        self._data_levels: tuple[float, float] | None = None
        self.track_lines = pg.PlotDataItem(connect="pairs", pen=pg.mkPen((255, 120, 60), width=1.5))
        self.track_nodes = pg.ScatterPlotItem(size=9, pxMode=True)
        self._brush_node = pg.mkBrush(255, 120, 60)
        self._brush_sel = pg.mkBrush(255, 255, 255)
        #: The node a click would pick now (a ring under the mouse; ``data``: its id).
        self.hover = pg.ScatterPlotItem(
            size=17, pxMode=True, brush=None, pen=pg.mkPen((255, 255, 120), width=2)
        )
        #: Markers near the slice; in the count tool a drag moves one.
        self.markers = _MarkerItem(self, size=10, pxMode=True, symbol="o")
        self.pending = pg.PlotDataItem(
            pen=pg.mkPen((255, 255, 80), width=2), symbol="+", symbolPen=(255, 255, 80)
        )
        #: Finished measurements near the slice (issue 18.13: they vanished once done),
        #: in the 3D view's colour, with their values as text.
        self.measure_lines = pg.PlotDataItem(connect="pairs")
        self.measure_texts: list[pg.TextItem] = []
        for it in (
            self.track_lines,
            self.track_nodes,
            self.hover,
            self.markers,
            self.pending,
            self.measure_lines,
        ):
            it.setZValue(10)
            self.view.addItem(it)
        pen = pg.mkPen((80, 220, 255, 180), width=1)
        self.hline = pg.InfiniteLine(angle=0, pen=pen, movable=False)
        self.vline = pg.InfiniteLine(angle=90, pen=pen, movable=False)
        for ln in (self.hline, self.vline):
            ln.setZValue(20)
            self.view.addItem(ln)
        self._rect: QtCore.QRectF | None = None
        self._need_slices = self._need_overlays = False
        #: The time point the overlays were last drawn for (see :attr:`overlay_time`).
        self._overlay_t: int | None = None
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._redraw)
        self._press: QtCore.QPointF | None = None
        self.scene().sigMouseClicked.connect(self._on_click)
        self.scene().sigMouseMoved.connect(self._on_move)
        self.loader.signals.loaded.connect(self._on_loaded)
        self.loader.signals.failed.connect(self._on_failed)
        #: Reads that failed, by (layer, item): not retried until the slice asked changes.
        self._failed: dict[tuple[str, str], tuple[Any, ...]] = {}
        s = session
        s.cursor_changed.connect(self.schedule)
        s.shown.connect(self.centre_on)
        s.scene.events.current_time.connect(self.schedule)
        s.scene.selection.events.all.connect(self.schedule)
        s.pending_changed.connect(self.schedule_overlays)
        for lay in s.scene.layers:
            self.watch(lay)
        self._clip_lines: list[tuple[int, int, pg.InfiniteLine]] = []
        self._moving_line = False
        s.scene.clipping_planes.events.all.connect(self._sync_clip_lines)
        self._sync_clip_lines()
        self._frame_volume()
        # Zooming or panning may call for another level or region (coalesced like all redraws).
        self.view.sigRangeChanged.connect(self._on_range)
        self.refresh()

    def watch(self, layer: Any) -> None:
        """Redraw on the layer's changes: re-slice for volumes, overlays only for the rest."""
        slot = self.schedule if isinstance(layer, (Image, Labels)) else self.schedule_overlays
        layer.events.all.connect(slot)
        layer.data_changed.connect(slot)

    # Handlers only mark what is stale; one zero-delay timer redraws once per event-loop
    # pass, however many events one edit emitted (vispy's _need_update pattern).
    def schedule(self, *_: object) -> None:
        self._need_slices = True
        self._timer.start(0)

    def schedule_overlays(self, *_: object) -> None:
        self._need_overlays = True
        if not self._timer.isActive():
            self._timer.start(0)

    def _on_range(self, *_: object) -> None:
        if not self._timer.isActive():
            self._need_slices = True
            self._timer.start(30)  # a wheel zoom emits many steps: ask once it pauses

    @property
    def busy(self) -> bool:
        """A redraw is scheduled or a slice this view asked for has not landed yet."""
        return self._timer.isActive() or bool(self._asked)

    def _redraw(self) -> None:
        slices, overlays = self._need_slices, self._need_overlays
        self._need_slices = self._need_overlays = False
        if slices:
            self.refresh()
        elif overlays:
            self.refresh_overlays()

    def resizeEvent(self, ev: Any) -> None:
        super().resizeEvent(ev)
        rect = getattr(self, "_rect", None)  # resize events arrive during __init__ too
        if rect is not None:
            # Keep the whole slice in view as the splitters move.
            self.view.setRange(rect, padding=0.02)

    # -- drawing ------------------------------------------------------------------
    @property
    def fixed_axis(self) -> int:
        return slice_axes(self.plane)[2]

    def _volumes(self) -> list[Image | Labels]:
        s = self.session
        out: list[Image | Labels] = []
        img = s.image_layer
        if img is not None and img.data is not None:
            out.append(img)
        out.extend(lay for lay in s.labels_layers if lay.data is not None)
        return out

    def _frame_volume(self) -> None:
        """Frame the slice from the metadata alone (no pixels needed)."""
        vols = self._volumes()
        if vols and self._rect is None:
            src = vols[0].data
            assert src is not None
            self._rect = slice_rect(src, self.plane, 0)
            self.view.setRange(self._rect, padding=0.02)

    def _item(self, name: str, which: str) -> pg.ImageItem:
        key = (name, which)
        item = self._items.get(key)
        if item is None:
            if name == self._image_name and which == "base":
                item = self.image
            elif name == self._image_name:
                item = self.detail
            else:
                item = pg.ImageItem(axisOrder="row-major")
                item.setZValue(5 if which == "base" else 6)
                self.view.addItem(item)
                if which == "base":
                    self.labels[name] = item
            self._items[key] = item
        return item

    def refresh(self, *_: object) -> None:
        """Ask for the slices at the cursor (as the view is zoomed) and redraw every overlay."""
        s = self.session
        r, c, f = slice_axes(self.plane)
        pos = s.cursor[f]
        self.title.setText(self._title_fmt.format(pos))
        self._frame_volume()
        img = s.image_layer
        name = img.name if img is not None and img.data is not None else None
        if name != self._image_name:
            for which in ("base", "detail"):
                self._items.pop((str(self._image_name), which), None)
                self._painted.pop((str(self._image_name), which), None)
            self._image_name = name
        vols = self._volumes()
        names = {lay.name for lay in vols}
        for key in [k for k in self._items if k[0] not in names]:
            item = self._items.pop(key)
            if item is self.image or item is self.detail:
                item.clear()
            else:
                self.view.removeItem(item)
                self.labels.pop(key[0], None)
            self._shown.pop(key, None)
            self._results.pop(key, None)
            self._painted.pop(key, None)
        for lay in vols:
            self._ask(lay, pos, s.time)
        self.hline.setPos(s.cursor[r])
        self.vline.setPos(s.cursor[c])
        self.refresh_overlays()

    def _visible_region(
        self, src: VolumeSource, level: int
    ) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """Voxel rows and columns of ``level`` in view, with a margin of half the view each side."""
        r, c, _ = slice_axes(self.plane)
        vr = self.view.viewRect()
        lev = src.levels[level]
        sc, org, shp = lev.scale_um, lev.translation[-3:], lev.shape[-3:]
        out = []
        for ax, lo, size in ((r, vr.top(), vr.height()), (c, vr.left(), vr.width())):
            a = int(np.floor((lo - size / 2 - org[ax]) / sc[ax] + 0.5))
            b = int(np.ceil((lo + 1.5 * size - org[ax]) / sc[ax] + 0.5))
            a, b = max(a, 0), min(b, shp[ax])
            if b <= a:
                return None
            out.append((a, b))
        return out[0], out[1]

    def _ask(self, lay: Image | Labels, pos: float, t: int) -> None:
        src = lay.data
        assert src is not None
        labels = isinstance(lay, Labels)
        base, detail = self._item(lay.name, "base"), self._item(lay.name, "detail")
        lb = base_level(src, self.plane)
        k = slice_index(src, self.plane, lb, pos)
        if k is None or not lay.visible:
            for which, item in (("base", base), ("detail", detail)):
                item.setVisible(False)
                self._drop(lay.name, which)
            return
        r, c, _ = slice_axes(self.plane)
        shp = src.levels[lb].shape[-3:]
        self._want(lay, "base", src, lb, k, t, (0, shp[r]), (0, shp[c]), labels)
        px = self.pixel_size_um()

        def n_pixels(level: int) -> int:
            reg = self._visible_region(src, level)
            return 0 if reg is None else (reg[0][1] - reg[0][0]) * (reg[1][1] - reg[1][0])

        lf = level_for_zoom(src, self.plane, px, n_pixels)
        region = self._visible_region(src, lf) if lf < lb else None
        kf = slice_index(src, self.plane, lf, pos) if region is not None else None
        if region is None or kf is None:
            detail.setVisible(False)
            self._drop(lay.name, "detail")
            return
        shown = self._shown.get((lay.name, "detail"))
        if shown is not None and shown[3] != t:
            detail.setVisible(False)  # another time point: the base shows until this one lands
        elif shown is not None and (shown[0], shown[3]) == (id(src), t):
            # Another depth: the coarser base shows until the detail of this one lands.
            old = self._results.get((lay.name, "detail"))
            if old is not None and not _same_depth(old.request, src, self.plane, lf, kf, pos):
                detail.setVisible(False)
        self._want(lay, "detail", src, lf, kf, t, region[0], region[1], labels)

    def _drop(self, name: str, which: str) -> None:
        key = (name, which)
        self._shown.pop(key, None)
        self._results.pop(key, None)
        if self._asked.pop(key, None) is not None:
            self.loader.cancel((self.plane, name, which))

    def _want(
        self,
        lay: Image | Labels,
        which: str,
        src: VolumeSource,
        level: int,
        k: int,
        t: int,
        rows: tuple[int, int],
        cols: tuple[int, int],
        labels: bool,
    ) -> None:
        key = (lay.name, which)
        what = (id(src), self.plane, k, t, level, rows, cols)
        if self._shown.get(key) == what:
            self._paint(lay, which)  # display properties or selection changed: no read
            return
        if self._asked.get(key) == what or self._failed.get(key) == what:
            return
        self._asked[key] = what
        self.loader.submit(
            SliceRequest(
                (self.plane, lay.name, which),
                self.loader.next_gen(),
                src,
                self.plane,
                k,
                t,
                level,
                rows,
                cols,
                labels,
            )
        )

    def _on_loaded(self, res: SliceResult) -> None:
        req = res.request
        if req.key[0] != self.plane or not self.loader.wanted(req):
            return
        key = (req.key[1], req.key[2])
        lay = next((v for v in self._volumes() if v.name == key[0]), None)
        if lay is None or lay.data is not req.source or self._asked.get(key) != req.what:
            return
        self._shown[key] = req.what
        self._results[key] = res
        self._asked.pop(key, None)
        if isinstance(lay, Image) and key[1] == "base":
            self._data_levels = (float(res.array.min()), float(res.array.max()) or 1.0)
        self._paint(lay, key[1])
        if self.overlay_time != self._overlay_t:
            # The image of another time point is shown now: its tracks and markers with it.
            self.refresh_overlays()

    def _on_failed(self, req: SliceRequest, message: str) -> None:
        if req.key[0] != self.plane:
            return
        key = (req.key[1], req.key[2])
        if self._asked.get(key) == req.what:
            self._asked.pop(key, None)
            self._failed[key] = req.what
            self.failed.emit(message)

    def _paint(self, lay: Image | Labels, which: str) -> None:
        """Show the loaded slice with the layer's display state.

        Skips what did not change: re-setting an unchanged image costs the contrast
        histogram a recomputation and pyqtgraph a conversion, per view, per event.
        """
        key = (lay.name, which)
        res = self._results.get(key)
        if res is None:
            return
        item = self._item(lay.name, which)
        if isinstance(lay, Labels):
            sel = self.session.scene.selection
            chosen = frozenset(sel.label_ids) if sel.layer == lay.name else frozenset()
            look = (
                id(res),
                chosen,
                lay.color_mode,
                lay.feature,
                id(lay.features.get(lay.feature or "")),
                lay.colormap,
                lay.feature_limits,
                tuple(lay.fixed_color),
                lay.opacity,
                tuple(lay.hidden_ids),
            )
            if self._painted.get(key) != look:
                assert res.ids is not None and res.inverse is not None
                rgba = _label_colors(res.ids, lay, set(chosen))[res.inverse]
                rgba = _outline_selected(rgba, res.array, set(chosen))
                item.setImage(rgba, autoLevels=False)
                item.setRect(res.rect)
                self._painted[key] = look
            item.setVisible(lay.visible)
            return
        lo_hi = lay.contrast_limits or self._data_levels
        if lo_hi is None:
            lo_hi = (float(res.array.min()), float(res.array.max()) or 1.0)
        # Colormap and gamma as in 3D (one lookup table over the contrast limits); the
        # slices' own invert (the 3D volume's, on by default for EM, would show the
        # acquired EM as a negative).
        lut = image_lut(lay.colormap, lay.gamma, lay.slice_invert)
        if item.lut is not lut:
            item.setLookupTable(lut)
        if self._painted.get(key) != (id(res),):
            # Levels go in with the image: the contrast histogram reads them on sigImageChanged.
            item.setImage(res.array.astype(np.float32, copy=False), autoLevels=False, levels=lo_hi)
            item.setRect(res.rect)
            self._painted[key] = (id(res),)
        elif item.levels is None or tuple(item.levels) != tuple(lo_hi):
            item.setLevels(lo_hi)
            if item is self.image:
                item.sigImageChanged.emit()  # the histogram follows contrast set elsewhere
        if item is self.image:
            self._paint_iso(lay, res, lo_hi)
        item.setVisible(lay.visible)
        # The EM shows at full intensity on a slice, whatever the volume's 3D opacity (the
        # labels are blended over it with their own opacity; issue 18.8).
        item.setOpacity(1.0)

    def _paint_iso(self, lay: Image, res: SliceResult, lo_hi: tuple[float, float]) -> None:
        """In isosurface rendering, the isosurface's line through this slice (of the base)."""
        if lay.rendering != "isosurface" or not lay.visible:
            self.iso.setVisible(False)
            return
        lo, hi = lo_hi
        thr = float(lay.iso_threshold) if lay.iso_threshold is not None else (lo + hi) / 2
        key = (id(res), thr)
        if self._iso_key != key:
            self.iso.setData(res.array.astype(np.float32, copy=False), thr)
            self.iso.setTransform(self.image.transform())
            self._iso_key = key
        self.iso.setVisible(True)

    def reload(self, layer: str, boxes: Sequence[Sequence[tuple[slice, ...]]]) -> None:
        """Read ``layer``'s slices again where they meet ``boxes`` (per level, (z, y, x)
        regions whose voxels changed: a label edit). The old slice shows until the new
        one lands."""
        for which in ("base", "detail"):
            res = self._results.get((layer, which))
            if res is None:
                continue
            rq = res.request
            r, c, f = slice_axes(self.plane)
            mine = [(0, 0)] * 3
            mine[r], mine[c], mine[f] = rq.rows, rq.cols, (rq.k, rq.k + 1)
            level_boxes = boxes[rq.level] if rq.level < len(boxes) else ()
            if any(
                all(b[a].start < mine[a][1] and mine[a][0] < b[a].stop for a in range(3))
                for b in level_boxes
            ):
                # A read of this slice still in flight may predate the edit: ask anew (a
                # newer request supersedes it, see SliceLoader.wanted).
                self._shown.pop((layer, which), None)
                self._asked.pop((layer, which), None)
                self._need_slices = True
        if self._need_slices:
            self._timer.start(0)

    def shown(self, layer: str, which: str = "base") -> SliceResult | None:
        """What the view shows of ``layer`` (``which``: "base" or "detail"), if anything."""
        res = self._results.get((layer, which))
        return res if res is not None and self._item(layer, which).isVisible() else None

    def shown_level(self, layer: str) -> int | None:
        """Finest pyramid level shown for ``layer`` (None: nothing yet)."""
        levels = [
            self._results[(layer, w)].request.level
            for w in ("base", "detail")
            if (layer, w) in self._results and self._item(layer, w).isVisible()
        ]
        return min(levels) if levels else None

    def readout(self, zyx: Sequence[float]) -> str:
        """What lies at world ``zyx`` on this slice: µm, level-0 voxel, intensity, labels.

        Read from the slices on screen (no I/O); a value from a coarser level than 0 says so.
        """
        s = self.session
        p = tuple(float(v) for v in zyx)
        parts = [f"z {p[0]:.2f}  y {p[1]:.2f}  x {p[2]:.2f} µm"]
        img = s.image_layer
        if img is not None and img.data is not None:
            lev = img.data.levels[0]
            vox = np.round(
                (np.asarray(p) - np.asarray(lev.translation[-3:])) / np.asarray(lev.scale_um)
            ).astype(int)
            parts.append(f"voxel z {vox[0]}  y {vox[1]}  x {vox[2]}")
            got = self._shown_value(img.name, img.data, p)
            if got is not None:
                v, level = got
                parts.append(f"intensity {v:g}" + (f" (level {level})" if level else ""))
        for lay in reversed(s.labels_layers):
            if not lay.visible or lay.data is None:
                continue
            got = self._shown_value(lay.name, lay.data, p)
            if got is None or not int(got[0]):
                continue
            label = int(got[0])
            cls = s.annotations.object_classes.get(lay.name, {}).get(label)
            parts.append(f"{lay.name} {label}" + (f" ({cls})" if cls else ""))
        return "   ".join(parts)

    def _shown_value(
        self, name: str, src: VolumeSource, zyx: Sequence[float]
    ) -> tuple[Any, int] | None:
        for which in ("detail", "base"):
            res = self._results.get((name, which))
            if res is None or not self._item(name, which).isVisible():
                continue
            v = _raw_value_in(res, src, self.plane, zyx)
            if v is not None:
                return v, res.request.level
        return None

    def label_at(self, zyx: tuple[float, float, float]) -> tuple[str, int] | None:
        """(layer, id) of the finest label shown at world ``zyx`` on this slice (no reading).

        None when no labels layer shows anything there (e.g. the point is off this slice).
        """
        for lay in reversed(self.session.labels_layers):
            if not lay.visible or lay.data is None:
                continue
            for which in ("detail", "base"):
                res = self._results.get((lay.name, which))
                if res is None or not self._item(lay.name, which).isVisible():
                    continue
                v = _value_in(res, lay.data, self.plane, zyx)
                if v is not None:
                    return (lay.name, v) if v else None
        return None

    # -- clipping planes ------------------------------------------------------------
    def _sync_clip_lines(self, *_: object) -> None:
        """A draggable line for each plane perpendicular to this view (axis-aligned planes)."""
        if self._moving_line:
            return
        r, c, _f = slice_axes(self.plane)
        want: list[tuple[int, int, float]] = []
        for i, p in enumerate(self.session.scene.clipping_planes):
            n = np.asarray(p.normal)
            for ax in (c, r):
                if p.enabled and abs(abs(n[ax]) - 1.0) < 1e-6:
                    want.append((i, ax, float(p.origin[ax])))
        if [(i, ax) for i, ax, _ in want] != [(i, ax) for i, ax, _ in self._clip_lines]:
            for _i, _ax, ln in self._clip_lines:
                self.view.removeItem(ln)
            self._clip_lines = []
            for i, ax, pos in want:
                ln = pg.InfiniteLine(
                    pos=pos,
                    angle=90 if ax == c else 0,
                    movable=True,
                    pen=pg.mkPen((255, 90, 200), width=2, style=QtCore.Qt.PenStyle.DashLine),
                    hoverPen=pg.mkPen((255, 160, 230), width=3),
                )
                ln.setZValue(15)
                ln.sigPositionChanged.connect(lambda line, i=i, ax=ax: self._drag_clip(i, ax, line))
                self.view.addItem(ln)
                self._clip_lines.append((i, ax, ln))
            return
        for (_i, _ax, ln), (_j, _bx, pos) in zip(self._clip_lines, want, strict=True):
            if abs(ln.value() - pos) > 1e-9:
                ln.blockSignals(True)
                ln.setValue(pos)
                ln.blockSignals(False)

    @property
    def clip_lines(self) -> list[pg.InfiniteLine]:
        """The draggable plane lines shown (tests and tools)."""
        return [ln for _, _, ln in self._clip_lines]

    def _drag_clip(self, index: int, axis: int, line: pg.InfiniteLine) -> None:
        planes = self.session.scene.clipping_planes
        if not 0 <= index < len(planes):
            return
        o = list(planes[index].origin)
        o[axis] = float(line.value())
        self._moving_line = True
        try:
            planes[index].origin = (o[0], o[1], o[2])
        finally:
            self._moving_line = False

    @property
    def overlay_time(self) -> int:
        """The time point whose tracks, markers and measurements are drawn: the time of
        the time-lapse image shown (issue 18.12: during Play the nodes of the new time
        point were drawn over the old image still loading), else the current time."""
        s = self.session
        img = s.image_layer
        if img is not None and img.data is not None and "t" in img.data.axes:
            res = self._results.get((img.name, "base"))
            if res is not None and self._item(img.name, "base").isVisible():
                return int(res.request.t)
        return int(s.time)

    def _slab_um(self) -> float:
        """Half thickness of the slab whose tracks and markers are drawn on this slice."""
        img = self.session.image_layer
        if img is not None and img.data is not None:
            return float(max(img.data.levels[0].scale_um[self.fixed_axis] * 3, 1e-6))
        lo, hi = self.session.extent_world()
        return float((hi - lo)[self.fixed_axis] / 20 or 1.0)

    def refresh_overlays(self, *_: object) -> None:
        s = self.session
        r, c, f = slice_axes(self.plane)
        pos, slab = s.cursor[f], self._slab_um()
        now = self._overlay_t = self.overlay_time
        tl = s.scene.layers.get("tracks") if "tracks" in s.scene.layers.names else None
        if isinstance(tl, Tracks) and tl.data is not None and tl.visible:
            nodes, node_ids, seg = self._track_overlay(tl, pos, slab, now)
            sel = set(s.scene.selection.node_ids)
            # Two shared brushes: pyqtgraph renders one symbol per distinct brush object.
            brushes = [self._brush_sel if int(n) in sel else self._brush_node for n in node_ids]
            self.track_nodes.setData(x=nodes[:, c], y=nodes[:, r], brush=brushes, data=node_ids)
            self.track_lines.setData(x=seg[:, c], y=seg[:, r])
        else:
            self.track_nodes.setData([], [])
            self.track_lines.setData([], [])
        self._set_hover(self.hovered)
        # markers of the current time (or static) near the slice
        ann = s.annotations
        ms = [
            m
            for m in ann.markers
            if abs(m.position_um[f] - pos) <= slab and (m.t is None or m.t == now)
        ]
        pts_layer = s.scene.layers.get("markers")
        if ms and isinstance(pts_layer, Points) and pts_layer.visible:
            brushes = [
                pg.mkBrush(*[int(255 * v) for v in ann.class_color(m.class_name)]) for m in ms
            ]
            self.markers.setData(
                x=[m.position_um[c] for m in ms],
                y=[m.position_um[r] for m in ms],
                brush=brushes,
                data=[m.id for m in ms],
            )
        else:
            self.markers.setData([], [])
        if s.pending and s.mode in MEASURE_POINTS:
            p = np.asarray(s.pending)
            self.pending.setData(x=p[:, c], y=p[:, r])
        else:
            self.pending.setData([], [])
        self._draw_measurements(pos, slab, now)

    def _draw_measurements(self, pos: float, slab: float, now: int) -> None:
        """Finished measurements of the current time (or static) with a point near the
        slice: their lines projected onto it and their value at the vertex or middle."""
        s = self.session
        r, c, f = slice_axes(self.plane)
        for t in self.measure_texts:
            self.view.removeItem(t)
        self.measure_texts = []
        lay = s.scene.layers.get("measurements") if "measurements" in s.scene.layers.names else None
        if not isinstance(lay, Measurements) or not lay.visible:
            self.measure_lines.setData([], [])
            return
        segs: list[npt.NDArray[np.float64]] = []
        color = tuple(int(255 * v) for v in lay.color)
        for m in s.annotations.measurements:
            p = np.asarray(m.points_um, dtype=np.float64)
            if (m.t is not None and m.t != now) or not (np.abs(p[:, f] - pos) <= slab).any():
                continue
            segs.append(np.stack([p[:-1], p[1:]], axis=1).reshape(-1, 3))
            shown = Measurement(kind=m.kind, points_um=list(m.points_um), label=f"#{m.id}")
            anchor = p[1] if m.kind == "angle" else p.mean(axis=0)
            text = pg.TextItem(shown.text, color=color, anchor=(0.5, 1.0))
            text.setPos(float(anchor[c]), float(anchor[r]))
            text.setZValue(11)
            self.view.addItem(text)
            self.measure_texts.append(text)
        if segs:
            seg = np.concatenate(segs)
            self.measure_lines.setData(
                x=seg[:, c], y=seg[:, r], pen=pg.mkPen(color, width=lay.line_width)
            )
        else:
            self.measure_lines.setData([], [])

    def _track_overlay(
        self, tl: Tracks, pos: float, slab: float, now: int
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Nodes of the current time near the slice, and tail segments touching the slab.

        Returns node positions (K, 3), their ids (K,) and segment end points (2S, 3).
        For the session's own tracks layer only the time window is visited (the
        graph's per-time index), so the cost does not grow with the whole lineage.
        """
        s = self.session
        f = self.fixed_axis
        st = s.track_state
        g = s.tracks
        if st is not None and g is not None and st.graph is g and tl.name == "tracks":
            lo = int(np.ceil(now - tl.tail_length))
            per_t = [g.nodes_at(t) for t in range(lo, now + 1)]
            ids_now = per_t[-1] if per_t else np.zeros(0, np.int64)
            p_now = st.positions(ids_now)
            keep = np.abs(p_now[:, f] - pos) <= slab
            kids = np.concatenate(per_t[1:]) if len(per_t) > 1 else np.zeros(0, np.int64)
            par = st.parents(kids)
            ok = par >= 0
            kids, par = kids[ok], par[ok]
            ok = st.times(par) >= lo
            kids, par = kids[ok], par[ok]
            pk, pp = st.positions(kids), st.positions(par)
            near = (np.abs(pk[:, f] - pos) <= slab) | (np.abs(pp[:, f] - pos) <= slab)
            seg = np.stack([pp[near], pk[near]], axis=1).reshape(-1, 3)
            return p_now[keep], ids_now[keep], seg
        d = tl.data
        assert d is not None
        near = np.abs(d.zyx_um[:, f] - pos) <= slab
        cur = near & (d.t == now)
        window = (d.t <= now) & (d.t >= now - tl.tail_length)
        seg = np.zeros((0, 3))
        if len(d.edges):
            idx = d.index_of(d.edges.reshape(-1)).reshape(-1, 2)
            keep_e = window[idx].all(axis=1) & near[idx].any(axis=1)
            seg = d.zyx_um[idx[keep_e].reshape(-1)]
        return d.zyx_um[cur], d.node_ids[cur], seg

    # -- input -------------------------------------------------------------------
    def world_at(self, scene_pos: QtCore.QPointF) -> tuple[float, float, float]:
        """World zyx of a scene position on this slice (the fixed axis at the cursor)."""
        p = self.view.mapSceneToView(scene_pos)
        r, c, f = slice_axes(self.plane)
        out = [0.0, 0.0, 0.0]
        out[r], out[c], out[f] = float(p.y()), float(p.x()), self.session.cursor[f]
        return (out[0], out[1], out[2])

    def view_to_scene(self, zyx: tuple[float, float, float]) -> QtCore.QPointF:
        """Scene position of a world point (for simulated clicks in tests)."""
        r, c, _ = slice_axes(self.plane)
        out: QtCore.QPointF = self.view.mapViewToScene(QtCore.QPointF(zyx[c], zyx[r]))
        return out

    def centre_on(self, zyx: Sequence[float]) -> None:
        """Pan (keeping the zoom) so that world ``zyx`` is in the middle of the view."""
        r, c, _ = slice_axes(self.plane)
        rect = self.view.viewRect()
        dx, dy = float(zyx[c]) - rect.center().x(), float(zyx[r]) - rect.center().y()
        if dx or dy:
            self.view.translateBy(x=dx, y=dy)

    def node_under(self, zyx: Sequence[float]) -> int | None:
        """The track node drawn at world ``zyx`` that a click there picks (screen pixels).

        The candidates are the nodes this slice draws for the current time and crosshair
        (taken from the model, so a click right after the time or depth changed, before
        the overlay is redrawn, picks what will be drawn there).
        """
        pts, ids = self._nodes_now()
        row = nearest_on_screen(pts, zyx, self.fixed_axis, self.pixel_size_um(), self._slab_um())
        return None if row is None else int(ids[row])

    def _nodes_now(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """Positions (K, 3) and ids (K,) of the track nodes this slice draws now."""
        s = self.session
        tl = s.scene.layers.get("tracks") if "tracks" in s.scene.layers.names else None
        if not isinstance(tl, Tracks) or tl.data is None or not tl.visible:
            return np.zeros((0, 3)), np.zeros(0, np.int64)
        f, pos, slab = self.fixed_axis, s.cursor[self.fixed_axis], self._slab_um()
        st, g = s.track_state, s.tracks
        if st is not None and g is not None and st.graph is g:
            ids = g.nodes_at(s.time)
            p = np.asarray(st.positions(ids), np.float64).reshape(-1, 3)
        else:
            d = tl.data
            now = d.t == s.time
            ids, p = d.node_ids[now], np.asarray(d.zyx_um[now], np.float64)
        keep = np.abs(p[:, f] - pos) <= slab
        return p[keep], np.asarray(ids)[keep]

    @property
    def hovered(self) -> int | None:
        """The node highlighted under the mouse (the one a click picks), or None."""
        d = self.hover.data
        return int(d["data"][0]) if len(d) else None

    def _set_hover(self, node: int | None) -> None:
        pts, ids = self._nodes_now()
        hit = np.flatnonzero(ids == node) if node is not None else np.zeros(0, np.int64)
        if not len(hit):
            self.hover.setData([], [])
            return
        r, c, _ = slice_axes(self.plane)
        p = pts[int(hit[0])]
        self.hover.setData(x=[p[c]], y=[p[r]], data=[int(node)])  # type: ignore[arg-type]

    def step(self, n: int) -> None:
        """Move this slice ``n`` voxels along its axis (the crosshair's depth; others follow)."""
        s = self.session
        f = self.fixed_axis
        zyx = list(s.cursor)
        zyx[f] += n * self._voxel_um()
        s.set_cursor(zyx)

    def _voxel_um(self) -> float:
        img = self.session.image_layer
        if img is not None and img.data is not None:
            return float(img.data.levels[0].scale_um[self.fixed_axis])
        lo, hi = self.session.extent_world()
        return float((hi - lo)[self.fixed_axis] / 100 or 1.0)

    def _on_move(self, scene_pos: QtCore.QPointF) -> None:
        self.used.emit()
        if not self.view.sceneBoundingRect().contains(scene_pos):
            node = None
        else:
            zyx = self.world_at(scene_pos)
            node = self.node_under(zyx)
            self.pointed.emit(self.readout(zyx))
        if node != self.hovered:
            self._set_hover(node)

    def _on_click(self, ev: Any) -> None:
        if ev.button() != QtCore.Qt.MouseButton.LeftButton:
            return
        if not self.view.sceneBoundingRect().contains(ev.scenePos()):
            return
        ev.accept()
        self.used.emit()
        self.clicked.emit(self.world_at(ev.scenePos()), ev.modifiers())

    def pixel_size_um(self) -> float:
        """World µm per screen pixel (for pick tolerances and the level of detail)."""
        px = self.view.viewPixelSize()
        return float(max(px[0], px[1]))

    def closeEvent(self, ev: Any) -> None:
        if self._own_loader:
            self.loader.close()
        super().closeEvent(ev)


class _MarkerItem(pg.ScatterPlotItem):  # type: ignore[misc]
    """The markers of a slice view; in the count tool a drag on one moves it there
    (``annotations.move_marker``); any other drag pans the view as usual."""

    def __init__(self, view: QtSliceView, **kw: Any) -> None:
        super().__init__(**kw)
        self._slice_view = weakref.ref(view)
        self._dragged: int | None = None

    def mouseDragEvent(self, ev: Any) -> None:
        view = self._slice_view()
        if ev.button() != QtCore.Qt.MouseButton.LeftButton or view is None:
            ev.ignore()
            return
        if ev.isStart():
            hit = self.pointsAt(ev.buttonDownPos())
            if view.session.mode != "count" or not len(hit):
                ev.ignore()
                return
            self._dragged = int(hit[0].data())
        if self._dragged is None:
            ev.ignore()
            return
        ev.accept()
        if ev.isFinish():
            mid, self._dragged = self._dragged, None
            zyx = view.world_at(ev.scenePos())
            view.session.run(
                "annotations.move_marker", Pick(point_um=zyx, layer="markers", label=mid)
            )


def _same_depth(
    req: SliceRequest, src: VolumeSource, plane: Plane, level: int, k: int, pos: float
) -> bool:
    """Whether ``req`` showed the same world depth as index ``k`` of ``level``."""
    if req.source is not src:
        return False
    f = slice_axes(plane)[2]
    a = src.levels[req.level]
    b = src.levels[level]
    za = a.translation[-3:][f] + req.k * a.scale_um[f]
    zb = b.translation[-3:][f] + k * b.scale_um[f]
    return bool(abs(za - zb) <= 0.5 * max(a.scale_um[f], b.scale_um[f]))


def _value_in(
    res: SliceResult, src: VolumeSource, plane: Plane, zyx: tuple[float, float, float]
) -> int | None:
    """The value of a loaded slice at world ``zyx``; None when ``zyx`` is not on it."""
    v = _raw_value_in(res, src, plane, zyx)
    return None if v is None else int(v)


def _raw_value_in(res: SliceResult, src: VolumeSource, plane: Plane, zyx: Sequence[float]) -> Any:
    """The voxel value (as stored) of a loaded slice at world ``zyx``; None when not on it."""
    req = res.request
    lev = src.levels[req.level]
    r, c, f = slice_axes(plane)
    sc, org = lev.scale_um, lev.translation[-3:]
    if abs(org[f] + req.k * sc[f] - zyx[f]) > 0.5 * sc[f]:
        return None
    i = int(round((zyx[r] - org[r]) / sc[r])) - req.rows[0]
    j = int(round((zyx[c] - org[c]) / sc[c])) - req.cols[0]
    if not (0 <= i < res.array.shape[0] and 0 <= j < res.array.shape[1]):
        return None
    return res.array[i, j]


def set_histogram_image(hist: pg.HistogramLUTWidget, image: Image, item: pg.ImageItem) -> None:
    """Bind a pyqtgraph histogram/LUT editor to a slice item and the 3D image's contrast."""
    hist.setImageItem(item)

    def changed(*_: Any) -> None:
        lo, hi = hist.getLevels()
        if np.isfinite(lo) and np.isfinite(hi) and hi > lo:
            image.contrast_limits = (float(lo), float(hi))

    hist.sigLevelChangeFinished.connect(changed)


class QtSliceSlider(QtWidgets.QSlider):
    """A slider through the slices of one view: one step per voxel of its axis (level 0).

    Moving it moves the crosshair's depth along the view's axis (so the view and the
    other views' crosshair lines follow); it follows the crosshair moved elsewhere.
    """

    def __init__(self, view: QtSliceView, parent: Any = None) -> None:
        super().__init__(QtCore.Qt.Orientation.Vertical, parent)
        self.view = view
        self.setObjectName(f"slices:{view.plane}")
        self.setInvertedAppearance(True)  # the first slice at the top, like the view's y
        s = view.session
        lo, hi = s.extent_world()
        f = view.fixed_axis
        self._step = view._voxel_um()
        img = s.image_layer
        # Slider positions are voxel centres (the extent starts at the first voxel's edge).
        if img is not None and img.data is not None:
            self._lo = float(img.data.levels[0].translation[-3:][f])
        else:
            self._lo = float(lo[f])
        self.setRange(0, max(int(round((float(hi[f]) - self._lo) / self._step)), 0))
        self.setPageStep(10)
        self.sync()
        s.cursor_changed.connect(self.sync)
        self.valueChanged.connect(self._moved)

    def sync(self, *_: object) -> None:
        k = int(round((self.view.session.cursor[self.view.fixed_axis] - self._lo) / self._step))
        if k != self.value():
            self.blockSignals(True)
            self.setValue(k)
            self.blockSignals(False)
        self.setToolTip(self.view._title_fmt.format(self.view.session.cursor[self.view.fixed_axis]))

    def _moved(self, k: int) -> None:
        s = self.view.session
        zyx = list(s.cursor)
        zyx[self.view.fixed_axis] = self._lo + k * self._step
        s.set_cursor(zyx)


def grab_array(widget: QtWidgets.QWidget) -> npt.NDArray[np.uint8]:
    """The widget as shown: (H, W, 3) uint8 RGB."""
    img = widget.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)
    w, h = img.width(), img.height()
    buf = np.frombuffer(img.constBits(), dtype=np.uint8, count=img.bytesPerLine() * h)
    return buf.reshape(h, img.bytesPerLine())[:, : 3 * w].reshape(h, w, 3).copy()
