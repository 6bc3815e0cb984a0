"""The actions themselves: tracks, annotations, objects, time, view and edit.

Each takes the front end (:class:`ActionContext`) and a :class:`Pick`, builds
commands of :mod:`analysis.edits` / :mod:`analysis.annotations` and applies them
through ``ctx.execute`` (the history: undoable, journaled, sent to collaborators).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from analysis.annotations import (
    AddMarker,
    AddMeasurement,
    RemoveMarker,
    RemoveMeasurement,
    SetObjectClass,
)
from analysis.edits import Command, Cut, Delete, MarkReviewed, Merge, Prolong, Swap
from analysis.errors import InvalidEditError

from ._context import MEASURE_POINTS, ActionContext
from ._registry import ACTIONS, Action
from ._select import (
    Pick,
    is_timelapse,
    merge_ends,
    nearest_marker,
    node_at_time,
    time_range,
    tracklet_end,
)

__all__ = ["current_time", "select_node", "selected_nodes", "set_time", "show_point"]

Vec3 = tuple[float, float, float]


# ---------------------------------------------------------------------- shared state helpers
def current_time(ctx: ActionContext) -> int:
    """The current time point (frames)."""
    return int(round(ctx.scene.current_time))


def set_time(ctx: ActionContext, t: float) -> None:
    """Go to time point ``t``, kept within the image's and tracks' time range."""
    lo, hi = time_range(ctx.scene, ctx.tracks)
    ctx.scene.current_time = float(min(max(round(t), lo), max(hi, lo)))


def show_point(ctx: ActionContext, zyx: Vec3) -> None:
    """Centre every view of the front end on world ``zyx`` (µm).

    Optional for a front end (``ctx.show_point``): the desktop moves the crosshair,
    the slices and the 3D view's focus there; the headset, whose user walks to the
    data, has nothing to move and does not define it.
    """
    show = getattr(ctx, "show_point", None)
    if show is not None:
        show((float(zyx[0]), float(zyx[1]), float(zyx[2])))


def _track_node_near_time(g: Any, node: int, t: int) -> int:
    """The node of ``node``'s tracklet at time ``t``, else its node nearest in time."""
    at = node_at_time(g, node, t)
    if at is not None:
        return at
    ids = g.tracklet(node)
    times = np.asarray([g.time(int(i)) for i in ids])
    return int(ids[int(np.argmin(np.abs(times - t)))])


def selected_nodes(ctx: ActionContext) -> list[int]:
    """The selected track nodes that still exist, in selection order."""
    g = ctx.tracks
    if g is None:
        return []
    return [int(n) for n in ctx.scene.selection.node_ids if n in g]


def select_node(ctx: ActionContext, node: int | None, add: bool = False) -> None:
    """Select a node (``add``: keep the first selected one, e.g. to merge or swap)."""
    sel = ctx.scene.selection
    if node is None:
        sel.update({"node_ids": [], "layer": sel.layer})
        return
    ids = [*sel.node_ids[:1], int(node)] if add else [int(node)]
    sel.update({"node_ids": list(dict.fromkeys(ids))})


def _nodes(ctx: ActionContext, pick: Pick) -> list[int]:
    """The tracks an edit works on: the selection, then the picked node (if another)."""
    ids = selected_nodes(ctx)
    if pick.node is not None and pick.node not in ids:
        ids.append(int(pick.node))
    return ids


def _needs_tracks(n: int) -> Any:
    def cond(ctx: ActionContext, pick: Pick) -> str | None:
        if ctx.tracks is None:
            return "no tracks are open"
        if len(_nodes(ctx, pick)) < n:
            return "select a track" if n == 1 else "select two tracks (Ctrl+click the second)"
        return None

    return cond


def _needs_point(ctx: ActionContext, pick: Pick) -> str | None:
    return None if pick.point_um is not None else "point at a place first"


