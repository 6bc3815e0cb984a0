"""Joining a session from XR without a runtime: poses on the wire, peers as avatars.

References: the world <-> stage similarity re-implemented here with SciPy's
``Rotation`` (not ``StageTransform``), the session's own pydantic models for
the peers' presence.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from viewer.collab import Laser, Peer
from viewer.collab import Pose as WirePose
from viewer.collab._protocol import Participant, Presence
from xrmode._collab import (
    HAND_CONE_M,
    HAND_RADIUS_M,
    HEAD_RADIUS_M,
    NOSE_M,
    avatar_geometry,
    pose_from_world,
    pose_to_world,
)
from xrmode._transform import StageTransform
from xrmode.input import Pose


def xyzw(rot: Rotation) -> tuple[float, float, float, float]:
    x, y, z, w = rot.as_quat()
    return (float(x), float(y), float(z), float(w))


def ref_world_to_stage(rot: Rotation, scale: float, t, zyx) -> np.ndarray:
    return np.asarray(t) + scale * rot.apply(np.asarray(zyx, dtype=float)[::-1])


def ref_stage_to_world(rot: Rotation, scale: float, t, p) -> np.ndarray:
    return rot.inv().apply((np.asarray(p) - np.asarray(t)) / scale)[::-1]


MINE_ROT = Rotation.from_euler("xyz", [180, 20, 0], degrees=True)
MINE = StageTransform(0.004, xyzw(MINE_ROT), (0.1, 1.0, -0.6))
THEIRS_ROT = Rotation.from_euler("xyz", [170, -35, 10], degrees=True)
THEIRS = StageTransform(0.009, xyzw(THEIRS_ROT), (-0.2, 0.9, -0.4))


def test_stage_pose_goes_on_the_wire_in_world_coordinates():
    dev = Rotation.from_euler("yx", [30, -15], degrees=True)
    pose = Pose((0.05, 1.4, 0.2), xyzw(dev))
    wire = pose_to_world(pose, THEIRS)
    want = ref_stage_to_world(THEIRS_ROT, 0.009, THEIRS.translation, pose.position)
    np.testing.assert_allclose(wire.position_um, want, atol=1e-9)
    # The device's rotation in world xyz axes, sent as (w, x, y, z).
    w, x, y, z = wire.orientation
    got = Rotation.from_quat([x, y, z, w])
    assert (got * (THEIRS_ROT.inv() * dev).inv()).magnitude() < 1e-9
    # And back into another participant's stage: same world point and direction.
    back = pose_from_world(wire, MINE)
    np.testing.assert_allclose(
        back.position, ref_world_to_stage(MINE_ROT, 0.004, MINE.translation, want), atol=1e-12
    )
    fwd_world = THEIRS_ROT.inv().apply(dev.apply([0.0, 0.0, -1.0]))
    np.testing.assert_allclose(back.forward, MINE_ROT.apply(fwd_world), atol=1e-9)


def peer(pid: int, name: str, colour: str, presence: Presence | None) -> Peer:
    return Peer(Participant(id=pid, name=name, role="editor", colour=colour), presence)


def test_remote_presence_becomes_avatar_geometry():
    head_um = (10.0, 40.0, 25.0)
    hand_um = (30.0, 20.0, 5.0)
    hand_rot = Rotation.from_euler("z", 90, degrees=True)  # world xyz axes
    w_x_y_z = np.roll(hand_rot.as_quat(), 1)
    origin_um, hit_um = (0.0, 10.0, 10.0), (20.0, 10.0, 10.0)
    pres = Presence(
        ts=0.0,
        head=WirePose(position_um=head_um),
        right_hand=WirePose(position_um=hand_um, orientation=tuple(w_x_y_z)),
        laser=Laser(origin_um=origin_um, direction=(1.0, 0.0, 0.0), hit_um=hit_um),
    )
    peers = [
        peer(2, "Ana", "#ff8000", pres),
        peer(3, "Bo", "#0000ff", None),  # joined, no presence yet: nothing drawn
    ]
    geo = avatar_geometry(peers, MINE)

    def stage(zyx):
        return ref_world_to_stage(MINE_ROT, 0.004, MINE.translation, zyx)

    orange = (1.0, 128 / 255, 0.0)
    head, hand, hit = stage(head_um), stage(hand_um), stage(hit_um)
    np.testing.assert_allclose(geo.spheres, [head, hand, hit], atol=1e-12)
    np.testing.assert_allclose(geo.sphere_radii[:2], [HEAD_RADIUS_M, HAND_RADIUS_M])
    assert geo.sphere_colors == [orange] * 3
    # Cones: the head's gaze (identity: world -z) and the hand's pointing direction,
    # both seen through our own transform.
    gaze = MINE_ROT.apply([0.0, 0.0, -1.0])
    point = MINE_ROT.apply(hand_rot.apply([0.0, 0.0, -1.0]))
    (b0, a0), (b1, a1) = geo.cones
    np.testing.assert_allclose(b0, head + NOSE_M[0] * gaze, atol=1e-9)
    np.testing.assert_allclose(a0, head + NOSE_M[1] * gaze, atol=1e-9)
    np.testing.assert_allclose(b1, hand + HAND_CONE_M[0] * point, atol=1e-9)
    np.testing.assert_allclose(a1, hand + HAND_CONE_M[1] * point, atol=1e-9)
    # The laser runs from its origin to its hit; the name floats above the head.
    ((lo, le),) = geo.lines
    np.testing.assert_allclose(lo, stage(origin_um), atol=1e-12)
    np.testing.assert_allclose(le, hit, atol=1e-12)
    ((pos, name, colour),) = geo.texts
    assert name == "Ana" and colour == orange
    assert pos[1] > head[1] + HEAD_RADIUS_M and pos[0] == pytest.approx(head[0])
    arrays = geo.arrays()
    assert arrays["cones"].shape == (2, 2, 3) and arrays["spheres"].shape == (3, 3)


def test_laser_without_hit_points_along_its_direction():
    pres = Presence(
        ts=0.0, laser=Laser(origin_um=(0.0, 0.0, 0.0), direction=(0.0, 0.0, 1.0), hit_um=None)
    )
    geo = avatar_geometry([peer(5, "C", "#00ff00", pres)], MINE)
    ((o, e),) = geo.lines
    d = (np.asarray(e) - o) / np.linalg.norm(np.asarray(e) - o)
    np.testing.assert_allclose(d, MINE_ROT.apply([1.0, 0.0, 0.0]), atol=1e-12)  # world +x
    off = Presence(ts=0.0, laser=Laser(origin_um=(0, 0, 0), direction=(0, 0, 1), active=False))
    assert avatar_geometry([peer(5, "C", "#00ff00", off)], MINE).lines == []
