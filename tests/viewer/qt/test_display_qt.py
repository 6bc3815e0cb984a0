"""Issue 18.8: how the EM looks, driven through the layer panel.

References: the store's voxels read with zarr, mapped to grey analytically
(numpy: contrast window, gamma, invert) and through matplotlib's colormaps; the
opacity ramp's analytic shape (quadratic over the data's percentiles, numpy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
from PySide6 import QtCore, QtGui

from tests.viewer.qt.conftest import wait_rendered, wait_slices
from tests.viewer.qt.test_app import level0
from viewer.qt._slices import grab_array

pytestmark = pytest.mark.qt

Qt = QtCore.Qt


def background_voxels(
    lab: np.ndarray, shape: tuple[int, ...], avoid: tuple[int, int], n: int = 40
) -> list[tuple[int, int]]:
    """Voxels of the slice outside every object (3x3 neighbourhood too), away from the
    crosshair lines and the edges, spread over the slice."""
    out = []
    for i in range(4, shape[0] - 4, 3):
        for j in range(4, shape[1] - 4, 3):
            if abs(i - avoid[0]) < 4 or abs(j - avoid[1]) < 4:
                continue
            if not lab[i - 1 : i + 2, j - 1 : j + 2].any():
                out.append((i, j))
    step = max(1, len(out) // n)
    return out[::step]


def shown_rgb(view: Any, z: float, yx: list[tuple[float, float]]) -> np.ndarray:
    """The colours the slice view shows (grabbed from the screen) at world (y, x) points."""
    shot = view.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)
    out = []
    for y, x in yx:
        p = view.mapFromScene(view.view_to_scene((z, y, x)))
        c = shot.pixelColor(p.x(), p.y())
        out.append((c.red(), c.green(), c.blue()))
    return np.asarray(out, dtype=float)


def expected_grey(
    v: np.ndarray, lo: float, hi: float, gamma: float = 1.0, invert: bool = False
) -> np.ndarray:
    u = np.clip((v.astype(float) - lo) / (hi - lo), 0, 1)
    if invert:
        u = 1 - u
    return 255 * u**gamma


def test_em_shows_at_full_intensity_in_2d_and_panel_controls_apply(
    make_viewer: Any, fibsem_store: Path, qtbot: Any
) -> None:
    """With labels loaded the slices show the EM grey as stored (not dimmed by the 3D
    opacity); gamma, invert and colormap from the layer panel change the slices."""
    win = make_viewer(str(fibsem_store), ["nucleus"])
    s = win.session
    img = s.image_layer
    assert img.opacity < 1  # the 3D volume is made translucent beside label surfaces
    raw, scale, trans = level0(fibsem_store)
    lab_arr, _, _ = level0(fibsem_store / "labels" / "nucleus")
    k = int(round((s.cursor[0] - trans[0]) / scale[0]))
    em, lab = np.asarray(raw[k]), np.asarray(lab_arr[k])
    ci = int(round((s.cursor[1] - trans[1]) / scale[1]))
    cj = int(round((s.cursor[2] - trans[2]) / scale[2]))
    vox = background_voxels(lab, em.shape, (ci, cj))
    assert len(vox) >= 10
    values = np.array([em[i, j] for i, j in vox])
    yx = [(trans[1] + i * scale[1], trans[2] + j * scale[2]) for i, j in vox]
    view = win.slices["xy"]
    lo, hi = img.contrast_limits
    assert values.std() > 1  # a range of greys, not one value

    def check(gamma: float = 1.0, invert: bool = False, tol: float = 3.0) -> None:
        wait_slices(qtbot, win)
        qtbot.wait(30)
        got = shown_rgb(view, s.cursor[0], yx)
        want = expected_grey(values, lo, hi, gamma, invert)
        np.testing.assert_allclose(got, np.repeat(want[:, None], 3, axis=1), atol=tol)

    check()  # full intensity: the stored grey through the contrast window, no dimming
    panel = win.layers_panel
    panel.select(img.name)
    assert panel.gamma.isEnabled() and panel.slice_invert.isEnabled()
    # Gamma 2, typed into its box.
    panel.gamma.setFocus()
    panel.gamma.selectAll()
    qtbot.keyClicks(panel.gamma, "2")
    qtbot.keyClick(panel.gamma, Qt.Key.Key_Return)
    assert img.gamma == pytest.approx(2.0)
    check(gamma=2.0)
    # Invert the slices.
    qtbot.mouseClick(panel.slice_invert, Qt.MouseButton.LeftButton)
    assert img.slice_invert
    check(gamma=2.0, invert=True)
    # A colormap applies on the slices as in 3D (matplotlib's table at each fraction).
    qtbot.mouseClick(panel.slice_invert, Qt.MouseButton.LeftButton)
    assert panel.colormap.currentText() == "gray"
    qtbot.keyClick(panel.colormap, Qt.Key.Key_Down)  # the next colormap in the list
    assert img.colormap == "magma"
    wait_slices(qtbot, win)
    qtbot.wait(30)
    got = shown_rgb(view, s.cursor[0], yx)
    frac = expected_grey(values, lo, hi, 2.0) / 255
    want = matplotlib.colormaps["magma"](frac)[:, :3] * 255
    np.testing.assert_allclose(got, want, atol=6)


def test_contrast_does_not_drive_3d_opacity_and_rendering_controls(
    make_viewer: Any, fibsem_store: Path, qtbot: Any
) -> None:
    """Narrowing the contrast keeps the volume's opacity (no opaque grey box); MIP and
    isosurface with its threshold are chosen in the panel and reach the 3D view."""
    win = make_viewer(str(fibsem_store), ["nucleus"])
    s = win.session
    img = s.image_layer
    thread = win.render_view.render_thread
    raw, _, _ = level0(fibsem_store)
    # The data's 0.5 and 99.8 percentiles (of its coarsest level), read here with zarr.
    import zarr

    grp = zarr.open_group(str(fibsem_store), mode="r")
    attrs = grp.attrs.asdict()
    ms = attrs.get("ome", attrs)["multiscales"][0]["datasets"]
    coarse = np.asarray(grp[ms[-1]["path"]]).astype(float)
    p_lo, p_hi = np.percentile(coarse, (0.5, 99.8))

    def alpha(values: np.ndarray) -> np.ndarray:
        def read(r: Any) -> list[float]:
            otf = r.adapter(img).property.GetScalarOpacity()
            return [otf.GetValue(float(x)) for x in values]

        return np.asarray(thread.submit(read).result())

    # Rendering mode from the panel: maximum intensity, then isosurface at a typed value.
    panel = win.layers_panel
    panel.select(img.name)
    composite = grab_array(win.render_view).astype(float)
    combo = panel.rendering
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_Down)
    assert img.rendering == "mip"
    assert not panel.iso.isEnabled()
    wait_rendered(qtbot, win)
    adapter = thread.streaming.adapters[img.name]
    assert adapter.mode == ("minip" if img.invert else "mip")
    mip = grab_array(win.render_view).astype(float)
    assert np.abs(mip - composite).mean() > 1.0
    qtbot.keyClick(combo, Qt.Key.Key_Down)
    assert img.rendering == "isosurface"
    assert panel.iso.isEnabled()
    thr = float(np.percentile(np.asarray(raw), 30))
    panel.iso.setFocus()
    panel.iso.selectAll()
    qtbot.keyClicks(panel.iso, f"{thr:.1f}")
    qtbot.keyClick(panel.iso, Qt.Key.Key_Return)
    assert img.iso_threshold == pytest.approx(thr, abs=0.05)
    wait_rendered(qtbot, win)
    assert adapter.mode == "isosurface" and adapter.iso_value == pytest.approx(thr, abs=0.05)
    iso = grab_array(win.render_view).astype(float)
    assert np.abs(iso - mip).mean() > 1.0
    # On the slices too: the isosurface's line on the XY slice runs where scikit-image's
    # contour of the stored slice at the threshold runs.
    from skimage import measure

    wait_slices(qtbot, win)
    xy = win.slices["xy"]
    assert xy.iso.isVisible()
    _, scale, trans = level0(fibsem_store)
    k = int(round((s.cursor[0] - trans[0]) / scale[0]))
    ref = np.concatenate(measure.find_contours(np.asarray(raw[k], dtype=float), thr))
    ref_yx = trans[1:] + ref * scale[1:]
    path, tr = xy.iso.path, xy.iso.transform()
    got = []
    for i in range(0, path.elementCount(), max(1, path.elementCount() // 200)):
        e = path.elementAt(i)
        q = tr.map(QtCore.QPointF(e.x, e.y))
        got.append((q.y(), q.x()))
    assert len(got) > 20
    d = np.min(np.linalg.norm(np.asarray(got)[:, None] - ref_yx[None], axis=2), axis=1)
    vox = scale[1:].min()
    # Nearly every point on it (pyqtgraph marches the same linear interpolation); a few
    # where the line meets the slice's edge within half a voxel.
    assert np.mean(d < 0.01 * vox) > 0.9 and d.max() <= 0.51 * vox, d.max()
    # Back to composite (two steps up) for the opacity ramp; the line goes.
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_Up)
    qtbot.keyClick(combo, Qt.Key.Key_Up)
    assert img.rendering == "composite"
    wait_slices(qtbot, win)
    assert not xy.iso.isVisible()

    xs = np.linspace(p_lo, p_hi, 9)
    ramp = np.clip((xs - p_lo) / (p_hi - p_lo), 0, 1)
    if img.invert:
        ramp = 1 - ramp
    want = img.opacity * ramp**2
    lo, hi = img.contrast_limits
    img.contrast_limits = (lo, lo + 0.1 * (hi - lo))  # a narrow window: bright, high contrast
    wait_rendered(qtbot, win)
    np.testing.assert_allclose(alpha(xs), want, atol=0.02 * img.opacity)
    # Mid-grey stays translucent (it became fully opaque when the contrast drove opacity).
    mid = np.array([(p_lo + p_hi) / 2])
    assert alpha(mid)[0] <= 0.3 * img.opacity
    # The 3D opacity slider still sets the ramp's height.
    label = panel.form.labelForField(panel.opacity)
    assert label.text() == "3D opacity"
    panel.opacity.setFocus()
    qtbot.keyClick(panel.opacity, Qt.Key.Key_End)  # 100 %
    assert img.opacity == pytest.approx(1.0)
    wait_rendered(qtbot, win)
    np.testing.assert_allclose(alpha(xs), ramp**2, atol=0.02)
