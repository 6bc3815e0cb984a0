"""Input values, hand gestures, bindings, the remote-driver packet and frame-loop helpers."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from xrmode._frame_loop import eye_view_arrays
from xrmode._transform import StageTransform
from xrmode.input import (
    ACTIONS,
    JOINT,
    PROFILES,
    Button,
    HandGestures,
    Pose,
    bindings_for,
    finger_extension,
    hand_input_from_joints,
    palm_up,
    quat_from_matrix,
    quat_rotate,
)
from xrmode.session._session import EyeImage
from xrmode.testing import PACKET_SIZE, RemoteController, RigState, pack_state, unpack_state


def test_quaternions_agree_with_scipy():
    rng = np.random.default_rng(1)
    for q in Rotation.random(20, random_state=rng):
        v = rng.normal(size=3)
        np.testing.assert_allclose(quat_rotate(tuple(q.as_quat()), v), q.apply(v), atol=1e-12)
        back = Rotation.from_quat(quat_from_matrix(q.as_matrix()))
        assert (back.inv() * q).magnitude() < 1e-9


def test_pose_points_along_minus_z():
    rot = Rotation.from_euler("y", 90, degrees=True)
    p = Pose((1.0, 2.0, 3.0), tuple(rot.as_quat()))
    np.testing.assert_allclose(p.forward, rot.apply([0, 0, -1]), atol=1e-12)
    np.testing.assert_allclose(p.ray().at(2.0), np.array([1, 2, 3]) + 2 * rot.apply([0, 0, -1]))


def test_button_edges():
    b = Button().next(True)
    assert b.pressed and b.just_pressed and not b.just_released
    b = b.next(True)
    assert b.pressed and not b.just_pressed
    b = b.next(False)
    assert b.just_released and not b.pressed


def _hand(pinch_gap: float, curl: float) -> np.ndarray:
    """Synthetic 26 joints: palm at the origin, fingers along -z, thumb tip ``pinch_gap`` away
    from the index tip; the middle, ring and little fingers bend ``curl`` (0 straight, 1 a
    fist) of 90 degrees at each of their three joints (see :func:`_finger`)."""
    j = np.zeros((26, 3))
    j[JOINT["wrist"]] = (0, 0, 0.08)
    j[JOINT["middle_metacarpal"]] = (0, 0, 0.07)
    j[JOINT["index_proximal"]] = (-0.02, 0, -0.01)
    j[JOINT["little_proximal"]] = (0.03, 0, 0.0)
    j[JOINT["index_tip"]] = (-0.02, 0, -0.09)
    for k, x in ((12, 0.0), (17, 0.015), (22, 0.03)):
        j[k : k + 4] = _finger((x, 0.0, -0.01), np.radians(90 * curl))
    j[JOINT["thumb_tip"]] = j[JOINT["index_tip"]] + (pinch_gap, 0, 0)
    return j


BONES = (0.045, 0.028, 0.022)  # proximal, intermediate, distal phalanx (m)


def _finger(knuckle, bend: float) -> np.ndarray:
    """Knuckle, intermediate, distal and tip joints of a finger pointing along -z that
    bends by ``bend`` radians (palm-wards, -y) at the knuckle and at both finger joints."""
    pts = [np.asarray(knuckle, dtype=float)]
    angle = 0.0
    for bone in BONES:
        angle += bend
        pts.append(pts[-1] + bone * np.array([0.0, -np.sin(angle), -np.cos(angle)]))
    return np.array(pts)


def _extension(bend: float) -> float:
    """Knuckle-to-tip over finger length for equal bends, by complex numbers (law of
    cosines independent of the joint code): z = sum(l_k * exp(i * k * bend))."""
    z = sum(b * np.exp(1j * (k + 1) * bend) for k, b in enumerate(BONES))
    return abs(z) / sum(BONES)


def test_finger_extension_matches_the_finger_geometry():
    for curl in (0.0, 0.3, 0.6, 1.0):
        got = finger_extension(_hand(0.05, curl))
        assert got == pytest.approx(_extension(np.radians(90 * curl)), rel=1e-9)


def test_pinch_and_grab_have_hysteresis():
    g = HandGestures()
    gaps = [0.05, 0.02, 0.012, 0.02, 0.028, 0.035, 0.02]
    pinched = [g.update(_hand(d, 0.0))[0].pressed for d in gaps]
    # On below 1.5 cm, stays on until above 3 cm; 2 cm alone does not start a pinch.
    assert pinched == [False, False, True, True, True, False, False]
    g = HandGestures()
    # Extension per curl: 0.0 -> 1, 0.5 -> 0.81, 0.6 -> 0.74, 0.7 -> 0.65, 1.0 -> 0.38.
    curls = [0.0, 0.6, 0.7, 0.6, 0.5, 1.0]
    ext = [_extension(np.radians(90 * c)) for c in curls]
    assert ext[1] > 0.7 > ext[2] and 0.7 < ext[3] < 0.8 < ext[4]
    grabbed = [g.update(_hand(0.05, c))[1].pressed for c in curls]
    # On below 0.7, stays on until above 0.8.
    assert grabbed == [False, False, True, True, False, True]


def test_a_fist_grabs_and_never_pinches():
    """Closing the hand brings the thumb onto the index: still a grab, not a click."""
    g = HandGestures()
    seq = [(0.05, 0.0), (0.02, 0.4), (0.01, 0.7), (0.005, 1.0), (0.005, 1.0)]
    out = [g.update(_hand(gap, curl)) for gap, curl in seq]
    assert [p.pressed for p, _ in out] == [False] * 5
    assert out[-1][1].pressed


def test_palm_up_holds_the_menu():
    g = HandGestures()
    down = _hand(0.05, 0.0)  # a right hand, palm facing -y (down)
    assert palm_up(down, "right") == pytest.approx(-1.0)
    up = down * np.array([-1.0, -1.0, 1.0])  # turned 180 degrees about z: palm up
    assert palm_up(up, "right") == pytest.approx(1.0)
    # A left hand is the mirror image (x -> -x): same answer for the same palm.
    assert palm_up(down * np.array([-1.0, 1.0, 1.0]), "left") == pytest.approx(-1.0)
    menu = []
    for j in (down, up, up, down):
        hand_input_from_joints("right", j, g)
        menu.append((g.palm.pressed, g.palm.just_pressed))
    assert menu == [(False, False), (True, True), (True, False), (False, False)]


def test_hand_input_from_joints_aims_from_wrist_through_knuckle():
    g = HandGestures()
    j = _hand(0.01, 0.15)
    h = hand_input_from_joints("right", j, g)
    d = j[JOINT["index_proximal"]] - j[JOINT["wrist"]]
    np.testing.assert_allclose(h.aim.forward, d / np.linalg.norm(d), atol=1e-9)
    assert h.select.just_pressed and h.source == "hand"
    assert hand_input_from_joints("right", None, g).select.just_released


def test_every_profile_binds_the_core_actions_to_spec_paths():
    names = {a.name for a in ACTIONS}
    for profile in PROFILES:
        pairs = bindings_for(profile)
        assert {a for a, _ in pairs} <= names
        bound = {a for a, _ in pairs}
        assert {"aim_pose", "grip_pose", "select"} <= bound, profile
        for _, path in pairs:
            assert path.startswith(("/user/hand/left/", "/user/hand/right/"))
            assert "/input/" in path or path.endswith("/output/haptic")
    assert len(PROFILES) == 6


# Monado 25 r_interface.h, mirrored with ctypes (C layout rules), as the reference layout.
class _Pose(ctypes.Structure):
    _fields_ = [("q", ctypes.c_float * 4), ("p", ctypes.c_float * 3)]


class _View(ctypes.Structure):
    _fields_ = [("fov", ctypes.c_float * 4), ("pose", _Pose), ("pad", ctypes.c_uint32)]


class _Head(ctypes.Structure):
    _fields_ = [("views", _View * 2), ("center", _Pose), ("valid", ctypes.c_bool)]


class _Ctrl(ctypes.Structure):
    _fields_ = [
        ("pose", _Pose),
        ("lin", ctypes.c_float * 3),
        ("ang", ctypes.c_float * 3),
        ("curl", ctypes.c_float * 5),
        ("trigger", ctypes.c_float),
        ("squeeze", ctypes.c_float),
        ("squeeze_force", ctypes.c_float),
        ("stick", ctypes.c_float * 2),
        ("pad_force", ctypes.c_float),
        ("pad", ctypes.c_float * 2),
        ("flags", ctypes.c_bool * 16),
    ]


class _Data(ctypes.Structure):
    _fields_ = [("header", ctypes.c_uint64), ("head", _Head), ("left", _Ctrl), ("right", _Ctrl)]


def test_remote_packet_matches_the_c_struct_layout():
    assert ctypes.sizeof(_Data) == PACKET_SIZE == 376
    state = RigState(
        head_position=(0.1, 1.5, 0.2),
        right=RemoteController(
            (0.3, 1.2, -0.4),
            (0.0, 0.6, 0.0, 0.8),
            trigger=1.0,
            squeeze=0.5,
            thumbstick=(0.25, -0.5),
            trigger_click=True,
            a_click=True,
        ),
    )
    d = _Data.from_buffer_copy(pack_state(state))
    assert tuple(d.head.center.p) == pytest.approx((0.1, 1.5, 0.2))
    r = d.right
    assert tuple(r.pose.p) == pytest.approx((0.3, 1.2, -0.4))
    assert tuple(r.pose.q) == pytest.approx((0.0, 0.6, 0.0, 0.8))
    assert (r.trigger, r.squeeze, *r.stick) == pytest.approx((1.0, 0.5, 0.25, -0.5))
    flags = list(r.flags)
    # active=1, a_click=4, trigger_click=8 in the C field order.
    assert flags[1] and flags[4] and flags[8] and not flags[6]
    assert unpack_state(pack_state(state)).right.trigger_click


def test_eye_projection_matches_pyopenxr_and_world_view():
    import xr
    from xr.utils import GraphicsAPI, Matrix4x4f

    fov = (-0.9, 0.8, 0.7, -0.75)
    eye = EyeImage(0, Pose((0.03, 1.6, 0.0)), fov, 320, 240)
    ref = Matrix4x4f.create_projection_fov(GraphicsAPI.OPENGL, xr.Fovf(*fov), 0.05, 100.0)
    ref_m = np.array(ref.as_numpy()).reshape(4, 4)  # the math matrix (row i, column j)
    np.testing.assert_allclose(eye.projection(0.05, 100.0), ref_m, rtol=1e-5, atol=1e-6)
    tr = StageTransform(0.01, (1.0, 0.0, 0.0, 0.0), (0.0, 1.0, -0.5))
    pos, fwd, up, proj = eye_view_arrays(eye, tr)
    np.testing.assert_allclose(pos, tr.stage_to_world([0.03, 1.6, 0.0]))
    # Looking along stage -z = world +z (the stack goes away from the viewer); up = world -y.
    np.testing.assert_allclose(fwd, (1.0, 0.0, 0.0), atol=1e-12)
    np.testing.assert_allclose(up, (0.0, -1.0, 0.0), atol=1e-12)
    assert proj[2, 3] == pytest.approx(eye.projection(5.0, 5000.0)[2, 3])


def test_eye_view_of_a_turned_eye_through_a_turned_transform_matches_scipy():
    eye_rot = Rotation.from_euler("YXZ", [35, -20, 10], degrees=True)
    eye = EyeImage(1, Pose((0.2, 1.55, -0.1), tuple(eye_rot.as_quat())), (-1, 1, 1, -1), 64, 64)
    tr_rot = Rotation.from_euler("xyz", [170, 25, -40], degrees=True)
    tr = StageTransform(0.003, tuple(tr_rot.as_quat()), (0.1, 0.9, -0.6))
    pos, fwd, up, _ = eye_view_arrays(eye, tr)
    # world xyz = R^-1 (stage - t) / s, reported zyx; directions without the scale.
    want_pos = tr_rot.inv().apply((np.asarray(eye.pose.position) - tr.translation) / 0.003)
    np.testing.assert_allclose(pos, want_pos[::-1], atol=1e-9)
    np.testing.assert_allclose(fwd, tr_rot.inv().apply(eye_rot.apply([0, 0, -1]))[::-1], atol=1e-12)
    np.testing.assert_allclose(up, tr_rot.inv().apply(eye_rot.apply([0, 1, 0]))[::-1], atol=1e-12)
    assert tr.stage_to_world_matrix() is tr.stage_to_world_matrix()  # computed once
    with pytest.raises(AttributeError):
        tr.scale = 1.0  # type: ignore[misc]  # immutable: grab makes a new transform
