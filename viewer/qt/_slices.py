"""Orthogonal slice views (XY, XZ, YZ) with label, track and marker overlays and a crosshair.

Each :class:`QtSliceView` is a pyqtgraph view whose coordinates are world µm:
the image item is placed with its voxel size, so a click maps straight to
(z, y, x). All three follow the session's cursor (the shared crosshair) and the
current time; a click moves the cursor (navigate mode) or feeds the current tool.
Slices are read from the coarsest pyramid level that still shows at least one
voxel per screen pixel (capped at 1024 x 1024), so large stores stay responsive.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from analysis.volume import VolumeSource
from viewer.render import id_colors
from viewer.scene import Image, Labels, Points, Tracks

from ._session import MEASURE_POINTS, ProofreadingSession

__all__ = ["PLANES", "QtSliceView", "slice_axes"]

log = logging.getLogger(__name__)

Plane = Literal["xy", "xz", "yz"]
PLANES: tuple[Plane, ...] = ("xy", "xz", "yz")
MAX_SLICE_PIXELS = 1024 * 1024


def slice_axes(plane: Plane) -> tuple[int, int, int]:
    """(row axis, column axis, fixed axis) as indices into zyx."""
    return {"xy": (1, 2, 0), "xz": (0, 2, 1), "yz": (0, 1, 2)}[plane]


def _level_for(src: VolumeSource, plane: Plane) -> int:
    r, c, _ = slice_axes(plane)
    for i, lev in enumerate(src.levels):
        shp = lev.shape[-3:]
        if shp[r] * shp[c] <= MAX_SLICE_PIXELS:
            return i
    return len(src.levels) - 1


class VolumeCache:
    """Whole pyramid levels kept in memory for slicing, least recently used first out.

    Scrolling re-slices three views per step; reading each slice through zarr costs
    ~10 ms (decode plus its async machinery), far more than indexing an array. A
    level that fits the budget is read once; larger ones are sliced from the store.
    """

    def __init__(self, budget_bytes: int = 512 * 2**20) -> None:
        self.budget = int(budget_bytes)
        self._arrays: dict[tuple[int, int, int], npt.NDArray[Any]] = {}

    def get(self, src: VolumeSource, level: int, t: int) -> npt.NDArray[Any] | None:
        key = (id(src), level, t)
        arr = self._arrays.pop(key, None)
        if arr is None:
            lev = src.levels[level]
            nbytes = int(np.prod(lev.shape[-3:], dtype=np.int64)) * np.dtype(src.dtype).itemsize
            if nbytes > self.budget // 4:
                return None
            region = []
            for ax, size in zip(src.axes, lev.shape, strict=True):
                i = min(max(t, 0), size - 1) if ax == "t" else 0
                region.append(slice(i, i + 1) if ax in "tc" else slice(None))
            arr = np.asarray(src.read(level, tuple(region))).reshape(lev.shape[-3:])
            while (
                self._arrays and sum(a.nbytes for a in self._arrays.values()) + nbytes > self.budget
            ):
                self._arrays.pop(next(iter(self._arrays)))
        self._arrays[key] = arr  # most recently used last
        return arr


#: Shared by the three slice views of a process.
CACHE = VolumeCache()


def read_slice(
    src: VolumeSource, plane: Plane, pos_um: float, t: int = 0, level: int | None = None
) -> tuple[npt.NDArray[Any], QtCore.QRectF] | None:
    """The 2D slice through world position ``pos_um`` along the plane's fixed axis.

    Returns the (rows, cols) array and its rectangle in world µm (x: columns,
    y: rows), or None when the position is outside the volume.
    """
    lev_i = _level_for(src, plane) if level is None else level
    lev = src.levels[lev_i]
    r, c, f = slice_axes(plane)
    scale = np.asarray(lev.scale_um, dtype=np.float64)
    origin = np.asarray(lev.translation[-3:], dtype=np.float64)
    shp = lev.shape[-3:]
    k = int(round((pos_um - origin[f]) / scale[f]))
    if not 0 <= k < shp[f]:
        return None
    # Pixel centres sit at origin + i*scale: the rectangle spans half a voxel beyond them.
    rect = QtCore.QRectF(
        origin[c] - scale[c] / 2, origin[r] - scale[r] / 2, shp[c] * scale[c], shp[r] * scale[r]
    )
    whole = CACHE.get(src, lev_i, t)
    if whole is not None:
        return np.take(whole, k, axis=f), rect
    region: list[slice] = []
    for ax, size in zip(src.axes, lev.shape, strict=True):
        if ax == "t":
            i = min(max(t, 0), size - 1)
            region.append(slice(i, i + 1))
        elif ax == "c":
            region.append(slice(0, 1))
        elif ax == "zyx"[f]:
            region.append(slice(k, k + 1))
        else:
            region.append(slice(None))
    arr = np.asarray(src.read(lev_i, tuple(region)))
    return arr.reshape(shp[r], shp[c]), rect


def _label_rgba(arr: npt.NDArray[Any], layer: Labels, selected: set[int]) -> npt.NDArray[np.uint8]:
    ids, inv = np.unique(arr, return_inverse=True)
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
            cols[j] = (255, 255, 255, min(255, alpha + 120))
    return cols[inv.reshape(arr.shape)]


class QtSliceView(pg.GraphicsLayoutWidget):  # type: ignore[misc]
    """One orthogonal slice (world µm coordinates) with overlays and the crosshair.

    Signals
    -------
    clicked(zyx, modifiers)
        A click without drag, as a world position on this slice.
    """

    clicked = QtCore.Signal(object, object)

    def __init__(self, session: ProofreadingSession, plane: Plane, parent: Any = None) -> None:
        super().__init__(parent)
        self.session = session
        self.plane = plane
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
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        self.labels: dict[str, pg.ImageItem] = {}
        self.track_lines = pg.PlotDataItem(connect="pairs", pen=pg.mkPen((255, 120, 60), width=1.5))
        self.track_nodes = pg.ScatterPlotItem(size=9, pxMode=True)
        self.markers = pg.ScatterPlotItem(size=10, pxMode=True, symbol="o")
        self.pending = pg.PlotDataItem(
            pen=pg.mkPen((255, 255, 80), width=2), symbol="+", symbolPen=(255, 255, 80)
        )
        for it in (self.track_lines, self.track_nodes, self.markers, self.pending):
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
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._redraw)
        self._press: QtCore.QPointF | None = None
        self.scene().sigMouseClicked.connect(self._on_click)
        s = session
        s.cursor_changed.connect(self.schedule)
        s.scene.events.current_time.connect(self.schedule)
        s.scene.selection.events.all.connect(self.schedule)
        s.pending_changed.connect(self.schedule_overlays)
        for lay in s.scene.layers:
            self.watch(lay)
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
        self._timer.start()

    def schedule_overlays(self, *_: object) -> None:
        self._need_overlays = True
        self._timer.start()

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

    def refresh(self, *_: object) -> None:
        """Re-read the slices at the cursor and redraw every overlay."""
        s = self.session
        r, c, f = slice_axes(self.plane)
        pos = s.cursor[f]
        self.title.setText(self._title_fmt.format(pos))
        img = s.image_layer
        rect = None
        if img is not None and img.data is not None:
            got = read_slice(img.data, self.plane, pos, s.time)
            if got is not None:
                arr, rect = got
                self.image.setImage(arr.astype(np.float32, copy=False), autoLevels=False)
                self.image.setRect(rect)
                lo, hi = img.contrast_limits or (float(arr.min()), float(arr.max()) or 1.0)
                self.image.setLevels((lo, hi))
                self.image.setVisible(img.visible)
                self.image.setOpacity(img.opacity)
            else:
                self.image.clear()
        sel = s.scene.selection
        for lay in s.labels_layers:
            item = self.labels.get(lay.name)
            if item is None:
                item = self.labels[lay.name] = pg.ImageItem(axisOrder="row-major")
                item.setZValue(5)
                self.view.addItem(item)
            got = read_slice(lay.data, self.plane, pos, s.time) if lay.data is not None else None
            if got is None or not lay.visible:
                item.setVisible(False)
                continue
            chosen = set(sel.label_ids) if sel.layer == lay.name else set()
            item.setImage(_label_rgba(got[0], lay, chosen), autoLevels=False)
            item.setRect(got[1])
            item.setVisible(True)
            rect = rect or got[1]
        if rect is not None and self._rect is None:
            self._rect = rect
            self.view.setRange(rect, padding=0.02)
        self.hline.setPos(s.cursor[r])
        self.vline.setPos(s.cursor[c])
        self.refresh_overlays()

    def _slab_um(self) -> float:
        """Half thickness of the slab whose tracks and markers are drawn on this slice."""
        img = self.session.image_layer
        if img is not None and img.data is not None:
            return float(max(img.data.levels[0].scale_um[self.fixed_axis] * 3, 1e-6))
        lo, hi = self.session.scene.extent_world()
        return float((hi - lo)[self.fixed_axis] / 20 or 1.0)

    def refresh_overlays(self, *_: object) -> None:
        s = self.session
        r, c, f = slice_axes(self.plane)
        pos, slab = s.cursor[f], self._slab_um()
        # tracks: nodes at the current time near the slice, tails up to it
        tl = s.scene.layers.get("tracks") if "tracks" in s.scene.layers.names else None
        if isinstance(tl, Tracks) and tl.data is not None and tl.visible and len(tl.data.node_ids):
            d = tl.data
            near = np.abs(d.zyx_um[:, f] - pos) <= slab
            now = near & (d.t == s.time)
            sel = set(s.scene.selection.node_ids)
            brushes = [
                pg.mkBrush(255, 255, 255) if int(n) in sel else pg.mkBrush(255, 120, 60)
                for n in d.node_ids[now]
            ]
            self.track_nodes.setData(
                x=d.zyx_um[now, c], y=d.zyx_um[now, r], brush=brushes, data=d.node_ids[now]
            )
            window = (d.t <= s.time) & (d.t >= s.time - tl.tail_length)
            if len(d.edges):
                idx = d.index_of(d.edges.reshape(-1)).reshape(-1, 2)
                keep = window[idx].all(axis=1) & near[idx].any(axis=1)
                seg = idx[keep].reshape(-1)
                self.track_lines.setData(x=d.zyx_um[seg, c], y=d.zyx_um[seg, r])
            else:
                self.track_lines.setData([], [])
        else:
            self.track_nodes.setData([], [])
            self.track_lines.setData([], [])
        # markers of the current time (or static) near the slice
        ann = s.annotations
        ms = [
            m
            for m in ann.markers
            if abs(m.position_um[f] - pos) <= slab and (m.t is None or m.t == s.time)
        ]
        pts_layer = s.scene.layers.get("markers")
        if ms and isinstance(pts_layer, Points) and pts_layer.visible:
            brushes = [
                pg.mkBrush(*[int(255 * v) for v in ann.class_color(m.class_name)]) for m in ms
            ]
            self.markers.setData(
                x=[m.position_um[c] for m in ms], y=[m.position_um[r] for m in ms], brush=brushes
            )
        else:
            self.markers.setData([], [])
        if s.pending and s.mode in MEASURE_POINTS:
            p = np.asarray(s.pending)
            self.pending.setData(x=p[:, c], y=p[:, r])
        else:
            self.pending.setData([], [])

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

    def _on_click(self, ev: Any) -> None:
        if ev.button() != QtCore.Qt.MouseButton.LeftButton:
            return
        if not self.view.sceneBoundingRect().contains(ev.scenePos()):
            return
        ev.accept()
        self.clicked.emit(self.world_at(ev.scenePos()), ev.modifiers())

    def pixel_size_um(self) -> float:
        """World µm per screen pixel (for pick tolerances)."""
        px = self.view.viewPixelSize()
        return float(max(px[0], px[1]))


def set_histogram_image(hist: pg.HistogramLUTWidget, image: Image, item: pg.ImageItem) -> None:
    """Bind a pyqtgraph histogram/LUT editor to a slice item and the 3D image's contrast."""
    hist.setImageItem(item)

    def changed(*_: Any) -> None:
        lo, hi = hist.getLevels()
        if np.isfinite(lo) and np.isfinite(hi) and hi > lo:
            image.contrast_limits = (float(lo), float(hi))

    hist.sigLevelChangeFinished.connect(changed)


def grab_array(widget: QtWidgets.QWidget) -> npt.NDArray[np.uint8]:
    """The widget as shown: (H, W, 3) uint8 RGB."""
    img = widget.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)
    w, h = img.width(), img.height()
    buf = np.frombuffer(img.constBits(), dtype=np.uint8, count=img.bytesPerLine() * h)
    return buf.reshape(h, img.bytesPerLine())[:, : 3 * w].reshape(h, w, 3).copy()
