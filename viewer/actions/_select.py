"""Selection semantics shared by every front end: what a pick means for a track edit.

A *pick* is what a click (desktop) or a pointing ray / hand tip (headset) resolves
to: a track node, a world point, an object of a labels layer. Both front ends turn
their device input into the same :class:`Pick`; the rules below then decide, once,
which nodes an edit joins or cuts (e.g. a merge snaps to the end of the first track
and the start of the second whichever of their nodes was picked).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "nearest_marker",
    "SCENE_TOLERANCE_FRACTION",
    "SCREEN_TOLERANCE_PX",
    "STAGE_TOLERANCE_M",
    "Pick",
    "is_timelapse",
    "merge_ends",
    "nearest_node_to_ray",
    "nearest_on_screen",
    "node_at_time",
    "node_near",
    "screen_tolerance_um",
    "stage_tolerance_um",
    "time_range",
    "tracklet_end",
    "tracklet_start",
]

#: A click on a slice picks what is drawn within this many screen pixels of it (in the
#: plane; the depth of what a slice draws is not visible, so it does not count).
SCREEN_TOLERANCE_PX = 8.0
#: A pointing ray picks what lies within this distance on the stage (metres).
STAGE_TOLERANCE_M = 0.03
#: A click in the 3D view picks within this fraction of the scene's diagonal.
SCENE_TOLERANCE_FRACTION = 0.01

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class Pick:
    """What the user pointed at, in world terms (no pixels, no stage metres).

    Attributes
    ----------
    node : int or None
        A track node (desktop: clicked; headset: nearest the ray).
    point_um : (z, y, x) or None
        A world point in µm (desktop: the click on a slice or the volume;
        headset: the hand's tip).
    layer, label : str, int or None
        An object of a labels layer.
    add : bool, default: False
        Add to the selection instead of replacing it (desktop: Ctrl+click).
    tolerance_um : float, default: inf
        How far from ``point_um`` what it picks may lie (µm; see
        :func:`screen_tolerance_um`, :func:`stage_tolerance_um`).
    axis : int or None
        The axis of the slice the point was picked on (0: XY, 1: XZ, 2: YZ); label
        brushes and fills then work in that plane. None: in 3D (the headset, the 3D view).
    """

    node: int | None = None
    point_um: Vec3 | None = None
    layer: str | None = None
    label: int | None = None
    add: bool = False
    tolerance_um: float = float("inf")
    axis: int | None = None


def screen_tolerance_um(pixel_size_um: float) -> float:
    """Pick tolerance (µm) of a click on a view showing ``pixel_size_um`` per pixel."""
    return SCREEN_TOLERANCE_PX * float(pixel_size_um)


def stage_tolerance_um(scale_m_per_um: float) -> float:
    """Pick tolerance (µm) of a ray when one µm is ``scale_m_per_um`` metres on the stage."""
    return STAGE_TOLERANCE_M / float(scale_m_per_um)


def nearest_on_screen(
    points_zyx: npt.ArrayLike,
    zyx: Sequence[float],
    axis: int,
    pixel_size_um: float,
    slab_um: float = float("inf"),
    tolerance_px: float = SCREEN_TOLERANCE_PX,
) -> int | None:
    """Row of the point drawn on a slice nearest to a click there, by screen distance.

    A slice across ``axis`` draws the points within ``slab_um`` of it, all at the
    slice's depth: how far off the slice a point lies is invisible on screen, so it
    does not count. A click picks the point nearest in the plane within
    ``tolerance_px`` screen pixels (``pixel_size_um`` µm each), whatever the zoom.

    Parameters
    ----------
    points_zyx : (N, 3) float array
        Candidate points, world µm.
    zyx : (z, y, x)
        The click, world µm (``zyx[axis]`` is the slice's depth).
    axis : int
        The axis the slice is across (0: XY, 1: XZ, 2: YZ).
    pixel_size_um : float
        µm per screen pixel of the view.
    slab_um : float, default: inf
        Half thickness of the slab drawn on the slice.
    tolerance_px : float, default: :data:`SCREEN_TOLERANCE_PX`
    """
    pts = np.asarray(points_zyx, dtype=np.float64).reshape(-1, 3)
    if not len(pts):
        return None
    c = np.asarray(zyx, dtype=np.float64)
    inplane = [a for a in range(3) if a != axis]
    d_px = np.linalg.norm(pts[:, inplane] - c[inplane], axis=1) / max(float(pixel_size_um), 1e-12)
    d_px[np.abs(pts[:, axis] - c[axis]) > slab_um] = np.inf
    i = int(np.argmin(d_px))
    return i if d_px[i] <= tolerance_px else None


def tracklet_end(g: Any, node: int) -> int:
    """The last node of ``node``'s tracklet (the piece between divisions)."""
    return int(g.tracklet(node)[-1])


def tracklet_start(g: Any, node: int) -> int:
    """The first node of ``node``'s tracklet."""
    return int(g.tracklet(node)[0])


def merge_ends(g: Any, first: int, second: int) -> tuple[int, int]:
    """(end, start) a merge of two picked tracks joins.

    The end of ``first``'s tracklet is linked to the start of ``second``'s; when the
    first track ends after the second starts, the other way round (the picks' order
    does not matter, only the tracks').
    """
    end, start = tracklet_end(g, first), tracklet_start(g, second)
    if g.time(end) > g.time(start):
        end, start = tracklet_end(g, second), tracklet_start(g, first)
    return end, start


def node_at_time(g: Any, node: int, t: int) -> int | None:
    """The node of ``node``'s tracklet at time ``t``, if it has one."""
    for i in g.tracklet(node):
        if g.time(int(i)) == t:
            return int(i)
    return None


def node_near(g: Any, t: int, zyx: Sequence[float], max_distance_um: float) -> int | None:
    """The node at time ``t`` nearest to world ``zyx`` within the distance (a click)."""
    if g is None or not g.n_nodes:
        return None
    found = g.nearest(int(t), zyx, max_distance_um)
    return None if found is None else int(found)


def nearest_node_to_ray(
    ray_origin: npt.ArrayLike,
    ray_dir: npt.ArrayLike,
    points: npt.NDArray[np.float64],
    max_distance: float,
) -> int | None:
    """Row of the point (N, 3) nearest to the ray (in front of its origin), or None.

    ``max_distance`` bounds the perpendicular distance (same units as the points).
    """
    if not len(points):
        return None
    o = np.asarray(ray_origin, dtype=np.float64)
    d = np.asarray(ray_dir, dtype=np.float64)
    d = d / np.linalg.norm(d)
    rel = points - o
    along = rel @ d
    perp = np.linalg.norm(rel - np.outer(along, d), axis=1)
    perp[along < 0] = np.inf
    i = int(np.argmin(perp))
    return i if perp[i] <= max_distance else None


def time_range(scene: Any, tracks: Any) -> tuple[int, int]:
    """First and last time point (frames) of the scene's image and the tracks."""
    hi = 0
    img = next((lay for lay in scene.layers if getattr(lay, "kind", None) == "image"), None)
    data = getattr(img, "data", None)
    if data is not None and "t" in data.axes:
        hi = int(data.levels[0].shape[data.axes.index("t")]) - 1
    lo = 0
    if tracks is not None and tracks.n_nodes:
        tp = tracks.time_points
        lo, hi = min(lo, int(tp.min())), max(hi, int(tp.max()))
    return lo, hi


def is_timelapse(scene: Any, tracks: Any) -> bool:
    """Whether markers and measurements carry a time point (image with t, or tracks over time)."""
    img = next((lay for lay in scene.layers if getattr(lay, "kind", None) == "image"), None)
    data = getattr(img, "data", None)
    has_t = data is not None and "t" in data.axes
    return bool(has_t or (tracks is not None and len(tracks.time_points) > 1))


def nearest_marker(annotations: Any, zyx_um: Any, radius_um: float) -> int | None:
    """Id of the marker of ``annotations`` nearest to ``zyx_um`` (world µm), if it lies
    within ``radius_um``; None otherwise (or without annotations or markers)."""
    ms = annotations.markers if annotations is not None else []
    if not ms:
        return None
    d = np.linalg.norm(np.asarray([m.position_um for m in ms]) - np.asarray(zyx_um, float), axis=1)
    i = int(np.argmin(d))
    return int(ms[i].id) if d[i] <= radius_um else None
