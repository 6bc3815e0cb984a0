"""``ObjectList``: the objects of a labels layer, their sizes, and "go to object" (issue 17).

A dock lists every object of the chosen labels layer with its id and size (voxels and
µm³), counted in the background (a job, like *Measure objects*) on the full-resolution
level at the current time point, once the list is on screen (its dock's tab raised). Typing an id filters the list; Enter, a double-click
or *Go to* selects the object (``labels.select``, as a click on it would) and centres
every view on a voxel inside it (the session's ``show_point``, as *Show track* does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from PySide6 import QtCore, QtWidgets

from analysis.volume import VolumeSource
from viewer.actions import Pick
from viewer.scene import Labels

from ._session import ProofreadingSession
from ._workers import Job, JobsPanel, Progress

__all__ = ["ObjectList", "object_sizes_job"]

_NUM = QtCore.Qt.ItemDataRole.DisplayRole


def _region(src: VolumeSource, t: int, box: tuple[slice, ...] | None = None) -> tuple[slice, ...]:
    """Level 0's region of time point ``t``, channel 0, and ``box`` (z, y, x) or everything."""
    zyx = list(box) if box is not None else [slice(None)] * 3
    out = []
    for ax, size in zip(src.axes, src.levels[0].shape, strict=True):
        if ax in "tc":
            i = min(max(t, 0), size - 1) if ax == "t" else 0
            out.append(slice(i, i + 1))
        else:
            out.append(zyx.pop(0))
    return tuple(out)


def object_sizes_job(labels: VolumeSource, t: int = 0) -> Callable[[Progress], Any]:
    """Ids, voxel counts, centroids (voxels) and bounding boxes of every object, level 0."""

    def run(progress: Progress) -> dict[str, Any]:
        from scipy import ndimage

        progress(0, 3, "reading")
        lab = np.asarray(labels.read(0, _region(labels, t)))
        lab = lab.reshape(lab.shape[-3:])
        progress(1, 3, "counting")
        ids, counts = np.unique(lab, return_counts=True)
        keep = ids > 0
        ids, counts = ids[keep], counts[keep]
        progress(2, 3, "locating")
        centroids = np.asarray(ndimage.center_of_mass(lab > 0, lab, ids), dtype=np.float64)
        boxes = ndimage.find_objects(lab) if len(ids) else []
        box_of = {int(i): boxes[int(i) - 1] for i in ids if int(i) - 1 < len(boxes)}
        return {
            "ids": ids.astype(np.int64),
            "voxels": counts.astype(np.int64),
            "centroids": centroids.reshape(-1, 3),
            "boxes": box_of,
        }

    return run


