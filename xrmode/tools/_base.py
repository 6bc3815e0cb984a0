"""Tool base class, the per-frame context tools work in, and the HUD they draw into.

A tool is a plain object (napari-threedee's ``N3dComponent`` pattern):
``tool.enabled = True`` calls ``_on_enable``, ``False`` calls ``_on_disable``;
each frame :meth:`Tool.update` gets an :class:`InputFrame` (plain poses and
buttons) and a :class:`ToolContext`. Tools never change data: they turn what the
hand points at into a :class:`viewer.actions.Pick` and run a registered action
(``ctx.run("tracks.merge", pick)``), the same the desktop runs; the action builds
the ``analysis.edits`` command and applies it through ``ctx.apply`` (undoable,
journaled). The context is the headset's :class:`viewer.actions.ActionContext`.
View state that is not data (the world -> stage transform, clipping planes) is
changed on the context directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.edits import Command
from analysis.errors import InvalidEditError
from viewer.actions import Measuring, Pick
from viewer.actions import run as run_action

from .._transform import StageTransform
from ..input._types import HandInput, InputFrame

__all__ = ["Hud", "Tool", "ToolContext"]

log = logging.getLogger(__name__)

RGB = tuple[float, float, float]
Vec3 = tuple[float, float, float]


@dataclass
class Hud:
    """What tools draw this frame, in stage metres (cleared every frame).

    Attributes
    ----------
    lines : list of ((3,), (3,), rgb)
    points : list of ((3,), rgb)
    texts : list of ((3,), str, rgb)
    image : ((3, 3) stage corners, (H, W, 3) uint8) or None
        A textured square (the slice plane): origin, end of the first side (image
        columns), end of the second side (image rows, bottom to top).
    """

    lines: list[tuple[Vec3, Vec3, RGB]] = field(default_factory=list)
    points: list[tuple[Vec3, RGB]] = field(default_factory=list)
    texts: list[tuple[Vec3, str, RGB]] = field(default_factory=list)
    image: tuple[npt.NDArray[np.float64], npt.NDArray[np.uint8]] | None = None
    #: Visual angle of a line of HUD text on the eyes (the renderer's font size in
    #: degrees; the app sets it from the eyes' resolution and field of view).
    text_angle_rad: float = float(np.radians(1.5))
    #: The head position (stage metres) this frame, when tracked.
    head: Vec3 | None = None

    def clear(self) -> None:
        self.lines.clear()
        self.points.clear()
        self.texts.clear()
        self.image = None

    def line_spacing_m(self, at: npt.ArrayLike, lines: float = 1.0) -> float:
        """Vertical distance (metres) that ``lines`` lines of text take at ``at`` with a
        half-line gap, so stacked items never overlap at any distance from the head."""
        head = self.head if self.head is not None else (0.0, 1.6, 0.0)
        dist = max(float(np.linalg.norm(np.asarray(at, dtype=np.float64) - head)), 0.1)
        return float(dist * np.tan(self.text_angle_rad) * 1.5 * lines)

    def line(self, a: npt.ArrayLike, b: npt.ArrayLike, color: RGB = (1.0, 0.2, 0.2)) -> None:
        self.lines.append((_v(a), _v(b), color))

    def point(self, p: npt.ArrayLike, color: RGB = (1.0, 1.0, 0.2)) -> None:
        self.points.append((_v(p), color))

    def text(self, p: npt.ArrayLike, s: str, color: RGB = (1.0, 1.0, 1.0)) -> None:
        self.texts.append((_v(p), s, color))

    def show_image(self, corners: npt.ArrayLike, rgb: npt.NDArray[np.uint8]) -> None:
        """Show ``rgb`` on the square with stage ``corners`` (see :attr:`image`)."""
        self.image = (np.asarray(corners, dtype=np.float64).reshape(3, 3), rgb)


def _v(p: npt.ArrayLike) -> Vec3:
    a = np.asarray(p, dtype=np.float64).reshape(3)
    return (float(a[0]), float(a[1]), float(a[2]))


@dataclass
class ToolContext:
    """What a tool may read and change.

    Attributes
    ----------
    transform : StageTransform
        World <-> stage; the grab tool replaces it.
    apply : callable(Command) -> Command
        Apply an edit through the project's history (undoable, journaled).
    scene : viewer.scene.Scene or None
        For the current time, selection, clipping planes and layers.
    workspace : analysis.project.Workspace-like or None
        ``.tracks`` and ``.annotations`` (read-only for tools).
    hud : Hud
    message : str
        Last user-facing message (e.g. why an edit was refused), shown on the wrist.
    history : History, optional
        For grouped edits (several objects classified at once).
    measuring : Measuring
        The measurement being placed (the measure tool puts its own here).
    on_undo, on_redo, on_reset_view : callable, optional
        What ``edit.undo``, ``edit.redo`` and ``view.reset`` do (the toolbox sets them).
    """

    transform: StageTransform
    apply: Callable[[Command], Any]
    scene: Any = None
    workspace: Any = None
    hud: Hud = field(default_factory=Hud)
    message: str = ""
    classes: list[str] = field(default_factory=lambda: ["default"])
    current_class: int = 0
    history: Any = None
    measuring: Measuring = field(default_factory=Measuring)
    on_undo: Callable[[], Any] | None = None
    on_redo: Callable[[], Any] | None = None
    on_reset_view: Callable[[], Any] | None = None
    #: Time-lapse playback (``viewer.actions.Playback``; ``time.play`` toggles it).
    playback: Any = None
    #: Switches to the next background and returns its name (``view.next_background``).
    next_background: Callable[[], str] | None = None
    #: Where a marker drag started (world zyx µm; ``annotations.move_marker``).
    drag_from_um: tuple[float, ...] | None = None
    #: The slice tool's plane (``slice.freeze`` toggles it, ``slice.remove`` removes
    #: it): while that tool is in hand, or while its frozen plane is in the scene.
    slice_plane: Any = None
    _notified: bool = field(default=False, repr=False)

    # -- viewer.actions.ActionContext ------------------------------------------------
    @property
    def tracks(self) -> Any:
        return getattr(self.workspace, "tracks", None)

    @property
    def annotations(self) -> Any:
        return getattr(self.workspace, "annotations", None)

    def execute(self, cmd: Command) -> Any:
        return self.apply(cmd)

    def group(self, name: str) -> AbstractContextManager[Any]:
        return self.history.group(name) if self.history is not None else nullcontext()

    def notify(self, text: str) -> None:
        self.message = text
        self._notified = True

    def undo(self) -> None:
        self._history(self.on_undo, "undo")

    def redo(self) -> None:
        self._history(self.on_redo, "redo")

    def _history(self, fn: Callable[[], Any] | None, what: str) -> None:
        if fn is None:
            return
        try:
            fn()
            self.message = what
        except InvalidEditError as exc:
            self.message = str(exc)

    def reset_view(self) -> None:
        if self.on_reset_view is not None:
            self.on_reset_view()
            self.message = "view reset"

    def measuring_changed(self) -> None:
        """The HUD redraws the points every frame: nothing to mark."""

    def run(self, action: str, pick: Pick | None = None) -> Any:
        """Run the registered action ``action`` (``viewer.actions``) with ``pick``.

        A command it applied becomes the wrist message; a refusal, the reason.
        """
        self._notified = False
        out = run_action(action, self, pick)
        if isinstance(out, Command) and not self._notified:
            self.message = out.description
        return out

    @property
    def current_time(self) -> float:
        return float(self.scene.current_time) if self.scene is not None else 0.0

    @current_time.setter
    def current_time(self, value: float) -> None:
        if self.scene is not None:
            self.scene.current_time = float(value)

    @property
    def class_name(self) -> str:
        return self.classes[self.current_class % len(self.classes)]

    def cycle_class(self, step: int = 1) -> str:
        self.current_class = (self.current_class + step) % len(self.classes)
        return self.class_name

    def try_apply(self, cmd: Command) -> bool:
        """Apply ``cmd``; a refused edit becomes :attr:`message` instead of an exception."""
        try:
            self.apply(cmd)
        except InvalidEditError as exc:
            self.message = str(exc)
            log.info("edit refused: %s", exc)
            return False
        self.message = cmd.description
        return True

    def tip_world(self, hand: HandInput, reach_m: float = 0.05) -> npt.NDArray[np.float64] | None:
        """The world point (zyx µm) at the hand's tip, or None when not tracked."""
        tip = hand.tip(reach_m)
        return None if tip is None else self.transform.stage_to_world(tip)


class Tool:
    """Base class of the XR tools (see the module docstring).

    Attributes
    ----------
    name : str
        Shown in the menu.
    hand : "left" or "right"
        The hand that uses the tool (the other hand holds the menu).
    """

    name = "tool"

    def __init__(self, hand: str = "right") -> None:
        self.hand = hand
        self._enabled = False

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        value = bool(value)
        if value == self._enabled:
            return
        self._enabled = value
        if value:
            self._on_enable()
        else:
            self._on_disable()

    def _on_enable(self) -> None:
        """Called when the tool becomes active."""

    def _on_disable(self) -> None:
        """Called when the tool is switched off: drop half-finished gestures."""

    def update(self, frame: InputFrame, ctx: ToolContext) -> None:
        """Advance one frame (only called while enabled)."""

    def draw_inactive(self, ctx: ToolContext) -> None:
        """Each frame while another tool is in hand: draw what this tool leaves in the
        scene (the slice tool's frozen plane). Nothing by default."""

    def the_hand(self, frame: InputFrame) -> HandInput:
        return frame.right if self.hand == "right" else frame.left
