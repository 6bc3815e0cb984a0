"""Marker actions beyond add/remove: ``annotations.move_marker``."""

from __future__ import annotations

from typing import Any

from analysis.annotations import MoveMarker

from ._context import ActionContext
from ._registry import ACTIONS
from ._select import Pick

__all__ = ["MARKERS_LAYER"]

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
