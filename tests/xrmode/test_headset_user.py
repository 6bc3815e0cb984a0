"""The headset as a user meets it (issue 19), on headless Monado with scripted input.

Each test runs ``vrscope xr`` in a subprocess, scripts the head and hands over
Monado's remote driver, and checks the eye images the app read back from its
swapchains (``--snapshot``) or the project it saved. Expected pixels come from
the scripted geometry projected with NumPy through the eye's own projection
matrix (``eyes.json``), not from the app's renderer.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from analysis.project import Project
from xrmode.testing import MonadoRuntime, MonadoService, RemoteRig, XrAppRun, find_monado

from .conftest import BALL_CENTRE_UM, BALL_RADIUS_UM, free_port
from .test_runtime import IDENTITY, finish, start, world_to_stage

pytestmark = pytest.mark.xr_runtime

BG = np.array([0.18, 0.18, 0.2]) * 255


@pytest.fixture(scope="module")
def labelled_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bright ball (radius 7 µm, value 200) holding two labelled objects inside it:
    balls of radius 2.5 µm at x = 5 and 11 µm (labels 1 and 2)."""
    from analysis.io import write_labels, write_ngff

    z, y, x = np.mgrid[:32, :32, :32] * 0.5
    c = np.asarray(BALL_CENTRE_UM)
    r2 = (z - c[0]) ** 2 + (y - c[1]) ** 2
    image = r2 + (x - c[2]) ** 2 < 7.0**2
    path = tmp_path_factory.mktemp("xr-labels") / "cell.zarr"
    write_ngff((image * 200).astype(np.uint8), path, scale_um=(0.5, 0.5, 0.5))
    labels = np.zeros(image.shape, np.uint16)
    for value, cx in ((1, 5.0), (2, 11.0)):
        labels[r2 + (x - cx) ** 2 < 2.5**2] = value
    write_labels(path, "objects", labels)
    return path


def _snapshot(folder: Path) -> tuple[list[np.ndarray], dict]:
    imgs = [np.asarray(Image.open(folder / f"{n}.png")).astype(int) for n in ("left", "right")]
    return imgs, json.loads((folder / "eyes.json").read_text())


def _project(meta: dict, eye: int, p_stage: np.ndarray) -> np.ndarray:
    """(column, row from the top) of stage points in eye ``eye`` of a snapshot."""
    from scipy.spatial.transform import Rotation

    e = meta["eyes"][eye]
    w, h = e["size"]
    rot = Rotation.from_quat(e["orientation_xyzw"])
    cam = rot.inv().apply(np.atleast_2d(p_stage) - np.asarray(e["position_m"]))
    clip = np.c_[cam, np.ones(len(cam))] @ np.asarray(e["projection"]).T
    ndc = clip[:, :2] / clip[:, 3:4]
    return np.c_[(ndc[:, 0] + 1) / 2 * w - 0.5, (1 - ndc[:, 1]) / 2 * h - 0.5]


def _run_snapshot(monado, tmp_path, args, head=(0.0, 1.05, 0.1), hands=None):
    rig = RemoteRig(port=monado.remote_port).connect()
    rig.set(head_position=head, head_orientation=IDENTITY)
    for side, pos in (hands or {}).items():
        rig.hand(side, position=pos, orientation=IDENTITY)
    snap = tmp_path / "snap"
    app = XrAppRun(
        monado,
        [*args, "--snapshot", str(snap), "--exit-after", "0.2", "--no-adaptive-quality"],
        tmp_path / "run",
    ).start()
    try:
        rc = app.wait_exit(180)
    finally:
        app.stop()
        rig.close()
    assert rc == 0, app.log_tail()
    return _snapshot(snap)


