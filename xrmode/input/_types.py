"""Plain input values the tools see: ``Pose``, ``Ray``, ``Button``, ``HandInput``, ``InputFrame``.

Tools never see OpenXR handles or devices: the session turns action states
into these frozen dataclasses each frame, and unit tests build them by hand.
Positions are stage metres (x right, y up, -z forward, OpenXR's convention);
orientations are unit quaternions ``(x, y, z, w)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "Button",
    "HandInput",
    "InputFrame",
    "Pose",
    "Ray",
    "Side",
    "quat_from_matrix",
    "quat_matrix",
    "quat_multiply",
    "quat_rotate",
]

Side = Literal["left", "right"]
Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]


def quat_multiply(a: Quat, b: Quat) -> Quat:
    """Hamilton product ``a * b`` of (x, y, z, w) quaternions (apply ``b`` first)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    )


def quat_rotate(q: Quat, v: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Rotate vector(s) ``v`` (..., 3) by unit quaternion ``q``."""
    return np.asarray(np.asarray(v, dtype=np.float64) @ quat_matrix(q).T)


def quat_matrix(q: Quat) -> npt.NDArray[np.float64]:
    """3x3 rotation matrix of unit quaternion ``q`` (x, y, z, w)."""
    # The closed form (one small array, no cross products): this runs several times
    # per frame for every pose the tools look at.
    x, y, z, w = (float(c) for c in q)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz, wx, wy, wz = x * y, x * z, y * z, w * x, w * y, w * z
    return np.array(
        [
            [1.0 - 2.0 * (yy + zz), 2.0 * (xy - wz), 2.0 * (xz + wy)],
            [2.0 * (xy + wz), 1.0 - 2.0 * (xx + zz), 2.0 * (yz - wx)],
            [2.0 * (xz - wy), 2.0 * (yz + wx), 1.0 - 2.0 * (xx + yy)],
        ]
    )


def quat_from_matrix(m: npt.ArrayLike) -> Quat:
    """Unit quaternion (x, y, z, w) of a 3x3 rotation matrix (Shepperd's method)."""
    r = np.asarray(m, dtype=np.float64)
    tr = float(np.trace(r))
    if tr > 0:
        s = math.sqrt(tr + 1.0) * 2
        q = ((r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s)
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2]) * 2
        q = (0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s, (r[2, 1] - r[1, 2]) / s)
    elif r[1, 1] > r[2, 2]:
        s = math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2]) * 2
        q = ((r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s, (r[0, 2] - r[2, 0]) / s)
    else:
        s = math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1]) * 2
        q = ((r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s, (r[1, 0] - r[0, 1]) / s)
    n = math.sqrt(sum(c * c for c in q))
    return (q[0] / n, q[1] / n, q[2] / n, q[3] / n)


@dataclass(frozen=True)
class Ray:
    """A half-line: ``origin`` (3,) and unit ``direction`` (3,), same space as the pose."""

    origin: Vec3
    direction: Vec3

    def at(self, distance: float) -> npt.NDArray[np.float64]:
        """The point ``distance`` along the ray."""
        return np.asarray(self.origin) + distance * np.asarray(self.direction)


@dataclass(frozen=True)
class Pose:
    """Position (metres) and orientation (unit quaternion x, y, z, w) in stage space."""

    position: Vec3 = (0.0, 0.0, 0.0)
    orientation: Quat = (0.0, 0.0, 0.0, 1.0)

    @property
    def forward(self) -> npt.NDArray[np.float64]:
        """Unit pointing direction: the pose's -Z axis (OpenXR aim poses point along -Z)."""
        return quat_rotate(self.orientation, (0.0, 0.0, -1.0))

    @property
    def up(self) -> npt.NDArray[np.float64]:
        return quat_rotate(self.orientation, (0.0, 1.0, 0.0))

    def ray(self) -> Ray:
        f = self.forward
        return Ray(self.position, (float(f[0]), float(f[1]), float(f[2])))

    def matrix(self) -> npt.NDArray[np.float64]:
        """4x4 homogeneous pose matrix (local -> stage)."""
        m = np.eye(4)
        m[:3, :3] = quat_matrix(self.orientation)
        m[:3, 3] = self.position
        return m

    def transform(self, local: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Local point(s) (..., 3) in this pose's frame -> stage."""
        return np.asarray(self.position) + quat_rotate(self.orientation, local)


@dataclass(frozen=True)
class Button:
    """A button's state this frame, with edges relative to the last frame.

    ``value`` is 0..1 for analogue inputs (trigger) and 0/1 for clicks.
    """

    pressed: bool = False
    value: float = 0.0
    just_pressed: bool = False
    just_released: bool = False

    def next(self, pressed: bool, value: float | None = None) -> Button:
        """This button's state one frame later, given the new raw state."""
        v = float(value if value is not None else (1.0 if pressed else 0.0))
        return Button(pressed, v, pressed and not self.pressed, self.pressed and not pressed)


@dataclass(frozen=True)
class HandInput:
    """One hand's (controller's or tracked hand's) input this frame.

    Attributes
    ----------
    side : "left" or "right"
    aim : Pose or None
        Pointing pose (ray along its -Z); None when not tracked.
    grip : Pose or None
        Where the hand holds things.
    select, squeeze, primary, secondary, menu, thumbstick_click : Button
        Trigger / pinch, grip / grab, A or X, B or Y, menu, stick press.
    thumbstick : (x, y) in -1..1
    source : str
        ``"controller"``, ``"hand"`` (hand tracking) or ``"none"``.
    joints : (26, 3) float or None
        A tracked hand's ``XR_EXT_hand_tracking`` joint positions (stage metres).
    profile : str
        The controller's interaction profile path ("" when unknown or a hand).
    """

    side: Side
    aim: Pose | None = None
    grip: Pose | None = None
    select: Button = Button()
    squeeze: Button = Button()
    primary: Button = Button()
    secondary: Button = Button()
    menu: Button = Button()
    thumbstick_click: Button = Button()
    thumbstick: tuple[float, float] = (0.0, 0.0)
    source: str = "controller"
    joints: npt.NDArray[np.float64] | None = field(default=None, compare=False)
    profile: str = ""

    @property
    def tracked(self) -> bool:
        return self.aim is not None

    def tip(self, reach_m: float = 0.05) -> npt.NDArray[np.float64] | None:
        """The point the hand places things at: ``reach_m`` ahead of the aim pose."""
        if self.aim is None:
            return None
        return np.asarray(self.aim.position) + reach_m * self.aim.forward

    def with_buttons(self, **pressed: bool) -> HandInput:
        """A copy whose named buttons advance one frame to the given pressed states."""
        changes = {name: getattr(self, name).next(p) for name, p in pressed.items()}
        return replace(self, **changes)


@dataclass(frozen=True)
class InputFrame:
    """Everything the tools get in one frame.

    Attributes
    ----------
    time_s : float
        Predicted display time (seconds, monotonic).
    head : Pose or None
    left, right : HandInput
    """

    time_s: float = 0.0
    head: Pose | None = None
    left: HandInput = field(default_factory=lambda: HandInput("left"))
    right: HandInput = field(default_factory=lambda: HandInput("right"))

    def hand(self, side: Side) -> HandInput:
        return self.left if side == "left" else self.right
