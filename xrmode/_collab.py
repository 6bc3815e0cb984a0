"""Joining a collaborative session from the headset (``vrscope xr --join URL``).

:class:`XrCollab` connects a :class:`viewer.collab.CollabClient`; the app uses
its :class:`viewer.collab.CollabHistory` in place of a project's history, so
the tools' edit commands go to the session (applied at once, ordered and
journaled by the server). Once per frame the app calls :meth:`XrCollab.process`
(applies the others' ops on the frame-loop thread), :meth:`XrCollab.update_view`
(the others' clipping planes and time point, and the presenter's view in follow
mode), then :meth:`XrCollab.publish` (our head, hands, laser, clipping planes,
time point and viewpoint, latest-wins), and draws :func:`avatar_geometry` of the
other participants.

Label edits, like the desktop's: with ``--labels NAME`` the labels tool edits the
session's label images through :meth:`viewer.collab.CollabHistory.edit_labels` (the
server's working copies, drawn read-only here; the server computes each edit and every
participant re-reads what it changed, ``viewer/collab/_labels.py``).

Shared view, like the desktop (``viewer.qt._collab``): clipping planes and the
time point are latest-change-wins (a peer's are applied when that peer changed
them more recently than they changed here: the view's ``ts`` is the time of its
last change, so resends and viewpoint-only updates change nothing). With "follow
the presenter" on (the wrist menu toggles it) and the presenter leading, only the
presenter's planes and time apply, and their viewpoint (the view's ``camera``: a
desktop camera or an XR head) is adopted by moving the *world*, never the user:
:func:`follow_placement` puts the presenter's viewpoint at our head, upright
(their view-up is the stage's up, their view direction our head's heading), at
our own scale; :class:`PlacementMotion` glides there (0.6 s, eased). Small
changes of the presenter's viewpoint (head sway) are ignored. With it off, one
roams freely (planes and time still shared).

Coordinates on the wire are the world's (``docs/collab-protocol.md``):
positions zyx µm, laser directions zyx, orientations unit quaternions
``(w, x, y, z)`` of the device's rotation expressed in the world's x, y, z
axes (x = the array's last axis, as VTK draws it). Every participant has their
own world -> stage transform (each grabs and scales the volume for
themselves), so a peer's avatar is placed through *our* transform: it stands
where that person is relative to the data.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.errors import ParameterError

from ._transform import StageTransform
from .input._types import InputFrame, Pose, quat_from_matrix, quat_matrix
from .tools._view import _ray_box

__all__ = [
    "AvatarGeometry",
    "PlacementMotion",
    "XrCollab",
    "avatar_geometry",
    "follow_placement",
    "pose_from_world",
    "pose_to_world",
]

log = logging.getLogger(__name__)

RGB = tuple[float, float, float]

#: Avatar sizes in stage metres (what a person sees, whatever the volume's scale).
HEAD_RADIUS_M = 0.09
NOSE_M = (0.07, 0.16, 0.03)  # base distance, apex distance, base radius
HAND_RADIUS_M = 0.025
HAND_CONE_M = (0.0, 0.09, 0.02)
LASER_LENGTH_M = 1.5
HIT_RADIUS_M = 0.008


def pose_to_world(pose: Pose, tr: StageTransform) -> Any:
    """A stage :class:`~xrmode.input.Pose` as a session ``viewer.collab.Pose`` (world)."""
    from viewer.collab import Pose as WirePose

    r = tr.matrix_r.T @ quat_matrix(pose.orientation)  # device -> world xyz
    x, y, z, w = quat_from_matrix(r)
    return WirePose(position_um=_t3(tr.stage_to_world(pose.position)), orientation=(w, x, y, z))


def pose_from_world(wire: Any, tr: StageTransform) -> Pose:
    """A session pose (``position_um``, ``orientation`` w, x, y, z) in our stage."""
    w, x, y, z = (float(c) for c in wire.orientation)
    p = tr.world_to_stage(np.asarray(wire.position_um, dtype=np.float64))
    q = quat_from_matrix(tr.matrix_r @ quat_matrix((x, y, z, w)))
    return Pose((float(p[0]), float(p[1]), float(p[2])), q)


def _t3(a: npt.ArrayLike) -> tuple[float, float, float]:
    v = np.asarray(a, dtype=np.float64).reshape(3)
    return (float(v[0]), float(v[1]), float(v[2]))


def _world_dir_to_stage(d_zyx: Sequence[float], tr: StageTransform) -> npt.NDArray[np.float64]:
    d = tr.matrix_r @ np.asarray(d_zyx, dtype=np.float64)[::-1]
    n = float(np.linalg.norm(d))
    return d / n if n > 0 else d


def _colour(hex_rgb: str) -> RGB:
    h = hex_rgb.lstrip("#")
    return (int(h[0:2], 16) / 255, int(h[2:4], 16) / 255, int(h[4:6], 16) / 255)


def _wire_matrix(wire: Any) -> npt.NDArray[np.float64]:
    """The rotation (device axes in world x, y, z) of a session pose."""
    w, x, y, z = (float(c) for c in wire.orientation)
    return quat_matrix((x, y, z, w))


def _heading(head: Pose) -> npt.NDArray[np.float64]:
    """Upright frame (columns right, up, back in stage) facing the head's heading."""
    f = np.asarray(head.forward, dtype=np.float64)
    f = np.array([f[0], 0.0, f[2]])
    n = float(np.linalg.norm(f))
    if n < 1e-6:  # looking straight up or down: the heading of the head's up instead
        u = -np.asarray(head.up, dtype=np.float64) * np.sign(head.forward[1])
        f = np.array([u[0], 0.0, u[2]])
        n = float(np.linalg.norm(f))
        if n < 1e-6:
            f, n = np.array([0.0, 0.0, -1.0]), 1.0
    f /= n
    up = np.array([0.0, 1.0, 0.0])
    return np.stack([np.cross(f, up), up, -f], axis=1)