def test_labels_show_their_colours(monado, labelled_store, tmp_path):
    """``--labels`` without ``--opacity``: the image is translucent and the two objects'
    colours show through it (on main ``--opacity``'s default 1 hid them in a grey ball)."""
    (left, right), meta = _run_snapshot(
        monado, tmp_path, [str(labelled_store), "--labels", "objects"]
    )
    tr = meta["transform"]
    for i, img in enumerate((left, right)):
        rows, cols = np.mgrid[: img.shape[0], : img.shape[1]]
        means = []
        for cx in (5.0, 11.0):
            centre = world_to_stage(tr, np.array([8.0, 8.0, cx]))
            edge = centre + [2.5 * tr["scale_m_per_um"], 0.0, 0.0]
            (c, r), (ce, _) = _project(meta, i, np.array([centre, edge]))
            disk = (rows - r) ** 2 + (cols - c) ** 2 < (0.6 * abs(ce - c)) ** 2
            assert disk.sum() > 10
            px = img[disk][:, :3]
            sat = px.max(axis=-1) - px.min(axis=-1)
            # The object's colour shows: saturated, not the image's grey.
            assert np.median(sat) > 40, f"eye {i}: object at x={cx} is grey ({np.median(sat)})"
            means.append(px.mean(axis=0))
        # Two labels, two colours.
        assert np.abs(means[0] - means[1]).max() > 40, means


def test_hud_text_stays_on_top_of_the_volume(monado, ball_store, tmp_path):
    """The menu hand's status text, 15 cm in front of the opaque ball, keeps its dark
    backing and its light glyphs in the eye image (on main the volume blended over it)."""
    head = np.array([0.0, 1.3, 0.1])
    # Placement in front of the head (0.55 m ahead, 0.2 m down): the ball's centre.
    centre = head + np.array([0.0, -0.2, -0.55])
    # The status text hangs 6 cm under the left hand's aim: put it 15 cm before the ball.
    hand = centre + np.array([0.0, 0.06, 0.15])
    (left, right), meta = _run_snapshot(
        monado,
        tmp_path,
        [str(ball_store), "--project", str(tmp_path / "p")],
        head=tuple(head),
        hands={"left": tuple(hand), "right": (0.3, 0.8, -0.2)},
    )
    tr = meta["transform"]
    ball_c = world_to_stage(tr, np.asarray(BALL_CENTRE_UM))
    r_m = BALL_RADIUS_UM * tr["scale_m_per_um"]
    for i, img in enumerate((left, right)):
        (c, r), (ce, _) = _project(meta, i, np.array([ball_c, ball_c + [r_m, 0.0, 0.0]]))
        rows, cols = np.mgrid[: img.shape[0], : img.shape[1]]
        inner = (rows - r) ** 2 + (cols - c) ** 2 < (0.6 * abs(ce - c)) ** 2
        assert inner.sum() > 100
        ball = img[inner][:, :3]
        # Without the HUD the inner disk is all bright ball; the text's 60 % black
        # backing darkens part of it, and its glyphs are light.
        dark = (ball.max(axis=-1) < 120).sum()
        assert dark > 30, f"eye {i}: the HUD text is hidden by the volume ({dark} dark px)"
        # The glyphs' own colour (0.8, 0.9, 1.0): bluish white, unlike the grey ball
        # (and the grey controller models).
        glyphs = ((ball[:, 2] - ball[:, 0] > 25) & (ball[:, 2] > 150)).sum()
        assert glyphs > 5, f"eye {i}: no glyph pixels over the volume ({glyphs})"


