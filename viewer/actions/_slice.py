"""The hand-held slice plane's intents (``slice.*``): freeze it in the scene, take it
back, or remove it.

A front end that shows a slice plane (the headset's slice tool) gives its action
context a ``slice_plane`` attribute with a ``frozen`` flag, ``corners_um`` (None when
there is no plane) and ``toggle_freeze()`` / ``remove()`` methods; the actions only
call them, so every front end (and every button bound to them) does the same.
"""

from __future__ import annotations

from ._context import ActionContext
from ._registry import ACTIONS
from ._select import Pick

__all__: list[str] = []


def _needs_plane(ctx: ActionContext, pick: Pick) -> str | None:
    return None if getattr(ctx, "slice_plane", None) is not None else "no slice plane"


@ACTIONS.action(
    "slice.freeze",
    "Freeze / take the slice plane",
    "leave the slice plane where it is in the data (it stays there when the volume "
    "moves), or take it back into the hand",
    headset="slice tool: trigger",
    enabled=_needs_plane,
)
def _freeze(ctx: ActionContext, pick: Pick) -> bool:
    plane = getattr(ctx, "slice_plane", None)
    frozen = bool(plane.toggle_freeze())  # type: ignore[union-attr]
    ctx.notify("slice frozen" if frozen else "slice in hand")
    return frozen


def _has_plane(ctx: ActionContext, pick: Pick) -> str | None:
    plane = getattr(ctx, "slice_plane", None)
    return None if getattr(plane, "corners_um", None) is not None else "no slice plane"


@ACTIONS.action(
    "slice.remove",
    "Remove the slice plane",
    "take the slice plane (frozen in the scene or in the hand) away",
    headset="slice tool: B / Y; menu: remove slice",
    enabled=_has_plane,
)
def _remove(ctx: ActionContext, pick: Pick) -> bool:
    plane = getattr(ctx, "slice_plane", None)
    removed = bool(plane.remove())  # type: ignore[union-attr]
    ctx.notify("slice removed")
    return removed
