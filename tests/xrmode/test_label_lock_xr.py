"""The headset's wrist menu locks the object the labels tool's ray points at; a ball
painted over it then leaves it whole (synthetic poses and buttons, no runtime).

References: an analytic ball (voxel centres within the radius) and the original array,
the project's working copy read with zarr-python.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from analysis.edits import locked_ids
from tests.analysis.edits._labels_support import assert_pyramid, blobs, levels_of
from tests.xrmode.test_follow import menu_pick
from tests.xrmode.test_label_tool import Rig, w
from tests.xrmode.test_tools import IDENT, aim_at
from xrmode.input import Pose
from xrmode.tools import LABEL_MENU, Toolbox, label_menu


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.project.close()


def test_wrist_menu_lock_then_a_ball_goes_around_the_object(rig: Rig) -> None:
    lab = blobs()
    h = rig.project.history
    menu = label_menu(rig.tool, rig.ctx)
    box = Toolbox({"labels": rig.tool}, rig.ctx, "labels", undo=h.undo, redo=h.redo, actions=menu)
    assert box.menu.items[-len(LABEL_MENU) :] == ["lock", "unlock", "relabel", "interpolate"]
    # Point at object 2 (from above, the column at y 15, x 20 meets it first).
    rig.press(aim_at(rig.ctx, w((30, 15, 20))))
    assert rig.tool.pointed == 2
    for inp in menu_pick(index=box.menu.items.index("lock")):
        box.update(inp)
    img = rig.project.edit_labels("cells")
    assert locked_ids(img) == {2}, rig.ctx.message
    assert "locked 2" in rig.ctx.message
    # Paint mode; one ball (4.5 voxels) at the hand's tip on the boundary of objects 1 and 2.
    rig.tool.brush.value = 9
    rig.tool.brush.radius_um = 0.045
    rig.tool.update(rig.s.step(stick=(1.0, 0.0)), rig.ctx)
    rig.tool.update(rig.s.step(stick=(0.0, 0.0)), rig.ctx)
    assert rig.tool.mode == "paint"
    c = (20, 20, 20)
    tip = rig.ctx.transform.world_to_stage(np.asarray(w(c)))
    rig.tool.update(
        rig.s.step(pose=Pose(tuple(tip + [0.0, 0.0, 0.05]), IDENT), select=True), rig.ctx
    )
    rig.tool.update(rig.s.step(select=False), rig.ctx)
    zz, yy, xx = np.indices(lab.shape)
    ball = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < 4.5**2
    assert (ball & (lab == 2)).any() and (ball & (lab == 1)).any()
    got = rig.level0()
    np.testing.assert_array_equal(got, np.where(ball & (lab != 2), 9, lab))
    assert_pyramid(levels_of(rig.project.path / "labels" / "cells.zarr"))
    # Undo the stroke, then the lock.
    assert [s.name for s in h.undo_steps] == ["lock 2", "paint stroke"]
    rig.ctx.undo()
    rig.ctx.undo()
    assert locked_ids(img) == frozenset()
    np.testing.assert_array_equal(rig.level0(), lab)
