"""``LabelTool``: proofread a labels layer in the headset (select, merge, delete, split,
paint and erase with a 3D ball).

The tool runs the label actions the desktop runs (``labels.*`` in :mod:`viewer.actions`)
with picks made the same way: the object the hand's ray hits first (``layer``, ``label``,
the world point where it is hit) or the hand's tip (``point_um``; no slice axis, so the
brush is a ball). Its :class:`viewer.actions.LabelEditing` (working copies, brush, change
events) is shared with the context while the tool is in use: the context's
``label_image`` and ``label_brush`` are the tool's.

Modes (thumbstick left / right): ``select``, ``paint``, ``erase``.

- select: trigger selects (adds to the selection, again on a selected object removes it;
  on background clears it); A / X merges the selected objects and the pointed one (with
  two split seeds placed: accepts the split); B / Y deletes; thumbstick click places a
  split seed where the ray hits the object;
- paint / erase: while the trigger is held, balls of the brush radius are stamped at the
  hand's tip whenever it moved half a radius (one undo step per trigger hold);
- thumbstick up / down: brush radius x 1.25 / 1.25.

Brush stamps off the frame thread (``writer``, :class:`StampWriter`): a stamp is still the
``labels.paint`` / ``labels.erase`` action, journaled before it is acknowledged, but it
runs on a thread of its own, in order, one trigger hold = one ``History.group`` (one undo
step), so the frame loop never waits for the disk (tens of ms a stamp). Meanwhile the
stamp is drawn from memory (:attr:`LabelTool.pending`, a ball at its place: in the
object's colour, or cleared for erase; faded until journaled) from the frame that
sampled the trigger, and kept until the frame loop sees the label surfaces draw the edit
(:meth:`LabelTool.edits_drawn`). A refused stamp (a locked id, a point outside the image)
is dropped from the drawing and its reason shown like any refusal (``ctx.message``). The
copies' change events reach the frame thread through psygnal's queue (the app creates
the :class:`LabelEditing` with ``thread=``): :meth:`LabelTool.poll` drains both, each
frame. Anything else that edits (select-mode actions, the wrist menu, undo) first waits
for the stamps queued (:meth:`LabelTool.flush`).

Lock, unlock, relabel and interpolate are wrist-menu entries (:func:`label_menu`): they
use the object the ray pointed at last (else the selection); interpolate fills the
brush's id across z between the section the ray last hit and the nearest other one.
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import psygnal

from analysis.edits import Command
from viewer.actions import ACTIONS, LabelEditing, Pick

from ..input._types import InputFrame
from ._annotate import LabelProbe
from ._base import Hud, Tool, ToolContext
from ._toolbox import MenuAction

__all__ = ["LABEL_MENU", "LabelTool", "PendingStamp", "StampWriter", "label_menu"]

#: The label actions the wrist menu offers (they have no button of their own).
LABEL_MENU = ("labels.lock", "labels.unlock", "labels.relabel", "labels.interpolate")

log = logging.getLogger(__name__)


@dataclass
class PendingStamp:
    """A brush stamp handed to the :class:`StampWriter`, drawn from memory until the
    label surfaces draw it.

    Attributes
    ----------
    serial : int
    centre_um : (z, y, x) float
        World µm.
    radius_um : float
    value : int
        The id painted; 0 erases.
    written : bool
        The action returned its command: applied and journaled (acknowledged).
    """

    serial: int
    centre_um: tuple[float, float, float]
    radius_um: float
    value: int
    written: bool = False


class StampWriter:
    """Runs brush strokes on one thread of its own, in the order given.

    ``begin`` opens a ``History.group`` (one undo step), ``stamp`` runs an action on a
    context of its own, ``end`` closes the group; each stamp's outcome comes back
    through :meth:`results` (the frame thread drains it). The group is entered and left
    on this thread, and nothing else edits while it works: the tool flushes it
    before any other edit.
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
        self._done: queue.Queue[tuple[int | None, bool, str]] = queue.Queue()
        self._thread: threading.Thread | None = None

    def _put(self, job: tuple[Any, ...] | None) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="label-stamps", daemon=True)
            self._thread.start()
        self._jobs.put(job)

    def begin(self, ctx: ToolContext, name: str) -> None:
        self._put(("begin", ctx, name))

    def stamp(self, serial: int, ctx: ToolContext, action: str, pick: Pick) -> None:
        self._put(("stamp", serial, ctx, action, pick))

    def end(self) -> None:
        self._put(("end",))

    def results(self) -> list[tuple[int | None, bool, str]]:
        """(serial or None for a group, ok, message) of what finished since the last call."""
        out = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                return out

    def flush(self) -> None:
        """Wait until every job given so far is done."""
        if self._thread is not None:
            self._jobs.join()

    def close(self) -> None:
        """Finish the jobs given, then stop the thread."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        group: AbstractContextManager[Any] | None = None
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if job[0] == "begin":
                    _, ctx, name = job
                    try:
                        cm = ctx.group(name)
                        cm.__enter__()
                        group = cm
                    except Exception as exc:  # the journal refused: stamps are steps
                        log.error("%s: %s", name, exc)
                        self._done.put((None, False, f"{name}: {exc}"))
                elif job[0] == "stamp":
                    _, serial, ctx, action, pick = job
                    try:
                        out = ctx.run(action, pick)
                    except Exception as exc:  # an I/O error: not journaled, not acknowledged
                        log.exception("%s failed", action)
                        out, ctx.message = None, f"{ACTIONS[action].verb}: {exc}"
                    self._done.put((serial, isinstance(out, Command), ctx.message))
                elif job[0] == "end" and group is not None:
                    cm, group = group, None
                    try:
                        cm.__exit__(None, None, None)
                    except Exception as exc:
                        log.error("closing the stroke: %s", exc)
                        self._done.put((None, False, f"stroke: {exc}"))
            finally:
                self._jobs.task_done()


class LabelTool(Tool):
    """Label proofreading with one hand (see the module docstring).

    Parameters
    ----------
    editing : LabelEditing
        Working copies, brush and change events (``LabelEditing(scene, project.edit_labels,
        project.workspace.labels)``).
    layer : str
        The labels layer edited.
    hand : "left" or "right", default: "right"
    background : bool, default: False
        Write brush stamps on a :class:`StampWriter` thread and draw them from memory
        meanwhile (the headset app with a project); False: each stamp is written on the
        caller's thread before :meth:`update` returns.

    Attributes
    ----------
    mode : {"select", "paint", "erase"}
    pointed : int or None
        The object the ray hits now.
    pending : list of PendingStamp
        Stamps drawn from memory (``background``), oldest first.
    """

    name = "labels"
    MODES = ("select", "paint", "erase")

    def __init__(
        self, editing: LabelEditing, layer: str, hand: str = "right", background: bool = False
    ) -> None:
        super().__init__(hand)
        self.writer = StampWriter() if background else None
        self.pending: list[PendingStamp] = []
        self._serial = 0
        self._unsaid: str | None = None  # a refusal not shown yet (polled without a ctx)
        self.editing = editing
        self.layer = layer
        self.mode = "select"
        self.pointed: int | None = None
        #: The last object the ray hit and where (the wrist menu's entries use it).
        self.last_hit: Pick | None = None
        self._probe: LabelProbe | None = None
        self._stroke: AbstractContextManager[Any] | None = None
        self._last: npt.NDArray[np.float64] | None = None
        self._x_armed = self._y_armed = True
        editing.changed.connect(self._on_change)

    @property
    def brush(self) -> Any:
        return self.editing.brush

    def _on_change(self, change: Any) -> None:
        if change.name == self.layer:
            self._probe = None  # the ray's level is read again from the edited copy

    def _on_disable(self) -> None:
        self._end_stroke()
        self.flush()
        self.pointed = None

    # ------------------------------------------------------------------ stamps
    def poll(self, ctx: ToolContext | None = None) -> None:
        """Each frame, on the frame thread: take the stamps written since the last call
        (a refused one leaves the drawing, its reason goes to ``ctx.message``), then
        deliver the change events they queued (``psygnal.emit_queued``: the views learn
        of every written stamp before they are drawn)."""
        if self.writer is None:
            return
        for serial, ok, message in self.writer.results():
            if serial is None:
                self._unsaid = message
                continue
            for st in self.pending:
                if st.serial == serial:
                    st.written = ok
                    if not ok:
                        self.pending.remove(st)
                        self._unsaid = message
                    break
        if ctx is not None and self._unsaid is not None:
            ctx.message, self._unsaid = self._unsaid, None  # a refusal, on the wrist
        psygnal.emit_queued()

    def flush(self, ctx: ToolContext | None = None) -> None:
        """Wait for the stamps queued (before another edit, at exit), then :meth:`poll`."""
        if self.writer is not None:
            self.writer.flush()
            self.poll(ctx)

    def edits_drawn(self) -> None:
        """The frame just synced draws every edit announced so far: the stamps written
        before it need no drawing of their own any more."""
        if any(st.written for st in self.pending):
            self.pending = [st for st in self.pending if not st.written]

    def close(self) -> None:
        """End the stroke and finish writing it (the app, before the project closes)."""
        self._end_stroke()
        if self.writer is not None:
            self.writer.close()
            self.poll()

    def _share(self, ctx: ToolContext) -> None:
        # The context edits labels through this tool's LabelEditing (viewer.actions looks
        # these two members up on any front end).
        if getattr(ctx, "label_brush", None) is not self.editing.brush:
            setattr(ctx, "label_image", self.editing.image)  # noqa: B010
            setattr(ctx, "label_brush", self.editing.brush)  # noqa: B010

    def _probe_for(self, ctx: ToolContext) -> LabelProbe | None:
        if self._probe is None:
            lay = ctx.scene.layers.get(self.layer) if ctx.scene is not None else None
            if lay is None or lay.data is None:
                return None
            self._probe = LabelProbe(lay.data)
        return self._probe

    # ------------------------------------------------------------------ frame
    def update(self, frame: InputFrame, ctx: ToolContext) -> None:
        self._share(ctx)
        h = self.the_hand(frame)
        x, y = h.thumbstick
        if self._x_armed and abs(x) > 0.7:
            self._set_mode(
                ctx, self.MODES[(self.MODES.index(self.mode) + (1 if x > 0 else -1)) % 3]
            )
            self._x_armed = False
        elif abs(x) < 0.3:
            self._x_armed = True
        if self._y_armed and abs(y) > 0.7:
            ctx.run("labels.brush_larger" if y > 0 else "labels.brush_smaller")
            self._y_armed = False
        elif abs(y) < 0.3:
            self._y_armed = True
        if self.mode == "select":
            self._select_mode(h, ctx)
        else:
            self._brush_mode(h, ctx)

    def _set_mode(self, ctx: ToolContext, mode: str) -> None:
        self._end_stroke()
        if mode != "select" and self.brush.seeds:
            ctx.run("labels.split_cancel")
        self.mode = mode
        ctx.message = f"labels: {mode}"

    def _select_mode(self, h: Any, ctx: ToolContext) -> None:
        self.pointed = None
        if h.aim is None:
            return
        ray = h.aim.ray()
        o = ctx.transform.stage_to_world(ray.origin)
        d = ctx.transform.stage_dir_to_world(ray.direction)
        probe = self._probe_for(ctx)
        hit = probe.first_label(o, d, max_um=3.0 / ctx.transform.scale) if probe else None
        end = np.asarray(ray.origin) + 2.0 * np.asarray(ray.direction)
        where: tuple[float, float, float] | None = None
        if hit is not None:
            self.pointed = int(hit[0])
            where = (float(hit[1][0]), float(hit[1][1]), float(hit[1][2]))
            self.last_hit = Pick(layer=self.layer, label=self.pointed, point_um=where)
            end = ctx.transform.world_to_stage(hit[1])
            seeds = len(self.brush.seeds)
            extra = f" · {seeds} seed(s)" if seeds else ""
            ctx.hud.text(end + np.array([0.0, 0.04, 0.0]), f"object {self.pointed}{extra}")
        ctx.hud.line(ray.origin, end, (1.0, 0.8, 0.3))
        for s in self.brush.seeds:
            lay = ctx.scene.layers.get(self.layer)
            lev = lay.data.levels[0]
            zyx = np.asarray(lev.translation[-3:]) + np.asarray(s) * np.asarray(lev.scale_um)
            ctx.hud.point(ctx.transform.world_to_stage(zyx), (1.0, 0.3, 0.3))
        # add: the trigger gathers objects to merge; on background it clears the selection.
        pick = Pick(
            layer=self.layer, label=self.pointed, point_um=where, add=self.pointed is not None
        )
        if (
            h.select.just_pressed
            or h.primary.just_pressed
            or h.secondary.just_pressed
            or h.thumbstick_click.just_pressed
        ):
            self.flush(ctx)  # the last stroke's stamps are written before this edit
        if h.select.just_pressed:
            ctx.run("labels.select", pick)
        if h.primary.just_pressed:
            ctx.run("labels.split" if len(self.brush.seeds) >= 2 else "labels.merge", pick)
        if h.secondary.just_pressed:
            ctx.run("labels.delete", pick)
        if h.thumbstick_click.just_pressed and where is not None:
            ctx.run("labels.split_seed", Pick(layer=self.layer, point_um=where))

    def _brush_mode(self, h: Any, ctx: ToolContext) -> None:
        tip = ctx.tip_world(h)
        if tip is None:
            return
        b = self.brush
        # What a stamp at the ball reads is decoded before the trigger is pressed.
        self.editing.brush_over(self.layer, (float(tip[0]), float(tip[1]), float(tip[2])))
        stage = ctx.transform.world_to_stage(tip)
        ctx.hud.point(stage, (1.0, 1.0, 1.0) if self.mode == "paint" else (1.0, 0.3, 0.3))
        what = f"paint {b.value}" if self.mode == "paint" else "erase"
        ctx.hud.text(stage + np.array([0.0, 0.04, 0.0]), f"{what} · r {b.radius_um:.3g} µm")
        if h.select.just_pressed:
            self._end_stroke()
            self._begin_stroke(ctx, f"{self.mode} stroke")
        if self._stroke is None:
            return
        if h.select.pressed:
            if self._last is None or np.linalg.norm(tip - self._last) >= b.radius_um / 2:
                action = "labels.paint" if self.mode == "paint" else "labels.erase"
                p = (float(tip[0]), float(tip[1]), float(tip[2]))
                if self.writer is None:
                    ctx.run(action, Pick(layer=self.layer, point_um=p))
                else:
                    self._serial += 1
                    value = int(b.value) if self.mode == "paint" else 0
                    self.pending.append(PendingStamp(self._serial, p, float(b.radius_um), value))
                    pick = Pick(layer=self.layer, point_um=p)
                    self.writer.stamp(self._serial, self._stamp_context(ctx), action, pick)
                self._last = np.asarray(tip, dtype=np.float64)
        else:
            self._end_stroke()

    def _begin_stroke(self, ctx: ToolContext, name: str) -> None:
        if self.writer is None:
            cm = ctx.group(name)
            cm.__enter__()
            self._stroke, self._last = cm, None
            return
        # The working copy is attached (the layer switched to read it) here, on the
        # frame thread, never on the writer's.
        if self.editing.edit_labels is not None:
            try:
                self.editing.image(self.layer)
            except Exception as exc:  # the stamps' actions refuse with the same reason
                log.info("labels %s: %s", self.layer, exc)
        self.writer.begin(ctx, name)
        self._stroke, self._last = nullcontext(), None

    def _stamp_context(self, ctx: ToolContext) -> ToolContext:
        """A context of the stamp's own for the writer's thread: the frame's HUD and
        message stay the frame thread's; the brush as it is now (its radius and id are
        what the pending drawing shows)."""
        sc = copy.copy(ctx)
        sc.hud = Hud()
        sc.message = ""
        setattr(sc, "label_image", self.editing.image)  # noqa: B010
        setattr(sc, "label_brush", copy.copy(self.brush))  # noqa: B010
        return sc

    def _end_stroke(self) -> None:
        cm, self._stroke, self._last = self._stroke, None, None
        if cm is None:
            return
        if self.writer is not None:
            self.writer.end()
        else:
            cm.__exit__(None, None, None)


def label_menu(tool: LabelTool, ctx: ToolContext) -> dict[str, MenuAction]:
    """Wrist-menu entries for :data:`LABEL_MENU`: on the object the tool's ray hit last
    (else the selected ones)."""

    def entry(action_id: str) -> MenuAction:
        title = ACTIONS[action_id].verb

        def go() -> str:
            tool._share(ctx)
            tool.flush(ctx)
            ctx.run(action_id, tool.last_hit or Pick(layer=tool.layer))
            return ctx.message

        return MenuAction(lambda: title, go)

    return {ACTIONS[a].verb: entry(a) for a in LABEL_MENU}
