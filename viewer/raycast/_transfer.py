"""Transfer functions as tables: value -> RGBA, sampled by the shader from a 1D texture."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt

from analysis.errors import ParameterError

__all__ = ["LabelStyle", "TransferFunction"]

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class TransferFunction:
    """A colour and opacity table over contrast limits.

    Attributes
    ----------
    table : (N, 4) float32
        RGBA in [0, 1], read as a texture with linear filtering and clamping: the
        normalised value ``u = (v - lo) / (hi - lo)`` (clamped to [0, 1]) lands on
        texel coordinate ``u N - 0.5``, so entry 0 is what every value up to ``lo``
        gets and entry ``N - 1`` every value from ``hi``.
    contrast_limits : (lo, hi) float
        In data units.
    ref_step_um : float or None
        The ray length over which a sample's opacity is the table's alpha (opacity
        correction rescales it to each level's step); None: the finest level's
        smallest voxel side.
    """

    table: F32
    contrast_limits: tuple[float, float]
    ref_step_um: float | None = None

    def __post_init__(self) -> None:
        t = np.asarray(self.table)
        if t.ndim != 2 or t.shape[1] != 4 or len(t) < 2:
            raise ParameterError(f"a transfer table must be (N >= 2, 4), got {t.shape}")
        lo, hi = self.contrast_limits
        if not hi > lo:
            raise ParameterError(f"contrast limits must increase, got {self.contrast_limits}")

    @classmethod
    def ramp(
        cls,
        contrast_limits: tuple[float, float],
        colormap: npt.ArrayLike | None = None,
        opacity: tuple[float, float] = (0.0, 1.0),
        n: int = 256,
        gamma: float = 1.0,
        ref_step_um: float | None = None,
    ) -> TransferFunction:
        """Colours from a colormap, opacity a ramp from ``opacity[0]`` to ``opacity[1]``.

        Parameters
        ----------
        contrast_limits : (lo, hi)
        colormap : (K, 3) float array, optional
            Colours in [0, 1] from low to high values (e.g. ``matplotlib`` ``cmap(x)[:, :3]``);
            default grey.
        opacity : (a0, a1), default: (0, 1)
        n : int, default: 256
        gamma : float, default: 1
            Opacity ramp ``a0 + (a1 - a0) * x ** gamma``.
        """
        # Ends exact (entry 0 is the colour and opacity at and below lo: a ramp from 0
        # is really transparent there, so empty-space skipping can drop those bricks).
        x = np.linspace(0.0, 1.0, n)
        if colormap is None:
            rgb = np.repeat(x[:, None], 3, axis=1)
        else:
            cm = np.asarray(colormap, dtype=np.float64).reshape(-1, 3)
            pos = np.linspace(0.0, 1.0, len(cm))
            rgb = np.stack([np.interp(x, pos, cm[:, c]) for c in range(3)], axis=1)
        a = opacity[0] + (opacity[1] - opacity[0]) * x**gamma
        table = np.concatenate([rgb, a[:, None]], axis=1).astype(np.float32)
        return cls(table, (float(contrast_limits[0]), float(contrast_limits[1])), ref_step_um)


@dataclass(frozen=True)
class LabelStyle:
    """How a label volume is drawn: one colour per id, some hidden, some selected.

    Ids are sampled nearest (never interpolated); id 0 is background. An id listed in
    ``color_ids`` gets its colour from ``color_rgb`` (a host's legend colours: by id,
    by feature, fixed); any other id the hash :func:`viewer.raycast.label_colours`,
    so a table is only as long as the host wants it.

    Attributes
    ----------
    opacity : float, default: 0.5
        Opacity per ``ref_step_um`` of ray inside an object (corrected to the step).
    hidden, selected : tuple of int
        Ids drawn transparent, and ids drawn lighter at ``selected_opacity``. Ids are
        taken modulo 2**32 (the atlas holds 32-bit ids).
    selected_opacity : float, default: 0.9
    ref_step_um : float or None
        As :attr:`TransferFunction.ref_step_um`.
    color_ids : (K,) int array, optional
    color_rgb : (K, 3) float array in [0, 1], optional
        Explicit colours of ``color_ids`` (quantised to 8 bits a channel).
    outline : bool, default: False
        Draw each object's outline opaque and its interior faint: a voxel with another
        id (or background) beside it across the view (along the two voxel axes
        closest to the image plane, as a slice's selection outline is drawn in the
        slice) is opaque, other voxels of the object have ``interior_opacity`` (at
        most ``opacity``).
    interior_opacity : float, default: 0.05
        Opacity per ``ref_step_um`` inside an outlined object.
    """

    opacity: float = 0.5
    hidden: tuple[int, ...] = ()
    selected: tuple[int, ...] = ()
    selected_opacity: float = 0.9
    ref_step_um: float | None = None
    color_ids: npt.NDArray[np.int64] | None = field(default=None, compare=False, repr=False)
    color_rgb: npt.NDArray[np.float64] | None = field(default=None, compare=False, repr=False)
    outline: bool = False
    interior_opacity: float = 0.05

    def __post_init__(self) -> None:
        if (self.color_ids is None) != (self.color_rgb is None):
            raise ParameterError("color_ids and color_rgb go together")
        if self.color_ids is not None:
            n = len(np.asarray(self.color_ids).reshape(-1))
            if np.asarray(self.color_rgb).reshape(-1, 3).shape[0] != n:
                raise ParameterError("color_rgb must be (len(color_ids), 3)")

    @cached_property
    def table(self) -> npt.NDArray[np.uint32]:
        """(K, 4) uint32 sorted by id: id, flags (1 hidden, 2 selected, 4 coloured;
        hidden wins over selected), RGB packed as ``r | g << 8 | b << 16``, 0.

        Made once per style (a frozen dataclass; the cache lives in the instance).
        """
        hid = np.asarray(list(self.hidden), dtype=np.uint64)
        sel = np.asarray(list(self.selected), dtype=np.uint64)
        col = np.zeros(0, np.uint64)
        packed = np.zeros(0, np.uint32)
        if self.color_ids is not None:
            col = np.asarray(self.color_ids).astype(np.int64).reshape(-1).astype(np.uint64)
            rgb = np.asarray(self.color_rgb, dtype=np.float64).reshape(-1, 3)
            q = (np.clip(rgb, 0.0, 1.0) * 255.0).round().astype(np.uint32)
            packed = q[:, 0] | (q[:, 1] << np.uint32(8)) | (q[:, 2] << np.uint32(16))
        ids = (np.concatenate([hid, sel, col]) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        flags = np.concatenate(
            [np.ones(len(hid)), np.full(len(sel), 2), np.full(len(col), 4)]
        ).astype(np.uint32)
        if not len(ids):
            return np.zeros((0, 4), np.uint32)
        u, inv = np.unique(ids, return_inverse=True)
        f = np.zeros(len(u), np.uint32)
        np.bitwise_or.at(f, inv, flags)
        f = np.where(f & 1, f & ~np.uint32(2), f).astype(np.uint32)
        c = np.zeros(len(u), np.uint32)
        c[inv[len(hid) + len(sel) :]] = packed  # the last colour given for an id wins
        return np.stack([u, f, c, np.zeros(len(u), np.uint32)], axis=1)

    def special_table(self) -> npt.NDArray[np.uint32]:
        """(K, 2) uint32: sorted hidden and selected ids with their flags (1 hidden,
        2 selected; hidden wins)."""
        t = self.table
        f = t[:, 1] & np.uint32(3)
        keep = f != 0
        return np.stack([t[keep, 0], f[keep]], axis=1).astype(np.uint32)
