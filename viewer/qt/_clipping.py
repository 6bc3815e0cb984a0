"""``SessionClipping``: the desktop's clipping planes (presets, offsets across the scene)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.errors import ParameterError
from viewer.scene import ClippingPlane, Scene

__all__ = ["CLIP_PRESETS", "SessionClipping", "world_of"]

#: Axis-aligned presets: the normal (zyx) points into the half that stays visible.
CLIP_PRESETS: dict[str, tuple[float, float, float]] = {
    "+z": (1.0, 0.0, 0.0),
    "-z": (-1.0, 0.0, 0.0),
    "+y": (0.0, 1.0, 0.0),
    "-y": (0.0, -1.0, 0.0),
    "+x": (0.0, 0.0, 1.0),
    "-x": (0.0, 0.0, -1.0),
}

Extent = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]


def world_of(values: npt.ArrayLike) -> tuple[float, float, float]:
    a = np.asarray(values, dtype=np.float64).reshape(3)
    return (float(a[0]), float(a[1]), float(a[2]))


class SessionClipping:
    """Add, remove and move the scene's clipping planes (the Clipping panel's model).

    Parameters
    ----------
    scene : Scene
    extent : callable() -> (lo, hi)
        The scene's world box (zyx µm): offsets are measured from its centre.
    cursor : callable() -> (z, y, x)
        Where a new plane goes by default.
    """

    PRESETS = CLIP_PRESETS

    def __init__(
        self,
        scene: Scene,
        extent: Callable[[], Extent],
        cursor: Callable[[], Sequence[float]],
    ) -> None:
        self.scene = scene
        self._extent = extent
        self._cursor = cursor

    def add(
        self,
        normal: str | Sequence[float] = "+z",
        origin: Sequence[float] | None = None,
    ) -> ClippingPlane:
        """Add a plane through ``origin`` (default: the cursor) with a preset or free normal.

        ``normal`` is a preset name (``"+z"``, ``"-x"``, ... see :data:`CLIP_PRESETS`),
        ``"view"`` (the normal along the view direction: what lies between the camera
        and the plane is cut away) or a zyx vector.
        """
        n: Any
        if isinstance(normal, str):
            if normal == "view":
                n = tuple(float(v) for v in self.scene.camera.direction)
            elif normal in CLIP_PRESETS:
                n = CLIP_PRESETS[normal]
            else:
                raise ParameterError(
                    f"unknown clipping preset {normal!r} (have {', '.join(CLIP_PRESETS)}, view)"
                )
        else:
            n = tuple(float(v) for v in normal)
        o = world_of(self._cursor() if origin is None else origin)
        plane = ClippingPlane(origin=o, normal=n)
        self.scene.clipping_planes.append(plane)
        return plane

    def remove(self, index: int) -> None:
        planes = self.scene.clipping_planes
        if 0 <= index < len(planes):
            planes.pop(index)

    def offset_range(self, plane: ClippingPlane) -> tuple[float, float]:
        """Signed distances along the plane's normal spanned by the scene (µm from the centre)."""
        lo, hi = self._extent()
        corners = np.array(
            [[a[0], b[1], c[2]] for a in (lo, hi) for b in (lo, hi) for c in (lo, hi)]
        )
        d = (corners - (lo + hi) / 2) @ np.asarray(plane.normal)
        return float(d.min()), float(d.max())

    def offset(self, plane: ClippingPlane) -> float:
        """The plane's origin as a signed distance from the scene centre along its normal."""
        lo, hi = self._extent()
        return float((np.asarray(plane.origin) - (lo + hi) / 2) @ np.asarray(plane.normal))

    def set_offset(self, plane: ClippingPlane, offset_um: float) -> None:
        """Move the plane along its normal to ``offset_um`` from the scene centre."""
        lo, hi = self._extent()
        o = (lo + hi) / 2 + float(offset_um) * np.asarray(plane.normal)
        plane.origin = world_of(o)
