"""What the views draw over the data, as a biologist sees it (issue 18.7, 18.13, 18.14).

The first 3D frame has the widget's aspect and a legible scale bar (its text compared
with the same string drawn by VTK alone, outside the app); finished measurements stay
on the slices and their 3D value labels never overlap; a legend names the classes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6 import QtCore, QtGui
from scipy import ndimage as ndi

pytestmark = pytest.mark.qt

Qt = QtCore.Qt


def _grab(widget: Any) -> np.ndarray:
    from PySide6 import QtGui

    img = widget.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)
    w, h = img.width(), img.height()
    buf = np.frombuffer(img.constBits(), dtype=np.uint8, count=img.bytesPerLine() * h)
    return buf.reshape(h, img.bytesPerLine())[:, : 3 * w].reshape(h, w, 3).copy()


def _vtk_text(text: str, size: tuple[int, int], pos: tuple[int, int], font: int) -> np.ndarray:
    """``text`` drawn by VTK's FreeType text actor alone (no app code), white on black,
    as (H, W) uint8 with row 0 at the top."""
    from vtkmodules import vtkRenderingCore as rc
    from vtkmodules import vtkRenderingFreeType, vtkRenderingOpenGL2  # noqa: F401
    from vtkmodules.util.numpy_support import vtk_to_numpy

    win = rc.vtkRenderWindow()
    win.SetOffScreenRendering(1)
    win.SetSize(*size)
    ren = rc.vtkRenderer()
    win.AddRenderer(ren)
    actor = rc.vtkTextActor()
    actor.SetInput(text)
    actor.GetTextProperty().SetFontSize(font)
    actor.GetTextProperty().SetColor(1.0, 1.0, 1.0)
    actor.SetPosition(*pos)
    ren.AddViewProp(actor)
    win.Render()
    grab = rc.vtkWindowToImageFilter()
    grab.SetInput(win)
    grab.Update()
    out = grab.GetOutput()
    w, h, _ = out.GetDimensions()
    arr = vtk_to_numpy(out.GetPointData().GetScalars()).reshape(h, w, -1)[::-1, :, 0].copy()
    win.Finalize()
    return arr


def test_first_3d_frame_has_the_widgets_aspect_and_a_legible_scale_bar(
    fibsem_store: Path, qtbot: Any
) -> None:
    """Issue 18.7: the first 3D frame was drawn at the widget's size before layout and
    stretched onto it (wrong aspect; the scale bar's thin µ squeezed to "5 .m")."""
    from viewer.qt import ProofreadingSession, QtViewer

    win = QtViewer(ProofreadingSession.open(str(fibsem_store), ["mitochondria"]), size=(1100, 760))
    rv = win.render_view
    first: dict[str, Any] = {}

    def on_frame(_seconds: float) -> None:
        if not first:
            img = rv.last_image()
            first["frame"] = (img.width(), img.height())
            dpr = rv.devicePixelRatioF()
            first["widget"] = (rv.width() * dpr, rv.height() * dpr)
            first["shown"] = _grab(rv)  # what the user sees, as painted now

    rv.frame_shown.connect(on_frame)
    try:
        win.show()
        qtbot.waitExposed(win)
        qtbot.waitUntil(lambda: bool(first), timeout=120_000)
        fw, fh = first["frame"]
        ww, wh = first["widget"]
        assert fw / fh == pytest.approx(ww / wh, rel=0.01)
        # The scale bar's text, as shown, is VTK's own rendering of "<n> µm" at that spot.
        r = rv.render_thread.renderer
        assert r is not None
        text = r.overlays.text.GetInput()
        assert re.fullmatch(r"\d+(\.\d+)? µm", text)
        shown = first["shown"]
        h, w = shown.shape[:2]
        x0, y0 = (int(v) for v in r.overlays.text.GetPosition())
        ref = _vtk_text(text, (w, h), (x0, y0), r.overlays.text.GetTextProperty().GetFontSize())
        box = (slice(h - y0 - 40, h - y0 + 2), slice(x0 - 2, x0 + 120))
        # The app's frame may draw the glyphs a little bolder (its own text antialiasing):
        # each strong ink pixel of one must be ink in the other, within a pixel.
        ref_box, shown_box = ref[box], shown[box].min(axis=2)  # white text only
        assert (ref_box > 160).sum() > 30
        near_ref = ndi.binary_dilation(ref_box > 40, iterations=1)
        near_shown = ndi.binary_dilation(shown_box > 40, iterations=1)
        assert near_shown[ref_box > 160].mean() > 0.97
        assert near_ref[shown_box > 160].mean() > 0.97
    finally:
        win.session.unsaved_edits = 0
        win.close()
        qtbot.wait(10)


def _ink_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    return int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())


