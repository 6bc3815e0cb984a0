"""Dock panels: layers, time, features table + linked scatter plot, tracks, counting."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from viewer.scene import Image, Labels, Layer, Tracks

from ._session import ProofreadingSession
from ._workers import table_columns

__all__ = ["AnnotationPanel", "FeaturesPanel", "LayerPanel", "TimeBar", "TracksPanel"]

log = logging.getLogger(__name__)

COLORMAPS = ["gray", "magma", "viridis", "inferno", "cividis", "turbo", "tab20"]


class LayerPanel(QtWidgets.QWidget):
    """Layer list: visibility (check box), order (up/down), opacity and colour for the selected."""

    def __init__(self, session: ProofreadingSession, parent: Any = None) -> None:
        super().__init__(parent)
        self.session = session
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.list = QtWidgets.QListWidget()
        lay.addWidget(self.list, 1)
        row = QtWidgets.QHBoxLayout()
        self.up = QtWidgets.QPushButton("Up")
        self.down = QtWidgets.QPushButton("Down")
        row.addWidget(self.up)
        row.addWidget(self.down)
        lay.addLayout(row)
        form = QtWidgets.QFormLayout()
        self.opacity = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.colormap = QtWidgets.QComboBox()
        self.colormap.addItems(COLORMAPS)
        self.color = QtWidgets.QPushButton("Colour…")
        form.addRow("Opacity", self.opacity)
        form.addRow("Colormap", self.colormap)
        form.addRow("", self.color)
        lay.addLayout(form)
        self._updating = False
        self.list.itemChanged.connect(self._on_item)
        self.list.currentRowChanged.connect(self._on_current)
        self.opacity.valueChanged.connect(self._on_opacity)
        self.colormap.currentTextChanged.connect(self._on_colormap)
        self.color.clicked.connect(self._pick_color)
        self.up.clicked.connect(lambda: self._move(-1))
        self.down.clicked.connect(lambda: self._move(+1))
        layers = session.scene.layers
        layers.events.inserted.connect(self.rebuild)
        layers.events.removed.connect(self.rebuild)
        layers.events.moved.connect(self.rebuild)
        self.rebuild()

    def rebuild(self, *_: Any) -> None:
        self._updating = True
        cur = self.current()
        self.list.clear()
        # Top of the list = drawn last (on top), like napari.
        for lay in reversed(list(self.session.scene.layers)):
            it = QtWidgets.QListWidgetItem(f"{lay.name}  [{lay.kind}]")
            it.setFlags(it.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
            it.setCheckState(
                QtCore.Qt.CheckState.Checked if lay.visible else QtCore.Qt.CheckState.Unchecked
            )
            it.setData(QtCore.Qt.ItemDataRole.UserRole, lay.name)
            self.list.addItem(it)
            lay.events.visible.connect(self._sync_checks)
        self._updating = False
        if cur is not None:
            self.select(cur.name)

    def _sync_checks(self, *_: Any) -> None:
        self._updating = True
        for i in range(self.list.count()):
            it = self.list.item(i)
            lay = self.session.scene.layers.get(it.data(QtCore.Qt.ItemDataRole.UserRole))
            want = QtCore.Qt.CheckState.Checked if lay.visible else QtCore.Qt.CheckState.Unchecked
            if it.checkState() != want:
                it.setCheckState(want)
        self._updating = False

    def current(self) -> Layer | None:
        it = self.list.currentItem()
        if it is None:
            return None
        return self.session.scene.layers.get(it.data(QtCore.Qt.ItemDataRole.UserRole))

    def select(self, name: str) -> None:
        for i in range(self.list.count()):
            if self.list.item(i).data(QtCore.Qt.ItemDataRole.UserRole) == name:
                self.list.setCurrentRow(i)
                return

    def _on_item(self, it: QtWidgets.QListWidgetItem) -> None:
        if self._updating:
            return
        lay = self.session.scene.layers.get(it.data(QtCore.Qt.ItemDataRole.UserRole))
        lay.visible = it.checkState() == QtCore.Qt.CheckState.Checked

    def _on_current(self, *_: Any) -> None:
        lay = self.current()
        if lay is None:
            return
        self._updating = True
        self.opacity.setValue(int(round(lay.opacity * 100)))
        cmap = getattr(lay, "colormap", None)
        self.colormap.setEnabled(cmap is not None)
        if cmap is not None:
            if self.colormap.findText(cmap) < 0:
                self.colormap.addItem(cmap)
            self.colormap.setCurrentText(cmap)
        self.color.setEnabled(hasattr(lay, "fixed_color") or hasattr(lay, "color"))
        self._updating = False

    def _on_opacity(self, v: int) -> None:
        lay = self.current()
        if lay is not None and not self._updating:
            lay.opacity = v / 100.0

    def _on_colormap(self, name: str) -> None:
        lay = self.current()
        if lay is not None and not self._updating and hasattr(lay, "colormap"):
            lay.colormap = name

    def _pick_color(self) -> None:
        lay = self.current()
        if lay is None:
            return
        c = QtWidgets.QColorDialog.getColor(parent=self)
        if not c.isValid():
            return
        rgb = (c.redF(), c.greenF(), c.blueF())
        if isinstance(lay, (Labels, Tracks)):
            lay.update({"fixed_color": rgb, "color_mode": "fixed"})
        elif hasattr(lay, "color"):
            lay.color = rgb

    def _move(self, step: int) -> None:
        lay = self.current()
        if lay is None:
            return
        layers = self.session.scene.layers
        i = layers.index(lay)
        # The list shows the top layer first, so "up" means later in drawing order.
        j = i - step
        if 0 <= j < len(layers):
            layers.move(i, j if j < i else j + 1)
            self.select(lay.name)


class TimeBar(QtWidgets.QWidget):
    """Time slider, play/pause and the current frame."""

    def __init__(self, session: ProofreadingSession, parent: Any = None) -> None:
        super().__init__(parent)
        self.session = session
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        self.play = QtWidgets.QPushButton("Play")
        self.play.setCheckable(True)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.label = QtWidgets.QLabel()
        lay.addWidget(QtWidgets.QLabel("t"))
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.label)
        lay.addWidget(self.play)
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(250)
        self.timer.timeout.connect(self._tick)
        self.play.toggled.connect(lambda on: self.timer.start() if on else self.timer.stop())
        self.slider.valueChanged.connect(session.set_time)
        session.scene.events.current_time.connect(self._on_time)
        session.edited.connect(self.update_range)
        self.update_range()

    def update_range(self, *_: Any) -> None:
        lo, hi = self.session.time_range()
        self.slider.blockSignals(True)
        self.slider.setRange(lo, hi)
        self.slider.setValue(self.session.time)
        self.slider.blockSignals(False)
        self.label.setText(f"{self.session.time} / {hi}")
        self.setEnabled(hi > lo)

    def _on_time(self, *_: Any) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(self.session.time)
        self.slider.blockSignals(False)
        self.label.setText(f"{self.session.time} / {self.slider.maximum()}")

    def _tick(self) -> None:
        lo, hi = self.session.time_range()
        t = self.session.time + 1
        self.session.set_time(lo if t > hi else t)


class _TableModel(QtCore.QAbstractTableModel):
    def __init__(self, table: Any) -> None:
        super().__init__()
        self.table = table

    def rowCount(self, parent: Any = None) -> int:
        return len(self.table)

    def columnCount(self, parent: Any = None) -> int:
        return len(self.table.columns)

    def data(self, index: Any, role: int = 0) -> Any:
        if role != QtCore.Qt.ItemDataRole.DisplayRole or not index.isValid():
            return None
        v = self.table.iat[index.row(), index.column()]
        return f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v)

    def headerData(self, section: int, orientation: Any, role: int = 0) -> Any:
        if role != QtCore.Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == QtCore.Qt.Orientation.Horizontal:
            return str(self.table.columns[section])
        return str(section)


class FeaturesPanel(QtWidgets.QWidget):
    """Per-object features: a table and a scatter plot, linked to the 3D selection.

    Dragging the plot's selection rectangle (or clicking a point, or selecting
    table rows) selects those objects in the scene; a scene selection made
    elsewhere highlights them here. "Colour by" paints the labels by a column.
    """

    def __init__(self, session: ProofreadingSession, parent: Any = None) -> None:
        super().__init__(parent)
        self.session = session
        self.table: Any = None
        self.layer_name: str | None = None
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        row = QtWidgets.QHBoxLayout()
        self.xcol, self.ycol, self.colorby = (QtWidgets.QComboBox() for _ in range(3))
        for lbl, w in (("x", self.xcol), ("y", self.ycol), ("colour by", self.colorby)):
            row.addWidget(QtWidgets.QLabel(lbl))
            row.addWidget(w, 1)
        lay.addLayout(row)
        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(160)
        self.scatter = pg.ScatterPlotItem(size=7, pen=None)
        self.plot.addItem(self.scatter)
        self.roi = pg.RectROI([0, 0], [1, 1], pen=pg.mkPen((255, 220, 0), width=1.5))
        self.roi.setVisible(False)
        self.plot.addItem(self.roi)
        lay.addWidget(self.plot, 2)
        self.view = QtWidgets.QTableView()
        self.view.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        lay.addWidget(self.view, 2)
        self._x = self._y = np.zeros(0)
        self._labels = np.zeros(0, np.int64)
        self._syncing = False
        self.xcol.currentTextChanged.connect(self._replot)
        self.ycol.currentTextChanged.connect(self._replot)
        self.colorby.currentTextChanged.connect(self._color_by)
        self.roi.sigRegionChangeFinished.connect(self._select_in_roi)
        self.scatter.sigClicked.connect(self._on_point)
        session.scene.selection.events.all.connect(self._on_selection)

    def set_table(self, layer: str, table: Any) -> None:
        """Show ``table`` (one row per object, a ``label`` column) of labels layer ``layer``."""
        self.layer_name, self.table = layer, table.reset_index(drop=True)
        self.view.setModel(_TableModel(self.table))
        self.view.selectionModel().selectionChanged.connect(self._on_rows)
        cols = table_columns(self.table)
        self._syncing = True
        for cb in (self.xcol, self.ycol):
            cb.clear()
            cb.addItems(cols)
        self.colorby.clear()
        self.colorby.addItems(["(id)", *cols])
        if "volume_um3" in cols:
            self.xcol.setCurrentText("volume_um3")
        if "sphericity" in cols:
            self.ycol.setCurrentText("sphericity")
        elif len(cols) > 1:
            self.ycol.setCurrentIndex(1)
        self._syncing = False
        self._replot()

    def _replot(self, *_: Any) -> None:
        if self.table is None or self._syncing or not self.xcol.currentText():
            return
        t = self.table
        self._x = t[self.xcol.currentText()].to_numpy(np.float64)
        self._y = t[self.ycol.currentText()].to_numpy(np.float64)
        self._labels = t["label"].to_numpy(np.int64)
        self.plot.setLabel("bottom", self.xcol.currentText())
        self.plot.setLabel("left", self.ycol.currentText())
        self._paint()
        ok = np.isfinite(self._x) & np.isfinite(self._y)
        if ok.any():
            x0, x1 = self._x[ok].min(), self._x[ok].max()
            y0, y1 = self._y[ok].min(), self._y[ok].max()
            self.plot.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0.05)
            w, h = (x1 - x0) or 1.0, (y1 - y0) or 1.0
            self.roi.blockSignals(True)
            self.roi.setPos((x0 + 0.6 * w, y0 + 0.6 * h))
            self.roi.setSize((0.4 * w, 0.4 * h))
            self.roi.blockSignals(False)
            self.roi.setVisible(True)

    def _paint(self) -> None:
        sel = self.session.scene.selection
        chosen = set(sel.label_ids) if sel.layer == self.layer_name else set()
        brushes = [
            pg.mkBrush(255, 220, 0) if int(i) in chosen else pg.mkBrush(120, 170, 255, 160)
            for i in self._labels
        ]
        self.scatter.setData(x=self._x, y=self._y, data=self._labels, brush=brushes)

    def select_rect(self, x0: float, y0: float, x1: float, y1: float) -> list[int]:
        """Select the objects whose points lie in the rectangle (plot units)."""
        inside = (self._x >= x0) & (self._x <= x1) & (self._y >= y0) & (self._y <= y1)
        ids = [int(i) for i in self._labels[inside]]
        if self.layer_name is not None:
            self.session.select_labels(self.layer_name, ids)
        return ids

    def _select_in_roi(self, *_: Any) -> None:
        x0, y0 = self.roi.pos()
        w, h = self.roi.size()
        self.select_rect(x0, y0, x0 + w, y0 + h)

    def _on_point(self, item: Any, points: Any, ev: Any = None) -> None:
        if self.layer_name is not None and len(points):
            self.session.select_labels(self.layer_name, [int(points[0].data())])

    def _on_rows(self, *_: Any) -> None:
        if self._syncing or self.table is None or self.layer_name is None:
            return
        rows = sorted({i.row() for i in self.view.selectionModel().selectedRows()})
        self.session.select_labels(self.layer_name, [int(self.table["label"].iat[r]) for r in rows])

    def _on_selection(self, *_: Any) -> None:
        if self.table is None:
            return
        self._paint()
        sel = self.session.scene.selection
        if sel.layer != self.layer_name:
            return
        self._syncing = True
        sm = self.view.selectionModel()
        sm.clearSelection()
        wanted = set(sel.label_ids)
        flags = (
            QtCore.QItemSelectionModel.SelectionFlag.Select
            | QtCore.QItemSelectionModel.SelectionFlag.Rows
        )
        for r, lab in enumerate(self.table["label"].tolist()):
            if int(lab) in wanted:
                sm.select(self.view.model().index(r, 0), flags)
        self._syncing = False

    def _color_by(self, col: str) -> None:
        if self._syncing or self.table is None or self.layer_name is None or not col:
            return
        lay = self.session.scene.layers.get(self.layer_name)
        if not isinstance(lay, Labels):
            return
        if col == "(id)":
            lay.color_mode = "id"
            return
        vals = dict(
            zip(self.table["label"].astype(int), self.table[col].astype(float), strict=True)
        )
        with self.session.scene_lock:
            lay.set_feature(col, {k: v for k, v in vals.items() if np.isfinite(v)})
            lay.update({"feature": col, "color_mode": "feature"})


class TracksPanel(QtWidgets.QWidget):
    """Tracklets filtered by status; double-click jumps to a track's start."""

    def __init__(self, session: ProofreadingSession, parent: Any = None) -> None:
        super().__init__(parent)
        self.session = session
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.filter = QtWidgets.QComboBox()
        self.filter.addItems(["all", "unreviewed", "reviewed"])
        lay.addWidget(self.filter)
        self.table = QtWidgets.QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["track", "start", "end", "nodes", "reviewed"])
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        lay.addWidget(self.table, 1)
        self.filter.currentTextChanged.connect(self.rebuild)
        self.table.cellDoubleClicked.connect(self._jump)
        session.edited.connect(self.rebuild)
        self._rows: list[dict[str, Any]] = []
        self.rebuild()

    def rebuild(self, *_: Any) -> None:
        f = self.filter.currentText()
        rows = self.session.track_table()
        if f != "all":
            rows = [r for r in rows if r["reviewed"] == (f == "reviewed")]
        self._rows = rows
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            for j, k in enumerate(("track", "start", "end", "nodes", "reviewed")):
                self.table.setItem(i, j, QtWidgets.QTableWidgetItem(str(r[k])))

    def _jump(self, row: int, _col: int) -> None:
        r = self._rows[row]
        self.session.select_node(r["first"])
        self.session.set_time(r["start"])


