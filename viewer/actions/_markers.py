"""Marker actions beyond add/remove: move a marker, rename and remove classes."""

from __future__ import annotations

from typing import Any

from analysis.annotations import MoveMarker, RemoveClass, RenameClass

from ._context import ActionContext
from ._registry import ACTIONS, Action
from ._select import Pick

__all__ = ["MARKERS_LAYER", "rename_class"]

#: The layer name a marker pick names (``Pick(layer=MARKERS_LAYER, label=marker id)``).
MARKERS_LAYER = "markers"


def _needs_marker_and_point(ctx: ActionContext, pick: Pick) -> str | None:
    if pick.layer != MARKERS_LAYER or pick.label is None:
        return "pick a marker first"
    if pick.point_um is None:
        return "point at where it goes"
    return None


@ACTIONS.action(
    "annotations.move_marker",
    "Move marker",
    "move the picked marker (Pick.layer 'markers', label = its id) to the picked point",
    mouse="K, then drag a marker on a slice",
    enabled=_needs_marker_and_point,
)
def _move_marker(ctx: ActionContext, pick: Pick) -> Any:
    assert pick.label is not None and pick.point_um is not None
    cmd = MoveMarker(int(pick.label), pick.point_um)
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
