"""A project open in one window cannot be opened for writing in a second one: the window
says who holds it (issue 21: two writers interleaved the journal and bricked the project)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6 import QtWidgets

pytestmark = pytest.mark.qt


def error_boxes(win: Any) -> list[QtWidgets.QMessageBox]:
    return [b for b in win.findChildren(QtWidgets.QMessageBox, "error") if b.isVisible()]


def test_open_project_held_by_another_window_says_who_holds_it(
    make_viewer: Any, fibsem_store: Path, tmp_path: Path, qtbot: Any, monkeypatch: Any
) -> None:
    folder = tmp_path / "proj"
    win = make_viewer(str(fibsem_store), ["mitochondria"], project=str(folder))
    journal = folder / "journal.jsonl"
    before = journal.read_bytes()
    monkeypatch.setattr(QtWidgets.QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    n_windows = len([w for w in QtWidgets.QApplication.topLevelWidgets() if w.isVisible()])
    win.qactions["file.open"].trigger()  # File > Open project… on the same folder
    qtbot.waitUntil(lambda: bool(error_boxes(win)), timeout=10_000)
    text = error_boxes(win)[0].text()
    assert "is open for writing" in text
    assert f"pid {os.getpid()} on {socket.gethostname()}" in text
    assert "pid" in win.status.currentMessage()
    # No second window, and the journal is untouched.
    visible = [
        w
        for w in QtWidgets.QApplication.topLevelWidgets()
        if w.isVisible() and not isinstance(w, QtWidgets.QMessageBox)
    ]
    assert len(visible) <= n_windows
    assert journal.read_bytes() == before


def test_a_locked_project_opens_read_only_from_the_message(
    make_viewer: Any, fibsem_store: Path, tmp_path: Path, qtbot: Any, monkeypatch: Any
) -> None:
    """Issue 21 in the desktop: the "is open for writing" message offers "Open read-only";
    that window shows the project with every editing entry greyed out, says "read-only"
    in its status bar, and a click with the count tool's key adds nothing to the journal."""
    from PySide6 import QtCore

    from tests.viewer.qt.conftest import wait_rendered
    from tests.viewer.qt.test_app import click, key
    from tests.viewer.qt.test_filemenu_qt import menu_click, other_windows

    Qt = QtCore.Qt
    folder = tmp_path / "proj"
    win = make_viewer(str(fibsem_store), ["mitochondria"], project=str(folder))
    win.session.place_marker(win.session.cursor)  # an edit the read-only window must show
    journal = folder / "journal.jsonl"
    before = journal.read_bytes()
    monkeypatch.setattr(QtWidgets.QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    menu_click(qtbot, win, "File", "Open project…")
    qtbot.waitUntil(lambda: bool(error_boxes(win)), timeout=10_000)
    box = error_boxes(win)[0]
    assert "is open for writing" in box.text()
    button = box.findChild(QtWidgets.QPushButton, "open_read_only")
    assert button is not None and button.text() == "Open read-only"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(other_windows(win)) == 1, timeout=30_000)
    ro = other_windows(win)[0]
    try:
        wait_rendered(qtbot, ro)
        # the project as it is, the marker included
        assert ro.session.annotations.counts() == win.session.annotations.counts()
        label = ro.findChild(QtWidgets.QLabel, "read_only")
        assert label is not None and label.isVisible() and "read-only" in label.text()
        assert "read-only" in ro.windowTitle()
        for name in (
            "edit.undo",
            "tool.count",
            "tool.distance",
            "annotations.finish_measurement",
            "file.save",
            "tool.paint",
        ):
            assert not ro.qactions[name].isEnabled(), name
        assert ro.qactions["tool.navigate"].isEnabled()
        assert ro.qactions["file.screenshot"].isEnabled()
        # K (count tool) does nothing; a click on the slice places no marker
        n = len(ro.session.annotations.markers)
        key(qtbot, ro, Qt.Key.Key_K)
        click(qtbot, ro, "xy", np.asarray(ro.session.cursor) + [0, 1.0, 1.0])
        assert len(ro.session.annotations.markers) == n
        assert journal.read_bytes() == before
        # ... while the first window still edits (it holds the lock)
        win.session.place_marker(np.asarray(win.session.cursor) + [0, 0.5, 0.5])
        assert len(journal.read_bytes()) > len(before)
    finally:
        ro.close()
