"""``Action`` and the registry every front end reads (napari's ``action_manager``, app-model).

An action is one user intent: an id (``tracks.cut``), a title, a description, the
desktop's default shortcut, the headset's binding, an enabling condition and the
function that does it. :func:`run` checks the condition, runs the function and
turns a refused edit into a message, so no front end repeats either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from analysis.errors import InvalidEditError

from ._context import ActionContext
from ._select import Pick

__all__ = ["ACTIONS", "Action", "ActionRegistry", "run"]

log = logging.getLogger(__name__)

#: Returns why the action cannot run now (shown to the user), or None when it can.
Condition = Callable[[ActionContext, Pick], "str | None"]


@dataclass(frozen=True)
class Action:
    """One named user intent.

    Attributes
    ----------
    id : str
        ``<group>.<verb>``, e.g. ``tracks.merge``; the group is the desktop menu.
    title : str
        Menu text.
    description : str
        One line for the docs' tables and tooltips.
    shortcut : str or None
        The desktop's default key (``QKeySequence`` syntax), None: menu or mouse only.
    headset : str or None
        The headset's binding (tool: button), None: desktop only.
    mouse : str or None
        What the desktop's mouse does for it (clicks feed picks to the action).
    enabled : callable(ctx, pick) -> str or None
        Why it cannot run now; None when it can.
    fn : callable(ctx, pick) -> Any, optional
        What it does. None: the front end implements it (e.g. ``file.save``).
    """

    id: str
    title: str
    description: str
    shortcut: str | None = None
    headset: str | None = None
    mouse: str | None = None
    enabled: Condition | None = None
    fn: Callable[[ActionContext, Pick], Any] | None = None

    @property
    def group(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def verb(self) -> str:
        return self.id.split(".", 1)[1].replace("_", " ")

    def why_disabled(self, ctx: ActionContext, pick: Pick | None = None) -> str | None:
        if self.enabled is None:
            return None
        return self.enabled(ctx, pick or Pick())


class ActionRegistry:
    """The actions by id, in registration order (the order of menus and docs)."""

    def __init__(self) -> None:
        self._actions: dict[str, Action] = {}

    def register(self, action: Action) -> Action:
        if action.id in self._actions:
            raise ValueError(f"action {action.id!r} is already registered")
        keys = {a.shortcut for a in self._actions.values() if a.shortcut}
        if action.shortcut and action.shortcut in keys:
            raise ValueError(f"shortcut {action.shortcut!r} of {action.id!r} is taken")
        self._actions[action.id] = action
        return action

    def action(
        self, id: str, title: str, description: str, **kw: Any
    ) -> Callable[[Callable[[ActionContext, Pick], Any]], Callable[[ActionContext, Pick], Any]]:
        """Decorator: register the function as action ``id``."""

        def deco(
            fn: Callable[[ActionContext, Pick], Any],
        ) -> Callable[[ActionContext, Pick], Any]:
            self.register(Action(id, title, description, fn=fn, **kw))
            return fn

        return deco

    def __getitem__(self, id: str) -> Action:
        return self._actions[id]

    def __contains__(self, id: object) -> bool:
        return id in self._actions

    def __iter__(self) -> Iterator[Action]:
        return iter(self._actions.values())

    def __len__(self) -> int:
        return len(self._actions)

    def group(self, name: str) -> list[Action]:
        return [a for a in self if a.group == name]

    def shortcuts(self) -> dict[str, str]:
        """``{action id: desktop shortcut}`` of the actions that have one."""
        return {a.id: a.shortcut for a in self if a.shortcut}

    def desktop_table(self) -> str:
        """The desktop's keys, as the Markdown table in ``docs/desktop.md``."""
        rows = ["| key | action | what it does |", "|---|---|---|"]
        for a in self:
            if a.shortcut or a.mouse:
                how = a.shortcut or a.mouse
                rows.append(f"| {how} | `{a.id}` | {a.description} |")
        return "\n".join(rows) + "\n"

    def headset_table(self) -> str:
        """The headset's bindings, as the Markdown table in ``docs/xr.md``."""
        rows = ["| binding | action | what it does |", "|---|---|---|"]
        for a in self:
            if a.headset:
                rows.append(f"| {a.headset} | `{a.id}` | {a.description} |")
        return "\n".join(rows) + "\n"


#: The one registry both front ends read.
ACTIONS = ActionRegistry()


def run(id: str, ctx: ActionContext, pick: Pick | None = None) -> Any:
    """Run action ``id`` on ``ctx`` with ``pick``; None when it was disabled or refused.

    A disabled action or a refused edit (``InvalidEditError``) becomes a
    ``ctx.notify`` message, not an exception.
    """
    action = ACTIONS[id]
    p = pick or Pick()
    if action.fn is None:
        raise ValueError(f"action {id!r} is implemented by the front end")
    why = action.why_disabled(ctx, p)
    if why is not None:
        ctx.notify(f"{action.verb}: {why}")
        return None
    try:
        return action.fn(ctx, p)
    except InvalidEditError as exc:
        log.info("%s refused: %s", id, exc)
        ctx.notify(f"{action.verb}: {exc}")
        return None