def test_standing_user_sees_the_whole_volume(monado, ball_store, tmp_path):
    """A standing head at 1.6 m looking level: the volume is placed in front of it and the
    whole ball is inside both eye images (on main it sat at 1.05 m, cut off at the bottom)."""
    (left, right), meta = _run_snapshot(
        monado, tmp_path, [str(ball_store), "--project", str(tmp_path / "p")], head=(0.0, 1.6, 0.0)
    )
    tr = meta["transform"]
    ball_c = world_to_stage(tr, np.asarray(BALL_CENTRE_UM))
    r_m = BALL_RADIUS_UM * tr["scale_m_per_um"]
    for i, img in enumerate((left, right)):
        ball = img.min(axis=-1) > 150
        assert ball.any()
        # Nothing of the ball touches the image border: all of it is in view.
        assert not (ball[0].any() or ball[-1].any() or ball[:, 0].any() or ball[:, -1].any())
        # Its area matches the projected sphere's (the whole ball, not a cut part).
        (c, _), (ce, _) = _project(meta, i, np.array([ball_c, ball_c + [r_m, 0.0, 0.0]]))
        want = np.pi * (ce - c) ** 2
        assert ball.sum() == pytest.approx(want, rel=0.3), (ball.sum(), want)
        rows, cols = np.nonzero(ball)
        # Level gaze: the ball is below the image centre (0.2 m under the eyes).
        assert rows.mean() > img.shape[0] / 2


def test_time_lapse_opens_at_the_first_time_point(monado, ball_store, line_track, tmp_path):
    app, rig, _ = start(
        monado,
        tmp_path,
        [str(ball_store), "--tracks", str(line_track), "--project", str(tmp_path / "p")],
    )
    try:
        frames = [e for e in app.events if e["event"] == "frame"]
        assert frames and frames[-1]["time"] == 0.0
        finish(app, rig)
    finally:
        app.stop()
        rig.close()


def _kill_trial(root, folder: Path, store: Path, port: int, delay_s: float) -> tuple[int, str]:
    rt = MonadoRuntime(root, folder / "monado", remote_port=port)
    svc = MonadoService(rt).start()
    rig = RemoteRig(port=port).connect()
    proj = folder / "p"
    app = XrAppRun(rt, [str(store), "--project", str(proj), "--tool", "count"], folder / "run")
    try:
        app.start()
        app.wait_state("FOCUSED", 120)
        # An edit confirmed before the crash: a marker.
        rig.hand("right", position=(0.0, 1.0, -0.4), trigger_click=True, trigger=1.0)
        app.wait_count(lambda e: e["event"] == "edit", 1, 60, "the marker")
        rig.hand("right", trigger_click=False, trigger=0.0)
        app.wait_frames(lambda e: e["state"] == "FOCUSED", 2, 60)
        time.sleep(delay_s)
        assert svc.proc is not None
        os.kill(svc.proc.pid, signal.SIGKILL)  # the runtime dies mid-frame
        svc.proc.wait(10)
        rc = app.wait_exit(60)
    finally:
        app.stop()
        rig.close()
        svc.stop()
    with Project.open(proj) as pr:
        assert len(pr.annotations.markers) == 1, "the confirmed marker was lost"
    return rc, app.log_tail(20000)


def test_runtime_killed_mid_frame_exits_in_one_line(ball_store, tmp_path):
    """``monado-service`` killed at different points of the frame loop, several times:
    every time the app exits with a non-zero code and one error line, no traceback,
    and the marker placed before the crash is in the project."""
    root = find_monado()
    assert root is not None, "Monado is not installed (scripts/monado.sh)"
    trials = int(os.environ.get("VRSCOPE_KILL_TRIALS", "6"))
    for k in range(trials):
        rc, log = _kill_trial(root, tmp_path / f"t{k}", ball_store, free_port(), 0.013 * k)
        assert rc != 0, f"trial {k}: exit code 0 after the runtime died\n{log}"
        assert "Traceback" not in log, f"trial {k}:\n{log}"
        errors = [ln for ln in log.splitlines() if ln.startswith("vrscope xr: error:")]
        assert len(errors) == 1 and "runtime" in errors[0], f"trial {k}:\n{log}"


