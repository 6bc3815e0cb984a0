"""``QtViewer``: the desktop proofreading window, and ``run_viewer`` (``vrscope view``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from analysis.edits import ProjectLockedError
from viewer.actions import ACTIONS, SCENE_TOLERANCE_FRACTION, Pick, screen_tolerance_um
from viewer.scene import Labels

from ._filemenu import FileMenu, remember_project
from ._labeltools import QtLabelTools
from ._legend import ClassLegend
from ._lineage import LineageView
from ._objectlist import ObjectList
from ._panels import (
    AnnotationPanel,
    ClippingPanel,
    FeaturesPanel,
    LayerPanel,
    TimeBar,
    TracksPanel,
)
from ._render_view import QtRenderView
from ._session import ProofreadingSession
from ._slices import (
    PLANES,
    Plane,
    QtSliceSlider,
    QtSliceView,
    SliceLoader,
    grab_array,
    set_histogram_image,
)
from ._workers import (
    Job,
    JobsPanel,
    classify_job,
    link_job,
    measure_job,
    profile_job,
    show_profile_report,
)

__all__ = ["QtViewer", "run_viewer"]

log = logging.getLogger(__name__)

#: Keyboard shortcuts of the actions, ``{action id: key}`` (from ``viewer.actions.ACTIONS``;
#: docs/desktop.md's key table is tested against the same registry).
SHORTCUTS: dict[str, str] = ACTIONS.shortcuts()

#: Registered actions the window shows in a menu, by menu (the rest are mouse-driven).
MENU_OF_GROUP = {
    "edit": "Edit",
    "tracks": "Tracks",
    "time": "Tracks",
    "tool": "Tools",
    "annotations": "Tools",
    "view": "View",
    "image": "View",
}
MODES = ("navigate", "count", "distance", "angle", "path")

#: Menu entries a read-only window greys out: everything that edits the project (the
#: journal refuses these edits anyway; greyed, the user sees it before trying).
READ_ONLY_OFF = (
    "edit.",
    "tracks.cut",
    "tracks.merge",
    "tracks.swap",
    "tracks.delete",
    "tracks.add_division",
    "tracks.mark_reviewed",
    "tool.prolong",
    "tool.count",
    "tool.distance",
    "tool.angle",
    "tool.path",
    "tool.paint",
    "tool.erase",
    "tool.fill",
    "tool.split",
    "annotations.",
    "labels.",
    "objects.",
    "file.save",
    "file.add_labels",
    "file.add_tracks",
)


class QtViewer(QtWidgets.QMainWindow):
    """Main window: 3D view, XY/XZ/YZ slices, layer list, contrast, time, features, tracks, counts.

    Parameters
    ----------
    session : ProofreadingSession
        What is shown and edited; the window closes it when it closes.
    size : (width, height)
    streaming : bool, default: True
        Stream the 3D view's image layers (level of detail per brick).
    stream_cache_bytes : int, optional
        RAM budget of the streamed bricks (default: a quarter of RAM).

    Attributes
    ----------
    render_view : QtRenderView
    slices : dict plane -> QtSliceView
    qactions : dict name -> QAction (names as in :data:`SHORTCUTS`)
    jobs : JobsPanel
    """

    def __init__(
        self,
        session: ProofreadingSession,
        size: tuple[int, int] = (1400, 900),
        streaming: bool = True,
        stream_cache_bytes: int | None = None,
    ) -> None:
        super().__init__()
        # mouseRateLimit 0: pyqtgraph otherwise drops any move within 10 ms of the last one
        # and never delivers it later, so where the pointer comes to rest can be lost (the
        # hover ring, the readout and the brush circle stay where it passed). Qt already
        # merges queued motion events when the GUI thread falls behind.
        pg.setConfigOptions(imageAxisOrder="row-major", antialias=True, mouseRateLimit=0)
        self.session = session
        self.setWindowTitle(self._title())
        self.resize(*size)
        s = session
        # -- central: 3D + three slices in a 2x2 grid -----------------------------
        self.render_view = QtRenderView(
            s.scene, streaming=streaming, cache_bytes=stream_cache_bytes
        )
        s.scene_lock = self.render_view.render_thread.lock
        #: Worker threads reading the slices (shared by the three views).
        self.slice_loader = SliceLoader()
        self.slices = {p: QtSliceView(s, p, loader=self.slice_loader) for p in PLANES}
        grid = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        top = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        bottom = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        #: A slider beside each slice view, through its slices.
        self.slice_sliders = {p: QtSliceSlider(v) for p, v in self.slices.items()}
        #: The marker classes' names and colours over each view, by view ("3d", "xy"...).
        views: dict[str, QtWidgets.QWidget] = {"3d": self.render_view}
        views.update({str(p): v for p, v in self.slices.items()})
        self.class_legends = {name: ClassLegend(s, view) for name, view in views.items()}
        top.addWidget(self.render_view)
        top.addWidget(self._with_slider("xy"))
        bottom.addWidget(self._with_slider("xz"))
        bottom.addWidget(self._with_slider("yz"))
        grid.addWidget(top)
        grid.addWidget(bottom)
        central = QtWidgets.QWidget()
        cl = QtWidgets.QVBoxLayout(central)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(grid, 1)
        self.time_bar = TimeBar(s)
        self.time_bar.ready = self._shows_current_time
        cl.addWidget(self.time_bar)
        self.setCentralWidget(central)
        # -- docks ------------------------------------------------------------------
        self.layers_panel = LayerPanel(s)
        self.histogram = pg.HistogramLUTWidget(gradientPosition="left")
        self.histogram.setMinimumWidth(120)
        img = s.image_layer
        if img is not None:
            set_histogram_image(self.histogram, img, self.slices["xy"].image)
        self.features = FeaturesPanel(s)
        self.tracks_panel = TracksPanel(s)
        #: The selected track's lineage tree, linked both ways with the views (issue 18.12).
        self.lineage = LineageView(s)
        self.annotation_panel = AnnotationPanel(s)
        self.clipping_panel = ClippingPanel(s)
        self.jobs = JobsPanel()
        #: The objects of a labels layer: sizes, search by id, go to (issue 17).
        self.object_list = ObjectList(s, self.jobs)
        right = QtCore.Qt.DockWidgetArea.RightDockWidgetArea
        left = QtCore.Qt.DockWidgetArea.LeftDockWidgetArea
        self.docks: dict[str, QtWidgets.QDockWidget] = {}
        for name, widget, area in (
            ("Layers", self.layers_panel, left),
            ("Contrast", self.histogram, left),
            ("Counting and measuring", self.annotation_panel, left),
            ("Features", self.features, right),
            ("Tracks", self.tracks_panel, right),
            ("Lineage", self.lineage, right),
            ("Objects", self.object_list, right),
            ("Jobs", self.jobs, right),
            ("Clipping", self.clipping_panel, right),
        ):
            dock = QtWidgets.QDockWidget(name, self)
            dock.setObjectName(name)
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
            self.docks[name] = dock
        self.tabifyDockWidget(self.docks["Features"], self.docks["Tracks"])
        self.tabifyDockWidget(self.docks["Tracks"], self.docks["Lineage"])
        self.tabifyDockWidget(self.docks["Lineage"], self.docks["Objects"])
        self.docks["Objects"].visibilityChanged.connect(self.object_list.set_shown)
        self.docks["Features"].raise_()
        w = size[0]
        self.resizeDocks(
            [self.docks["Layers"], self.docks["Features"]],
            [int(w * 0.17), int(w * 0.24)],
            QtCore.Qt.Orientation.Horizontal,
        )
        self.status = self.statusBar()
        self.mode_label = QtWidgets.QLabel()
        self.fps_label = QtWidgets.QLabel()
        self.stream_label = QtWidgets.QLabel()
        #: Whether the edits are kept (journaled) or would be lost on closing.
        self.save_label = QtWidgets.QLabel(s.save_state)
        #: What lies under the mouse on a slice: µm, voxel, intensity, label id (and class).
        self.readout_label = QtWidgets.QLabel()
        self.status.addPermanentWidget(self.readout_label)
        self.status.addPermanentWidget(self.save_label)
        self.status.addPermanentWidget(self.mode_label)
        self.status.addPermanentWidget(self.stream_label)
        self.status.addPermanentWidget(self.fps_label)
        #: Errors shown in this window (each once in a message box), oldest first.
        self.errors: list[str] = []
        self.error_box: QtWidgets.QMessageBox | None = None
        self.qactions: dict[str, QtGui.QAction] = {}
        self._make_actions()
        # -- wiring ------------------------------------------------------------------
        s.message.connect(lambda m: self.status.showMessage(m, 6000))
        s.mode_changed.connect(self._on_mode)
        s.edited.connect(self._on_edited)
        #: The slice view the slice keys step: the one the mouse was last over.
        self.active_slice: Plane = "xy"
        for plane, view in self.slices.items():
            view.clicked.connect(self._on_slice_click)
            view.used.connect(lambda p=plane: setattr(self, "active_slice", p))
            view.pointed.connect(self.readout_label.setText)
            view.failed.connect(self.show_error)
        self.jobs.failed.connect(lambda name, msg: self.show_error(f"{name} failed: {msg}"))
        self.render_view.clicked.connect(self._on_3d_click)
        self.render_view.frame_shown.connect(
            lambda dt: self.fps_label.setText(f"3D frame {dt * 1000:.0f} ms")
        )
        self.render_view.stream_stats.connect(self._on_stream_stats)
        self.features.train.clicked.connect(lambda: self.run_classifier())
        s.scene.layers.events.inserted.connect(self._on_layer_inserted)
        #: Label editing tools (menu "Labels": select, merge, split, paint, erase, fill).
        self.label_tools = QtLabelTools(self)
        self._on_mode(s.mode)
        self._restore()
        #: In the status bar while the project is open read-only (issue 21).
        self.read_only_label = QtWidgets.QLabel("<b>read-only</b>")
        self.read_only_label.setObjectName("read_only")
        self.read_only_label.setToolTip(s.save_state)
        self.status.addPermanentWidget(self.read_only_label)
        self.read_only_label.setVisible(s.read_only)
        if s.read_only:
            self._edits_off()

    def _shows_current_time(self) -> bool:
        """Every view shows the current time point (Play steps on only then): no slice is
        loading and the 3D view drew a frame at this time with its image caught up."""
        if any(v.busy for v in self.slices.values()):
            return False
        rt = self.render_view.render_thread
        shown = rt.shown_times
        return shown is None or (
            shown[0] == self.session.scene.current_time and not rt.image_behind
        )

    def _with_slider(self, plane: Plane) -> QtWidgets.QWidget:
        box = QtWidgets.QWidget()
        lay = QtWidgets.QHBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.slices[plane], 1)
        lay.addWidget(self.slice_sliders[plane])
        return box

    def show_error(self, text: str) -> QtWidgets.QMessageBox | None:
        """Show an error in the window: the status bar and a dismissible message box.

        Each distinct message gets one box per window (a failing read repeated on every
        redraw does not pile them up); the status bar shows the latest.
        """
        log.warning("%s", text)
        self.status.showMessage(text)
        if text in self.errors:
            return None
        self.errors.append(text)
        box = QtWidgets.QMessageBox(self)
        box.setObjectName("error")
        box.setIcon(QtWidgets.QMessageBox.Icon.Warning)
        box.setWindowTitle("vrscope")
        box.setText(text)
        box.setStandardButtons(QtWidgets.QMessageBox.StandardButton.Close)
        box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setModal(False)
        box.show()
        self.error_box = box
        return box

    def _title(self) -> str:
        p = self.session.project
        if p is None:
            return "vrscope"
        return f"vrscope — {p.path.name}" + (" (read-only)" if self.session.read_only else "")

    def _edits_off(self) -> None:
        """Grey out every menu entry that edits (a read-only project)."""
        for name, act in self.qactions.items():
            if name.startswith(READ_ONLY_OFF) and not name.startswith("labels.select"):
                act.setEnabled(False)
        if self.session.mode != "navigate":
            self.session.set_mode("navigate")

    # ------------------------------------------------------------------ actions
    def _action(self, name: str, text: str, slot: Any, menu: QtWidgets.QMenu) -> QtGui.QAction:
        act = QtGui.QAction(text, self)
        key = SHORTCUTS.get(name)
        if key:
            act.setShortcut(QtGui.QKeySequence(key))
            # Shortcuts work wherever the keyboard focus is inside the window.
            act.setShortcutContext(QtCore.Qt.ShortcutContext.WindowShortcut)
        if name in ACTIONS:
            act.setToolTip(ACTIONS[name].description)
        act.triggered.connect(lambda *_: slot())
        menu.addAction(act)
        self.addAction(act)
        self.qactions[name] = act
        return act

    def _registered(self, menus: dict[str, QtWidgets.QMenu], group: str) -> None:
        """Menu items for the registered actions of ``group`` that are not mouse-only."""
        s = self.session
        menu = menus[MENU_OF_GROUP[group]]
        for a in ACTIONS.group(group):
            if a.id == "tracks.prolong":
                # A mode: P arms it, each click then runs the action with the point.
                self._action("tool.prolong", ACTIONS["tool.prolong"].title, self._arm_prolong, menu)
                continue
            if a.fn is None or a.mouse:
                continue
            self._action(a.id, a.title, lambda i=a.id: s.run(i), menu)

    def _arm_prolong(self) -> None:
        self.session.set_mode("prolong")

    def _make_actions(self) -> None:
        s = self.session
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self._action("file.open", "Open project…", self._open_project_dialog, f)
        #: Open store/URL, add labels/tracks, new and recent projects (issue 18.10).
        self.file_menu = FileMenu(self, f)
        f.addSeparator()
        self._action("file.save", ACTIONS["file.save"].title, self.save, f)
        self._action("file.save_as", "Save project as…", self._save_as_dialog, f)
        f.addSeparator()
        self._action(
            "file.screenshot", ACTIONS["file.screenshot"].title, self._screenshot_dialog, f
        )
        self._action("file.movie", "Export movie…", self._movie_dialog, f)
        self._action(
            "file.export_markers", "Export markers CSV…", lambda: self._export("markers"), f
        )
        self._action(
            "file.export_measurements",
            "Export measurements CSV…",
            lambda: self._export("measurements"),
            f,
        )
        self._action("file.export_tracks", "Export tracks…", lambda: self._export("tracks"), f)
        f.addSeparator()
        self._action("file.quit", "Quit", self.close, f)
        menus = {
            "Edit": mb.addMenu("&Edit"),
            "Tracks": mb.addMenu("&Tracks"),
            "Tools": mb.addMenu("T&ools"),
        }
        self._registered(menus, "edit")
        self._registered(menus, "tracks")
        self._registered(menus, "time")
        tools = menus["Tools"]
        group = QtGui.QActionGroup(self)
        for mode in MODES:
            aid = f"tool.{mode}"
            act = self._action(aid, ACTIONS[aid].title, lambda m=mode: s.set_mode(m), tools)
            act.setCheckable(True)
            group.addAction(act)
        self._action(
            "annotations.finish_measurement",
            ACTIONS["annotations.finish_measurement"].title,
            s.finish_measurement,
            tools,
        )
        a = mb.addMenu("&Analysis")
        self._action(
            "analysis.measure", "Measure objects (selected labels layer)", self.run_measure, a
        )
        self._action("analysis.profile", "Cell profile", self.run_profile, a)
        self._action("analysis.link", "Link tracks (time-lapse labels)", self.run_link, a)
        menus["View"] = v = mb.addMenu("&View")
        self._registered(menus, "view")
        self._registered(menus, "image")
        for aid, n in (("view.next_slice", 1), ("view.previous_slice", -1)):
            self._action(
                aid, ACTIONS[aid].title, lambda n=n: self.slices[self.active_slice].step(n), v
            )
        for dock in self.docks.values():
            v.addAction(dock.toggleViewAction())

    # ------------------------------------------------------------------ clicks
    def _on_mode(self, mode: str) -> None:
        self.mode_label.setText(f"tool: {mode}")
        act = self.qactions.get(f"tool.{mode}")
        if act is not None and act.isCheckable():
            act.setChecked(True)
        elif mode == "prolong":
            for name in MODES:
                self.qactions[f"tool.{name}"].setChecked(False)

    def _on_slice_click(self, zyx: tuple[float, float, float], modifiers: Any) -> None:
        view = self.sender()
        tol = screen_tolerance_um(view.pixel_size_um()) if isinstance(view, QtSliceView) else 1.0
        self.handle_point(zyx, modifiers, tol, view if isinstance(view, QtSliceView) else None)

    def handle_point(
        self,
        zyx: tuple[float, float, float],
        modifiers: Any,
        tol_um: float,
        view: QtSliceView | None = None,
    ) -> None:
        """What a click at world ``zyx`` does in the current mode (2D and 3D clicks alike)."""
        s = self.session
        ctrl = bool(modifiers & QtCore.Qt.KeyboardModifier.ControlModifier)
        if s.mode == "navigate":
            # On a slice: the drawn node within a few screen pixels, however far off the
            # slice it lies within the drawn slab (what the hover ring shows).
            node = view.node_under(zyx) if view is not None else s.node_near(zyx, tol_um)
            if node is not None:
                s.select_node(node, add=ctrl)
            elif not ctrl:
                s.select_node(None)
            s.set_cursor(zyx)
            self._select_label_at(zyx, view, add=ctrl)
        elif s.mode == "count" and modifiers & QtCore.Qt.KeyboardModifier.ShiftModifier:
            s.remove_marker_near(zyx, tol_um)
        else:
            s.add_point(zyx)

    def _select_label_at(
        self, zyx: tuple[float, float, float], view: QtSliceView | None = None, add: bool = False
    ) -> None:
        """Select the object under ``zyx``: from a slice on screen, else read on a worker."""
        s = self.session
        views = [view] if view is not None else []
        views += [v for v in self.slices.values() if v is not view]
        for v in views:
            got = v.label_at(zyx)
            if got is not None:
                self._select_label(*got, add=add)
                return
        layers = [lay for lay in s.labels_layers if lay.visible and lay.data is not None]
        if not layers:
            return
        t = s.time

        def probe() -> tuple[str, int] | None:
            for lay in reversed(layers):
                v_ = _value_at(lay, zyx, t)
                if v_:
                    return (lay.name, v_)
            return None

        def found(got: tuple[str, int] | None) -> None:
            if got is not None:
                self._select_label(*got, add=add)

        self.slice_loader.call("probe", probe, found)

    def _select_label(self, layer: str, label: int, add: bool = False) -> None:
        # labels.select: Ctrl+click adds the object to the selection (to merge them).
        self.session.run("labels.select", Pick(layer=layer, label=label, add=add))
        self.layers_panel.select(layer)

    def _on_3d_click(self, x: float, y: float, modifiers: Any) -> None:
        def picked(res: Any) -> None:
            s = self.session
            if res.node_id is not None and s.mode == "navigate":
                ctrl = bool(modifiers & QtCore.Qt.KeyboardModifier.ControlModifier)
                s.select_node(res.node_id, add=ctrl)
                if s.tracks is not None and res.node_id in s.tracks:
                    s.set_cursor(s.tracks.position(res.node_id))
                return
            if res.world_um is None:
                return
            if res.label is not None and res.layer is not None and s.mode == "navigate":
                s.select_labels(res.layer, [res.label])
            lo, hi = s.extent_world()
            tol = float(np.linalg.norm(hi - lo)) * SCENE_TOLERANCE_FRACTION
            self.handle_point(res.world_um, modifiers, tol)

        self.render_view.render_thread.pick(x, y, picked)

    # ------------------------------------------------------------------ events
    def _on_edited(self, action: str) -> None:
        s = self.session
        self.save_label.setText(s.save_state)
        self.qactions["edit.undo"].setEnabled(s.history.can_undo and not s.read_only)
        self.qactions["edit.redo"].setEnabled(s.history.can_redo and not s.read_only)

    def _on_stream_stats(self, stats: dict[str, Any]) -> None:
        """Cache use and requests of the streamed layers, in the status bar."""
        if not stats:
            self.stream_label.setText("")
            return
        mb = 2**20
        used = sum(st.cache_bytes for st in stats.values())
        budget = sum(st.cache_budget_bytes for st in stats.values())
        pending = sum(st.pending for st in stats.values())
        running = sum(st.in_flight for st in stats.values())
        done = all(st.complete for st in stats.values())
        # Bricks that could not be read (corrupt chunks, a server error or timeout) are
        # said in the window, not only in the log (issue 21).
        failed = sum(st.failed for st in stats.values())
        self.stream_label.setText(
            f"cache {used / mb:.1f}/{budget / mb:.0f} MB · {pending} pending · "
            f"{running} loading"
            + (" · full detail" if done and not failed else "")
            + (f" · {failed} brick(s) could not be read (left out)" if failed else "")
        )
        self.stream_label.setToolTip(
            "\n".join(
                f"{name}: {st.cache_bricks} bricks cached, {st.drawn} drawn "
                f"({st.stand_ins} by a coarser brick), {st.loaded} loaded, {st.failed} failed"
                for name, st in stats.items()
            )
        )

    def _on_layer_inserted(self, index: int, layer: Any) -> None:
        for view in self.slices.values():
            view.watch(layer)
            view.schedule()

    # ------------------------------------------------------------------ analysis
    def _current_labels(self) -> Labels | None:
        lay = self.layers_panel.current()
        if isinstance(lay, Labels):
            return lay
        ls = self.session.labels_layers
        return ls[0] if ls else None

    def run_measure(self, layer: Labels | None = None) -> Job | None:
        """Measure the objects of a labels layer in the background; the table fills the Features panel."""
        lay = layer or self._current_labels()
        if lay is None or lay.data is None:
            self.status.showMessage("measure: open a labels layer first", 6000)
            return None
        img = self.session.image_layer
        src = img.data if img is not None else None
        name = lay.name

        def done(table: Any) -> None:
            self.features.set_table(name, table)
            self.docks["Features"].raise_()
            self.status.showMessage(f"measured {len(table)} objects of {name}", 6000)

        return self.jobs.start(
            Job(f"measure {name}", measure_job(lay.data, src, self.session.time), done)
        )

    def run_classifier(self) -> Job | None:
        """Train the object classifier on the labelled objects and classify every object.

        Training examples are the ``SetObjectClass`` edits of the features table's layer
        (``session.object_examples``); the result is a ``class`` column in the table,
        usable as *colour by*.
        """
        fp = self.features
        if fp.table is None or fp.layer_name is None:
            self.status.showMessage("classify: measure a labels layer first", 6000)
            return None
        name = fp.layer_name
        examples = self.session.object_examples(name)
        if len(set(examples.values())) < 2:
            self.status.showMessage("classify: label objects of at least two classes", 8000)
            return None
        table = fp.table.drop(columns=["class"], errors="ignore")

        def done(result: Any) -> None:
            self.features.set_table(name, result)
            self.features.colorby.setCurrentText("class")
            counts = result["class"].value_counts().to_dict()
            self.status.showMessage(
                "classified: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), 8000
            )

        return self.jobs.start(Job(f"classify {name}", classify_job(table, examples), done))

    def run_profile(self) -> Job | None:
        s = self.session
        need = ("cell", "nucleus", "mitochondria", "nuclear_pores")
        from analysis.io import open_labels

        img = s.image_layer
        if img is None or img.source is None:
            self.status.showMessage("profile: needs an image store", 6000)
            return None
        try:
            labels = {n: open_labels(img.source, n) for n in need}
        except Exception as exc:
            self.status.showMessage(f"profile: {exc}", 8000)
            return None

        def done(result: Any) -> None:
            profile, report = result
            table = profile.mitochondria
            self.features.set_table("mitochondria", table)
            self.status.showMessage(
                f"profile: {len(table)} mitochondria, {len(profile.pores)} pores", 8000
            )
            self.profile_report = show_profile_report(self, profile, report)

        # The report goes into the project (kept with it), else a temporary folder.
        if s.project is not None:
            out = s.project.path / "profile"
        else:
            import tempfile

            out = Path(tempfile.mkdtemp(prefix="vrscope-profile-"))
        return self.jobs.start(Job("cell profile", profile_job(labels, img.data, out), done))

    def run_link(self, max_distance_um: float | None = None) -> Job | None:
        lay = self._current_labels()
        if lay is None or lay.data is None or "t" not in lay.data.axes:
            self.status.showMessage("link: needs a time-lapse labels layer", 6000)
            return None
        sc = lay.data.levels[0].scale_um
        dist = max_distance_um or 10.0 * float(max(sc))

        def done(graph: Any) -> None:
            # The result is proofread like any tracks: this window's own when it has none
            # (and no project), else in a new window on the same data (issue 18.11).
            self.file_menu.use_tracks(graph, f"linked {graph.n_nodes} detections")

        return self.jobs.start(Job(f"link {lay.name}", link_job(lay.data, dist), done))

    # ------------------------------------------------------------------ project
    def _restore(self) -> None:
        p = self.session.project
        if p is None:
            return
        state = p.load_scene()
        if state is not None:
            try:
                self.session.restore_scene(state)
            except Exception as exc:
                log.warning("could not restore the saved view: %s", exc)

    def save(self, folder: str | os.PathLike[str] | None = None) -> Path | None:
        s = self.session
        if s.project is None and folder is None:
            self._save_as_dialog()
            return s.project.path if s.project is not None else None
        # scene.json holds exactly the viewer.scene schema, so the XR mode and
        # scene_from_json read what the desktop saved.
        path = s.save(folder)
        remember_project(path)
        self.setWindowTitle(self._title())
        self.save_label.setText(s.save_state)
        self.status.showMessage(f"saved {path}", 6000)
        return path

    def _save_as_dialog(self) -> None:
        # A name for the new folder (made here), not an existing folder to choose.
        f, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Save project as (a new folder)", "vrscope-project"
        )
        if not f:
            return
        d = Path(f)
        if d.is_dir() and any(d.iterdir()):
            d = d / "vrscope-project"  # never mix the project into a folder holding other files
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.show_error(f"save project: could not make {d}: {exc}")
            return
        self.save(d)

    def _open_project_dialog(self) -> None:
        d = QtWidgets.QFileDialog.getExistingDirectory(self, "Open project folder")
        if d:
            self.open_project(d)

    def open_project(
        self, folder: str | os.PathLike[str], read_only: bool = False
    ) -> QtViewer | None:
        """Open a project folder in a new window; an error is shown here, not only logged.

        When another window or process edits the project, the message offers to open
        it read-only (``read_only``: edits off, said in the status bar).
        """
        try:
            session = ProofreadingSession.open(project=str(folder), read_only=read_only)
        except ProjectLockedError as exc:
            box = self.show_error(f"could not open {folder} as a project: {exc}")
            if box is not None:
                ro = box.addButton("Open read-only", QtWidgets.QMessageBox.ButtonRole.AcceptRole)
                ro.setObjectName("open_read_only")
                ro.clicked.connect(lambda: self.open_project(folder, read_only=True))
            return None
        except Exception as exc:
            self.show_error(f"could not open {folder} as a project: {exc}")
            return None
        remember_project(folder)
        win = QtViewer(session)
        win.show()
        return win

    # ------------------------------------------------------------------ export
    def screenshot(self, path: str | os.PathLike[str] | None = None) -> np.ndarray[Any, Any]:
        """The whole window as (H, W, 3) uint8; written to ``path`` (PNG) when given."""
        arr = grab_array(self)
        if path is not None:
            import imageio.v3 as iio

            iio.imwrite(Path(path), arr)
        return arr

    def _screenshot_dialog(self) -> None:
        f, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Screenshot", "vrscope.png", "PNG (*.png)"
        )
        if f:
            self.screenshot(f)

    def export_movie(
        self, path: str | os.PathLike[str], n_frames: int = 72, size: tuple[int, int] = (640, 480)
    ) -> Job:
        """A turntable (or, for time-lapses, a time-lapse) movie, rendered on the render thread."""
        from viewer.render import timelapse_step, turntable_step, write_movie

        s = self.session
        out = Path(path)
        thread = self.render_view.render_thread
        lo, hi = s.time_range()

        def work(progress: Any) -> Path:
            def job(r: Any) -> Path:
                old_size, cam = r.size, s.scene.camera.model_dump()
                t0 = s.scene.current_time
                r.set_size(*size)
                try:
                    if hi > lo:
                        times = list(range(lo, hi + 1))
                        return write_movie(
                            r,
                            out,
                            len(times),
                            timelapse_step(s.scene, times),
                            fps=min(len(times), 10),
                            progress=False,
                        )
                    return write_movie(
                        r, out, n_frames, turntable_step(s.scene, n_frames), progress=False
                    )
                finally:
                    r.set_size(*old_size)
                    s.scene.camera.update(cam)
                    s.scene.current_time = t0

            progress(0, 1, "rendering")
            return thread.submit(job).result()  # type: ignore[no-any-return]

        return self.jobs.start(
            Job(f"movie {out.name}", work, lambda p: self.status.showMessage(f"wrote {p}", 6000))
        )

    def _movie_dialog(self) -> None:
        f, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Movie", "vrscope.mp4", "MP4 (*.mp4)")
        if f:
            self.export_movie(f)

    def _export(self, what: str) -> None:
        ext = {"markers": "csv", "measurements": "csv", "tracks": "geff"}[what]
        f, _ = QtWidgets.QFileDialog.getSaveFileName(self, f"Export {what}", f"{what}.{ext}")
        if not f:
            return
        self.export(what, f)

    def export(self, what: str, path: str | os.PathLike[str]) -> bool:
        """Write markers, measurements or tracks to ``path``; say so only once it is there."""
        import analysis.io as pio

        s = self.session
        g = s.tracks
        if what == "tracks" and (g is None or not g.n_nodes):
            self.show_error(f"export tracks: no tracks are open, nothing written to {path}")
            return False
        try:
            if what == "markers":
                pio.write_markers_csv(s.annotations.markers, path)
            elif what == "measurements":
                pio.write_measurements_csv(s.annotations.measurements, path)
            elif g is not None:
                pio.write_tracks_file(g, path, overwrite=True)
        except Exception as exc:
            self.show_error(f"export {what}: could not write {path}: {exc}")
            return False
        if not Path(path).exists():
            self.show_error(f"export {what}: nothing was written to {path}")
            return False
        self.status.showMessage(f"wrote {path}", 6000)
        return True

    # ------------------------------------------------------------------ lifetime
    def _may_close(self) -> bool:
        """Ask before edits that no project keeps are lost (with a project: nothing to ask)."""
        s = self.session
        if getattr(self, "_closing", False) or s.project is not None or not s.unsaved_edits:
            return True
        box = QtWidgets.QMessageBox(self)
        box.setObjectName("unsaved")
        box.setIcon(QtWidgets.QMessageBox.Icon.Warning)
        box.setWindowTitle("Unsaved edits")
        box.setText(f"{s.unsaved_edits} edits are not saved: this session has no project folder.")
        box.setInformativeText("Save them into a new project before closing?")
        B = QtWidgets.QMessageBox.StandardButton
        box.setStandardButtons(B.Save | B.Discard | B.Cancel)
        box.setDefaultButton(B.Save)
        box.exec()
        answer = box.standardButton(box.clickedButton())
        if answer in (B.Cancel, B.NoButton):
            return False
        if answer == B.Save:
            self._save_as_dialog()
            if s.project is None:  # the folder dialog was cancelled
                return False
        self._closing = True
        return True

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        if not self._may_close():
            event.ignore()
            return
        self.label_tools.close()
        self.jobs.cancel_all()
        self.slice_loader.close()
        self.render_view.close_renderer()
        self.session.close()
        super().closeEvent(event)


def _value_at(lay: Labels, zyx: Sequence[float], t: int) -> int:
    src = lay.data
    assert src is not None
    lev = src.levels[0]
    idx = np.round(
        (np.asarray(zyx) - np.asarray(lev.translation[-3:])) / np.asarray(lev.scale_um)
    ).astype(int)
    shp = lev.shape[-3:]
    if np.any(idx < 0) or np.any(idx >= np.asarray(shp)):
        return 0
    region = []
    k = 0
    for ax, size in zip(src.axes, lev.shape, strict=True):
        if ax in "tc":
            i = min(max(t, 0), size - 1) if ax == "t" else 0
            region.append(slice(i, i + 1))
        else:
            region.append(slice(int(idx[k]), int(idx[k]) + 1))
            k += 1
    return int(np.asarray(src.read(0, tuple(region))).reshape(-1)[0])


def run_viewer(
    store: str | None = None,
    labels: Sequence[str] | None = None,
    tracks: str | None = None,
    project: str | None = None,
    exit_after: float | None = None,
    screenshot: str | None = None,
) -> int:
    """Open the desktop viewer and run the Qt event loop (``vrscope view``)."""
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["vrscope"])
    session = ProofreadingSession.open(store, labels, tracks, project)
    win = QtViewer(session)
    win.show()
    if exit_after is not None:

        def finish() -> None:
            win.render_view.render_thread.wait_idle(30)
            QtWidgets.QApplication.processEvents()
            if screenshot:
                win.screenshot(screenshot)
            win.close()

        QtCore.QTimer.singleShot(int(exit_after * 1000), finish)
    return int(app.exec())
