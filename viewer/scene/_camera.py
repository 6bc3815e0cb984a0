"""Camera and clipping planes of a scene, in world coordinates (µm, z-y-x order)."""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
import numpy.typing as npt
from psygnal import EventedModel
from pydantic import ConfigDict, Field, field_validator

__all__ = ["Camera", "ClippingPlane", "Vec3"]

Vec3 = tuple[float, float, float]


def _unit(v: npt.ArrayLike, what: str) -> npt.NDArray[np.float64]:
    a = np.asarray(v, dtype=np.float64)
    n = float(np.linalg.norm(a))
    if not math.isfinite(n) or n == 0.0:
        raise ValueError(f"{what} must be a non-zero, finite vector, got {tuple(a)}")
    return a / n


def _rotate(
    v: npt.NDArray[np.float64], axis: npt.NDArray[np.float64], deg: float
) -> npt.NDArray[np.float64]:
    """Rodrigues rotation of ``v`` about unit ``axis`` by ``deg`` degrees (right-handed in xyz)."""
    th = math.radians(deg)
    c, s = math.cos(th), math.sin(th)
    return np.asarray(v * c + np.cross(axis, v) * s + axis * float(np.dot(axis, v)) * (1 - c))


class Camera(EventedModel):
    """Where the scene is seen from.

    All vectors are in world coordinates, µm, ordered (z, y, x) like the arrays.

    Events
    ------
    position, focal_point, view_up, view_angle, parallel_projection, parallel_scale
        One signal per field, emitted with the new value.
    """

    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    position: Vec3 = (-100.0, 0.0, 0.0)
    focal_point: Vec3 = (0.0, 0.0, 0.0)
    view_up: Vec3 = (0.0, -1.0, 0.0)
    view_angle: Annotated[
        float, Field(gt=0.0, lt=180.0, description="vertical field of view, degrees")
    ] = 30.0
    parallel_projection: bool = False
    parallel_scale: Annotated[
        float, Field(gt=0.0, description="half the view height in µm when parallel_projection")
    ] = 50.0

    @property
    def direction(self) -> npt.NDArray[np.float64]:
        """Unit view direction (z, y, x), from the position to the focal point."""
        return _unit(np.subtract(self.focal_point, self.position), "camera direction")

    @property
    def distance(self) -> float:
        """Distance from the position to the focal point in µm."""
        return float(np.linalg.norm(np.subtract(self.focal_point, self.position)))

    def _xyz_frame(
        self,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        # Rotations are done in (x, y, z) so that "right-handed" means what it
        # means on screen; the scene stores (z, y, x).
        fwd = self.direction[::-1].copy()
        up = _unit(np.asarray(self.view_up)[::-1], "view_up")
        right = np.cross(fwd, up)
        if np.linalg.norm(right) < 1e-9:
            raise ValueError("view_up is parallel to the view direction")
        right = right / np.linalg.norm(right)
        up = np.cross(right, fwd)
        return fwd, up, right

    def orbit(self, azimuth: float = 0.0, elevation: float = 0.0) -> None:
        """Rotate the position about the focal point.

        ``azimuth`` turns about the view-up vector, ``elevation`` about the
        camera's right vector (degrees, like ``vtkCamera.Azimuth/Elevation``);
        view_up is re-orthogonalised so elevation past 90 degrees stays valid.
        One event per changed field, emitted after all fields are consistent.
        """
        fwd, up, right = self._xyz_frame()
        f = np.asarray(self.focal_point, dtype=np.float64)[::-1]
        off = np.asarray(self.position, dtype=np.float64)[::-1] - f
        off = _rotate(off, up, azimuth)
        fwd = _rotate(fwd, up, azimuth)
        right = _rotate(right, up, azimuth)
        off = _rotate(off, right, -elevation)
        fwd = _rotate(fwd, right, -elevation)
        new_up = np.cross(right, fwd)
        pos = f + off
        self.update(
            {
                "position": tuple(float(v) for v in pos[::-1]),
                "view_up": tuple(float(v) for v in new_up[::-1]),
            }
        )

    def dolly(self, factor: float) -> None:
        """Move towards the focal point: ``factor`` > 1 brings it closer (zooms in).

        In parallel projection the parallel scale shrinks by ``factor`` instead.
        """
        if not factor > 0:
            raise ValueError(f"dolly factor must be > 0, got {factor}")
        if self.parallel_projection:
            self.parallel_scale = self.parallel_scale / factor
            return
        f = np.asarray(self.focal_point, dtype=np.float64)
        off = np.asarray(self.position, dtype=np.float64) - f
        self.position = tuple(float(v) for v in f + off / factor)  # type: ignore[assignment]

    def frame(
        self,
        lo: npt.ArrayLike,
        hi: npt.ArrayLike,
        direction: Vec3 | None = None,
        view_up: Vec3 | None = None,
        margin: float = 1.05,
    ) -> None:
        """Look at the box ``lo..hi`` (zyx µm) so that it fills the view.

        Parameters
        ----------
        lo, hi : (3,) floats
            Box corners, zyx µm.
        direction : (3,) floats, default: keep the current one
            View direction zyx.
        view_up : (3,) floats, default: keep the current one
        margin : float, default: 1.05
            Distance factor beyond the bounding sphere touching the view cone.
        """
        lo_a = np.asarray(lo, dtype=np.float64)
        hi_a = np.asarray(hi, dtype=np.float64)
        centre = (lo_a + hi_a) / 2
        radius = max(float(np.linalg.norm(hi_a - lo_a)) / 2, 1e-6)
        d = _unit(direction, "direction") if direction is not None else self.direction
        dist = radius / math.sin(math.radians(self.view_angle) / 2) * margin
        self.update(
            {
                "focal_point": tuple(float(v) for v in centre),
                "position": tuple(float(v) for v in centre - d * dist),
                "view_up": view_up if view_up is not None else self.view_up,
                "parallel_scale": radius * margin,
            }
        )


class ClippingPlane(EventedModel):
    """A half-space cut applied to every layer.

    Points ``p`` with ``dot(p - origin, normal) >= 0`` are kept: the normal
    points into the part that stays visible. Both vectors are zyx, µm.

    Events
    ------
    origin, normal, enabled
    """

    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    origin: Vec3 = (0.0, 0.0, 0.0)
    normal: Vec3 = (1.0, 0.0, 0.0)
    enabled: bool = True

    @field_validator("normal")
    @classmethod
    def _normalise(cls, v: Vec3) -> Vec3:
        u = _unit(v, "clipping plane normal")
        return (float(u[0]), float(u[1]), float(u[2]))

    def keeps(self, points_zyx: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Which of the ``(N, 3)`` zyx µm points this plane keeps (all when disabled)."""
        p = np.atleast_2d(np.asarray(points_zyx, dtype=np.float64))
        if not self.enabled:
            return np.ones(len(p), dtype=bool)
        return np.asarray((p - np.asarray(self.origin)) @ np.asarray(self.normal) >= 0)