def _point(pick: Pick) -> Vec3:
    assert pick.point_um is not None
    p = pick.point_um
    return (float(p[0]), float(p[1]), float(p[2]))


def _stamp(ctx: ActionContext) -> float | None:
    """The time point a marker or measurement gets (None outside time-lapses)."""
    return float(current_time(ctx)) if is_timelapse(ctx.scene, ctx.tracks) else None


def _apply(ctx: ActionContext, cmd: Command) -> Command:
    ctx.execute(cmd)
    return cmd


# ---------------------------------------------------------------------- edit
@ACTIONS.action(
    "edit.undo",
    "Undo",
    "undo the last edit (one history for tracks, markers, measurements, classes)",
    shortcut="Ctrl+Z",
    headset="menu hand: B / Y; wrist menu: undo",
)
def _undo(ctx: ActionContext, pick: Pick) -> Any:
    return ctx.undo()


@ACTIONS.action(
    "edit.redo",
    "Redo",
    "redo the last undone edit",
    shortcut="Ctrl+Shift+Z",
    headset="menu hand: A / X; wrist menu: redo",
)
def _redo(ctx: ActionContext, pick: Pick) -> Any:
    return ctx.redo()


# ---------------------------------------------------------------------- tracks
@ACTIONS.action(
    "tracks.select",
    "Select track",
    "select the picked node's track (add: keep the first selected, to merge or swap)",
    mouse="click a node (the ringed one, within 8 screen pixels; Ctrl+click: add)",
    headset="track tool: trigger",
)
def _select(ctx: ActionContext, pick: Pick) -> int | None:
    if pick.node is None:
        if not pick.add:
            select_node(ctx, None)
        return None
    select_node(ctx, pick.node, add=pick.add)
    return int(pick.node)


@ACTIONS.action(
    "tracks.cut",
    "Cut at current time",
    "cut the track before the picked node, else the selected track at the current time "
    "(that node starts a new track)",
    shortcut="C",
    headset="track tool: A / X",
    enabled=_needs_tracks(1),
)
def _cut(ctx: ActionContext, pick: Pick) -> Command:
    g = ctx.tracks
    if pick.node is not None:
        return _apply(ctx, Cut(int(pick.node)))
    t = current_time(ctx)
    node = node_at_time(g, selected_nodes(ctx)[0], t)
    if node is None:
        raise InvalidEditError(f"the selected track has no node at t={t}")
    return _apply(ctx, Cut(node))


@ACTIONS.action(
    "tracks.merge",
    "Merge end of first with start of second",
    "link the end of the first track to the start of the second (either order; "
    "the picked nodes snap to the tracks' end and start)",
    shortcut="M",
    headset="track tool: B / Y, or wrist menu: merge (selected, then pointed)",
    enabled=_needs_tracks(2),
)
def _merge(ctx: ActionContext, pick: Pick) -> Command:
    first, second = _nodes(ctx, pick)[:2]
    end, start = merge_ends(ctx.tracks, first, second)
    cmd = _apply(ctx, Merge(end, start))
    select_node(ctx, start)
    return cmd


@ACTIONS.action(
    "tracks.swap",
    "Swap after current time",
    "exchange what follows the current time between the two tracks (a crossing)",
    shortcut="S",
    headset="wrist menu: swap (selected, then pointed)",
    enabled=_needs_tracks(2),
)
def _swap(ctx: ActionContext, pick: Pick) -> Command:
    a, b = _nodes(ctx, pick)[:2]
    return _apply(ctx, Swap.after(ctx.tracks, a, b, current_time(ctx)))


