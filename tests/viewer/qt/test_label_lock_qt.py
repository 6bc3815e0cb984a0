"""Lock an object at the desk (Labels menu), then a brush stroke across it: the locked
object keeps every voxel; paint two sections and interpolate between them (Shift+P).
Driven with QTest mouse and keys at the default zoom.

References: the project's working copy read with zarr-python (``levels_of``), the original
array, skimage.draw.disk for the brush's discs (the stroke's ends, the two sections; the
same disc on both sections interpolates to a cylinder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6 import QtCore
from skimage.draw import disk

from analysis.edits import locked_ids
from tests.analysis.edits._labels_support import assert_pyramid, blobs, levels_of, make_store
from tests.viewer.qt.conftest import wait_slices
from tests.viewer.qt.test_app import click, key
from tests.viewer.qt.test_filemenu_qt import menu_click
from tests.viewer.qt.test_label_tools import copy_level0, cursor_voxel, pause, w

pytestmark = pytest.mark.qt

Qt = QtCore.Qt


@pytest.fixture
def labels_viewer(make_viewer: Any, tmp_path: Path) -> Any:
    store = make_store(tmp_path / "img.zarr", blobs())
    return make_viewer(str(store), ["cells"], project=str(tmp_path / "proj"))


def test_lock_from_the_labels_menu_then_a_stroke_leaves_the_object(
    qtbot: Any, labels_viewer: Any
) -> None:
    win = labels_viewer
    s = win.session
    lab = blobs()
    z = cursor_voxel(win)[0]
    assert 5 <= z < 35  # the XY slice crosses object 3 (y 30..44, x 10..49)
    wait_slices(qtbot, win)
    click(qtbot, win, "xy", w((z, 40, 30)))  # select object 3
    qtbot.waitUntil(lambda: s.scene.selection.label_ids == [3], timeout=10_000)
    pause(qtbot)
    menu_click(qtbot, win, "Labels", "Lock objects")
    img = s.label_image("cells")
    qtbot.waitUntil(lambda: locked_ids(img) == {3}, timeout=10_000)
    key(qtbot, win, Qt.Key.Key_N, Qt.KeyboardModifier.AltModifier)  # labels.new_id
    value = s.label_brush.value
    assert value == 6
    key(qtbot, win, Qt.Key.Key_B)  # tool.paint
    s.label_brush.radius_um = 0.045  # 4.5 voxels: no voxel centre on the rim
    # A stroke across the object: from background left of it to background right of it.
    view = win.slices["xy"]
    a, b = (z, 40, 4), (z, 40, 55)
    pa = view.mapFromScene(view.view_to_scene(w(a)))
    pb = view.mapFromScene(view.view_to_scene(w(b)))
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=pa)
    qtbot.mouseMove(view.viewport(), (pa + pb) / 2)
    qtbot.mouseMove(view.viewport(), pb)
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=pb)
    got = copy_level0(win)
    assert_pyramid(levels_of(s.project.path / "labels" / "cells.zarr"))
    # The locked object keeps exactly its voxels; the rest of the stroke is painted.
    np.testing.assert_array_equal(got == 3, lab == 3)
    changed = got != lab
    assert changed.any() and (got[changed] == value).all() and (lab[changed] == 0).all()
    assert set(np.unique(np.argwhere(changed)[:, 0]).tolist()) == {z}
    for end in (a, b):  # the discs at both ends of the stroke, around the object
        rr, cc = disk(end[1:], 4.5, shape=lab.shape[1:])
        on = np.zeros(lab.shape[1:], bool)
        on[rr, cc] = True
        np.testing.assert_array_equal(got[z][on], np.where(lab[z][on] == 3, 3, value))
    # One undo reverts the stroke, a second the lock.
    key(qtbot, win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(copy_level0(win), lab)
    assert locked_ids(img) == {3}
    key(qtbot, win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert locked_ids(img) == frozenset()


def test_paint_two_sections_then_interpolate_with_the_key(qtbot: Any, labels_viewer: Any) -> None:
    win = labels_viewer
    s = win.session
    lab = blobs()
    key(qtbot, win, Qt.Key.Key_N, Qt.KeyboardModifier.AltModifier)  # labels.new_id
    value = s.label_brush.value
    s.label_brush.radius_um = 0.045  # 4.5 voxels: no voxel centre on the rim
    yx = (15, 50)  # background in every z slice (objects 1, 2 end at x 40, 3 starts at y 30)
    xy = win.slices["xy"]
    for z in (10, 30):
        # Navigate: a click on the XZ view moves the XY slice to z; then paint a disc there.
        key(qtbot, win, Qt.Key.Key_Escape)
        click(qtbot, win, "xz", w((z, cursor_voxel(win)[1], yx[1])))
        qtbot.waitUntil(lambda z=z: cursor_voxel(win)[0] == z, timeout=10_000)
        pause(qtbot)
        key(qtbot, win, Qt.Key.Key_B)
        wait_slices(qtbot, win)
        click(qtbot, win, "xy", w((z, *yx)))
        pause(qtbot)
    rr, cc = disk(yx, 4.5, shape=lab.shape[1:])
    on = np.zeros(lab.shape[1:], bool)
    on[rr, cc] = True
    painted = lab.copy()
    painted[10][on] = painted[30][on] = value
    np.testing.assert_array_equal(copy_level0(win), painted)
    # With the mouse over the XY slice at z 30, Shift+P fills the cylinder between.
    qtbot.mouseMove(xy.viewport(), xy.mapFromScene(xy.view_to_scene(w((30, *yx)))))
    qtbot.wait(20)
    key(qtbot, win, Qt.Key.Key_P, Qt.KeyboardModifier.ShiftModifier)
    expect = painted.copy()
    expect[10:31][:, on] = value
    np.testing.assert_array_equal(copy_level0(win), expect)
    assert_pyramid(levels_of(s.project.path / "labels" / "cells.zarr"))
    key(qtbot, win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # one undo
    np.testing.assert_array_equal(copy_level0(win), painted)
