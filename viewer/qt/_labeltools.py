"""``QtLabelTools``: the desktop's label editing tools on the slice views.

- navigate (the default): a click selects the object under it, Ctrl+click adds one
  (``labels.select``); ``labels.merge`` (Shift+M), ``labels.delete`` (Ctrl+Delete) work
  on the selection;
- paint (B) / erase (E): press, drag, release on a slice paints discs of the brush
  radius (µm) in that slice's plane; the brush is drawn as a circle under the mouse;
  one stroke is one undo step (the stamps are applied in one ``History.group``);
- fill (Shift+F): a click fills the connected region within the slice;
- lock / unlock (Shift+L / Shift+U), relabel (Shift+R) work on the selection; interpolate
  (Shift+P) fills the brush's id between the slice under the mouse and its nearest other
  painted section;
- split (Shift+X): clicks place seeds on an object; from two seeds the parts are shown
  over the slices (the preview); Ctrl+Return accepts, Escape drops them.

Every edit is a registered action (:mod:`viewer.actions`), given a :class:`Pick` made
here from the mouse (object under it, world point, the slice's axis). After an edit the
copy's change event names the chunk regions written per level: the whole levels the
slice views keep in memory are patched from those regions only, and only the views whose
slice meets them read their slice again (:meth:`QtSliceView.reload`). A merge or a
table writes no voxel (it changes the copy's id mapping, ``LabelChange.remapped``): the
chunk regions of each resident level that show one of the remapped ids are found in
memory (``np.isin``), read again through the mapped source, and treated the same way;
a level not resident is re-read wherever a view shows it.
"""

from __future__ import annotations

import logging
import math
from contextlib import AbstractContextManager
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from analysis.edits import LabelChange, id_state
from viewer.actions import ACTIONS, Pick
from viewer.scene import Labels

from ._slices import CACHE, QtSliceView, slice_axes

__all__ = ["LabelMode", "QtLabelTools"]

log = logging.getLogger(__name__)

LabelMode = Literal["paint", "erase", "fill", "split"]
LABEL_MODES: tuple[LabelMode, ...] = ("paint", "erase", "fill", "split")
#: Colours of the split preview's parts (RGBA), in seed order.
PREVIEW_COLORS = np.array(
    [
        [255, 60, 60, 170],
        [60, 140, 255, 170],
        [60, 230, 90, 170],
        [250, 220, 50, 170],
        [220, 80, 255, 170],
    ],
    dtype=np.uint8,
)