def follow_placement(camera: Any, head: Pose, scale: float) -> StageTransform:
    """The world -> stage transform that shows us the presenter's view.

    Puts the presenter's viewpoint ``camera`` (a session pose: position zyx µm,
    orientation with -Z the view direction and +Y the view-up, in world x, y, z) at
    our ``head`` (stage) and turns the world so their view-up is the stage's up
    and their view direction our head's horizontal heading: the world moves, the
    user's head never does, and the horizon stays level. ``scale`` (metres per µm)
    is kept: the session carries the presenter's viewpoint, not their scale.
    """
    r = _heading(head) @ _wire_matrix(camera).T  # world xyz -> stage
    p = np.asarray(camera.position_um, dtype=np.float64)[::-1]
    t = np.asarray(head.position, dtype=np.float64) - scale * r @ p
    return StageTransform(scale, quat_from_matrix(r), (float(t[0]), float(t[1]), float(t[2])))


class PlacementMotion:
    """A smooth change of the world -> stage transform, seen from a fixed stage point.

    Between ``start`` and ``end`` the world point at ``anchor`` (our head when the
    motion began) slides along a straight line, the world turns by a slerp and the
    scale changes geometrically, eased with a smoothstep over ``duration_s``: a
    glide, never a jump.

    Parameters
    ----------
    start, end : StageTransform
    anchor : (3,) stage metres
    t0 : float
        When it starts (seconds, any monotonic clock).
    duration_s : float, default: 0.6
    """

    def __init__(
        self,
        start: StageTransform,
        end: StageTransform,
        anchor: npt.ArrayLike,
        t0: float,
        duration_s: float = 0.6,
    ) -> None:
        from scipy.spatial.transform import Rotation

        self.start, self.end = start, end
        self.anchor = np.asarray(anchor, dtype=np.float64).reshape(3)
        self.t0 = float(t0)
        self.duration_s = max(float(duration_s), 1e-6)
        self._r0 = Rotation.from_matrix(start.matrix_r)
        self._rotvec = (self._r0.inv() * Rotation.from_matrix(end.matrix_r)).as_rotvec()
        self._w0 = start.stage_to_world(self.anchor)[::-1]
        self._w1 = end.stage_to_world(self.anchor)[::-1]

    def done(self, now: float) -> bool:
        return now >= self.t0 + self.duration_s

    def at(self, now: float) -> StageTransform:
        """The transform at time ``now`` (``start`` until ``t0``, ``end`` from
        ``t0 + duration_s`` on)."""
        from scipy.spatial.transform import Rotation

        u = min(max((now - self.t0) / self.duration_s, 0.0), 1.0)
        if u <= 0.0:
            return self.start
        if u >= 1.0:
            return self.end
        a = u * u * (3.0 - 2.0 * u)  # smoothstep: no jolt at either end
        r = (self._r0 * Rotation.from_rotvec(a * self._rotvec)).as_matrix()
        s = self.start.scale ** (1.0 - a) * self.end.scale**a
        w = (1.0 - a) * self._w0 + a * self._w1
        t = self.anchor - s * r @ w
        return StageTransform(s, quat_from_matrix(r), (float(t[0]), float(t[1]), float(t[2])))


