"""The XR application: project + scene + tools + renderer on an OpenXR session.

:func:`run_xr` is what ``vrscope xr`` calls. Per frame (:class:`XrApp`):

0. edits finished on other threads: the labels tool's brush stamps (written on its own
   thread) and the change events they queued (``psygnal.emit_queued``);
1. input (poses, buttons at the predicted display time) -> :class:`Toolbox`
   (menu, grab, the active tool) -> edit commands through the project's history;
2. scene sync from the workspace when an edit happened (markers, measurements,
   tracks, object classes);
3. streaming level of detail for both eyes (when the image layer streams);
4. render both eyes into the swapchain images (brush stamps not drawn by the label
   surfaces yet are drawn from memory); adapt the render quality when a frame overruns
   its display period.

Everything edited is in the project folder (journal fsync'd per edit); the
world -> stage transform and quality settings go to ``scene.json`` under
``"xr"`` at exit, next to whatever the desktop app keeps there.

With ``--join URL`` the edits go to a collaborative session instead
(:class:`xrmode._collab.XrCollab`: the session's history and workspace replace
the project's; the server orders and journals them), the frame loop also applies
the others' edits and view state (clipping planes, time point; the presenter's
view in follow mode, toggled from the wrist menu), publishes our head, hands,
laser, clipping planes, time and viewpoint, and draws the others' avatars.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import psygnal

from analysis.errors import ParameterError
from viewer.actions import Playback, is_timelapse, time_range

from ._frame_loop import eye_view_arrays
from ._models import hand_models
from ._transform import StageTransform
from .tools import (
    ClassifyTool,
    ClipTool,
    CountTool,
    CropTool,
    LabelProbe,
    LabelTool,
    LaserPointer,
    MeasureTool,
    MenuAction,
    SliceTool,
    Tool,
    Toolbox,
    ToolContext,
    TrackTool,
    label_menu,
    track_menu,
)

__all__ = ["TOOLS", "XrApp", "XrOptions", "run_xr"]

log = logging.getLogger(__name__)

TOOLS = (
    "grab",
    "measure",
    "count",
    "track",
    "classify",
    "labels",
    "clip",
    "crop",
    "slice",
    "laser",
)


SNAPSHOT_WAIT_S = 60.0  # longest wait for streamed bricks before a snapshot
#: Background choices after the --background colour (the wrist panel cycles them).
BACKGROUNDS: tuple[tuple[str, tuple[float, float, float]], ...] = (
    ("light room", (0.72, 0.72, 0.75)),
    ("black", (0.0, 0.0, 0.0)),
    ("white", (1.0, 1.0, 1.0)),
)
MARKER_FRACTION = 40  # marker size: the data's largest extent over this
LABELS_IMAGE_OPACITY = 0.12  # image opacity when labels are shown (no --opacity)
HANDS_WAIT_S = 1.0  # longest wait for tracked hands (their HUD) before a snapshot
STANDING_EYE_M = 1.6  # eye height assumed for a LOCAL space's floor (no floor given)
HEADROOM = 0.9  # adaptive quality: both eyes' drawing may take this share of the period
#: Tests and debugging: with VRSCOPE_XR_RECORD=DIR, each change of the buttons held saves
#: the eye images of the frame before it and of RECORD_FRAMES frames from it in
#: DIR/<frame index>/ (as ``--snapshot`` saves them; the trace's ``frame`` events carry
#: the same index and the buttons each frame saw).
RECORD_ENV = "VRSCOPE_XR_RECORD"
RECORD_FRAMES = 12
#: Benchmarks: VRSCOPE_XR_SYNC_STAMPS=1 writes brush stamps on the frame thread (as before
#: they had a thread of their own): the reference of ``bench_xr_stamps.py``.
SYNC_STAMPS_ENV = "VRSCOPE_XR_SYNC_STAMPS"


@dataclass
class XrOptions:
    """What ``vrscope xr`` was asked to do (see its ``--help``)."""

    store: str | None = None
    labels: list[str] | None = None
    tracks: str | None = None
    project: str | None = None
    tool: str = "measure"
    exit_after: float | None = None
    trace: str | None = None
    snapshot: str | None = None
    background: tuple[float, float, float] = (0.18, 0.18, 0.2)
    opacity: float | None = None  # None: 1, or LABELS_IMAGE_OPACITY with labels
    stream: bool | None = None  # None: stream when the image's finest level is too big
    adaptive_quality: bool = True
    hand_tracking: bool = True
    classes: list[str] = field(default_factory=list)
    graphics: str = "auto"
    join: str | None = None
    name: str = "xr"
    role: str = "editor"


class Trace:
    """JSON-lines event log (``--trace``): session states, edits, frame timings."""

    def __init__(self, path: str | None) -> None:
        self._f: IO[str] | None = open(path, "a", encoding="utf-8") if path else None
        self.t0 = time.monotonic()

    def __call__(self, event: str, **data: Any) -> None:
        if self._f is None:
            return
        rec = {"event": event, "t": round(time.monotonic() - self.t0, 4), **data}
        self._f.write(json.dumps(rec, default=_jsonable) + "\n")
        self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    return str(o)


def _open_project(opts: XrOptions) -> tuple[Any, Any, Any]:
    """(project or None, workspace, history)."""
    from analysis.edits import History
    from analysis.project import Project, Workspace

    if opts.project:
        folder = Path(opts.project).expanduser()
        if (folder / "project.json").is_file():
            pr = Project.open(folder)
        else:
            pr = Project.create(
                folder,
                image=opts.store,
                labels=opts.labels or [],
                tracks=opts.tracks,
                classes=opts.classes,
            )
        return pr, pr.workspace, pr.history
    from analysis.annotations import Annotations, AnnotationsState, classes_from

    graph = None
    if opts.tracks:
        from analysis.io import read_geff

        # Without a project only GEFF is read (a project converts CSV / CTC on creation).
        graph = read_geff(opts.tracks)
    ann = Annotations(AnnotationsState(classes=classes_from(opts.classes)))
    ws = Workspace(graph, ann)
    return None, ws, History(ws)


class XrApp:
    """Scene, tools and renderer for one session (built inside :func:`run_xr`)."""

    def __init__(self, opts: XrOptions, trace: Trace) -> None:
        from viewer.render import build_store_scene
        from viewer.scene import Measurements, Points, Tracks

        self.opts = opts
        self.trace = trace
        self.collab: Any = None
        if opts.join:
            from ._collab import XrCollab

            if opts.project or opts.tracks:
                raise ParameterError(
                    "--join takes the tracks and annotations from the session; "
                    "leave out --project and --tracks"
                )
            self.collab = XrCollab(opts.join, name=opts.name, role=opts.role)
            self.project = None
            self.history = self.collab.history
            self.workspace = self.history.target
        else:
            self.project, self.workspace, self.history = _open_project(opts)
        store = opts.store
        labels = opts.labels
        if self.collab is not None:
            info = self.collab.info
            # The server's image path or URL; --store overrides it (another mount point).
            store = store or info.get("image")
            labels = labels if labels is not None else (list(info.get("labels") or []) or None)
            trace("collab", participant=self.collab.me, session=self.collab.client.core.session)
        if self.project is not None:
            store = store or self.project.info.image
            labels = labels if labels is not None else (list(self.project.info.labels) or None)
        if store is None and self.workspace.tracks is None:
            raise ParameterError("nothing to show: give an image store, --tracks or a --project")
        self.scene = build_store_scene(store, labels=labels, tracks=self.workspace.tracks)
        from viewer.render import use_coarse_contrast

        # --opacity only when given. Otherwise, with labels, the image is kept faint
        # enough for the objects inside it to show their colours through a thick sample
        # (0.35, the desktop render's choice, still washed them out to near grey in
        # the headset's eye images; 0.12 keeps them clearly coloured).
        opacity = opts.opacity
        if opacity is None and any(lay.kind == "labels" for lay in self.scene.layers):
            opacity = LABELS_IMAGE_OPACITY
        if opacity is not None:
            for lay in self.scene.layers:
                if lay.kind == "image":
                    lay.opacity = opacity
        use_coarse_contrast(self.scene)  # as `vrscope render`: streamed == whole level
        self.points = Points(name="markers", size_um=1.0)  # type: ignore[call-arg]
        self.measurements = Measurements(name="measurements")  # type: ignore[call-arg]
        self.scene.add(self.points)
        self.scene.add(self.measurements)
        self._tracks_layers = [lay for lay in self.scene.layers if isinstance(lay, Tracks)]
        self._dirty = True
        # Brush stamps are journaled on a thread of their own (LabelTool): their history
        # events are handled here on the frame thread (psygnal.emit_queued each frame).
        self.history.changed.connect(self._on_history, thread=threading.current_thread())
        lo, hi = self.scene.extent_world()
        self.extent = (lo, hi)
        self.home = StageTransform.on_table(lo, hi)
        transform = self.home
        #: Placed in front of the head on the first tracked frame, unless a saved
        #: placement is restored (the project's scene.json).
        self.needs_placement = True
        saved = self.project.load_scene() if self.project is not None else None
        if saved and isinstance(saved.get("xr"), dict) and "transform" in saved["xr"]:
            try:
                transform = StageTransform.from_json(saved["xr"]["transform"])
                self.needs_placement = False
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("ignoring the saved XR transform: %s", exc)
        # A time-lapse opens at its first time point (the desktop's scene builder
        # defaults to the tracks' last one).
        if is_timelapse(self.scene, self.workspace.tracks):
            set_time_to = time_range(self.scene, self.workspace.tracks)[0]
            self.scene.current_time = float(set_time_to)
        self.playback = Playback()
        # Markers big enough to find in the headset (1/100 of the extent was ~3 mm).
        self.points.size_um = max(float(np.max(hi - lo)) / MARKER_FRACTION, 1e-3)
        ann = self.workspace.annotations
        classes = [c.name for c in ann.classes] or ["marker"]
        self.ctx = ToolContext(
            transform=transform,
            apply=self.history.apply,
            scene=self.scene,
            workspace=self.workspace,
            classes=classes,
            history=self.history,
        )
        self.ctx.playback = self.playback
        r, g, b = (float(c) for c in opts.background)
        self.backgrounds: list[tuple[str, tuple[float, float, float]]] = [
            ("dark room", (r, g, b)),
            *BACKGROUNDS,
        ]
        self.background = 0
        self.ctx.next_background = self._next_background
        self.panel_layer = 0
        #: The frame loop's StreamingController, when the image layers stream.
        self.streaming: Any = None
        tools = self._make_tools()
        # Undo / redo in the menu too: bare hands have no B/Y or A/X buttons.
        actions: dict[str, MenuAction] = {
            "undo": MenuAction(lambda: "undo", lambda: self._menu_run("edit.undo")),
            "redo": MenuAction(lambda: "redo", lambda: self._menu_run("edit.redo")),
            # B / Y's measure action, for controllers without B / Y (Vive, WMR) and hands.
            "finish": MenuAction(
                lambda: "finish path", lambda: self._menu_run("annotations.finish_measurement")
            ),
        }
        # A frozen slice plane stays in the scene under every tool: remove it from here.
        actions["unslice"] = MenuAction(
            lambda: "remove slice", lambda: self._menu_run("slice.remove")
        )
        if is_timelapse(self.scene, self.workspace.tracks):
            actions["play"] = MenuAction(
                lambda: "pause" if self.playback.playing else "play",
                lambda: self._menu_run("time.play"),
            )
            actions["first"] = MenuAction(
                lambda: "first time point", lambda: self._menu_run("time.first")
            )
        track = tools.get("track")
        if isinstance(track, TrackTool) and self.workspace.tracks is not None:
            actions.update(track_menu(track, self.ctx))
        labels_tool = tools.get("labels")
        #: The labels tool (its brush stamps are drawn from memory until written and drawn).
        self.labels_tool = labels_tool if isinstance(labels_tool, LabelTool) else None
        if isinstance(labels_tool, LabelTool):
            actions.update(label_menu(labels_tool, self.ctx))
        if self.collab is not None:
            c = self.collab
            actions["follow"] = MenuAction(c.follow_label, c.toggle_follow)
            if opts.role == "presenter":
                actions["lead"] = MenuAction(c.lead_label, c.toggle_lead)
        self.toolbox = Toolbox(
            tools,
            self.ctx,
            active=opts.tool,
            undo=self._undo,
            redo=self._redo,
            home=self.home,
            actions=actions,
            place=self.place,
            panel=self._panel(),
        )
        from viewer.raycast import FrameBudget

        # One adaptive-quality controller, the desktop's: a time per eye, fewer steps
        # and fewer rays while a frame overruns, full quality back once the head rests.
        # Its target is set from the display period each frame; at most half the
        # pixels per axis are dropped (the eye image carries text and hands too).
        self.quality = FrameBudget(HEADROOM / 90.0 / 2 * 1e3, min_render_scale=0.5)

    def _undo(self) -> Any:
        self.poll_edits(wait=True)  # the brush stamps queued are written first
        return self.history.undo()

    def _redo(self) -> Any:
        self.poll_edits(wait=True)
        return self.history.redo()

    def poll_edits(self, wait: bool = False) -> None:
        """On the frame thread: the labels tool's written (or refused) stamps, then the
        change events queued by edits on other threads (``psygnal.emit_queued``).
        ``wait``: first let the stamps queued be written (before another edit)."""
        tool = self.labels_tool
        if tool is not None:
            if wait:
                tool.flush(self.ctx)
            else:
                tool.poll(self.ctx)
        psygnal.emit_queued()

    def _menu_run(self, action: str, layer: str | None = None) -> str:
        from viewer.actions import Pick

        self.ctx.run(action, Pick(layer=layer))
        return self.ctx.message

    def _next_background(self) -> str:
        self.background = (self.background + 1) % len(self.backgrounds)
        return self.backgrounds[self.background][0]

    def _panel_layers(self) -> list[Any]:
        return [lay for lay in self.scene.layers if lay.kind in ("image", "labels")]

    def _panel(self) -> dict[str, MenuAction]:
        """The wrist panel: the layer it controls, then that layer's visibility, opacity,
        contrast and colormap (viewer.actions ``layer.*``), and the background."""

        def layer() -> Any:
            layers = self._panel_layers()
            return layers[self.panel_layer % len(layers)] if layers else None

        def name() -> str | None:
            lay = layer()
            return None if lay is None else str(lay.name)

        def next_layer() -> str:
            self.panel_layer += 1
            return f"layer: {name()}"

        def act(action: str) -> Callable[[], str]:
            return lambda: self._menu_run(action, name())

        def value(fmt: str) -> Callable[[], str]:
            return lambda: fmt.format(lay=layer())

        return {
            "layer": MenuAction(lambda: f"layer: {name()}", next_layer),
            "visible": MenuAction(
                lambda: f"visible: {'on' if layer() is not None and layer().visible else 'off'}",
                act("layer.toggle_visible"),
            ),
            "opacity-": MenuAction(value("opacity {lay.opacity:.2f}  -"), act("layer.less_opaque")),
            "opacity+": MenuAction(value("opacity {lay.opacity:.2f}  +"), act("layer.more_opaque")),
            "contrast-": MenuAction(lambda: "contrast -", act("layer.less_contrast")),
            "contrast+": MenuAction(lambda: "contrast +", act("layer.more_contrast")),
            "colormap": MenuAction(
                lambda: f"colormap: {getattr(layer(), 'colormap', '-')}",
                act("layer.next_colormap"),
            ),
            "background": MenuAction(
                lambda: f"background: {self.backgrounds[self.background][0]}",
                act("view.next_background"),
            ),
        }

    def place(self, head: Any) -> StageTransform:
        """The volume in front of ``head`` (a :class:`~xrmode.input.Pose`), level."""
        lo, hi = self.extent
        return StageTransform.in_front_of(lo, hi, head.position, head.forward)

    def table_under(self, tr: StageTransform) -> tuple[float, float, float]:
        """(top y, centre x, centre z) of a table whose top touches the volume's bottom."""
        bmin, bmax = tr.box_stage(*self.extent)
        c = (bmin + bmax) / 2
        return float(bmin[1]), float(c[0]), float(c[2])

    def _slice_layer(self) -> Any:
        """The image the slice tool shows: the wrist panel's layer when it is an image,
        else the first image layer."""
        layers = self._panel_layers()
        if layers:
            lay = layers[self.panel_layer % len(layers)]
            if lay.kind == "image":
                return lay
        return next((lay for lay in self.scene.layers if lay.kind == "image"), None)

    def _streamer(self, layer: str) -> Any:
        """The layer's :class:`viewer.streaming.VolumeStreamer` when it streams, else None
        (the slice plane then reads the store itself)."""
        if self.streaming is None:
            return None
        return self.streaming.streamers.get(layer)

    def _make_tools(self) -> dict[str, Tool]:
        from viewer.scene import Labels

        labels = [lay for lay in self.scene.layers if isinstance(lay, Labels)]
        probe = LabelProbe(labels[0].data) if labels and labels[0].data is not None else None
        tracks = self._tracks_layers
        window = (tracks[0].tail_length, tracks[0].head_length) if tracks else (np.inf, np.inf)
        tools: dict[str, Tool] = {
            "grab": Tool(),  # grab is always on; choosing it just disables the others
            "measure": MeasureTool(),
            "count": CountTool(),
            "track": TrackTool(window=window),
            "classify": ClassifyTool(probe, labels[0].name if labels else ""),
            "clip": ClipTool(),
            "crop": CropTool(),
            "slice": SliceTool(self._slice_layer, streamer=self._streamer),
            "laser": LaserPointer(),
        }
        if labels and self.project is not None:
            from viewer.actions import LabelEditing

            pr = self.project
            # Stamps are written on the tool's own thread; their change events are
            # delivered on this one (the frame loop's) by psygnal.emit_queued.
            editing = LabelEditing(
                self.scene, pr.edit_labels, pr.workspace.labels, thread=threading.current_thread()
            )
            background = os.environ.get(SYNC_STAMPS_ENV) != "1"
            tools["labels"] = LabelTool(editing, labels[0].name, background=background)
        elif labels and self.collab is not None:  # the session server's working copies
            from viewer.actions import LabelEditing

            h = self.collab.history
            editing = LabelEditing(self.scene, h.edit_labels, h.label_images)
            tools["labels"] = LabelTool(editing, labels[0].name)
        elif self.opts.tool == "labels":
            raise ParameterError(
                "the labels tool edits a label image in a project: give --labels NAME and "
                "--project DIR"
            )
        tools["grab"].name = "grab"
        return tools

    def _on_history(self, action: str, item: object) -> None:
        self._dirty = True
        if action == "reset":
            # A session snapshot replaced the shared state (after a resync).
            self.workspace = item
            self.ctx.workspace = item
        desc = getattr(item, "description", None) or getattr(item, "name", "")
        self.trace("edit", action=action, description=str(desc))

    def sync_scene(self) -> None:
        """Mirror the workspace (markers, measurements, tracks, classes) into scene layers."""
        if not self._dirty:
            return
        from viewer.scene import Labels, Measurement, track_data_from_graph

        ann = self.workspace.annotations
        markers = ann.markers
        self.points.update(
            {
                "positions_um": [tuple(m.position_um) for m in markers],
                "classes": [m.class_name for m in markers],
                "class_colors": {c.name: tuple(c.color) for c in ann.classes},
            }
        )
        self.measurements.items = [
            Measurement(kind=m.kind, points_um=[tuple(p) for p in m.points_um], label=f"#{m.id}")
            for m in ann.measurements
        ]
        g = self.workspace.tracks
        if g is not None:
            for tl in self._tracks_layers:
                tl.data = track_data_from_graph(g)
        classes = ann.object_classes
        for lay in self.scene.layers:
            if isinstance(lay, Labels) and classes.get(lay.name):
                names = [c.name for c in ann.classes] or sorted(set(classes[lay.name].values()))
                idx = {n: i for i, n in enumerate(names)}
                lay.set_feature(
                    "class", {k: float(idx.get(v, 0)) for k, v in classes[lay.name].items()}
                )
                lay.update({"color_mode": "feature", "feature": "class", "colormap": "tab10"})
        self._dirty = False

    def save(self) -> None:
        """Store the XR view state in the project's ``scene.json`` (key ``"xr"``)."""
        if self.project is None:
            return
        data = self.project.load_scene() or {}
        data["xr"] = {
            "transform": self.ctx.transform.to_json(),
            "render_scale": self.quality.render_scale,
            "sample_distance_factor": self.quality.step_factor,
            "tool": self.toolbox.active,
            "current_time": self.scene.current_time,
        }
        self.project.save_scene(data)

    def close(self) -> None:
        if self.labels_tool is not None:
            self.labels_tool.close()  # the stroke's queued stamps are journaled first
        self.history.changed.disconnect(self._on_history)
        if self.project is not None:
            self.save()
            self.project.close()
        if self.collab is not None:
            self.collab.close()


