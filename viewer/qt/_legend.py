"""``ClassLegend``: the marker classes' names and colours over a view (issue 18.14).

One legend floats in the top-right corner of each view (3D and the slices): a colour
swatch and the name per class, in the colour the markers of that class are drawn
with. It follows the annotations: a class added, renamed or removed (by this window,
an undo or a collaborator) redraws it; with no class it is hidden.
"""

from __future__ import annotations

import html
from typing import Any

from PySide6 import QtCore, QtWidgets

from ._session import ProofreadingSession

__all__ = ["ClassLegend"]

#: The legend's look: readable over bright EM and over the dark 3D background.
_STYLE = "background: rgba(20, 20, 26, 190); color: rgb(235, 235, 235); padding: 3px;"


class ClassLegend(QtWidgets.QLabel):
    """A swatch and a name per marker class, over ``parent`` (a view), top right.

    Parameters
    ----------
    session : ProofreadingSession
    parent : QWidget
        The view it floats over.
    """

    def __init__(self, session: ProofreadingSession, parent: QtWidgets.QWidget) -> None:
        super().__init__(parent)
        self.session = session
        self.setObjectName("class_legend")
        self.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.setStyleSheet(_STYLE)
        # Clicks and the wheel go to the view below.
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self._watched: Any = None
        session.edited.connect(self.rebuild)
        parent.installEventFilter(self)
        self.rebuild()

    def eventFilter(self, obj: Any, ev: QtCore.QEvent) -> bool:
        if obj is self.parent() and ev.type() == QtCore.QEvent.Type.Resize:
            self._place()
        return False

    def _place(self) -> None:
        parent = self.parentWidget()
        if parent is not None:
            self.move(max(parent.width() - self.width() - 6, 0), 6)

    def entries(self) -> list[tuple[str, tuple[float, float, float]]]:
        """(class name, colour) in the order the classes were defined."""
        return [(c.name, c.color) for c in self.session.annotations.classes]

    def rebuild(self, *_: Any) -> None:
        ann = self.session.annotations
        if ann is not self._watched:  # a project opened anew replaces the annotations
            if self._watched is not None:
                self._watched.events.classes.disconnect(self.rebuild)
            ann.events.classes.connect(self.rebuild)
            self._watched = ann
        rows = []
        for name, (r, g, b) in self.entries():
            rgb = f"rgb({int(255 * r)},{int(255 * g)},{int(255 * b)})"
            rows.append(f"<span style='color:{rgb}'>&#9632;</span>&nbsp;{html.escape(name)}")
        self.setText("<br>".join(rows))
        self.setVisible(bool(rows))
        self.adjustSize()
        self._place()
        self.raise_()
