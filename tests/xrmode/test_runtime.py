"""``vrscope xr`` against a real OpenXR runtime: headless Monado with its remote driver.

Each test starts the app in a subprocess (through the Monado sysroot's loader),
scripts head and controller poses and buttons over Monado's remote-driver
socket, and checks what lands in the project folder by reopening it with
``analysis.project.Project`` (what the desktop app opens). Expected values
come from the scripted stage positions and the world <-> stage similarity
computed here with NumPy, not from the app.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from analysis.project import Project
from xrmode.input import PROFILES
from xrmode.testing import MonadoRuntime, RemoteRig, XrAppRun, move, press

from .conftest import BALL_CENTRE_UM

pytestmark = pytest.mark.xr_runtime

IDENTITY = (0.0, 0.0, 0.0, 1.0)
REACH_M = 0.05  # the tools' tip is 5 cm ahead of the aim pose


def world_to_stage(tr: dict, zyx: np.ndarray) -> np.ndarray:
    """stage = t + s * R(q) @ world_xyz (independent re-implementation for the tests)."""
    x, y, z, w = tr["rotation_xyzw"]
    r = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    return np.asarray(tr["translation_m"]) + tr["scale_m_per_um"] * (np.asarray(zyx)[::-1] @ r.T)


def stage_to_world(tr: dict, p: np.ndarray) -> np.ndarray:
    x, y, z, w = tr["rotation_xyzw"]
    r = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    return (r.T @ ((np.asarray(p) - tr["translation_m"]) / tr["scale_m_per_um"]))[::-1]


def start(
    monado: MonadoRuntime, tmp_path: Path, args: list[str], display: str | None = None
) -> tuple[XrAppRun, RemoteRig, dict]:
    """Connect the rig (head in front of the table, hands at rest), start the app, wait for focus."""
    rig = RemoteRig(port=monado.remote_port).connect()
    rig.set(head_position=(0.0, 1.05, 0.1), head_orientation=IDENTITY)
    app = XrAppRun(monado, args, tmp_path / "run", display=display).start()
    session = app.wait_for(lambda e: e["event"] == "session", 120, "session start")
    app.wait_state("FOCUSED", 60)
    app.wait_frames(lambda e: e["state"] == "FOCUSED" and e["right"] is not None, 1, 60)
    # The volume is placed in front of the head on the first tracked frame: that
    # placement is the transform the scripted positions are computed with.
    placed = [e for e in app.events if e["event"] == "placed"]
    if placed:
        session = {**session, "transform": placed[-1]["transform"]}
    return app, rig, session


def step_time_to(rig: RemoteRig, app: XrAppRun, t: float) -> None:
    """Push the left stick right, once per time point, until the app shows time ``t``
    (a time-lapse opens at its first time point)."""
    for _ in range(20):
        if app.wait_frames(lambda e: True, 1)["time"] >= t:
            return
        rig.hand("left", thumbstick=(1.0, 0.0))
        app.wait_frames(lambda e: True, 3)
        rig.hand("left", thumbstick=(0.0, 0.0))
        app.wait_frames(lambda e: True, 3)
    raise AssertionError(f"time never reached {t}")


def finish(app: XrAppRun, rig: RemoteRig) -> None:
    """End the session like a user would (SIGTERM -> request exit), expect a clean exit."""
    app.proc.terminate()  # type: ignore[union-attr]
    rc = app.wait_exit(60)
    rig.close()
    assert rc == 0, app.log_tail()
    states = [e["state"] for e in app.events if e["event"] == "state"]
    assert states[-2:] == ["IDLE", "EXITING"], states


@pytest.mark.parametrize("graphics", ["egl", "glx"])
def test_session_focuses_renders_both_eyes_and_exits(monado, ball_store, tmp_path, graphics):
    """Both bindings Monado accepts: EGL (XR_MNDX_egl_enable) and Xlib/GLX (an X display:
    Xvfb under scripts/test.sh; the app's GLX then comes from the Monado sysroot's Mesa)."""
    display = None
    if graphics == "glx":
        display = os.environ.get("DISPLAY")
        assert display, "the GLX binding test needs an X display: run under xvfb-run"
    snap = tmp_path / "snap"
    app, rig, session = start(
        monado,
        tmp_path,
        [
            str(ball_store),
            "--project",
            str(tmp_path / "p"),
            "--snapshot",
            str(snap),
            "--exit-after",
            "0.5",
            "--graphics",
            graphics,
        ],
        display=display,
    )
    try:
        rc = app.wait_exit(120)
    finally:
        app.stop()
        rig.close()
    assert rc == 0, app.log_tail()
    states = [e["state"] for e in app.events if e["event"] == "state"]
    # Every state of a normal session, in order, ending cleanly.
    for s in ("READY", "SYNCHRONIZED", "VISIBLE", "FOCUSED", "STOPPING", "IDLE", "EXITING"):
        assert s in states, states
    assert states.index("FOCUSED") < states.index("STOPPING") < states.index("EXITING")
    assert app.events[-1]["event"] == "closed"
    assert session["graphics"] == graphics
    assert ("XR_MNDX_egl_enable" in session["extensions"]) == (graphics == "egl")
    # The runtime validated every suggested binding path of every profile.
    assert sorted(session["profiles"]) == sorted(PROFILES), session["rejected"]

    left = np.asarray(Image.open(snap / "left.png")).astype(int)
    right = np.asarray(Image.open(snap / "right.png")).astype(int)
    meta = json.loads((snap / "eyes.json").read_text())
    bg = np.array([0.18, 0.18, 0.2]) * 255
    cols = []
    for img in (left, right):
        fg = np.abs(img - bg).max(axis=-1) > 40
        # The bright ball (value 200 of 0..200, grey colormap): not blank.
        ball = img.min(axis=-1) > 150
        assert ball.mean() > 0.01, "the eye image does not show the sample"
        assert fg.mean() < 0.9
        cols.append(np.nonzero(ball)[1].mean())
    # Stereo: the ball is further right in the left eye; disparity = f_px * ipd / depth.
    e0, e1 = meta["eyes"]
    ipd = np.linalg.norm(np.subtract(e1["position_m"], e0["position_m"]))
    fov = e0["fov"]
    f_px = e0["size"][0] / (np.tan(fov[1]) - np.tan(fov[0]))
    centre = world_to_stage(meta["transform"], np.asarray(BALL_CENTRE_UM))
    depth = np.mean([e0["position_m"][2], e1["position_m"][2]]) - centre[2]
    want = f_px * ipd / depth
    got = cols[0] - cols[1]
    assert want > 1.0
    assert got == pytest.approx(want, rel=0.35), (got, want)


def test_scripted_distance_measurement(monado, ball_store, tmp_path):
    proj = tmp_path / "p"
    app, rig, session = start(
        monado, tmp_path, [str(ball_store), "--project", str(proj), "--tool", "measure"]
    )
    try:
        p1 = np.array([0.05, 1.10, -0.40])
        p2 = p1 + np.array([0.08, -0.03, 0.04])
        move(rig, app, "right", p1)
        press(rig, app, "right")
        move(rig, app, "right", p2)
        press(rig, app, "right")
        app.wait_count(lambda e: e["event"] == "edit", 1, 60, "measurement edits")
        finish(app, rig)
    finally:
        app.stop()
        rig.close()
    tr = session["transform"]
    with Project.open(proj) as pr:
        ms = pr.annotations.measurements
    assert len(ms) == 1 and ms[0].kind == "distance"
    want_um = np.linalg.norm(p2 - p1) / tr["scale_m_per_um"]
    assert ms[0].value == pytest.approx(want_um, rel=1e-3)
    tip = np.array([0.0, 0.0, -REACH_M])
    np.testing.assert_allclose(ms[0].points_um[0], stage_to_world(tr, p1 + tip), atol=0.05)


def test_scripted_counting_places_one_marker_per_click(monado, ball_store, tmp_path):
    proj = tmp_path / "p"
    app, rig, session = start(
        monado,
        tmp_path,
        [str(ball_store), "--project", str(proj), "--tool", "count", "--classes", "vesicle"],
    )
    spots = [np.array([0.0, 1.05, -0.45]) + np.array([0.03 * i, 0.01 * i, 0.0]) for i in range(3)]
    try:
        for p in spots:
            move(rig, app, "right", p)
            press(rig, app, "right")
        app.wait_count(lambda e: e["event"] == "edit", len(spots), 60, "marker edits")
        finish(app, rig)
    finally:
        app.stop()
        rig.close()
    tr = session["transform"]
    with Project.open(proj) as pr:
        markers = pr.annotations.markers
        counts = pr.annotations.counts()
    assert counts == {"vesicle": 3}
    got = np.array([m.position_um for m in markers])
    want = np.array([stage_to_world(tr, p + np.array([0.0, 0.0, -REACH_M])) for p in spots])
    np.testing.assert_allclose(got, want, atol=0.05)


def test_scripted_track_cut_at_pointed_node(monado, ball_store, line_track, tmp_path):
    proj = tmp_path / "p"
    app, rig, session = start(
        monado,
        tmp_path,
        [str(ball_store), "--tracks", str(line_track), "--project", str(proj), "--tool", "track"],
    )
    try:
        step_time_to(rig, app, 4.0)  # the last time point: every node is drawn
        tr = session["transform"]
        with Project.open(proj, read_only=True) as pr:  # the XR app holds the project
            node = 3
            target = world_to_stage(tr, np.asarray(pr.tracks.position(node)))
        # Aim straight down -Z at the node from 30 cm in front of it.
        move(rig, app, "right", target + np.array([0.0, 0.0, 0.3]), orientation=IDENTITY)
        press(rig, app, "right", "a_click")
        app.wait_count(lambda e: e["event"] == "edit", 1, 60, "the cut")
        finish(app, rig)
    finally:
        app.stop()
        rig.close()
    with Project.open(proj) as pr:
        g = pr.tracks
        assert g.parent(3) is None
        assert g.children(2) == ()
        assert g.n_edges == 3
        assert pr.history.undo_steps[-1].name == "cut before 3"


def test_scripted_two_hand_scale(monado, ball_store, tmp_path):
    proj = tmp_path / "p"
    app, rig, session = start(
        monado, tmp_path, [str(ball_store), "--project", str(proj), "--tool", "grab"]
    )
    try:
        left, right = np.array([-0.1, 1.2, -0.3]), np.array([0.1, 1.2, -0.3])
        move(rig, app, "left", left)
        move(rig, app, "right", right)
        rig.hand("left", squeeze=1.0)
        rig.hand("right", squeeze=1.0)
        both = ("left.squeeze", "right.squeeze")
        app.wait_frames(lambda e: all(b in e["buttons"] for b in both), 2)
        right2 = np.array([0.3, 1.2, -0.3])  # hands 0.2 m -> 0.4 m apart: factor 2
        move(rig, app, "right", right2)
        app.wait_frames(lambda e: all(b in e["buttons"] for b in both), 2)
        rig.hand("left", squeeze=0.0)
        rig.hand("right", squeeze=0.0)
        app.wait_frames(lambda e: not any(b in e["buttons"] for b in both), 1)
        finish(app, rig)
    finally:
        app.stop()
        rig.close()
    s0 = session["transform"]["scale_m_per_um"]
    with Project.open(proj) as pr:
        saved = pr.load_scene()
    assert saved is not None
    tr1 = saved["xr"]["transform"]
    assert tr1["scale_m_per_um"] / s0 == pytest.approx(2.0, rel=1e-3)
    # Scaled about the hands' midpoint: the world point under the first midpoint
    # is now under the new midpoint.
    anchor = stage_to_world(session["transform"], (left + right) / 2)
    np.testing.assert_allclose(world_to_stage(tr1, anchor), (left + right2) / 2, atol=1e-4)


def _serve(folder: Path) -> tuple[subprocess.Popen, str]:
    """``vrscope serve FOLDER`` on a free loopback port; returns the process and the edit URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vrscope", "serve", str(folder), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "join (edit)" in line:
            return proc, line.split()[-1]
    proc.wait(10)
    raise AssertionError("vrscope serve printed no join URL:\n" + "".join(lines))


