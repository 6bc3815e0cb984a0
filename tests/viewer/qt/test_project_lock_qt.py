"""A project open in one window cannot be opened for writing in a second one: the window
says who holds it (issue 21: two writers interleaved the journal and bricked the project)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

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