def test_a_bare_hand_fist_moves_the_volume_and_places_no_marker(monado, ball_store, tmp_path):
    """Hand tracking only (the controllers inactive): closing the right hand into a fist
    grabs the volume, carrying the hand 10 cm carries the volume 10 cm, and with the
    count tool in hand no marker is placed (on main the fist never grabbed, and its
    thumb closing on the index clicked)."""
    proj = tmp_path / "p"
    app, rig, session = start(
        monado, tmp_path, [str(ball_store), "--project", str(proj), "--tool", "count"]
    )
    try:
        p0 = np.array([0.15, 1.0, -0.3])
        rig.hand("left", active=False, hand_tracking_active=True, position=(-0.3, 0.8, -0.2))
        rig.hand("right", active=False, hand_tracking_active=True, position=tuple(p0))
        app.wait_frames(lambda e: e["right"] is not None and "right.squeeze" not in e["buttons"], 3)
        rig.hand("right", hand_curl=(1.0, 1.0, 1.0, 1.0, 1.0))
        held = app.wait_frames(lambda e: "right.squeeze" in e["buttons"], 2)
        a0 = np.asarray(held["right"])
        rig.hand("right", position=tuple(p0 + [0.1, 0.0, 0.0]))
        app.wait_frames(
            lambda e: e["right"] is not None and abs(e["right"][0] - (a0[0] + 0.1)) < 1e-3, 2
        )
        rig.hand("right", hand_curl=(0.0, 0.0, 0.0, 0.0, 0.0))
        app.wait_frames(lambda e: "right.squeeze" not in e["buttons"], 2)
        finish(app, rig)
    finally:
        app.stop()
        rig.close()
    assert not [e for e in app.events if e["event"] == "edit"]
    with Project.open(proj) as pr:
        assert pr.annotations.markers == [] or len(pr.annotations.markers) == 0
        saved = pr.load_scene()
    assert saved is not None
    t0 = np.asarray(session["transform"]["translation_m"])
    t1 = np.asarray(saved["xr"]["transform"]["translation_m"])
    np.testing.assert_allclose(t1 - t0, [0.1, 0.0, 0.0], atol=2e-3)
    assert saved["xr"]["transform"]["rotation_xyzw"] == pytest.approx(
        session["transform"]["rotation_xyzw"], abs=1e-3
    )


def _stick_to(rig, app, side: str, label: str, limit: int = 20) -> None:
    """Push the stick down, one item at a time, until the menu highlights ``label``."""
    for _ in range(limit):
        ev = app.wait_frames(lambda e: e["menu"] is not None, 2)
        if ev["menu"].strip() == label or ev["menu"].startswith(label):
            return
        rig.hand(side, thumbstick=(0.0, -1.0))
        app.wait_frames(lambda e: True, 3)
        rig.hand(side, thumbstick=(0.0, 0.0))
        app.wait_frames(lambda e: True, 3)
    raise AssertionError(f"the menu never highlighted {label!r}")


def test_wrist_panel_lowers_a_layers_opacity(monado, ball_store, tmp_path):
    """Menu -> "layers >" -> "opacity -" pressed until 0: the ball vanishes from the eyes."""
    from xrmode.testing import press

    snap = tmp_path / "snap"
    app, rig, _ = start(
        monado,
        tmp_path,
        [str(ball_store), "--project", str(tmp_path / "p"), "--snapshot", str(snap)],
    )
    try:
        app.wait_count(lambda e: e["event"] == "snapshot", 1, 120, "the first snapshot")
        press(rig, app, "left", "system_click")  # open the menu
        _stick_to(rig, app, "left", "layers >")
        press(rig, app, "left")
        _stick_to(rig, app, "left", "opacity")
        for _ in range(10):
            press(rig, app, "left")
        ev = app.wait_frames(lambda e: e["menu"] is not None, 1)
        assert ev["menu"].split()[:2] == ["opacity", "0.00"], ev["menu"]
        app.proc.send_signal(signal.SIGUSR1)  # type: ignore[union-attr]
        app.wait_count(lambda e: e["event"] == "snapshot", 2, 120, "the second snapshot")
        finish(app, rig)
    finally:
        app.stop()
        rig.close()
    (before, _), meta = _snapshot(snap)
    (after, _), meta2 = _snapshot(snap / "1")
    tr = meta2["transform"]
    ball_c = world_to_stage(tr, np.asarray(BALL_CENTRE_UM))
    r_m = BALL_RADIUS_UM * tr["scale_m_per_um"]
    (c, r), (ce, _) = _project(meta2, 0, np.array([ball_c, ball_c + [r_m, 0.0, 0.0]]))
    rows, cols = np.mgrid[: after.shape[0], : after.shape[1]]
    inner = (rows - r) ** 2 + (cols - c) ** 2 < (0.6 * abs(ce - c)) ** 2
    assert (before.min(axis=-1) > 150).sum() > 100  # the ball, at opacity 1
    # At opacity 0 none of the ball is left; what shows there is the room behind it.
    assert (after[inner].min(axis=-1) > 150).sum() == 0