def _overlay(ctx: ToolContext, avatars: Any = None, models: dict[str, Any] | None = None) -> Any:
    """The tools' HUD, your hands' models and the other participants' avatars as a
    render overlay."""
    from viewer.render import XrOverlay, XrText

    hud = ctx.hud
    lines = [(a, b, c) for a, b, c in hud.lines]
    texts = list(hud.texts)
    extra: dict[str, Any] = {}
    if avatars is not None:
        lines += [(a, b, c) for (a, b), c in zip(avatars.lines, avatars.line_colors, strict=True)]
        texts += avatars.texts
        extra = avatars.arrays()
    if models is not None:
        lines += [
            (a, b, tuple(c)) for (a, b), c in zip(models["rays"], models["ray_colors"], strict=True)
        ]
        for key in ("mesh_points", "mesh_triangles", "mesh_colors", "mesh_normals"):
            extra[key] = models[key]
    if hud.image is not None:
        extra["slice_corners"], extra["slice_rgb"] = hud.image
    return XrOverlay(
        lines=np.array([[a, b] for a, b, _ in lines]).reshape(-1, 2, 3),
        line_colors=np.array([c for *_, c in lines]).reshape(-1, 3),
        points=np.array([p for p, _ in hud.points]).reshape(-1, 3),
        point_colors=np.array([c for _, c in hud.points]).reshape(-1, 3),
        texts=[XrText(p, s, c) for p, s, c in texts],
        **extra,
    )


