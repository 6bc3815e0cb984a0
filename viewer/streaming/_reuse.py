"""``SelectionReuse``: the last brick selection, kept while the views barely move.

Split out of :class:`~viewer.streaming.VolumeStreamer` (issue 16). Selecting bricks
(:func:`select_bricks`) is the frame's biggest CPU cost; a head or camera that moved
less than ``reuse_px`` pixels and half the finest drawn voxel changes no choice by more
than that, so the last selection (and its leaves' world boxes) is returned instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ._lod import BrickGrid, Selection, View, select_bricks

__all__ = ["SelectionReuse"]

F64 = npt.NDArray[np.float64]


class SelectionReuse:
    """Selections of one grid, reused while the views stay within a tolerance.

    Parameters
    ----------
    grid : BrickGrid
    reuse_px : float
        Largest view change (projected pixels) that keeps the last selection; 0: never.

    Attributes
    ----------
    leaf_lo, leaf_hi : (M, 3) float
        World boxes of the last selection's leaves.
    """

    def __init__(self, grid: BrickGrid, reuse_px: float) -> None:
        self.grid = grid
        self.reuse_px = float(reuse_px)
        self._min_scale = [float(v) for v in grid.scale.min(axis=1)]
        self._diagonal_um = float(np.linalg.norm(grid.shape[0] * grid.scale[0]))
        self._sel: Selection | None = None
        self._key: tuple[Any, ...] | None = None
        self._views: list[View] = []
        self._tol_um = 0.0
        self.leaf_lo: F64 = np.zeros((0, 3))
        self.leaf_hi: F64 = np.zeros((0, 3))

    def select(
        self, views: list[View], planes: F64, max_error_px: float, finest_level: int
    ) -> Selection:
        """:func:`select_bricks`, or the last selection while the views barely moved."""
        key = (len(views), max_error_px, finest_level, planes.shape, planes.tobytes())
        sel = self._sel
        if (
            sel is not None
            and self.reuse_px > 0
            and key == self._key
            and all(
                a.close_to(b, self._tol_um, self.reuse_px, self._diagonal_um)
                for a, b in zip(views, self._views, strict=True)
            )
        ):
            return sel
        sel = select_bricks(self.grid, views, planes, max_error_px, finest_level)
        self._sel, self._key, self._views = sel, key, list(views)
        # Leaves are stored coarsest level first: the last one is on the finest level.
        finest = int(sel.leaf_levels[-1]) if len(sel.leaf_levels) else 0
        # Moving by half the finest voxel drawn changes no choice by more than that.
        self._tol_um = self.reuse_px * self._min_scale[finest]
        self.leaf_lo, self.leaf_hi = self.grid.boxes(sel.leaf_levels, sel.leaf_ijk)
        return sel