def test_playback_from_the_menu_runs_to_the_last_time_point(
    monado, ball_store, line_track, tmp_path
):
    """A time-lapse opens at t = 0; the menu's "play" steps time forward a few points a
    second and stops at the last time point (4) instead of running past the data."""
    from xrmode.testing import press

    app, rig, _ = start(
        monado,
        tmp_path,
        [str(ball_store), "--tracks", str(line_track), "--project", str(tmp_path / "p")],
    )
    try:
        press(rig, app, "left", "system_click")
        _stick_to(rig, app, "left", "play")
        press(rig, app, "left")
        app.wait_frames(lambda e: e["time"] == 4.0, 10, 60)
        times = [e["time"] for e in app.events if e["event"] == "frame"]
        finish(app, rig)
    finally:
        app.stop()
        rig.close()
    assert times[0] == 0.0
    # Every time point in order, none skipped back, none past the end.
    seen = [t for i, t in enumerate(times) if i == 0 or t != times[i - 1]]
    assert seen == [0.0, 1.0, 2.0, 3.0, 4.0], seen


def test_crop_box_between_the_hands_cuts_the_ball(monado, ball_store, tmp_path):
    """Crop tool: both triggers held with the hands' tips at opposite corners of a box
    whose +x face passes through the ball's centre: the ball's right half (stage +x)
    leaves the eye images, its left half stays."""
    snap = tmp_path / "snap"
    app, rig, session = start(
        monado,
        tmp_path,
        [
            str(ball_store),
            "--project",
            str(tmp_path / "p"),
            "--tool",
            "crop",
            "--snapshot",
            str(snap),
            "--no-adaptive-quality",
        ],
    )
    try:
        app.wait_count(lambda e: e["event"] == "snapshot", 1, 120, "the first snapshot")
        tr = session["transform"]
        c = world_to_stage(tr, np.asarray(BALL_CENTRE_UM))
        reach = np.array([0.0, 0.0, 0.05])  # the tips are 5 cm ahead (-z) of the aims
        for side, tip in (("left", c + [-0.25, -0.25, -0.25]), ("right", c + [0.0, 0.25, 0.25])):
            rig.hand(side, position=tuple(tip + reach), orientation=IDENTITY)
        both = ("left.select", "right.select")
        for side in ("left", "right"):
            rig.hand(side, trigger_click=True, trigger=1.0)
        app.wait_frames(lambda e: all(b in e["buttons"] for b in both), 3)
        for side in ("left", "right"):
            rig.hand(side, trigger_click=False, trigger=0.0)
        app.wait_frames(lambda e: not any(b in e["buttons"] for b in both), 2)
        assert len(app.wait_frames(lambda e: True, 1)["planes"]) == 6
        app.proc.send_signal(signal.SIGUSR1)  # type: ignore[union-attr]
        app.wait_count(lambda e: e["event"] == "snapshot", 2, 120, "the second snapshot")
        finish(app, rig)
    finally:
        app.stop()
        rig.close()
    (before, _), _ = _snapshot(snap)
    (after, _), meta = _snapshot(snap / "1")
    ball_c = world_to_stage(meta["transform"], np.asarray(BALL_CENTRE_UM))
    r_m = BALL_RADIUS_UM * meta["transform"]["scale_m_per_um"]
    (cc, rr), (ce, _) = _project(meta, 0, np.array([ball_c, ball_c + [r_m, 0.0, 0.0]]))
    r_px = abs(ce - cc)
    rows, cols = np.mgrid[: after.shape[0], : after.shape[1]]
    disk = (rows - rr) ** 2 + (cols - cc) ** 2 < r_px**2
    right = disk & (cols > cc + 0.25 * r_px)
    left = disk & (cols < cc - 0.25 * r_px)
    bright_b, bright_a = before.min(axis=-1) > 150, after.min(axis=-1) > 150
    assert bright_b[right].sum() > 20 and bright_b[left].sum() > 20
    assert bright_a[right].sum() == 0, "the cropped half is still drawn"
    assert bright_a[left].sum() > 0.5 * bright_b[left].sum()


