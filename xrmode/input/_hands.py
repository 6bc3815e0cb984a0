"""Bare-hand input from ``XR_EXT_hand_tracking`` joints: pinch, grab and a pointing ray.

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

__all__ = ["HandGestures", "JOINT", "hand_input_from_joints"]

#: ``XrHandJointEXT`` indices (XR_EXT_hand_tracking, 26 joints).
JOINT = {
    "palm": 0,
    "wrist": 1,
    "thumb_tip": 5,
    "index_proximal": 7,
    "index_tip": 10,
    "middle_metacarpal": 11,
    "middle_tip": 15,
    "ring_tip": 20,
    "little_tip": 25,
}


@dataclass
class HandGestures:
    """Pinch and grab detection with hysteresis for one hand.

    Parameters
    ----------
    pinch_on_m, pinch_off_m : float, default: 0.015, 0.03
        Thumb-tip to index-tip distance that starts / ends a pinch.
    grab_on, grab_off : float, default: 0.9, 1.2
        Mean fingertip-to-palm distance divided by the palm length
        (wrist to middle metacarpal) that starts / ends a grab.
    """

    pinch_on_m: float = 0.015
    pinch_off_m: float = 0.03
    grab_on: float = 0.9
    grab_off: float = 1.2

    def __post_init__(self) -> None:
        if not (0 < self.pinch_on_m < self.pinch_off_m and 0 < self.grab_on < self.grab_off):
            raise ValueError("hysteresis needs 0 < on < off for pinch and grab")
        self.pinch = Button()
        self.grab = Button()

    def update(self, joints: npt.ArrayLike | None) -> tuple[Button, Button]:
        """Advance one frame with joint positions (26, 3) in metres, or None (not tracked)."""
        if joints is None:
            self.pinch = self.pinch.next(False)
            self.grab = self.grab.next(False)
            return self.pinch, self.grab
        j = np.asarray(joints, dtype=np.float64).reshape(26, 3)
        d_pinch = float(np.linalg.norm(j[JOINT["thumb_tip"]] - j[JOINT["index_tip"]]))
        limit = self.pinch_off_m if self.pinch.pressed else self.pinch_on_m
        self.pinch = self.pinch.next(d_pinch < limit)
        palm_len = float(np.linalg.norm(j[JOINT["middle_metacarpal"]] - j[JOINT["wrist"]]))
        tips = j[[JOINT["index_tip"], JOINT["middle_tip"], JOINT["ring_tip"], JOINT["little_tip"]]]
        curl = float(np.linalg.norm(tips - j[JOINT["palm"]], axis=1).mean()) / max(palm_len, 1e-6)
        limit = self.grab_off if self.grab.pressed else self.grab_on
        self.grab = self.grab.next(curl < limit)
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
    pinch, grab = gestures.update(joints)
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
        source="hand",
    )
