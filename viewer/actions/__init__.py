"""Every user intent as one named action, shared by the desktop and the headset.

An :class:`Action` has an id (``tracks.merge``), a title, a description, the
desktop's default shortcut, the headset's binding and an enabling condition
(napari's ``action_manager`` / app-model, in their simplest form). Front ends
turn device input into a :class:`Pick` (a node, a world point, an object) the
same way, then call :func:`run` with themselves as the :class:`ActionContext`:

- the desktop (``viewer.qt``): menus, shortcuts and clicks;
- the headset (``xrmode.tools``): trigger, A/B, thumbstick and the wrist menu;
- collaboration sends the commands the actions build (the context's history).

Selection semantics (what "the selected end" is, snapping a merge to tracklet
ends, pick tolerances in world units) live once, in :mod:`viewer.actions._select`.

This package imports no Qt, VTK or OpenXR (an import-linter contract keeps it so).

Extending: write ``fn(ctx, pick)`` that builds commands and applies them with
``ctx.execute``, register it with ``@ACTIONS.action("group.verb", title, description,
shortcut=..., headset=..., enabled=...)`` in ``_actions.py``; the desktop's menu
and shortcut, and the docs' tables (:meth:`ActionRegistry.desktop_table`,
:meth:`ActionRegistry.headset_table`, tested against ``docs/``) follow. Bind it in
the headset tool that should offer it.
"""

from ._actions import (
    current_time,
    next_unreviewed_node,
    select_node,
    selected_nodes,
    set_time,
    show_point,
)
from ._context import MEASURE_POINTS, ActionContext, Measuring
from ._layers import COLORMAPS, target_layer
from ._markers import MOVE_MARKER
from ._playback import Playback
from ._registry import ACTIONS, Action, ActionRegistry, run
from ._select import (
    SCENE_TOLERANCE_FRACTION,
    SCREEN_TOLERANCE_PX,
    STAGE_TOLERANCE_M,
    Pick,
    is_timelapse,
    merge_ends,
    nearest_node_to_ray,
    nearest_on_screen,
    node_at_time,
    node_near,
    screen_tolerance_um,
    stage_tolerance_um,
    time_range,
    tracklet_end,
    tracklet_start,
)

__all__ = [
    "ACTIONS",
    "COLORMAPS",
    "MEASURE_POINTS",
    "MOVE_MARKER",
    "SCENE_TOLERANCE_FRACTION",
    "SCREEN_TOLERANCE_PX",
    "STAGE_TOLERANCE_M",
    "Action",
    "ActionContext",
    "ActionRegistry",
    "Measuring",
    "Pick",
    "Playback",
    "current_time",
    "is_timelapse",
    "merge_ends",
    "nearest_node_to_ray",
    "nearest_on_screen",
    "next_unreviewed_node",
    "node_at_time",
    "node_near",
    "run",
    "screen_tolerance_um",
    "select_node",
    "selected_nodes",
    "set_time",
    "show_point",
    "stage_tolerance_um",
    "time_range",
    "tracklet_end",
    "target_layer",
    "tracklet_start",
]
