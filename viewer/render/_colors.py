"""Colours: matplotlib colormaps, per-id colours and feature colouring (no VTK here)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from analysis.errors import ParameterError

__all__ = ["colormap_table", "id_colors", "values_to_colors"]


def colormap_table(name: str, n: int = 256) -> npt.NDArray[np.float64]:
    """``(n, 3)`` RGB in 0..1 sampled from the matplotlib colormap ``name``."""
    import matplotlib

    try:
        cmap = matplotlib.colormaps[name]
    except KeyError as exc:
        raise ParameterError(f"unknown colormap {name!r}") from exc
    return np.asarray(cmap(np.linspace(0.0, 1.0, n))[:, :3], dtype=np.float64)


def id_colors(ids: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``(N, 3)`` RGB per integer id: stable, well spread, never dark.

    The hue steps by the golden ratio so consecutive ids differ strongly
    (the usual trick of label viewers; napari uses a random hash for the same end).
    """
    a = np.asarray(ids, dtype=np.int64).reshape(-1)
    hue = np.mod(a * 0.6180339887498949, 1.0)
    sat = 0.55 + 0.35 * np.mod(a * 0.3819660112501051, 1.0)
    val = np.full_like(hue, 0.95)
    import matplotlib.colors as mcolors

    return np.asarray(mcolors.hsv_to_rgb(np.stack([hue, sat, val], axis=1)), dtype=np.float64)


def values_to_colors(
    ids: npt.ArrayLike,
    values: Mapping[int, float],
    colormap: str,
    limits: tuple[float, float] | None = None,
    missing: tuple[float, float, float] = (0.5, 0.5, 0.5),
) -> npt.NDArray[np.float64]:
    """``(N, 3)`` RGB per id from ``values[id]`` through ``colormap`` (grey when missing).

    Parameters
    ----------
    ids : (N,) ints
    values : mapping id -> float
    colormap : str
    limits : (lo, hi), default: min and max of the values present
    """
    a = np.asarray(ids, dtype=np.int64).reshape(-1)
    v = np.array([values.get(int(i), np.nan) for i in a], dtype=np.float64)
    ok = np.isfinite(v)
    out = np.tile(np.asarray(missing, dtype=np.float64), (len(a), 1))
    if not ok.any():
        return out
    lo, hi = limits if limits is not None else (float(v[ok].min()), float(v[ok].max()))
    span = hi - lo if hi > lo else 1.0
    table = colormap_table(colormap)
    idx = np.clip(((v[ok] - lo) / span * (len(table) - 1)).round(), 0, len(table) - 1)
    out[ok] = table[idx.astype(np.intp)]
    return out
