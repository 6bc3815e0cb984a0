"""Offscreen rendering: EGL unless the environment chose otherwise, before VTK loads."""

from __future__ import annotations

import math
import os

import numpy as np
import numpy.typing as npt

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


def project_independently(
    position_zyx: tuple[float, float, float],
    focal_zyx: tuple[float, float, float],
    up_zyx: tuple[float, float, float],
    view_angle_deg: float,
    size: tuple[int, int],
    points_zyx: npt.ArrayLike,
) -> npt.NDArray[np.float64]:
    """Pixel (column, row from the top) of world points under a pinhole camera.

    Written from the look-at + perspective definitions (not VTK's matrices) so
    the render tests check the renderer against an independent projection.
    """
    eye = np.asarray(position_zyx, float)[::-1]
    fwd = np.asarray(focal_zyx, float)[::-1] - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, np.asarray(up_zyx, float)[::-1])
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    rel = np.atleast_2d(np.asarray(points_zyx, float))[:, ::-1] - eye
    xc, yc, zc = rel @ right, rel @ up, rel @ fwd
    w, h = size
    t = math.tan(math.radians(view_angle_deg) / 2)
    ndc_x = xc / (zc * t * (w / h))
    ndc_y = yc / (zc * t)
    return np.stack([(ndc_x + 1) / 2 * w - 0.5, (1 - ndc_y) / 2 * h - 0.5], axis=1)
