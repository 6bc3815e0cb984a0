"""Frame-loop helpers that need no runtime: eye views in world units.

Adaptive quality is the desktop's controller, :class:`viewer.raycast.FrameBudget`
(a time per eye; fewer ray steps and fewer rays while frames overrun; full quality
back once the view rests).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ._transform import StageTransform
from .input._types import quat_matrix

__all__ = ["eye_view_arrays"]

Vec3 = tuple[float, float, float]


def eye_view_arrays(
    eye: Any, transform: StageTransform, near_m: float = 0.05, far_m: float = 50.0
) -> tuple[Vec3, Vec3, Vec3, npt.NDArray[np.float64]]:
    """``(position_um, forward, up, projection)`` of an XR eye in world zyx µm.

    ``eye`` has ``pose`` (stage) and ``projection(near, far)``
    (:class:`xrmode.session.EyeImage`); near and far planes are given in stage
    metres and converted with the transform's scale, so the clip range stays
    the same in the headset whatever the volume's size.
    """
    pose = eye.pose
    # One (3, 3) product for position, forward and up: rows [p - t, -z axis, +y axis]
    # of the eye, rotated into world xyz (the per-frame path; no quaternion maths per
    # vector, no intermediate arrays per axis).
    rot = quat_matrix(pose.orientation)
    rows = np.empty((3, 3))
    rows[0] = pose.position
    rows[0] -= transform._t
    rows[0] /= transform.scale
    rows[1] = -rot[:, 2]
    rows[2] = rot[:, 1]
    w = (rows @ transform.matrix_r).tolist()
    proj = eye.projection(near_m / transform.scale, far_m / transform.scale)
    (px, py, pz), (fx, fy, fz), (ux, uy, uz) = w
    return (pz, py, px), (fz, fy, fx), (uz, uy, ux), proj
