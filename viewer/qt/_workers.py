"""Background jobs: ``QRunnable`` workers with progress, cancel, and results back on the GUI thread.

A job is a plain function ``fn(progress) -> result`` where ``progress(done,
total, text="")`` reports and raises :class:`Cancelled` once the user pressed
cancel, so work stops at its next step. Results arrive through Qt signals in
the GUI thread (queued), where they become layers and tables. Like napari's
layer slicer, a cancelled job's late result is dropped.

The analysis steps the GUI runs (:func:`measure_job`, :func:`profile_job`,
:func:`link_job`, :func:`classify_job`) are here too: GUI-free functions over arrays and
``VolumeSource`` s, split into steps so progress and cancel are meaningful.
"""

from __future__ import annotations

import logging
import os
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PySide6 import QtCore, QtWidgets

from analysis.volume import VolumeSource

__all__ = [
    "Cancelled",
    "Job",
    "JobsPanel",
    "classifier_features",
    "classify_job",
    "link_job",
    "measure_job",
    "profile_job",
]

log = logging.getLogger(__name__)

Progress = Callable[..., None]


class Cancelled(Exception):
    """Raised inside a job by ``progress`` after the user cancelled it."""


class _Signals(QtCore.QObject):
    progress = QtCore.Signal(int, int, str)
    finished = QtCore.Signal(object)
    failed = QtCore.Signal(str)
    cancelled = QtCore.Signal()


class Job(QtCore.QRunnable):
    """One background job.

    Parameters
    ----------
    name : str
    fn : callable(progress) -> result
    on_done : callable(result), optional
        Called in the GUI thread with the result (not after a cancel).

    Signals (``job.signals``)
    -------------------------
    progress(done, total, text), finished(result), failed(message), cancelled()
    """

    def __init__(
        self,
        name: str,
        fn: Callable[[Progress], Any],
        on_done: Callable[[Any], None] | None = None,
    ) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.name = name
        self.fn = fn
        self.signals = _Signals()
        self._cancel = threading.Event()
        self.done = threading.Event()
        self.result: Any = None
        self.error: str | None = None
        if on_done is not None:
            self.signals.finished.connect(on_done)

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def _progress(self, done: int, total: int, text: str = "") -> None:
        if self._cancel.is_set():
            raise Cancelled(self.name)
        self.signals.progress.emit(int(done), int(total), str(text))

    def run(self) -> None:
        try:
            self._progress(0, 1, "starting")
            result = self.fn(self._progress)
            if self._cancel.is_set():
                raise Cancelled(self.name)
        except Cancelled:
            log.info("job %s cancelled", self.name)
            self.signals.cancelled.emit()
        except Exception as exc:
            log.error("job %s failed:\n%s", self.name, traceback.format_exc())
            self.error = f"{type(exc).__name__}: {exc}"
            self.signals.failed.emit(self.error)
        else:
            self.result = result
            self.signals.finished.emit(result)
        finally:
            self.done.set()


