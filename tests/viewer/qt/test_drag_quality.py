"""Dragging the camera draws at interactive volume quality; the view settles back to still."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6 import QtCore
from PySide6.QtCore import Qt

from viewer.render import resolve_quality

pytestmark = pytest.mark.qt


def test_drag_draws_interactive_then_still(
    make_viewer: Any, fibsem_store: Path, qtbot: Any
) -> None:
    win = make_viewer(str(fibsem_store), ["mitochondria"])
    thread = win.render_view.render_thread
    renderer = thread.renderer
    assert renderer.quality == resolve_quality("still")
    applied: list[str] = []
    original = renderer.set_quality

    def record(quality: Any) -> None:
        applied.append(quality)
        original(quality)

    renderer.set_quality = record
    rv = win.render_view
    centre = rv.rect().center()
    frames = thread.frames
    qtbot.mousePress(rv, Qt.MouseButton.LeftButton, pos=centre)
    for k in range(1, 6):
        qtbot.mouseMove(rv, centre + QtCore.QPoint(8 * k, 2 * k))
    assert thread.interactive
    camera_moved = win.session.scene.camera.position
    # A frame drawn during the drag, at interactive quality (under load the first frame
    # after the press can be one begun before it, still at "still" quality).
    qtbot.waitUntil(lambda: thread.frames > frames and "interactive" in applied, timeout=60_000)
    qtbot.mouseRelease(rv, Qt.MouseButton.LeftButton, pos=centre + QtCore.QPoint(40, 10))
    assert not thread.interactive
    assert thread.wait_idle(60)
    qtbot.waitUntil(lambda: applied[-1:] == ["still"], timeout=60_000)
    assert applied[0] == "interactive"
    assert renderer.quality == resolve_quality("still")
    assert win.session.scene.camera.position == camera_moved  # the release did not move it
