"""Report figures with matplotlib's Agg backend (no display), returned as PNG bytes."""

from __future__ import annotations

import io
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")  # before pyplot: the report renders offscreen on any machine

import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.figure import Figure

from analysis.density import correlation

__all__ = ["box_strip_png", "histogram_png", "projection_png", "scatter_fit_png", "strip_png"]


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def histogram_png(values: pd.Series, title: str, xlabel: str, bins: int = 30) -> bytes:
    """Histogram of one column."""
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    data = np.asarray(values, dtype=np.float64)
    ax.hist(data[np.isfinite(data)], bins=bins, color="#4c72b0", edgecolor="white")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("objects")
    return _png(fig)


def scatter_fit_png(
    table: pd.DataFrame, x: str, y: str, colour: str, title: str, xlabel: str, ylabel: str
) -> bytes:
    """Scatter of ``y`` against ``x`` coloured by ``colour``, a least-squares line and r, p."""
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    xs = table[x].to_numpy(np.float64)
    ys = table[y].to_numpy(np.float64)
    sc = ax.scatter(xs, ys, c=table[colour].to_numpy(np.float64), cmap="viridis", s=14)
    fig.colorbar(sc, ax=ax, label=colour)
    ok = np.isfinite(xs) & np.isfinite(ys)
    if ok.sum() >= 3:
        slope, intercept = np.polyfit(xs[ok], ys[ok], 1)
        grid = np.linspace(xs[ok].min(), xs[ok].max(), 50)
        ax.plot(grid, slope * grid + intercept, color="#c44e52", lw=2)
        res = correlation(xs, ys, "pearson")
        title = f"{title}\nPearson r = {res.r:.3f}, p = {res.pvalue:.2g}"
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return _png(fig)


def projection_png(
    projection: npt.NDArray[np.float64], spacing: tuple[float, float, float], title: str, label: str
) -> bytes:
    """A per-object colour-coded max projection (NaN shown as background)."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    extent = (0.0, projection.shape[1] * spacing[2], projection.shape[0] * spacing[1], 0.0)
    masked = np.ma.masked_invalid(projection)
    im = ax.imshow(masked, cmap="magma", extent=extent, interpolation="nearest")
    ax.set_facecolor("#202020")
    fig.colorbar(im, ax=ax, label=label, shrink=0.8)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    return _png(fig)


def strip_png(table: pd.DataFrame, group: str, value: str, title: str) -> bytes:
    """Values per group as jittered points with the group means."""
    fig, ax = plt.subplots(figsize=(4.0, 3.4))
    rng = np.random.default_rng(0)
    groups = sorted(table[group].unique())
    for i, g in enumerate(groups):
        vals = table.loc[table[group] == g, value].to_numpy(np.float64)
        ax.scatter(i + rng.uniform(-0.15, 0.15, vals.size), vals, s=14, alpha=0.7)
        if vals.size:
            ax.hlines(vals.mean(), i - 0.3, i + 0.3, color="black", lw=2)
    ax.set_xticks(range(len(groups)), [f"part {g}" for g in groups])
    ax.set_ylabel(value)
    ax.set_title(title, fontsize=10)
    return _png(fig)


def box_strip_png(
    table: pd.DataFrame,
    group: str,
    value: str,
    title: str,
    ylabel: str,
    tick_labels: Mapping[object, str] | None = None,
) -> bytes:
    """Box plot per group (median, quartiles, 1.5 IQR whiskers) with the points on top."""
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    rng = np.random.default_rng(0)  # fixed jitter: the same report twice is identical
    groups = sorted(table[group].unique())
    data = [table.loc[table[group] == g, value].to_numpy(np.float64) for g in groups]
    if groups:
        ax.boxplot(data, positions=list(range(len(groups))), widths=0.5, showfliers=False)
    for i, vals in enumerate(data):
        ax.scatter(i + rng.uniform(-0.15, 0.15, vals.size), vals, s=12, alpha=0.6, zorder=3)
    labels = tick_labels or {}
    ax.set_xticks(range(len(groups)), [labels.get(g, f"part {g}") for g in groups])
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    return _png(fig)