@ACTIONS.action(
    "tracks.prolong",
    "Prolong at point",
    "add a detection at the picked point after the selected track's end (at the current "
    "time, or the next one), select it and step time forward",
    mouse="P, then click positions",
    headset="track tool: thumbstick click (at the hand's tip)",
    enabled=lambda ctx, pick: _needs_tracks(1)(ctx, Pick()) or _needs_point(ctx, pick),
)
def _prolong(ctx: ActionContext, pick: Pick) -> Command:
    g = ctx.tracks
    end = tracklet_end(g, selected_nodes(ctx)[0])
    t = max(current_time(ctx), int(g.time(end)) + 1)
    cmd = Prolong(end, [[float(t), *_point(pick)]])
    _apply(ctx, cmd)
    if cmd.new_ids:
        select_node(ctx, cmd.new_ids[0])
        set_time(ctx, t + 1 if t + 1 <= time_range(ctx.scene, g)[1] else t)
    return cmd


@ACTIONS.action(
    "tracks.delete",
    "Delete track",
    "delete the selected (or picked) node's tracklet",
    shortcut="Delete",
    headset="wrist menu: delete track",
    enabled=_needs_tracks(1),
)
def _delete(ctx: ActionContext, pick: Pick) -> Command:
    node = pick.node if pick.node is not None else selected_nodes(ctx)[0]
    g = ctx.tracks
    ids = g.tracklet(int(node))
    t0, t1 = g.time(int(ids[0])), g.time(int(ids[-1]))
    cmd = _apply(ctx, Delete.track(int(node)))
    select_node(ctx, None)
    # Immediate (a proofreading loop must stay fast) but never unseen: say what went,
    # whether or not it was on screen, and that undo brings it back.
    ctx.notify(f"deleted track {int(ids[0])} ({len(ids)} nodes, t {t0}–{t1}); undo restores it")
    return cmd


@ACTIONS.action(
    "tracks.delete_node",
    "Delete node",
    "delete the selected (or picked) node and its edges",
    shortcut="Shift+Delete",
    headset="wrist menu: delete node",
    enabled=_needs_tracks(1),
)
def _delete_node(ctx: ActionContext, pick: Pick) -> Command:
    node = pick.node if pick.node is not None else selected_nodes(ctx)[0]
    t = ctx.tracks.time(int(node))
    cmd = _apply(ctx, Delete.node(int(node)))
    select_node(ctx, None)
    ctx.notify(f"deleted node {int(node)} (t {t}); undo restores it")
    return cmd


@ACTIONS.action(
    "tracks.mark_reviewed",
    "Toggle reviewed",
    "mark the selected tracks reviewed (unreviewed if the first already is)",
    shortcut="R",
    headset="wrist menu: reviewed",
    enabled=_needs_tracks(1),
)
def _mark_reviewed(ctx: ActionContext, pick: Pick) -> Command:
    ids = _nodes(ctx, pick)
    state = not ctx.tracks.is_reviewed(ids[0])
    return _apply(ctx, MarkReviewed(ids, reviewed=state, whole_track=True))


def next_unreviewed_node(g: Any) -> int | None:
    """The first node of the unreviewed tracklet with the smallest id (= its first node)."""
    if g is None or not g.n_nodes:
        return None
    tid = g.tracklet_ids()
    todo = tid[~g.reviewed]
    if not todo.size:
        return None
    # A tracklet is reviewed when all its nodes are; its id is its first node's id.
    return int(todo.min())


@ACTIONS.action(
    "tracks.next_unreviewed",
    "Next unreviewed track",
    "select the first node of the next unreviewed track and go to its time (the desktop "
    "centres every view on it)",
    shortcut="N",
    headset="wrist menu: next unreviewed",
    enabled=lambda ctx, pick: None if ctx.tracks is not None else "no tracks are open",
)
def _next_unreviewed(ctx: ActionContext, pick: Pick) -> int | None:
    first = next_unreviewed_node(ctx.tracks)
    if first is None:
        if ctx.tracks.n_nodes:
            ctx.notify("every track is reviewed")
        return None
    select_node(ctx, first)
    set_time(ctx, ctx.tracks.time(first))
    show_point(ctx, ctx.tracks.position(first))
    return first


