"""``LabelTool``: proofread a labels layer in the headset (select, merge, delete, split,
paint and erase with a 3D ball).

The tool runs the label actions the desktop runs (``labels.*`` in :mod:`viewer.actions`)
with picks made the same way: the object the hand's ray hits first (``layer``, ``label``,
the world point where it is hit) or the hand's tip (``point_um``; no slice axis, so the
brush is a ball). Its :class:`viewer.actions.LabelEditing` (working copies, brush, change
events) is shared with the context while the tool is in use: the context's
``label_image`` and ``label_brush`` are the tool's.

Modes (thumbstick left / right): ``select``, ``paint``, ``erase``.

- select: trigger selects (adds to the selection, again on a selected object removes it;
  on background clears it); A / X merges the selected objects and the pointed one (with
  two split seeds placed: accepts the split); B / Y deletes; thumbstick click places a
  split seed where the ray hits the object;
- paint / erase: while the trigger is held, balls of the brush radius are stamped at the
  hand's tip whenever it moved half a radius (one undo step per trigger hold);
- thumbstick up / down: brush radius x 1.25 / 1.25.

Lock, unlock, relabel and interpolate are wrist-menu entries (:func:`label_menu`): they
use the object the ray pointed at last (else the selection); interpolate fills the
brush's id across z between the section the ray last hit and the nearest other one.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import numpy.typing as npt

from viewer.actions import ACTIONS, LabelEditing, Pick

from ..input._types import InputFrame
from ._annotate import LabelProbe
from ._base import Tool, ToolContext
from ._toolbox import MenuAction

__all__ = ["LABEL_MENU", "LabelTool", "label_menu"]

#: The label actions the wrist menu offers (they have no button of their own).
LABEL_MENU = ("labels.lock", "labels.unlock", "labels.relabel", "labels.interpolate")

log = logging.getLogger(__name__)


class LabelTool(Tool):
    """Label proofreading with one hand (see the module docstring).

    Parameters
    ----------
    editing : LabelEditing
        Working copies, brush and change events (``LabelEditing(scene, project.edit_labels,
        project.workspace.labels)``).
    layer : str
        The labels layer edited.
    hand : "left" or "right", default: "right"

    Attributes
    ----------
    mode : {"select", "paint", "erase"}
    pointed : int or None
        The object the ray hits now.
    """

    name = "labels"
    MODES = ("select", "paint", "erase")

    def __init__(self, editing: LabelEditing, layer: str, hand: str = "right") -> None:
        super().__init__(hand)
        self.editing = editing
        self.layer = layer
        self.mode = "select"
        self.pointed: int | None = None
        #: The last object the ray hit and where (the wrist menu's entries use it).
        self.last_hit: Pick | None = None
        self._probe: LabelProbe | None = None
        self._stroke: AbstractContextManager[Any] | None = None
        self._last: npt.NDArray[np.float64] | None = None
        self._x_armed = self._y_armed = True
        editing.changed.connect(self._on_change)

    @property
    def brush(self) -> Any:
        return self.editing.brush

    def _on_change(self, change: Any) -> None:
        if change.name == self.layer:
            self._probe = None  # the ray's level is read again from the edited copy

    def _on_disable(self) -> None:
        self._end_stroke()
        self.pointed = None

    def _share(self, ctx: ToolContext) -> None:
        # The context edits labels through this tool's LabelEditing (viewer.actions looks
        # these two members up on any front end).
        if getattr(ctx, "label_brush", None) is not self.editing.brush:
            setattr(ctx, "label_image", self.editing.image)  # noqa: B010
            setattr(ctx, "label_brush", self.editing.brush)  # noqa: B010

    def _probe_for(self, ctx: ToolContext) -> LabelProbe | None:
        if self._probe is None:
            lay = ctx.scene.layers.get(self.layer) if ctx.scene is not None else None
            if lay is None or lay.data is None:
                return None
            self._probe = LabelProbe(lay.data)
        return self._probe

    # ------------------------------------------------------------------ frame
    def update(self, frame: InputFrame, ctx: ToolContext) -> None:
        self._share(ctx)
        h = self.the_hand(frame)
        x, y = h.thumbstick
        if self._x_armed and abs(x) > 0.7:
            self._set_mode(
                ctx, self.MODES[(self.MODES.index(self.mode) + (1 if x > 0 else -1)) % 3]
            )
            self._x_armed = False
        elif abs(x) < 0.3:
            self._x_armed = True
        if self._y_armed and abs(y) > 0.7:
            ctx.run("labels.brush_larger" if y > 0 else "labels.brush_smaller")
            self._y_armed = False
        elif abs(y) < 0.3:
            self._y_armed = True
        if self.mode == "select":
            self._select_mode(h, ctx)
        else:
            self._brush_mode(h, ctx)

    def _set_mode(self, ctx: ToolContext, mode: str) -> None:
        self._end_stroke()
        if mode != "select" and self.brush.seeds:
            ctx.run("labels.split_cancel")
        self.mode = mode
        ctx.message = f"labels: {mode}"

    def _select_mode(self, h: Any, ctx: ToolContext) -> None:
        self.pointed = None
        if h.aim is None:
            return
        ray = h.aim.ray()
        o = ctx.transform.stage_to_world(ray.origin)
        d = ctx.transform.stage_dir_to_world(ray.direction)
        probe = self._probe_for(ctx)
        hit = probe.first_label(o, d, max_um=3.0 / ctx.transform.scale) if probe else None
        end = np.asarray(ray.origin) + 2.0 * np.asarray(ray.direction)
        where: tuple[float, float, float] | None = None
        if hit is not None:
            self.pointed = int(hit[0])
            where = (float(hit[1][0]), float(hit[1][1]), float(hit[1][2]))
            self.last_hit = Pick(layer=self.layer, label=self.pointed, point_um=where)
            end = ctx.transform.world_to_stage(hit[1])
            seeds = len(self.brush.seeds)
            extra = f" · {seeds} seed(s)" if seeds else ""
            ctx.hud.text(end + np.array([0.0, 0.04, 0.0]), f"object {self.pointed}{extra}")
        ctx.hud.line(ray.origin, end, (1.0, 0.8, 0.3))
        for s in self.brush.seeds:
            lay = ctx.scene.layers.get(self.layer)
            lev = lay.data.levels[0]
            zyx = np.asarray(lev.translation[-3:]) + np.asarray(s) * np.asarray(lev.scale_um)
            ctx.hud.point(ctx.transform.world_to_stage(zyx), (1.0, 0.3, 0.3))
        # add: the trigger gathers objects to merge; on background it clears the selection.
        pick = Pick(
            layer=self.layer, label=self.pointed, point_um=where, add=self.pointed is not None
        )
        if h.select.just_pressed:
            ctx.run("labels.select", pick)
        if h.primary.just_pressed:
            ctx.run("labels.split" if len(self.brush.seeds) >= 2 else "labels.merge", pick)
        if h.secondary.just_pressed:
            ctx.run("labels.delete", pick)
        if h.thumbstick_click.just_pressed and where is not None:
            ctx.run("labels.split_seed", Pick(layer=self.layer, point_um=where))

    def _brush_mode(self, h: Any, ctx: ToolContext) -> None:
        tip = ctx.tip_world(h)
        if tip is None:
            return
        b = self.brush
        stage = ctx.transform.world_to_stage(tip)
        ctx.hud.point(stage, (1.0, 1.0, 1.0) if self.mode == "paint" else (1.0, 0.3, 0.3))
        what = f"paint {b.value}" if self.mode == "paint" else "erase"
        ctx.hud.text(stage + np.array([0.0, 0.04, 0.0]), f"{what} · r {b.radius_um:.3g} µm")
        if h.select.just_pressed:
            self._end_stroke()
            cm = ctx.group(f"{self.mode} stroke")
            cm.__enter__()
            self._stroke, self._last = cm, None
        if self._stroke is None:
            return
        if h.select.pressed:
            if self._last is None or np.linalg.norm(tip - self._last) >= b.radius_um / 2:
                action = "labels.paint" if self.mode == "paint" else "labels.erase"
                p = (float(tip[0]), float(tip[1]), float(tip[2]))
                ctx.run(action, Pick(layer=self.layer, point_um=p))
                self._last = np.asarray(tip, dtype=np.float64)
        else:
            self._end_stroke()

    def _end_stroke(self) -> None:
        cm, self._stroke, self._last = self._stroke, None, None
        if cm is not None:
            cm.__exit__(None, None, None)


def label_menu(tool: LabelTool, ctx: ToolContext) -> dict[str, MenuAction]:
    """Wrist-menu entries for :data:`LABEL_MENU`: on the object the tool's ray hit last
    (else the selected ones)."""

    def entry(action_id: str) -> MenuAction:
        title = ACTIONS[action_id].verb

        def go() -> str:
            tool._share(ctx)
            ctx.run(action_id, tool.last_hit or Pick(layer=tool.layer))
            return ctx.message

        return MenuAction(lambda: title, go)

    return {ACTIONS[a].verb: entry(a) for a in LABEL_MENU}
