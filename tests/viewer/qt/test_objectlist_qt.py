"""Issue 17: the object list of a labels layer. Sizes in voxels and µm³, search by id,
and "go to object" selecting it and centring every view on it, driven with the mouse
and keys. Reference: scikit-image's regionprops on the label image read with zarr."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6 import QtCore
from skimage.measure import regionprops

from tests.viewer.qt.test_app import level0

pytestmark = pytest.mark.qt

Qt = QtCore.Qt


def test_object_list_sizes_search_and_go_to(
    make_viewer: Any, fibsem_store: Path, qtbot: Any
) -> None:
    win = make_viewer(str(fibsem_store), ["mitochondria"])
    s = win.session
    raw, scale, trans = level0(fibsem_store / "labels" / "mitochondria")
    lab = np.asarray(raw)
    props = {p.label: p for p in regionprops(lab)}
    assert len(props) >= 3

    # Open the Objects tab (a click on its tab, as a user)
    from PySide6 import QtWidgets

    dock = win.docks["Objects"]
    bars = [b for b in win.findChildren(QtWidgets.QTabBar) if b.isVisible()]
    bar, index = next((b, i) for b in bars for i in range(b.count()) if b.tabText(i) == "Objects")
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(index).center())
    qtbot.waitUntil(dock.isVisible, timeout=5000)
    ol = win.object_list
    assert ol.layer.currentText() == "mitochondria"
    qtbot.waitUntil(lambda: ol.table.rowCount() == len(props), timeout=60_000)
    voxel_um3 = float(np.prod(scale))
    rows = {}
    for r in range(ol.table.rowCount()):
        i, n, um3 = (ol.table.item(r, c).data(Qt.ItemDataRole.DisplayRole) for c in range(3))
        rows[int(i)] = (int(n), float(um3))
    assert set(rows) == set(props)
    for i, p in props.items():
        assert rows[i][0] == int(p.area)
        assert rows[i][1] == pytest.approx(p.area * voxel_um3, rel=1e-3)

    # The largest object, found by typing its id and Enter
    target = max(props, key=lambda i: props[i].area)
    qtbot.mouseClick(ol.search, Qt.MouseButton.LeftButton)
    qtbot.keyClicks(ol.search, str(target))
    shown = [int(ol.table.item(r, 0).text()) for r in ol.shown_rows()]
    assert target in shown and all(str(i).startswith(str(target)) for i in shown)
    qtbot.keyClick(ol.search, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: list(s.scene.selection.label_ids) == [target], timeout=10_000)
    assert s.scene.selection.layer == "mitochondria"
    # every view is centred on a voxel of that object: crosshair, slices and 3D focus
    vox = np.round((np.asarray(s.cursor) - trans) / scale).astype(int)
    assert lab[tuple(vox)] == target
    np.testing.assert_allclose(s.scene.camera.focal_point, s.cursor, atol=1e-6)
    # ... and the voxel is the object's nearest to its centroid (regionprops)
    inside = np.argwhere(lab == target)
    best = np.min(((inside - np.asarray(props[target].centroid)) ** 2).sum(axis=1))
    assert ((vox - np.asarray(props[target].centroid)) ** 2).sum() == pytest.approx(best)

    # A double-click on another row goes there
    other = min(props, key=lambda i: props[i].area)
    ol.search.clear()
    r = next(r for r in range(ol.table.rowCount()) if int(ol.table.item(r, 0).text()) == other)
    ol.table.scrollToItem(ol.table.item(r, 0))
    pos = ol.table.visualItemRect(ol.table.item(r, 0)).center()
    # a real double-click: a click, then the double-click event on the same cell
    qtbot.mouseClick(ol.table.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    qtbot.mouseDClick(ol.table.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    qtbot.waitUntil(lambda: list(s.scene.selection.label_ids) == [other], timeout=10_000)
    vox = np.round((np.asarray(s.cursor) - trans) / scale).astype(int)
    assert lab[tuple(vox)] == other