def run_xr(opts: XrOptions) -> int:
    """Run the XR mode until the session ends (or ``exit_after`` seconds). Returns 0."""
    if opts.tool not in TOOLS:
        raise ParameterError(f"unknown tool {opts.tool!r} (choose from {', '.join(TOOLS)})")
    from .session._session import XrRuntimeError, XrSession

    trace = Trace(opts.trace)
    app = XrApp(opts, trace)
    old = signal.getsignal(signal.SIGTERM)
    lost = False
    try:
        with XrSession(
            hand_tracking=opts.hand_tracking,
            on_state=lambda s: trace("state", state=s),
            graphics=opts.graphics,
        ) as session:
            # SIGTERM ends the session the way the headset's menu would: cleanly, saved.
            signal.signal(signal.SIGTERM, lambda *_: session.request_exit())
            # CPython installs handlers without SA_RESTART; a signal landing in the runtime
            # client's blocking recvmsg (Monado's IPC) then fails the call and loses the
            # instance. Restarting interrupted system calls keeps the session alive.
            signal.siginterrupt(signal.SIGTERM, False)
            _loop(app, session, trace)
            lost = session.lost
    finally:
        signal.signal(signal.SIGTERM, old)
        app.close()
        trace("closed")
        trace.close()
    if lost:
        raise XrRuntimeError(
            "the OpenXR runtime lost the session (it stopped or crashed); "
            "every confirmed edit is saved in the project journal"
        )
    return 0


