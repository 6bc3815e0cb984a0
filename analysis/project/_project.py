"""``Workspace`` (one edit target for tracks and annotations) and the ``Project`` folder."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import analysis.io as pio
from analysis.annotations import Annotations, AnnotationsState, classes_from
from analysis.edits import JOURNAL_NAME, EditableLabels, History, JournalLock
from analysis.errors import FormatError, ParameterError
from analysis.tracks import TrackGraph

__all__ = ["Project", "Workspace"]

log = logging.getLogger(__name__)


class Workspace:
    """Everything the edits of one project change: ONE target for ONE History.

    Track commands (:mod:`analysis.edits`) edit ``.tracks``, annotation
    commands (:mod:`analysis.annotations`) edit ``.annotations``; so Ctrl+Z
    undoes the last action of any kind, and one journal records them in order.

    Label commands (:mod:`analysis.edits`, ``labels.*``) edit ``.labels[name]``,
    the project's working copies of label images (opened on first edit).

    Attributes
    ----------
    tracks : TrackGraph or None
    annotations : Annotations
    labels : dict of str -> analysis.edits.EditableLabels
    """

    def __init__(
        self,
        tracks: TrackGraph | None = None,
        annotations: Annotations | None = None,
        labels: Mapping[str, EditableLabels] | None = None,
    ):
        self.tracks = tracks
        self.annotations = annotations if annotations is not None else Annotations()
        self.labels: dict[str, EditableLabels] = dict(labels or {})

    def fingerprint(self) -> dict[str, Any]:
        """Fingerprints of tracks and annotations; the journal refuses to replay onto another
        workspace. (Label copies are made on first edit, after the journal started; their
        edits are checked through their stored undo data instead.)"""
        return {
            "tracks": None if self.tracks is None else self.tracks.fingerprint(),
            "annotations": self.annotations.fingerprint(),
        }

    def flush_labels(self) -> None:
        """Put label chunks that edits changed in memory into the working copies' files
        (write-behind, ``docs/design/0003-label-edits.md``): what a reader of those files
        in another process (a collaboration client) or an export needs."""
        for store in self.labels.values():
            flush = getattr(store, "flush", None)
            if flush is not None:
                flush()

    def settle_labels(self) -> None:
        """Flush the working copies and mark their files complete (nothing for the next
        open to recover); they stay usable (see :meth:`flush_labels`)."""
        for store in self.labels.values():
            settle = getattr(store, "settle", None)
            if settle is not None:
                settle()

    def __repr__(self) -> str:
        return f"Workspace(tracks={self.tracks!r}, annotations={self.annotations!r})"


class Project:
    """A project folder: image reference, base tracks and annotations, the edit journal, the view.

    Build with :meth:`create` or :meth:`open`, never directly. Every edit goes
    through :attr:`history` (``project.history.apply(cmd)``): it is fsync'd to
    ``journal.jsonl`` before ``apply`` returns, and :meth:`open` replays the
    journal onto the base files, so the edits *and* the undo/redo stacks come back.

    Attributes
    ----------
    path : pathlib.Path
    info : analysis.io._project.ProjectInfo
        ``image`` (absolute path or URL), ``labels``, ``tracks``.
    workspace : Workspace
    history : analysis.edits.History
    """

    def __init__(self, path: Path, info: pio.ProjectInfo, workspace: Workspace, history: History):
        self.path = path
        self.info = info
        self.workspace = workspace
        self.history = history
        self._closed = False
        self._fsync = True

    # ------------------------------------------------------------------ building
    @classmethod
    def create(
        cls,
        folder: str | os.PathLike[str],
        image: str | os.PathLike[str] | None = None,
        labels: Sequence[str] = (),
        tracks: str | os.PathLike[str] | TrackGraph | None = None,
        classes: Iterable[str] | Mapping[str, tuple[float, float, float]] = (),
        overwrite: bool = False,
        fsync: bool = True,
        what: str | None = None,
    ) -> Project:
        """Make a new project folder and open it.

        Parameters
        ----------
        folder : path-like
            Created if absent; must not already hold a project unless ``overwrite``.
        image : path or URL, optional
            OME-Zarr store referred to (not copied).
        labels : list of str
            Label image names of the store to show.
        tracks : path or TrackGraph, optional
            GEFF, CSV or CTC tracks (or a graph); copied to ``tracks.geff`` as the base.
        classes : names, or mapping name -> (r, g, b)
            Marker classes to start with.
        overwrite : bool, default: False
            Replace an existing project in ``folder`` (its journal is lost); refused
            while another process has it open.
        what : str, optional
            Names this process in the message another opener gets (e.g. ``vrscope view``).

        Raises
        ------
        FormatError
            ``folder`` already holds a project (and not ``overwrite``), or its parent is missing.
        """
        p = Path(folder).expanduser()
        if not p.parent.is_dir():
            raise FormatError(f"parent folder {p.parent} does not exist")
        if pio.is_project(p) and not overwrite:
            raise FormatError(f"{p} already holds a project (open it, or pass overwrite)")
        # Nothing is written (nor an old project deleted) before the writer's lock is held.
        existed = p.exists()
        lock = JournalLock.acquire(p / JOURNAL_NAME, what)
        try:
            cls._create_files(p, image, labels, tracks, classes)
            pr = cls.open(p, fsync=fsync, lock=lock)
        except BaseException:
            lock.release()
            if not existed:  # made for the lock file only: leave nothing behind
                shutil.rmtree(p, ignore_errors=True)
            raise
        assert pr.history.journal is not None
        pr.history.journal.owns_lock = True  # released when the project is closed
        return pr

    @staticmethod
    def _create_files(
        p: Path,
        image: str | os.PathLike[str] | None,
        labels: Sequence[str],
        tracks: str | os.PathLike[str] | TrackGraph | None,
        classes: Iterable[str] | Mapping[str, tuple[float, float, float]],
    ) -> None:
        if pio.is_project(p):
            for name in (
                pio.TRACKS_BASE,
                "journal.jsonl",
                pio.SCENE_FILE,
                pio.ANNOTATIONS_FILE,
                pio.LABELS_DIR,
            ):
                q = p / name
                if q.is_dir():
                    shutil.rmtree(q)
                else:
                    q.unlink(missing_ok=True)
        image_ref = pio.image_reference(image)
        label_names = pio.check_labels(labels)
        graph: TrackGraph | None
        source: str | None = None
        if isinstance(tracks, TrackGraph):
            graph = tracks
        elif tracks is not None:
            graph = pio.read_tracks_file(tracks)
            source = str(Path(tracks).expanduser().resolve())
        else:
            graph = None
        p.mkdir(exist_ok=True)
        if graph is not None:
            pio.write_tracks_file(graph, p / pio.TRACKS_BASE, overwrite=True)
        colors = dict(classes) if isinstance(classes, Mapping) else None
        names = list(classes.keys()) if isinstance(classes, Mapping) else list(classes)
        ann = AnnotationsState(classes=classes_from(names, colors))
        pio.write_json_atomic(p / pio.ANNOTATIONS_FILE, ann.model_dump(mode="json"))
        info = pio.ProjectInfo(
            image=image_ref,
            labels=label_names,
            tracks=pio.TRACKS_BASE if graph is not None else None,
            tracks_source=source,
        )
        # project.json last: a folder without it is not (yet) a project.
        pio.write_project_info(p, info)
        log.info("created project %s", p)

    @classmethod
    def open(
        cls,
        folder: str | os.PathLike[str],
        fsync: bool = True,
        *,
        read_only: bool = False,
        repair: bool = False,
        lock: JournalLock | None = None,
        what: str | None = None,
    ) -> Project:
        """Open a project: load the base tracks and annotations, replay the journal.

        One process at a time opens a project for writing: it holds the journal's lock
        (``journal.jsonl.lock``) until :meth:`close`.

        Parameters
        ----------
        read_only : bool, default: False
            Open without the lock and without writing anything (exports, a look at a
            project another process edits); edits are refused.
        repair : bool, default: False
            Open at the last good edit when the journal is damaged or holds an edit that
            cannot be replayed; the journal is cut back there and the damaged one kept
            as ``journal.jsonl.damaged-<time>`` (:meth:`History.open`).
        lock : JournalLock, optional
            The lock, already held by the caller (who releases it).
        what : str, optional
            Names this process in the message another opener gets (e.g. ``vrscope view``).

        Raises
        ------
        ProjectLockedError
            Another process (or window) has the project open for writing.
        FormatError
            Not a project, an invalid file, a damaged journal, or a journal recorded on
            other base data.
        """
        p = Path(folder).expanduser()
        info = pio.read_project_info(p)
        tracks = None
        if info.tracks is not None:
            tp = p / info.tracks
            if not tp.exists():
                raise FormatError(f"project {p}: base tracks {tp} are missing")
            tracks = pio.read_tracks_file(tp)
        ap = p / pio.ANNOTATIONS_FILE
        if ap.is_file():
            annotations = Annotations.from_json(ap.read_bytes())
        else:
            annotations = Annotations()
        stores = {}
        for name in info.labels:
            copy = pio.label_copy_path(p, name)
            if copy.is_dir():
                stores[name] = pio.LabelEditStore(copy, name, fsync=fsync)
                stores[name].replaying = True
        ws = Workspace(tracks, annotations, stores)
        try:
            history = History.open(
                p, ws, fsync=fsync, read_only=read_only, repair=repair, lock=lock, what=what
            )
        finally:
            for store in stores.values():
                store.replaying = False
        try:
            damaged = history.journal.damaged_copy if history.journal is not None else None
            if damaged is not None:
                # Repaired: label edits after the cut are in the working copies; revert them.
                text = damaged.read_bytes()
                for store in stores.values():
                    store.discard_unjournaled(text, damaged.name.rsplit(".", 1)[-1])
            if not read_only:
                for store in stores.values():
                    store.recover()  # chunk writes a crash left pending (write-behind)
        except BaseException:
            history.close()
            raise
        pr = cls(p.resolve(), info, ws, history)
        pr._fsync = fsync
        return pr

    @property
    def read_only(self) -> bool:
        """Opened with ``read_only``: nothing is written, edits are refused."""
        return self.history.read_only

    # ------------------------------------------------------------------ views
    @property
    def tracks(self) -> TrackGraph | None:
        return self.workspace.tracks

    @property
    def annotations(self) -> Annotations:
        return self.workspace.annotations

    def save_scene(self, scene: Mapping[str, Any]) -> Path:
        """Store the viewer's scene state (any JSON-able dict) as ``scene.json``."""
        self._check_open()
        if self.read_only:
            raise ParameterError(f"project {self.path} is open read-only")
        return pio.write_json_atomic(self.path / pio.SCENE_FILE, dict(scene))

    def load_scene(self) -> dict[str, Any] | None:
        """The saved scene state, or None when none was saved."""
        f = self.path / pio.SCENE_FILE
        if not f.is_file():
            return None
        data = pio.read_json_file(f)
        if not isinstance(data, dict):
            raise FormatError(f"{f} does not hold a JSON object")
        return data

    # ------------------------------------------------------------------ labels
    def edit_labels(self, name: str) -> EditableLabels:
        """The working copy of label image ``name`` (made from the image store on first use).

        Raises
        ------
        ParameterError
            ``name`` is not one of the project's label images.
        LabelEditError
            The label image is not a (z, y, x) integer image.
        """
        self._check_open()
        if name in self.workspace.labels:
            return self.workspace.labels[name]
        if self.read_only:
            raise ParameterError(
                f"project {self.path} is open read-only: label image {name!r} has no edits"
            )
        if name not in self.info.labels:
            raise ParameterError(
                f"project {self.path} has no label image {name!r} "
                f"(it has: {', '.join(self.info.labels) or 'none'})"
            )
        copy = pio.label_copy_path(self.path, name)
        if not copy.is_dir():
            if self.info.image is None:
                raise FormatError(f"project {self.path} refers to no image store")
            copy.parent.mkdir(exist_ok=True)
            pio.create_label_copy(self.info.image, name, copy)
        store = pio.LabelEditStore(copy, name, fsync=self._fsync)
        self.workspace.labels[name] = store
        return store

    def export_labels(
        self, name: str, out: str | os.PathLike[str], overwrite: bool = False
    ) -> Path:
        """Write the edited label image ``name`` (every level) as an OME-Zarr at ``out``."""
        img = self.edit_labels(name)
        self.workspace.flush_labels()  # chunks still in memory go to the files first
        inputs = [str(self.path)] + ([self.info.image] if self.info.image else [])
        return pio.export_label_copy(
            pio.label_copy_path(self.path, name),
            out,
            inputs,
            overwrite=overwrite,
            ids=getattr(img, "ids", None),  # merges and tables made permanent
        )

    # ------------------------------------------------------------------ exports
    def export_markers(self, path: str | os.PathLike[str]) -> Path:
        """CSV, one row per marker: ``id, class, z_um, y_um, x_um, t``."""
        return pio.write_markers_csv(self.annotations.markers, path)

    def export_measurements(self, path: str | os.PathLike[str]) -> Path:
        """CSV, one row per measurement: ``id, kind, value, unit, t, n_points, points_um``."""
        return pio.write_measurements_csv(self.annotations.measurements, path)

    def export_tracks(self, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """The edited tracks as GEFF (or a CSV spots table for ``.csv``)."""
        if self.tracks is None:
            raise FormatError(f"project {self.path} has no tracks to export")
        return pio.write_tracks_file(self.tracks, path, overwrite=overwrite)

    # ------------------------------------------------------------------ lifetime
    def _check_open(self) -> None:
        if self._closed:
            raise FormatError(f"project {self.path} is closed")

    def close(self) -> None:
        """Write the label chunks still in memory, then close the journal (every
        confirmed edit is already durable: journal and undo data)."""
        if not self._closed:
            try:
                self.workspace.settle_labels()  # before the lock goes with the journal
            finally:
                self.history.close()
                self._closed = True

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Project({str(self.path)!r}, image={self.info.image!r})"
