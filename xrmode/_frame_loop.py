"""Frame-loop helpers that need no runtime: eye views in world units, adaptive quality.

Adaptive quality follows neuroglancer's adaptive resolution: when a frame
takes longer than the display period, draw cheaper (coarser volume sampling
first, since it costs nothing in sharpness of surfaces and text, then fewer
pixels); when frames are comfortably fast again, step back towards full quality.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ._transform import StageTransform
from .input._types import quat_matrix

__all__ = ["QualityController", "eye_view_arrays"]

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


class QualityController:
    """Trade render quality for frame rate.

    Parameters
    ----------
    headroom : float, default: 0.9
        A frame overruns when it takes longer than ``headroom * period``.
    relax : float, default: 0.6
        Quality steps back up after ``patience`` frames faster than ``relax * period``.
    patience : int, default: 30
    max_sample_factor : float, default: 4
        Largest volume sample-distance multiplier.
    min_render_scale : float, default: 0.5
        Smallest fraction of the swapchain size drawn per axis.

    Attributes
    ----------
    sample_factor : float
        >= 1: multiplies the ray-cast sample distance.
    render_scale : float
        <= 1: fraction of the eye image size drawn.
    """

    def __init__(
        self,
        headroom: float = 0.9,
        relax: float = 0.6,
        patience: int = 30,
        max_sample_factor: float = 4.0,
        min_render_scale: float = 0.5,
    ) -> None:
        if not 0 < relax < headroom:
            raise ValueError("need 0 < relax < headroom")
        self.headroom = headroom
        self.relax = relax
        self.patience = patience
        self.max_sample_factor = max_sample_factor
        self.min_render_scale = min_render_scale
        self.sample_factor = 1.0
        self.render_scale = 1.0
        self._fast = 0

    def update(self, frame_s: float, period_s: float) -> bool:
        """Feed one frame's time; returns True when the quality settings changed."""
        if period_s <= 0:
            return False
        if frame_s > self.headroom * period_s:
            self._fast = 0
            if self.sample_factor < self.max_sample_factor:
                self.sample_factor = min(self.sample_factor * 1.5, self.max_sample_factor)
                return True
            if self.render_scale > self.min_render_scale:
                self.render_scale = max(self.render_scale * 0.85, self.min_render_scale)
                return True
            return False
        if frame_s < self.relax * period_s:
            self._fast += 1
            if self._fast >= self.patience:
                self._fast = 0
                if self.render_scale < 1.0:
                    self.render_scale = min(self.render_scale / 0.85, 1.0)
                    return True
                if self.sample_factor > 1.0:
                    self.sample_factor = max(self.sample_factor / 1.5, 1.0)
                    return True
        else:
            self._fast = 0
        return False
