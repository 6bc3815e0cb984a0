"""What the headset draws over the data (issue 19, round 3), on headless Monado.

Measurement value labels inside an opaque volume, the slice plane kept across tool
switches, and your own hands and controllers. Each test scripts the head and hands
over Monado's remote driver and checks the eye images the app read back from its
swapchains (``--snapshot``); where things should be is computed here with NumPy /
SciPy through each eye's own pose and projection matrix (``eyes.json``).
"""

from __future__ import annotations

import signal

import numpy as np
import pytest

from analysis.project import Project
from xrmode.testing import RemoteRig, XrAppRun

from .conftest import BALL_CENTRE_UM, BALL_RADIUS_UM
from .test_headset_user import _project, _run_snapshot, _slice_check, _snapshot, _stick_to
from .test_runtime import IDENTITY, finish, start, world_to_stage

pytestmark = pytest.mark.xr_runtime


def test_a_measurement_value_inside_the_opaque_ball_is_readable(monado, ball_store, tmp_path):
    """A 2 µm distance measured through the centre of the opaque ball: its value label
    (yellow glyphs on a dark box) shows where the centre projects in both eyes. On main
    the label was drawn in the scene and the volume was blended over it: no glyph
    pixels, no box."""
    from analysis.annotations import AddMeasurement

    proj = tmp_path / "p"
    c = np.asarray(BALL_CENTRE_UM)
    with Project.create(proj, image=str(ball_store)) as pr:
        pr.history.apply(AddMeasurement("distance", [c - [0, 0, 1.0], c + [0, 0, 1.0]]))
    (left, right), meta = _run_snapshot(
        monado,
        tmp_path,
        [str(ball_store), "--project", str(proj)],
        head=(0.0, 1.3, 0.1),
        hands={"left": (-0.3, 0.8, -0.2), "right": (0.3, 0.8, -0.2)},
    )
    tr = meta["transform"]
    centre = world_to_stage(tr, c)
    r_ball = BALL_RADIUS_UM * tr["scale_m_per_um"]
    for i, img in enumerate((left, right)):
        (col, row), (ce, _) = _project(meta, i, np.array([centre, centre + [r_ball, 0.0, 0.0]]))
        rgb = img[..., :3]
        r0, c0 = int(round(row)), int(round(col))
        # The label is centred on its anchor (the measurement's midpoint, the ball's
        # centre): look in a text line's height around it, well inside the ball's disk.
        half_w = int(0.6 * abs(ce - col))
        box = rgb[r0 - 6 : r0 + 7, c0 - half_w : c0 + half_w + 1]
        assert box.size and box.mean() > 0  # inside the image
        # Glyphs: the layer's yellow (1, 1, 0.3) at full strength; the faded x-ray copy
        # of the line over the grey ball has red - blue about half of that.
        glyphs = (box[..., 0] - box[..., 2] > 130) & (box[..., 1] > 180)
        # The label's dark background box over the bright ball.
        dark = box.mean(axis=-1) < 110
        assert glyphs.sum() >= 8, f"eye {i}: {glyphs.sum()} glyph pixels"
        assert dark.sum() >= 40, f"eye {i}: {dark.sum()} pixels of the label's box"
        # ... and not a uniform patch: glyphs and box both, at the label only.
        ring = rgb[r0 + 12 : r0 + 16, c0 - 3 : c0 + 4]
        assert (ring.mean(axis=-1) > 110).all(), f"eye {i}: the ball below the label is dark"


def _slice_matches(img: np.ndarray, meta: dict, eye: int, hand: np.ndarray) -> bool:
    try:
        _slice_check(img, meta, eye, hand)
    except AssertionError:
        return False
    return True


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_frozen_slice_plane_stays_across_tool_switches_until_removed(
    monado, ball_store, tmp_path, stream
):
    """Slice tool: the plane held through the ball is frozen (trigger), the menu switches
    to the count tool and the hand leaves: the plane still shows the ball's cut disk
    (against SciPy's resampling) in both eyes. The menu's "remove slice" takes it
    away: those pixels no longer match the data. On main the plane vanished with the
    tool switch. With ``--stream`` the plane is read through the streamer's bricks."""
    from xrmode.testing import press

    snap = tmp_path / "snap"
    args = [str(ball_store), "--project", str(tmp_path / "p"), "--tool", "slice"]
    args += ["--stream"] if stream else []
    app, rig, session = start(
        monado, tmp_path, [*args, "--snapshot", str(snap), "--no-adaptive-quality"]
    )
    tr = session["transform"]
    c = world_to_stage(tr, np.asarray(BALL_CENTRE_UM))
    hand = c + [0.0, 0.0, 4.0 * tr["scale_m_per_um"] + 0.10]
    away = (0.3, 0.6, -0.2)
    try:
        app.wait_count(lambda e: e["event"] == "snapshot", 1, 120, "the first snapshot")
        rig.hand("right", position=tuple(hand), orientation=IDENTITY)
        app.wait_frames(
            lambda e: e["right"] is not None and np.allclose(e["right"], hand, atol=1e-3), 2
        )
        press(rig, app, "right")  # freeze
        press(rig, app, "left", "system_click")  # the menu ...
        _stick_to(rig, app, "left", "count")
        press(rig, app, "left")  # ... count tool
        app.wait_frames(lambda e: e["tool"] == "count" and e["menu"] is None, 2)
        rig.hand("right", position=away, orientation=IDENTITY)
        app.wait_frames(lambda e: e["right"] is not None and abs(e["right"][0] - 0.3) < 1e-3, 2)
        app.proc.send_signal(signal.SIGUSR1)  # type: ignore[union-attr]
        app.wait_count(lambda e: e["event"] == "snapshot", 2, 120, "the count-tool snapshot")
        press(rig, app, "left", "system_click")
        _stick_to(rig, app, "left", "remove slice")
        press(rig, app, "left")
        app.wait_frames(lambda e: e["menu"] is None, 2)
        app.proc.send_signal(signal.SIGUSR1)  # type: ignore[union-attr]
        app.wait_count(lambda e: e["event"] == "snapshot", 3, 120, "the removed snapshot")
        finish(app, rig)
    finally:
        app.stop()
        rig.close()
    for folder, shown in (("1", True), ("2", False)):
        (left, right), meta = _snapshot(snap / folder)
        assert meta["transform"] == tr
        for i, img in enumerate((left, right)):
            assert _slice_matches(img, meta, i, hand) == shown, (folder, i)


