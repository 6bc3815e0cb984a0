"""Measure (distance / angle / path), count (class markers) and classify (objects) tools.

Points are taken at the hand's tip (5 cm ahead of the aim pose), converted to
world µm through the stage transform, and given to the actions the desktop runs
too (``annotations.measure_point``, ``annotations.add_marker``,
``objects.classify`` in ``viewer.actions``), which build the shared annotation
commands (``AddMeasurement``, ``AddMarker``, ``SetObjectClass``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from viewer.actions import MOVE_MARKER, Measuring, Pick, nearest_marker, stage_tolerance_um

from ..input._types import InputFrame
from ._base import Tool, ToolContext

__all__ = ["ClassifyTool", "CountTool", "LabelProbe", "MeasureTool"]

log = logging.getLogger(__name__)


def _pick_at(tip: npt.NDArray[np.float64]) -> Pick:
    return Pick(point_um=(float(tip[0]), float(tip[1]), float(tip[2])))


def _measure_value(kind: str, pts: npt.NDArray[np.float64]) -> float:
    """µm for distance / path, degrees for angle."""
    if kind == "angle":
        a, b = pts[0] - pts[1], pts[2] - pts[1]
        c = float(np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
        return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))
    if kind == "distance":
        pts = pts[[0, -1]]
    return float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())


class MeasureTool(Tool):
    """Trigger places points; the measurement is stored when complete.

    ``distance``: two points; ``angle``: three (the angle at the middle one);
    ``path``: any number, finished with the secondary button (B / Y). The
    primary button (A / X) cycles the kind. The live value, with the hand's
    current position as the next point, is shown next to the hand in µm.

    Attributes
    ----------
    kind : {"distance", "angle", "path"}
    points : list of (z, y, x) µm placed so far
    """

    name = "measure"
    KINDS = ("distance", "angle", "path")

    def __init__(self, kind: str = "distance", hand: str = "right") -> None:
        super().__init__(hand)
        if kind not in self.KINDS:
            raise ValueError(f"measure kind must be one of {self.KINDS}, got {kind!r}")
        self.measuring = Measuring(kind)

    @property
    def kind(self) -> str:
        return self.measuring.kind

    @property
    def points(self) -> list[tuple[float, float, float]]:
        return self.measuring.points

    def _on_disable(self) -> None:
        self.measuring.points = []

    def update(self, frame: InputFrame, ctx: ToolContext) -> None:
        h = self.the_hand(frame)
        ctx.measuring = self.measuring
        tip = ctx.tip_world(h)
        if h.primary.just_pressed:
            kind = self.KINDS[(self.KINDS.index(self.kind) + 1) % len(self.KINDS)]
            self.measuring = ctx.measuring = Measuring(kind)
        if tip is not None and h.select.just_pressed:
            ctx.run("annotations.measure_point", _pick_at(tip))
        if h.secondary.just_pressed:
            if self.points or tip is None:
                ctx.run("annotations.finish_measurement")
            else:  # nothing being placed: B / Y removes the measurement at the tip
                pick = replace(_pick_at(tip), tolerance_um=stage_tolerance_um(ctx.transform.scale))
                ctx.run("annotations.remove_measurement", pick)
        # Live value next to the hand.
        if tip is not None and h.aim is not None:
            live = [*self.points, tip]
            stage = ctx.transform.world_to_stage(np.asarray(live))
            for a, b in zip(stage[:-1], stage[1:], strict=True):
                ctx.hud.line(a, b, (1.0, 1.0, 0.3))
            for p in stage[:-1]:
                ctx.hud.point(p, (1.0, 1.0, 0.3))
            # The cursor: where the next point goes (shown before the first one too).
            ctx.hud.point(stage[-1], (1.0, 0.55, 0.1))
            label = self.kind
            if len(live) >= 2 and not (self.kind == "angle" and len(live) < 3):
                val = _measure_value(self.kind, np.asarray(live))
                label = f"{val:.2f}°" if self.kind == "angle" else f"{val:.2f} µm"
            ctx.hud.text(
                np.asarray(h.aim.position) + np.array([0.0, 0.06, 0.0]), label, (1.0, 1.0, 0.3)
            )


#: A trigger press this close (stage metres) to a marker picks it up to drag it.
DRAG_RADIUS_M = 0.01


class CountTool(Tool):
    """Trigger (or pinch) places a marker of the current class at the hand's tip; on
    a marker (within :data:`DRAG_RADIUS_M`) it picks it up: it moves where the
    trigger is released (``annotations.move_marker``, one undoable command).

    The thumbstick (left / right) or the primary button cycles the class;
    running counts per class are shown on the other hand's wrist.
    """

    name = "count"

    def __init__(self, hand: str = "right") -> None:
        super().__init__(hand)
        self._stick_armed = True
        self._drag_from: npt.NDArray[np.float64] | None = None

    def _on_disable(self) -> None:
        self._drag_from = None

    def update(self, frame: InputFrame, ctx: ToolContext) -> None:
        h = self.the_hand(frame)
        x = h.thumbstick[0]
        if self._stick_armed and abs(x) > 0.7:
            ctx.cycle_class(1 if x > 0 else -1)
            self._stick_armed = False
        elif abs(x) < 0.3:
            self._stick_armed = True
        if h.primary.just_pressed:
            ctx.cycle_class(1)
        tip = ctx.tip_world(h)
        if tip is not None and h.select.just_pressed:
            # On a marker (within DRAG_RADIUS_M): pick it up; elsewhere: a new marker.
            ann = getattr(ctx.workspace, "annotations", None)
            if nearest_marker(ann, tip, DRAG_RADIUS_M / ctx.transform.scale) is not None:
                self._drag_from = tip
            else:
                ctx.run("annotations.add_marker", _pick_at(tip))
        if self._drag_from is not None and tip is not None:
            ctx.hud.line(
                ctx.transform.world_to_stage(self._drag_from),
                ctx.transform.world_to_stage(tip),
                (1.0, 0.8, 0.3),
            )
            if not h.select.pressed:  # dropped: one undoable move
                pick = replace(_pick_at(tip), tolerance_um=DRAG_RADIUS_M / ctx.transform.scale)
                ctx.drag_from_um = tuple(float(v) for v in self._drag_from)
                try:
                    ctx.run(MOVE_MARKER, pick)
                finally:
                    ctx.drag_from_um = None
                    self._drag_from = None
        if tip is not None and h.secondary.just_pressed:
            # Remove the marker at the tip (within the stage pick tolerance; undo restores it).
            pick = replace(_pick_at(tip), tolerance_um=stage_tolerance_um(ctx.transform.scale))
            ctx.run("annotations.remove_marker", pick)
        ann = getattr(ctx.workspace, "annotations", None)
        color = (1.0, 1.0, 1.0)
        if ann is not None and ann.has_class(ctx.class_name):
            color = tuple(ann.class_color(ctx.class_name))
        if h.aim is not None and tip is not None:
            ctx.hud.point(ctx.transform.world_to_stage(tip), color)
        wrist = frame.left if self.hand == "right" else frame.right
        if wrist.aim is not None and ann is not None:
            counts = ann.counts()
            lines = [f"{'>' if c == ctx.class_name else ' '} {c}: {n}" for c, n in counts.items()]
            if ctx.class_name not in counts:
                lines.append(f"> {ctx.class_name}: 0")
            ctx.hud.text(
                np.asarray(wrist.aim.position) + np.array([0.0, 0.08, 0.0]), "\n".join(lines)
            )


class LabelProbe:
    """The label id under a world ray, from one pyramid level held in memory.

    Parameters
    ----------
    source : VolumeSource
        Integer labels (``Labels.data``).
    voxel_budget : int, default: 2**22
        The finest level with at most this many voxels is read once, lazily.
    """

    def __init__(self, source: Any, voxel_budget: int = 2**22) -> None:
        self.source = source
        self.voxel_budget = voxel_budget
        self._arr: npt.NDArray[Any] | None = None

    def _load(self) -> None:
        levels = self.source.levels
        lev = next(
            (i for i, lv in enumerate(levels) if int(np.prod(lv.shape[-3:])) <= self.voxel_budget),
            len(levels) - 1,
        )
        level = self.source.levels[lev]
        region = tuple(slice(0, 1) if ax in ("t", "c") else slice(None) for ax in self.source.axes)
        arr = np.asarray(self.source.read(lev, region))
        self._arr = arr.reshape(arr.shape[-3:])
        self._scale = np.asarray(level.scale_um, dtype=np.float64)
        self._origin = np.asarray(level.translation[-3:], dtype=np.float64)

    def first_label(
        self, origin_um: npt.ArrayLike, direction: npt.ArrayLike, max_um: float
    ) -> tuple[int, npt.NDArray[np.float64]] | None:
        """First non-zero label along the ray (zyx µm), with where it was hit."""
        if self._arr is None:
            self._load()
        assert self._arr is not None
        step = float(self._scale.min()) / 2
        n = int(min(max_um / step, 20000))
        d = np.asarray(direction, dtype=np.float64)
        d = d / np.linalg.norm(d)
        pts = np.asarray(origin_um, dtype=np.float64) + np.outer(np.arange(n) * step, d)
        idx = np.rint((pts - self._origin) / self._scale).astype(np.int64)
        inside = np.all((idx >= 0) & (idx < np.asarray(self._arr.shape)), axis=1)
        if not inside.any():
            return None
        rows = np.nonzero(inside)[0]
        vals = self._arr[tuple(idx[rows].T)]
        hit = np.nonzero(vals)[0]
        if not len(hit):
            return None
        i = rows[hit[0]]
        return int(vals[hit[0]]), pts[i]


class ClassifyTool(Tool):
    """Point at an object (labels layer) and pull the trigger to give it the current class.

    Runs ``objects.classify`` (``SetObjectClass(label, class, layer)``): the training
    examples for the object classifier. The thumbstick / primary button cycles the class.
    """

    name = "classify"

    def __init__(self, probe: LabelProbe | None, layer: str, hand: str = "right") -> None:
        super().__init__(hand)
        self.probe = probe
        self.layer = layer
        self.pointed: int | None = None
        self._stick_armed = True

    def update(self, frame: InputFrame, ctx: ToolContext) -> None:
        h = self.the_hand(frame)
        x = h.thumbstick[0]
        if self._stick_armed and abs(x) > 0.7:
            ctx.cycle_class(1 if x > 0 else -1)
            self._stick_armed = False
        elif abs(x) < 0.3:
            self._stick_armed = True
        if h.primary.just_pressed:
            ctx.cycle_class(1)
        self.pointed = None
        if h.aim is None or self.probe is None:
            return
        ray = h.aim.ray()
        o = ctx.transform.stage_to_world(ray.origin)
        d = ctx.transform.stage_dir_to_world(ray.direction)
        hit = self.probe.first_label(o, d, max_um=3.0 / ctx.transform.scale)
        end = np.asarray(ray.origin) + 2.0 * np.asarray(ray.direction)
        if hit is not None:
            self.pointed, where = hit
            end = ctx.transform.world_to_stage(where)
            ctx.hud.text(
                end + np.array([0.0, 0.04, 0.0]), f"object {self.pointed} -> {ctx.class_name}"
            )
        ctx.hud.line(ray.origin, end, (0.4, 1.0, 0.4))
        if self.pointed is not None and h.select.just_pressed:
            ctx.run("objects.classify", Pick(layer=self.layer, label=self.pointed))
