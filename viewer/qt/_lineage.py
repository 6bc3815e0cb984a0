"""``LineageView``: the selected track's lineage tree (pyqtgraph), linked both ways.

Time runs down, each tracklet is a column, a division splits a column into its
daughters (:func:`viewer.actions.lineage_layout`). The view follows the selection
and the time (the selected tracklet drawn thick, the current time a line); a click
on a node selects it, goes to its time and centres every view on it (Ctrl+click:
as the second track, e.g. for *Add division*).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

from viewer.actions import lineage_layout

from ._session import ProofreadingSession

__all__ = ["LineageView"]

log = logging.getLogger(__name__)


class LineageView(pg.PlotWidget):  # type: ignore[misc]
    """The lineage tree of the selected track (see the module docstring).

    Attributes
    ----------
    layout : LineageLayout or None
        What is drawn (None: no track selected).
    """

    def __init__(self, session: ProofreadingSession, parent: Any = None) -> None:
        super().__init__(parent)
        self.session = session
        self.layout: Any = None
        self.setBackground((20, 20, 26))
        pi = self.getPlotItem()
        pi.invertY(True)
        pi.setLabel("left", "time point")
        pi.hideAxis("bottom")
        pi.setMenuEnabled(False)
        self.lines = pg.PlotDataItem(connect="pairs", pen=pg.mkPen((200, 200, 200), width=1))
        self.selected_line = pg.PlotDataItem(connect="pairs", pen=pg.mkPen((255, 120, 60), width=3))
        self.points = pg.ScatterPlotItem(size=8, pxMode=True, brush=pg.mkBrush(255, 120, 60))
        self.now = pg.InfiniteLine(angle=0, pen=pg.mkPen((80, 220, 255, 160), width=1))
        for it in (self.lines, self.selected_line, self.points, self.now):
            self.addItem(it)
        self.points.sigClicked.connect(self._on_click)
        self._dirty = False
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.refresh)
        session.scene.selection.events.all.connect(self.schedule)
        session.edited.connect(self.schedule)
        session.scene.events.current_time.connect(self._on_time)
        self.refresh()

    def schedule(self, *_: Any) -> None:
        """Mark stale; redrawn once per event-loop pass."""
        self._timer.start(0)

    def _on_time(self, *_: Any) -> None:
        self.now.setPos(self.session.time)

    def refresh(self) -> None:
        s = self.session
        g = s.tracks
        sel = [n for n in s.scene.selection.node_ids if g is not None and n in g]
        self.now.setPos(s.time)
        if g is None or not sel:
            self.layout = None
            for it in (self.lines, self.selected_line):
                it.setData([], [])
            self.points.setData([])
            return
        lay = lineage_layout(g, int(sel[-1]))
        self.layout = lay
        e = lay.edges
        xs = np.c_[lay.x[e[:, 0]], lay.x[e[:, 1]]].ravel()
        ts = np.c_[lay.t[e[:, 0]], lay.t[e[:, 1]]].ravel().astype(float)
        self.lines.setData(xs, ts)
        chosen = int(g.tracklet(int(sel[-1]))[0])
        mine = (lay.tracklets[e[:, 0]] == chosen) & (lay.tracklets[e[:, 1]] == chosen)
        self.selected_line.setData(
            np.c_[lay.x[e[mine, 0]], lay.x[e[mine, 1]]].ravel(),
            np.c_[lay.t[e[mine, 0]], lay.t[e[mine, 1]]].ravel().astype(float),
        )
        reviewed = np.array([g.is_reviewed(int(n)) for n in lay.nodes])
        brushes = [pg.mkBrush(120, 220, 120) if r else pg.mkBrush(255, 120, 60) for r in reviewed]
        self.points.setData(x=lay.x, y=lay.t.astype(float), data=lay.nodes.tolist(), brush=brushes)
        self.getPlotItem().enableAutoRange()

    def node_pos(self, node: int) -> QtCore.QPointF:
        """Where node ``node`` is drawn, in this widget's pixels (for tests and tools)."""
        lay = self.layout
        assert lay is not None
        i = int(np.flatnonzero(lay.nodes == node)[0])
        vb = self.getPlotItem().getViewBox()
        scene = vb.mapViewToScene(QtCore.QPointF(float(lay.x[i]), float(lay.t[i])))
        return QtCore.QPointF(self.mapFromScene(scene))

    def _on_click(self, item: Any, points: Any, ev: Any = None) -> None:
        if not len(points):
            return
        node = int(points[0].data())
        add = bool(ev is not None and ev.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier)
        s = self.session
        s.select_node(node, add=add)
        g = s.tracks
        if not add and g is not None:
            s.set_time(g.time(node))
            s.run("tracks.show")
