"""``labels.lock`` / ``labels.unlock`` / ``labels.relabel`` / ``labels.interpolate`` through
the minimal front end of ``test_label_actions`` (no GUI).

References: NumPy (``np.where`` relabels, a disc of voxel centres within the radius), the
level-0 image read with zarr-python.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from skimage.draw import disk

from analysis.edits import locked_ids
from tests.analysis.edits._labels_support import assert_pyramid, blobs, levels_of
from tests.viewer.actions.test_label_actions import Front, world
from viewer.actions import ACTIONS, Pick, run


@pytest.fixture
def front(tmp_path: Path) -> Iterator[Front]:
    f = Front(tmp_path, blobs())
    yield f
    f.project.close()


def _locked(front: Front) -> set[int]:
    return set(locked_ids(front.project.edit_labels("cells")))


def test_lock_the_selection_then_a_brush_stroke_leaves_it(front: Front) -> None:
    lab = blobs()
    run("labels.select", front, Pick(layer="cells", label=1))
    run("labels.lock", front)
    assert _locked(front) == {1}
    assert "locked 1" in front.messages[-1]
    # A disc across object 1 and 2 on slice z 18: object 2's part and background become 7.
    front.label_brush.value = 7
    front.label_brush.radius_um = 0.08
    run("labels.paint", front, Pick(layer="cells", point_um=world((18, 20, 20)), axis=0))
    yy, xx = disk((20, 20), 8 + 1e-9, shape=lab.shape[1:])
    disc = np.zeros(lab.shape, bool)
    disc[18, yy, xx] = True
    np.testing.assert_array_equal(front.level0(), np.where(disc & (lab != 1), 7, lab))
    # Painting id 1 itself, or deleting it, is refused with a message; nothing changes.
    before = front.level0()
    front.label_brush.value = 1
    assert run("labels.paint", front, Pick(layer="cells", point_um=world((2, 2, 2)))) is None
    assert "locked" in front.messages[-1]
    assert run("labels.delete", front, Pick(layer="cells", label=1)) is None
    np.testing.assert_array_equal(front.level0(), before)
    # Unlock the pointed object; undo locks it again.
    run("labels.unlock", front, Pick(layer="cells", label=1))
    assert _locked(front) == set()
    front.undo()
    assert _locked(front) == {1}


def test_relabel_the_pointed_object(front: Front) -> None:
    lab = blobs()
    cmd = run("labels.relabel", front, Pick(layer="cells", label=3))
    assert cmd is not None and cmd.to == 6
    np.testing.assert_array_equal(front.level0(), np.where(lab == 3, 6, lab))
    assert front.scene.selection.label_ids == [6]
    assert_pyramid(levels_of(front.project.path / "labels" / "cells.zarr"))


def test_interpolate_between_the_pointed_slice_and_the_nearest_section(
    tmp_path: Path,
) -> None:
    lab = np.zeros((40, 50, 60), np.uint16)
    yy, xx = disk((25, 30), 6, shape=lab.shape[1:])
    lab[4, yy, xx] = 5
    lab[14, yy, xx] = 5  # a cylinder's two end sections (and one more far away)
    lab[30, yy, xx] = 5
    f = Front(tmp_path, lab)
    try:
        f.label_brush.value = 5
        # Pointing at slice z 14 of the XY view: the nearer section is z 4 (10 away).
        cmd = run(
            "labels.interpolate", f, Pick(layer="cells", point_um=world((14, 25, 30)), axis=0)
        )
        assert cmd is not None and (cmd.start, cmd.stop) == (14, 4)
        expect = lab.copy()
        expect[5:14, yy, xx] = 5  # the same disc on both sections: the cylinder
        np.testing.assert_array_equal(f.level0(), expect)
        # On a slice without the object the action says so.
        assert (
            run("labels.interpolate", f, Pick(layer="cells", point_um=world((20, 25, 30)), axis=0))
            is None
        )
        assert "no voxels on this slice" in f.messages[-1]
        f.undo()
        np.testing.assert_array_equal(f.level0(), lab)
    finally:
        f.project.close()


def test_the_new_actions_have_free_shortcuts() -> None:
    keys = [a.shortcut for a in ACTIONS if a.shortcut]
    assert len(keys) == len(set(keys))
    for aid in ("labels.lock", "labels.unlock", "labels.relabel", "labels.interpolate"):
        assert ACTIONS[aid].shortcut and ACTIONS[aid].headset
