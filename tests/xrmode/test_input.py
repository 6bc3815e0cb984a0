"""Input values, hand gestures, bindings, the remote-driver packet and frame-loop helpers."""

from __future__ import annotations

import ctypes
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from xrmode._frame_loop import QualityController, eye_view_arrays
from xrmode._transform import StageTransform
from xrmode.input import (
    ACTIONS,
    JOINT,
    PROFILES,
    Button,
    HandGestures,
    Pose,
    bindings_for,
    hand_input_from_joints,
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
    """Synthetic 26 joints: palm at the origin, fingers along -z, thumb tip ``pinch_gap`` away."""
    j = np.zeros((26, 3))
    j[JOINT["wrist"]] = (0, 0, 0.08)
    j[JOINT["middle_metacarpal"]] = (0, 0, 0.0)
    j[JOINT["index_proximal"]] = (0.02, 0, -0.01)
    for name in ("index_tip", "middle_tip", "ring_tip", "little_tip"):
        j[JOINT[name]] = (0, 0, -curl)
    j[JOINT["thumb_tip"]] = j[JOINT["index_tip"]] + (pinch_gap, 0, 0)
    return j


def test_pinch_and_grab_have_hysteresis():
    g = HandGestures()
    gaps = [0.05, 0.02, 0.012, 0.02, 0.028, 0.035, 0.02]
    pinched = [g.update(_hand(d, 0.15))[0].pressed for d in gaps]
    # On below 1.5 cm, stays on until above 3 cm; 2 cm alone does not start a pinch.
    assert pinched == [False, False, True, True, True, False, False]
    g = HandGestures()
    curls = [0.15, 0.08, 0.06, 0.09, 0.1, 0.04]  # palm length 0.08 m: on < 0.072, off > 0.096
    grabbed = [g.update(_hand(0.05, c))[1].pressed for c in curls]
    assert grabbed == [False, False, True, True, False, True]


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


def test_quality_controller_degrades_then_recovers():
    q = QualityController(patience=3)
    period = 1 / 90
    changes = [q.update(2 * period, period) for _ in range(12)]
    # Sampling first (1 -> 1.5 -> 2.25 -> 3.375 -> 4), then pixels (x0.85 down to 0.5).
    assert changes == [True] * 9 + [False] * 3
    assert q.sample_factor == 4.0 and q.render_scale == pytest.approx(0.5)
    for _ in range(200):
        q.update(0.1 * period, period)
    assert q.sample_factor == 1.0 and q.render_scale == 1.0
    assert not q.update(0.75 * period, period)
    assert math.isclose(q.render_scale, 1.0)
