"""XR tools driven by synthetic pose sequences (no runtime, no rendering).

References: distances and angles from NumPy/SciPy geometry, the similarity
transform from SciPy's ``Rotation``, track edits checked on the graph itself.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from analysis.annotations import Annotations
from analysis.edits import History
from analysis.project import Workspace
from analysis.tracks import TrackGraph
from viewer.scene import Scene
from xrmode._transform import StageTransform
from xrmode.input import Button, HandInput, InputFrame, Pose
from xrmode.tools import (
    ClassifyTool,
    ClipTool,
    CountTool,
    GrabTool,
    LabelProbe,
    MeasureTool,
    Toolbox,
    ToolContext,
    TrackTool,
)

IDENT = (0.0, 0.0, 0.0, 1.0)


def quat(rot: Rotation) -> tuple[float, float, float, float]:
    x, y, z, w = rot.as_quat()  # SciPy's order is (x, y, z, w), like OpenXR
    return (float(x), float(y), float(z), float(w))


class Script:
    """Builds successive InputFrames with button edges, like the session does."""

    def __init__(self) -> None:
        self.left = HandInput("left", aim=Pose((-0.2, 1.2, -0.3)), grip=Pose((-0.2, 1.2, -0.3)))
        self.right = HandInput("right", aim=Pose((0.2, 1.2, -0.3)), grip=Pose((0.2, 1.2, -0.3)))

    def step(
        self, side: str = "right", pose: Pose | None = None, stick=(0.0, 0.0), **buttons: bool
    ) -> InputFrame:
        h = getattr(self, side)
        changes = {}
        for name in ("select", "squeeze", "primary", "secondary", "menu", "thumbstick_click"):
            prev: Button = getattr(h, name)
            changes[name] = prev.next(buttons.get(name, prev.pressed))
        other = "left" if side == "right" else "right"
        o = getattr(self, other)
        # The other hand's edges expire.
        ochanges = {n: getattr(o, n).next(getattr(o, n).pressed) for n in changes}
        h = HandInput(side, aim=pose or h.aim, grip=pose or h.grip, thumbstick=stick, **changes)
        o = HandInput(other, aim=o.aim, grip=o.grip, **ochanges)
        setattr(self, side, h)
        setattr(self, other, o)
        return InputFrame(0.0, None, self.left, self.right)

    def click(self, tool, ctx, side="right", pose=None, button="select"):
        tool.update(self.step(side, pose, **{button: True}), ctx)
        tool.update(self.step(side, pose, **{button: False}), ctx)


def make_ctx(tracks: TrackGraph | None = None, scene: Scene | None = None, transform=None):
    ws = Workspace(tracks, Annotations())
    hist = History(ws)
    ctx = ToolContext(
        transform=transform
        or StageTransform(0.01, quat(Rotation.from_euler("y", 30, degrees=True)), (0.1, 1.0, -0.4)),
        apply=hist.apply,
        scene=scene if scene is not None else Scene(),
        workspace=ws,
        classes=["mito", "er"],
    )
    return ctx, ws, hist


# -- transform ---------------------------------------------------------------------------


def test_transform_matches_scipy_similarity_and_round_trips():
    rot = Rotation.from_euler("xyz", [20, -35, 70], degrees=True)
    tr = StageTransform(0.004, quat(rot), (0.3, 1.1, -0.2))
    rng = np.random.default_rng(0)
    zyx = rng.uniform(-50, 50, (20, 3))
    want = np.asarray(tr.translation) + 0.004 * rot.apply(zyx[:, ::-1])
    np.testing.assert_allclose(tr.world_to_stage(zyx), want, atol=1e-12)
    np.testing.assert_allclose(tr.stage_to_world(want), zyx, atol=1e-9)
    m = tr.stage_to_world_matrix()
    hom = np.c_[want, np.ones(len(want))] @ m.T
    np.testing.assert_allclose(hom[:, :3], zyx, atol=1e-9)
    assert StageTransform.from_json(tr.to_json()).world_to_stage(zyx[0]) == pytest.approx(want[0])


def test_on_table_rests_the_box_on_the_table_top():
    tr = StageTransform.on_table((0, 0, 0), (10, 40, 20), size_m=0.4)
    corners = np.array([[z, y, x] for z in (0, 10) for y in (0, 40) for x in (0, 20)], float)
    st = tr.world_to_stage(corners)
    assert np.ptp(st, axis=0).max() == pytest.approx(0.4)
    assert st[:, 1].min() == pytest.approx(0.85)


# -- grab ----------------------------------------------------------------------------------


def test_one_hand_grab_moves_and_rotates_rigidly_with_the_hand():
    ctx, *_ = make_ctx()
    tool = GrabTool()
    tool.enabled = True
    s = Script()
    p0 = Pose((0.2, 1.2, -0.3), IDENT)
    world_pt = np.array([3.0, -4.0, 5.0])
    before = ctx.transform.world_to_stage(world_pt)
    tool.update(s.step("right", p0, squeeze=True), ctx)
    rot = Rotation.from_euler("zy", [40, -25], degrees=True)
    p1 = Pose((0.35, 1.1, -0.45), quat(rot))
    tool.update(s.step("right", p1, squeeze=True), ctx)
    # The point keeps its position relative to the hand (SciPy rotation as reference).
    want = np.asarray(p1.position) + rot.apply(before - np.asarray(p0.position))
    np.testing.assert_allclose(ctx.transform.world_to_stage(world_pt), want, atol=1e-9)
    tool.update(s.step("right", p1, squeeze=False), ctx)
    assert tool.mode == "idle"


def test_two_hand_grab_scales_about_the_midpoint():
    ctx, *_ = make_ctx()
    tool = GrabTool()
    tool.enabled = True
    s = Script()
    s0 = ctx.transform.scale
    s.step("left", Pose((-0.1, 1.2, -0.3)), squeeze=True)
    tool.update(s.step("right", Pose((0.1, 1.2, -0.3)), squeeze=True), ctx)
    anchor = ctx.transform.stage_to_world([0.0, 1.2, -0.3])
    tool.update(s.step("right", Pose((0.5, 1.2, -0.3)), squeeze=True), ctx)
    # Hands 0.2 m -> 0.6 m apart: 3x; the world point under the old midpoint is under the new one.
    assert ctx.transform.scale == pytest.approx(3 * s0)
    np.testing.assert_allclose(ctx.transform.world_to_stage(anchor), [0.2, 1.2, -0.3], atol=1e-9)


# -- measure / count -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["distance", "angle", "path"])
def test_measure_builds_measurements_of_the_right_value(kind):
    ctx, ws, hist = make_ctx()
    tool = MeasureTool(kind)
    tool.enabled = True
    s = Script()
    stage_pts = [
        np.array(p)
        for p in ([0.0, 1.1, -0.3], [0.1, 1.15, -0.35], [0.05, 1.3, -0.2], [0.2, 1.0, -0.4])
    ]
    n = {"distance": 2, "angle": 3, "path": 4}[kind]
    for p in stage_pts[:n]:
        s.click(tool, ctx, pose=Pose(tuple(p), IDENT))
    if kind == "path":
        s.click(tool, ctx, button="secondary")
    (m,) = ws.annotations.measurements
    tips = ctx.transform.stage_to_world(np.array(stage_pts[:n]) + [0.0, 0.0, -0.05])
    np.testing.assert_allclose(m.points_um, tips, atol=1e-9)
    if kind == "angle":
        a, b = tips[0] - tips[1], tips[2] - tips[1]
        want = np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b)), a @ b))
    else:
        used = tips[[0, -1]] if kind == "distance" else tips
        want = np.sum(np.linalg.norm(np.diff(used, axis=0), axis=1))
        # Lengths are stage lengths divided by the scale: independent of the rotation.
        st = np.array(stage_pts[:n])
        st = st[[0, -1]] if kind == "distance" else st
        assert want == pytest.approx(np.linalg.norm(np.diff(st, axis=0), axis=1).sum() / 0.01)
    assert m.value == pytest.approx(want, rel=1e-9)
    hist.undo()
    assert ws.annotations.measurements == []


def test_count_places_one_marker_per_click_in_the_current_class():
    ctx, ws, hist = make_ctx()
    tool = CountTool()
    tool.enabled = True
    s = Script()
    for i in range(4):
        s.click(tool, ctx, pose=Pose((0.02 * i, 1.1, -0.3), IDENT))
    s.click(tool, ctx, button="primary")  # next class
    s.click(tool, ctx, pose=Pose((0.3, 1.1, -0.3), IDENT))
    assert ws.annotations.counts() == {"mito": 4, "er": 1}
    assert len(hist.undo_steps) == 5
    assert any("mito: 4" in t for _, t, _ in ctx.hud.texts)


# -- tracks ----------------------------------------------------------------------------------


def line_graph() -> TrackGraph:
    ids = np.arange(6)
    zyx = np.c_[np.full(6, 5.0), np.full(6, 5.0), 4.0 * ids]
    return TrackGraph.from_arrays(ids, ids, zyx, [[0, 1], [1, 2], [2, 3], [4, 5]])


def aim_at(ctx: ToolContext, zyx, back_m: float = 0.3) -> Pose:
    target = ctx.transform.world_to_stage(np.asarray(zyx, float))
    return Pose(tuple(target + [0.0, 0.0, back_m]), IDENT)


def test_track_tool_cuts_merges_and_prolongs_at_pointed_nodes():
    g = line_graph()
    ctx, ws, hist = make_ctx(g, transform=StageTransform(0.01, IDENT, (0.0, 1.0, -0.5)))
    tool = TrackTool()
    tool.enabled = True
    s = Script()
    s.click(tool, ctx, pose=aim_at(ctx, g.position(2)), button="primary")
    assert g.parent(2) is None and g.n_edges == 3
    # Select the end of the first piece (node 1), point at the start of another (4), merge.
    s.click(tool, ctx, pose=aim_at(ctx, g.position(1)))
    assert tool.selected == 1 and ctx.scene.selection.node_ids == [1]
    s.click(tool, ctx, pose=aim_at(ctx, g.position(4)), button="secondary")
    assert g.parent(4) == 1
    # Prolong the end of the merged track (node 5, t=5) at the hand's tip.
    s.click(tool, ctx, pose=aim_at(ctx, g.position(5)))
    where = Pose((0.5, 1.2, -0.4), IDENT)
    s.click(tool, ctx, pose=where, button="thumbstick_click")
    new = tool.selected
    assert new is not None and g.parent(new) == 5 and g.time(new) == 6
    np.testing.assert_allclose(
        g.position(new), ctx.transform.stage_to_world([0.5, 1.2, -0.45]), atol=1e-9
    )
    assert ctx.current_time == 6
    for _ in range(3):
        hist.undo()
    assert g.equals(line_graph())


def test_track_tool_ignores_nodes_beyond_the_tolerance():
    g = line_graph()
    ctx, *_ = make_ctx(g, transform=StageTransform(0.01, IDENT, (0.0, 1.0, -0.5)))
    tool = TrackTool(tolerance_m=0.01)
    tool.enabled = True
    s = Script()
    pose = aim_at(ctx, g.position(3))
    off = Pose((pose.position[0] + 0.015, pose.position[1], pose.position[2]), IDENT)
    tool.update(s.step("right", off), ctx)
    assert tool.pointed is None
    tool.update(s.step("right", pose), ctx)
    assert tool.pointed == 3


def test_track_tool_candidates_follow_time_and_edits():
    """The pickable nodes are cached per frame; the cache must follow the time, the
    window and every edit (reference: a mask over the graph's columns, rebuilt)."""
    g = line_graph()
    ctx, ws, hist = make_ctx(g, transform=StageTransform(0.01, IDENT, (0.0, 1.0, -0.5)))
    tool = TrackTool(window=(1, 0))

    def ref(now):
        keep = (g.t >= now - 1) & (g.t <= now)
        return g.zyx[keep], g.node_ids[keep]

    for now in (3.0, 3.0, 5.0, 0.0):
        ctx.current_time = now
        pts, ids = tool.candidates(g, now)
        np.testing.assert_array_equal(ids, ref(now)[1])
        np.testing.assert_array_equal(pts, ref(now)[0])
    from analysis.edits import Prolong

    cmd = Prolong(5, [(6.0, 5.0, 5.0, 30.0)])
    hist.apply(cmd)  # a new node at t=6 ...
    pts, ids = tool.candidates(g, 6.0)
    assert list(ids) == [5, *cmd.new_ids]
    hist.undo()  # ... and gone again
    assert list(tool.candidates(g, 6.0)[1]) == [5]
    tool.window = (5, 0)
    np.testing.assert_array_equal(tool.candidates(g, 6.0)[1], [1, 2, 3, 4, 5])


# -- classify / clip / menu --------------------------------------------------------------------


def test_classify_assigns_the_class_of_the_object_under_the_ray():
    from analysis.volume import ArrayVolumeSource

    lab = np.zeros((20, 20, 20), np.uint16)
    lab[5:10, 5:10, 5:10] = 7
    lab[12:18, 5:10, 5:10] = 9
    ctx, ws, _ = make_ctx(transform=StageTransform(0.01, IDENT, (0.0, 1.0, -0.5)))
    tool = ClassifyTool(LabelProbe(ArrayVolumeSource(lab)), "cells")
    tool.enabled = True
    s = Script()
    # World scale of ArrayVolumeSource is 1 µm per voxel; aim at the centre of object 9.
    s.click(tool, ctx, pose=aim_at(ctx, (15.0, 7.0, 7.0)))
    assert ws.annotations.object_classes == {"cells": {9: "mito"}}
    s.click(tool, ctx, pose=aim_at(ctx, (0.0, 0.0, 0.0)))  # background: nothing
    assert ws.annotations.object_classes == {"cells": {9: "mito"}}


def test_clip_plane_follows_the_hand_while_the_trigger_is_held():
    scene = Scene()
    ctx, *_ = make_ctx(scene=scene, transform=StageTransform(0.01, IDENT, (0.0, 1.0, -0.5)))
    tool = ClipTool()
    tool.enabled = True
    s = Script()
    rot = Rotation.from_euler("y", 90, degrees=True)
    pose = Pose((0.1, 1.05, -0.45), quat(rot))
    tool.update(s.step("right", pose, select=True), ctx)
    (plane,) = scene.clipping_planes
    tip = np.asarray(pose.position) + 0.05 * rot.apply([0, 0, -1])
    np.testing.assert_allclose(plane.origin, ctx.transform.stage_to_world(tip), atol=1e-9)
    np.testing.assert_allclose(
        plane.normal, ctx.transform.stage_dir_to_world(rot.apply([0, 0, -1])), atol=1e-9
    )


def test_menu_switches_tools_and_blocks_the_tool_meanwhile():
    ctx, ws, hist = make_ctx()
    box = Toolbox(
        {"measure": MeasureTool(), "count": CountTool()}, ctx, "measure", hist.undo, hist.redo
    )
    s = Script()
    box.update(s.step("left", menu=True))
    box.update(s.step("left", menu=False))
    assert box.menu.open
    box.update(s.step("left", stick=(0.0, -1.0)))  # stick down: next item
    box.update(s.step("right", select=True))  # pick with the other hand's trigger
    box.update(s.step("right", select=False))
    assert box.active == "count" and box.tools["count"].enabled and not box.tools["measure"].enabled
    assert ws.annotations.markers == []  # the picking click placed nothing
    box.update(s.step("right", select=True))
    box.update(s.step("right", select=False))
    assert len(ws.annotations.markers) == 1
    box.update(s.step("left", secondary=True))  # undo
    assert ws.annotations.markers == []
