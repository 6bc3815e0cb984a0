"""What an action sees of a front end: ``ActionContext`` (a protocol) and ``Measuring``."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["MEASURE_POINTS", "ActionContext", "Measuring"]

Vec3 = tuple[float, float, float]

#: Points a measurement kind collects before it is recorded (path: open-ended).
MEASURE_POINTS: dict[str, int | None] = {"distance": 2, "angle": 3, "path": None}


@dataclass
class Measuring:
    """A measurement being placed: its kind and the points so far (world µm)."""

    kind: str = "distance"
    points: list[Vec3] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        need = MEASURE_POINTS.get(self.kind)
        return need is not None and len(self.points) >= need


class ActionContext(Protocol):
    """The front end as actions see it (the desktop session, the headset's tool context).

    Attributes
    ----------
    scene : viewer.scene.Scene
        Selection (``scene.selection``), current time, layers.
    tracks : TrackGraph or None
    annotations : Annotations
    class_name : str
        The class new markers and classified objects get.
    measuring : Measuring
        The measurement being placed.

    A front end with views to move may also define ``show_point(zyx)``: centre every
    view on a world point (``tracks.show``, ``tracks.next_unreviewed``; the desktop
    does, the headset has nothing to move). See :func:`viewer.actions.show_point`.
    """

    scene: Any
    measuring: Measuring

    @property
    def tracks(self) -> Any: ...

    @property
    def annotations(self) -> Any: ...

    @property
    def class_name(self) -> str: ...

    def execute(self, cmd: Any) -> Any:
        """Apply a command through the history (raises ``InvalidEditError`` when refused)."""

    def group(self, name: str) -> AbstractContextManager[Any]:
        """Fold the commands applied inside into one undo step."""
        ...

    def undo(self) -> Any: ...

    def redo(self) -> Any: ...

    def notify(self, text: str) -> None:
        """Show a one-line message (status bar, wrist)."""

    def reset_view(self) -> None: ...

    def measuring_changed(self) -> None:
        """The measurement being placed changed (its points are drawn)."""