def test_finished_measurements_stay_on_the_slices_and_their_3d_labels_do_not_overlap(
    make_viewer: Any, fibsem_store: Path, tmp_path: Path, qtbot: Any
) -> None:
    """Issue 18.13: a measurement vanished from the slices once finished, and the 3D
    value labels of two nearby measurements were drawn over each other."""
    from scipy.spatial.distance import euclidean

    from tests.viewer.qt.conftest import wait_rendered
    from tests.viewer.qt.test_app import click, key

    win = make_viewer(str(fibsem_store), ["nucleus"], project=str(tmp_path / "p"))
    s = win.session
    c = np.asarray(s.cursor)
    key(qtbot, win, Qt.Key.Key_D)
    assert s.mode == "distance"
    # Two distances crossing at the cursor: their values would sit at the same spot.
    pairs = [(c + [0, -2.0, -2.0], c + [0, 2.0, 2.0]), (c + [0, -2.0, 2.0], c + [0, 2.0, -2.0])]
    for a, b in pairs:
        click(qtbot, win, "xy", a)
        click(qtbot, win, "xy", b)
    assert len(s.annotations.measurements) == 2
    assert not s.pending
    wait_rendered(qtbot, win)

    # -- the slice shows both finished lines (yellow over the grey EM) and their values
    view = win.slices["xy"]
    shown = _grab(view.viewport())
    for a, b in pairs:
        for f in (0.25, 0.75):
            p = view.mapFromScene(view.view_to_scene(tuple(a + f * (b - a))))
            rgb = shown[p.y() - 1 : p.y() + 2, p.x() - 1 : p.x() + 2].reshape(-1, 3).astype(int)
            assert ((rgb[:, 0] - rgb[:, 2] > 100) & (rgb[:, 1] - rgb[:, 2] > 100)).any()
    texts = sorted(t.toPlainText() for t in view.measure_texts)
    pts = [[np.asarray(q) for q in m.points_um] for m in s.annotations.measurements]
    want = sorted(f"#{i + 1}: {euclidean(*pts[i]):.2f} µm" for i in range(2))
    assert texts == want

    # -- in 3D, each label's ink (told apart by hiding the other) is clear of the other's;
    # only the measurements shown (a user unticks the other layers), the ink is theirs
    for lay in s.scene.layers:
        if lay.name != "measurements":
            lay.visible = False
    wait_rendered(qtbot, win)

    def inks(r: Any) -> list[tuple[int, int, int, int] | None]:
        from viewer.scene import Measurements

        adapter = next(a for a in r.adapters.values() if isinstance(a.layer, Measurements))
        texts = list(adapter.texts)
        out = []
        try:
            adapter.actor.SetVisibility(False)
            for keep in texts:
                for t in texts:
                    t.SetVisibility(t is keep)
                r.window.Render()
                img = r._grab().astype(int)
                # yellow text on the dark background
                out.append(_ink_box((img[..., 0] > 120) & (img[..., 1] > 120) & (img[..., 2] < 90)))
        finally:
            adapter.actor.SetVisibility(True)
            for t in texts:
                t.SetVisibility(True)
        return out

    boxes = win.render_view.render_thread.submit(inks).result(timeout=120)
    assert len(boxes) == 2 and all(b is not None for b in boxes)
    (ax0, ax1, ay0, ay1), (bx0, bx1, by0, by1) = boxes  # type: ignore[misc]
    overlap_x = ax0 <= bx1 and bx0 <= ax1
    overlap_y = ay0 <= by1 and by0 <= ay1
    assert not (overlap_x and overlap_y), boxes


