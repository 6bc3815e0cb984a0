"""Tool base class, the per-frame context tools work in, and the HUD they draw into.

A tool is a plain object (napari-threedee's ``N3dComponent`` pattern):
``tool.enabled = True`` calls ``_on_enable``, ``False`` calls ``_on_disable``;
each frame :meth:`Tool.update` gets an :class:`InputFrame` (plain poses and
buttons) and a :class:`ToolContext`. Tools never change data: every edit is an
``analysis.edits.Command`` given to ``ctx.apply`` (undoable, journaled). View
state that is not data (the world -> stage transform, clipping planes, the
current time) is changed on the context directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.edits import Command
from analysis.errors import InvalidEditError

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
    """

    lines: list[tuple[Vec3, Vec3, RGB]] = field(default_factory=list)
    points: list[tuple[Vec3, RGB]] = field(default_factory=list)
    texts: list[tuple[Vec3, str, RGB]] = field(default_factory=list)

    def clear(self) -> None:
        self.lines.clear()
        self.points.clear()
        self.texts.clear()

    def line(self, a: npt.ArrayLike, b: npt.ArrayLike, color: RGB = (1.0, 0.2, 0.2)) -> None:
        self.lines.append((_v(a), _v(b), color))

    def point(self, p: npt.ArrayLike, color: RGB = (1.0, 1.0, 0.2)) -> None:
        self.points.append((_v(p), color))

    def text(self, p: npt.ArrayLike, s: str, color: RGB = (1.0, 1.0, 1.0)) -> None:
        self.texts.append((_v(p), s, color))


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
    """

    transform: StageTransform
    apply: Callable[[Command], Any]
    scene: Any = None
    workspace: Any = None
    hud: Hud = field(default_factory=Hud)
    message: str = ""
    classes: list[str] = field(default_factory=lambda: ["default"])
    current_class: int = 0

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

    def the_hand(self, frame: InputFrame) -> HandInput:
        return frame.right if self.hand == "right" else frame.left
