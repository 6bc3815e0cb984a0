"""Track proofreading with a pointing ray: select, cut, merge, prolong, scrub time.

- point: the node nearest to the ray (perpendicular distance, within a few
  centimetres on the stage) among the nodes drawn now (the tracks layer's
  time window around the current time);
- trigger: select the pointed node (the scene selection shows it);
- primary (A / X): ``Cut`` before the pointed node (else the selected one);
- secondary (B / Y): ``Merge`` the selected track end with the pointed track start;
- thumbstick click: ``Prolong`` the selected end by a node at the hand's tip
  one time point later, select it and step the time forward (repeat to trace);
- thumbstick left / right: step the current time.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from analysis.edits import Cut, Merge, Prolong

from ..input._types import InputFrame, Ray
from ._base import Tool, ToolContext

__all__ = ["TrackTool", "nearest_node_to_ray"]


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


class TrackTool(Tool):
    """Ray-select and edit tracks (see the module docstring).

    Parameters
    ----------
    tolerance_m : float, default: 0.03
        Largest ray-to-node distance on the stage (metres) that still points at it.
    window : (tail, head), default: (inf, inf)
        Time window (before, after the current time) of the nodes that can be
        pointed at; the app sets it to the tracks layer's tail/head lengths.
    """

    name = "track"

    def __init__(
        self,
        tolerance_m: float = 0.03,
        window: tuple[float, float] = (np.inf, np.inf),
        hand: str = "right",
    ) -> None:
        super().__init__(hand)
        self.tolerance_m = tolerance_m
        self.window = window
        self.pointed: int | None = None
        self.selected: int | None = None
        self._stick_armed = True
        self._window_key: tuple[int, int, float, float, float] | None = None
        self._window: tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]] | None = None

    def _on_disable(self) -> None:
        self.pointed = None

    def candidates(
        self, g: object, now: float
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """Positions (K, 3) zyx µm and ids (K,) of the nodes that can be pointed at now.

        Kept until the graph changes (its ``version``), the time moves or the window
        changes: gathering the columns of every live node is the costly part of a
        pick on a large lineage, and per frame the only thing that moves is the ray.
        """
        version = int(g.version)  # type: ignore[attr-defined]
        key = (id(g), version, float(now), float(self.window[0]), float(self.window[1]))
        if key != self._window_key or self._window is None:
            t = g.t  # type: ignore[attr-defined]
            rows = np.flatnonzero((t >= now - self.window[0]) & (t <= now + self.window[1]))
            self._window = (
                np.ascontiguousarray(g.zyx[rows]),  # type: ignore[attr-defined]
                g.node_ids[rows],  # type: ignore[attr-defined]
            )
            self._window_key = key
        return self._window

    def _pick(self, ray: Ray, ctx: ToolContext) -> int | None:
        g = getattr(ctx.workspace, "tracks", None)
        if g is None or g.n_nodes == 0:
            return None
        pts, ids = self.candidates(g, ctx.current_time)
        if not len(ids):
            return None
        o = ctx.transform.stage_to_world(ray.origin)
        d = ctx.transform.stage_dir_to_world(ray.direction)
        row = nearest_node_to_ray(o, d, pts, self.tolerance_m / ctx.transform.scale)
        return None if row is None else int(ids[row])

    def _select(self, ctx: ToolContext, node: int | None) -> None:
        self.selected = node
        if ctx.scene is not None:
            ctx.scene.selection.node_ids = [] if node is None else [int(node)]

    def update(self, frame: InputFrame, ctx: ToolContext) -> None:
        h = self.the_hand(frame)
        x = h.thumbstick[0]
        if self._stick_armed and abs(x) > 0.7:
            ctx.current_time = ctx.current_time + (1 if x > 0 else -1)
            self._stick_armed = False
        elif abs(x) < 0.3:
            self._stick_armed = True
        g = getattr(ctx.workspace, "tracks", None)
        if self.selected is not None and (g is None or self.selected not in g):
            self._select(ctx, None)
        if h.aim is None:
            self.pointed = None
            return
        ray = h.aim.ray()
        self.pointed = self._pick(ray, ctx)
        end = np.asarray(ray.origin) + 1.5 * np.asarray(ray.direction)
        if self.pointed is not None and g is not None:
            end = ctx.transform.world_to_stage(g.position(self.pointed))
            ctx.hud.point(end, (1.0, 0.6, 0.1))
            ctx.hud.text(end + np.array([0.0, 0.04, 0.0]), f"node {self.pointed}", (1.0, 0.6, 0.1))
        ctx.hud.line(ray.origin, end, (1.0, 0.6, 0.1))
        if self.selected is not None and g is not None:
            ctx.hud.point(ctx.transform.world_to_stage(g.position(self.selected)), (0.2, 1.0, 1.0))
        if h.select.just_pressed:
            self._select(ctx, self.pointed)
        if h.primary.just_pressed:
            node = self.pointed if self.pointed is not None else self.selected
            if node is not None:
                ctx.try_apply(Cut(node))
        if h.secondary.just_pressed and self.selected is not None and self.pointed is not None:
            ctx.try_apply(Merge(self.selected, self.pointed))
        if h.thumbstick_click.just_pressed and self.selected is not None and g is not None:
            tip = ctx.tip_world(h)
            if tip is not None:
                t_new = g.time(self.selected) + 1
                cmd = Prolong(self.selected, [(float(t_new), *(float(v) for v in tip))])
                if ctx.try_apply(cmd) and cmd.new_ids:
                    self._select(ctx, cmd.new_ids[-1])
                    ctx.current_time = float(t_new)