def test_index_trackpad_press_opens_the_menu(monado, ball_store, tmp_path):
    """The remote driver is an Index controller: a firm trackpad press opens the menu
    (SteamVR may keep the system button for itself) and a second one closes it."""
    app, rig, _ = start(monado, tmp_path, [str(ball_store), "--project", str(tmp_path / "p")])
    try:
        for want_open in (True, False):
            rig.hand("left", trackpad_force=1.0)
            app.wait_frames(lambda e: "left.menu" in e["buttons"], 1)
            rig.hand("left", trackpad_force=0.0)
            ev = app.wait_frames(lambda e: "left.menu" not in e["buttons"], 2)
            assert (ev["menu"] is not None) == want_open
        finish(app, rig)
    finally:
        app.stop()
        rig.close()


def test_a_marker_inside_the_opaque_ball_stays_visible(monado, ball_store, tmp_path):
    """A marker at the centre of the opaque ball (5 µm inside it) still shows, faded, in
    both eye images where it projects: its class colour tints the ball's grey there,
    and nowhere far from it (on main the volume hid it completely)."""
    from analysis.annotations import AddMarker

    proj = tmp_path / "p"
    with Project.create(proj, image=str(ball_store), classes={"cell": (0.1, 0.3, 1.0)}) as pr:
        pr.history.apply(AddMarker("cell", BALL_CENTRE_UM))
    (left, right), meta = _run_snapshot(
        monado,
        tmp_path,
        [str(ball_store), "--project", str(proj)],
        head=(0.0, 1.3, 0.1),
        hands={"left": (-0.3, 0.8, -0.2), "right": (0.3, 0.8, -0.2)},
    )
    tr = meta["transform"]
    centre = world_to_stage(tr, np.asarray(BALL_CENTRE_UM))
    r_ball = BALL_RADIUS_UM * tr["scale_m_per_um"]
    for i, img in enumerate((left, right)):
        (c, r), (ce, _) = _project(meta, i, np.array([centre, centre + [r_ball, 0.0, 0.0]]))
        rows, cols = np.mgrid[: img.shape[0], : img.shape[1]]
        d2 = (rows - r) ** 2 + (cols - c) ** 2
        rgb = img[..., :3]
        # Blue over grey: the marker's colour (0.1, 0.3, 1.0) pulls blue above red.
        tinted = rgb[..., 2] - rgb[..., 0] > 30
        # The marker (1/40 of the 16 µm extent: 0.4 µm, a few pixels) at the ball's
        # projected centre ...
        near = d2 < 3.0**2
        assert tinted[near].sum() >= 3, f"eye {i}: no marker pixels ({tinted[near].sum()})"
        # ... and the rest of the ball's disk is its plain grey.
        ball = (d2 < (0.8 * abs(ce - c)) ** 2) & ~(d2 < 5.0**2)
        assert ball.sum() > 100
        assert tinted[ball].sum() == 0, f"eye {i}: tint away from the marker"


