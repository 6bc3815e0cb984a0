"""Dragging a marker: the headset's count tool (trigger on a marker, move, release).

The front end remembers where the drag started (``ctx.drag_from_um``, world µm)
and runs ``annotations.move_marker`` with the drop point; the marker nearest to
the start (within the pick tolerance) moves there in one undoable command.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from analysis.annotations import MoveMarker

from ._context import ActionContext
from ._registry import ACTIONS
from ._select import Pick

__all__ = ["MOVE_MARKER"]

#: The action's id (the headset's count tool runs it when a drag ends).
MOVE_MARKER = "annotations.move_marker"


# ---------------------------------------------------------------------- dragging markers
@ACTIONS.action(
    MOVE_MARKER,
    "Move marker",
    "move the marker a drag started on (within the pick tolerance) to the picked point; "
    "undo puts it back",
    headset="count tool: trigger on a marker, move, release",
    enabled=lambda ctx, pick: (
        None
        if pick.point_um is not None and getattr(ctx, "drag_from_um", None) is not None
        else "start the drag on a marker"
    ),
)
def _move_marker(ctx: ActionContext, pick: Pick) -> Any:
    start = np.asarray(ctx.drag_from_um, dtype=np.float64)  # type: ignore[attr-defined]
    ms = ctx.annotations.markers
    if not ms:
        return None
    d = np.linalg.norm(np.asarray([m.position_um for m in ms]) - start, axis=1)
    i = int(np.argmin(d))
    if d[i] > pick.tolerance_um:
        ctx.notify("move marker: no marker where the drag started")
        return None
    assert pick.point_um is not None
    cmd = MoveMarker(ms[i].id, pick.point_um)
    ctx.execute(cmd)
    return cmd