def _loop(app: XrApp, session: Any, trace: Trace) -> None:
    """Run the session's frame loop for ``app`` until the session ends."""
    loop = _FrameLoop(app, session, trace)
    if app.opts.snapshot is not None and hasattr(signal, "SIGUSR1"):
        # Another snapshot on demand (tests, documentation): kill -USR1 PID.
        signal.signal(signal.SIGUSR1, lambda *_: loop.request_snapshot())
        signal.siginterrupt(signal.SIGUSR1, False)
    try:
        for frame in session.frames():
            loop.step(frame)
    finally:
        loop.close()


class _FrameLoop:
    """One frame of the XR app, in the steps the module docstring lists.

    input (collab, tools) -> scene sync -> eye views -> streaming -> render ->
    adaptive quality -> trace -> snapshot / exit.
    """

    def __init__(self, app: XrApp, session: Any, trace: Trace) -> None:
        from viewer.render import VtkXrTarget

        self.app, self.session, self.trace = app, session, trace
        opts = app.opts
        gl = session.graphics.gl
        # VTK initialises from the current context and needs a complete framebuffer bound.
        gl.attach_texture(session.fbo, session.swapchain_images[0][0])
        self.target = VtkXrTarget(
            app.scene,
            session.graphics.make_current,
            session.graphics.is_current,
            session.eye_size,
            background=opts.background,
        )
        self.streaming: Any = None
        if self._should_stream():
            from viewer.render import StreamingController

            # Image layers: one ray-casting pass per eye (viewer.render._gl_volumes),
            # which times each eye on the GPU and drives the adaptive quality.
            self.streaming = StreamingController(
                self.target.renderer,
                n_workers=2,
                frame_budget_ms=app.quality if opts.adaptive_quality else None,
            )
            app.streaming = self.streaming
        trace(
            "session",
            runtime=session.runtime_name,
            graphics=session.graphics.kind,
            renderer=session.graphics.gl.renderer(),
            eye_size=list(session.eye_size),
            space=session.space_type,
            profiles=session.actions.accepted_profiles,
            rejected=session.actions.rejected_profiles,
            extensions=sorted(session.extensions),
            transform=app.ctx.transform.to_json(),
            tool=app.toolbox.active,
        )
        self.record = os.environ.get(RECORD_ENV) or None
        self._eyes: dict[int, Any] = {}
        self._prev: tuple[dict[int, Any], Any, list[Any], StageTransform] | None = None
        self._buttons: list[str] | None = None
        self._record_left = 0
        if self.record:
            session.on_drawn = self._on_drawn
        self.quality_shown = (1.0, 1.0)
        self.snap: dict[int, Any] = {}
        self.want_snapshot = False
        self.snapshots = 0
        if opts.snapshot is not None:
            self.request_snapshot()
        self.t_start: float | None = None
        self.placed: StageTransform | None = None
        self.floor_set: float | None = None
        self.background_shown = 0
        self.table_for: StageTransform | None = None

    def request_snapshot(self) -> None:
        """Save the eye images of the next complete frame (``--snapshot DIR``: the first
        in DIR, later ones, asked with SIGUSR1, in DIR/1, DIR/2, ...). Signal-safe: it
        only sets flags and a callback."""
        session = self.session
        self.snap = {}
        if not self.record:
            session.on_drawn = lambda eye, tex: self.snap.__setitem__(
                eye.index, session.read_eye(eye)
            )
        self.want_snapshot = True

    def _on_drawn(self, eye: Any, tex: int) -> None:
        img = self.session.read_eye(eye)
        self._eyes[eye.index] = img
        if self.want_snapshot:
            self.snap[eye.index] = img

    def _record(self, frame: Any, views: list[Any], tr: StageTransform) -> None:
        """``VRSCOPE_XR_RECORD``: the frames around each change of the buttons held."""
        eyes, self._eyes = self._eyes, {}
        buttons = _pressed(frame.input)
        if self._buttons is not None and buttons != self._buttons:
            if self._prev is not None:
                prev = self._prev
                _save_snapshot(Path(self.record or "."), *prev, sub=True)
            self._record_left = RECORD_FRAMES
        self._buttons = buttons
        if self._record_left > 0 and frame.eyes and len(eyes) == len(frame.eyes):
            _save_snapshot(Path(self.record or "."), eyes, frame, views, tr, sub=True)
            self._record_left -= 1
        self._prev = (eyes, frame, views, tr) if frame.eyes else None

    def _should_stream(self) -> bool:
        stream = self.app.opts.stream
        if stream is not None:
            return stream
        # Stream when the finest level does not fit the renderer's voxel budget (the
        # whole-level path would show a coarser level). Smaller images are drawn whole:
        # streaming buys nothing there (and label volumes still stream one VTK volume per
        # brick, docs/benchmarks.md "Streaming in the headset").
        budget = self.target.renderer.voxel_budget
        layers = self.app.scene.layers
        sources = [getattr(lay, "data", None) for lay in layers if lay.kind == "image"]
        return any(
            int(np.prod(src.levels[0].shape[-3:])) > budget for src in sources if src is not None
        )

    # ------------------------------------------------------------------ one frame
    def step(self, frame: Any) -> None:
        app = self.app
        t0 = time.perf_counter()
        focused = frame.state == "FOCUSED"
        app.poll_edits()
        self._input(frame, focused)
        app.sync_scene()
        tr = app.ctx.transform
        avatars = None
        if app.collab is not None:
            from ._collab import avatar_geometry

            avatars = avatar_geometry(app.collab.peers, tr)
        views = self._views(frame, tr)
        stream_stats = self._stream(views)
        if tr is not self.placed:  # transforms are immutable: a new one means it moved
            self.target.set_stage_to_world(tr.stage_to_world_matrix())
            self.placed = tr
        self.target.set_overlay(_overlay(app.ctx, avatars, hand_models(frame.input)))
        stamps = app.labels_tool
        if stamps is not None:
            self._set_stamps(stamps)
        if app.background != self.background_shown:
            self.target.set_background(app.backgrounds[app.background][1])
            self.background_shown = app.background
        cpu_ms = (time.perf_counter() - t0) * 1e3
        t1 = time.perf_counter()
        self._render(frame, views)
        render_ms = (time.perf_counter() - t1) * 1e3
        if stamps is not None and stamps.pending and self.target.edits_drawn(stamps.layer):
            stamps.edits_drawn()  # drawn by the surfaces now: from the next frame, alone
        if self.record:
            self._record(frame, views, tr)
        self._adapt(frame, cpu_ms, render_ms)
        self._trace_frame(frame, tr, cpu_ms, render_ms, avatars, stream_stats)
        self._snapshot_or_exit(frame, focused, views, tr, stream_stats)

    def _set_stamps(self, tool: LabelTool) -> None:
        """The labels tool's stamps not drawn by the label surfaces yet, from memory."""
        st = tool.pending
        self.target.set_stamps(
            tool.layer,
            np.array([p.centre_um for p in st], dtype=np.float64).reshape(-1, 3),
            np.array([p.radius_um for p in st], dtype=np.float64),
            np.array([p.value for p in st], dtype=np.int64),
            np.array([p.written for p in st], dtype=bool),
        )

    def _place(self, frame: Any) -> None:
        """On the first frame with a tracked head: the volume in front of it (unless a
        saved placement was restored), the table under it; the floor of a LOCAL space
        (eye level at 0) is put an average standing eye height below the head."""
        app, head = self.app, frame.input.head
        if self.floor_set is None and head is not None:
            floor = 0.0
            if self.session.space_type == "LOCAL":
                floor = float(head.position[1]) - STANDING_EYE_M
            self.target.set_floor(floor)
            self.floor_set = floor
        if app.needs_placement and head is not None:
            app.needs_placement = False
            tr = app.place(head)
            app.ctx.transform = tr
            app.toolbox.home = tr
            self.trace("placed", transform=tr.to_json(), head=list(head.position))
        tr = app.ctx.transform
        if tr is app.toolbox.home and tr is not self.table_for:
            self.target.set_table(*app.table_under(tr))
            self.table_for = tr

    def _input(self, frame: Any, focused: bool) -> None:
        app = self.app
        self._place(frame)
        if frame.eyes:
            from viewer.render import text_angle_rad

            eye = frame.eyes[0]
            app.ctx.hud.text_angle_rad = text_angle_rad(eye.projection(0.05, 50.0), eye.height)
        collab = app.collab
        if collab is not None:
            collab.process()  # the others' edits, on this thread, before the tools
            collab.update_view(app.ctx, frame.input.head if focused else None)
        if focused:
            if self.t_start is None:
                self.t_start = time.monotonic()
            app.toolbox.update(frame.input)
            app.playback.advance(app.ctx, time.monotonic())
            if collab is not None:
                collab.publish(frame.input, app.ctx, app.toolbox.active)

    @staticmethod
    def _views(frame: Any, tr: StageTransform) -> list[Any]:
        from viewer.render import EyeView

        views = []
        for eye in frame.eyes:
            pos, fwd, up, proj = eye_view_arrays(eye, tr)
            views.append(EyeView(pos, fwd, up, proj))
        return views

    def _stream(self, views: list[Any]) -> dict[str, dict[str, Any]] | None:
        streaming = self.streaming
        if streaming is None or not views:
            return None
        streaming.set_views(views)
        return {
            name: {
                "drawn": f.stats.drawn,
                "undrawn": f.stats.undrawn,
                "pending": f.stats.pending,
                "in_flight": f.stats.in_flight,
                "levels": sorted({int(x) for x in f.levels.tolist()}),
                "cache_bytes": f.stats.cache_bytes,
            }
            for name, f in streaming.update().items()
        }

    def _render(self, frame: Any, views: list[Any]) -> None:
        from viewer.render import VolumeQuality

        if not frame.eyes:
            return
        target = self.target
        target.set_size(frame.eyes[0].width, frame.eyes[0].height)
        target.sync()
        streaming = self.streaming
        quality = self.app.quality
        adaptive = self.app.opts.adaptive_quality and streaming is None
        if frame.period_s > 0:
            quality.target_ms = HEADROOM * frame.period_s * 1e3 / len(frame.eyes)

        def draw(eye: Any) -> None:
            view = views[eye.index]
            if streaming is not None:
                # Single-pass volumes: the host's budget (the same controller) times
                # each eye on the GPU and compares it with its own previous view.
                if streaming.host is not None:
                    streaming.host.eye = eye.index
            elif adaptive:
                # Whole-level volumes (VTK's ray caster): the budget's step goes to the
                # sample distance, its scale to the eye image (fewer pixels).
                pose = eye.pose
                step, scale = quality.begin_eye(eye.index, (pose.position, pose.orientation))
                if target.renderer.quality.samples_per_voxel != 1.0 / step:
                    target.set_quality(VolumeQuality(samples_per_voxel=1.0 / step))
                self.session.render_scale = scale  # from the next frame's eye images
            t0 = time.perf_counter()
            target.render_eye(view)
            if adaptive:
                quality.report(eye.index, (time.perf_counter() - t0) * 1e3)

        self.session.render(frame, draw)

    def _adapt(self, frame: Any, cpu_ms: float, render_ms: float) -> None:
        q = self.app.quality
        now = (q.step_factor, q.render_scale)
        if self.app.opts.adaptive_quality and now != self.quality_shown:
            self.quality_shown = now
            self.trace("quality", render_scale=q.render_scale, sample=q.step_factor)

    def _trace_frame(
        self,
        frame: Any,
        tr: StageTransform,
        cpu_ms: float,
        render_ms: float,
        avatars: Any,
        stream_stats: dict[str, dict[str, Any]] | None,
    ) -> None:
        app, collab = self.app, self.app.collab
        inp = frame.input
        host = self.streaming.host if self.streaming is not None else None
        self.trace(
            "frame",
            i=frame.index,
            state=frame.state,
            cpu_ms=round(cpu_ms, 3),
            render_ms=round(render_ms, 3),
            tool=app.toolbox.active,
            menu=app.toolbox.highlighted_label(),
            scale=tr.scale,
            right=None if inp.right.aim is None else list(inp.right.aim.position),
            left=None if inp.left.aim is None else list(inp.left.aim.position),
            buttons=_pressed(inp),
            peers=None if collab is None else len(collab.peers),
            avatars=None if avatars is None else len(avatars.spheres),
            following=None if collab is None else collab.leader,
            time=app.ctx.current_time,
            planes=[[list(p.origin), list(p.normal)] for p in app.scene.clipping_planes],
            stream=stream_stats,
            stamps=None if app.labels_tool is None else len(app.labels_tool.pending),
            single_pass=None
            if host is None
            else {
                "volume_passes": host.stats.volume_passes,
                "bricks_drawn": host.stats.bricks_drawn,
                "behind": host.stats.behind,
                "errors": host.errors,
            },
        )

    def _snapshot_or_exit(
        self,
        frame: Any,
        focused: bool,
        views: list[Any],
        tr: StageTransform,
        stream_stats: dict[str, dict[str, Any]] | None,
    ) -> None:
        opts, session = self.app.opts, self.session
        host = self.streaming.host if self.streaming is not None else None
        # The snapshot shows the view at full detail: taken on the first frame whose
        # streamed layers were complete (or after SNAPSHOT_WAIT_S, whatever is drawn).
        # ... and, for single-pass layers, once the GPU atlas holds every brick drawn.
        settled = (
            stream_stats is None
            or all(st["drawn"] > 0 and st["undrawn"] == 0 for st in stream_stats.values())
        ) and not (host is not None and host.behind)
        t_start = self.t_start
        waited = t_start is not None and time.monotonic() - t_start > SNAPSHOT_WAIT_S
        # ... with the hands' HUD: on a frame that saw a tracked hand (at most
        # HANDS_WAIT_S after focus; a session may have no hands at all).
        hands = frame.input.left.aim is not None or frame.input.right.aim is not None
        early = t_start is not None and time.monotonic() - t_start < HANDS_WAIT_S
        ready = (
            focused and len(self.snap) == len(frame.eyes) and frame.eyes and (hands or not early)
        )
        if self.want_snapshot and ready and (settled or waited):
            folder = Path(opts.snapshot or ".")
            if self.snapshots:
                folder = folder / str(self.snapshots)
            _save_snapshot(folder, self.snap, frame, views, tr)
            self.snapshots += 1
            self.trace("snapshot", folder=str(folder), complete=settled)
            self.want_snapshot = False
            session.on_drawn = self._on_drawn if self.record else None
        if opts.exit_after is not None and t_start is not None and not self.want_snapshot:
            if time.monotonic() - t_start >= opts.exit_after and session.running:
                session.request_exit()
                opts.exit_after = None

    def close(self) -> None:
        if self.streaming is not None:
            self.app.streaming = None
            self.streaming.close()
        self.session.graphics.make_current()
        self.target.close()


