"""``BrickedSource``: a volume streamed in bricks of a chosen edge, whatever its chunks."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.errors import ParameterError
from analysis.volume import Level, Region, VolumeSource

__all__ = ["BrickedSource", "check_brick_size"]


def check_brick_size(edge: int) -> int:
    """``edge`` if it is a power of two from 8 to 512, else :class:`ParameterError`."""
    e = int(edge)
    if e < 8 or e > 512 or e & (e - 1):
        raise ParameterError(f"brick size must be a power of two from 8 to 512, got {edge}")
    return e


class BrickedSource:
    """``source`` with every level's spatial chunks reported as ``edge`` voxels.

    The streamer's bricks are its source's chunks; this wrapper only changes what
    ``levels`` says, so bricks of ``edge``³ voxels are read through ``source.read``
    (any region). Every level gets the same edge, even a level smaller than one
    brick, so each level's bricks are exactly twice the finer level's in world size
    and the levels nest (what the single-pass page tree needs; stores whose coarsest
    chunks are clipped to the level's shape do not nest on their own).

    Parameters
    ----------
    source : VolumeSource
    edge : int
        A power of two from 8 to 512 (:func:`check_brick_size`).
    n_levels : int, optional
        Offer only the finest ``n_levels`` levels (a pyramid whose coarser levels do not
        nest with the finer ones); default all.
    """

    def __init__(self, source: VolumeSource, edge: int, n_levels: int | None = None) -> None:
        self.source = source
        self.edge = check_brick_size(edge)
        keep = len(source.levels) if n_levels is None else int(n_levels)
        if not 1 <= keep <= len(source.levels):
            raise ParameterError(f"n_levels must be 1 to {len(source.levels)}, got {n_levels}")
        self._levels = tuple(
            dataclasses.replace(lv, chunks=(*lv.chunks[:-3], self.edge, self.edge, self.edge))
            for lv in source.levels[:keep]
        )

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def axes(self) -> tuple[str, ...]:
        return tuple(self.source.axes)

    @property
    def dtype(self) -> np.dtype[np.generic]:
        return self.source.dtype

    @property
    def levels(self) -> tuple[Level, ...]:
        return self._levels

    def read(self, level: int, region: Region | None = None) -> npt.NDArray[np.generic]:
        return self.source.read(level, region)

    def __getattr__(self, name: str) -> Any:
        # Anything else a source offers (paths, metadata), but not ``read_many``: its
        # batches are planned on the stored chunks, which these bricks are not.
        if name == "read_many" or name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.source, name)
