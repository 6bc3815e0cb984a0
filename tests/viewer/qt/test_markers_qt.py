"""Issue 18.13: a marker is moved by dragging it on a slice (count tool), undoably.

Reference: the world positions of the screen points pressed and released, mapped
through the view's own transform (the same mapping a click uses, tested elsewhere
against the store's voxels).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6 import QtCore

from tests.viewer.qt.test_app import click, key

pytestmark = pytest.mark.qt

Qt = QtCore.Qt


def test_drag_moves_a_marker_and_undo_puts_it_back(
    make_viewer: Any, fibsem_store: Path, tmp_path: Path, qtbot: Any
) -> None:
    win = make_viewer(str(fibsem_store), project=str(tmp_path / "p"))
    s = win.session
    view = win.slices["xy"]
    px = view.pixel_size_um()
    c = np.asarray(s.cursor)
    key(qtbot, win, Qt.Key.Key_K)
    a = c + [0, -1.5, -1.5]
    click(qtbot, win, "xy", a)
    (m,) = s.annotations.markers
    qtbot.wait(30)
    b = c + [0, 1.0, 2.0]
    start = view.mapFromScene(view.view_to_scene(tuple(m.position_um)))
    end = view.mapFromScene(view.view_to_scene(tuple(b)))
    rect_before = view.view.viewRect()
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=start)
    for f in np.linspace(0, 1, 6)[1:]:
        qtbot.mouseMove(view.viewport(), start + (end - start) * f)
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=end)
    qtbot.wait(30)
    (moved,) = s.annotations.markers
    assert moved.id == m.id
    np.testing.assert_allclose(moved.position_um[1:], b[1:], atol=2 * px)
    assert moved.position_um[0] == pytest.approx(c[0])  # stays on the slice
    assert view.view.viewRect() == rect_before  # the drag moved the marker, not the view
    # One undoable, journaled step.
    key(qtbot, win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_allclose(s.annotations.markers[0].position_um, m.position_um)
    journal = (tmp_path / "p" / "journal.jsonl").read_text()
    assert "move_marker" in journal
    # Outside the count tool a drag pans the view and leaves the markers alone.
    key(qtbot, win, Qt.Key.Key_Escape)
    start = view.mapFromScene(view.view_to_scene(tuple(s.annotations.markers[0].position_um)))
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=start)
    for f in np.linspace(0, 1, 6)[1:]:
        qtbot.mouseMove(view.viewport(), start + (end - start) * f)
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=end)
    qtbot.wait(30)
    np.testing.assert_allclose(s.annotations.markers[0].position_um, m.position_um)
