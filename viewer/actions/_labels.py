"""Label edit actions: select, merge, split (seeds, preview, accept), delete, relabel, lock,
unlock, paint, erase, fill, interpolate, new id, pick id, brush size.

Every front end turns its input into the same :class:`Pick`: ``layer`` and ``label`` (the
object under the cursor or the hand), ``point_um`` (world µm) and, for a slice view,
``axis`` (the axis the slice is across: its brush is a disc in that plane; without it the
brush is a 3D ball). The actions convert world points to level-0 voxels of the labels
layer (:func:`label_voxel`) and build :mod:`analysis.edits` label commands applied through
``ctx.execute`` (one history, journaled before acknowledged).

A front end that edits labels gives its :class:`ActionContext` two more members (looked up
with ``getattr``, like ``show_point``; a context without them refuses label edits):

- ``label_image(layer) -> analysis.edits.EditableLabels``: the editable label image of a
  labels layer (the desktop and the headset: the project's working copy);
- ``label_brush``: a :class:`LabelBrush` (value, radius, preserve, split seeds and
  preview); ``label_brush_changed()`` is called, when defined, after the actions change it
  (the split preview is drawn from it).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from psygnal import Signal

from analysis.edits import (
    Command,
    DeleteLabels,
    EditableLabels,
    FillLabel,
    InterpolateLabel,
    LabelAtom,
    LabelChange,
    LockLabels,
    MergeLabels,
    PaintBall,
    RelabelLabel,
    SplitLabel,
    UnlockLabels,
    brush_region,
    locked_ids,
    object_sections,
    shown_at,
)
from analysis.errors import InvalidEditError, ParameterError

from ._context import ActionContext
from ._registry import ACTIONS, Action
from ._select import Pick

__all__ = ["LabelBrush", "LabelEditing", "label_voxel", "labels_layer_name", "selected_labels"]

log = logging.getLogger(__name__)

Voxel = tuple[int, int, int]

#: Half the edge (µm) of the box a 3D fill (without a slice plane) is limited to.
FILL_HALF_BOX_UM = 10.0
#: Brush radius limits (µm) of ``labels.brush_larger`` / ``labels.brush_smaller``.
BRUSH_MIN_UM, BRUSH_MAX_UM = 0.01, 1000.0


@dataclass
class LabelBrush:
    """The label tool's state on one front end.

    Attributes
    ----------
    value : int, default: 1
        The id the brush paints and fill fills.
    radius_um : float, default: 1.0
        Brush radius (disc on a slice view, ball in 3D).
    preserve : bool, default: False
        Paint only background and the brush's own id (never overwrite other objects).
    split_id : int or None
        The object being split; ``seeds`` its seeds (level-0 voxels z, y, x).
    preview : LabelAtom or None
        The split the seeds make, computed but not applied: the voxels that change (the
        parts after the first); ``preview_ids`` the ids of the parts in seed order,
        ``preview_box`` the object's bounding box (level-0 voxels).
    """

    value: int = 1
    radius_um: float = 1.0
    preserve: bool = False
    split_layer: str | None = None
    split_id: int | None = None
    seeds: list[Voxel] = field(default_factory=list)
    preview: LabelAtom | None = None
    preview_ids: list[int] = field(default_factory=list)
    preview_box: tuple[slice, ...] | None = None

    def clear_split(self) -> None:
        self.split_layer = self.split_id = None
        self.seeds = []
        self.preview = None
        self.preview_ids = []
        self.preview_box = None


class LabelEditing:
    """A front end's label editing: working copies, the brush, change events.

    Both front ends keep one (the desktop session, the headset's labels tool) and expose
    :meth:`image` as their context's ``label_image`` and :attr:`brush` as its
    ``label_brush``.

    - The editable image of a labels layer comes from ``edit_labels(name)`` (the project's
      working copy, ``docs/design/0003-label-edits.md``). When it is first used (or at
      once, for copies the project already holds) the layer is switched to read the copy,
      so every view draws the edited voxels from then on.
    - Each write of an edit (apply, undo, redo) is announced by the copy's ``changed``
      event (:class:`analysis.edits.LabelChange`: ids and the chunk regions written per
      level); it is passed on as :attr:`changed` (a slice view re-reads only those regions)
      and as the layer's ``labels_update(ids)`` (the 3D view re-meshes those objects). A
      change of the id mapping (a merge or a table: ``LabelChange.remapped``, no voxel
      written) is passed on with every level's whole extent as its region.

    Parameters
    ----------
    scene : viewer.scene.Scene
    edit_labels : callable(name) -> EditableLabels, or None
        None: label edits are refused (no project).
    images : mapping name -> EditableLabels, optional
        Copies that exist already (a reopened project's ``workspace.labels``).
    lock : callable() -> context manager, optional
        Held while a layer's data are replaced (the desktop's render lock).
    thread : threading.Thread, optional
        Deliver the copies' change events on this thread (psygnal's queued connection:
        an edit written on another thread is announced when ``thread`` calls
        ``psygnal.emit_queued()``; the headset's frame loop, whose stamps are written on
        a thread of their own). None: on the thread that wrote.

    Events
    ------
    changed(LabelChange)
        The voxels of a labels layer changed (after the write).
    brush_changed()
        The brush (id, radius) or the split seeds and preview changed.
    """

    changed = Signal(object)
    brush_changed = Signal()

    def __init__(
        self,
        scene: Any,
        edit_labels: Callable[[str], EditableLabels] | None,
        images: Mapping[str, EditableLabels] | None = None,
        lock: Callable[[], Any] | None = None,
        thread: Any = None,
    ) -> None:
        self.scene = scene
        self.edit_labels = edit_labels
        self.brush = LabelBrush()
        self._lock = lock
        self._thread = thread
        self._images: dict[str, EditableLabels] = {}
        for name, img in (images or {}).items():
            self._attach(name, img)

    def image(self, name: str) -> EditableLabels:
        """The editable label image of labels layer ``name`` (made on first use)."""
        got = self._images.get(name)
        if got is not None:
            return got
        if self.edit_labels is None:
            raise InvalidEditError(
                "label edits are kept in a project: save one first (File > Save project as…)"
            )
        try:
            img = self.edit_labels(name)
        except ParameterError as exc:
            raise InvalidEditError(str(exc)) from exc
        self._attach(name, img)
        return img

    def _attach(self, name: str, img: EditableLabels) -> None:
        self._images[name] = img
        lay = self.scene.layers.get(name)
        src = getattr(img, "source", None)
        if getattr(lay, "kind", None) == "labels" and src is not None and lay.data is not src:
            log.info("labels %s: drawn from the project's working copy", name)
            with self._locked():
                lay.data = src
        event = getattr(img, "changed", None)
        if event is not None:
            event.connect(self._on_change, thread=self._thread)

    def _locked(self) -> Any:
        return self._lock() if self._lock is not None else contextlib.nullcontext()

    def brush_over(
        self, name: str, point_um: Sequence[float] | None, axis: int | None = None
    ) -> None:
        """The brush hovers at world ``point_um`` over labels layer ``name`` (the desktop's
        brush circle under the mouse, ``axis``: its slice's; the headset's ball at the
        hand's tip): the layer's working copy decodes, in the background, what the
        brush's next stamps read (:func:`analysis.edits.brush_region`), so that a stamp
        there does not wait for it. Nothing for a layer with no working copy yet (the
        first stamp makes it) or outside the image."""
        img = self._images.get(name)
        prefetch = getattr(img, "prefetch", None)
        lay = self.scene.layers.get(name)
        if img is None or prefetch is None or lay is None or point_um is None:
            return
        v = label_voxel(lay, point_um)
        if v is None:
            return
        prefetch(brush_region(v, self.brush.radius_um, img.scale_um, img.shape, axis))

    def _on_change(self, change: LabelChange) -> None:
        lay = self.scene.layers.get(change.name)
        if getattr(lay, "kind", None) == "labels":
            with self._locked():
                if change.remapped is not None:
                    # An id mapping change (merge, table) wrote no voxel and names no
                    # region: the streamed 3D views re-read the resident bricks holding
                    # one of its ids (drawn through the mapping; the old meshes stay until
                    # the new ones land).
                    lay.notify_edited(sorted(change.ids), remapped=True)
                else:
                    lay.notify_edited(sorted(change.ids), change.boxes)
        self.changed.emit(change)

    def close(self) -> None:
        for img in self._images.values():
            event = getattr(img, "changed", None)
            if event is not None:
                event.disconnect(self._on_change)
        self._images.clear()


# ---------------------------------------------------------------------- helpers
def labels_layer_name(ctx: ActionContext, pick: Pick) -> str | None:
    """The labels layer an edit works on: the pick's, the selection's, else the first."""
    if pick.layer:
        return pick.layer
    sel = ctx.scene.selection
    if sel.layer:
        return str(sel.layer)
    for lay in ctx.scene.layers:
        if getattr(lay, "kind", None) == "labels":
            return str(lay.name)
    return None


def selected_labels(ctx: ActionContext, layer: str | None = None) -> list[int]:
    """The selected objects (non-zero ids) of ``layer`` (any: the selection's layer)."""
    sel = ctx.scene.selection
    if layer is not None and sel.layer != layer:
        return []
    return [int(i) for i in sel.label_ids if int(i) > 0]


def label_voxel(layer: Any, zyx_um: Sequence[float]) -> Voxel | None:
    """Level-0 voxel (z, y, x) of labels layer ``layer`` at world ``zyx_um`` (None: outside)."""
    src = layer.data
    if src is None:
        return None
    lev = src.levels[0]
    idx = np.rint(
        (np.asarray(zyx_um, dtype=np.float64) - np.asarray(lev.translation[-3:], np.float64))
        / np.asarray(lev.scale_um, np.float64)
    ).astype(np.int64)
    shape = np.asarray(lev.shape[-3:])
    if (idx < 0).any() or (idx >= shape).any():
        return None
    return (int(idx[0]), int(idx[1]), int(idx[2]))


def _brush(ctx: ActionContext) -> LabelBrush:
    b = getattr(ctx, "label_brush", None)
    if not isinstance(b, LabelBrush):
        raise InvalidEditError("this view cannot edit labels")
    return b


def _brush_changed(ctx: ActionContext) -> None:
    fn = getattr(ctx, "label_brush_changed", None)
    if fn is not None:
        fn()


def _image(ctx: ActionContext, layer: str) -> Any:
    fn = getattr(ctx, "label_image", None)
    if fn is None:
        raise InvalidEditError("this view cannot edit labels")
    return fn(layer)


def _layer(ctx: ActionContext, pick: Pick) -> tuple[str, Any]:
    name = labels_layer_name(ctx, pick)
    lay = ctx.scene.layers.get(name) if name else None
    if lay is None or getattr(lay, "kind", None) != "labels":
        raise InvalidEditError("no labels layer to edit")
    return str(name), lay


def _voxel(lay: Any, pick: Pick) -> Voxel:
    if pick.point_um is None:
        raise InvalidEditError("point at a place first")
    v = label_voxel(lay, pick.point_um)
    if v is None:
        raise InvalidEditError(f"the point lies outside the label image {lay.name!r}")
    return v


def _ids(ctx: ActionContext, layer: str, pick: Pick) -> list[int]:
    """The selected objects of ``layer``, then the picked one (if another)."""
    ids = selected_labels(ctx, layer)
    if pick.label and int(pick.label) not in ids and (pick.layer in (None, layer)):
        ids.append(int(pick.label))
    return ids


def _select_ids(ctx: ActionContext, layer: str, ids: Sequence[int]) -> None:
    ctx.scene.selection.update({"layer": layer, "label_ids": [int(i) for i in ids]})


def _can_edit(ctx: ActionContext) -> str | None:
    if getattr(ctx, "label_image", None) is None or getattr(ctx, "label_brush", None) is None:
        return "this view cannot edit labels"
    if not any(getattr(lay, "kind", None) == "labels" for lay in ctx.scene.layers):
        return "no labels layer is open"
    return None


def _needs_objects(n: int) -> Any:
    def cond(ctx: ActionContext, pick: Pick) -> str | None:
        why = _can_edit(ctx)
        if why:
            return why
        layer = labels_layer_name(ctx, pick)
        if layer is None or len(_ids(ctx, layer, pick)) < n:
            return (
                "select an object (click it)"
                if n == 1
                else "select two objects (click one, Ctrl+click the other)"
            )
        return None

    return cond


def _needs_point(ctx: ActionContext, pick: Pick) -> str | None:
    return _can_edit(ctx) or (None if pick.point_um is not None else "point at a place first")


# ---------------------------------------------------------------------- selection
@ACTIONS.action(
    "labels.select",
    "Select object",
    "select the object under the pointer (add: keep the selected ones, to merge); "
    "background clears the selection",
    mouse="click an object on a slice (Ctrl+click: add)",
    headset="labels tool: trigger (the object the ray hits)",
)
def _select(ctx: ActionContext, pick: Pick) -> int | None:
    sel = ctx.scene.selection
    if not pick.label or not pick.layer:
        if not pick.add:
            sel.update({"label_ids": []})
        return None
    ids = selected_labels(ctx, pick.layer) if pick.add else []
    if int(pick.label) in ids:
        ids.remove(int(pick.label))  # Ctrl+click on a selected object deselects it
    else:
        ids.append(int(pick.label))
    _select_ids(ctx, pick.layer, ids)
    return int(pick.label)


# ---------------------------------------------------------------------- whole objects
@ACTIONS.action(
    "labels.merge",
    "Merge objects",
    "merge the selected objects (and the pointed one) into one id, the smallest",
    shortcut="Shift+M",
    headset="labels tool: A / X (the selected objects and the pointed one)",
    enabled=_needs_objects(2),
)
def _merge(ctx: ActionContext, pick: Pick) -> Command:
    layer, _ = _layer(ctx, pick)
    ids = _ids(ctx, layer, pick)
    _image(ctx, layer)
    cmd = MergeLabels(layer, ids)
    ctx.execute(cmd)
    _select_ids(ctx, layer, [cmd.into] if cmd.into is not None else [])
    ctx.notify(f"merged {len(set(ids))} objects of {layer} into {cmd.into}; undo restores them")
    return cmd


def _pointed_or_selected(ctx: ActionContext, layer: str, pick: Pick) -> list[int]:
    """The pointed object, else the selected ones (of ``layer``)."""
    if pick.label and pick.layer in (None, layer):
        return [int(pick.label)]
    return selected_labels(ctx, layer)


@ACTIONS.action(
    "labels.delete",
    "Delete objects",
    "set every voxel of the pointed object (else the selected ones) to background",
    shortcut="Ctrl+Delete",
    headset="labels tool: B / Y",
    enabled=_needs_objects(1),
)
def _delete(ctx: ActionContext, pick: Pick) -> Command:
    layer, _ = _layer(ctx, pick)
    ids = _pointed_or_selected(ctx, layer, pick)
    _image(ctx, layer)
    cmd = DeleteLabels(layer, ids)
    ctx.execute(cmd)
    _select_ids(ctx, layer, [])
    ctx.notify(f"deleted {len(ids)} object(s) of {layer} ({cmd.n_voxels} voxels); undo restores")
    return cmd


@ACTIONS.action(
    "labels.relabel",
    "Relabel object",
    "give the pointed object (else the selected one) a new id, one above the largest",
    shortcut="Shift+R",
    headset="labels tool: wrist menu 'relabel' (the pointed object, else the selected one)",
    enabled=_needs_objects(1),
)
def _relabel(ctx: ActionContext, pick: Pick) -> Command:
    layer, _ = _layer(ctx, pick)
    ids = _pointed_or_selected(ctx, layer, pick)
    if len(ids) != 1:
        raise InvalidEditError(f"relabel one object at a time ({len(ids)} selected)")
    _image(ctx, layer)
    cmd = RelabelLabel(layer, ids[0])
    ctx.execute(cmd)
    _select_ids(ctx, layer, [cmd.to] if cmd.to is not None else [])
    ctx.notify(f"object {ids[0]} of {layer} is now {cmd.to}; undo restores")
    return cmd


def _lock_cmd(lock: bool) -> Any:
    def fn(ctx: ActionContext, pick: Pick) -> Command:
        layer, _ = _layer(ctx, pick)
        ids = _pointed_or_selected(ctx, layer, pick)
        img = _image(ctx, layer)
        cmd = (LockLabels if lock else UnlockLabels)(layer, ids)
        ctx.execute(cmd)
        now = sorted(locked_ids(img))
        shown = ", ".join(str(i) for i in now[:8]) + (" ..." if len(now) > 8 else "")
        verb = "locked" if lock else "unlocked"
        ctx.notify(
            f"{verb} {', '.join(str(i) for i in cmd.changed or [])} of {layer}"
            f" (locked now: {shown or 'none'})"
        )
        return cmd

    return fn


ACTIONS.register(
    Action(
        "labels.lock",
        "Lock objects",
        "lock the pointed object (else the selected ones): paint, erase, fill and "
        "interpolate leave its voxels alone, merge, delete, split and relabel refuse it",
        shortcut="Shift+L",
        headset="labels tool: wrist menu 'lock' (the pointed object, else the selected ones)",
        enabled=_needs_objects(1),
        fn=_lock_cmd(True),
    )
)
ACTIONS.register(
    Action(
        "labels.unlock",
        "Unlock objects",
        "unlock the pointed object (else the selected ones)",
        shortcut="Shift+U",
        headset="labels tool: wrist menu 'unlock'",
        enabled=_needs_objects(1),
        fn=_lock_cmd(False),
    )
)


# ---------------------------------------------------------------------- split
@ACTIONS.action(
    "labels.split_seed",
    "Split: place seed",
    "place a split seed on the object under the pointer (the selected one); from two seeds "
    "on the preview shows the parts",
    mouse="Shift+X, then click seeds on the object",
    headset="labels tool: thumbstick click (where the ray hits the object)",
    enabled=_needs_point,
)
def _split_seed(ctx: ActionContext, pick: Pick) -> list[int]:
    b = _brush(ctx)
    layer, lay = _layer(ctx, pick)
    seed = _voxel(lay, pick)
    img = _image(ctx, layer)
    value = shown_at(img, seed)  # the object shown there (a merged object is one)
    if value == 0:
        raise InvalidEditError(f"the seed {seed} lies on background, not on an object")
    if b.split_id is not None and (b.split_layer, b.split_id) != (layer, value):
        raise InvalidEditError(
            f"the seed lies in object {value}, not in object {b.split_id} being split "
            "(Escape starts again)"
        )
    if seed in b.seeds:
        raise InvalidEditError(f"a seed is already at {seed}")
    b.split_layer, b.split_id = layer, value
    b.seeds.append(seed)
    _select_ids(ctx, layer, [value])
    if len(b.seeds) >= 2:
        cmd = SplitLabel(layer, value, b.seeds)
        b.preview = cmd.preview(img)
        b.preview_ids = cmd.result_ids
        b.preview_box = cmd.box
        ctx.notify(
            f"split preview of {value}: {len(b.seeds)} parts; accept with Ctrl+Return, "
            "Escape cancels"
        )
    else:
        ctx.notify(f"split {value}: seed 1 placed, place another")
    _brush_changed(ctx)
    return [int(v) for v in seed]


@ACTIONS.action(
    "labels.split",
    "Split: accept",
    "split the object at its seeds as the preview shows (a watershed on the object's "
    "distance transform); the first seed's part keeps the id",
    shortcut="Ctrl+Return",
    headset="labels tool: A / X once two seeds are placed",
    enabled=lambda ctx, pick: (
        _can_edit(ctx)
        or (None if len(_brush(ctx).seeds) >= 2 else "place two seeds on the object first")
    ),
)
def _split(ctx: ActionContext, pick: Pick) -> Command:
    b = _brush(ctx)
    assert b.split_layer is not None and b.split_id is not None
    cmd = SplitLabel(b.split_layer, b.split_id, b.seeds)
    ctx.execute(cmd)
    layer = b.split_layer
    b.clear_split()
    _select_ids(ctx, layer, cmd.result_ids)
    _brush_changed(ctx)
    ctx.notify(f"split into {', '.join(str(i) for i in cmd.result_ids)}; undo restores")
    return cmd


@ACTIONS.action(
    "labels.split_cancel",
    "Split: cancel",
    "drop the split seeds and preview (the headset: switching the labels tool's mode)",
)
def _split_cancel(ctx: ActionContext, pick: Pick) -> None:
    b = getattr(ctx, "label_brush", None)
    if isinstance(b, LabelBrush) and b.seeds:
        b.clear_split()
        _brush_changed(ctx)
        ctx.notify("split cancelled")


# ---------------------------------------------------------------------- brush
def _stamp(ctx: ActionContext, pick: Pick, value: int) -> Command:
    b = _brush(ctx)
    layer, lay = _layer(ctx, pick)
    center = _voxel(lay, pick)
    _image(ctx, layer)
    erase_id = None
    if value == 0 and b.preserve:
        erase_id = b.value
    cmd = PaintBall(
        layer,
        center,
        b.radius_um,
        value,
        preserve=b.preserve and value != 0,
        erase_id=erase_id,
        axis=pick.axis,
    )
    ctx.execute(cmd)
    return cmd


@ACTIONS.action(
    "labels.paint",
    "Paint",
    "paint the brush's id in a disc (slice view) or ball (3D) of the brush radius at the "
    "pointer; a stroke (press, drag, release) is one undo step",
    mouse="B, then drag on a slice ([ and ] size the brush)",
    headset="labels tool, paint mode: hold the trigger (a ball at the hand's tip)",
    enabled=_needs_point,
)
def _paint(ctx: ActionContext, pick: Pick) -> Command:
    return _stamp(ctx, pick, _brush(ctx).value)


@ACTIONS.action(
    "labels.erase",
    "Erase",
    "set a disc (slice view) or ball (3D) of the brush radius to background (preserve: "
    "only the brush's id); a stroke is one undo step",
    mouse="E, then drag on a slice",
    headset="labels tool, erase mode: hold the trigger",
    enabled=_needs_point,
)
def _erase(ctx: ActionContext, pick: Pick) -> Command:
    return _stamp(ctx, pick, 0)


@ACTIONS.action(
    "labels.fill",
    "Fill",
    "fill the connected region under the pointer with the brush's id: within the slice on "
    "a slice view, within a 20 µm box in 3D",
    mouse="Shift+F, then click on a slice",
    enabled=_needs_point,
)
def _fill(ctx: ActionContext, pick: Pick) -> Command:
    b = _brush(ctx)
    layer, lay = _layer(ctx, pick)
    seed = _voxel(lay, pick)
    img = _image(ctx, layer)
    shape = img.shape
    if pick.axis is not None:
        lo = [0, 0, 0]
        hi = list(shape)
        lo[pick.axis], hi[pick.axis] = seed[pick.axis], seed[pick.axis] + 1
    else:
        half = [int(math.ceil(FILL_HALF_BOX_UM / s)) for s in img.scale_um]
        lo = [max(0, c - h) for c, h in zip(seed, half, strict=True)]
        hi = [min(n, c + h + 1) for c, h, n in zip(seed, half, shape, strict=True)]
    cmd = FillLabel(layer, seed, b.value, [*lo, *hi])
    ctx.execute(cmd)
    return cmd


@ACTIONS.action(
    "labels.interpolate",
    "Interpolate sections",
    "fill the brush's object between the pointed slice and its nearest other painted section "
    "across the slice (z in 3D), blending the two sections' shapes (signed distances); only "
    "background is filled",
    shortcut="Shift+P",
    headset="labels tool: wrist menu 'interpolate' (across z, at the section the ray hit last)",
    enabled=_needs_point,
)
def _interpolate(ctx: ActionContext, pick: Pick) -> Command:
    b = _brush(ctx)
    layer, lay = _layer(ctx, pick)
    here = _voxel(lay, pick)
    img = _image(ctx, layer)
    axis = pick.axis if pick.axis is not None else 0
    oid = int(b.value)
    if oid == 0:
        raise InvalidEditError("give the brush an object id first (Shift+I or Alt+N)")
    k = here[axis]
    sections = object_sections(img, oid, axis)
    name = "zyx"[axis]
    if k not in sections:
        raise InvalidEditError(f"object {oid} has no voxels on this slice ({name}={k}): paint it")
    i = sections.index(k)
    gaps = [
        s
        for s in (
            sections[i - 1] if i > 0 else None,
            sections[i + 1] if i + 1 < len(sections) else None,
        )
        if s is not None and abs(s - k) >= 2
    ]
    if not gaps:
        raise InvalidEditError(
            f"object {oid} has no other section across {name} with a gap to {name}={k}"
        )
    other = min(gaps, key=lambda s: (abs(s - k), s))
    cmd = InterpolateLabel(layer, oid, axis, k, other)
    ctx.execute(cmd)
    ctx.notify(
        f"interpolated {oid} between {name}={min(k, other)} and {max(k, other)} "
        f"({cmd.n_voxels} voxels); undo removes them"
    )
    return cmd


@ACTIONS.action(
    "labels.new_id",
    "New id",
    "give the brush a new id (one above the largest in the label image)",
    shortcut="Alt+N",
    enabled=lambda ctx, pick: _can_edit(ctx),
)
def _new_id(ctx: ActionContext, pick: Pick) -> int:
    b = _brush(ctx)
    layer, _ = _layer(ctx, pick)
    b.value = int(_image(ctx, layer).max_id()) + 1
    _brush_changed(ctx)
    ctx.notify(f"brush id {b.value} (new)")
    return b.value


@ACTIONS.action(
    "labels.pick_id",
    "Pick id",
    "give the brush the id of the object under the pointer (else the first selected)",
    shortcut="Shift+I",
    enabled=lambda ctx, pick: (
        _can_edit(ctx)
        or (
            None if pick.label or selected_labels(ctx) else "point at an object or select one first"
        )
    ),
)
def _pick_id(ctx: ActionContext, pick: Pick) -> int:
    b = _brush(ctx)
    b.value = int(pick.label) if pick.label else selected_labels(ctx)[0]
    _brush_changed(ctx)
    ctx.notify(f"brush id {b.value}")
    return b.value


def _resize(factor: float) -> Any:
    def fn(ctx: ActionContext, pick: Pick) -> float:
        b = _brush(ctx)
        b.radius_um = float(min(max(b.radius_um * factor, BRUSH_MIN_UM), BRUSH_MAX_UM))
        _brush_changed(ctx)
        ctx.notify(f"brush radius {b.radius_um:.3g} µm")
        return b.radius_um

    return fn


ACTIONS.register(
    Action(
        "labels.brush_larger",
        "Larger brush",
        "brush radius x 1.25",
        shortcut="]",
        headset="labels tool: thumbstick up",
        fn=_resize(1.25),
    )
)
ACTIONS.register(
    Action(
        "labels.brush_smaller",
        "Smaller brush",
        "brush radius / 1.25",
        shortcut="[",
        headset="labels tool: thumbstick down",
        fn=_resize(1 / 1.25),
    )
)

# Desktop tool modes of the label tools (implemented by the desktop: fn None).
for _id, _title, _desc, _key in (
    ("tool.paint", "Paint brush", "paint: drag on a slice paints the brush's id", "B"),
    ("tool.erase", "Eraser", "erase: drag on a slice erases", "E"),
    ("tool.fill", "Fill", "fill: a click fills the region within the slice", "Shift+F"),
    ("tool.split", "Split object", "split: click seeds on an object, then accept", "Shift+X"),
):
    ACTIONS.register(Action(_id, _title, _desc, shortcut=_key))
