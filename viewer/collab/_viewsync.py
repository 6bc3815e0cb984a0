"""``ViewSync``: the shared view of a session, one model for the desktop and the headset.

What the participants share besides edits: clipping planes, the time point and
layer visibility (latest change wins, by the ``ts`` each view carries), and in
follow mode the presenter's view. Each front end publishes its view through
its client and, per received ``view`` message, asks :meth:`ViewSync.on_peer_view`
whether to show it; the model applies planes, layers and time to the scene. The
camera is the front end's own business (the desktop moves its camera, the
headset glides the world to the presenter's viewpoint); ``on_peer_view`` says
when the view came from the leader.

No Qt, no VTK, no OpenXR.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Literal

__all__ = ["SESSION_PREFIX", "ViewSync"]

log = logging.getLogger(__name__)

#: Scene layers a front end adds for the session itself (others' pointers, rays):
#: never shared, never hidden by a peer.
SESSION_PREFIX = "session: "
MAX_PLANES = 6
MAX_LAYERS = 64


class ViewSync:
    """Latest-change-wins shared view and follow-the-presenter, for one participant.

    Parameters
    ----------
    client : CollabClient
        Its ``core`` gives our id, the role, the follow state and the peers.

    Attributes
    ----------
    follow_presenter : bool
        Follow the presenter when the session asks (the user's toggle).
    share_view : bool
        Show the others' planes, time and layers when nobody is followed.
    shared_ts : float
        When the shared view we show last changed (ours or a peer's, wall clock).
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.follow_presenter = True
        self.share_view = True
        self.shared_ts = 0.0
        self._local_key: Any = None
        self._peer_keys: dict[int, Any] = {}

    # ------------------------------------------------------------------ follow state
    @property
    def leader(self) -> int | None:
        """The presenter whose view we follow now (None: no one, or it is us)."""
        core = self.client.core
        f = core.follow
        if not (self.follow_presenter and f.enabled and f.presenter is not None):
            return None
        if core.me is not None and f.presenter == core.me.id:
            return None
        return int(f.presenter)

    @property
    def leading(self) -> bool:
        """Whether we are the presenter and everyone is asked to follow us."""
        core = self.client.core
        return bool(
            core.follow.enabled and core.me is not None and core.follow.presenter == core.me.id
        )

    # ------------------------------------------------------------------ keys
    @staticmethod
    def layer_visibility(scene: Any) -> dict[str, bool]:
        """``{name: visible}`` of the scene's shareable layers."""
        out: dict[str, bool] = {}
        for lay in scene.layers:
            if lay.name and not lay.name.startswith(SESSION_PREFIX) and len(lay.name) <= 64:
                out[lay.name] = bool(lay.visible)
            if len(out) == MAX_LAYERS:
                break
        return out

    @classmethod
    def scene_key(cls, scene: Any) -> Any:
        """What of the scene is shared (planes, time, layers), comparable."""
        if scene is None:
            return (), 0.0, ()
        planes = tuple(
            (tuple(p.origin), tuple(p.normal), bool(p.enabled))
            for p in list(scene.clipping_planes)[:MAX_PLANES]
        )
        vis = tuple(sorted(cls.layer_visibility(scene).items()))
        return planes, float(scene.current_time), vis

    @staticmethod
    def view_key(view: Any) -> Any:
        """The same for a received ``View`` message."""
        planes = tuple(
            (tuple(p.origin_um), tuple(p.normal), bool(p.enabled)) for p in view.clip_planes
        )
        t = None if view.time is None else float(view.time)
        return planes, t, tuple(sorted(view.layers.items()))

    # ------------------------------------------------------------------ ours
    def reset_local(self, scene: Any) -> None:
        """The scene as it is now is nobody's change (call when starting)."""
        self._local_key = self.scene_key(scene)

    def local_changed(self, scene: Any) -> bool:
        """Whether the shared part of ``scene`` changed here since last asked.

        A change gets a new timestamp (:attr:`shared_ts`), so it wins over older ones.
        """
        key = self.scene_key(scene)
        if self._local_key is None:
            self._local_key = key  # the state we started with is nobody's change
            return False
        if key == self._local_key:
            return False
        self._local_key = key
        self.shared_ts = time.time()
        return True

    def view_args(self, scene: Any) -> dict[str, Any]:
        """Keyword arguments of ``client.view`` for the shared part (camera not included)."""
        from ._protocol import ClipPlane

        if scene is None:
            return {"clip_planes": [], "time_point": 0.0, "layers": {}, "ts": self.shared_ts}
        planes = [
            ClipPlane(origin_um=_t3(p.origin), normal=_t3(p.normal), enabled=bool(p.enabled))
            for p in list(scene.clipping_planes)[:MAX_PLANES]
        ]
        return {
            "clip_planes": planes,
            "time_point": float(scene.current_time),
            "layers": self.layer_visibility(scene),
            "ts": self.shared_ts,
        }

    # ------------------------------------------------------------------ theirs
    @property
    def peer_keys(self) -> dict[int, Any]:
        """``{participant: view_key}`` of the last view seen from each peer."""
        return self._peer_keys

    def forget(self, participant: int) -> None:
        """A participant left."""
        self._peer_keys.pop(int(participant), None)

    def on_peer_view(
        self, participant: int, view: Any, scene: Any, set_time: Callable[[float], None]
    ) -> Literal["leader", "shared"] | None:
        """React to a peer's ``view`` message; returns what it was to us.

        ``"leader"``: the presenter we follow (their planes, time and layers are shown
        when they changed; the front end moves its camera); ``"shared"``: a newer
        shared view, now shown; None: ignored.
        """
        pid = int(participant)
        key = self.view_key(view)
        changed = self._peer_keys.get(pid) != key
        self._peer_keys[pid] = key
        leader = self.leader
        if leader is not None:
            if pid != leader:
                return None
            if changed:
                self.apply(view, scene, set_time)
            return "leader"
        if not self.share_view or not changed or view.ts <= self.shared_ts:
            return None
        self.apply(view, scene, set_time)
        self.shared_ts = float(view.ts)
        return "shared"

    def apply(self, view: Any, scene: Any, set_time: Callable[[float], None]) -> None:
        """Show ``view``'s clipping planes, layer visibility and time point in ``scene``."""
        from viewer.scene import ClippingPlane

        if scene is not None:
            try:
                planes = scene.clipping_planes
                for i, cp in enumerate(view.clip_planes):
                    fields = {"origin": cp.origin_um, "normal": cp.normal, "enabled": cp.enabled}
                    if i < len(planes):
                        planes[i].update(fields)
                    else:
                        planes.append(ClippingPlane(**fields))
                while len(planes) > len(view.clip_planes):
                    del planes[len(planes) - 1]
                names = set(scene.layers.names)
                for name, visible in view.layers.items():
                    if name in names and not name.startswith(SESSION_PREFIX):
                        scene.layers.get(name).visible = bool(visible)
            except ValueError as exc:  # e.g. a zero normal: show what we could
                log.warning("collab: ignoring part of a peer's view: %s", exc)
        if view.time is not None:
            set_time(float(view.time))
        self._local_key = self.scene_key(scene)


def _t3(v: Any) -> tuple[float, float, float]:
    return (float(v[0]), float(v[1]), float(v[2]))
