"""``Toolbox``: the active tool, the always-on grab, the hand menu and global actions.

Per frame (:meth:`Toolbox.update`): the menu first (while it is open the
active tool gets no input, so a menu pick never also places a marker), then
global actions on the menu hand (secondary = undo, primary = redo, thumbstick
click = reset view), then grab (either hand's squeeze), then the active tool.

The menu lists the tools and then the :class:`MenuAction` entries the app adds
(e.g. "follow presenter: on" in a joined session).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from analysis.errors import ParameterError

from .._transform import StageTransform
from ..input._types import InputFrame, Pose
from ._base import Tool, ToolContext
from ._grab import GrabTool
from ._view import HandMenu

__all__ = ["MenuAction", "Toolbox"]

PANEL = "__panel__"  # the menu entry opening the wrist panel
BACK = "__back__"  # the panel's entry back to the menu

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MenuAction:
    """A menu entry that is not a tool: ``label()`` is shown, ``run()`` is called when
    it is picked and returns the message for the wrist."""

    label: Callable[[], str]
    run: Callable[[], str]


class Toolbox:
    """Owns the tools and routes each frame's input to them.

    Parameters
    ----------
    tools : mapping name -> Tool
        The tools the menu offers (``grab`` is always on and need not be listed).
    ctx : ToolContext
    active : str
        The tool enabled first.
    undo, redo : callable, optional
        The history's undo / redo (bound to the menu hand's buttons).
    home : StageTransform, optional
        Where "reset view" puts the volume (default: the transform at start).
    actions : mapping key -> MenuAction, optional
        Further menu entries, listed after the tools.
    """

    def __init__(
        self,
        tools: Mapping[str, Tool],
        ctx: ToolContext,
        active: str,
        undo: Callable[[], object] | None = None,
        redo: Callable[[], object] | None = None,
        home: StageTransform | None = None,
        actions: Mapping[str, MenuAction] | None = None,
        place: Callable[[Pose], StageTransform] | None = None,
        panel: Mapping[str, MenuAction] | None = None,
    ) -> None:
        if active not in tools:
            raise ParameterError(f"unknown tool {active!r} (choose from {', '.join(tools)})")
        self.tools = dict(tools)
        self.ctx = ctx
        self.grab = GrabTool()
        self.grab.enabled = True
        self.actions = dict(actions or {})
        if set(self.actions) & set(self.tools):
            raise ParameterError("menu actions and tools need different names")
        # The wrist panel: a second page of the menu ("layers ›" opens it, "‹ back"
        # returns); it stays open between picks so a value can be stepped repeatedly.
        self.panel = dict(panel or {})
        if set(self.panel) & (set(self.tools) | set(self.actions) | {PANEL, BACK}):
            raise ParameterError("panel entries need names of their own")
        self.main_items = list(self.tools) + list(self.actions) + ([PANEL] if self.panel else [])
        self.menu = HandMenu(self.main_items, label=self._label)
        self.undo = undo
        self.redo = redo
        self.home = home or ctx.transform
        # "reset view" re-centres in front of the head when the app gives a placement.
        self.place = place
        self.head: Pose | None = None
        self._scrub_armed = True
        # edit.undo / edit.redo / view.reset (viewer.actions) call these.
        ctx.on_undo = undo
        ctx.on_redo = redo
        ctx.on_reset_view = self._reset_view
        self.active = active
        self.tools[active].enabled = True

    def switch(self, name: str) -> None:
        """Enable tool ``name`` (and disable the previous one)."""
        if name not in self.tools:
            raise ParameterError(f"unknown tool {name!r} (choose from {', '.join(self.tools)})")
        if name == self.active:
            return
        self.tools[self.active].enabled = False
        self.active = name
        self.tools[name].enabled = True
        self.ctx.message = f"tool: {name}"

    def _label(self, item: str) -> str:
        if item == PANEL:
            return "layers >"
        if item == BACK:
            return "< back"
        action = self.actions.get(item) or self.panel.get(item)
        return item if action is None else action.label()

    def highlighted_label(self) -> str | None:
        """The text of the highlighted menu item while the menu is open (the trace)."""
        if not self.menu.open or not self.menu.items:
            return None
        return self._label(self.menu.items[self.menu.highlighted % len(self.menu.items)])

    def _page(self, items: list[str]) -> None:
        self.menu.items = items
        self.menu.highlighted = 0
        self.menu.open = True

    def _choose(self, chosen: str) -> None:
        ctx = self.ctx
        if chosen == PANEL:
            self._page([*self.panel, BACK])
        elif chosen == BACK:
            self._page(self.main_items)
        elif chosen in self.panel:
            ctx.message = self.panel[chosen].run()
            self.menu.open = True  # keep the panel up for the next step
            self.menu.highlighted = self.menu.items.index(chosen)
        elif chosen in self.actions:
            ctx.message = self.actions[chosen].run()
        else:
            self.switch(chosen)

    def _reset_view(self) -> None:
        if self.place is not None and self.head is not None:
            self.home = self.place(self.head)
        self.ctx.transform = self.home

    def _scrub(self, x: float) -> None:
        """The menu hand's stick left / right (menu closed): one time point per push."""
        if self._scrub_armed and abs(x) > 0.7:
            self._scrub_armed = False
            if self.ctx.scene is not None:
                self.ctx.run("time.next" if x > 0 else "time.previous")
        elif abs(x) < 0.3:
            self._scrub_armed = True

    def update(self, frame: InputFrame) -> None:
        ctx = self.ctx
        ctx.hud.clear()
        if frame.head is not None:
            self.head = frame.head
            ctx.hud.head = frame.head.position
        was_open = self.menu.open
        self.menu.update(frame, ctx, self.active)
        # The click that picks an item (or closes the menu) must not reach the tool.
        busy = was_open or self.menu.open
        chosen = self.menu.chosen
        if chosen is not None:
            self._choose(chosen)
        elif not self.menu.open and self.menu.items is not self.main_items:
            self.menu.items = self.main_items  # closed on the panel: next time, the menu
        mh = frame.hand(self.menu.hand)  # type: ignore[arg-type]
        if not busy:
            if mh.secondary.just_pressed:
                ctx.run("edit.undo")
            if mh.primary.just_pressed:
                ctx.run("edit.redo")
            if mh.thumbstick_click.just_pressed:
                ctx.run("view.reset")
            self._scrub(mh.thumbstick[0])
        self.grab.update(frame, ctx)
        if not busy:
            self.tools[self.active].update(frame, ctx)
        for name, tool in self.tools.items():
            if name != self.active:
                tool.draw_inactive(ctx)
        if mh.aim is not None:
            status = f"[{self.active}] t={ctx.current_time:g}"
            if ctx.message:
                status += f"\n{ctx.message}"
            ctx.hud.text(
                np.asarray(mh.aim.position) + np.array([0.0, -0.06, 0.0]), status, (0.8, 0.9, 1.0)
            )
