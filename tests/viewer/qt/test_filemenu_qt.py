"""Issue 18.10: opening data from the window (File menu), driven by mouse clicks on the menus.

The file dialogs are the only thing patched (their static calls return what a user
would pick). References: the stores' NGFF label listings and label voxels read with
zarr, the tracks' ground-truth table (pandas), the project folder on disk.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from PySide6 import QtCore, QtWidgets
from pytestqt.exceptions import TimeoutError as WaitTimeout

from tests.viewer.qt.conftest import truth, wait_rendered, wait_slices
from tests.viewer.qt.test_app import level0

pytestmark = pytest.mark.qt

Qt = QtCore.Qt


def label_names(store: Path) -> list[str]:
    attrs = zarr.open_group(str(store / "labels"), mode="r").attrs.asdict()
    return list(attrs.get("ome", attrs)["labels"])


def menu_click(qtbot: Any, win: Any, title: str, entry: str) -> None:
    """Click menu ``title`` in the menu bar, then its entry ``entry`` (mouse, as a user).

    The entry must trigger: a click into a menu not yet mapped that does not trigger it
    is repeated, as a person would, at most three times, before failing.
    """
    mb = win.menuBar()
    menu_action = next(a for a in mb.actions() if a.text().replace("&", "") == title)
    menu = menu_action.menu()
    act = next(a for a in menu.actions() if a.text() == entry)
    fired: list[bool] = []

    def slot(*_: Any) -> None:
        fired.append(True)

    act.triggered.connect(slot)
    try:
        for _ in range(3):
            if not menu.isVisible():
                qtbot.mouseClick(
                    mb, Qt.MouseButton.LeftButton, pos=mb.actionGeometry(menu_action).center()
                )
                qtbot.waitUntil(
                    lambda: menu.isVisible() and bool(menu.windowHandle().isExposed()),
                    timeout=5000,
                )
            qtbot.mouseClick(menu, Qt.MouseButton.LeftButton, pos=menu.actionGeometry(act).center())
            with contextlib.suppress(WaitTimeout):
                qtbot.waitUntil(lambda: bool(fired), timeout=3000)
            if fired:
                break
        assert fired, f"clicking {title} > {entry} did not trigger it"
    finally:
        act.triggered.disconnect(slot)
    qtbot.wait(20)


def other_windows(win: Any) -> list[Any]:
    from viewer.qt import QtViewer

    return [
        w
        for w in QtWidgets.QApplication.topLevelWidgets()
        if isinstance(w, QtViewer) and w is not win and w.isVisible()
    ]


def test_add_labels_and_open_a_store_from_the_file_menu(
    make_viewer: Any, fibsem_store: Path, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    win = make_viewer(str(fibsem_store))
    s = win.session
    assert not s.labels_layers
    names = label_names(fibsem_store)
    offered: list[list[str]] = []

    def get_item(parent: Any, title: str, label: str, items: list[str], *a: Any) -> Any:
        offered.append(list(items))
        return "nucleus", True

    monkeypatch.setattr(QtWidgets.QInputDialog, "getItem", staticmethod(get_item))
    menu_click(qtbot, win, "File", "Add labels…")
    assert offered and offered[0][: len(names)] == names  # every label image of the store
    assert [lay.name for lay in s.labels_layers] == ["nucleus"]
    # The slices show it: every nucleus voxel of the XY slice is coloured (zarr's voxels).
    wait_slices(qtbot, win)
    raw, scale, trans = level0(fibsem_store / "labels" / "nucleus")
    k = int(round((s.cursor[0] - trans[0]) / scale[0]))
    lab = np.asarray(raw[k])
    rgba = win.slices["xy"].labels["nucleus"].image
    assert lab.any()
    assert (rgba[lab > 0][:, 3] > 0).all() and (rgba[lab == 0][:, 3] == 0).all()

    # Open store…: a new window with the store and all its label images.
    monkeypatch.setattr(
        QtWidgets.QFileDialog, "getExistingDirectory", lambda *a, **k: str(fibsem_store)
    )
    menu_click(qtbot, win, "File", "Open store…")
    new = other_windows(win)
    assert len(new) == 1
    assert sorted(lay.name for lay in new[0].session.labels_layers) == sorted(names)
    wait_rendered(qtbot, new[0])
    new[0].close()

    # A folder that is no store: said in the window.
    monkeypatch.setattr(
        QtWidgets.QFileDialog, "getExistingDirectory", lambda *a, **k: str(fibsem_store.parent)
    )
    menu_click(qtbot, win, "File", "Open store…")
    assert not other_windows(win)
    assert "could not open" in win.status.currentMessage()


def test_add_tracks_new_project_recent_and_save_as_create_folders(
    make_viewer: Any,
    timelapse_store: Path,
    tmp_path: Path,
    qtbot: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    win = make_viewer(str(timelapse_store), ["nuclei"])
    s = win.session
    assert s.tracks is None
    monkeypatch.setattr(
        QtWidgets.QFileDialog,
        "getExistingDirectory",
        lambda *a, **k: str(timelapse_store / "tracks"),
    )
    menu_click(qtbot, win, "File", "Add tracks (GEFF)…")
    nodes = truth(timelapse_store)
    assert s.tracks is not None and s.tracks.n_nodes == len(nodes)
    assert sorted(s.tracks.node_ids.tolist()) == sorted(nodes.index.tolist())
    assert len(win.tracks_panel.rows) > 0
    assert s.time == int(nodes["t"].min())
    assert win.time_bar.isEnabled()

    # Save project as… into a folder that does not exist yet: it is made.
    s.place_marker(s.cursor)  # an edit, so there is something to keep
    target = tmp_path / "new" / "review"
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    menu_click(qtbot, win, "File", "Save project as…")
    assert (target / "project.json").is_file()
    assert s.project is not None and s.project.path == target

    # New project…: the store, then a new folder; it opens in a new window.
    folder = tmp_path / "made" / "proj2"
    monkeypatch.setattr(
        QtWidgets.QFileDialog, "getExistingDirectory", lambda *a, **k: str(timelapse_store)
    )
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *a, **k: (str(folder), ""))
    menu_click(qtbot, win, "File", "New project…")
    assert (folder / "project.json").is_file(), win.errors
    new = other_windows(win)
    assert len(new) == 1 and new[0].session.project.path == folder
    assert sorted(lay.name for lay in new[0].session.labels_layers) == sorted(
        label_names(timelapse_store)
    )
    wait_rendered(qtbot, new[0])
    new[0].close()

    # Both projects are in Recent projects, newest first; choosing one opens it.
    recent = win.file_menu.recent_menu
    win.file_menu.fill_recent()
    entries = [a.text() for a in recent.actions()]
    assert entries[:2] == [str(folder.resolve()), str(target.resolve())]
    mb = win.menuBar()
    file_action = next(a for a in mb.actions() if a.text().replace("&", "") == "File")
    qtbot.mouseClick(mb, Qt.MouseButton.LeftButton, pos=mb.actionGeometry(file_action).center())
    menu = file_action.menu()
    qtbot.waitUntil(menu.isVisible, timeout=5000)
    qtbot.mouseClick(
        menu, Qt.MouseButton.LeftButton, pos=menu.actionGeometry(recent.menuAction()).center()
    )
    qtbot.waitUntil(recent.isVisible, timeout=5000)
    # (the newest, proj2: its window is closed; ``target`` is this window's own project,
    # held by it: a second window on it is refused by the project lock)
    qtbot.mouseClick(
        recent, Qt.MouseButton.LeftButton, pos=recent.actionGeometry(recent.actions()[0]).center()
    )
    qtbot.wait(20)
    reopened = other_windows(win)
    assert len(reopened) == 1 and reopened[0].session.project.path == folder.resolve()
    wait_rendered(qtbot, reopened[0])


def test_open_url_shows_the_image_served_over_http(
    make_viewer: Any, fibsem_store: Path, qtbot: Any, monkeypatch: Any
) -> None:
    """File > Open URL…: an OME-Zarr served over http (loopback) opens in a new window
    whose XY slice shows the store's voxels (read with zarr from disk)."""
    from tests.analysis.io._support import serve_directory

    win = make_viewer(str(fibsem_store), ["nucleus"])
    with serve_directory(fibsem_store.parent) as (base, requests):
        url = f"{base}/{fibsem_store.name}"
        monkeypatch.setattr(QtWidgets.QInputDialog, "getText", lambda *a, **k: (url, True))
        menu_click(qtbot, win, "File", "Open URL…")
        # (a URL opens in a background job: the window stays responsive meanwhile)
        qtbot.waitUntil(lambda: len(other_windows(win)) == 1, timeout=120_000)
        new = other_windows(win)
        try:
            wait_rendered(qtbot, new[0])
            s = new[0].session
            assert s.image_layer is not None and str(s.image_layer.source) == url
            view = new[0].slices["xy"]
            res = view.shown(s.image_layer.name, "base")
            assert res is not None
            rq = res.request
            grp = zarr.open_group(str(fibsem_store), mode="r")
            attrs = grp.attrs.asdict()
            path = attrs.get("ome", attrs)["multiscales"][0]["datasets"][rq.level]["path"]
            ref = np.asarray(grp[path])[rq.k, rq.rows[0] : rq.rows[1], rq.cols[0] : rq.cols[1]]
            assert ref.std() > 0
            np.testing.assert_array_equal(view.image.image, ref.astype(np.float32))
            # ... and they came over http
            assert any(r.startswith(f"/{fibsem_store.name}/") for r in requests)
        finally:
            new[0].session.unsaved_edits = 0
            new[0].close()
