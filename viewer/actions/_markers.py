"""Marker actions beyond add/remove: move a marker, rename and remove classes.

Moving a marker: the desktop picks the marker itself (``Pick(layer=MARKERS_LAYER,
label=marker id)``, the count tool's K-drag on a slice); the headset's count tool
remembers where a trigger drag started (``ctx.drag_from_um``, world µm) and the
marker nearest to that start (within the pick tolerance) is the one that moves.
Either way the drop point is ``pick.point_um`` and the move is one undoable command.
"""

from __future__ import annotations

from typing import Any

from analysis.annotations import MoveMarker, RemoveClass, RenameClass

from ._context import ActionContext
from ._registry import ACTIONS, Action
from ._select import Pick, nearest_marker

__all__ = ["MARKERS_LAYER", "MOVE_MARKER", "rename_class"]

#: The layer name a marker pick names (``Pick(layer=MARKERS_LAYER, label=marker id)``).
MARKERS_LAYER = "markers"

#: The action's id (the headset's count tool runs it when a drag ends).
MOVE_MARKER = "annotations.move_marker"


def _drag_start(ctx: ActionContext) -> Any:
    return getattr(ctx, "drag_from_um", None)


def _needs_marker_and_point(ctx: ActionContext, pick: Pick) -> str | None:
    if pick.point_um is None:
        return "point at where it goes"
    if pick.layer == MARKERS_LAYER and pick.label is not None:
        return None
    if _drag_start(ctx) is not None:
        return None
    return "pick a marker first (or start the drag on one)"


def _marker_to_move(ctx: ActionContext, pick: Pick) -> int | None:
    """The picked marker's id; else the one nearest the drag start, within tolerance."""
    if pick.layer == MARKERS_LAYER and pick.label is not None:
        return int(pick.label)
    return nearest_marker(ctx.annotations, _drag_start(ctx), pick.tolerance_um)


@ACTIONS.action(
    MOVE_MARKER,
    "Move marker",
    "move the picked marker (or the one a drag started on, within the pick tolerance) "
    "to the picked point; undo puts it back",
    mouse="K, then drag a marker on a slice",
    headset="count tool: trigger on a marker, move, release",
    enabled=_needs_marker_and_point,
)
def _move_marker(ctx: ActionContext, pick: Pick) -> Any:
    assert pick.point_um is not None
    mid = _marker_to_move(ctx, pick)
    if mid is None:
        ctx.notify("move marker: no marker where the drag started")
        return None
    cmd = MoveMarker(mid, pick.point_um)
    ctx.execute(cmd)
    return cmd


def rename_class(ctx: ActionContext, old: str, new: str) -> Any:
    """Rename marker class ``old`` to ``new`` (its markers and classified objects follow):
    one undoable, journaled step; a refusal is said (``ctx.notify``), None returned."""
    from analysis.errors import InvalidEditError

    cmd = RenameClass(old, new)
    try:
        ctx.execute(cmd)
    except InvalidEditError as exc:
        ctx.notify(f"rename class: {exc}")
        return None
    ctx.notify(f"class {old!r} is now {cmd.new!r}")
    return cmd


# The desktop asks for the new name, then calls :func:`rename_class`.
ACTIONS.register(
    Action(
        "annotations.rename_class",
        "Rename class…",
        "rename the current marker class (its markers and classified objects follow)",
    )
)


@ACTIONS.action(
    "annotations.remove_class",
    "Remove class",
    "remove the current marker class (refused while markers or objects are of it)",
    enabled=lambda ctx, pick: (
        None if ctx.annotations.has_class(ctx.class_name) else "no class is chosen"
    ),
)
def _remove_class(ctx: ActionContext, pick: Pick) -> Any:
    name = ctx.class_name
    cmd = RemoveClass(name)
    ctx.execute(cmd)
    ctx.notify(f"class {name!r} removed")
    return cmd
