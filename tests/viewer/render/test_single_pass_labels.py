"""Streamed label volumes drawn in one ray-casting pass: colours, hidden, selected, picking."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import ndimage

from viewer.render import SceneRenderer, StreamingController, id_colors
from viewer.scene import Labels, Scene

from .conftest import project_independently

pytestmark = pytest.mark.render

SIZE = (160, 160)


def _labels() -> np.ndarray:
    zz, yy, xx = np.indices((40, 40, 40))
    lab = np.zeros((40, 40, 40), np.uint32)
    lab[(zz - 20) ** 2 + (yy - 12) ** 2 + (xx - 10) ** 2 <= 36] = 1
    lab[(zz - 20) ** 2 + (yy - 28) ** 2 + (xx - 30) ** 2 <= 36] = 2
    lab[(zz - 8) ** 2 + (yy - 30) ** 2 + (xx - 8) ** 2 <= 16] = 70_000  # past 2**16
    return lab


def _scene(**kw: Any) -> tuple[Scene, Labels, np.ndarray]:
    lab = _labels()
    layer = Labels(lab, name="cells", mode="volume", **kw)
    scene = Scene([layer])
    scene.reset_camera()
    cam = scene.camera
    centroids = np.array(ndimage.center_of_mass(lab > 0, lab, [1, 2, 70_000]))
    px = project_independently(
        cam.position, cam.focal_point, cam.view_up, cam.view_angle, SIZE, centroids
    )
    return scene, layer, np.round(px).astype(int)


def _open(scene: Scene) -> tuple[SceneRenderer, StreamingController]:
    r = SceneRenderer(scene, size=SIZE, show_axes=False, show_scale_bar=False)
    ctl = StreamingController(r, brick_size=8, one_shot=True)
    ctl.settle(60)
    return r, ctl


def test_streamed_label_volume_is_one_pass_in_legend_colours() -> None:
    scene, layer, px = _scene()
    r, ctl = _open(scene)
    with r, ctl:
        img = r.screenshot().astype(int)
        st = ctl.host.stats
        assert st.volume_passes == 1 and st.bricks_drawn > 8  # 125 bricks of 8³, one pass
        # Each object's centre pixel is its legend colour (id_colors: the same map the
        # surfaces and the legend use), the 32-bit id included.
        for (c, rw), colour in zip(px, id_colors([1, 2, 70_000]) * 255, strict=True):
            np.testing.assert_allclose(img[rw, c], colour, atol=12)
        # The whole-level label volume (one vtkVolume, nearest sampling) agrees.
    whole_scene, _, _ = _scene()
    with SceneRenderer(whole_scene, size=SIZE, show_axes=False, show_scale_bar=False) as w:
        ref = w.screenshot().astype(int)
    differs = np.abs(ref - img).max(axis=2) > 8
    assert (ref.max(axis=2) > 30).mean() > 0.03
    assert differs.mean() < 0.01


def test_hidden_selected_and_fixed_colours_follow_the_layer() -> None:
    scene, layer, px = _scene()
    r, ctl = _open(scene)
    with r, ctl:
        plain = r.screenshot().astype(int)
        layer.hidden_ids = [1]
        hidden = r.screenshot().astype(int)
        assert hidden[px[0][1], px[0][0]].max() == 0  # background behind object 1
        np.testing.assert_allclose(hidden[px[1][1], px[1][0]], plain[px[1][1], px[1][0]], atol=2)
        layer.hidden_ids = []
        scene.selection.update({"layer": "cells", "label_ids": [2]})
        chosen = r.screenshot().astype(int)
        # Selected: its colour halfway to white.
        want = 0.5 * id_colors([2])[0] * 255 + 0.5 * 255
        np.testing.assert_allclose(chosen[px[1][1], px[1][0]], want, atol=12)
        np.testing.assert_allclose(chosen[px[0][1], px[0][0]], plain[px[0][1], px[0][0]], atol=2)
        scene.selection.update({"layer": None, "label_ids": []})
        layer.color_mode = "fixed"
        layer.fixed_color = (1.0, 0.5, 0.0)
        fixed = r.screenshot().astype(int)
        for c, rw in px:
            np.testing.assert_allclose(fixed[rw, c], (255, 128, 0), atol=12)


def test_picking_a_label_volume_names_the_object() -> None:
    scene, layer, px = _scene()
    r, ctl = _open(scene)
    with r, ctl:
        r.render()
        for (c, rw), want in zip(px, [1, 2, 70_000], strict=True):
            got = r.pick(c, rw)
            assert got.layer == "cells" and got.label == want
            assert got.world_um is not None
        # A corner pixel misses every object.
        assert r.pick(2, 2).label is None
        layer.hidden_ids = [2]
        r.render()
        got = r.pick(px[1][0], px[1][1])
        assert got.label != 2  # hidden objects are not picked
