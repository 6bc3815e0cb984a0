"""``ViewSync``, the one shared-view model of the desktop and the headset (no network).

References: the View messages as sent; the scene's planes, time and layers after each.
"""

from __future__ import annotations

from types import SimpleNamespace

from viewer.collab import SESSION_PREFIX, ClipPlane, ViewSync
from viewer.collab._protocol import View
from viewer.scene import Points, Scene


def client(follow: bool = False, presenter: int | None = None) -> SimpleNamespace:
    core = SimpleNamespace(
        me=SimpleNamespace(id=1),
        follow=SimpleNamespace(enabled=follow, presenter=presenter),
        peers={},
    )
    return SimpleNamespace(core=core)


def scene() -> Scene:
    sc = Scene()
    sc.add(Points(name="markers"))
    sc.add(Points(name=SESSION_PREFIX + "pointers"))
    return sc


def setter(sc: Scene):
    def set_time(t: float) -> None:
        sc.current_time = t

    return set_time


def test_latest_change_wins_and_layers_follow_but_session_layers_do_not():
    sc = scene()
    sync = ViewSync(client())
    assert not sync.local_changed(sc)  # the start is nobody's change
    plane = ClipPlane(origin_um=(1.0, 2.0, 3.0), normal=(1.0, 0.0, 0.0))
    hide = {"markers": False, SESSION_PREFIX + "pointers": False}
    v = View(ts=10.0, clip_planes=[plane], time=4.0, layers=hide)
    assert sync.on_peer_view(2, v, sc, setter(sc)) == "shared"
    assert sc.current_time == 4.0 and len(sc.clipping_planes) == 1
    assert not sc.layers.get("markers").visible
    assert sc.layers.get(SESSION_PREFIX + "pointers").visible
    assert not sync.local_changed(sc)  # showing theirs is not our change
    assert sync.on_peer_view(2, v, sc, setter(sc)) is None  # a resend
    sc.current_time = 5.0
    assert sync.local_changed(sc) and sync.shared_ts > 10.0
    args = sync.view_args(sc)
    assert args["time_point"] == 5.0 and args["layers"] == {"markers": False}
    older = View(ts=11.0, clip_planes=[], time=2.0)
    assert sync.on_peer_view(3, older, sc, setter(sc)) is None  # older than ours
    assert sc.current_time == 5.0


def test_following_shows_only_the_leader():
    sc = scene()
    sync = ViewSync(client(follow=True, presenter=7))
    assert sync.leader == 7 and not sync.leading
    v = View(ts=1.0, time=3.0)
    assert sync.on_peer_view(2, v, sc, setter(sc)) is None
    assert sc.current_time == 0.0
    assert sync.on_peer_view(7, v, sc, setter(sc)) == "leader"
    assert sc.current_time == 3.0
    sync.follow_presenter = False
    assert sync.leader is None
    me = ViewSync(client(follow=True, presenter=1))
    assert me.leader is None and me.leading
