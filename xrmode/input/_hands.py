"""Bare-hand input from ``XR_EXT_hand_tracking`` joints: pinch, fist, palm up and a ray.

Pinch = the trigger (select), a fist = the squeeze (grab), the palm turned up =
the menu button held (the wrist menu shows while it is up; the other hand points
at an item and pinches to pick it).

Pinch (thumb tip to index tip) and grab (fingertips curled to the palm) use
hysteresis: a gesture starts below the ``on`` distance and ends only above the
larger ``off`` distance, so a hand resting near the threshold does not chatter
(the same reason the OpenXR runtime applies hysteresis when it turns an
analogue trigger into a boolean action).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._types import Button, HandInput, Pose, Side, quat_from_matrix

__all__ = ["HandGestures", "JOINT", "finger_extension", "hand_input_from_joints", "palm_up"]

#: ``XrHandJointEXT`` indices (XR_EXT_hand_tracking, 26 joints). Each finger's
#: metacarpal joint is the *base* of its metacarpal bone (near the wrist); the
#: proximal joint is the knuckle.
JOINT = {
    "palm": 0,
    "wrist": 1,
    "thumb_tip": 5,
    "index_proximal": 7,
    "index_tip": 10,
    "middle_metacarpal": 11,
    "middle_proximal": 12,
    "middle_tip": 15,
    "ring_proximal": 17,
    "ring_tip": 20,
    "little_proximal": 22,
    "little_tip": 25,
}
#: (proximal, intermediate, distal, tip) of the fingers whose curl makes a fist:
#: middle, ring, little (the index is left out: it pinches).
_FIST_FINGERS = ((12, 13, 14, 15), (17, 18, 19, 20), (22, 23, 24, 25))


def finger_extension(joints: npt.ArrayLike) -> float:
    """Mean straightness of the middle, ring and little fingers: knuckle-to-tip distance
    over the length of the finger's three bones (1 straight; about 0.35 when each joint
    bends 90 degrees, a fist). Independent of the hand's size and of where a runtime
    puts the palm joint."""
    j = np.asarray(joints, dtype=np.float64).reshape(26, 3)
    out = []
    for chain in _FIST_FINGERS:
        p = j[list(chain)]
        length = float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum())
        out.append(float(np.linalg.norm(p[-1] - p[0])) / max(length, 1e-6))
    return float(np.mean(out))


def palm_up(joints: npt.ArrayLike, side: Side) -> float:
    """The palm normal's upward component (1: palm facing up, -1: down), from the wrist
    and the index and little knuckles (the normal's sign depends on the hand)."""
    j = np.asarray(joints, dtype=np.float64).reshape(26, 3)
    a = j[JOINT["index_proximal"]] - j[JOINT["wrist"]]
    b = j[JOINT["little_proximal"]] - j[JOINT["wrist"]]
    n = np.cross(a, b) if side == "right" else np.cross(b, a)
    norm = float(np.linalg.norm(n))
    return float(n[1] / norm) if norm > 1e-9 else -1.0


@dataclass
class HandGestures:
    """Pinch, grab (fist) and palm-up detection with hysteresis for one hand.

    Parameters
    ----------
    pinch_on_m, pinch_off_m : float, default: 0.015, 0.03
        Thumb-tip to index-tip distance that starts / ends a pinch.
    grab_on, grab_off : float, default: 0.7, 0.8
        :func:`finger_extension` below which a fist (grab) starts / above which it ends.
        A relaxed open hand is above 0.85, a real fist about 0.4, Monado's simulated
        hand fully curled 0.65. A fist also closes the thumb on the index: no pinch is
        reported while the
        middle, ring and little fingers are curled past ``grab_off``, so closing the
        hand to grab never clicks.
    palm_on, palm_off : float, default: 0.7, 0.4
        Upward component of the palm normal that opens / closes the wrist menu
        (the ``menu`` button is pressed while the palm faces up).
    """

    pinch_on_m: float = 0.015
    pinch_off_m: float = 0.03
    grab_on: float = 0.7
    grab_off: float = 0.8
    palm_on: float = 0.7
    palm_off: float = 0.4

    def __post_init__(self) -> None:
        if not (0 < self.pinch_on_m < self.pinch_off_m and 0 < self.grab_on < self.grab_off):
            raise ValueError("hysteresis needs 0 < on < off for pinch and grab")
        if not self.palm_off < self.palm_on:
            raise ValueError("hysteresis needs palm_off < palm_on")
        self.pinch = Button()
        self.grab = Button()
        self.palm = Button()

    def update(self, joints: npt.ArrayLike | None, side: Side = "right") -> tuple[Button, Button]:
        """Advance one frame with joint positions (26, 3) in metres, or None (not tracked)."""
        if joints is None:
            self.pinch = self.pinch.next(False)
            self.grab = self.grab.next(False)
            self.palm = self.palm.next(False)
            return self.pinch, self.grab
        j = np.asarray(joints, dtype=np.float64).reshape(26, 3)
        ext = finger_extension(j)
        limit = self.grab_off if self.grab.pressed else self.grab_on
        self.grab = self.grab.next(ext < limit)
        d_pinch = float(np.linalg.norm(j[JOINT["thumb_tip"]] - j[JOINT["index_tip"]]))
        limit = self.pinch_off_m if self.pinch.pressed else self.pinch_on_m
        open_hand = ext > self.grab_off and not self.grab.pressed
        self.pinch = self.pinch.next(d_pinch < limit and open_hand)
        up = palm_up(j, side)
        self.palm = self.palm.next(up > (self.palm_off if self.palm.pressed else self.palm_on))
        return self.pinch, self.grab


def _look_pose(origin: npt.NDArray[np.float64], forward: npt.NDArray[np.float64]) -> Pose:
    f = forward / max(float(np.linalg.norm(forward)), 1e-9)
    up0 = np.array([0.0, 1.0, 0.0]) if abs(f[1]) < 0.95 else np.array([0.0, 0.0, 1.0])
    right = np.cross(f, up0)
    right /= np.linalg.norm(right)
    up = np.cross(right, f)
    # Columns: x = right, y = up, z = -forward (the pose points along -Z).
    q = quat_from_matrix(np.stack([right, up, -f], axis=1))
    return Pose((float(origin[0]), float(origin[1]), float(origin[2])), q)


def hand_input_from_joints(
    side: Side, joints: npt.ArrayLike | None, gestures: HandGestures
) -> HandInput:
    """A :class:`HandInput` for a tracked hand: pinch = select, grab = squeeze.

    The pointing ray starts at the index knuckle and runs from the wrist
    through it, which stays stable while the fingers pinch.
    """
    pinch, grab = gestures.update(joints, side)
    if joints is None:
        return HandInput(side, select=pinch, squeeze=grab, source="none")
    j = np.asarray(joints, dtype=np.float64).reshape(26, 3)
    knuckle = j[JOINT["index_proximal"]]
    aim = _look_pose(knuckle, knuckle - j[JOINT["wrist"]])
    grip = _look_pose(j[JOINT["palm"]], j[JOINT["middle_metacarpal"]] - j[JOINT["wrist"]])
    return HandInput(
        side,
        aim=aim,
        grip=grip,
        select=Button(pinch.pressed, pinch.value, pinch.just_pressed, pinch.just_released),
        squeeze=grab,
        menu=gestures.palm,
        source="hand",
        joints=j,
    )
