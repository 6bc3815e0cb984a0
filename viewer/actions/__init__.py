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

Label edits (:mod:`viewer.actions._labels`: ``labels.*``) need two more members of a
context, ``label_image(layer)`` and ``label_brush`` (a :class:`LabelBrush`).

Extending: write ``fn(ctx, pick)`` that builds commands and applies them with
``ctx.execute``, register it with ``@ACTIONS.action("group.verb", title, description,
shortcut=..., headset=..., enabled=...)`` in ``_actions.py``; the desktop's menu
and shortcut, and the docs' tables (:meth:`ActionRegistry.desktop_table`,
:meth:`ActionRegistry.headset_table`, tested against ``docs/``) follow. Bind it in
the headset tool that should offer it.
"""

from . import _file as _file  # registers the desktop's file actions
from . import _slice as _slice  # registers the headset's slice plane actions
from ._actions import (
    current_time,
    next_unreviewed_node,
    select_node,
    selected_nodes,
    set_time,
    show_point,
)
from ._context import MEASURE_POINTS, ActionContext, Measuring
from ._display import DISPLAY_FIELDS, RENDERING_MODES, image_layer, set_display
from ._labels import LabelBrush, LabelEditing, label_voxel, labels_layer_name, selected_labels
from ._layers import COLORMAPS, target_layer
from ._lineage import LineageLayout, division_parent, lineage_layout
from ._markers import MARKERS_LAYER, MOVE_MARKER, rename_class
from ._playback import Playback
from ._registry import ACTIONS, Action, ActionRegistry, run
from ._select import (
    SCENE_TOLERANCE_FRACTION,
    SCREEN_TOLERANCE_PX,
    STAGE_TOLERANCE_M,
    Pick,
    is_timelapse,
    merge_ends,
    nearest_marker,
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
from ._triage import (
    TRIAGE_REASONS,
    TriageRules,
    next_suspicious_node,
    suspicious_tracklets,
)

__all__ = [
    "ACTIONS",
    "DISPLAY_FIELDS",
    "MARKERS_LAYER",
    "COLORMAPS",
    "MEASURE_POINTS",
    "MOVE_MARKER",
    "SCENE_TOLERANCE_FRACTION",
    "SCREEN_TOLERANCE_PX",
    "STAGE_TOLERANCE_M",
    "TRIAGE_REASONS",
    "TriageRules",
    "Action",
    "ActionContext",
    "ActionRegistry",
    "LabelBrush",
    "LabelEditing",
    "LineageLayout",
    "Measuring",
    "Pick",
    "RENDERING_MODES",
    "Playback",
    "current_time",
    "division_parent",
    "image_layer",
    "is_timelapse",
    "label_voxel",
    "labels_layer_name",
    "lineage_layout",
    "merge_ends",
    "nearest_marker",
    "nearest_node_to_ray",
    "nearest_on_screen",
    "next_suspicious_node",
    "next_unreviewed_node",
    "node_at_time",
    "node_near",
    "rename_class",
    "run",
    "screen_tolerance_um",
    "select_node",
    "selected_labels",
    "set_display",
    "selected_nodes",
    "set_time",
    "show_point",
    "stage_tolerance_um",
    "suspicious_tracklets",
    "time_range",
    "tracklet_end",
    "target_layer",
    "tracklet_start",
]
