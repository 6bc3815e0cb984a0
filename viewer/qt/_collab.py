"""Joining a collaborative review session from the desktop (``vrscope view --join URL``).

- :func:`join_session` connects a :class:`viewer.collab.CollabClient`, opens the
  image the server names (its path or URL: the data never travels through the
  session) and builds a :class:`ProofreadingSession` whose history is a
  :class:`viewer.collab.CollabHistory`: every GUI action (cut, merge, markers,
  measurements, classes ...) becomes an op, applied at once and ordered by the
  server; Ctrl+Z undoes one's own ops.
- :class:`DesktopCollab` (made by :func:`attach`) runs the session on the GUI
  thread: a ``QTimer`` calls ``history.process()`` (the others' edits land there,
  on the thread that owns the scene), then publishes our presence -- the camera
  as the head pose and the world point under the mouse (a pick in the 3D view,
  the hovered point in a slice) as a laser pointer -- and our view state
  (clipping planes, time point, layer visibility, camera), and applies the
  others' view state. The other participants' pointers are drawn as scene layers:
  coloured spheres at the points (``session: pointers``) and a line with the
  name from where the pointer enters the data (``session: NAME``).

View state is shared latest-change-wins: a peer's planes/time/layers are applied
when that peer changed them (its ``view.ts``, the time of its last change, is newer
than the state shown here); resends and camera-only updates change nothing. With
"Follow the presenter" on and the presenter leading (``follow`` mode), the
presenter's camera, planes and time are applied instead and nobody else's; with
"Share clipping planes and time" off, one roams freely (pointers still show).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from PySide6 import QtCore, QtGui, QtWidgets

from analysis.errors import ParameterError
from viewer.scene import Measurement, Measurements, Points

from ._session import ProofreadingSession

if TYPE_CHECKING:
    from viewer.collab import CollabHistory, Pose, View

    from ._app import QtViewer

__all__ = [
    "POINTERS_LAYER",
    "SESSION_PREFIX",
    "DesktopCollab",
    "attach",
    "camera_pose",
    "join_session",
    "pose_axes",
    "ray_in_box",
    "run_joined",
    "use_history",
]

log = logging.getLogger(__name__)

#: Layers this module adds are named with this prefix (never shared, never saved as data).
#: Scene layers of the session itself (never shared): as ``viewer.collab.SESSION_PREFIX``.
SESSION_PREFIX = "session: "
POINTERS_LAYER = SESSION_PREFIX + "pointers"

Vec3 = tuple[float, float, float]


def _t3(a: Any) -> Vec3:
    v = np.asarray(a, dtype=np.float64).reshape(3)
    return (float(v[0]), float(v[1]), float(v[2]))


def _rgb(hex_colour: str) -> Vec3:
    h = hex_colour.lstrip("#")
    return (int(h[0:2], 16) / 255, int(h[2:4], 16) / 255, int(h[4:6], 16) / 255)


def ray_in_box(
    origin: Sequence[float],
    direction: Sequence[float],
    hit: Sequence[float] | None,
    lo: npt.ArrayLike,
    hi: npt.ArrayLike,
) -> tuple[Vec3, Vec3] | None:
    """The part of a pointer ray inside the box ``lo..hi`` (zyx µm), ending at ``hit``.

    Slab method (Kay and Kajiya): the ray enters at the largest per-axis entry
    parameter and leaves at the smallest exit one. Returns (entry, end) or None when
    the ray misses the box or the part is shorter than a millionth of the box.
    """
    o = np.asarray(origin, dtype=np.float64)
    d = np.asarray(direction, dtype=np.float64)
    lo_a, hi_a = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    t0, t1 = 0.0, math.inf
    for i in range(3):
        if abs(d[i]) < 1e-12:
            if not lo_a[i] <= o[i] <= hi_a[i]:
                return None
            continue
        a, b = (lo_a[i] - o[i]) / d[i], (hi_a[i] - o[i]) / d[i]
        t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
    if t1 < t0:
        return None
    start = o + t0 * d
    end = np.asarray(hit, dtype=np.float64) if hit is not None else o + t1 * d
    if float(np.linalg.norm(end - start)) <= 1e-6 * float(np.linalg.norm(hi_a - lo_a)):
        return None
    return _t3(start), _t3(end)


def camera_pose(camera: Any) -> Pose:
    """The scene camera as a session head pose: position, and the rotation whose -Z is
    the view direction and +Y the view-up (OpenXR's convention), in world x, y, z."""
    from scipy.spatial.transform import Rotation

    from viewer.collab import Pose

    fwd = np.asarray(camera.direction, dtype=np.float64)[::-1]
    up = np.asarray(camera.view_up, dtype=np.float64)[::-1]
    right = np.cross(fwd, up)
    right /= np.linalg.norm(right) or 1.0
    up = np.cross(right, fwd)
    x, y, z, w = Rotation.from_matrix(np.stack([right, up, -fwd], axis=1)).as_quat()
    return Pose(
        position_um=_t3(camera.position), orientation=(float(w), float(x), float(y), float(z))
    )


def pose_axes(pose: Pose) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Forward (-Z) and up (+Y) of a session pose, zyx."""
    from scipy.spatial.transform import Rotation

    w, x, y, z = pose.orientation
    r = Rotation.from_quat([x, y, z, w]).as_matrix()
    return -r[:, 2][::-1].copy(), r[:, 1][::-1].copy()


def use_history(session: ProofreadingSession, history: CollabHistory) -> None:
    """Make ``session`` edit the shared workspace through ``history`` (in place of its own)."""
    session.history.changed.disconnect(session._on_history)
    session.workspace = history.target
    session.history = history  # type: ignore[assignment]

    def on_reset(action: str, what: object) -> None:
        # A snapshot replaced the whole state: edit (and draw) the new one.
        if action == "reset":
            session.workspace = what  # type: ignore[assignment]

    # Connected first, so the session's handler refreshes its layers from the new target.
    history.changed.connect(on_reset)
    history.changed.connect(session._on_history)
    _use_shared_labels(session, history)
    names = [c.name for c in session.annotations.classes]
    if names and session.current_class not in names:
        session.current_class = names[0]
    session.refresh_layers()


def _use_shared_labels(session: ProofreadingSession, history: CollabHistory) -> None:
    """Label edits go to the session: the labels layers draw the server's working copies
    (``viewer.collab._labels``), which the server alone writes; each op the server applied
    makes the views re-read what it changed."""
    from viewer.actions import LabelEditing

    session.label_edits.close()
    session.label_edits = LabelEditing(
        session.scene, history.edit_labels, history.label_images, lock=lambda: session.scene_lock
    )


def join_session(
    url: str,
    name: str = "desktop",
    role: str = "editor",
    store: str | None = None,
    labels: Sequence[str] | None = None,
    timeout: float = 10.0,
    invert: bool | None = None,
) -> tuple[ProofreadingSession, CollabHistory]:
    """Join the session at ``url`` and open its data: the session and its history.

    ``store`` overrides the image path/URL the server names (e.g. another mount
    point of the same data); ``labels`` the label images to show.

    Raises
    ------
    ParameterError
        The URL is malformed, the token refused, the server unreachable, or the
        session shares no workspace.
    """
    from viewer.collab import CollabClient, CollabHistory
    from viewer.render import build_store_scene

    client = CollabClient(url, name=name, role=role).start(timeout)
    try:
        history = CollabHistory(client)
        ws = history.target
        if not hasattr(ws, "annotations"):
            raise ParameterError(
                f"the session at {url.split('?')[0]} shares a bare track graph; the desktop "
                "joins project sessions (vrscope serve PROJECT_DIR)"
            )
        info = client.info
        image = store or info.get("image")
        if labels is None:
            labels = list(info.get("labels") or []) or None
        if image is None and ws.tracks is None:
            raise ParameterError("the session has neither an image nor tracks to show")
        scene = build_store_scene(
            image,
            labels=list(labels) if labels else None,
            tracks=ws.tracks,
            invert=invert,  # None: build_store_scene's one EM rule decides
            azimuth=30.0,
            elevation=20.0,
        )
        session = ProofreadingSession(scene, tracks=ws.tracks)
        use_history(session, history)
    except BaseException:
        client.close()
        raise
    return session, history


class DesktopCollab(QtCore.QObject):
    """A :class:`QtViewer` in a session: the per-frame pump, presence, view and pointers.

    Parameters
    ----------
    viewer : QtViewer
        Its session must use ``history`` (see :func:`join_session`).
    history : viewer.collab.CollabHistory
    interval_ms : int, default: 16
        How often the GUI thread applies what arrived (~60 Hz).
    publish_hz : float, default: 30
        At most this many presence and view messages per second.

    Attributes
    ----------
    pointer : (z, y, x) or None
        Our pointer (the last world point under the mouse), as the others see it.
    follow_presenter, share_view : bool
        The "Session" menu's toggles.
    pointers : viewer.scene.Points
        The others' pointers (class = their name, coloured by their colour).
    rays : dict participant id -> viewer.scene.Measurements
    """

    peers_changed = QtCore.Signal()

    def _structural(self) -> Any:
        """A context holding every lock needed to add or remove scene layers."""
        thread = getattr(getattr(self.viewer, "render_view", None), "render_thread", None)
        return thread.structural() if thread is not None else self.session.scene_lock

    def __init__(
        self,
        viewer: QtViewer,
        history: CollabHistory,
        interval_ms: int = 16,
        publish_hz: float = 30.0,
    ) -> None:
        super().__init__(viewer)
        self.viewer = viewer
        self.history = history
        self.client = history.client
        self.session = viewer.session
        self.scene = self.session.scene
        self.pointer: Vec3 | None = None
        from viewer.collab import ViewSync

        #: The shared view and follow state (``viewer.collab.ViewSync``, as the headset's).
        self.sync = ViewSync(self.client)
        self._min_dt = 1.0 / publish_hz
        self._closed = False
        # The data's box, before our layers exist: rays are clipped to it (so they never
        # change the scene's extent, which the cursor and the clipping ranges use).
        self._box = self.scene.extent_world()
        size = float(np.linalg.norm(self._box[1] - self._box[0])) or 1.0
        self.pointers = Points(name=POINTERS_LAYER, size_um=size / 70)  # type: ignore[call-arg]
        with self._structural():
            self.scene.add(self.pointers)
        self.rays: dict[int, Measurements] = {}
        self.sync.reset_local(self.scene)
        self._cam_key: Any = None
        self._view_dirty = self._presence_dirty = self._peers_dirty = True
        self._last_view = self._last_presence = self._last_draw = 0.0
        self._pick_next: tuple[float, float] | None = None
        # Where the mouse rests over the 3D view (render pixels), None when outside: it
        # is picked again after each new frame, since what lies under a still mouse
        # changes as the scene streams in, plays or follows the presenter.
        self._hover: tuple[float, float] | None = None
        self._pick_busy = False
        self._last_pick = 0.0
        # Input: hover in the 3D view (picked on the render thread) and in the slices.
        rv = viewer.render_view
        rv.setMouseTracking(True)
        rv.installEventFilter(self)
        rv.frame_shown.connect(self._on_frame)
        for view in viewer.slices.values():
            view.setMouseTracking(True)
            view.viewport().setMouseTracking(True)
            view.scene().sigMouseMoved.connect(functools.partial(self._on_slice_hover, view))
        viewer.installEventFilter(self)
        self.actions: dict[str, QtGui.QAction] = {}
        self._make_menu()
        self.status = QtWidgets.QLabel()
        viewer.status.addPermanentWidget(self.status)
        self._update_status()
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.tick)
        self.timer.start()

    # ------------------------------------------------------------------ menu
    def _make_menu(self) -> None:
        v = self.viewer
        menu = v.menuBar().addMenu("Sess&ion")

        def add(name: str, text: str, checked: bool | None, slot: Any) -> QtGui.QAction:
            act = QtGui.QAction(text, v)
            if checked is not None:
                act.setCheckable(True)
                act.setChecked(checked)
            act.triggered.connect(slot)
            menu.addAction(act)
            self.actions[name] = act
            return act

        add("follow", "Follow the presenter", True, self.set_follow_presenter)
        add("share_view", "Share clipping planes, time and layers", True, self.set_share_view)
        lead = add("lead", "Lead: everyone follows my view", False, self.client.set_follow)
        lead.setEnabled(self.client.core.role == "presenter")
        # Every acknowledged edit is already saved by the server (in the project too);
        # "save as" would make a private copy and silently leave the session.
        for name in ("file.save", "file.save_as"):
            act = v.qactions.get(name)
            if act is not None:
                act.setEnabled(False)
                act.setToolTip("the session server saves every edit")
        v.session.kept_by = "the session server"
        v.save_label.setText(v.session.save_state)

    @property
    def follow_presenter(self) -> bool:
        return self.sync.follow_presenter

    @property
    def share_view(self) -> bool:
        return self.sync.share_view

    def set_follow_presenter(self, on: bool) -> None:
        self.sync.follow_presenter = bool(on)
        if on:
            self._on_follow()

    def set_share_view(self, on: bool) -> None:
        self.sync.share_view = bool(on)

    def _update_status(self) -> None:
        core = self.client.core
        others = ", ".join(p.participant.name for p in core.peers.values())
        follow = ""
        if core.follow.enabled and core.follow.presenter is not None:
            who = "you" if core.me and core.follow.presenter == core.me.id else "presenter"
            follow = f"; following {who}" if self.follow_presenter or who == "you" else ""
        self.status.setText(f"session {core.session}: {others or 'alone'}{follow}")

    # ------------------------------------------------------------------ input
    def eventFilter(self, obj: QtCore.QObject, ev: QtCore.QEvent) -> bool:
        et = ev.type()
        if obj is self.viewer.render_view and et == QtCore.QEvent.Type.MouseMove:
            me: QtGui.QMouseEvent = ev  # type: ignore[assignment]
            if me.buttons() == QtCore.Qt.MouseButton.NoButton:
                dpr = self.viewer.render_view.devicePixelRatioF()
                self._hover = (float(me.position().x() * dpr), float(me.position().y() * dpr))
                self._pick_next = self._hover
        elif obj is self.viewer.render_view and et == QtCore.QEvent.Type.Leave:
            self._hover = None
        elif obj is self.viewer and et == QtCore.QEvent.Type.Close:
            self.close()
        return False

    def _on_frame(self, _seconds: float) -> None:
        if self._hover is not None:
            self._pick_next = self._hover

    def _on_slice_hover(self, view: Any, pos: QtCore.QPointF) -> None:
        if view.view.sceneBoundingRect().contains(pos):
            self.set_pointer(view.world_at(pos))

    def set_pointer(self, zyx: Sequence[float] | None) -> None:
        """Point at world ``zyx`` (None: stop pointing); sent with the next presence."""
        self.pointer = None if zyx is None else _t3(zyx)
        self._presence_dirty = True

    def _pick(self) -> None:
        now = time.monotonic()
        if self._pick_next is None or self._pick_busy or now - self._last_pick < 0.05:
            return
        x, y = self._pick_next
        self._pick_next, self._pick_busy, self._last_pick = None, True, now

        def done(res: Any) -> None:
            self._pick_busy = False
            if res.world_um is not None:
                self.set_pointer(res.world_um)

        self.viewer.render_view.render_thread.pick(x, y, done)

    # ------------------------------------------------------------------ per frame
    def tick(self) -> None:
        """Apply what arrived, react, publish (the timer calls it; tests may too)."""
        if self._closed:
            return
        try:
            events = self.history.process()
        except Exception:
            log.exception("collab: processing the session's messages failed")
            return
        for ev in events:
            kind = ev.kind
            if kind == "view" and ev.participant is not None:
                self._on_peer_view(int(ev.participant), ev.message)
                self._peers_dirty = True
            elif kind in ("presence", "joined", "left"):
                self._peers_dirty = True
                if kind == "left" and ev.participant is not None:
                    self.sync.forget(int(ev.participant))
            elif kind == "welcome":
                # (Re)joined: the server forgot our presence and view; send them again.
                self._view_dirty = self._presence_dirty = self._peers_dirty = True
            elif kind == "follow":
                self._on_follow()
            elif kind in ("rejected", "dropped"):
                self.viewer.status.showMessage(f"the session refused an edit: {ev.reason}", 8000)
            elif kind == "error" and ev.reason:
                self.viewer.status.showMessage(f"session: {ev.reason}", 8000)
        if events:
            self._update_status()
        self._pick()
        self._publish()
        now = time.monotonic()
        if self._peers_dirty and now - self._last_draw >= self._min_dt:
            self._last_draw = now
            self._peers_dirty = False
            self.draw_peers()

    # ------------------------------------------------------------------ publishing
    def _publish(self) -> None:
        if self.sync.local_changed(self.scene):
            self._view_dirty = True
        cam = self.scene.camera
        cam_key = (cam.position, cam.focal_point, cam.view_up)
        if cam_key != self._cam_key:
            self._cam_key = cam_key
            self._view_dirty = self._presence_dirty = True
        now = time.monotonic()
        if self._view_dirty and now - self._last_view >= self._min_dt:
            self._last_view, self._view_dirty = now, False
            self.client.view(**self.sync.view_args(self.scene), camera=camera_pose(cam))
        if self._presence_dirty and now - self._last_presence >= self._min_dt:
            self._last_presence, self._presence_dirty = now, False
            self.client.presence(head=camera_pose(cam), laser=self._laser())

    def _laser(self) -> Any:
        from viewer.collab import Laser

        if self.pointer is None:
            return None
        o = np.asarray(self.scene.camera.position, dtype=np.float64)
        d = np.asarray(self.pointer) - o
        n = float(np.linalg.norm(d))
        if n == 0.0:
            return None
        return Laser(origin_um=_t3(o), direction=_t3(d / n), hit_um=self.pointer)

    # ------------------------------------------------------------------ others' view
    def _on_peer_view(self, pid: int, view: View) -> None:
        s = self.session
        with s.scene_lock:
            seen = self.sync.on_peer_view(pid, view, self.scene, s.set_time)
        if seen == "leader" and view.camera is not None:
            self._apply_camera(view.camera)

    def _on_follow(self) -> None:
        leader = self.sync.leader
        if leader is None:
            return
        peer = self.client.core.peers.get(leader)
        if peer is not None and peer.view is not None:
            self.apply_view(peer.view, camera=True)

    def apply_view(self, view: View, camera: bool = False) -> None:
        """Show ``view``'s clipping planes, time point, layer visibility (and camera)."""
        s = self.session
        with s.scene_lock:
            self.sync.apply(view, self.scene, s.set_time)
        if camera and view.camera is not None:
            self._apply_camera(view.camera)

    def _apply_camera(self, pose: Pose) -> None:
        pos = np.asarray(pose.position_um, dtype=np.float64)
        fwd, up = pose_axes(pose)
        lo, hi = self._box
        dist = float(np.dot((lo + hi) / 2 - pos, fwd))
        if dist <= 1e-6:
            dist = float(np.linalg.norm(hi - lo)) or 1.0
        self.scene.camera.update(
            {"position": _t3(pos), "focal_point": _t3(pos + dist * fwd), "view_up": _t3(up)}
        )

    # ------------------------------------------------------------------ others' pointers
    def draw_peers(self) -> None:
        """Refresh the pointer spheres and rays of the other participants."""
        lo, hi = self._box
        pos: list[Vec3] = []
        classes: list[str] = []
        colours: dict[str, Vec3] = {}
        rays: dict[int, tuple[str, Vec3, tuple[Vec3, Vec3]]] = {}
        peers = self.client.core.peers
        names = [p.participant.name for p in peers.values()]
        for pid, peer in peers.items():
            part = peer.participant
            label = part.name if names.count(part.name) == 1 else f"{part.name} #{pid}"
            col = _rgb(part.colour)
            pres = peer.presence
            if pres is None:
                continue
            laser = pres.laser
            if laser is not None and laser.active:
                if laser.hit_um is not None:
                    pos.append(_t3(laser.hit_um))
                    classes.append(label)
                    colours[label] = col
                seg = ray_in_box(laser.origin_um, laser.direction, laser.hit_um, lo, hi)
                if seg is not None:
                    rays[pid] = (label, col, seg)
            for hand in (pres.left_hand, pres.right_hand):
                # An XR participant's hand reaching into the data.
                if hand is not None and np.all(
                    (np.asarray(hand.position_um) >= lo) & (np.asarray(hand.position_um) <= hi)
                ):
                    pos.append(_t3(hand.position_um))
                    classes.append(label)
                    colours[label] = col
        # Layers come and go here: hold the render thread's draw lock too, or VTK may be
        # drawing a layer while it is removed (a crash, see RenderThread.structural).
        with self._structural():
            if (pos, classes, colours) != (
                list(self.pointers.positions_um),
                list(self.pointers.classes),
                dict(self.pointers.class_colors),
            ):
                self.pointers.update(
                    {"positions_um": pos, "classes": classes, "class_colors": colours}
                )
            for pid in [p for p in self.rays if p not in peers]:
                self.scene.layers.remove(self.rays.pop(pid))
            for pid, lay in self.rays.items():
                if pid not in rays and lay.items:
                    lay.items = []
            for pid, (label, col, (a, b)) in rays.items():
                items = [Measurement(kind="distance", points_um=[a, b], label=label)]
                old = self.rays.get(pid)
                if old is None:
                    # A peer that rejoined (a new id) can still be listed under its old
                    # id until that one times out: two rays of one name.
                    taken = {lay.name for lay in self.scene.layers}
                    name, k = f"{SESSION_PREFIX}{label}", 2
                    while name in taken:
                        name, k = f"{SESSION_PREFIX}{label} ({k})", k + 1
                    new = Measurements(name=name, items=items, color=col)  # type: ignore[call-arg]
                    self.scene.add(new)
                    self.rays[pid] = new
                elif old.items != items or old.color != col:
                    old.update({"items": items, "color": col})
        self.peers_changed.emit()

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Leave the session (the window closing does it)."""
        if self._closed:
            return
        self._closed = True
        self.timer.stop()
        self.history.close()


def attach(viewer: QtViewer, history: CollabHistory, **kwargs: Any) -> DesktopCollab:
    """Run ``viewer`` in the session ``history`` belongs to (also ``viewer.collab``)."""
    collab = DesktopCollab(viewer, history, **kwargs)
    viewer.collab = collab  # type: ignore[attr-defined]
    core = history.client.core
    viewer.setWindowTitle(f"vrscope — session {core.session} ({core.name}, {core.role})")
    return collab


def run_joined(
    url: str,
    name: str = "desktop",
    role: str = "editor",
    store: str | None = None,
    labels: Sequence[str] | None = None,
    exit_after: float | None = None,
    screenshot: str | None = None,
) -> int:
    """``vrscope view --join URL``: join, open the session's data, run the Qt event loop."""
    from ._app import QtViewer

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["vrscope"])
    session, history = join_session(url, name=name, role=role, store=store, labels=labels)
    win = QtViewer(session)
    attach(win, history)
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