class Observer(threading.Thread):
    """A second participant: a headless asyncio client recording ops and presence."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.joined = threading.Event()
        self.cut = threading.Event()
        self.stop = threading.Event()
        self.cut_author: str | None = None
        self.parent_of_3: object = "unset"
        self.heads: dict[str, tuple[float, float, float]] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        from viewer.collab import AsyncCollabClient, Pose

        async def main() -> None:
            async with AsyncCollabClient(self.url, name="desk", role="observer") as c:
                self.joined.set()
                # Our own head, for the XR participant to draw as an avatar.
                c.presence(head=Pose(position_um=(8.0, 8.0, 30.0)))
                while not self.stop.is_set():
                    for ev in c.events:
                        msg = ev.message
                        if ev.kind == "applied" and msg.cmd is not None and msg.cmd.kind == "cut":
                            self.cut_author = msg.author
                            self.parent_of_3 = c.target.tracks.parent(3)
                            self.cut.set()
                    c.events.clear()
                    for p in c.core.peers.values():
                        if p.presence is not None and p.presence.head is not None:
                            self.heads[p.participant.name] = p.presence.head.position_um
                    await asyncio.sleep(0.02)

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by the test
            self.error = exc
            self.joined.set()


def test_joined_session_cut_reaches_the_server_and_another_client(
    monado, ball_store, line_track, tmp_path
):
    """``vrscope xr --join URL``: a cut made in the headset is applied by the server
    (a client joining afterwards gets it in the server's snapshot, and the session
    journal holds it), reaches a second, headless client while both are joined, and
    the second client sees the XR participant's head where the rig put it."""
    from viewer.collab import CollabClient, SessionJournal

    folder = tmp_path / "shared"
    Project.create(folder, image=str(ball_store), tracks=str(line_track)).close()
    server, url = _serve(folder)
    observer = Observer(url)
    app = rig = None
    try:
        observer.start()
        assert observer.joined.wait(30) and observer.error is None, observer.error
        app, rig, session = start(
            monado, tmp_path, ["--join", url, "--tool", "track", "--name", "xr-test"]
        )
        step_time_to(rig, app, 4.0)  # the last time point: every node is drawn
        tr = session["transform"]
        with Project.open(folder, read_only=True) as pr:  # served: the server holds it
            target = world_to_stage(tr, np.asarray(pr.tracks.position(3)))
        move(rig, app, "right", target + np.array([0.0, 0.0, 0.3]), orientation=IDENTITY)
        press(rig, app, "right", "a_click")
        app.wait_count(lambda e: e["event"] == "edit", 1, 60, "the cut")
        assert observer.cut.wait(30), "the second client never saw the cut"
        # Presence: the head the rig set, in world µm (the session's transform).
        head_um = stage_to_world(tr, np.array([0.0, 1.05, 0.1]))
        deadline = time.monotonic() + 30
        while "xr-test" not in observer.heads and time.monotonic() < deadline:
            time.sleep(0.05)
        np.testing.assert_allclose(
            observer.heads["xr-test"], head_um, atol=1e-3 / tr["scale_m_per_um"]
        )
        finish(app, rig)
    finally:
        observer.stop.set()
        if app is not None:
            app.stop()
        if rig is not None:
            rig.close()
    observer.join(10)
    assert observer.cut_author == "xr-test" and observer.parent_of_3 is None
    # The XR app had one peer (the observer) and drew its head as an avatar sphere.
    frames = [e for e in app.events if e["event"] == "frame"]
    assert {e["peers"] for e in frames} <= {0, 1} and any(e["avatars"] == 1 for e in frames)
    collab = [e for e in app.events if e["event"] == "collab"]
    assert len(collab) == 1 and collab[0]["participant"] is not None
    # The server's state, as a participant joining now receives it.
    late = CollabClient(url, name="late", role="observer").start()
    try:
        g = late.target.tracks
        assert g.parent(3) is None and g.children(2) == () and g.n_edges == 3
    finally:
        late.close()
    server.terminate()
    server.wait(20)
    with SessionJournal(folder / "collab-shared.sqlite") as journal:
        rows = journal.ops_after(0)
    assert [(r[3], r[4], r[5]["cmd"]["kind"]) for r in rows] == [("xr-test", "cmd", "cut")]
    assert rows[0][5]["cmd"]["args"] == {"node": 3}
