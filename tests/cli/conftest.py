"""CLI test fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def desktop_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path | None]:
    """``vrscope view`` keeps recent projects in the user's settings: a fresh folder here."""
    try:
        from PySide6 import QtCore
    except ImportError:  # the core install has no Qt
        yield None
        return
    folder = tmp_path_factory.mktemp("settings")
    fmt, scope = QtCore.QSettings.Format.IniFormat, QtCore.QSettings.Scope.UserScope
    QtCore.QSettings.setPath(fmt, scope, str(folder))
    yield folder