@dataclass
class AvatarGeometry:
    """The other participants, in our stage (metres), ready for ``viewer.render.XrOverlay``.

    Attributes
    ----------
    spheres : (K, 3) float
        Heads, hands and laser hits.
    sphere_radii : (K,) float
    sphere_colors : (K, 3) float in 0..1
    cones : (C, 2, 3) float
        Base centre and apex: each hand's pointing direction, each head's gaze.
    cone_radii : (C,) float
    cone_colors : (C, 3) float
    lines : (L, 2, 3) float
        Laser rays.
    line_colors : (L, 3) float
    texts : list of (position (3,), str, rgb)
        Names above the heads.
    """

    spheres: list[tuple[float, float, float]] = field(default_factory=list)
    sphere_radii: list[float] = field(default_factory=list)
    sphere_colors: list[RGB] = field(default_factory=list)
    cones: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = field(
        default_factory=list
    )
    cone_radii: list[float] = field(default_factory=list)
    cone_colors: list[RGB] = field(default_factory=list)
    lines: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = field(
        default_factory=list
    )
    line_colors: list[RGB] = field(default_factory=list)
    texts: list[tuple[tuple[float, float, float], str, RGB]] = field(default_factory=list)

    def _sphere(self, p: npt.ArrayLike, r: float, c: RGB) -> None:
        a = np.asarray(p, dtype=np.float64)
        self.spheres.append((float(a[0]), float(a[1]), float(a[2])))
        self.sphere_radii.append(r)
        self.sphere_colors.append(c)

    def _cone(self, pose: Pose, dims: tuple[float, float, float], c: RGB) -> None:
        o, f = np.asarray(pose.position), pose.forward
        self.cones.append((o + dims[0] * f, o + dims[1] * f))
        self.cone_radii.append(dims[2])
        self.cone_colors.append(c)

    def arrays(self) -> dict[str, Any]:
        """Keyword arguments for ``viewer.render.XrOverlay`` (spheres, cones)."""
        return {
            "spheres": np.asarray(self.spheres, dtype=np.float64).reshape(-1, 3),
            "sphere_radii": np.asarray(self.sphere_radii, dtype=np.float64),
            "sphere_colors": np.asarray(self.sphere_colors, dtype=np.float64).reshape(-1, 3),
            "cones": np.asarray(self.cones, dtype=np.float64).reshape(-1, 2, 3),
            "cone_radii": np.asarray(self.cone_radii, dtype=np.float64),
            "cone_colors": np.asarray(self.cone_colors, dtype=np.float64).reshape(-1, 3),
        }


