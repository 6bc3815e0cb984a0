"""Track proofreading with a pointing ray: select, cut, merge, prolong, scrub time.

The tool only turns the ray into a pick (:class:`viewer.actions.Pick`) and runs
the registered actions the desktop runs too (``viewer.actions``):

- point: the node nearest to the ray (perpendicular distance, within
  ``viewer.actions.STAGE_TOLERANCE_M`` on the stage) among the nodes drawn now
  (the tracks layer's time window around the current time);
- trigger: ``tracks.select`` the pointed node (the scene selection shows it);
- primary (A / X): ``tracks.cut`` before the pointed node (else the selected
  track at the current time);
- secondary (B / Y): ``tracks.merge`` the selected track with the pointed one
  (end of the earlier to start of the later, whichever nodes were picked);
- thumbstick click: ``tracks.prolong`` the selected track's end by a node at the
  hand's tip, select it and step the time forward (repeat to trace);
- thumbstick left / right: ``time.previous`` / ``time.next``.

Merge (again), swap, delete, mark reviewed and next unreviewed are wrist-menu entries
(:func:`track_menu`): they use the selected node and the last pointed one.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from viewer.actions import (
    ACTIONS,
    STAGE_TOLERANCE_M,
    Pick,
    nearest_node_to_ray,
    selected_nodes,
)

from ..input._types import InputFrame, Ray
from ._base import Tool, ToolContext
from ._toolbox import MenuAction

__all__ = ["TRACK_MENU", "TrackTool", "nearest_node_to_ray", "track_menu"]

#: The track actions the wrist menu offers (they have no button of their own).
TRACK_MENU = (
    "tracks.merge",  # also B / Y: in the menu for controllers without one (Vive, WMR)
    "tracks.swap",
    "tracks.delete",
    "tracks.delete_node",
    "tracks.mark_reviewed",
    "tracks.next_unreviewed",
)


class TrackTool(Tool):
    """Ray-select and edit tracks (see the module docstring).

    Parameters
    ----------
    tolerance_m : float, default: viewer.actions.STAGE_TOLERANCE_M
        Largest ray-to-node distance on the stage (metres) that still points at it.
    window : (tail, head), default: (inf, inf)
        Time window (before, after the current time) of the nodes that can be
        pointed at; the app sets it to the tracks layer's tail/head lengths.
    """

    name = "track"

    def __init__(
        self,
        tolerance_m: float = STAGE_TOLERANCE_M,
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

    def pick(self) -> Pick:
        """The pointed node as a pick (what the menu's track actions use too)."""
        return Pick(node=self.pointed)

    def update(self, frame: InputFrame, ctx: ToolContext) -> None:
        h = self.the_hand(frame)
        x = h.thumbstick[0]
        if self._stick_armed and abs(x) > 0.7:
            ctx.run("time.next" if x > 0 else "time.previous")
            self._stick_armed = False
        elif abs(x) < 0.3:
            self._stick_armed = True
        g = ctx.tracks
        sel = ctx.scene.selection.node_ids if ctx.scene is not None else []
        if sel and any(g is None or n not in g for n in sel):
            # A selected node was deleted (an edit, an undo, a collaborator's op).
            ctx.scene.selection.node_ids = [n for n in sel if g is not None and n in g]
        if h.aim is None:
            self.pointed = None
            self._sync(ctx)
            return
        ray = h.aim.ray()
        self.pointed = self._pick(ray, ctx)
        end = np.asarray(ray.origin) + 1.5 * np.asarray(ray.direction)
        if self.pointed is not None and g is not None:
            end = ctx.transform.world_to_stage(g.position(self.pointed))
            ctx.hud.point(end, (1.0, 0.6, 0.1))
            ctx.hud.text(end + np.array([0.0, 0.04, 0.0]), f"node {self.pointed}", (1.0, 0.6, 0.1))
        ctx.hud.line(ray.origin, end, (1.0, 0.6, 0.1))
        self._sync(ctx)
        if self.selected is not None and g is not None:
            ctx.hud.point(ctx.transform.world_to_stage(g.position(self.selected)), (0.2, 1.0, 1.0))
        if h.select.just_pressed:
            ctx.run("tracks.select", self.pick())
        if h.primary.just_pressed:
            ctx.run("tracks.cut", self.pick())
        if h.secondary.just_pressed:
            ctx.run("tracks.merge", self.pick())
        if h.thumbstick_click.just_pressed:
            tip = ctx.tip_world(h)
            if tip is not None:
                ctx.run(
                    "tracks.prolong", Pick(point_um=(float(tip[0]), float(tip[1]), float(tip[2])))
                )
        self._sync(ctx)

    def _sync(self, ctx: ToolContext) -> None:
        sel = selected_nodes(ctx)
        self.selected = sel[0] if sel else None


def track_menu(tool: TrackTool, ctx: ToolContext) -> dict[str, MenuAction]:
    """Wrist-menu entries for :data:`TRACK_MENU`, picking the tool's last pointed node."""

    def entry(action_id: str) -> MenuAction:
        title = ACTIONS[action_id].verb

        def go() -> str:
            ctx.run(action_id, tool.pick())
            tool._sync(ctx)
            return ctx.message

        return MenuAction(lambda: title, go)

    return {ACTIONS[a].verb: entry(a) for a in TRACK_MENU}
