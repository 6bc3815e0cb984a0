"""The headset's labels tool driven by synthetic pose and button sequences (no runtime).

References: NumPy edits of the original label array (merge, delete), an analytic ball for
the brush (voxel centres within the radius), the project's working copy read with zarr.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from analysis.io import open_labels
from analysis.project import Project
from tests.analysis.edits._labels_support import (
    SCALE,
    assert_pyramid,
    blobs,
    decodes_on_this_thread,
    label_state,
    levels_of,
    make_store,
    prefetches,
)
from tests.xrmode.test_tools import IDENT, Script, aim_at
from viewer.actions import LabelEditing, Pick
from viewer.scene import Labels, Scene
from xrmode._transform import StageTransform
from xrmode.input import Pose
from xrmode.tools import LabelTool, ToolContext

#: Stage metres per world µm (the 0.4 x 0.5 x 0.6 µm volume is 20 x 25 x 30 cm).
M_PER_UM = 0.5
#: An aim pose looking up the stage's +Z (world +z): 180° about y.
UP = (0.0, 1.0, 0.0, 0.0)


class Rig:
    def __init__(self, tmp: Path, store: Path | None = None) -> None:
        store = store or make_store(tmp / "img.zarr", blobs())
        self.project = Project.create(tmp / "p", image=store, labels=["cells"], fsync=False)
        self.scene = Scene([Labels(open_labels(store, "cells"), name="cells")])
        self.ctx = ToolContext(
            transform=StageTransform(M_PER_UM, IDENT, (0.0, 1.0, -0.5)),
            apply=self.project.history.apply,
            scene=self.scene,
            workspace=self.project.workspace,
            history=self.project.history,
        )
        self.ctx.on_undo = self.project.history.undo
        self.editing = LabelEditing(self.scene, self.project.edit_labels)
        self.tool = LabelTool(self.editing, "cells")
        self.tool.enabled = True
        self.s = Script()

    def level0(self) -> np.ndarray:
        """Level 0 as shown (stored voxels, NumPy's lookup of the id mapping)."""
        return label_state(self.project)[0]

    def press(self, pose: Pose, button: str = "select") -> None:
        self.s.click(self.tool, self.ctx, pose=pose, button=button)

    def from_below(self, zyx: tuple[float, float, float]) -> Pose:
        target = self.ctx.transform.world_to_stage(np.asarray(zyx, float))
        return Pose(tuple(target - [0.0, 0.0, 0.3]), UP)


def w(v: tuple[int, int, int]) -> tuple[float, float, float]:
    return (v[0] * SCALE[0], v[1] * SCALE[1], v[2] * SCALE[2])


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.project.close()


def test_trigger_selects_what_the_ray_hits_and_a_merges(rig: Rig) -> None:
    lab = blobs()
    # From above (the ray runs down world z) the column at y 15, x 20 meets object 2 first.
    rig.press(aim_at(rig.ctx, w((30, 15, 20))))
    assert rig.tool.pointed == 2
    rig.press(aim_at(rig.ctx, w((30, 40, 30))))  # object 3
    assert rig.scene.selection.label_ids == [2, 3]
    rig.press(aim_at(rig.ctx, w((30, 40, 30))), button="primary")
    np.testing.assert_array_equal(rig.level0(), np.where(lab == 3, 2, lab))
    assert_pyramid(levels_of(rig.project.path / "labels" / "cells.zarr"))
    # the layer now reads the working copy: the ray sees the merged object
    rig.press(aim_at(rig.ctx, w((30, 40, 30))))
    assert rig.tool.pointed == 2


def test_b_deletes_the_pointed_object_and_undo_restores_it(rig: Rig) -> None:
    lab = blobs()
    rig.press(rig.from_below(w((10, 15, 20))), button="secondary")  # from below: object 1
    np.testing.assert_array_equal(rig.level0(), np.where(lab == 1, 0, lab))
    rig.ctx.undo()
    np.testing.assert_array_equal(rig.level0(), lab)


def test_split_seeds_by_thumbstick_click_then_a_accepts(rig: Rig) -> None:
    lab = blobs()
    a = rig.from_below(w((10, 15, 8)))
    b = rig.from_below(w((10, 15, 36)))
    rig.press(a, button="thumbstick_click")
    rig.press(b, button="thumbstick_click")
    assert len(rig.tool.brush.seeds) == 2 and rig.tool.brush.preview is not None
    np.testing.assert_array_equal(rig.level0(), lab)  # the preview writes nothing
    rig.press(b, button="primary")
    got = rig.level0()
    obj = lab == 1
    np.testing.assert_array_equal(got[~obj], lab[~obj])
    assert (got[obj] != 0).all() and set(np.unique(got[obj]).tolist()) == {1, 6}
    assert got[5, 15, 8] == 1 and got[5, 15, 36] == 6  # the ray enters each part at z 5


def test_paint_mode_stamps_balls_while_the_trigger_is_held(rig: Rig) -> None:
    lab = blobs()
    rig.tool.brush.value = 9
    rig.tool.brush.radius_um = 0.045  # 4.5 voxels
    rig.tool.update(rig.s.step(stick=(1.0, 0.0)), rig.ctx)  # thumbstick right: paint mode
    rig.tool.update(rig.s.step(stick=(0.0, 0.0)), rig.ctx)
    assert rig.tool.mode == "paint"
    centres = [(20, 20, 20), (20, 20, 26)]
    for i, c in enumerate(centres):
        tip = rig.ctx.transform.world_to_stage(np.asarray(w(c)))
        pose = Pose(tuple(tip + [0.0, 0.0, 0.05]), IDENT)  # the tip is 5 cm ahead of the aim
        rig.tool.update(rig.s.step(pose=pose, select=True), rig.ctx)
        if i == 0:
            assert len(rig.project.history.undo_steps) == 0  # a stroke is one step, at release
    rig.tool.update(rig.s.step(select=False), rig.ctx)
    zz, yy, xx = np.indices(lab.shape)
    expect = lab.copy()
    for c in centres:
        ball = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < 4.5**2
        expect[ball] = 9
    np.testing.assert_array_equal(rig.level0(), expect)
    assert [s.name for s in rig.project.history.undo_steps] == ["paint stroke"]
    rig.ctx.undo()
    np.testing.assert_array_equal(rig.level0(), lab)


def test_the_ball_in_the_hand_has_the_chunks_under_it_decoded_before_the_trigger(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In paint mode the ball at the hand's tip has the working copy decode, in the
    background, the chunks a stamp there reads: the stamp when the trigger is pressed
    decodes no chunk file on the frame thread, and paints the analytic ball."""
    import time

    from analysis.io import LabelEditStore

    lab = blobs()
    rig.tool.brush.value, rig.tool.brush.radius_um = 9, 0.045  # 4.5 voxels
    rig.tool.update(rig.s.step(stick=(1.0, 0.0)), rig.ctx)  # thumbstick right: paint mode
    rig.tool.update(rig.s.step(stick=(0.0, 0.0)), rig.ctx)
    c1, c2 = (20, 20, 20), (30, 40, 50)  # 16³ chunks: c2's are not c1's

    def at(c: tuple[int, int, int]) -> Pose:
        tip = rig.ctx.transform.world_to_stage(np.asarray(w(c)))
        return Pose(tuple(tip + [0.0, 0.0, 0.05]), IDENT)  # the tip is 5 cm ahead of the aim

    rig.tool.update(rig.s.step(pose=at(c1), select=True), rig.ctx)  # makes the copy
    rig.tool.update(rig.s.step(select=False), rig.ctx)
    store = rig.editing.image("cells")
    assert isinstance(store, LabelEditStore)
    decoded = decodes_on_this_thread(monkeypatch)
    asked = prefetches(monkeypatch)
    deadline = time.monotonic() + 10.0
    while not (asked and asked[-1].is_set()) and time.monotonic() < deadline:
        rig.tool.update(rig.s.step(pose=at(c2)), rig.ctx)  # frames with the ball at c2
        time.sleep(0.011)
    rig.tool.update(rig.s.step(pose=at(c2), select=True), rig.ctx)
    rig.tool.update(rig.s.step(select=False), rig.ctx)
    assert decoded == []
    zz, yy, xx = np.indices(lab.shape)
    expect = lab.copy()
    for c in (c1, c2):
        expect[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < 4.5**2] = 9
    np.testing.assert_array_equal(rig.level0(), expect)


def test_the_labels_tool_without_a_project_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vrscope.cli import main

    monkeypatch.setenv("XR_RUNTIME_JSON", str(tmp_path / "missing_runtime.json"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path))
    store = make_store(tmp_path / "img.zarr", blobs())
    rc = main(["xr", str(store), "--labels", "cells", "--tool", "labels"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "--project" in err


# ---------------------------------------------------------------------- stamps off the frame
def _background_tool(rig: Rig) -> LabelTool:
    """The app's labels tool: stamps written on the tool's thread, change events delivered
    on this one (``psygnal.emit_queued`` in ``LabelTool.poll``)."""
    import threading

    rig.editing.close()
    rig.editing = LabelEditing(
        rig.scene, rig.project.edit_labels, thread=threading.current_thread()
    )
    tool = LabelTool(rig.editing, "cells", background=True)
    tool.enabled = True
    rig.tool = tool
    tool.update(rig.s.step(stick=(1.0, 0.0)), rig.ctx)  # thumbstick right: paint mode
    tool.update(rig.s.step(stick=(0.0, 0.0)), rig.ctx)
    assert tool.mode == "paint"
    return tool


def _tip_pose(rig: Rig, c: tuple[int, int, int]) -> Pose:
    tip = rig.ctx.transform.world_to_stage(np.asarray(w(c)))
    return Pose(tuple(tip + [0.0, 0.0, 0.05]), IDENT)  # the tip is 5 cm ahead of the aim


def _ball(shape: tuple[int, ...], c: tuple[int, int, int], r_vox: float) -> np.ndarray:
    zz, yy, xx = np.indices(shape)
    return (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < r_vox**2


def test_stamps_are_drawn_at_once_while_the_write_waits(rig: Rig) -> None:
    """The frame that samples the trigger returns while the stamp's write is still held
    back (a gate in the history's apply): the stamp is pending there (its centre, radius
    and id), nothing is on disk; released, the working copy holds the NumPy ball, one undo
    step for the stroke, and the pending drawing goes once the views draw the edit."""
    import threading

    lab = blobs()
    tool = _background_tool(rig)
    tool.brush.value, tool.brush.radius_um = 9, 0.045
    gate, entered = threading.Event(), threading.Event()
    apply = rig.project.history.apply

    def gated(cmd):  # the write waits until the test lets it go
        entered.set()
        assert gate.wait(30)
        return apply(cmd)

    rig.ctx.apply = gated
    centres = [(20, 20, 20), (20, 20, 26)]
    for c in centres:
        tool.update(rig.s.step(pose=_tip_pose(rig, c), select=True), rig.ctx)
    assert entered.wait(30)  # the writer is inside the first stamp's apply ...
    # ... and the frame thread is not: both stamps are drawn from memory, unwritten.
    np.testing.assert_allclose([p.centre_um for p in tool.pending], [w(c) for c in centres])
    assert [(p.radius_um, p.value, p.written) for p in tool.pending] == [(0.045, 9, False)] * 2
    np.testing.assert_array_equal(rig.level0(), lab)
    tool.update(rig.s.step(select=False), rig.ctx)  # release: the stroke ends
    gate.set()
    tool.flush(rig.ctx)
    assert all(p.written for p in tool.pending)
    expect = lab.copy()
    for c in centres:
        expect[_ball(lab.shape, c, 4.5)] = 9
    np.testing.assert_array_equal(rig.level0(), expect)
    assert_pyramid(levels_of(rig.project.path / "labels" / "cells.zarr"))
    assert [s.name for s in rig.project.history.undo_steps] == ["paint stroke"]
    tool.edits_drawn()
    assert tool.pending == []
    tool.close()


def test_a_refused_stamp_leaves_the_drawing_and_says_why(rig: Rig) -> None:
    """Painting a locked id is refused (analysis.edits): the pending stamp is dropped
    when the refusal comes back and the refusal is the wrist message; nothing changed."""
    lab = blobs()
    tool = _background_tool(rig)
    rig.ctx.run("labels.lock", Pick(layer="cells", label=2))
    tool.brush.value, tool.brush.radius_um = 2, 0.045
    tool.update(rig.s.step(pose=_tip_pose(rig, (20, 20, 20)), select=True), rig.ctx)
    assert len(tool.pending) == 1
    tool.update(rig.s.step(select=False), rig.ctx)
    tool.flush(rig.ctx)
    assert tool.pending == []
    assert "locked" in rig.ctx.message, rig.ctx.message
    np.testing.assert_array_equal(rig.level0(), lab)
    tool.close()