def avatar_geometry(peers: Iterable[Any], tr: StageTransform) -> AvatarGeometry:
    """Heads, hands and lasers of ``peers`` (``viewer.collab.Peer``) in our stage.

    A head is a sphere with a cone for the gaze and the name above it; a hand a
    small sphere with a cone along its pointing direction; an active laser a
    line to where it hits (or 1.5 m long) with a dot at the hit.
    """
    out = AvatarGeometry()
    for peer in peers:
        pres = peer.presence
        if pres is None:
            continue
        colour = _colour(peer.participant.colour)
        if pres.head is not None:
            head = pose_from_world(pres.head, tr)
            out._sphere(head.position, HEAD_RADIUS_M, colour)
            out._cone(head, NOSE_M, colour)
            above = np.asarray(head.position) + np.array([0.0, HEAD_RADIUS_M + 0.06, 0.0])
            out.texts.append(
                ((float(above[0]), float(above[1]), float(above[2])), peer.participant.name, colour)
            )
        for wire in (pres.left_hand, pres.right_hand):
            if wire is None:
                continue
            hand = pose_from_world(wire, tr)
            out._sphere(hand.position, HAND_RADIUS_M, colour)
            out._cone(hand, HAND_CONE_M, colour)
        laser = pres.laser
        if laser is not None and laser.active:
            o = tr.world_to_stage(np.asarray(laser.origin_um, dtype=np.float64))
            if laser.hit_um is not None:
                end = tr.world_to_stage(np.asarray(laser.hit_um, dtype=np.float64))
                out._sphere(end, HIT_RADIUS_M, colour)
            else:
                end = o + LASER_LENGTH_M * _world_dir_to_stage(laser.direction, tr)
            out.lines.append((o, end))
            out.line_colors.append(colour)
    return out


