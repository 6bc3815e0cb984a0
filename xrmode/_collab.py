"""Joining a collaborative session from the headset (``vrscope xr --join URL``).

:class:`XrCollab` connects a :class:`viewer.collab.CollabClient`; the app uses
its :class:`viewer.collab.CollabHistory` in place of a project's history, so
the tools' edit commands go to the session (applied at once, ordered and
journaled by the server). Once per frame the app calls :meth:`XrCollab.process`
(applies the others' ops on the frame-loop thread), then :meth:`XrCollab.publish`
(our head, hands, laser, clipping plane and time point, latest-wins), and draws
:func:`avatar_geometry` of the other participants.

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
    "XrCollab",
    "avatar_geometry",
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
    """A session joined from the headset: the client, its history, and what we publish.

    Parameters
    ----------
    url : str
        ``ws://HOST:PORT/SESSION?token=...`` as printed by ``vrscope serve``.
    name : str, default: "xr"
    role : {"editor", "presenter", "observer"}, default: "editor"
    view_interval_s : float, default: 1.0
        The view state (clipping plane, time) is sent when it changes and at least
        this often (so late joiners get it).
    max_rate_hz : float, default: 90
        Presence is sent at most this often (the protocol's rate).

    Attributes
    ----------
    client : viewer.collab.CollabClient
    history : viewer.collab.CollabHistory
        Use it as the project's history; ``history.target`` is the shared Workspace.
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
    ) -> None:
        from viewer.collab import CollabClient, CollabHistory

        self.client = CollabClient(url, name=name, role=role).start()
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
        self._last_presence = 0.0
        self._last_view = 0.0
        self._view_key: Any = None

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

    def process(self) -> list[Any]:
        """Apply what arrived (once per frame, on the frame-loop thread)."""
        return self.history.process()

    def publish(self, frame: InputFrame, ctx: Any, tool: str) -> None:
        """Send our presence (head, hands, laser) and, when changed, our view state."""
        now = time.monotonic()
        if now - self._last_presence >= self._min_dt:
            self._last_presence = now
            self.client.presence(**self.presence_args(frame, ctx, tool))
        view = self.view_args(ctx)
        key = repr(view)
        if key != self._view_key or now - self._last_view >= self.view_interval_s:
            self._view_key = key
            self._last_view = now
            self.client.view(**view)

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

    def view_args(self, ctx: Any) -> dict[str, Any]:
        """Keyword arguments of ``client.view``: the scene's clipping planes and time."""
        from viewer.collab import ClipPlane

        planes = []
        if ctx.scene is not None:
            for p in list(ctx.scene.clipping_planes)[:6]:
                planes.append(
                    ClipPlane(
                        origin_um=_t3(p.origin),
                        normal=_t3(p.normal),
                        enabled=bool(p.enabled),
                    )
                )
        return {"clip_planes": planes, "time_point": float(ctx.current_time)}

    def close(self) -> None:
        self.history.close()