def _pressed(inp: Any) -> list[str]:
    out = []
    for h in (inp.left, inp.right):
        for name in ("select", "squeeze", "primary", "secondary", "menu", "thumbstick_click"):
            if getattr(h, name).pressed:
                out.append(f"{h.side}.{name}")
    return out


def _save_snapshot(
    folder: Path,
    snap: dict[int, Any],
    frame: Any,
    views: list[Any],
    tr: StageTransform,
    sub: bool = False,
) -> None:
    """The eye images and their poses in ``folder`` (``sub``: in ``folder/<frame index>``)."""
    from PIL import Image as PILImage

    if sub:
        folder = folder / str(frame.index)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"eyes": []}  # type: dict[str, Any]
    for i, img in sorted(snap.items()):
        name = ("left", "right")[i] if i < 2 else f"eye{i}"
        PILImage.fromarray(np.ascontiguousarray(img[..., :3])).save(folder / f"{name}.png")
        eye = frame.eyes[i]
        meta["eyes"].append(
            {
                "name": name,
                "position_m": list(eye.pose.position),
                "orientation_xyzw": list(eye.pose.orientation),
                "fov": list(eye.fov),
                "size": [eye.width, eye.height],
                "projection": np.asarray(views[i].projection).tolist(),
            }
        )
    meta["transform"] = tr.to_json()
    # The grip poses, profiles and tracked hands' joints as the runtime reported them
    # (stage metres), to check the hand and controller models against.
    meta["grips"] = {
        h.side: {"position_m": list(h.grip.position), "orientation_xyzw": list(h.grip.orientation)}
        for h in (frame.input.left, frame.input.right)
        if h.grip is not None
    }
    meta["profiles"] = {h.side: h.profile for h in (frame.input.left, frame.input.right)}
    meta["hand_joints"] = {
        h.side: np.asarray(h.joints).tolist()
        for h in (frame.input.left, frame.input.right)
        if h.joints is not None
    }
    (folder / "eyes.json").write_text(json.dumps(meta, indent=1))
