"""The File menu's ways to bring data in: a store or URL, label images, tracks, projects.

Each entry is a registered action (``file.open_store`` ...; the desktop implements
them, :mod:`viewer.actions._file`); the dialogs only ask for a path, a URL or a
name, then call the methods of :class:`FileMenu`, which tests (and scripts) call
with the answer directly. What cannot be done says why in the window
(:meth:`QtViewer.show_error`), never only on the terminal.

A store, a URL or a new project opens in a new window (like *Open project…*);
label images and tracks are added to this window's scene. Recently opened or
saved projects are kept in the user's settings (``QSettings``, INI format).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from analysis.io import is_project, list_labels, open_labels, open_volume, read_tracks_file
from viewer.actions import ACTIONS
from viewer.scene import Labels

from ._session import ProofreadingSession
from ._workers import Job

__all__ = ["FileMenu", "recent_projects", "remember_project"]

log = logging.getLogger(__name__)

#: Settings key of the recently used project folders (newest first).
RECENT_KEY = "recent_projects"
MAX_RECENT = 8
#: The entry of the *Add labels* list that asks for another store's label image.
OTHER_LABELS = "Another label image (folder)…"


def settings() -> QtCore.QSettings:
    """The desktop's user settings (an INI file under the user's config folder)."""
    return QtCore.QSettings(
        QtCore.QSettings.Format.IniFormat,
        QtCore.QSettings.Scope.UserScope,
        "vrscope",
        "desktop",
    )


def recent_projects() -> list[str]:
    """Project folders opened or saved recently, newest first (those still there)."""
    value: Any = settings().value(RECENT_KEY, [])
    items = [value] if isinstance(value, str) else list(value or [])
    return [str(p) for p in items if p and is_project(str(p))]


def remember_project(folder: str | os.PathLike[str]) -> None:
    """Put ``folder`` first in the recent projects."""
    path = str(Path(folder).resolve())
    items = [path] + [p for p in recent_projects() if p != path]
    st = settings()
    st.setValue(RECENT_KEY, items[:MAX_RECENT])
    st.sync()


def all_labels(store: str) -> list[str]:
    """Every label image of ``store`` (what opening a store shows, as ``--labels`` omitted)."""
    try:
        return list_labels(store)
    except Exception as exc:  # a store without a labels group, or not readable
        log.info("no label images listed in %s: %s", store, exc)
        return []


class FileMenu:
    """The data entries of a window's File menu (see the module docstring).

    Parameters
    ----------
    win : QtViewer
    menu : QMenu
        The File menu; the entries are added at its end.
    """

    def __init__(self, win: Any, menu: QtWidgets.QMenu) -> None:
        self.win = win
        for aid, slot in (
            ("file.open_store", self._open_store_dialog),
            ("file.open_url", self._open_url_dialog),
            ("file.add_labels", self._add_labels_dialog),
            ("file.add_tracks", self._add_tracks_dialog),
            ("file.new_project", self._new_project_dialog),
        ):
            win._action(aid, ACTIONS[aid].title, slot, menu)
        self.recent_menu = menu.addMenu("Recent projects")
        self.recent_menu.setObjectName("recent")
        self.recent_menu.aboutToShow.connect(self.fill_recent)
        self.fill_recent()
        if win.session.project is not None:
            remember_project(win.session.project.path)

    @property
    def session(self) -> ProofreadingSession:
        return self.win.session  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ recent
    def fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = recent_projects()
        for folder in recent:
            act = QtGui.QAction(folder, self.recent_menu)
            act.triggered.connect(lambda *_, f=folder: self.win.open_project(f))
            self.recent_menu.addAction(act)
        if not recent:
            none = self.recent_menu.addAction("(none yet)")
            none.setEnabled(False)

    # ------------------------------------------------------------------ stores
    def open_store(self, store: str) -> Any:
        """Open an image store (path or URL) with all its label images in a new window.

        A local store opens at once and the new window is returned. A URL opens in a
        background job (returned; the new window appears when it is done): a slow or
        stalled server must not freeze the window, which says it is opening the URL,
        keeps reacting meanwhile (the job's row in the jobs panel can cancel it), and
        shows the failure (status bar and message box) when a read fails or times out.
        """
        store = store.strip()
        if not store:
            return None
        if "://" in store.removeprefix("file://"):
            return self._open_remote(store)
        try:
            session = ProofreadingSession.open(store, all_labels(store) or None)
        except Exception as exc:
            self.win.show_error(f"could not open {store}: {exc}")
            return None
        return self._show(session)

    def _open_remote(self, url: str) -> Job:
        def run(progress: Any) -> ProofreadingSession:
            progress(0, 1, "reading metadata")
            session = ProofreadingSession.open(url, all_labels(url) or None)
            progress(1, 1, "opening")
            return session

        # A failure is shown by the window (JobsPanel.failed: status bar and message box).
        job = Job(f"open {url}", run, on_done=self._show)
        self.win.status.showMessage(f"opening {url} …")
        self.win.jobs.start(job)
        return job

    def _show(self, session: ProofreadingSession) -> Any:
        new = type(self.win)(session)
        new.show()
        img = session.image_layer
        self.win.status.showMessage(f"opened {img.source if img is not None else 'tracks'}", 6000)
        return new

    def _open_store_dialog(self) -> None:
        d = QtWidgets.QFileDialog.getExistingDirectory(self.win, "Open OME-Zarr store")
        if d:
            self.open_store(d)

    def _open_url_dialog(self) -> None:
        url, ok = QtWidgets.QInputDialog.getText(
            self.win, "Open URL", "Path or URL of an OME-Zarr image (http, https, s3):"
        )
        if ok and url.strip():
            self.open_store(url)

    # ------------------------------------------------------------------ labels
    def addable_labels(self) -> list[str]:
        """Label images of the open image store not shown yet."""
        img = self.session.image_layer
        if img is None or img.source is None:
            return []
        shown = {lay.name for lay in self.session.labels_layers}
        return [n for n in all_labels(img.source) if n not in shown]

    def add_labels(self, name_or_folder: str) -> Labels | None:
        """Add a label image: a name of the image store's labels, or a label image's folder."""
        s = self.session
        img = s.image_layer
        store = img.source if img is not None else None
        try:
            if store is not None and name_or_folder in all_labels(store):
                name = name_or_folder
                src: Any = open_labels(store, name)
                source = f"{store}/labels/{name}"
            else:
                src = open_volume(name_or_folder)
                name = Path(str(name_or_folder).rstrip("/")).name or "labels"
                source = name_or_folder
                if s.project is not None:
                    s.notify(
                        f"{name}: not in the image store, so reopening the project will not show it"
                    )
        except Exception as exc:
            self.win.show_error(f"add labels: could not open {name_or_folder}: {exc}")
            return None
        if name in s.scene.layers.names:
            self.win.show_error(f"add labels: a layer named {name!r} is open already")
            return None
        lay = Labels(src, name=name, source=source)
        with self.win.render_view.render_thread.structural():
            s.scene.add(lay)
        self.win.status.showMessage(f"added label image {name}", 6000)
        return lay

    def _add_labels_dialog(self) -> None:
        items = [*self.addable_labels(), OTHER_LABELS]
        choice, ok = QtWidgets.QInputDialog.getItem(
            self.win, "Add labels", "Label image:", items, 0, False
        )
        if not ok:
            return
        if choice == OTHER_LABELS:
            choice = QtWidgets.QFileDialog.getExistingDirectory(self.win, "Label image (OME-Zarr)")
            if not choice:
                return
        self.add_labels(choice)

    # ------------------------------------------------------------------ tracks
    def add_tracks(self, path: str) -> bool:
        """Show the tracks of ``path`` (GEFF, CSV spots table or CTC folder) in this window.

        Only into a window without tracks and without a project: a project's journal
        replays onto the tracks it was made with (make a new project with them instead).
        """
        s = self.session
        if s.tracks is not None:
            self.win.show_error("add tracks: tracks are open already in this window")
            return False
        if s.project is not None:
            self.win.show_error(
                "add tracks: a project keeps the tracks it was made with; use File > New "
                "project… with these tracks"
            )
            return False
        try:
            graph = read_tracks_file(path)
        except Exception as exc:
            self.win.show_error(f"add tracks: could not read {path}: {exc}")
            return False
        self.use_tracks(graph, f"added {graph.n_nodes} track nodes from {path}")
        return True

    def use_tracks(self, graph: Any, message: str) -> Any:
        """Proofread ``graph`` (e.g. *Link tracks*' result): in this window when it has no
        tracks and no project, else in a new window on the same image and labels.

        Either way it is the session's tracks: in the Tracks list, drawn on the slices
        and in 3D, edited by every track action, exported by *Export tracks*, and kept
        by *Save project as…*. Returns the window that shows it.
        """
        s = self.session
        if s.tracks is None and s.project is None:
            with self.win.render_view.render_thread.structural():
                s.workspace.tracks = graph
                s.layers.ensure()
            s.refresh_layers()
            s.set_time(s.time_range()[0])
            s.edited.emit("tracks")
            self.win.status.showMessage(message, 6000)
            return self.win
        from viewer.render import build_store_scene

        img = s.image_layer
        try:
            scene = build_store_scene(
                img.source if img is not None else None,
                labels=[lay.name for lay in s.labels_layers] or None,
                tracks=graph,
                invert=img.invert if img is not None else None,
                azimuth=30.0,
                elevation=20.0,
            )
        except Exception as exc:
            self.win.show_error(f"could not open the tracks in a new window: {exc}")
            return None
        new = type(self.win)(ProofreadingSession(scene, None, graph))
        new.session.set_time(new.session.time_range()[0])
        new.show()
        new.status.showMessage(f"{message} (not saved: File > Save project as… keeps them)")
        self.win.status.showMessage(f"{message}: opened in a new window", 6000)
        return new

    def _add_tracks_dialog(self) -> None:
        d = QtWidgets.QFileDialog.getExistingDirectory(self.win, "Tracks (GEFF folder)")
        if d:
            self.add_tracks(d)

    # ------------------------------------------------------------------ projects
    def new_project(
        self, store: str, folder: str | os.PathLike[str], tracks: str | None = None
    ) -> Any:
        """Create a project in ``folder`` (made if missing) on ``store``, all its labels
        shown, and open it in a new window."""
        if is_project(folder):
            self.win.show_error(f"new project: {folder} is a project already (File > Open)")
            return None
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            session = ProofreadingSession.open(
                store, all_labels(store) or None, tracks=tracks, project=str(folder)
            )
        except Exception as exc:
            self.win.show_error(f"new project: could not make {folder}: {exc}")
            return None
        remember_project(folder)
        return self._show(session)

    def _new_project_dialog(self) -> None:
        store = QtWidgets.QFileDialog.getExistingDirectory(
            self.win, "New project: the image store (OME-Zarr)"
        )
        if not store:
            return
        default = str(Path(store).with_name(Path(store).stem + "-project"))
        folder, _ = QtWidgets.QFileDialog.getSaveFileName(
            self.win, "New project: folder to create", default
        )
        if folder:
            self.new_project(store, folder)