def test_a_legend_names_the_classes_in_every_view_and_follows_their_edits(
    make_viewer: Any, fibsem_store: Path, tmp_path: Path, qtbot: Any, monkeypatch: Any
) -> None:
    """Issue 18.14: marker classes had no legend in the views. Each view shows one: a
    swatch in the colour the class's markers are drawn with, and the name; adding,
    renaming and removing a class updates it."""
    from PySide6 import QtWidgets

    from tests.viewer.qt.test_app import click, key

    win = make_viewer(str(fibsem_store), ["nucleus"], project=str(tmp_path / "p"))
    s, panel = win.session, win.annotation_panel
    views = {"3d": win.render_view, **win.slices}
    for v in views.values():  # no class yet: no legend
        assert not any(lg.isVisible() for lg in v.findChildren(QtWidgets.QLabel, "class_legend"))
    for name in ("vesicle", "mito"):
        qtbot.mouseClick(panel.new_class, Qt.MouseButton.LeftButton)
        qtbot.keyClicks(panel.new_class, name)
        qtbot.mouseClick(panel.add, Qt.MouseButton.LeftButton)
    assert [c.name for c in s.annotations.classes][-2:] == ["vesicle", "mito"]

    def legend(view: Any) -> QtWidgets.QLabel:
        found = [lg for lg in view.findChildren(QtWidgets.QLabel, "class_legend") if lg.isVisible()]
        assert len(found) == 1
        return found[0]

    for view in views.values():
        shown = QtGui.QTextDocumentFragment.fromHtml(legend(view).text()).toPlainText()
        assert shown.split("\n")[-2:] == ["\u25a0 vesicle", "\u25a0 mito"]

    # A vesicle marker on the slice and the legend's swatch are drawn in one colour.
    panel.classes.setCurrentText("vesicle")
    key(qtbot, win, Qt.Key.Key_K)
    c = np.asarray(s.cursor)
    click(qtbot, win, "xy", c)
    assert s.annotations.counts()["vesicle"] == 1
    qtbot.wait(50)
    xy = win.slices["xy"]
    p = xy.mapFromScene(xy.view_to_scene(tuple(c)))
    # off the crosshair, which runs through the marker's centre (the cursor)
    marker_rgb = _grab(xy.viewport())[p.y() + 2, p.x() + 2].astype(int)
    for view in views.values():
        sw = _grab(legend(view)).reshape(-1, 3).astype(int)
        assert (np.abs(sw - marker_rgb).max(axis=1) <= 12).sum() >= 12, view

    # Rename and remove through the panel's buttons: every legend follows.
    monkeypatch.setattr(QtWidgets.QInputDialog, "getText", lambda *a, **k: ("vesicles", True))
    qtbot.mouseClick(panel.rename_class, Qt.MouseButton.LeftButton)
    panel.classes.setCurrentText("mito")
    qtbot.mouseClick(panel.remove_class, Qt.MouseButton.LeftButton)
    qtbot.wait(20)
    assert "mito" not in [c.name for c in s.annotations.classes]
    for view in views.values():
        shown = QtGui.QTextDocumentFragment.fromHtml(legend(view).text()).toPlainText()
        names = [line.split(" ", 1)[1] for line in shown.split("\n")]
        assert names == [c.name for c in s.annotations.classes]
        assert "vesicles" in names and "vesicle" not in names and "mito" not in names
