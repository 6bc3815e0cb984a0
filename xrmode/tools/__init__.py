"""XR tools: plain classes that turn poses and buttons into edit commands.

Each tool subclasses :class:`Tool` (``enabled`` -> ``_on_enable`` /
``_on_disable``; ``update(frame, ctx)`` once per frame) and sees only plain
:class:`xrmode.input.InputFrame` values, so unit tests drive it with synthetic
pose sequences. Data changes are the registered actions of :mod:`viewer.actions`
(``ctx.run(action_id, pick)``), the same the desktop runs; they build the shared
commands of :mod:`analysis.edits` and :mod:`analysis.annotations` (undoable,
journaled); view changes (the world -> stage
transform, clipping planes, time) are made on the :class:`ToolContext`.
Drawing is a :class:`Hud` of stage-space lines, points and text.

Tools: :class:`GrabTool` (always on), :class:`MeasureTool`, :class:`CountTool`,
:class:`TrackTool`, :class:`ClassifyTool`, :class:`LabelTool`, :class:`ClipTool`,
:class:`LaserPointer`; :class:`HandMenu` switches them and :class:`Toolbox`
routes input. To add a tool: subclass :class:`Tool`, give it a ``name`` and add
it to the tool dict the app builds (``xrmode._app``).
"""

from ._annotate import ClassifyTool, CountTool, LabelProbe, MeasureTool
from ._base import Hud, Tool, ToolContext
from ._grab import GrabTool
from ._labels import LABEL_MENU, LabelTool, label_menu
from ._slice import SlicePlane, SliceTool, resample_plane, streamer_box_reader
from ._toolbox import MenuAction, Toolbox
from ._track import TRACK_MENU, TrackTool, nearest_node_to_ray, track_menu
from ._view import ClipTool, CropTool, HandMenu, LaserPointer

__all__ = [
    "TRACK_MENU",
    "ClassifyTool",
    "ClipTool",
    "CountTool",
    "CropTool",
    "GrabTool",
    "HandMenu",
    "Hud",
    "LabelProbe",
    "LABEL_MENU",
    "LabelTool",
    "LaserPointer",
    "MeasureTool",
    "MenuAction",
    "SlicePlane",
    "SliceTool",
    "Tool",
    "ToolContext",
    "Toolbox",
    "TrackTool",
    "nearest_node_to_ray",
    "resample_plane",
    "label_menu",
    "streamer_box_reader",
    "track_menu",
]
