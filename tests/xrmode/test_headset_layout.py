"""Placement, HUD text size, playback, the wrist panel and the wrist menu by hand
(no runtime): checked against SciPy rotations and plain trigonometry."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from analysis.annotations import Annotations
from analysis.edits import History
from analysis.project import Workspace
from analysis.tracks import TrackGraph
from viewer.actions import ACTIONS, Pick, Playback, run
from viewer.scene import Scene, Tracks
from xrmode._transform import StageTransform
from xrmode.input import Button, HandInput, InputFrame, Pose
from xrmode.tools import MenuAction, Tool, Toolbox, ToolContext


def _head(yaw_deg: float, pitch_deg: float = 0.0, pos=(0.3, 1.6, -0.2)) -> Pose:
    q = Rotation.from_euler("YX", [yaw_deg, pitch_deg], degrees=True).as_quat()
    return Pose(pos, tuple(float(v) for v in q))


@pytest.mark.parametrize("yaw", [0.0, 35.0, -120.0, 180.0])
def test_in_front_of_puts_the_whole_box_in_a_level_gaze(yaw):
    lo, hi = np.zeros(3), np.array([10.0, 40.0, 20.0])
    head = _head(yaw, pitch_deg=10.0)  # pitch is ignored: the volume stays level
    tr = StageTransform.in_front_of(lo, hi, head.position, head.forward)
    corners = np.array([[a, b, c] for a in (0, 10.0) for b in (0, 40.0) for c in (0, 20.0)])
    st = tr.world_to_stage(corners)
    # Into a level head frame turned by the same yaw (SciPy), -z ahead.
    level = Rotation.from_euler("Y", yaw, degrees=True)
    cam = level.inv().apply(st - np.asarray(head.position))
    assert (cam[:, 2] < -0.3).all()  # all of it ahead
    up = np.degrees(np.arctan2(cam[:, 1], -cam[:, 2]))
    side = np.degrees(np.arctan2(cam[:, 0], -cam[:, 2]))
    # Inside a 90-degree field of view (+-45), below the eyes' level for the most part.
    assert up.max() < 20 and up.min() > -45 and np.abs(side).max() < 40
    # 0.3 m across its longest side, centred 0.55 m ahead and 0.2 m down.
    assert np.ptp(st, axis=0).max() == pytest.approx(0.3, rel=1e-6)
    centre = cam.mean(axis=0)
    np.testing.assert_allclose(centre, [0.0, -0.2, -0.55], atol=1e-9)
    # Level: the image's rows (world y) still point straight down in the stage.
    down = tr.world_to_stage(np.array([0.0, 1.0, 0.0])) - tr.world_to_stage(np.zeros(3))
    np.testing.assert_allclose(down / np.linalg.norm(down), [0.0, -1.0, 0.0], atol=1e-9)


def test_text_px_is_the_angle_at_the_eyes_focal_length():
    from viewer.render import text_angle_rad, text_px

    # A headset eye: 2000 px over a 100-degree vertical field of view.
    t = math.tan(math.radians(50))
    proj = np.diag([1 / t, 1 / t, -1.0, 0.0])
    f_px = 1000 / t
    assert text_px(proj, 2000) == round(f_px * math.tan(math.radians(1.5)))
    assert math.degrees(text_angle_rad(proj, 2000)) == pytest.approx(1.5, abs=0.05)
    # The test eyes (240 px): at least 10 px, and the angle says how big that is.
    assert text_px(proj, 240) == 10
    assert text_angle_rad(proj, 240) == pytest.approx(math.atan(10 / (120 / t)))


def _timelapse_ctx() -> ToolContext:
    ids = np.arange(5)
    g = TrackGraph.from_arrays(ids, ids, np.c_[np.zeros(5), np.zeros(5), ids * 1.0], [])
    scene = Scene([Tracks.from_track_graph(g, name="t")])
    ws = Workspace(g, Annotations())
    return ToolContext(transform=StageTransform(), apply=lambda c: None, scene=scene, workspace=ws)


def test_playback_steps_one_point_at_a_time_and_stops_at_the_end():
    ctx = _timelapse_ctx()
    ctx.scene.current_time = 0.0
    ctx.playback = Playback(fps=4.0)
    assert run("time.play", ctx) is True
    seen = []
    for k in range(40):  # 0.1 s frames, then one slow frame of 2 s: no point is skipped
        now = k * 0.1 if k != 20 else 4.0
        ctx.playback.advance(ctx, now)
        seen.append(ctx.current_time)
    assert sorted(set(seen)) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert all(b - a in (0.0, 1.0) for a, b in zip(seen, seen[1:], strict=False))
    assert seen[-1] == 4.0 and not ctx.playback.playing
    # Play again at the end: from the first time point.
    run("time.play", ctx)
    assert ctx.current_time == 0.0 and ctx.playback.playing
    run("time.play", ctx)
    assert not ctx.playback.playing


def _frame(left: HandInput, right: HandInput | None = None, head=None) -> InputFrame:
    return InputFrame(0.0, head, left, right or HandInput("right"))


def test_reset_view_recentres_in_front_of_the_head():
    ctx = ToolContext(transform=StageTransform(), apply=lambda c: None)
    lo, hi = np.zeros(3), np.full(3, 10.0)

    def place(head: Pose) -> StageTransform:
        return StageTransform.in_front_of(lo, hi, head.position, head.forward)

    tb = Toolbox({"grab": Tool()}, ctx, "grab", place=place)
    head = _head(90.0, pos=(1.0, 1.7, 2.0))
    left = HandInput("left", aim=Pose((0.8, 1.3, 1.8)))
    tb.update(_frame(left, head=head))
    tb.update(_frame(left.with_buttons(thumbstick_click=True), head=head))
    want = StageTransform.in_front_of(lo, hi, head.position, head.forward)
    assert ctx.transform == want
    # Looking along -x (yaw 90 degrees): the volume's centre is 0.55 m along -x.
    c = ctx.transform.world_to_stage(np.full(3, 5.0))
    np.testing.assert_allclose(c, [1.0 - 0.55, 1.5, 2.0], atol=1e-9)


def test_palm_up_wrist_menu_and_panel_steps_by_pinch():
    """A tracked left hand turned palm up opens the menu; the right hand's pinch picks
    "layers >" then "opacity -" twice (the panel stays open); palm down closes it."""
    from xrmode.tools._toolbox import PANEL

    ctx = ToolContext(transform=StageTransform(), apply=lambda c: None)
    opacity = [1.0]

    def lower() -> str:
        opacity[0] = round(opacity[0] - 0.1, 3)
        return f"opacity {opacity[0]}"

    panel = {"opacity-": MenuAction(lambda: f"opacity {opacity[0]}  -", lower)}
    tb = Toolbox({"grab": Tool(), "measure": Tool()}, ctx, "grab", panel=panel)
    left = HandInput("left", aim=Pose((-0.2, 1.2, -0.3)), source="hand")
    right = HandInput("right", aim=Pose((0.2, 1.2, -0.3)), source="hand")
    up = left.with_buttons(menu=True)
    tb.update(_frame(up, right))
    assert tb.menu.open
    tb.menu.highlighted = tb.menu.items.index(PANEL)
    up = up.with_buttons(menu=True)
    right = right.with_buttons(select=True)
    tb.update(_frame(up, right))
    assert tb.highlighted_label() == "opacity 1.0  -"
    for _ in range(2):
        right = right.with_buttons(select=False)
        tb.update(_frame(up.with_buttons(menu=True), right))
        right = right.with_buttons(select=True)
        tb.update(_frame(up.with_buttons(menu=True), right))
    assert opacity[0] == pytest.approx(0.8) and tb.menu.open
    tb.update(_frame(up.with_buttons(menu=False), right.with_buttons(select=False)))
    assert not tb.menu.open


def test_layer_actions_change_the_scene_model():
    from viewer.scene import Image

    ctx = _timelapse_ctx()
    img = Image(None, name="em", contrast_limits=(0.0, 100.0))  # type: ignore[arg-type]
    ctx.scene.add(img)
    run("layer.less_opaque", ctx)
    run("layer.less_opaque", ctx, Pick(layer="em"))
    assert img.opacity == pytest.approx(0.8)
    run("layer.more_contrast", ctx)
    assert img.contrast_limits == pytest.approx((10.0, 90.0))
    run("layer.next_colormap", ctx)
    assert img.colormap == "magma"
    run("layer.toggle_visible", ctx)
    assert not img.visible
    # No background choices on this context: refused with a message, nothing raised.
    assert run("view.next_background", ctx) is None and "background" in ctx.message
    assert {"layer.more_opaque", "time.play", "view.next_background"} <= {a.id for a in ACTIONS}


def test_two_hand_grab_turns_the_volume_with_the_hands():
    """Both hands squeezing, the right one circling 90 degrees about the vertical around
    the left while moving apart: the volume scales 2x and turns 90 degrees, and a world
    point follows the SciPy rotation about the midpoint."""
    from xrmode.tools import GrabTool

    ctx = ToolContext(transform=StageTransform(), apply=lambda c: None)
    tool = GrabTool()
    tool.enabled = True
    a = np.array([0.0, 1.2, -0.3])
    b0 = a + [0.2, 0.0, 0.0]
    b1 = a + [0.0, 0.0, -0.4]  # +x turned 90 degrees about +y is -z; twice as far
    held = {"squeeze": Button().next(True)}
    left = HandInput("left", aim=Pose(tuple(a)), grip=Pose(tuple(a)), **held)
    world = np.array([3.0, -4.0, 5.0])
    tool.update(_frame(left, HandInput("right", grip=Pose(tuple(b0)), **held)), ctx)
    before = ctx.transform.world_to_stage(world)
    s0 = ctx.transform.scale
    tool.update(_frame(left, HandInput("right", grip=Pose(tuple(b1)), **held)), ctx)
    assert ctx.transform.scale == pytest.approx(2 * s0)
    m0, m1 = (a + b0) / 2, (a + b1) / 2
    turn = Rotation.from_euler("y", 90, degrees=True)
    want = m1 + turn.apply(2 * (before - m0))
    np.testing.assert_allclose(ctx.transform.world_to_stage(world), want, atol=1e-9)


def test_count_tool_b_removes_the_marker_at_the_tip():
    from analysis.annotations import AddMarker
    from xrmode.tools import CountTool

    ws = Workspace(None, Annotations())
    hist = History(ws)
    ctx = ToolContext(
        transform=StageTransform(), apply=hist.apply, workspace=ws, history=hist, classes=["a"]
    )
    tip_stage = np.array([0.1, 1.1, -0.45])  # the aim pose is 5 cm behind its tip
    aim = Pose((0.1, 1.1, -0.4))
    keep = ctx.transform.stage_to_world(tip_stage + [0.2, 0.0, 0.0])
    near = ctx.transform.stage_to_world(tip_stage + [0.005, 0.0, 0.0])
    for p in (keep, near):
        hist.apply(AddMarker("a", tuple(float(v) for v in p)))
    tool = CountTool()
    tool.enabled = True
    right = HandInput("right", aim=aim, secondary=Button().next(True))
    tool.update(_frame(HandInput("left"), right), ctx)
    left_over = [m.position_um for m in ws.annotations.markers]
    assert len(left_over) == 1
    np.testing.assert_allclose(left_over[0], keep)
    hist.undo()
    assert len(ws.annotations.markers) == 2


def test_crop_box_spans_the_two_hands_tips():
    from xrmode.tools import CropTool

    scene = Scene()
    ctx = ToolContext(transform=StageTransform(), apply=lambda c: None, scene=scene)
    tool = CropTool()
    tool.enabled = True
    on = {"select": Button().next(True)}
    ra, la = Pose((0.1, 1.2, -0.3)), Pose((-0.1, 1.0, -0.5))
    tool.update(_frame(HandInput("left", aim=la, **on), HandInput("right", aim=ra, **on)), ctx)
    assert len(scene.clipping_planes) == 6
    tips = [
        ctx.transform.stage_to_world(np.asarray(p.position) + [0.0, 0.0, -0.05]) for p in (la, ra)
    ]
    lo, hi = np.minimum(*tips), np.maximum(*tips)
    rng = np.random.default_rng(0)
    pts = lo - (hi - lo) * 0.5 + rng.random((500, 3)) * (hi - lo) * 2
    kept = np.ones(len(pts), bool)
    for p in scene.clipping_planes:  # the scene's convention: dot(p - origin, n) >= 0 kept
        kept &= (pts - np.asarray(p.origin)) @ np.asarray(p.normal) >= -1e-9
    inside = ((pts >= lo - 1e-9) & (pts <= hi + 1e-9)).all(axis=1)
    np.testing.assert_array_equal(kept, inside)
    assert len(ctx.hud.lines) == 12
    # A / X switches the crop off (and on again).
    off = HandInput("right", aim=ra, primary=Button().next(True))
    tool.update(_frame(HandInput("left", aim=la), off), ctx)
    assert not any(p.enabled for p in scene.clipping_planes)


def test_hand_models_point_along_the_rays():
    """Each tracked hand has a ray from its aim pose along the aim's -Z (SciPy), and a
    controller model around its grip; an untracked hand has neither."""
    from xrmode._models import RAY_LENGTH_M, hand_models

    rot = Rotation.from_euler("xy", [-30, 20], degrees=True)
    aim = Pose((0.1, 1.2, -0.3), tuple(float(v) for v in rot.as_quat()))
    inp = InputFrame(0.0, None, HandInput("left"), HandInput("right", aim=aim, grip=aim))
    m = hand_models(inp)
    assert m["rays"].shape == (1, 2, 3)  # the untracked left hand has none
    start, end = m["rays"][0]
    np.testing.assert_allclose(start, aim.position)
    want = rot.apply([0.0, 0.0, -1.0])
    np.testing.assert_allclose((end - start) / RAY_LENGTH_M, want, atol=1e-9)
    # The controller: a handle 18 mm thick around the grip, in the grip's frame: along
    # its Z (SciPy's rotation of the local axis), not across it.
    pts = m["mesh_points"] - np.asarray(aim.position)
    assert len(pts) and np.linalg.norm(pts, axis=1).max() < 0.2
    along = pts @ rot.apply([0.0, 0.0, 1.0])
    assert along.max() > 0.06 and along.min() < -0.05
    assert m["mesh_triangles"].max() < len(m["mesh_points"])


def test_hand_mesh_covers_every_joint_and_bone():
    """A tracked hand is drawn from its joints: a sphere around every joint and a tube
    along every bone (rings of vertices across it at both ends), skin-coloured."""
    from xrmode._models import BONE_RADIUS_M, HAND_BONES, JOINT_RADIUS_M, hand_models

    rng = np.random.default_rng(3)
    joints = np.array([0.1, 1.0, -0.3]) + rng.uniform(-0.08, 0.08, (26, 3))
    hand = HandInput("left", aim=Pose((0.1, 1.0, -0.3)), source="hand", joints=joints)
    m = hand_models(InputFrame(0.0, None, hand, HandInput("right")))
    pts = m["mesh_points"]
    # A sphere around each joint: many vertices exactly a joint radius from it.
    d = np.linalg.norm(pts[None] - joints[:, None], axis=-1)
    assert ((np.abs(d - JOINT_RADIUS_M) < 1e-6).sum(axis=1) >= 30).all()
    # Each bone: a ring of vertices a tube radius around both of its ends, across it.
    for a, b in HAND_BONES:
        axis = (joints[b] - joints[a]) / np.linalg.norm(joints[b] - joints[a])
        for end in (joints[a], joints[b]):
            rel = pts - end
            ring = (np.abs(np.linalg.norm(rel, axis=1) - BONE_RADIUS_M) < 1e-6) & (
                np.abs(rel @ axis) < 1e-6
            )
            assert ring.sum() >= 6, (a, b)
    assert len(HAND_BONES) >= 25 and all(0 <= a < 26 and 0 <= b < 26 for a, b in HAND_BONES)
    c = m["mesh_colors"]
    assert (c[:, 0] > c[:, 2]).all()  # skin, not controller grey
    assert BONE_RADIUS_M < JOINT_RADIUS_M


def test_measure_tool_b_without_points_removes_the_measurement_at_the_tip():
    from analysis.annotations import AddMeasurement
    from xrmode.tools import MeasureTool

    ws = Workspace(None, Annotations())
    hist = History(ws)
    ctx = ToolContext(transform=StageTransform(), apply=hist.apply, workspace=ws, history=hist)
    tip_stage = np.array([0.1, 1.1, -0.45])
    far = [ctx.transform.stage_to_world(tip_stage + [0.3, d, 0.0]) for d in (0.0, 0.05)]
    near = [ctx.transform.stage_to_world(tip_stage + [0.004, d, 0.0]) for d in (0.0, 0.05)]
    for pts in (far, near):
        hist.apply(AddMeasurement("distance", [tuple(float(v) for v in p) for p in pts]))
    tool = MeasureTool()
    tool.enabled = True
    right = HandInput("right", aim=Pose((0.1, 1.1, -0.4)), secondary=Button().next(True))
    tool.update(_frame(HandInput("left"), right), ctx)
    (kept,) = ws.annotations.measurements
    np.testing.assert_allclose(kept.points_um[0], far[0])


def test_wrist_menu_finishes_a_path_without_b_y():
    """Vive / WMR have no B / Y: the menu's "finish path" records the path being placed."""
    from xrmode.tools import MeasureTool

    ws = Workspace(None, Annotations())
    hist = History(ws)
    ctx = ToolContext(
        transform=StageTransform(), apply=hist.apply, workspace=ws, history=hist, scene=Scene()
    )

    def finish() -> str:
        ctx.run("annotations.finish_measurement")
        return ctx.message

    tool = MeasureTool()
    tb = Toolbox(
        {"measure": tool}, ctx, "measure", actions={"finish": MenuAction(lambda: "f", finish)}
    )
    tool.measuring.kind = "path"
    stage = [np.array([0.0, 1.0, -0.5]), np.array([0.03, 1.0, -0.5]), np.array([0.03, 1.04, -0.5])]
    right = HandInput("right", aim=Pose((0.0, 1.0, -0.45)))
    left = HandInput("left", aim=Pose((-0.2, 1.0, -0.3)))
    for p in stage:
        right = HandInput("right", aim=Pose(tuple(p + [0.0, 0.0, 0.05])), select=right.select)
        right = right.with_buttons(select=True)
        tb.update(_frame(left, right))
        right = right.with_buttons(select=False)
        tb.update(_frame(left, right))
    left = left.with_buttons(menu=True)
    tb.update(_frame(left, right))
    tb.menu.highlighted = tb.menu.items.index("finish")
    left = left.with_buttons(menu=False, select=True)
    tb.update(_frame(left, right))
    (m,) = ws.annotations.measurements
    want = sum(np.linalg.norm(b - a) for a, b in zip(stage, stage[1:], strict=False))
    assert m.kind == "path" and m.value == pytest.approx(want / ctx.transform.scale, rel=1e-6)