class JobsPanel(QtWidgets.QWidget):
    """Running jobs: one row each with a progress bar and a cancel button.

    Signals
    -------
    failed(name, message)
        A job raised (the window shows it).
    """

    failed = QtCore.Signal(str, str)

    def __init__(self, parent: QtWidgets.QWidget | None = None, max_threads: int = 2) -> None:
        super().__init__(parent)
        self.pool = QtCore.QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self.jobs: list[Job] = []
        self._buttons: dict[int, QtWidgets.QPushButton] = {}
        self._layout = QtWidgets.QVBoxLayout(self)
        self._layout.setContentsMargins(4, 4, 4, 4)
        self._empty = QtWidgets.QLabel("no background jobs")
        self._layout.addWidget(self._empty)
        self._layout.addStretch(1)

    def start(self, job: Job) -> Job:
        row = QtWidgets.QWidget(self)
        lay = QtWidgets.QHBoxLayout(row)
        lay.setContentsMargins(0, 0, 0, 0)
        label = QtWidgets.QLabel(job.name)
        bar = QtWidgets.QProgressBar()
        bar.setRange(0, 0)
        cancel = QtWidgets.QPushButton("Cancel")
        cancel.setObjectName(f"cancel:{job.name}")
        lay.addWidget(label)
        lay.addWidget(bar, 1)
        lay.addWidget(cancel)
        self._layout.insertWidget(self._layout.count() - 1, row)
        self._empty.hide()

        def progress(done: int, total: int, text: str) -> None:
            bar.setRange(0, max(total, 1))
            bar.setValue(done)
            if text:
                bar.setFormat(f"{text} %p%")

        def finish(*_: Any) -> None:
            self._buttons.pop(id(job), None)
            row.deleteLater()
            if job in self.jobs:
                self.jobs.remove(job)
            if not self.jobs:
                self._empty.show()

        def cancelling() -> None:
            # A job stops at its next progress report (seconds for some): say it heard.
            job.cancel()
            cancel.setEnabled(False)
            cancel.setText("Cancelling…")
            bar.setFormat("cancelling…")

        cancel.clicked.connect(cancelling)
        self._buttons[id(job)] = cancel
        job.signals.progress.connect(progress)
        for sig in (job.signals.finished, job.signals.failed, job.signals.cancelled):
            sig.connect(finish)
        job.signals.failed.connect(lambda msg: self.failed.emit(job.name, msg))
        self.jobs.append(job)
        self.pool.start(job)
        return job

    def cancel_button(self, job: Job) -> QtWidgets.QPushButton | None:
        """The Cancel button of a running job (None once it ended)."""
        return self._buttons.get(id(job))

    def cancel_all(self) -> None:
        for job in list(self.jobs):
            job.cancel()
        self.pool.waitForDone(10_000)


# ---------------------------------------------------------------------------- analyses
def _read_zyx(src: VolumeSource, t: int = 0) -> tuple[npt.NDArray[Any], tuple[float, float, float]]:
    lev = src.levels[0]
    region = []
    for ax, size in zip(src.axes, lev.shape, strict=True):
        if ax in "tc":
            i = min(max(t, 0), size - 1) if ax == "t" else 0
            region.append(slice(i, i + 1))
        else:
            region.append(slice(None))
    arr = np.asarray(src.read(0, tuple(region)))
    sc = lev.scale_um
    return arr.reshape(arr.shape[-3:]), (float(sc[0]), float(sc[1]), float(sc[2]))


def measure_job(
    labels: VolumeSource,
    image: VolumeSource | None = None,
    t: int = 0,
    batch: int = 16,
) -> Callable[[Progress], Any]:
    """Morphology table (``analysis.morphology.measure_objects``) of a labels layer.

    Objects are measured in batches (each on the crop that holds it) so that
    progress moves and cancel takes effect between batches.
    """

    def run(progress: Progress) -> Any:
        import pandas as pd
        from scipy import ndimage

        from analysis.morphology import measure_objects

        lab, spacing = _read_zyx(labels, t)
        img = _read_zyx(image, t)[0] if image is not None else None
        if img is not None and img.shape != lab.shape:
            img = None  # another grid (e.g. a pyramid level): skip intensities
        origin = np.asarray(labels.levels[0].translation[-3:], dtype=np.float64)
        ids = np.unique(lab)
        ids = ids[ids > 0]
        boxes = ndimage.find_objects(lab)
        tables = []
        for k in range(0, len(ids), batch):
            progress(k, len(ids), "measuring")
            chunk = ids[k : k + batch]
            sl = [boxes[int(i) - 1] for i in chunk if boxes[int(i) - 1] is not None]
            lo = np.min([[s.start for s in b] for b in sl], axis=0)
            hi = np.max([[s.stop for s in b] for b in sl], axis=0)
            crop = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
            sub = lab[crop]
            sub = np.where(np.isin(sub, chunk), sub, 0)
            tables.append(
                measure_objects(
                    sub,
                    spacing,
                    image=img[crop] if img is not None else None,
                    origin_um=tuple(origin + lo * np.asarray(spacing)),
                )
            )
        progress(len(ids), len(ids), "measuring")
        if not tables:
            return pd.DataFrame({"label": np.zeros(0, np.int64)})
        return pd.concat(tables, ignore_index=True).sort_values("label", ignore_index=True)

    return run