def _slice_check(img: np.ndarray, meta: dict, eye: int, hand: np.ndarray) -> None:
    """The eye image over the slice square held by an identity-oriented ``hand`` (its
    centre 10 cm ahead, -z; 15 cm a side) against SciPy's resampling of the ball."""
    from scipy.ndimage import map_coordinates

    from .test_runtime import stage_to_world

    z, y, x = np.mgrid[:32, :32, :32] * 0.5
    c = np.asarray(BALL_CENTRE_UM)
    ball = ((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 < BALL_RADIUS_UM**2) * 200.0
    centre = hand + [0.0, 0.0, -0.10]
    a = np.linspace(-0.065, 0.065, 27)  # inside the 7.5 cm half-side
    pts = np.array([centre + [u, w, 0.0] for w in a for u in a])
    world = np.array([stage_to_world(meta["transform"], p) for p in pts])
    ref = map_coordinates(ball, (world / 0.5).T, order=1, mode="constant", cval=0.0)
    px = _project(meta, eye, pts)
    rows, cols = np.round(px[:, 1]).astype(int), np.round(px[:, 0]).astype(int)
    seen = img[rows, cols, :3].mean(axis=-1)
    bright, dark = ref > 150, ref < 50
    assert bright.sum() > 20 and dark.sum() > 20, (bright.sum(), dark.sum())
    # The cut disk is bright and the square around it black (the data's 0), whatever
    # the ball and room behind the plane look like.
    ok = np.r_[seen[bright] > 150, seen[dark] < 60]
    assert ok.mean() > 0.95, f"eye {eye}: {ok.mean():.2f} of the plane matches the data"


def test_slice_plane_in_the_hand_shows_the_data(monado, ball_store, tmp_path):
    """Slice tool: the square ahead of the right hand, 4 µm in front of the ball's
    centre, shows the bright disk of radius 3 µm where it cuts the ball (checked
    against scipy.ndimage.map_coordinates on the known volume) in both eyes; moved
    4 cm, the disk moves with it; after the trigger (freeze) the hand leaves and the
    plane stays."""
    from xrmode.testing import press

    snap = tmp_path / "snap"
    args = [str(ball_store), "--project", str(tmp_path / "p"), "--tool", "slice"]
    app, rig, session = start(
        monado, tmp_path, [*args, "--snapshot", str(snap), "--no-adaptive-quality"]
    )
    tr = session["transform"]
    c = world_to_stage(tr, np.asarray(BALL_CENTRE_UM))
    # The plane faces the head (normal along stage z); 4 µm (at the placed scale)
    # toward the head from the ball's centre it cuts a disk of radius 3 µm.
    hand0 = c + [0.0, 0.0, 4.0 * tr["scale_m_per_um"] + 0.10]
    hands = [hand0, hand0 + [0.04, 0.0, 0.0]]
    try:
        app.wait_count(lambda e: e["event"] == "snapshot", 1, 120, "the first snapshot")
        for k, hand in enumerate(hands):
            rig.hand("right", position=tuple(hand), orientation=IDENTITY)
            app.wait_frames(
                lambda e, h=hand: e["right"] is not None and np.allclose(e["right"], h, atol=1e-3),
                2,
            )
            app.proc.send_signal(signal.SIGUSR1)  # type: ignore[union-attr]
            app.wait_count(lambda e: e["event"] == "snapshot", k + 2, 120, "a snapshot")
        press(rig, app, "right")  # freeze
        rig.hand("right", position=(0.3, 0.6, -0.2), orientation=IDENTITY)
        app.wait_frames(lambda e: e["right"] is not None and abs(e["right"][0] - 0.3) < 1e-3, 2)
        app.proc.send_signal(signal.SIGUSR1)  # type: ignore[union-attr]
        app.wait_count(lambda e: e["event"] == "snapshot", 4, 120, "the frozen snapshot")
        finish(app, rig)
    finally:
        app.stop()
        rig.close()
    for folder, hand in (("1", hands[0]), ("2", hands[1]), ("3", hands[1])):
        (left, right), meta = _snapshot(snap / folder)
        assert meta["transform"] == tr  # the volume never moved
        for i, img in enumerate((left, right)):
            _slice_check(img, meta, i, hand)