class XrCollab:
    """A session joined from the headset: the client, its history, and the shared view.

    Parameters
    ----------
    url : str
        ``ws://HOST:PORT/SESSION?token=...`` as printed by ``vrscope serve``.
    name : str, default: "xr"
    role : {"editor", "presenter", "observer"}, default: "editor"
    view_interval_s : float, default: 1.0
        The view state is sent when it changes and at least this often (so late
        joiners get it).
    max_rate_hz : float, default: 90
        Presence is sent at most this often (the protocol's rate).
    camera_rate_hz : float, default: 30
        Our viewpoint (the view's ``camera``: the head) is sent at most this often.
    client : viewer.collab.CollabClient, optional
        An already started client (tests); ``url`` is then ignored.

    Attributes
    ----------
    client : viewer.collab.CollabClient
    history : viewer.collab.CollabHistory
        Use it as the project's history; ``history.target`` is the shared Workspace.
    follow_presenter : bool
        Follow the presenter when they lead (the wrist menu toggles it); off: roam freely.
    transition_s : float, default: 0.6
        How long the world glides to the presenter's view.
    move_threshold_m, turn_threshold_deg : float, default: 0.05, 10
        Changes of the presenter's viewpoint smaller than this (seen at our scale)
        are ignored, so their head's sway does not rock our world.
    """

    #: Tools whose ray is shown to the others as a laser.
    POINTING_TOOLS = ("laser", "track", "classify")

    def __init__(
        self,
        url: str,
        name: str = "xr",
        role: str = "editor",
        view_interval_s: float = 1.0,
        max_rate_hz: float = 90.0,
        camera_rate_hz: float = 30.0,
        client: Any = None,
    ) -> None:
        from viewer.collab import CollabClient, CollabHistory

        self.client = client or CollabClient(url, name=name, role=role).start()
        self.history = CollabHistory(self.client)
        target = self.history.target
        if not hasattr(target, "annotations"):
            self.client.close()
            raise ParameterError(
                f"the session at {url.split('?')[0]} shares a bare track graph; the XR mode "
                "joins project sessions (vrscope serve PROJECT_DIR)"
            )
        self.view_interval_s = view_interval_s
        self._min_dt = 1.0 / max_rate_hz
        self._camera_dt = 1.0 / camera_rate_hz
        self._last_presence = -np.inf
        self._last_view = -np.inf
        from viewer.collab import ViewSync

        #: The shared view and follow state (``viewer.collab.ViewSync``, as the desktop's).
        self.sync = ViewSync(self.client)
        self.transition_s = 0.6
        self.move_threshold_m = 0.05
        self.turn_threshold_deg = 10.0
        self._view_dirty = True
        self._camera_dirty = False
        self._events: list[Any] = []
        # Follow mode: the viewpoint adopted last, the glide under way, what we set.
        self._following: int | None = None
        self._adopted: Any = None
        self._motion: PlacementMotion | None = None
        self._placed: StageTransform | None = None

    @property
    def me(self) -> int | None:
        """Our participant id."""
        me = self.client.core.me
        return None if me is None else int(me.id)

    @property
    def info(self) -> dict[str, Any]:
        """Session info from the server (``image``, ``labels``, ``project``)."""
        return dict(self.client.info)

    @property
    def peers(self) -> list[Any]:
        return list(self.client.peers.values())

    @property
    def follow_presenter(self) -> bool:
        return self.sync.follow_presenter

    @follow_presenter.setter
    def follow_presenter(self, on: bool) -> None:
        self.sync.follow_presenter = bool(on)

    @property
    def _shared_ts(self) -> float:
        return self.sync.shared_ts

    @property
    def _peer_keys(self) -> dict[int, Any]:
        return self.sync.peer_keys

    @property
    def leader(self) -> int | None:
        """The presenter whose view we follow now (None: roaming freely)."""
        return self.sync.leader

    @property
    def leading(self) -> bool:
        """Whether we are the presenter and everyone is asked to follow us."""
        return self.sync.leading

    def process(self) -> list[Any]:
        """Apply what arrived (once per frame, on the frame-loop thread).

        The view events are kept for :meth:`update_view`.
        """
        events = self.history.process()
        self._events.extend(events)
        return events

    # -- menu toggles --------------------------------------------------------------------
    def toggle_follow(self) -> str:
        """Wrist menu: follow the presenter on/off; returns the message to show."""
        self.follow_presenter = not self.follow_presenter
        self._adopted = None  # on again: adopt the presenter's view at once
        if not self.follow_presenter:
            self._motion = None
            return "roaming freely"
        return "following the presenter" if self.leader is not None else "follow: on"

    def toggle_lead(self) -> str:
        """Wrist menu (presenters): ask everyone to follow our view, or release them."""
        if self.client.core.role != "presenter":
            return "only a presenter can lead"
        on = not self.leading
        self.client.set_follow(on)
        return "leading: everyone follows you" if on else "stopped leading"

    def follow_label(self) -> str:
        return f"follow presenter: {'on' if self.follow_presenter else 'off'}"

    def lead_label(self) -> str:
        return f"lead the session: {'on' if self.leading else 'off'}"

    # -- the others' view ----------------------------------------------------------------
    def update_view(self, ctx: Any, head: Pose | None, now: float | None = None) -> None:
        """Apply the others' view state to ``ctx`` (once per frame, after :meth:`process`).

        Clipping planes and the time point latest-change-wins; in follow mode the
        presenter's instead, and the world glides to their viewpoint (``head``: our
        head pose in the stage, None while not tracked).
        """
        now = time.monotonic() if now is None else now
        self.sync.local_changed(ctx.scene)  # the first call takes our starting view
        events, self._events = self._events, []
        for ev in events:
            kind = ev.kind
            if kind == "view" and ev.participant is not None:
                self.sync.on_peer_view(int(ev.participant), ev.message, ctx.scene, _setter(ctx))
            elif kind == "left" and ev.participant is not None:
                self.sync.forget(int(ev.participant))
            elif kind == "welcome":
                self._view_dirty = True  # (re)joined: the server forgot our view
        leader = self.leader
        if leader != self._following:
            self._following = leader
            self._adopted = None
            self._motion = None
            if leader is not None:
                peer = self.client.peers.get(leader)
                name = peer.participant.name if peer is not None else f"#{leader}"
                ctx.message = f"following {name}"
                if peer is not None and peer.view is not None:
                    self._apply_view(peer.view, ctx)
        if leader is not None:
            peer = self.client.peers.get(leader)
            cam = None if peer is None or peer.view is None else peer.view.camera
            if cam is not None and head is not None and self._should_adopt(cam, ctx):
                self._adopted = cam
                start = ctx.transform
                end = follow_placement(cam, head, start.scale)
                self._motion = PlacementMotion(start, end, head.position, now, self.transition_s)
        motion = self._motion
        if motion is not None:
            if self._placed is not None and ctx.transform is not self._placed:
                self._motion = None  # the user grabbed the world: theirs until the next move
            else:
                ctx.transform = self._placed = motion.at(now)
                if motion.done(now):
                    self._motion = None

    def _should_adopt(self, cam: Any, ctx: Any) -> bool:
        old = self._adopted
        if old is None:
            return True
        if cam is old:
            return False
        moved = np.linalg.norm(np.subtract(cam.position_um, old.position_um))
        if moved * ctx.transform.scale > self.move_threshold_m:
            return True
        r = _wire_matrix(cam).T @ _wire_matrix(old)
        angle = np.degrees(np.arccos(np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)))
        return bool(angle > self.turn_threshold_deg)

    def _apply_view(self, view: Any, ctx: Any) -> None:
        """Show ``view``'s clipping planes, layers and time point."""
        self.sync.apply(view, ctx.scene, _setter(ctx))

    # -- what we send ------------------------------------------------------------------
    def publish(self, frame: InputFrame, ctx: Any, tool: str, now: float | None = None) -> None:
        """Send our presence (head, hands, laser) and, when changed, our view state."""
        now = time.monotonic() if now is None else now
        if now - self._last_presence >= self._min_dt:
            self._last_presence = now
            self.client.presence(**self.presence_args(frame, ctx, tool))
        if self.sync.local_changed(ctx.scene):
            self._view_dirty = True
        if frame.head is not None:
            self._camera_dirty = True
        since = now - self._last_view
        if (
            self._view_dirty
            or since >= self.view_interval_s
            or (self._camera_dirty and since >= self._camera_dt)
        ):
            self._view_dirty = self._camera_dirty = False
            self._last_view = now
            self.client.view(**self.view_args(ctx, frame.head))

    def presence_args(self, frame: InputFrame, ctx: Any, tool: str) -> dict[str, Any]:
        """Keyword arguments of ``client.presence`` for this frame (world coordinates)."""
        from viewer.collab import Laser

        tr = ctx.transform
        out: dict[str, Any] = {}
        if frame.head is not None:
            out["head"] = pose_to_world(frame.head, tr)
        if frame.left.aim is not None:
            out["left_hand"] = pose_to_world(frame.left.aim, tr)
        if frame.right.aim is not None:
            out["right_hand"] = pose_to_world(frame.right.aim, tr)
            if tool in self.POINTING_TOOLS:
                ray = frame.right.aim.ray()
                o = tr.stage_to_world(ray.origin)
                d = tr.stage_dir_to_world(ray.direction)
                hit = None
                if ctx.scene is not None:
                    lo, hi = ctx.scene.extent_world()
                    t = _ray_box(o, d, np.asarray(lo), np.asarray(hi))
                    if t is not None:
                        hit = _t3(o + t * d)
                out["laser"] = Laser(
                    origin_um=_t3(o),
                    direction=_t3(d),
                    hit_um=hit,
                )
        return out

    def view_args(self, ctx: Any, head: Pose | None = None) -> dict[str, Any]:
        """Keyword arguments of ``client.view``: the scene's clipping planes, time and
        layers (``ViewSync.view_args``), our viewpoint (the head, world) as the camera."""
        out = self.sync.view_args(ctx.scene)
        if head is not None:
            out["camera"] = pose_to_world(head, ctx.transform)
        return out

    def close(self) -> None:
        self.history.close()


def _setter(ctx: Any) -> Any:
    def set_time(t: float) -> None:
        ctx.current_time = float(t)

    return set_time