def profile_job(
    labels: Mapping[str, VolumeSource],
    image: VolumeSource | None = None,
    report_dir: str | os.PathLike[str] | None = None,
) -> Callable[[Progress], Any]:
    """The cell-profile workflow (``analysis.report.profile_cell``) on the open labels.

    With ``report_dir`` the job also writes the report there (``write_report``: tables,
    plots, report.html) and returns ``(profile, path of report.html)``; else the profile.
    """

    def run(progress: Progress) -> Any:
        from analysis.report import profile_cell, write_report

        arrays = {}
        spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
        steps = len(labels) + (2 if report_dir is not None else 1)
        for i, (name, src) in enumerate(labels.items()):
            progress(i, steps, f"reading {name}")
            arrays[name], spacing = _read_zyx(src)
        img = _read_zyx(image)[0] if image is not None else None
        progress(len(labels), steps, "profiling")
        profile = profile_cell(arrays, spacing, img)
        if report_dir is None:
            return profile
        progress(len(labels) + 1, steps, "writing the report")
        return profile, write_report(profile, Path(report_dir))

    return run


def link_job(labels: VolumeSource, max_distance_um: float) -> Callable[[Progress], Any]:
    """Link the objects of a (t, z, y, x) labels layer into tracks (``analysis.tracks``)."""

    def run(progress: Progress) -> Any:
        from analysis.tracks import link_labels

        progress(0, 1, "linking")
        return link_labels(labels, max_distance_um)

    return run


def classifier_features(table: Any) -> list[str]:
    """Columns the object classifier learns from: numeric shape and intensity features.

    Position columns (``centroid_*``, ``bbox_*``) and the ``label`` are left out: a
    class should follow what an object looks like, not where it is.
    """
    cols = table_columns(table)
    return [
        c
        for c in cols
        if not c.startswith(("centroid", "bbox")) and np.all(np.isfinite(table[c].to_numpy(float)))
    ]


def classify_job(
    table: Any, examples: Mapping[int, str], features: Sequence[str] | None = None
) -> Callable[[Progress], Any]:
    """Train ``analysis.features.ObjectClassifier`` on ``examples`` and classify every row.

    Returns the table with a ``class`` column.
    """

    def run(progress: Progress) -> Any:
        from analysis.features import ObjectClassifier

        cols = list(features) if features is not None else classifier_features(table)
        progress(0, 2, "training")
        clf = ObjectClassifier(cols).fit(table, dict(examples))
        progress(1, 2, "classifying")
        return clf.predict(table)

    return run


def table_columns(table: Any, exclude: Sequence[str] = ("label",)) -> list[str]:
    """Numeric columns of a pandas table, for plotting and colouring."""
    return [
        c
        for c in table.columns
        if c not in exclude and np.issubdtype(np.asarray(table[c]).dtype, np.number)
    ]


def show_profile_report(parent: Any, profile: Any, report: Any) -> QtWidgets.QMessageBox:
    """A non-modal box with the cell profile's summary and a button opening report.html."""
    from PySide6 import QtGui

    s = profile.summary
    box = QtWidgets.QMessageBox(parent)
    box.setObjectName("profile_report")
    box.setWindowTitle("Cell profile")
    box.setIcon(QtWidgets.QMessageBox.Icon.Information)
    box.setText(
        f"cell {s['volumes_um3']['cell']:.2f} µm³, nucleus "
        f"{s['percent_of_cell']['nucleus']:.1f} % of the cell\n"
        f"{s['counts']['mitochondria']} mitochondria "
        f"({s['percent_of_cytoplasm']['mitochondria']:.1f} % of the cytoplasm), "
        f"{s['counts']['nuclear_pores']} nuclear pores"
    )
    box.setInformativeText(f"Report: {report}")
    open_button = box.addButton("Open report", QtWidgets.QMessageBox.ButtonRole.ActionRole)
    box.addButton(QtWidgets.QMessageBox.StandardButton.Close)
    url = QtCore.QUrl.fromLocalFile(str(report))
    open_button.clicked.connect(lambda: QtGui.QDesktopServices.openUrl(url))
    box.setModal(False)
    box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
    box.show()
    return box