@ACTIONS.action(
    "tracks.show",
    "Show selected track",
    "centre every view (crosshair, slices, 3D focus) on the selected track's node at the "
    "current time, else its node nearest in time (and go to that time)",
    shortcut="G",
    enabled=_needs_tracks(1),
)
def _show(ctx: ActionContext, pick: Pick) -> int:
    g = ctx.tracks
    node = _track_node_near_time(g, _nodes(ctx, pick)[0], current_time(ctx))
    set_time(ctx, g.time(node))
    show_point(ctx, g.position(node))
    return node


# ---------------------------------------------------------------------- annotations
@ACTIONS.action(
    "annotations.add_marker",
    "Add marker",
    "place a marker of the current class at the picked point",
    mouse="K, then click",
    headset="count tool: trigger (at the hand's tip)",
    enabled=_needs_point,
)
def _add_marker(ctx: ActionContext, pick: Pick) -> Command:
    return _apply(ctx, AddMarker(ctx.class_name, _point(pick), t=_stamp(ctx)))


@ACTIONS.action(
    "annotations.remove_marker",
    "Remove marker",
    "remove the marker nearest to the picked point (within the pick tolerance)",
    mouse="K, then Shift+click",
    headset="count tool: B / Y (at the hand's tip)",
    enabled=_needs_point,
)
def _remove_marker(ctx: ActionContext, pick: Pick) -> Any:
    mid = nearest_marker(ctx.annotations, _point(pick), pick.tolerance_um)
    return None if mid is None else _apply(ctx, RemoveMarker(mid))


@ACTIONS.action(
    "annotations.remove_measurement",
    "Remove measurement",
    "remove the measurement with a point nearest to the picked point (within the pick tolerance)",
    mouse="Counting and measuring: select a measurement, Delete (or Remove)",
    headset="measure tool: B / Y with no point placed (at the hand's tip)",
    enabled=_needs_point,
)
def _remove_measurement(ctx: ActionContext, pick: Pick) -> Any:
    ms = ctx.annotations.measurements
    if not ms:
        return None
    p = np.asarray(_point(pick))
    d = [float(np.min(np.linalg.norm(np.asarray(m.points_um) - p, axis=1))) for m in ms]
    i = int(np.argmin(d))
    if d[i] > pick.tolerance_um:
        return None
    cmd = _apply(ctx, RemoveMeasurement(ms[i].id))
    ctx.notify(f"removed measurement #{ms[i].id}; undo restores it")
    return cmd


@ACTIONS.action(
    "annotations.measure_point",
    "Measure: add point",
    "add the picked point to the measurement being placed; distance (2 points) and "
    "angle (3) are recorded when complete",
    mouse="D / A / L, then click",
    headset="measure tool: trigger (at the hand's tip)",
    enabled=_needs_point,
)
def _measure_point(ctx: ActionContext, pick: Pick) -> Command | None:
    m = ctx.measuring
    m.points.append(_point(pick))
    ctx.measuring_changed()
    if m.complete:
        return _finish(ctx, pick)
    return None


def _finish(ctx: ActionContext, pick: Pick) -> Command | None:
    m = ctx.measuring
    if m.kind not in MEASURE_POINTS or len(m.points) < 2:
        return None
    pts, m.points = list(m.points), []
    ctx.measuring_changed()
    cmd = AddMeasurement(m.kind, pts, t=_stamp(ctx))  # type: ignore[arg-type]
    _apply(ctx, cmd)
    if cmd.measurement_id is not None:
        ms = ctx.annotations.measurement(cmd.measurement_id)
        unit = "°" if ms.kind == "angle" else " µm"
        ctx.notify(f"{ms.kind}: {ms.value:.3f}{unit}")
    return cmd


ACTIONS.register(
    Action(
        "annotations.finish_measurement",
        "Finish path",
        "record the measurement being placed (a path: any number of points >= 2)",
        shortcut="Return",
        headset="measure tool: B / Y, or wrist menu: finish path",
        fn=_finish,
    )
)