def test_count_tool_drags_a_marker_to_where_the_trigger_is_released():
    from analysis.annotations import AddMarker
    from xrmode.tools import CountTool

    ws = Workspace(None, Annotations())
    hist = History(ws)
    ctx = ToolContext(
        transform=StageTransform(),
        apply=hist.apply,
        workspace=ws,
        history=hist,
        classes=["a"],
        scene=Scene(),
    )
    reach = np.array([0.0, 0.0, -0.05])  # the tip is 5 cm ahead of the aim
    start = np.array([0.1, 1.1, -0.45])
    hist.apply(AddMarker("a", tuple(float(v) for v in ctx.transform.stage_to_world(start))))
    tool = CountTool()
    tool.enabled = True
    aim0 = Pose(tuple(start + [0.004, 0.0, 0.0] - reach))  # 4 mm off the marker: picks it up
    right = HandInput("right", aim=aim0).with_buttons(select=True)
    tool.update(_frame(HandInput("left"), right), ctx)
    end = start + np.array([0.06, -0.02, 0.03])
    right = HandInput("right", aim=Pose(tuple(end - reach)), select=right.select)
    right = right.with_buttons(select=True)
    tool.update(_frame(HandInput("left"), right), ctx)
    assert len(hist.undo_steps) == 1  # nothing yet: the drop makes the move
    tool.update(_frame(HandInput("left"), right.with_buttons(select=False)), ctx)
    (m,) = ws.annotations.markers
    np.testing.assert_allclose(m.position_um, ctx.transform.stage_to_world(end), atol=1e-9)
    hist.undo()
    np.testing.assert_allclose(
        ws.annotations.markers[0].position_um, ctx.transform.stage_to_world(start), atol=1e-9
    )
    # A press away from markers still places a new one.
    far = HandInput("right", aim=Pose(tuple(start + [0.1, 0.0, 0.0] - reach)))
    tool.update(_frame(HandInput("left"), far.with_buttons(select=True)), ctx)
    assert len(ws.annotations.markers) == 2