class AnnotationPanel(QtWidgets.QWidget):
    """Counting classes with live counts, and the list of measurements."""

    def __init__(self, session: ProofreadingSession, parent: Any = None) -> None:
        super().__init__(parent)
        self.session = session
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        row = QtWidgets.QHBoxLayout()
        self.classes = QtWidgets.QComboBox()
        self.new_class = QtWidgets.QLineEdit()
        self.new_class.setPlaceholderText("new class")
        self.add = QtWidgets.QPushButton("Add")
        row.addWidget(self.classes, 1)
        row.addWidget(self.new_class, 1)
        row.addWidget(self.add)
        lay.addLayout(row)
        self.counts = QtWidgets.QLabel()
        self.counts.setTextFormat(QtCore.Qt.TextFormat.RichText)
        lay.addWidget(self.counts)
        self.measurements = QtWidgets.QListWidget()
        lay.addWidget(self.measurements, 1)
        self.add.clicked.connect(self._add_class)
        self.new_class.returnPressed.connect(self._add_class)
        self.classes.currentTextChanged.connect(self._on_class)
        ann = session.annotations
        session.edited.connect(self.rebuild)
        ann.events.counts.connect(self.rebuild)
        self.rebuild()

    def rebuild(self, *_: Any) -> None:
        s = self.session
        ann = s.annotations
        names = [c.name for c in ann.classes]
        if s.current_class not in names:
            names.append(s.current_class)
        self.classes.blockSignals(True)
        self.classes.clear()
        for n in names:
            pix = QtGui.QPixmap(12, 12)
            pix.fill(QtGui.QColor.fromRgbF(*ann.class_color(n)))
            self.classes.addItem(QtGui.QIcon(pix), n)
        self.classes.setCurrentText(s.current_class)
        self.classes.blockSignals(False)
        counts = ann.counts()
        parts = []
        for n, k in counts.items():
            r, g, b = (int(255 * v) for v in ann.class_color(n))
            parts.append(f"<span style='color:rgb({r},{g},{b})'>&#9679;</span> {n}: <b>{k}</b>")
        self.counts.setText("  ".join(parts) or "no markers")
        self.measurements.clear()
        for m in ann.measurements:
            unit = "°" if m.kind == "angle" else " µm"
            self.measurements.addItem(f"#{m.id} {m.kind}: {m.value:.3f}{unit}")

    def _add_class(self) -> None:
        name = self.new_class.text().strip()
        if name:
            self.session.define_class(name)
            self.new_class.clear()
            self.rebuild()

    def _on_class(self, name: str) -> None:
        if name:
            self.session.current_class = name


def is_image(layer: Layer) -> bool:
    return isinstance(layer, Image)
