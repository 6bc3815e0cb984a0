"""``SessionLabelEdits``: the desktop session's label editing, without any Qt.

The session is the desktop's :class:`viewer.actions.ActionContext`; the label actions
(``labels.*``) ask it for ``label_image(layer)`` and ``label_brush``, which live here:

- the editable image of a labels layer is the project's working copy
  (``Project.edit_labels``, ``docs/design/0003-label-edits.md``). The first time a layer
  is edited (or at once, when the project already holds a copy) the layer is switched to
  read the copy: from then on every view draws the edited voxels;
- each write of an edit (apply, undo, redo) is announced by the copy's ``changed`` event
  (:class:`analysis.edits.LabelChange`: ids and the chunk regions written per level);
  it is passed on as :attr:`SessionLabelEdits.changed` (slice views re-read only those
  regions) and as the layer's ``labels_update(ids)`` (the 3D view re-meshes those objects).
"""

from __future__ import annotations

import logging
from typing import Any

from psygnal import Signal

from analysis.edits import EditableLabels, LabelChange
from analysis.errors import InvalidEditError, ParameterError
from viewer.actions import LabelBrush
from viewer.scene import Labels

__all__ = ["SessionLabelEdits"]

log = logging.getLogger(__name__)


class SessionLabelEdits:
    """Working copies, the brush and the change events of one desktop session.

    Parameters
    ----------
    session : ProofreadingSession

    Events
    ------
    changed(LabelChange)
        The voxels of a labels layer changed (after the write; the layer reads the copy).
    brush_changed()
        The brush (id, radius) or the split seeds and preview changed.
    """

    changed = Signal(object)
    brush_changed = Signal()

    def __init__(self, session: Any) -> None:
        self.session = session
        self.brush = LabelBrush()
        self._images: dict[str, EditableLabels] = {}
        project = session.project
        if project is not None:
            for name, img in project.workspace.labels.items():
                self._attach(name, img)

    def image(self, name: str) -> EditableLabels:
        """The editable label image of labels layer ``name`` (made on first use)."""
        got = self._images.get(name)
        if got is not None:
            return got
        project = self.session.project
        if project is None:
            raise InvalidEditError(
                "label edits are kept in a project: save one first (File > Save project as…)"
            )
        try:
            img = project.edit_labels(name)
        except ParameterError as exc:
            raise InvalidEditError(str(exc)) from exc
        self._attach(name, img)
        return img

    def _attach(self, name: str, img: EditableLabels) -> None:
        self._images[name] = img
        lay = self.session.scene.layers.get(name)
        src = getattr(img, "source", None)
        if isinstance(lay, Labels) and src is not None and lay.data is not src:
            log.info("labels %s: drawn from the project's working copy", name)
            with self.session.scene_lock:
                lay.data = src
        event = getattr(img, "changed", None)
        if event is not None:
            event.connect(self._on_change)

    def _on_change(self, change: LabelChange) -> None:
        lay = self.session.scene.layers.get(change.name)
        if isinstance(lay, Labels):
            with self.session.scene_lock:
                lay.notify_edited(sorted(change.ids))
        self.changed.emit(change)

    def close(self) -> None:
        for img in self._images.values():
            event = getattr(img, "changed", None)
            if event is not None:
                event.disconnect(self._on_change)
        self._images.clear()
