"""A joined XR session applies the others' view: clipping planes, time, follow the presenter.

A real session server (``viewer.collab.CollabServer`` on loopback) and a headless
asyncio presenter (``AsyncCollabClient``) on a loop thread; the XR side is the
app's :class:`xrmode._collab.XrCollab` (threaded ``CollabClient``) driven frame by
frame with a fake clock, no OpenXR runtime. References: the values the presenter
sent, and the follow geometry re-derived with SciPy's ``Rotation`` (the
presenter's view direction must become our heading, their view-up the stage's up,
their viewpoint our head).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from analysis.annotations import Annotations
from analysis.project import Workspace
from analysis.tracks import TrackGraph
from viewer.collab import AsyncCollabClient, ClipPlane, CollabServer, Session
from viewer.collab import Pose as WirePose
from viewer.scene import Scene
from xrmode._collab import PlacementMotion, XrCollab, follow_placement, pose_to_world
from xrmode._transform import StageTransform
from xrmode.input import HandInput, InputFrame, Pose
from xrmode.tools import MeasureTool, MenuAction, Toolbox, ToolContext

FPS = 90.0


def xyzw(rot: Rotation) -> tuple[float, float, float, float]:
    x, y, z, w = rot.as_quat()
    return (float(x), float(y), float(z), float(w))


def wire_pose(position_um, rot_world_xyz: Rotation) -> WirePose:
    x, y, z, w = rot_world_xyz.as_quat()
    return WirePose(position_um=tuple(position_um), orientation=(w, x, y, z))


class LoopThread:
    """An asyncio loop on its own thread: the server and the presenter live there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 20.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def do(self, fn: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return fn()

        return self.call(run())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class Served:
    def __init__(self, lt: LoopThread, server: CollabServer, presenter: AsyncCollabClient):
        self.lt, self.server, self.presenter = lt, server, presenter
        self.url = server.join_url("review", "edit")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    g = TrackGraph.from_arrays([0, 1], [0, 1], [[1.0, 2.0, 3.0], [2.0, 2.0, 3.0]], [[0, 1]])
    lt = LoopThread()

    async def start() -> tuple[CollabServer, AsyncCollabClient]:
        server = CollabServer("127.0.0.1", 0)
        server.add_session(
            Session("review", Workspace(g, Annotations()), tmp_path / "s.sqlite", {})
        )
        await server.start()
        url = server.join_url("review", "edit")
        presenter = await AsyncCollabClient(url, name="PI", role="presenter").start()
        return server, presenter

    server, presenter = lt.call(start())
    try:
        yield Served(lt, server, presenter)
    finally:
        lt.call(presenter.close())
        lt.call(server.stop())
        lt.close()


class XrSide:
    """The XR app's per-frame collab calls, with a fake frame clock."""

    def __init__(self, url: str, head: Pose) -> None:
        self.collab = XrCollab(url, name="xr")
        self.scene = Scene()
        self.ctx = ToolContext(
            transform=StageTransform(0.01, xyzw(Rotation.from_euler("x", 180, degrees=True))),
            apply=self.collab.history.apply,
            scene=self.scene,
            workspace=self.collab.history.target,
        )
        self.head = head
        self.now = 100.0
        self.history: list[tuple[float, StageTransform]] = []

    def frame(self, inp: InputFrame | None = None) -> None:
        self.collab.process()
        self.collab.update_view(self.ctx, self.head, now=self.now)
        self.history.append((self.now, self.ctx.transform))
        frame = inp or InputFrame(self.now, self.head)
        self.collab.publish(frame, self.ctx, "measure", now=self.now)
        self.now += 1.0 / FPS

    def until(self, cond: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            self.frame()
            time.sleep(0.002)

    def close(self) -> None:
        self.collab.close()


HEAD = Pose((0.1, 1.6, 0.3), xyzw(Rotation.from_euler("YX", [30, -10], degrees=True)))


def test_shared_clipping_plane_and_time_apply_latest_change_wins(served: Served):
    xr = XrSide(served.url, HEAD)
    try:
        pi = served.presenter
        plane = ClipPlane(origin_um=(4.0, 5.0, 6.0), normal=(0.0, 3.0, 4.0), enabled=True)
        ts = time.time()
        served.lt.do(lambda: pi.view(clip_planes=[plane], time_point=7.0, ts=ts))
        xr.until(lambda: len(xr.scene.clipping_planes) == 1)
        (got,) = xr.scene.clipping_planes
        np.testing.assert_allclose(got.origin, (4.0, 5.0, 6.0))
        np.testing.assert_allclose(got.normal, np.array([0.0, 3.0, 4.0]) / 5.0, atol=1e-12)
        assert got.enabled and xr.ctx.current_time == 7.0
        # Applying a peer's view is not our change: we do not send it back as ours.
        xr.frame()
        assert xr.collab._shared_ts == ts

        # Now we move the plane here: it is the newest change and goes to the others.
        got.update({"origin": (1.0, 1.0, 1.0)})
        xr_id = xr.collab.me

        def pi_sees_ours() -> bool:
            peer = pi.core.peers.get(xr_id)
            v = None if peer is None else peer.view
            return v is not None and v.clip_planes and v.clip_planes[0].origin_um == (1, 1, 1)

        xr.until(lambda: served.lt.do(pi_sees_ours))
        theirs = served.lt.do(lambda: pi.core.peers[xr_id].view)
        assert theirs.ts > ts and theirs.time == 7.0
        # Our viewpoint travels as the view's camera (world coordinates), for followers.
        want = pose_to_world(HEAD, xr.ctx.transform)
        np.testing.assert_allclose(theirs.camera.position_um, want.position_um, atol=1e-6)
        # The presenter resends its older state (same ts), and a change it made before
        # ours arrives late (older ts): neither undoes our newer change.
        late = ClipPlane(origin_um=(9.0, 9.0, 9.0), normal=(1.0, 0.0, 0.0))
        served.lt.do(lambda: pi.view(clip_planes=[plane], time_point=7.0, ts=ts))
        served.lt.do(lambda: pi.view(clip_planes=[late], time_point=8.0, ts=theirs.ts - 1e-3))
        xr.until(
            lambda: (
                xr.collab._peer_keys.get(pi.core.me.id, ((),))[0][:1]
                == (((9.0, 9.0, 9.0), (1.0, 0.0, 0.0), True),)
            )
        )
        for _ in range(10):
            xr.frame()
        assert xr.scene.clipping_planes[0].origin == (1.0, 1.0, 1.0)
        assert xr.ctx.current_time == 7.0
        # A newer change of theirs wins again (time only; planes removed).
        ts2 = time.time()
        served.lt.do(lambda: pi.view(clip_planes=[], time_point=9.0, ts=ts2))
        xr.until(lambda: xr.ctx.current_time == 9.0)
        assert len(xr.scene.clipping_planes) == 0
    finally:
        xr.close()


def check_follow(tr: StageTransform, cam_pos_um, cam_rot: Rotation, head: Pose, scale: float):
    """Following must put the presenter's viewpoint at our head, their view direction
    along our head's horizontal heading and their view-up along the stage's up."""
    f = Rotation.from_quat(head.orientation).apply([0.0, 0.0, -1.0])
    heading = np.array([f[0], 0.0, f[2]]) / np.hypot(f[0], f[2])
    np.testing.assert_allclose(tr.world_to_stage(np.asarray(cam_pos_um)), head.position, atol=1e-9)
    # The wire orientation is in world x, y, z; matrix_r maps world xyz -> stage.
    np.testing.assert_allclose(tr.matrix_r @ cam_rot.apply([0.0, 0.0, -1.0]), heading, atol=1e-9)
    np.testing.assert_allclose(tr.matrix_r @ cam_rot.apply([0.0, 1.0, 0.0]), [0, 1, 0], atol=1e-9)
    assert tr.scale == pytest.approx(scale)


def test_follow_mode_glides_the_world_to_the_presenters_view(served: Served):
    xr = XrSide(served.url, HEAD)
    try:
        pi = served.presenter
        pi_id = pi.core.me.id
        scale = xr.ctx.transform.scale
        cam_rot = Rotation.from_euler("xyz", [-25, 40, 5], degrees=True)
        cam_pos = (30.0, -10.0, 55.0)
        shared = {
            "clip_planes": [ClipPlane(origin_um=(2.0, 2.0, 2.0), normal=(1.0, 0.0, 0.0))],
            "time_point": 1.0,
            "ts": time.time(),
        }

        def send(pos, rot, **changes: Any) -> None:
            if changes:
                shared.update(changes, ts=time.time())
            served.lt.do(lambda: pi.view(camera=wire_pose(pos, rot), **shared))

        def presenter_camera_is(pos) -> bool:
            peer = xr.collab.client.peers.get(pi_id)
            cam = None if peer is None or peer.view is None else peer.view.camera
            return cam is not None and np.allclose(cam.position_um, pos)

        served.lt.do(lambda: pi.set_follow(True))
        send(cam_pos, cam_rot)
        start = xr.ctx.transform
        xr.until(lambda: xr.collab._motion is not None)
        t0 = xr.history[-1][0]
        assert xr.collab.leader == pi_id and xr.ctx.message == "following PI"
        assert len(xr.scene.clipping_planes) == 1 and xr.ctx.current_time == 1.0
        while xr.collab._motion is not None:
            xr.frame()
        check_follow(xr.ctx.transform, cam_pos, cam_rot, HEAD, scale)
        # Comfort: a glide, not a jump. The world point at the head moves along a line;
        # no frame's step exceeds 1.6x the mean step (smoothstep peaks at 1.5x) and
        # the first frame barely moves.
        glide = [tr for t, tr in xr.history if t >= t0]
        at_head = np.array([tr.stage_to_world(HEAD.position) for tr in [start, *glide]])
        steps = np.linalg.norm(np.diff(at_head, axis=0), axis=1)
        total = float(np.linalg.norm(at_head[-1] - at_head[0]))
        n = int(round(xr.collab.transition_s * FPS))
        assert total > 0 and steps.max() <= 1.6 * total / n
        assert steps[0] <= 0.05 * total
        line = (at_head[-1] - at_head[0]) / total
        off_line = np.linalg.norm(np.cross(at_head - at_head[0], line), axis=1)
        assert off_line.max() <= 1e-9 * total

        # Sway below the thresholds (2 cm at our scale, 3 degrees) does not move our world.
        settled = xr.ctx.transform
        sway = (cam_pos[0], cam_pos[1], cam_pos[2] + 0.02 / scale)
        send(sway, Rotation.from_euler("y", 3, degrees=True) * cam_rot)
        xr.until(lambda: presenter_camera_is(sway))
        for _ in range(10):
            xr.frame()
        assert xr.ctx.transform is settled

        # The presenter walks around the data: we glide to the new viewpoint, and get
        # their new time point.
        cam_rot2 = Rotation.from_euler("y", -70, degrees=True) * cam_rot
        cam_pos2 = (10.0, 0.0, -20.0)
        send(cam_pos2, cam_rot2, time_point=2.0)
        xr.until(lambda: xr.collab._motion is not None)
        while xr.collab._motion is not None:
            xr.frame()
        check_follow(xr.ctx.transform, cam_pos2, cam_rot2, HEAD, scale)
        assert xr.ctx.current_time == 2.0

        # Follow off from the wrist menu: free roaming, the presenter's moves stay theirs.
        box = Toolbox(
            {"measure": MeasureTool()},
            xr.ctx,
            "measure",
            actions={"follow": MenuAction(xr.collab.follow_label, xr.collab.toggle_follow)},
        )
        assert box.menu.items == ["measure", "follow"]
        for inp in menu_pick(index=1):
            box.update(inp)
        assert not xr.collab.follow_presenter and xr.ctx.message == "roaming freely"
        assert xr.collab.leader is None
        roaming = xr.ctx.transform
        cam_pos3 = (0.0, 0.0, 80.0)
        send(cam_pos3, cam_rot, time_point=3.0)
        xr.until(lambda: presenter_camera_is(cam_pos3))
        for _ in range(10):
            xr.frame()
        assert xr.ctx.transform is roaming
        # ... but their newer time point is still shared (latest change wins).
        assert xr.ctx.current_time == 3.0
        # On again: the world glides to where the presenter looks now.
        for inp in menu_pick(index=1):
            box.update(inp)
        assert xr.collab.follow_presenter and xr.ctx.message == "following the presenter"
        xr.until(lambda: xr.collab._motion is not None)
        while xr.collab._motion is not None:
            xr.frame()
        check_follow(xr.ctx.transform, cam_pos3, cam_rot, HEAD, scale)
    finally:
        xr.close()


def menu_pick(index: int) -> list[InputFrame]:
    """Frames that open the left-hand menu, move the highlight down ``index`` items from
    the first, and pick with the right trigger."""
    from xrmode.input import Button

    press, release = Button(True, 1.0, True, False), Button(False, 0.0, False, True)
    aim_l, aim_r = Pose((-0.2, 1.2, -0.3)), Pose((0.2, 1.2, -0.3))

    def f(left: dict[str, Any] | None = None, right: dict[str, Any] | None = None) -> InputFrame:
        return InputFrame(
            0.0,
            None,
            HandInput("left", aim=aim_l, **(left or {})),
            HandInput("right", aim=aim_r, **(right or {})),
        )

    out = [f({"menu": press}), f({"menu": release})]
    for _ in range(index):
        out += [f({"thumbstick": (0.0, -1.0)}), f()]
    return out + [f(right={"select": press}), f(right={"select": release})]


def test_follow_placement_and_motion_without_a_session():
    """The geometry alone: a desktop presenter's camera looking down at the data."""
    cam_rot = Rotation.from_euler("xy", [-60, 120], degrees=True)
    cam = wire_pose((5.0, 6.0, 7.0), cam_rot)
    head = Pose((-0.3, 1.7, 0.1), xyzw(Rotation.from_euler("YXZ", [-50, 20, 8], degrees=True)))
    end = follow_placement(cam, head, 0.004)
    check_follow(end, (5.0, 6.0, 7.0), cam_rot, head, 0.004)
    # Looking straight down, the heading comes from the head's up (no degenerate frame).
    down = Pose((0.0, 1.5, 0.0), xyzw(Rotation.from_euler("YX", [40, -90], degrees=True)))
    tr = follow_placement(cam, down, 0.004)
    assert np.isfinite(tr.matrix_r).all()
    np.testing.assert_allclose(tr.matrix_r @ cam_rot.apply([0, 1, 0]), [0, 1, 0], atol=1e-9)
    # The motion: start at 0, end at the end, scale changes geometrically.
    start = StageTransform(0.001, xyzw(Rotation.from_euler("x", 180, degrees=True)), (0, 1, -1))
    m = PlacementMotion(start, end, head.position, t0=10.0, duration_s=1.0)
    assert m.at(9.0) == start and m.at(11.5) is end and m.done(11.0) and not m.done(10.5)
    mid = m.at(10.5)
    assert mid.scale == pytest.approx(np.sqrt(0.001 * 0.004))
    # Halfway (smoothstep(0.5) = 0.5): half the rotation between them, by SciPy.
    r0, r1 = Rotation.from_matrix(start.matrix_r), Rotation.from_matrix(end.matrix_r)
    half = r0 * Rotation.from_rotvec(0.5 * (r0.inv() * r1).as_rotvec())
    np.testing.assert_allclose(mid.matrix_r, half.as_matrix(), atol=1e-9)
    w0, w1 = start.stage_to_world(head.position), end.stage_to_world(head.position)
    np.testing.assert_allclose(mid.stage_to_world(head.position), (w0 + w1) / 2, atol=1e-9)