# ---------------------------------------------------------------------- objects
@ACTIONS.action(
    "objects.classify",
    "Assign class",
    "give the picked object (else the selected objects) the current class: the object "
    "classifier's training examples",
    mouse="Features: Assign to selected",
    headset="classify tool: trigger",
    enabled=lambda ctx, pick: (
        None
        if (pick.layer and pick.label)
        or (ctx.scene.selection.layer and ctx.scene.selection.label_ids)
        else "select objects first (click, table rows or the plot)"
    ),
)
def _classify(ctx: ActionContext, pick: Pick) -> int:
    if pick.layer and pick.label:
        layer, ids = pick.layer, [int(pick.label)]
    else:
        sel = ctx.scene.selection
        layer, ids = sel.layer, [int(i) for i in sel.label_ids if int(i) > 0]
    name = ctx.class_name
    cmds = [SetObjectClass(i, name, layer) for i in ids]
    if len(cmds) == 1:
        ctx.execute(cmds[0])
    else:
        with ctx.group(f"classify {len(ids)} as {name}"):
            for c in cmds:
                ctx.execute(c)
    ctx.notify(f"{len(ids)} object(s) of {layer} classified as {name}")
    return len(ids)


# ---------------------------------------------------------------------- time / view
@ACTIONS.action(
    "time.previous",
    "Previous time point",
    "go one time point back",
    shortcut="Left",
    headset="thumbstick left (menu hand, menu closed; track tool: tool hand)",
)
def _prev(ctx: ActionContext, pick: Pick) -> None:
    set_time(ctx, current_time(ctx) - 1)


@ACTIONS.action(
    "time.next",
    "Next time point",
    "go one time point forward",
    shortcut="Right",
    headset="thumbstick right (menu hand, menu closed; track tool: tool hand)",
)
def _next(ctx: ActionContext, pick: Pick) -> None:
    set_time(ctx, current_time(ctx) + 1)


@ACTIONS.action(
    "view.reset",
    "Reset view",
    "put the view back: the desktop's 3D camera where it started; in the headset the "
    "volume in front of you, level, at reach",
    headset="menu hand: thumbstick click",
)
def _reset(ctx: ActionContext, pick: Pick) -> None:
    ctx.reset_view()


# ---------------------------------------------------------------------- desktop only
# Tool modes and files: the desktop implements them (``fn`` None); listed here so its
# menus, shortcuts and the docs' key table come from one place.
for _id, _title, _desc, _key in (
    ("tool.navigate", "Navigate / select", "back to navigate/select", "Escape"),
    (
        "tool.count",
        "Count (place markers)",
        "count: a click places a marker of the current class (Shift+click removes the nearest)",
        "K",
    ),
    ("tool.distance", "Measure distance", "measure a distance (2 clicks)", "D"),
    ("tool.angle", "Measure angle", "measure an angle (3 clicks, vertex in the middle)", "A"),
    ("tool.path", "Measure path length", "measure a path (clicks, Return finishes)", "L"),
    (
        "tool.prolong",
        "Prolong (click positions)",
        "prolong: each click adds a detection after the selected track's end",
        "P",
    ),
    (
        "view.next_slice",
        "Next slice",
        "move the slice view under the mouse (else the last one used) one voxel deeper",
        "PgDown",
    ),
    (
        "view.previous_slice",
        "Previous slice",
        "move the slice view under the mouse (else the last one used) one voxel back",
        "PgUp",
    ),
    ("file.quit", "Quit", "close the window (asks first when edits would be lost)", "Ctrl+Q"),
    ("file.save", "Save project", "save the project (the journal is always current)", "Ctrl+S"),
    ("file.screenshot", "Screenshot…", "save a screenshot of the window", "Ctrl+Shift+S"),
):
    ACTIONS.register(Action(_id, _title, _desc, shortcut=_key))
