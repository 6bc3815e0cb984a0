"""Grab: one hand moves and rotates the volume, two hands scale and turn it about
their midpoint.

Works with either hand's squeeze (grip button or a grab gesture), so it runs
alongside the other tools. It changes the world -> stage transform, which is
view state (saved with the scene), not data: no command is built.
"""

from __future__ import annotations

import numpy as np

from .._transform import StageTransform
from ..input._types import HandInput, InputFrame, quat_matrix
from ._base import Tool, ToolContext

__all__ = ["GrabTool"]


def _hold_pose(h: HandInput) -> tuple[np.ndarray, np.ndarray] | None:
    pose = h.grip or h.aim
    if pose is None:
        return None
    return np.asarray(pose.position, dtype=np.float64), quat_matrix(pose.orientation)


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation (3x3) turning direction ``a`` into ``b`` (Rodrigues)."""
    a = a / max(float(np.linalg.norm(a)), 1e-12)
    b = b / max(float(np.linalg.norm(b)), 1e-12)
    v, c = np.cross(a, b), float(np.dot(a, b))
    if c < -1 + 1e-9:  # opposite: half a turn about any axis normal to a
        axis = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis)
        return np.asarray(2 * np.outer(axis, axis) - np.eye(3))
    k = np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return np.asarray(np.eye(3) + k + k @ k / (1 + c))


class GrabTool(Tool):
    """Squeeze one hand to carry the volume; squeeze both to scale it.

    Parameters
    ----------
    min_scale, max_scale : float, default: 1e-6, 10
        Limits of the transform's scale (metres per µm).

    Attributes
    ----------
    mode : {"idle", "one", "two"}
    """

    name = "grab"

    def __init__(self, min_scale: float = 1e-6, max_scale: float = 10.0) -> None:
        super().__init__("right")
        self.min_scale = min_scale
        self.max_scale = max_scale
        self.mode = "idle"
        self._start: StageTransform | None = None
        self._hand: str = "right"
        self._p0 = np.zeros(3)
        self._r0 = np.eye(3)
        self._d0 = 1.0
        self._m0 = np.zeros(3)
        self._v0 = np.array([1.0, 0.0, 0.0])

    def _on_disable(self) -> None:
        self.mode = "idle"
        self._start = None

    def update(self, frame: InputFrame, ctx: ToolContext) -> None:
        held = [
            h for h in (frame.left, frame.right) if h.squeeze.pressed and _hold_pose(h) is not None
        ]
        if len(held) == 2:
            pa = _hold_pose(held[0])
            pb = _hold_pose(held[1])
            assert pa is not None and pb is not None
            mid = (pa[0] + pb[0]) / 2
            d = float(np.linalg.norm(pa[0] - pb[0]))
            if self.mode != "two":
                self.mode = "two"
                self._start = ctx.transform
                self._d0 = max(d, 1e-4)
                self._m0 = mid
                self._v0 = pb[0] - pa[0]
                return
            assert self._start is not None
            factor = d / self._d0
            s = min(max(self._start.scale * factor, self.min_scale), self.max_scale)
            # Scale about the first midpoint, then turn by the rotation that takes the
            # first hand-to-hand direction to the current one, about that midpoint, and
            # carry it to the current midpoint (ChimeraX's two-hand move).
            scaled = self._start.scaled(s / self._start.scale, self._m0, self._m0)
            turn = _rotation_between(self._v0, pb[0] - pa[0])
            ctx.transform = scaled.moved(turn, self._m0, mid)
            ctx.hud.line(pa[0], pb[0], (0.3, 0.8, 1.0))
            ctx.hud.text(mid + np.array([0.0, 0.05, 0.0]), f"x{factor:.2f}", (0.3, 0.8, 1.0))
        elif len(held) == 1:
            h = held[0]
            p = _hold_pose(h)
            assert p is not None
            if self.mode != "one" or h.side != self._hand:
                # A new one-hand grab (or the other hand let go of a two-hand grab).
                self.mode = "one"
                self._hand = h.side
                self._start = ctx.transform
                self._p0, self._r0 = p
                return
            assert self._start is not None
            delta = p[1] @ self._r0.T
            ctx.transform = self._start.moved(delta, self._p0, p[0])
        else:
            self.mode = "idle"
            self._start = None