class ObjectList(QtWidgets.QWidget):
    """The objects of a labels layer: id, voxels, µm³; search by id; go to an object.

    Parameters
    ----------
    session : ProofreadingSession
    jobs : JobsPanel
        Where the counting job runs (its progress and errors show there).
    """

    def __init__(self, session: ProofreadingSession, jobs: JobsPanel, parent: Any = None) -> None:
        super().__init__(parent)
        self.session = session
        self.jobs = jobs
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        row = QtWidgets.QHBoxLayout()
        self.layer = QtWidgets.QComboBox()
        self.layer.setObjectName("objects_layer")
        self.search = QtWidgets.QLineEdit()
        self.search.setObjectName("objects_search")
        self.search.setPlaceholderText("id")
        self.go = QtWidgets.QPushButton("Go to")
        self.go.setToolTip("select the object and centre every view on it (Enter)")
        row.addWidget(self.layer, 1)
        row.addWidget(self.search, 1)
        row.addWidget(self.go)
        lay.addLayout(row)
        self.table = QtWidgets.QTableWidget(0, 3)
        self.table.setObjectName("objects_table")
        self.table.setHorizontalHeaderLabels(["id", "voxels", "µm³"])
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        lay.addWidget(self.table, 1)
        self.summary = QtWidgets.QLabel()
        lay.addWidget(self.summary)
        #: What the last count found, by layer name (see :func:`object_sizes_job`).
        self.results: dict[str, dict[str, Any]] = {}
        self._job: Job | None = None
        self._running = False
        #: Whether the list is on screen (:meth:`set_shown`, from its dock).
        self.on_screen = False
        self.layer.currentTextChanged.connect(self.refresh)
        self.search.textChanged.connect(self._filter)
        self.search.returnPressed.connect(self.go_to_first_shown)
        self.search.installEventFilter(self)
        self.go.clicked.connect(self.go_to_current)
        self.table.doubleClicked.connect(lambda idx: self.go_to_row(idx.row()))
        session.scene.layers.events.inserted.connect(self._fill_layers)
        session.scene.layers.events.removed.connect(self._fill_layers)
        self._fill_layers()

    def eventFilter(self, obj: Any, ev: QtCore.QEvent) -> bool:
        """Return in the search box goes to the object (the window's Return shortcut must
        not take it)."""
        if (
            obj is self.search
            and ev.type() == QtCore.QEvent.Type.ShortcutOverride
            and ev.key() in (QtCore.Qt.Key.Key_Return, QtCore.Qt.Key.Key_Enter)  # type: ignore[attr-defined]
        ):
            ev.accept()
            return True
        return bool(super().eventFilter(obj, ev))

    # ---------------------------------------------------------------- layers
    def _labels(self, name: str) -> Labels | None:
        lay = next((x for x in self.session.labels_layers if x.name == name), None)
        return lay if lay is not None and lay.data is not None else None

    def _fill_layers(self, *_: Any) -> None:
        names = [x.name for x in self.session.labels_layers if x.data is not None]
        cur = self.layer.currentText()
        self.layer.blockSignals(True)
        self.layer.clear()
        self.layer.addItems(names)
        if cur in names:
            self.layer.setCurrentText(cur)
        self.layer.blockSignals(False)
        self.refresh()

    def set_shown(self, on: bool) -> None:
        """The list is on screen (its dock's tab raised) or not: counting waits for it."""
        self.on_screen = bool(on)
        if on:
            self.refresh()

    def refresh(self, *_: Any) -> None:
        """Count the objects of the chosen layer (in the background) unless counted; only
        while the list is on screen (a big layer's full resolution is read)."""
        if not self.on_screen:
            return
        name = self.layer.currentText()
        lay = self._labels(name)
        if lay is None:
            self._show(None)
            return
        if name in self.results:
            self._show(name)
            return
        assert lay.data is not None
        if self._job is not None and self._job.name == f"objects of {name}" and self._running:
            return
        self.summary.setText(f"counting the objects of {name}…")
        self._running = True

        def done(result: dict[str, Any], name: str = name) -> None:
            self._running = False
            self.results[name] = result
            if self.layer.currentText() == name:
                self._show(name)

        job = Job(f"objects of {name}", object_sizes_job(lay.data, self.session.time), done)
        job.signals.failed.connect(self._stopped)
        job.signals.cancelled.connect(self._stopped)
        self._job = self.jobs.start(job)

    def _stopped(self, *_: Any) -> None:
        self._running = False
        self.summary.setText("counting stopped (see Jobs); show the list again to retry")

    def _show(self, name: str | None) -> None:
        self.table.setSortingEnabled(False)
        self.table.setRowCount(0)
        if name is None:
            self.summary.setText("no labels layer")
            return
        res, lay = self.results[name], self._labels(name)
        assert lay is not None and lay.data is not None
        voxel_um3 = float(np.prod(lay.data.levels[0].scale_um))
        ids, voxels = res["ids"], res["voxels"]
        self.table.setRowCount(len(ids))
        for r, (i, n) in enumerate(zip(ids.tolist(), voxels.tolist(), strict=True)):
            for c, value in enumerate((int(i), int(n), round(n * voxel_um3, 4))):
                item = QtWidgets.QTableWidgetItem()
                item.setData(_NUM, value)
                item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight)
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        self.summary.setText(f"{len(ids)} objects in {name} (voxel {voxel_um3:.4g} µm³)")
        self._filter(self.search.text())

    # ---------------------------------------------------------------- search
    def _id_text(self, row: int) -> str:
        item = self.table.item(row, 0)
        return item.text() if item is not None else ""

    def _filter(self, text: str) -> None:
        text = text.strip()
        for r in range(self.table.rowCount()):
            self.table.setRowHidden(r, bool(text) and not self._id_text(r).startswith(text))

    def shown_rows(self) -> list[int]:
        return [r for r in range(self.table.rowCount()) if not self.table.isRowHidden(r)]

    def object_at_row(self, row: int) -> int:
        return int(self._id_text(row))

    # ---------------------------------------------------------------- go to
    def go_to_first_shown(self) -> None:
        rows = self.shown_rows()
        text = self.search.text().strip()
        exact = [r for r in rows if self._id_text(r) == text]
        if exact or rows:
            self.go_to_row((exact or rows)[0])
        else:
            self.session.notify(f"no object {text} in {self.layer.currentText()}")

    def go_to_current(self) -> None:
        row = self.table.currentRow()
        if row < 0 or self.table.isRowHidden(row):
            self.go_to_first_shown()
        else:
            self.go_to_row(row)

    def go_to_row(self, row: int) -> None:
        self.table.selectRow(row)
        self.go_to(self.layer.currentText(), self.object_at_row(row))

    def go_to(self, name: str, label: int) -> None:
        """Select object ``label`` of layer ``name`` and centre every view on it."""
        res, lay = self.results.get(name), self._labels(name)
        if res is None or lay is None:
            return
        zyx = self._inside_point(lay, res, label)
        if zyx is None:
            self.session.notify(f"object {label} is not in {name} at this time point")
            return
        self.session.run("labels.select", Pick(point_um=zyx, layer=name, label=int(label)))
        self.session.show_point(zyx)

    def _inside_point(
        self, lay: Labels, res: dict[str, Any], label: int
    ) -> tuple[float, float, float] | None:
        """World µm of the object's voxel nearest its centroid (a centroid may lie
        outside a curved object, e.g. a bent mitochondrion)."""
        src = lay.data
        assert src is not None
        k = np.flatnonzero(res["ids"] == label)
        box = res["boxes"].get(int(label))
        if len(k) == 0 or box is None:
            return None
        crop: npt.NDArray[Any] = np.asarray(src.read(0, _region(src, self.session.time, box)))
        crop = crop.reshape(crop.shape[-3:])
        vox = np.argwhere(crop == label) + [b.start for b in box]
        if len(vox) == 0:
            return None
        c = res["centroids"][int(k[0])]
        v = vox[int(np.argmin(((vox - c) ** 2).sum(axis=1)))]
        lev = src.levels[0]
        zyx = np.asarray(lev.translation[-3:], float) + v * np.asarray(lev.scale_um, float)
        return float(zyx[0]), float(zyx[1]), float(zyx[2])
