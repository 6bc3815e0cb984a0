"""The one transform between the world (z, y, x µm) and the XR stage (x, y, z metres).

DESIGN.md: world space is micrometres, XR stage space is metres, and a single
scene transform maps world -> stage (grab and scale change it). It is a
similarity: ``stage = t + s * R @ world_xyz`` with ``world_xyz`` the world
point with its axes reversed (zyx -> xyz, the same flip ``viewer.render``
makes for VTK).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .input._types import Quat, quat_from_matrix, quat_matrix

__all__ = ["StageTransform", "TABLE_TOP_M"]

#: Height of the virtual table's top (stage y, metres); the volume rests on it.
TABLE_TOP_M = 0.85
#: 180 degrees about stage x: image rows (world +y) point down, the stack (+z) away.
_FLIP_X: Quat = (1.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class StageTransform:
    """World (zyx µm) <-> stage (xyz m): ``stage = translation + scale * R @ world_xyz``.

    Immutable: grab and scale make a new one (:meth:`moved`, :meth:`scaled`), so the
    matrices derived from it are computed once, not every frame.

    Attributes
    ----------
    scale : float
        Metres per micrometre.
    rotation : (x, y, z, w) unit quaternion
    translation : (3,) metres
    """

    scale: float = 0.002
    rotation: Quat = _FLIP_X
    translation: tuple[float, float, float] = (0.0, 1.0, -0.5)
    _r: npt.NDArray[np.float64] = field(init=False, repr=False, compare=False)
    _t: npt.NDArray[np.float64] = field(init=False, repr=False, compare=False)
    _m4: npt.NDArray[np.float64] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (self.scale > 0 and math.isfinite(self.scale)):
            raise ValueError(f"scale must be a positive number, got {self.scale}")
        q = np.asarray(self.rotation, dtype=np.float64)
        q = q / np.linalg.norm(q)
        # Frozen: normalise the fields through object.__setattr__ (dataclasses' own idiom).
        put = object.__setattr__
        put(self, "scale", float(self.scale))
        put(self, "rotation", (float(q[0]), float(q[1]), float(q[2]), float(q[3])))
        put(self, "translation", tuple(float(v) for v in self.translation))
        r = quat_matrix(self.rotation)
        t = np.asarray(self.translation, dtype=np.float64)
        m = np.eye(4)
        rt = r.T / self.scale
        m[:3, :3] = rt
        m[:3, 3] = -rt @ t
        m4 = np.eye(4)[[2, 1, 0, 3]] @ m  # xyz -> zyx rows
        for name, a in (("_r", r), ("_t", t), ("_m4", m4)):
            a.setflags(write=False)
            put(self, name, a)

    @property
    def matrix_r(self) -> npt.NDArray[np.float64]:
        """The 3x3 rotation (world xyz -> stage)."""
        return self._r

    def world_to_stage(self, zyx_um: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """World point(s) (..., 3) zyx µm -> stage (..., 3) xyz m."""
        p = np.asarray(zyx_um, dtype=np.float64)[..., ::-1]
        return np.asarray(self._t + self.scale * p @ self._r.T)

    def stage_to_world(self, xyz_m: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Stage point(s) (..., 3) xyz m -> world (..., 3) zyx µm."""
        p = (np.asarray(xyz_m, dtype=np.float64) - self._t) / self.scale
        return np.asarray((p @ self._r)[..., ::-1])

    def stage_dir_to_world(self, d: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """A stage direction (unit) -> world zyx direction (unit; scale does not apply)."""
        return np.asarray((np.asarray(d, dtype=np.float64) @ self._r)[..., ::-1])

    def stage_to_world_matrix(self) -> npt.NDArray[np.float64]:
        """4x4 ``M`` with ``world_zyx = (M @ [x, y, z, 1])[:3]`` (a read-only array,
        computed once per transform)."""
        return self._m4

    # -- manipulation ------------------------------------------------------------------------
    def moved(
        self, delta_r: npt.ArrayLike, pivot_from: npt.ArrayLike, pivot_to: npt.ArrayLike
    ) -> StageTransform:
        """The transform after a rigid hand motion: rotate by ``delta_r`` (3x3) about
        ``pivot_from`` and carry ``pivot_from`` to ``pivot_to`` (stage metres)."""
        dr = np.asarray(delta_r, dtype=np.float64)
        r = dr @ self._r
        t = dr @ (np.asarray(self.translation) - np.asarray(pivot_from)) + np.asarray(pivot_to)
        return StageTransform(
            self.scale, quat_from_matrix(r), (float(t[0]), float(t[1]), float(t[2]))
        )

    def scaled(
        self, factor: float, pivot_from: npt.ArrayLike, pivot_to: npt.ArrayLike
    ) -> StageTransform:
        """The transform scaled by ``factor`` about the world point under ``pivot_from``,
        which ends up at ``pivot_to`` (stage metres)."""
        if not factor > 0:
            raise ValueError(f"scale factor must be > 0, got {factor}")
        anchor = self.stage_to_world(pivot_from)[::-1]
        s = self.scale * factor
        t = np.asarray(pivot_to, dtype=np.float64) - s * self._r @ anchor
        return StageTransform(s, self.rotation, (float(t[0]), float(t[1]), float(t[2])))

    @classmethod
    def on_table(
        cls,
        lo_um: Sequence[float] | npt.NDArray[np.float64],
        hi_um: Sequence[float] | npt.NDArray[np.float64],
        size_m: float = 0.4,
        distance_m: float = 0.5,
    ) -> StageTransform:
        """Place the world box ``lo..hi`` (zyx µm) on the virtual table, ``size_m`` across,
        ``distance_m`` in front of the stage origin."""
        lo = np.asarray(lo_um, dtype=np.float64)
        hi = np.asarray(hi_um, dtype=np.float64)
        ext = np.maximum(hi - lo, 1e-9)
        s = size_m / float(ext.max())
        base = cls(s, _FLIP_X, (0.0, 0.0, 0.0))
        corners = np.array(
            [[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])]
        )
        st = base.world_to_stage(corners)
        centre = (st.min(axis=0) + st.max(axis=0)) / 2
        bottom = st[:, 1].min()
        want = np.array([0.0, TABLE_TOP_M + (centre[1] - bottom), -distance_m])
        t = want - centre
        return cls(s, _FLIP_X, (float(t[0]), float(t[1]), float(t[2])))

    @classmethod
    def in_front_of(
        cls,
        lo_um: Sequence[float] | npt.NDArray[np.float64],
        hi_um: Sequence[float] | npt.NDArray[np.float64],
        head_m: Sequence[float],
        forward: Sequence[float],
        size_m: float = 0.3,
        distance_m: float = 0.55,
        below_m: float = 0.2,
    ) -> StageTransform:
        """Place the world box ``lo..hi`` (zyx µm) in front of a head: its centre
        ``distance_m`` ahead along the head's horizontal heading and ``below_m``
        under the eyes, ``size_m`` across, its front face turned to the user.

        The head's pitch and roll are ignored (the volume stays level); looking
        level, a 0.3 m box 0.55 m ahead and 0.2 m down spans about -40..+5 degrees,
        inside every headset's field of view.
        """
        lo = np.asarray(lo_um, dtype=np.float64)
        hi = np.asarray(hi_um, dtype=np.float64)
        ext = np.maximum(hi - lo, 1e-9)
        s = size_m / float(ext.max())
        f = np.array([float(forward[0]), 0.0, float(forward[2])])
        n = float(np.linalg.norm(f))
        f = f / n if n > 1e-6 else np.array([0.0, 0.0, -1.0])
        yaw = math.atan2(-f[0], -f[2])  # about +y; 0 when looking down -z
        q_yaw = (0.0, math.sin(yaw / 2), 0.0, math.cos(yaw / 2))
        r = quat_matrix(q_yaw) @ quat_matrix(_FLIP_X)
        rot = quat_from_matrix(r)
        centre_world_xyz = ((lo + hi) / 2)[::-1]
        want = np.asarray(head_m, dtype=np.float64) + distance_m * f
        want[1] -= below_m
        t = want - s * r @ centre_world_xyz
        return cls(s, rot, (float(t[0]), float(t[1]), float(t[2])))

    def box_stage(
        self,
        lo_um: Sequence[float] | npt.NDArray[np.float64],
        hi_um: Sequence[float] | npt.NDArray[np.float64],
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The stage-aligned bounds (min, max xyz metres) of the world box ``lo..hi``."""
        lo, hi = np.asarray(lo_um, dtype=np.float64), np.asarray(hi_um, dtype=np.float64)
        corners = np.array(
            [[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])]
        )
        st = self.world_to_stage(corners)
        return st.min(axis=0), st.max(axis=0)

    def to_json(self) -> dict[str, Any]:
        return {
            "scale_m_per_um": self.scale,
            "rotation_xyzw": list(self.rotation),
            "translation_m": list(self.translation),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StageTransform:
        return cls(
            float(data["scale_m_per_um"]),
            tuple(float(v) for v in data["rotation_xyzw"]),  # type: ignore[arg-type]
            tuple(float(v) for v in data["translation_m"]),  # type: ignore[arg-type]
        )
