"""``ProofreadingSession``: the desktop's state and actions, without any Qt.

It ties a :class:`viewer.scene.Scene` (what is drawn) to an
:class:`analysis.project.Project` or an in-memory :class:`Workspace` (what is
edited). Every action builds an :mod:`analysis.edits` / :mod:`analysis.annotations`
command and applies it through the ONE ``History``; the history's ``changed``
event then refreshes the scene's tracks, markers and measurements layers. Mouse,
keyboard (and, through the same methods, other front ends) drive these methods;
none of them changes data directly.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from psygnal import Signal

from analysis.annotations import AddMarker, AddMeasurement, DefineClass
from analysis.edits import Command, History
from analysis.errors import InvalidEditError, ParameterError
from analysis.project import Project, Workspace
from analysis.tracks import TrackGraph
from viewer.actions import (
    MEASURE_POINTS,
    LabelEditing,
    Measuring,
    Pick,
    is_timelapse,
    node_near,
    select_node,
    selected_nodes,
    set_time,
    time_range,
)
from viewer.actions import run as run_action
from viewer.scene import (
    Image,
    Labels,
    Measurements,
    Points,
    Scene,
)

from ._clipping import SessionClipping, world_of
from ._sessionlayers import SessionLayers, track_table
from ._tracklayer import TrackLayerState

__all__ = ["Mode", "ProofreadingSession"]

log = logging.getLogger(__name__)

Mode = Literal["navigate", "count", "distance", "angle", "path", "prolong"]


class ProofreadingSession:
    """State and actions of one desktop session.

    Parameters
    ----------
    scene : Scene
        Built by the caller (e.g. ``viewer.render.build_store_scene``); the session
        adds or refreshes the ``tracks``, ``markers`` and ``measurements`` layers.
    project : Project, optional
        Edits are journaled in its folder. Without one, a :class:`Workspace`
        (``tracks``) is edited in memory with an unjournaled History.
    tracks : TrackGraph, optional
        Used only without a project.

    Events
    ------
    cursor_changed(zyx)
        The shared crosshair moved (slice views follow).
    shown(zyx)
        Every view is asked to centre on a point (after the crosshair moved there).
    mode_changed(str)
    pending_changed()
        Points of an unfinished measurement or prolongation changed.
    edited(str)
        After every apply/undo/redo, once the layers are refreshed (payload: action).
    message(str)
        A one-line status for the user (e.g. why an edit was refused).
    """

    cursor_changed = Signal(object)
    shown = Signal(object)
    mode_changed = Signal(str)
    pending_changed = Signal()
    edited = Signal(str)
    message = Signal(str)

    def __init__(
        self,
        scene: Scene,
        project: Project | None = None,
        tracks: TrackGraph | None = None,
    ) -> None:
        self.scene = scene
        self.project = project
        if project is not None:
            self.workspace = project.workspace
            self.history = project.history
        else:
            self.workspace = Workspace(tracks)
            self.history = History(self.workspace)
        self._mode: Mode = "navigate"
        self.current_class = "default"
        classes = self.annotations.classes
        if classes:
            self.current_class = classes[0].name
        #: The measurement being placed (kind = the measuring mode).
        self.measuring = Measuring()
        #: Taken while layer data are replaced; a front end that renders on another
        #: thread sets it to its render lock (see ``viewer.qt.RenderThread.lock``).
        self.scene_lock: Any = threading.RLock()
        #: The workspace mirrored into the scene's tracks, markers and measurements layers.
        self.layers = SessionLayers(scene, lambda: self.workspace, lambda: self.scene_lock)
        lo, hi = self.extent_world()
        self._cursor = tuple(float(v) for v in (lo + hi) / 2)
        self.layers.ensure()
        #: Clipping planes: presets, offsets across the scene (``SessionClipping``).
        self.clipping = SessionClipping(scene, self.extent_world, lambda: self.cursor)
        #: Edits (applied, undone or redone) not kept anywhere yet: counted only without a
        #: project (a project journals every edit when it is made).
        self.unsaved_edits = 0
        #: Who keeps the edits of a session without a project (e.g. a collaboration server).
        self.kept_by: str | None = None
        self.history.changed.connect(self._on_history)
        self.refresh_layers()
        #: Label editing: working copies, the brush, change events (``labels.*`` actions).
        self.label_edits = LabelEditing(
            scene,
            self._edit_labels,
            project.workspace.labels if project is not None else None,
            lock=lambda: self.scene_lock,
        )

    # ------------------------------------------------------------------ construction
    @classmethod
    def open(
        cls,
        store: str | os.PathLike[str] | None = None,
        labels: Sequence[str] | None = None,
        tracks: str | os.PathLike[str] | None = None,
        project: str | os.PathLike[str] | None = None,
        invert: bool | None = None,
        read_only: bool = False,
    ) -> ProofreadingSession:
        """Open a store (and/or a project folder) the way ``vrscope view`` does.

        ``read_only``: open an existing project without its lock and refuse every edit
        (a look at a project another process edits, issue 21).

        With ``project`` naming an existing project, its image, labels and edited
        tracks are used (``store``/``labels``/``tracks`` may be omitted). A
        ``project`` folder that is not yet a project is created from the
        arguments. Without ``project`` the edits live in memory.
        """
        from analysis.io import is_project, read_tracks_file
        from viewer.render import build_store_scene

        proj: Project | None = None
        graph: TrackGraph | None = None
        if project is not None and is_project(project):
            proj = Project.open(project, read_only=read_only)
            store = store if store is not None else proj.info.image
            labels = labels if labels else proj.info.labels
            graph = proj.tracks
        elif project is not None:
            if store is None:
                raise ParameterError(f"{project} is not a project yet: give the image store too")
            proj = Project.create(project, image=store, labels=labels or (), tracks=tracks)
            graph = proj.tracks
        elif tracks is not None:
            graph = read_tracks_file(tracks)
        if store is None and graph is None:
            raise ParameterError("nothing to show: give an image store, --tracks or --project")
        try:
            scene = build_store_scene(
                None if store is None else os.fspath(store),
                labels=list(labels) if labels else None,
                tracks=graph,
                # None: build_store_scene's one EM rule (looks_dark_on_light).
                invert=invert,
                azimuth=30.0,
                elevation=20.0,
            )
        except BaseException:
            if proj is not None:
                proj.close()
            raise
        # A time-lapse opens at its first time point, where review starts (the render
        # command shows the last one, the whole lineage drawn); a project's saved view
        # restores its own time afterwards.
        scene.current_time = float(time_range(scene, graph)[0])
        return cls(scene, proj, graph)

    # ------------------------------------------------------------------ basic state
    @property
    def tracks(self) -> TrackGraph | None:
        return self.workspace.tracks

    @property
    def annotations(self) -> Any:
        return self.workspace.annotations

    @property
    def image_layer(self) -> Image | None:
        return next((lay for lay in self.scene.layers if isinstance(lay, Image)), None)

    @property
    def labels_layers(self) -> list[Labels]:
        return [lay for lay in self.scene.layers if isinstance(lay, Labels)]

    @property
    def is_timelapse(self) -> bool:
        return is_timelapse(self.scene, self.tracks)

    def time_range(self) -> tuple[int, int]:
        """First and last time point (frames) of the image and tracks."""
        return time_range(self.scene, self.tracks)

    @property
    def time(self) -> int:
        return int(round(self.scene.current_time))

    def set_time(self, t: float) -> None:
        set_time(self, t)

    @property
    def cursor(self) -> tuple[float, float, float]:
        """The shared crosshair, world zyx µm."""
        return self._cursor  # type: ignore[return-value]

    def extent_world(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """``scene.extent_world()``, kept between changes (:meth:`SessionLayers.extent_world`)."""
        return self.layers.extent_world()

    def set_cursor(self, zyx: Sequence[float]) -> None:
        lo, hi = self.extent_world()
        c = tuple(float(np.clip(v, a, b)) for v, a, b in zip(zyx, lo, hi, strict=True))
        if c != self._cursor:
            self._cursor = c
            self.cursor_changed.emit(c)

    @property
    def mode(self) -> Mode:
        return self._mode

    def set_mode(self, mode: Mode) -> None:
        if mode not in ("navigate", "count", "distance", "angle", "path", "prolong"):
            raise ParameterError(f"unknown tool mode {mode!r}")
        if mode == "prolong" and self._selected_node() is None:
            self.message.emit("prolong: select a track first")
            mode = "navigate"
        self._mode = mode
        self.measuring = Measuring(kind=mode)
        self.pending_changed.emit()
        self.mode_changed.emit(mode)

    # ------------------------------------------------------------------ layers
    @property
    def track_state(self) -> TrackLayerState | None:
        """The tracks layer's columns and tracklet table, patched per edit."""
        return self.layers.track_state

    def layer(self, name: str) -> Any:
        return self.scene.layers.get(name)

    def refresh_layers(self) -> None:
        """Copy tracks, markers and measurements from the workspace into the scene layers."""
        self.layers.refresh()

    def track_rows(self) -> list[dict[str, Any]]:
        """The tracklet table (as :meth:`track_table`), kept up to date per edit."""
        return self.layers.track_rows()

    def track_table(self) -> list[dict[str, Any]]:
        """One row per tracklet: ``track``, ``start``, ``end`` (t), ``nodes``, ``reviewed``, ``first``."""
        return track_table(self.tracks)

    def _on_history(self, action: str, what: object) -> None:
        if self.project is None and self.kept_by is None:
            self.unsaved_edits += 1
        self.refresh_layers()
        sel = self.scene.selection
        if self.tracks is not None and sel.node_ids:
            alive = [n for n in sel.node_ids if n in self.tracks]
            if alive != list(sel.node_ids):
                sel.node_ids = alive
        self.edited.emit(action)

    # ------------------------------------------------------------------ ActionContext
    # The session is the desktop's ``viewer.actions.ActionContext``: every edit below
    # is a registered action (the headset runs the same ones).
    @property
    def class_name(self) -> str:
        return self.current_class

    @property
    def pending(self) -> list[tuple[float, float, float]]:
        """Points of the measurement being placed (world zyx µm)."""
        return self.measuring.points

    def execute(self, cmd: Command) -> Command:
        """Apply through the History (raises ``InvalidEditError`` when refused)."""
        return self.history.apply(cmd)

    def group(self, name: str) -> Any:
        return self.history.group(name)

    def notify(self, text: str) -> None:
        self.message.emit(text)

    def measuring_changed(self) -> None:
        self.pending_changed.emit()

    def show_point(self, zyx: Sequence[float]) -> None:
        """Centre every view on world ``zyx``: crosshair and slices, and the 3D view's focus."""
        self.set_cursor(zyx)
        cam = self.scene.camera
        shift = np.asarray(self.cursor, dtype=np.float64) - np.asarray(cam.focal_point)
        cam.update(
            {
                "position": tuple(float(v) for v in np.asarray(cam.position) + shift),
                "focal_point": tuple(float(v) for v in self.cursor),
            }
        )
        self.shown.emit(self.cursor)

    def reset_view(self) -> None:
        self.scene.reset_camera()
        self.scene.camera.orbit(azimuth=30, elevation=20)

    def _edit_labels(self, name: str) -> Any:
        if self.project is None:
            raise InvalidEditError(
                "label edits are kept in a project: save one first (File > Save project as…)"
            )
        return self.project.edit_labels(name)

    @property
    def label_brush(self) -> Any:
        return self.label_edits.brush

    def label_image(self, name: str) -> Any:
        """The editable label image of labels layer ``name`` (the project's working copy)."""
        return self.label_edits.image(name)

    def label_brush_changed(self) -> None:
        self.label_edits.brush_changed.emit()

    def run(self, action: str, pick: Pick | None = None) -> Any:
        """Run the registered action ``action`` (``viewer.actions``) on this session."""
        return run_action(action, self, pick)

    # ------------------------------------------------------------------ applying
    def apply(self, cmd: Command) -> Command | None:
        """Apply through the History; a refused edit becomes a message, not an exception."""
        try:
            return self.history.apply(cmd)
        except InvalidEditError as exc:
            self.message.emit(f"{cmd.description}: {exc}")
            return None

    def undo(self) -> None:
        if not self.history.can_undo:
            self.message.emit("nothing to undo")
            return
        step = self.history.undo()
        self.message.emit(f"undid {step.name}")

    def redo(self) -> None:
        if not self.history.can_redo:
            self.message.emit("nothing to redo")
            return
        step = self.history.redo()
        self.message.emit(f"redid {step.name}")

    # ------------------------------------------------------------------ selection
    def select_node(self, node_id: int | None, add: bool = False) -> None:
        """Select a track node (``add``: keep the first selected one, e.g. to merge or swap)."""
        select_node(self, node_id, add)

    def node_near(self, zyx: Sequence[float], max_distance_um: float) -> int | None:
        """The track node at the current time nearest to ``zyx`` (within the distance)."""
        return node_near(self.tracks, self.time, zyx, max_distance_um)

    def select_labels(self, layer: str, ids: Sequence[int]) -> None:
        self.scene.selection.update({"layer": layer, "label_ids": [int(i) for i in ids]})

    def _selected_node(self, k: int = 0) -> int | None:
        ids = selected_nodes(self)
        return ids[k] if len(ids) > k else None

    # ------------------------------------------------------------------ track actions
    def cut(self) -> Command | None:
        """``tracks.cut``: the selected track at the current time (that node starts a new track)."""
        return self.run("tracks.cut")  # type: ignore[no-any-return]

    def merge(self) -> Command | None:
        """``tracks.merge``: the end of the first selected track to the start of the second."""
        return self.run("tracks.merge")  # type: ignore[no-any-return]

    def swap(self) -> Command | None:
        """``tracks.swap``: exchange the two selected tracks after the current time."""
        return self.run("tracks.swap")  # type: ignore[no-any-return]

    def delete_track(self) -> Command | None:
        return self.run("tracks.delete")  # type: ignore[no-any-return]

    def delete_node(self) -> Command | None:
        return self.run("tracks.delete_node")  # type: ignore[no-any-return]

    def toggle_reviewed(self) -> Command | None:
        """``tracks.mark_reviewed``: the selected tracks (unreviewed if the first already is)."""
        return self.run("tracks.mark_reviewed")  # type: ignore[no-any-return]

    def prolong_to(self, zyx: Sequence[float]) -> Command | None:
        """``tracks.prolong``: a detection at ``zyx`` after the selected track's end."""
        return self.run("tracks.prolong", Pick(point_um=world_of(zyx)))  # type: ignore[no-any-return]

    def next_unreviewed(self) -> int | None:
        """``tracks.next_unreviewed``: select the next unreviewed tracklet's first node."""
        return self.run("tracks.next_unreviewed")  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ counting / measuring
    def define_class(self, name: str, color: Sequence[float] | None = None) -> Command | None:
        cmd = self.apply(DefineClass(name, color))
        if cmd is not None:
            self.current_class = name
        return cmd

    def place_marker(self, zyx: Sequence[float]) -> Command | None:
        return self.run("annotations.add_marker", Pick(point_um=world_of(zyx)))  # type: ignore[no-any-return]

    def remove_marker_near(self, zyx: Sequence[float], max_distance_um: float) -> Command | None:
        pick = Pick(point_um=world_of(zyx), tolerance_um=float(max_distance_um))
        return self.run("annotations.remove_marker", pick)  # type: ignore[no-any-return]

    def add_point(self, zyx: Sequence[float]) -> Command | None:
        """Feed a click to the current mode (count, measure, prolong)."""
        p = world_of(zyx)
        if self._mode == "count":
            return self.place_marker(p)
        if self._mode == "prolong":
            return self.prolong_to(p)
        if self._mode in MEASURE_POINTS:
            return self.run("annotations.measure_point", Pick(point_um=p))  # type: ignore[no-any-return]
        self.set_cursor(p)
        return None

    def finish_measurement(self) -> Command | None:
        """Record the pending points as a measurement of the current mode (path: any >= 2)."""
        if self._mode not in MEASURE_POINTS:
            return None
        return self.run("annotations.finish_measurement")  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ object classes
    def object_examples(self, layer: str) -> dict[int, str]:
        """``{label: class}`` the user assigned in labels layer ``layer`` (training examples)."""
        return dict(self.annotations.object_classes.get(layer, {}))

    def classify_selected(self, class_name: str | None) -> int:
        """Give the selected objects ``class_name`` (None: unclassify) as one undoable step.

        ``objects.classify`` with the selection; each object is a ``SetObjectClass``
        command (journaled); returns how many.
        """
        old, self.current_class = self.current_class, class_name  # type: ignore[assignment]
        try:
            n = self.run("objects.classify")
        finally:
            self.current_class = old
        return int(n or 0)

    # ------------------------------------------------------------------ project
    def scene_state(self) -> dict[str, Any]:
        """The scene as a JSON-able dict (``viewer.scene`` schema)."""
        import json

        from viewer.scene import scene_to_json

        return dict(json.loads(scene_to_json(self.scene)))

    def restore_scene(self, state: dict[str, Any]) -> None:
        """Apply a saved scene state: camera, time, planes and each layer's display fields."""
        from viewer.scene import SceneState

        # Front ends may keep their own keys next to the scene fields (e.g. "vrscope_qt").
        st = SceneState.model_validate(
            {k: v for k, v in state.items() if k in SceneState.model_fields}
        )
        with self.scene_lock:
            self._restore(st)

    def _restore(self, st: Any) -> None:
        self.scene.camera.update(st.camera.model_dump())
        self.scene.clipping_planes.clear()
        for p in st.clipping_planes:
            self.scene.clipping_planes.append(p)
        by_name = {lay.name: lay for lay in self.scene.layers}
        for saved in st.layers:
            lay = by_name.get(saved.name)
            if lay is None or type(lay) is not type(saved):
                continue
            keep = {"name", "kind", "source"}
            if isinstance(lay, (Points, Measurements)):
                # Their content comes from the annotations (the journal), not the scene file.
                keep |= {"positions_um", "classes", "class_colors", "items"}
            fields = {k: v for k, v in saved.model_dump().items() if k not in keep}
            lay.update(fields)
        self.scene.current_time = st.current_time
        self.scene.selection.update(st.selection.model_dump())

    def save(self, folder: str | os.PathLike[str] | None = None) -> Path:
        """Save the scene state into the project (journal is always current).

        Without a project, ``folder`` creates one from the current state (tracks as
        edited become its base; the in-memory undo history starts afresh).
        """
        if self.project is None:
            if folder is None:
                raise ParameterError("this session has no project folder: choose one to save into")
            img = self.image_layer
            store = img.source if img is not None else None
            self.project = Project.create(
                folder,
                image=store,
                labels=[lay.name for lay in self.labels_layers],
                tracks=self.tracks,
                classes={c.name: c.color for c in self.annotations.classes},
            )
            for m in self.annotations.markers:
                self.project.history.apply(
                    AddMarker(m.class_name, m.position_um, m.t, marker_id=m.id)
                )
            for ms in self.annotations.measurements:
                self.project.history.apply(
                    AddMeasurement(ms.kind, list(ms.points_um), ms.t, measurement_id=ms.id)
                )
            self.history.changed.disconnect(self._on_history)
            self.workspace = self.project.workspace
            self.history = self.project.history
            self.history.changed.connect(self._on_history)
            self.refresh_layers()
            self.unsaved_edits = 0
            self.edited.emit("save")
        self.project.save_scene(self.scene_state())
        return self.project.path

    @property
    def read_only(self) -> bool:
        """The project is open read-only: every edit is refused."""
        return self.project is not None and self.project.read_only

    @property
    def save_state(self) -> str:
        """Where the edits are, in one line for the user (the status bar)."""
        if self.read_only:
            return "read-only: edits are off (another window or process edits this project)"
        if self.project is not None:
            return f"all edits saved (journaled in {self.project.path.name})"
        if self.kept_by is not None:
            return f"all edits saved (by {self.kept_by})"
        if self.unsaved_edits:
            n = self.unsaved_edits
            return (
                f"{n} unsaved edit{'s' if n != 1 else ''} (no project: Save project as… keeps them)"
            )
        return "no edits (no project)"

    def close(self) -> None:
        """Stop listening to the history and close the project's journal (idempotent)."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        self.history.changed.disconnect(self._on_history)
        self.label_edits.close()
        self.layers.close()
        if self.project is not None:
            self.project.close()


ProgressFn = Callable[[int, int], None]