def test_a_tracked_hand_is_drawn_at_its_joints(monado, ball_store, tmp_path):
    """Hand tracking only (controllers inactive), the right hand open and held in front
    of the head: at the projection of the hand's joints (as the runtime reported them,
    projected here through each eye's pose and projection) the eye images are
    skin-coloured. On main the hand was a cone behind the index knuckle: the fingers'
    joints showed the room."""
    # The left hand behind the head (out of view), the right one ahead of it.
    rig_hands = {"left": (-0.5, 0.5, 0.5), "right": (0.06, 1.0, -0.15)}
    rig = RemoteRig(port=monado.remote_port).connect()
    rig.set(head_position=(0.0, 1.05, 0.1), head_orientation=IDENTITY)
    for side, pos in rig_hands.items():
        rig.hand(side, active=False, hand_tracking_active=True, position=pos)
    snap = tmp_path / "snap"
    app = XrAppRun(
        monado,
        [str(ball_store), "--snapshot", str(snap), "--exit-after", "0.2", "--no-adaptive-quality"],
        tmp_path / "run",
    ).start()
    try:
        rc = app.wait_exit(180)
    finally:
        app.stop()
        rig.close()
    assert rc == 0, app.log_tail()
    imgs, meta = _snapshot(snap)
    joints = np.asarray(meta["hand_joints"]["right"])
    assert joints.shape == (26, 3)
    for i, img in enumerate(imgs):
        px = _project(meta, i, joints)
        h, w = img.shape[:2]
        inside = (px[:, 0] >= 1) & (px[:, 0] < w - 1) & (px[:, 1] >= 1) & (px[:, 1] < h - 1)
        assert inside.sum() >= 20, f"eye {i}: the hand is out of view"
        rgb = img[..., :3]
        skin = (rgb[..., 0] > 150) & (rgb[..., 0] - rgb[..., 2] > 40)
        hits = []
        for col, row in px[inside]:
            r0, c0 = int(round(row)), int(round(col))
            hits.append(skin[r0 - 1 : r0 + 2, c0 - 1 : c0 + 2].any())
        assert np.mean(hits) > 0.9, f"eye {i}: {np.mean(hits):.2f} of the joints skin-coloured"
        # ... and the skin is at the hand only: none in the image's far corners.
        assert not skin[: h // 6, : w // 6].any() and not skin[-h // 6 :, : w // 6].any()


def test_a_controller_is_drawn_with_its_profiles_trackpad(monado, ball_store, tmp_path):
    """The remote driver's controllers use the Valve Index profile: the right one, in
    front of the head and tilted toward it, is drawn as a handle with the Index's head
    and its blue trackpad, which shows where the pad's centre (5.7 cm above the grip,
    5 cm ahead, in OpenXR's grip axes, turned by the reported grip pose with SciPy)
    projects in both eyes. On main a controller was a grey cone."""
    from scipy.spatial.transform import Rotation

    tilt = Rotation.from_euler("x", 50, degrees=True)
    rig = RemoteRig(port=monado.remote_port).connect()
    rig.set(head_position=(0.0, 1.05, 0.1), head_orientation=IDENTITY)
    rig.hand("left", position=(-0.5, 0.5, 0.5), orientation=IDENTITY)
    rig.hand("right", position=(0.06, 0.95, -0.18), orientation=tuple(tilt.as_quat()))
    snap = tmp_path / "snap"
    app = XrAppRun(
        monado,
        # The grab tool: no tool text next to the hand.
        [str(ball_store), "--tool", "grab", "--snapshot", str(snap), "--exit-after", "0.2"]
        + ["--no-adaptive-quality"],
        tmp_path / "run",
    ).start()
    try:
        rc = app.wait_exit(180)
    finally:
        app.stop()
        rig.close()
    assert rc == 0, app.log_tail()
    imgs, meta = _snapshot(snap)
    assert meta["profiles"]["right"] == "/interaction_profiles/valve/index_controller"
    grip = meta["grips"]["right"]
    rot = Rotation.from_quat(grip["orientation_xyzw"])
    pad = np.asarray(grip["position_m"]) + rot.apply([0.0, 0.057, -0.05])
    edge = pad + rot.apply([0.012, 0.0, 0.0])
    for i, img in enumerate(imgs):
        rgb = img[..., :3]
        (col, row), (col_e, row_e) = _project(meta, i, np.array([pad, edge]))
        r0, c0 = int(round(row)), int(round(col))
        radius = max(int(np.hypot(col_e - col, row_e - row) * 0.6), 1)
        patch = rgb[r0 - radius : r0 + radius + 1, c0 - radius : c0 + radius + 1]
        blue = (patch[..., 2] - patch[..., 0] > 60) & (patch[..., 2] > 120)
        assert blue.mean() > 0.5, f"eye {i}: {blue.mean():.2f} of the pad blue"
        # Blue only at the controller: none in the top quarter of the image.
        everywhere = (rgb[..., 2] - rgb[..., 0] > 60) & (rgb[..., 2] > 120)
        assert not everywhere[: img.shape[0] // 4].any()