def _remapped_boxes(src: Any, remapped: frozenset[int]) -> tuple[tuple[Any, ...], ...]:
    """Per level, the chunk regions (of the level's chunk grid) where a resident level
    shows one of ``remapped`` (the voxels an id mapping change may show differently);
    a level not resident: the whole level."""
    ids = np.fromiter(remapped, dtype=np.int64, count=len(remapped))
    out: list[tuple[Any, ...]] = []
    for level, lev in enumerate(src.levels):
        shape = tuple(int(n) for n in lev.shape[-3:])
        whole = CACHE.peek(src, level, 0)
        if whole is None:
            out.append((tuple(slice(0, n) for n in shape),))
            continue
        hit = np.isin(whole, ids)
        if not hit.any():
            out.append(())
            continue
        ck = tuple(int(c) for c in lev.chunks[-3:])
        grid = tuple(-(-n // c) for n, c in zip(shape, ck, strict=True))
        pad = [(0, g * c - n) for g, c, n in zip(grid, ck, shape, strict=True)]
        blocks = np.pad(hit, pad).reshape(grid[0], ck[0], grid[1], ck[1], grid[2], ck[2])
        where = np.argwhere(blocks.any(axis=(1, 3, 5)))
        out.append(
            tuple(
                tuple(
                    slice(int(j) * c, min((int(j) + 1) * c, n))
                    for j, c, n in zip(b, ck, shape, strict=True)
                )
                for b in where
            )
        )
    return tuple(out)


class QtLabelTools(QtCore.QObject):
    """Label tools of a :class:`viewer.qt.QtViewer` (menu "Labels", modes, brush cursor).

    Parameters
    ----------
    window : QtViewer

    Attributes
    ----------
    mode : str or None
        The label tool in use (``paint``, ``erase``, ``fill``, ``split``), None: none.
    cursors : dict plane -> QGraphicsEllipseItem
        The brush circle of each slice view (world µm; shown in paint and erase).
    previews : dict plane -> pg.ImageItem
        The split preview drawn over each slice view.
    """

    mode_changed = QtCore.Signal(object)

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.session = s = window.session
        self.mode: LabelMode | None = None
        self._stroke: AbstractContextManager[Any] | None = None
        self._stroke_view: QtSliceView | None = None
        self._last_stamp: npt.NDArray[np.float64] | None = None
        self._mouse: dict[str, QtCore.QPointF] = {}
        self.cursors: dict[str, QtWidgets.QGraphicsEllipseItem] = {}
        self.previews: dict[str, pg.ImageItem] = {}
        for plane, view in window.slices.items():
            circle = QtWidgets.QGraphicsEllipseItem()
            pen = QtGui.QPen(QtGui.QColor(255, 255, 255, 220))
            pen.setCosmetic(True)
            pen.setWidthF(1.5)
            circle.setPen(pen)
            circle.setZValue(30)
            circle.setVisible(False)
            view.view.addItem(circle)
            self.cursors[plane] = circle
            prev = pg.ImageItem(axisOrder="row-major")
            prev.setZValue(8)
            prev.setVisible(False)
            view.view.addItem(prev)
            self.previews[plane] = prev
            view.viewport().installEventFilter(self)
            view.scene().sigMouseMoved.connect(lambda pos, v=view: self._hover(v, pos))
        s.label_edits.changed.connect(self._on_change)
        s.label_edits.brush_changed.connect(self._on_brush)
        s.mode_changed.connect(self._on_session_mode)
        s.cursor_changed.connect(lambda *_: self._draw_preview())
        self._make_actions()

    # ------------------------------------------------------------------ menu
    def _make_actions(self) -> None:
        w = self.window
        menu = w.menuBar().addMenu("&Labels")
        self.menu = menu
        group = QtGui.QActionGroup(self)
        group.setExclusionPolicy(QtGui.QActionGroup.ExclusionPolicy.ExclusiveOptional)
        for mode in LABEL_MODES:
            aid = f"tool.{mode}"
            act = w._action(aid, ACTIONS[aid].title, lambda m=mode: self.set_mode(m), menu)
            act.setCheckable(True)
            group.addAction(act)
        menu.addSeparator()
        for a in ACTIONS.group("labels"):
            if a.fn is None or a.shortcut is None:
                continue
            w._action(a.id, a.title, lambda i=a.id: self.run(i), menu)
        self.preserve_action = QtGui.QAction("Preserve other objects", self)
        self.preserve_action.setCheckable(True)
        self.preserve_action.toggled.connect(self._set_preserve)
        menu.addAction(self.preserve_action)

    def _set_preserve(self, on: bool) -> None:
        self.session.label_brush.preserve = bool(on)

    def run(self, action: str) -> Any:
        """Run a label action from its key: on the selection; ``labels.pick_id`` and
        ``labels.interpolate`` take the place under the mouse (the slice view it was last
        over)."""
        under = action in ("labels.pick_id", "labels.interpolate")
        pick = self.pick_under_mouse() if under else None
        return self.session.run(action, pick)

    # ------------------------------------------------------------------ modes
    def set_mode(self, mode: LabelMode | None) -> None:
        """Use a label tool (None: back to navigate/select)."""
        if mode is not None and mode not in LABEL_MODES:
            raise ValueError(f"unknown label tool {mode!r}")
        self._end_stroke()
        if mode != "split" and self.session.label_brush.seeds:
            self.session.run("labels.split_cancel")
        if mode is not None and self.session.mode != "navigate":
            self.session.set_mode("navigate")
        self.mode = mode
        for m in LABEL_MODES:
            act = self.window.qactions.get(f"tool.{m}")
            if act is not None:
                act.setChecked(m == mode)
        self.window.mode_label.setText(f"tool: {mode or self.session.mode}")
        for plane, circle in self.cursors.items():
            circle.setVisible(mode in ("paint", "erase") and plane in self._mouse)
        self.mode_changed.emit(mode)

    def _on_session_mode(self, mode: str) -> None:
        # Escape (tool.navigate) or another tool: the label tool stops.
        if self.mode is not None:
            self.set_mode(None)
        elif mode == "navigate" and self.session.label_brush.seeds:
            self.session.run("labels.split_cancel")

    # ------------------------------------------------------------------ picks
    def pick_at(self, view: QtSliceView, scene_pos: QtCore.QPointF, add: bool = False) -> Pick:
        """The pick of a mouse position on a slice view: object, world point, slice axis."""
        zyx = view.world_at(scene_pos)
        got = view.label_at(zyx)
        layer, label = got if got is not None else (None, None)
        if layer is None:
            lay = self._layer()
            layer = lay.name if lay is not None else None
        return Pick(
            point_um=zyx,
            layer=layer,
            label=label or None,
            add=add,
            axis=view.fixed_axis,
            tolerance_um=view.pixel_size_um(),
        )

    def pick_under_mouse(self) -> Pick:
        view = self.window.slices.get(self.window.active_slice)
        pos = self._mouse.get(self.window.active_slice)
        if view is None or pos is None:
            return Pick()
        return self.pick_at(view, pos)

    def _layer(self) -> Labels | None:
        sel = self.session.scene.selection
        lays = self.session.labels_layers
        return next((lay for lay in lays if lay.name == sel.layer), lays[0] if lays else None)

    # ------------------------------------------------------------------ mouse
    def eventFilter(self, obj: Any, ev: Any) -> bool:
        if self.mode is None:
            return False
        t = ev.type()
        E = QtCore.QEvent.Type
        if t not in (E.MouseButtonPress, E.MouseMove, E.MouseButtonRelease, E.MouseButtonDblClick):
            return False
        view = obj.parent() if obj is not None else None
        if not isinstance(view, QtSliceView):
            return False
        pos = view.mapToScene(ev.position().toPoint())
        left = ev.button() == QtCore.Qt.MouseButton.LeftButton
        if t == E.MouseMove:
            if self._stroke is not None and self._stroke_view is view:
                self._stroke_to(view, pos)
            return False  # hover, readout and the brush circle still follow the mouse
        if not left:
            return False
        if not view.view.sceneBoundingRect().contains(pos):
            return False
        if t == E.MouseButtonPress:
            if self.mode in ("paint", "erase"):
                self._begin_stroke(view, pos)
            return True
        if t == E.MouseButtonRelease:
            if self.mode in ("paint", "erase"):
                self._end_stroke()
            elif self.mode == "fill":
                self.session.run("labels.fill", self.pick_at(view, pos))
            elif self.mode == "split":
                self.session.run("labels.split_seed", self.pick_at(view, pos))
            return True
        return True  # double clicks do nothing in a label tool

    def _hover(self, view: QtSliceView, scene_pos: QtCore.QPointF) -> None:
        plane = view.plane
        self._mouse = {plane: scene_pos}
        brush = self.mode in ("paint", "erase")
        for p, circle in self.cursors.items():
            circle.setVisible(p == plane and brush)
        self._place_circle(view, scene_pos)
        lay = self._layer() if brush else None
        if lay is not None:  # what a stamp here reads is decoded before the click
            self.session.label_edits.brush_over(lay.name, view.world_at(scene_pos), view.fixed_axis)

    def _place_circle(self, view: QtSliceView, scene_pos: QtCore.QPointF) -> None:
        p = view.view.mapSceneToView(scene_pos)
        r = float(self.session.label_brush.radius_um)
        self.cursors[view.plane].setRect(QtCore.QRectF(p.x() - r, p.y() - r, 2 * r, 2 * r))

    # ------------------------------------------------------------------ strokes
    def _begin_stroke(self, view: QtSliceView, pos: QtCore.QPointF) -> None:
        self._end_stroke()
        name = "paint stroke" if self.mode == "paint" else "erase stroke"
        cm = self.session.group(name)
        cm.__enter__()
        self._stroke, self._stroke_view = cm, view
        self._last_stamp = None
        self._stroke_to(view, pos)

    def _stroke_to(self, view: QtSliceView, pos: QtCore.QPointF) -> None:
        """Stamp discs from the last stamp to ``pos``, no further apart than half the radius
        (a fast drag leaves no gaps between mouse events)."""
        action = "labels.paint" if self.mode == "paint" else "labels.erase"
        end = np.asarray(view.world_at(pos), dtype=np.float64)
        if self._last_stamp is None:
            points = [end]
        else:
            gap = float(np.linalg.norm(end - self._last_stamp))
            step = max(self.session.label_brush.radius_um / 2, 1e-9)
            n = int(math.ceil(gap / step))
            if n == 0:
                return
            points = [
                self._last_stamp + (end - self._last_stamp) * (i / n) for i in range(1, n + 1)
            ]
        base = self.pick_at(view, pos)
        for p in points:
            pick = Pick(
                point_um=(float(p[0]), float(p[1]), float(p[2])),
                layer=base.layer,
                axis=view.fixed_axis,
            )
            if self.session.run(action, pick) is None and self._last_stamp is None:
                break
        self._last_stamp = end

    def _end_stroke(self) -> None:
        cm, self._stroke, self._stroke_view = self._stroke, None, None
        if cm is not None:
            cm.__exit__(None, None, None)

    # ------------------------------------------------------------------ updates
    def _on_change(self, change: LabelChange) -> None:
        """Patch the slice caches from the written regions only; the views that show them
        read their slice again."""
        lay = self.session.scene.layers.get(change.name)
        if not isinstance(lay, Labels) or lay.data is None:
            return
        src = lay.data
        boxes_per_level = (
            change.boxes if change.remapped is None else _remapped_boxes(src, change.remapped)
        )
        for level, boxes in enumerate(boxes_per_level):
            whole = CACHE.peek(src, level, 0)
            if whole is None:
                continue
            for box in boxes:
                whole[box] = np.asarray(src.read(level, box)).reshape(whole[box].shape)
        for view in self.window.slices.values():
            view.reload(change.name, boxes_per_level)
        self._draw_preview()

    def _on_brush(self) -> None:
        view = self.window.slices.get(self.window.active_slice)
        pos = self._mouse.get(self.window.active_slice)
        if view is not None and pos is not None:
            self._place_circle(view, pos)
        self._draw_preview()

    def _draw_preview(self) -> None:
        """The split preview's parts (a colour each, in seed order) on each slice through
        the crosshair, at level 0, before anything is written."""
        b = self.session.label_brush
        atom, box = b.preview, b.preview_box
        lay = self.session.scene.layers.get(b.split_layer) if b.split_layer else None
        for plane, item in self.previews.items():
            if atom is None or box is None or not isinstance(lay, Labels) or lay.data is None:
                item.setVisible(False)
                continue
            r, c, f = slice_axes(self.window.slices[plane].plane)
            lev = lay.data.levels[0]
            scale = np.asarray(lev.scale_um, np.float64)
            org = np.asarray(lev.translation[-3:], np.float64)
            k = int(round((self.session.cursor[f] - org[f]) / scale[f]))
            if not box[f].start <= k < box[f].stop:
                item.setVisible(False)
                continue
            region = list(box)
            region[f] = slice(k, k + 1)
            img = self.session.label_image(lay.name)
            data = id_state(img).show(np.asarray(img.read(tuple(region))))  # shown ids
            part = (data == b.split_id).astype(np.int64)  # 1: the first seed's part
            lo = np.array([s.start for s in region])
            for piece in atom.pieces:
                idx = np.argwhere(piece.mask) + np.asarray(piece.offset)
                on = idx[:, f] == k
                local = idx[on] - lo
                part[tuple(local.T)] = np.searchsorted(b.preview_ids, piece.new[on]) + 1
            flat = np.take(part, 0, axis=f)
            if r > c:
                flat = flat.T
            rgba = np.zeros((*flat.shape, 4), np.uint8)
            on2 = flat > 0
            rgba[on2] = PREVIEW_COLORS[(flat[on2] - 1) % len(PREVIEW_COLORS)]
            item.setImage(rgba, autoLevels=False)
            item.setRect(
                QtCore.QRectF(
                    org[c] + (box[c].start - 0.5) * scale[c],
                    org[r] + (box[r].start - 0.5) * scale[r],
                    (box[c].stop - box[c].start) * scale[c],
                    (box[r].stop - box[r].start) * scale[r],
                )
            )
            item.setVisible(True)

    def close(self) -> None:
        self._end_stroke()
