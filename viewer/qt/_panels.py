"""Dock panels: layers, time, features table + linked scatter plot, tracks, counting."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from viewer.actions import (
    ACTIONS,
    RENDERING_MODES,
    Pick,
    rename_class,
    set_display,
    suspicious_tracklets,
)
from viewer.scene import Image, Labels, Layer, Tracks

from ._session import ProofreadingSession
from ._workers import table_columns

__all__ = [
    "AnnotationPanel",
    "ClippingPanel",
    "FeaturesPanel",
    "LayerPanel",
    "TimeBar",
    "TracksPanel",
]

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
        self.form = form
        self.opacity = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.colormap = QtWidgets.QComboBox()
        self.colormap.addItems(COLORMAPS)
        self.color = QtWidgets.QPushButton("Colour…")
        # Image display (issue 18.8): the contrast limits are the histogram's; these apply
        # to the slices and the 3D volume alike (the rendering mode to 3D only).
        self.gamma = QtWidgets.QDoubleSpinBox()
        self.gamma.setObjectName("gamma")
        self.gamma.setRange(0.1, 5.0)
        self.gamma.setSingleStep(0.1)
        self.gamma.setDecimals(2)
        self.gamma.setToolTip("gamma of the grey ramp: > 1 darkens the mid-tones")
        # Two: EM is shown as acquired on the slices, but inverted in 3D by default (the
        # dark membranes opaque and bright, the resin transparent).
        self.slice_invert = QtWidgets.QCheckBox("slices")
        self.slice_invert.setObjectName("slice_invert")
        self.slice_invert.setToolTip("invert the grey values on the 2D slices")
        self.invert = QtWidgets.QCheckBox("3D")
        self.invert.setObjectName("invert")
        self.invert.setToolTip(
            "invert the grey values of the 3D volume (what is bright is opaque there)"
        )
        inverts = QtWidgets.QWidget()
        row_inv = QtWidgets.QHBoxLayout(inverts)
        row_inv.setContentsMargins(0, 0, 0, 0)
        row_inv.addWidget(self.slice_invert)
        row_inv.addWidget(self.invert)
        row_inv.addStretch(1)
        self.rendering = QtWidgets.QComboBox()
        self.rendering.setObjectName("rendering")
        for mode, text in zip(
            RENDERING_MODES, ("Composite", "Maximum intensity", "Isosurface"), strict=True
        ):
            self.rendering.addItem(text, mode)
        self.rendering.setToolTip(ACTIONS["image.next_rendering"].description)
        self.iso = QtWidgets.QDoubleSpinBox()
        self.iso.setObjectName("iso")
        self.iso.setDecimals(1)
        self.iso.setRange(-1e12, 1e12)
        self.iso.setKeyboardTracking(False)
        self.iso.setToolTip("data value of the isosurface (3D, isosurface mode)")
        form.addRow("Opacity", self.opacity)
        form.addRow("Colormap", self.colormap)
        form.addRow("", self.color)
        form.addRow("Gamma", self.gamma)
        form.addRow("Invert", inverts)
        form.addRow("3D rendering", self.rendering)
        form.addRow("Iso threshold", self.iso)
        for box in (self.gamma, self.iso):
            box.installEventFilter(self)
        self._image_rows = (self.gamma, self.slice_invert, self.invert, self.rendering, self.iso)
        # Nothing chosen yet: neutral values, nothing to change.
        self.gamma.setValue(1.0)
        for w in (self.opacity, self.colormap, self.color, *self._image_rows):
            w.setEnabled(False)
        lay.addLayout(form)
        self._updating = False
        self.list.itemChanged.connect(self._on_item)
        self.list.currentRowChanged.connect(self._on_current)
        self.opacity.valueChanged.connect(self._on_opacity)
        self.colormap.currentTextChanged.connect(self._on_colormap)
        self.color.clicked.connect(self._pick_color)
        self.gamma.valueChanged.connect(lambda v: self._display(gamma=float(v)))
        self.invert.toggled.connect(lambda on: self._display(invert=bool(on)))
        self.slice_invert.toggled.connect(lambda on: self._display(slice_invert=bool(on)))
        self.rendering.currentIndexChanged.connect(
            lambda i: self._display(rendering=self.rendering.itemData(i))
        )
        # Enter also fixes the shown default (the middle of the contrast limits).
        self.iso.editingFinished.connect(
            lambda: self._display(iso_threshold=float(self.iso.value()))
        )
        self.up.clicked.connect(lambda: self._move(-1))
        self.down.clicked.connect(lambda: self._move(+1))
        layers = session.scene.layers
        layers.events.inserted.connect(self.rebuild)
        layers.events.removed.connect(self.rebuild)
        layers.events.moved.connect(self.rebuild)
        self.rebuild()

    def eventFilter(self, obj: Any, ev: QtCore.QEvent) -> bool:
        """Return in a number box commits it (the window's Return shortcut must not take it)."""
        if (
            obj in (self.gamma, self.iso)
            and ev.type() == QtCore.QEvent.Type.ShortcutOverride
            and ev.key() in (QtCore.Qt.Key.Key_Return, QtCore.Qt.Key.Key_Enter)  # type: ignore[attr-defined]
        ):
            ev.accept()
            return True
        return bool(super().eventFilter(obj, ev))

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
        self.opacity.setEnabled(True)
        self.opacity.setValue(int(round(lay.opacity * 100)))
        # An image's opacity is its 3D volume's: slices always show the EM in full.
        label = self.form.labelForField(self.opacity)
        if isinstance(label, QtWidgets.QLabel):
            label.setText("3D opacity" if isinstance(lay, Image) else "Opacity")
        cmap = getattr(lay, "colormap", None)
        self.colormap.setEnabled(cmap is not None)
        if cmap is not None:
            if self.colormap.findText(cmap) < 0:
                self.colormap.addItem(cmap)
            self.colormap.setCurrentText(cmap)
        self.color.setEnabled(hasattr(lay, "fixed_color") or hasattr(lay, "color"))
        for w in self._image_rows:
            w.setEnabled(isinstance(lay, Image))
        if isinstance(lay, Image):
            self._sync_image(lay)
        self._updating = False

    def _sync_image(self, lay: Image) -> None:
        self.gamma.setValue(lay.gamma)
        self.invert.setChecked(lay.invert)
        self.slice_invert.setChecked(lay.slice_invert)
        self.rendering.setCurrentIndex(RENDERING_MODES.index(lay.rendering))
        lo, hi = lay.contrast_limits or (0.0, 1.0)
        self.iso.setValue(lay.iso_threshold if lay.iso_threshold is not None else (lo + hi) / 2)
        self.iso.setEnabled(lay.rendering == "isosurface")

    def _display(self, **changes: Any) -> None:
        """Set display fields of the current layer through the actions layer."""
        lay = self.current()
        if lay is None or self._updating:
            return
        try:
            set_display(self.session, lay.name, **changes)
        except ValueError as exc:  # ParameterError: refused, said in the status bar
            self.session.message.emit(f"display: {exc}")
        if isinstance(lay, Image):
            self._updating = True
            self._sync_image(lay)
            self._updating = False

    def _on_opacity(self, v: int) -> None:
        self._display(opacity=v / 100.0)

    def _on_colormap(self, name: str) -> None:
        lay = self.current()
        if lay is not None and hasattr(lay, "colormap"):
            self._display(colormap=name)

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
        #: Whether the views show the current time point yet; Play steps on only then
        #: (never past an image still loading; slow reads slow playback down).
        self.ready: Callable[[], bool] = lambda: True
        self.play.setObjectName("play")
        self.play.toggled.connect(self._on_play)
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

    def _on_play(self, on: bool) -> None:
        """Play becomes Pause while playing (and back)."""
        self.play.setText("Pause" if on else "Play")
        if on:
            self.timer.start()
        else:
            self.timer.stop()

    def _tick(self) -> None:
        if not self.ready():
            return
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
        for side in ("bottom", "left"):
            # Columns carry their unit (µm, µm³): no SI rescaling such as "(x0.001)".
            self.plot.getAxis(side).enableAutoSIPrefix(False)
        self.scatter = pg.ScatterPlotItem(size=7, pen=None)
        self.plot.addItem(self.scatter)
        self.roi = pg.RectROI([0, 0], [1, 1], pen=pg.mkPen((255, 220, 0), width=1.5))
        self.roi.setVisible(False)
        self.plot.addItem(self.roi)
        lay.addWidget(self.plot, 2)
        self.view = QtWidgets.QTableView()
        self.view.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        lay.addWidget(self.view, 2)
        # Object classification: label a few objects, train, apply to all (``class`` column).
        crow = QtWidgets.QHBoxLayout()
        self.object_class = QtWidgets.QComboBox()
        self.object_class.setEditable(True)
        self.object_class.setInsertPolicy(QtWidgets.QComboBox.InsertPolicy.NoInsert)
        edit = self.object_class.lineEdit()
        assert edit is not None
        edit.setPlaceholderText("object class")
        self.assign = QtWidgets.QPushButton("Assign to selected")
        self.train = QtWidgets.QPushButton("Train + apply")
        self.examples = QtWidgets.QLabel()
        crow.addWidget(self.object_class, 1)
        crow.addWidget(self.assign)
        crow.addWidget(self.train)
        lay.addLayout(crow)
        lay.addWidget(self.examples)
        #: What the colours of *colour by* mean: one dot per class, or the colormap's ends.
        self.legend = QtWidgets.QLabel()
        self.legend.setObjectName("legend")
        self.legend.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.legend.setWordWrap(True)
        lay.addWidget(self.legend)
        self.assign.clicked.connect(self._assign)
        session.edited.connect(self._update_examples)
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
        self.colorby.addItems(["(id)", *cols, *(["class"] if "class" in self.table else [])])
        if "volume_um3" in cols:
            self.xcol.setCurrentText("volume_um3")
        if "sphericity" in cols:
            self.ycol.setCurrentText("sphericity")
        elif len(cols) > 1:
            self.ycol.setCurrentIndex(1)
        self._syncing = False
        self._replot()
        self._update_examples()

    def _update_examples(self, *_: Any) -> None:
        """Show how many objects carry each class, and offer the class names known so far."""
        if self.layer_name is None:
            self.examples.setText("")
            return
        ex = self.session.object_examples(self.layer_name)
        names = sorted(set(ex.values()) | {c.name for c in self.session.annotations.classes})
        known = [self.object_class.itemText(i) for i in range(self.object_class.count())]
        if names != known:
            cur = self.object_class.currentText()
            self.object_class.blockSignals(True)
            self.object_class.clear()
            self.object_class.addItems(names)
            self.object_class.setCurrentText(cur)
            self.object_class.blockSignals(False)
        counts: dict[str, int] = {}
        for v in ex.values():
            counts[v] = counts.get(v, 0) + 1
        parts = [f"{k}: {n}" for k, n in sorted(counts.items())]
        self.examples.setText(
            "labelled: " + (", ".join(parts) if parts else "none (select objects, Assign)")
        )

    def _assign(self) -> None:
        name = self.object_class.currentText().strip()
        if not name:
            self.session.message.emit("classify: type or choose a class name first")
            return
        self.session.classify_selected(name)

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
        first = None
        for r, lab in enumerate(self.table["label"].tolist()):
            if int(lab) in wanted:
                sm.select(self.view.model().index(r, 0), flags)
                first = r if first is None else first
        if first is not None:  # the selected object's row comes into view
            self.view.scrollTo(self.view.model().index(first, 0))
        self._syncing = False

    def _color_by(self, col: str) -> None:
        if self._syncing or self.table is None or self.layer_name is None or not col:
            return
        lay = self.session.scene.layers.get(self.layer_name)
        if not isinstance(lay, Labels):
            return
        if col == "(id)":
            lay.color_mode = "id"
            self.legend.setText("colour: object id")
            return
        values = self.table[col]
        upd: dict[str, Any] = {"feature": col, "color_mode": "feature"}
        names: list[str] = []
        if not np.issubdtype(np.asarray(values).dtype, np.number):
            # Categories (the ``class`` column): category i gets tab10's colour i.
            names = sorted({str(v) for v in values})
            values = values.map(lambda v: float(names.index(str(v))))
            upd["colormap"] = "tab10" if len(names) <= 10 else "tab20"
            upd["feature_limits"] = (0.0, 9.0) if len(names) <= 10 else None
        elif getattr(lay, "feature_limits", None) is not None:
            upd["feature_limits"] = None
        vals = dict(zip(self.table["label"].astype(int), values.astype(float), strict=True))
        finite = {k: v for k, v in vals.items() if np.isfinite(v)}
        with self.session.scene_lock:
            lay.set_feature(col, finite)
            lay.update(upd)
        self.legend.setText(_legend(col, names, finite, lay.colormap, lay.feature_limits))


def _legend(
    col: str,
    names: list[str],
    values: dict[int, float],
    colormap: str,
    limits: tuple[float, float] | None,
) -> str:
    """Rich text: a coloured dot per category, or the colormap at the values' min, mid, max."""
    from viewer.render import values_to_colors

    def dot(v: float) -> str:
        vs = list(values.values()) or [v]
        lim = limits if limits is not None else (min(vs), max(vs))
        r, g, b = (int(255 * c) for c in values_to_colors([0], {0: v}, colormap, lim)[0])
        return f"<span style='color:rgb({r},{g},{b})'>&#9679;</span>"

    if names:
        return f"{col}: " + "  ".join(f"{dot(float(i))} {n}" for i, n in enumerate(names))
    if not values:
        return f"{col}: no values"
    lo, hi = min(values.values()), max(values.values())
    return f"{col}: {lo:g} {dot(lo)}{dot((lo + hi) / 2)}{dot(hi)} {hi:g}"


class _TrackModel(QtCore.QAbstractTableModel):
    """The tracklet rows as a virtual table: the view asks only for the rows it shows."""

    COLUMNS = ("track", "start", "end", "nodes", "reviewed", "issues")

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def rowCount(self, parent: Any = None) -> int:
        return len(self.rows)

    def columnCount(self, parent: Any = None) -> int:
        return len(self.COLUMNS)

    def data(self, index: Any, role: int = 0) -> Any:
        if role != QtCore.Qt.ItemDataRole.DisplayRole or not index.isValid():
            return None
        return str(self.rows[index.row()].get(self.COLUMNS[index.column()], ""))

    def sort(self, column: int, order: Any = QtCore.Qt.SortOrder.AscendingOrder) -> None:
        """Sort the rows by a column (a click on its header)."""
        if not 0 <= column < len(self.COLUMNS):
            return
        key = self.COLUMNS[column]
        self.layoutAboutToBeChanged.emit()
        self.rows.sort(
            key=lambda r: (r.get(key, ""), r["track"]),
            reverse=order == QtCore.Qt.SortOrder.DescendingOrder,
        )
        self.layoutChanged.emit()

    def headerData(self, section: int, orientation: Any, role: int = 0) -> Any:
        if role != QtCore.Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == QtCore.Qt.Orientation.Horizontal:
            return self.COLUMNS[section]
        return str(section + 1)


class TracksPanel(QtWidgets.QWidget):
    """Tracklets filtered by status; a click selects a track, double-click or Enter shows it.

    Showing a track goes to its start and centres every view there (the registered
    ``tracks.show``).

    The rows come from the session's incrementally kept tracklet table, shown
    through a virtual model, so an edit on a lineage of a million nodes does not
    rebuild tens of thousands of table items. A right click on a row offers the
    registered track actions (``viewer.actions``) on that track (Ctrl: as the
    second track, for merge and swap), each enabled by its own condition.

    Attributes
    ----------
    context_menu : QMenu or None
        The menu the last right click opened.
    """

    #: The registered actions the context menu offers, in this order.
    CONTEXT_ACTIONS = (
        "tracks.cut",
        "tracks.merge",
        "tracks.swap",
        "tracks.delete",
        "tracks.mark_reviewed",
    )

    def __init__(self, session: ProofreadingSession, parent: Any = None) -> None:
        super().__init__(parent)
        self.session = session
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.filter = QtWidgets.QComboBox()
        self.filter.addItems(["all", "unreviewed", "reviewed", "suspicious"])
        self.filter.setToolTip(
            "suspicious: short tracklets, gaps in time, ends before the last frame, "
            "large jumps, divisions too close in time (Shift+N visits them)"
        )
        lay.addWidget(self.filter)
        self.model = _TrackModel()
        self.table = QtWidgets.QTableView()
        self.table.setModel(self.model)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        lay.addWidget(self.table, 1)
        self.table.setSortingEnabled(True)
        # Narrow number columns; the issues take the rest.
        self.table.horizontalHeader().setDefaultSectionSize(52)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setSortIndicatorShown(True)
        self.table.horizontalHeader().setSortIndicator(-1, QtCore.Qt.SortOrder.AscendingOrder)
        self.filter.currentTextChanged.connect(self.rebuild)
        self.table.clicked.connect(lambda idx: self._select_row(idx.row()))
        self.table.doubleClicked.connect(lambda idx: self._jump(idx.row(), idx.column()))
        self.table.installEventFilter(self)
        self.table.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.context_menu: QtWidgets.QMenu | None = None
        session.edited.connect(self.rebuild)
        session.scene.selection.events.all.connect(self._on_selection)
        self.rebuild()

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The rows shown (after the status filter)."""
        return self.model.rows

    #: Above this many nodes the triage runs only while the "suspicious" filter is on
    #: (it is O(nodes) per edit).
    TRIAGE_ALWAYS_NODES = 100_000

    def rebuild(self, *_: Any) -> None:
        f = self.filter.currentText()
        rows = self.session.track_rows()
        g = self.session.tracks
        if g is not None and (f == "suspicious" or g.n_nodes <= self.TRIAGE_ALWAYS_NODES):
            sus = suspicious_tracklets(g, self.session.time_range()[1])
            rows = [dict(r, issues=", ".join(sus.get(r["track"], ()))) for r in rows]
        if f == "suspicious":
            rows = [r for r in rows if r.get("issues")]
        elif f != "all":
            rows = [r for r in rows if r["reviewed"] == (f == "reviewed")]
        self.model.set_rows(rows)
        hdr = self.table.horizontalHeader()
        if hdr.sortIndicatorSection() >= 0:
            self.model.sort(hdr.sortIndicatorSection(), hdr.sortIndicatorOrder())

    def _on_selection(self, *_: Any) -> None:
        """The selected track's row becomes current and comes into view."""
        g = self.session.tracks
        ids = [n for n in self.session.scene.selection.node_ids if g is not None and n in g]
        if g is None or not ids:
            return
        first = int(g.tracklet(int(ids[-1]))[0])
        for r, row in enumerate(self.model.rows):
            if row["first"] == first:
                idx = self.model.index(r, 0)
                if self.table.currentIndex().row() != r:
                    self.table.setCurrentIndex(idx)
                self.table.scrollTo(idx)
                return

    def _select_row(self, row: int) -> None:
        if 0 <= row < len(self.model.rows):
            self.session.select_node(self.model.rows[row]["first"])

    def _jump(self, row: int, _col: int) -> None:
        if not 0 <= row < len(self.model.rows):
            return
        r = self.model.rows[row]
        self.session.select_node(r["first"])
        self.session.set_time(r["start"])
        self.session.run("tracks.show")

    def eventFilter(self, obj: Any, ev: QtCore.QEvent) -> bool:
        """Enter on a row shows its track (before the window's Return shortcut takes it)."""
        if obj is self.table and ev.type() in (
            QtCore.QEvent.Type.ShortcutOverride,
            QtCore.QEvent.Type.KeyPress,
        ):
            k = ev.key()  # type: ignore[attr-defined]
            if k in (QtCore.Qt.Key.Key_Return, QtCore.Qt.Key.Key_Enter):
                ev.accept()
                if ev.type() == QtCore.QEvent.Type.KeyPress:
                    self._jump(self.table.currentIndex().row(), 0)
                return True
        return bool(super().eventFilter(obj, ev))

    def _context_menu(self, pos: QtCore.QPoint) -> None:
        idx = self.table.indexAt(pos)
        if not idx.isValid():
            return
        add = bool(
            QtWidgets.QApplication.keyboardModifiers() & QtCore.Qt.KeyboardModifier.ControlModifier
        )
        s = self.session
        s.select_node(self.model.rows[idx.row()]["first"], add=add)
        menu = QtWidgets.QMenu(self)
        for aid in self.CONTEXT_ACTIONS:
            action = ACTIONS[aid]
            qa = menu.addAction(action.title)
            why = action.why_disabled(s)
            qa.setEnabled(why is None)
            qa.setToolTip(why or action.description)
            qa.setObjectName(aid)
            qa.triggered.connect(lambda *_, i=aid: s.run(i))
        self.context_menu = menu
        menu.popup(self.table.viewport().mapToGlobal(pos))


class ClippingPanel(QtWidgets.QWidget):
    """Clipping planes: add (axis presets, facing the view, or free), remove, orient, move.

    The slider moves the selected plane along its normal across the scene (drag
    it, or drag the plane's line in a slice view); azimuth and elevation turn its
    normal freely. Planes are scene state: they cut the 3D view (and what the
    streaming loads) and are saved with the project's ``scene.json``.
    """

    STEPS = 1000

    def __init__(self, session: ProofreadingSession, parent: Any = None) -> None:
        super().__init__(parent)
        self.session = session
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        row = QtWidgets.QHBoxLayout()
        self.preset = QtWidgets.QComboBox()
        self.preset.addItems([*session.clipping.PRESETS, "view"])
        self.add = QtWidgets.QPushButton("Add")
        self.remove = QtWidgets.QPushButton("Remove")
        row.addWidget(self.preset, 1)
        row.addWidget(self.add)
        row.addWidget(self.remove)
        lay.addLayout(row)
        self.list = QtWidgets.QListWidget()
        self.list.setMaximumHeight(110)
        lay.addWidget(self.list)
        form = QtWidgets.QFormLayout()
        self.position = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.position.setRange(0, self.STEPS)
        self.azimuth = QtWidgets.QDoubleSpinBox()
        self.azimuth.setRange(-180.0, 180.0)
        self.azimuth.setWrapping(True)
        self.elevation = QtWidgets.QDoubleSpinBox()
        self.elevation.setRange(-90.0, 90.0)
        for sb in (self.azimuth, self.elevation):
            sb.setSuffix(" °")
            sb.setDecimals(1)
            sb.setKeyboardTracking(False)
        form.addRow("Position", self.position)
        form.addRow("Azimuth (y-x)", self.azimuth)
        form.addRow("Elevation (z)", self.elevation)
        lay.addLayout(form)
        self._updating = False
        self.add.clicked.connect(lambda: self._add(self.preset.currentText()))
        self.remove.clicked.connect(self._remove)
        self.list.currentRowChanged.connect(self._sync_controls)
        self.list.itemChanged.connect(self._on_item)
        self.position.valueChanged.connect(self._on_position)
        self.azimuth.valueChanged.connect(self._on_angles)
        self.elevation.valueChanged.connect(self._on_angles)
        planes = session.scene.clipping_planes
        planes.events.inserted.connect(self.rebuild)
        planes.events.removed.connect(self.rebuild)
        planes.events.changed.connect(self.rebuild)
        planes.events.child_event.connect(self._on_child)
        self.rebuild()

    def current(self) -> Any:
        i = self.list.currentRow()
        planes = self.session.scene.clipping_planes
        return planes[i] if 0 <= i < len(planes) else None

    def _text(self, i: int, p: Any) -> str:
        n = np.asarray(p.normal)
        axis = next(
            (k for k, v in self.session.clipping.PRESETS.items() if np.allclose(v, n, atol=1e-6)),
            "free",
        )
        return f"#{i + 1} {axis}  at {self.session.clipping.offset(p):+.2f} µm"

    def rebuild(self, *_: Any) -> None:
        self._updating = True
        cur = self.list.currentRow()
        self.list.clear()
        planes = self.session.scene.clipping_planes
        for i, p in enumerate(planes):
            it = QtWidgets.QListWidgetItem(self._text(i, p))
            it.setFlags(it.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
            it.setCheckState(
                QtCore.Qt.CheckState.Checked if p.enabled else QtCore.Qt.CheckState.Unchecked
            )
            self.list.addItem(it)
        self._updating = False
        if len(planes):
            self.list.setCurrentRow(min(max(cur, 0), len(planes) - 1))
        self._sync_controls()

    def _on_child(self, *_: Any) -> None:
        self._updating = True
        for i, p in enumerate(self.session.scene.clipping_planes):
            it = self.list.item(i)
            if it is not None:
                it.setText(self._text(i, p))
        self._updating = False
        self._sync_controls()

    def _sync_controls(self, *_: Any) -> None:
        p = self.current()
        for w in (self.position, self.azimuth, self.elevation, self.remove):
            w.setEnabled(p is not None)
        if p is None or self._updating:
            return
        self._updating = True
        lo, hi = self.session.clipping.offset_range(p)
        off = self.session.clipping.offset(p)
        self.position.setValue(int(round((off - lo) / ((hi - lo) or 1.0) * self.STEPS)))
        z, y, x = p.normal
        if not self.azimuth.hasFocus() and not self.elevation.hasFocus():
            self.elevation.setValue(float(np.degrees(np.arcsin(np.clip(z, -1, 1)))))
            self.azimuth.setValue(float(np.degrees(np.arctan2(y, x))))
        self._updating = False

    def _add(self, preset: str) -> None:
        self.session.clipping.add(preset)
        self.list.setCurrentRow(self.list.count() - 1)

    def _remove(self) -> None:
        self.session.clipping.remove(self.list.currentRow())

    def _on_item(self, it: QtWidgets.QListWidgetItem) -> None:
        if self._updating:
            return
        p = self.session.scene.clipping_planes[self.list.row(it)]
        p.enabled = it.checkState() == QtCore.Qt.CheckState.Checked

    def _on_position(self, v: int) -> None:
        p = self.current()
        if p is None or self._updating:
            return
        lo, hi = self.session.clipping.offset_range(p)
        self.session.clipping.set_offset(p, lo + (hi - lo) * v / self.STEPS)

    def _on_angles(self, *_: Any) -> None:
        p = self.current()
        if p is None or self._updating:
            return
        az, el = np.radians(self.azimuth.value()), np.radians(self.elevation.value())
        normal = (np.sin(el), np.cos(el) * np.sin(az), np.cos(el) * np.cos(az))
        p.normal = tuple(float(v) for v in normal)


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
        row2 = QtWidgets.QHBoxLayout()
        #: Rename / remove the current class (``annotations.rename_class`` / ``remove_class``).
        self.rename_class = QtWidgets.QPushButton("Rename class…")
        self.remove_class = QtWidgets.QPushButton("Remove class")
        self.rename_class.setToolTip(ACTIONS["annotations.rename_class"].description)
        self.remove_class.setToolTip(ACTIONS["annotations.remove_class"].description)
        row2.addWidget(self.rename_class)
        row2.addWidget(self.remove_class)
        lay.addLayout(row2)
        self.rename_class.clicked.connect(self._rename_class)
        self.remove_class.clicked.connect(self._remove_class)
        self.counts = QtWidgets.QLabel()
        self.counts.setTextFormat(QtCore.Qt.TextFormat.RichText)
        lay.addWidget(self.counts)
        self.measurements = QtWidgets.QListWidget()
        lay.addWidget(self.measurements, 1)
        #: Removes the selected measurement (as Delete in the list): ``annotations.remove_measurement``.
        self.remove_measurement = QtWidgets.QPushButton("Remove measurement")
        lay.addWidget(self.remove_measurement)
        self.remove_measurement.clicked.connect(self._remove_measurement)
        self.measurements.installEventFilter(self)
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
            item = QtWidgets.QListWidgetItem(f"#{m.id} {m.kind}: {m.value:.3f}{unit}")
            item.setData(QtCore.Qt.ItemDataRole.UserRole, m.id)
            self.measurements.addItem(item)

    def _remove_measurement(self) -> None:
        item = self.measurements.currentItem()
        if item is None:
            self.session.notify("select a measurement in the list first")
            return
        mid = int(item.data(QtCore.Qt.ItemDataRole.UserRole))
        m = next((m for m in self.session.annotations.measurements if m.id == mid), None)
        if m is not None:
            p = m.points_um[0]
            pick = Pick(point_um=(float(p[0]), float(p[1]), float(p[2])), tolerance_um=0.0)
            self.session.run("annotations.remove_measurement", pick)

    def eventFilter(self, obj: Any, ev: QtCore.QEvent) -> bool:
        """Delete in the measurement list removes the selected one (not the selected track)."""
        if obj is self.measurements and ev.type() in (
            QtCore.QEvent.Type.ShortcutOverride,
            QtCore.QEvent.Type.KeyPress,
        ):
            if ev.key() in (QtCore.Qt.Key.Key_Delete, QtCore.Qt.Key.Key_Backspace):  # type: ignore[attr-defined]
                ev.accept()
                if ev.type() == QtCore.QEvent.Type.KeyPress:
                    self._remove_measurement()
                return True
        return bool(super().eventFilter(obj, ev))

    def _add_class(self) -> None:
        name = self.new_class.text().strip()
        if name:
            self.session.define_class(name)
            self.new_class.clear()
            self.rebuild()

    def _rename_class(self) -> None:
        s = self.session
        old = s.current_class
        new, ok = QtWidgets.QInputDialog.getText(
            self, "Rename class", f"New name of class {old!r}:", text=old
        )
        if ok and new.strip() and new.strip() != old:
            if rename_class(s, old, new.strip()) is not None:
                s.current_class = new.strip()
            self.rebuild()

    def _remove_class(self) -> None:
        s = self.session
        if s.run("annotations.remove_class") is not None:
            names = [c.name for c in s.annotations.classes]
            s.current_class = names[0] if names else "default"
            self.rebuild()

    def _on_class(self, name: str) -> None:
        if name:
            self.session.current_class = name


def is_image(layer: Layer) -> bool:
    return isinstance(layer, Image)
