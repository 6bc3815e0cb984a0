"""A label edit redraws a streamed label volume from the bricks it touched, nothing else.

Reference: the legend colours (``id_colors``) at each object's centre, projected
independently of VTK, before and after the edit.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from viewer.render import id_colors
from viewer.scene import Labels, Scene

from .conftest import project_independently
from .test_single_pass_labels import SIZE, _labels, _open

pytestmark = pytest.mark.render


def _volume_scene() -> tuple[np.ndarray, Labels, Scene, np.ndarray]:
    """The labels drawn as a volume, and objects 1 and 2's centres projected (pixels)."""
    lab = _labels()
    layer = Labels(lab, name="cells", mode="volume")
    scene = Scene([layer])
    scene.reset_camera()
    cam = scene.camera
    centres = np.array(ndimage.center_of_mass(lab > 0, lab, [1, 2]))
    px = np.round(
        project_independently(
            cam.position, cam.focal_point, cam.view_up, cam.view_angle, SIZE, centres
        )
    ).astype(int)
    return lab, layer, scene, px


def test_an_edit_recolours_the_label_volume_without_reopening_it() -> None:
    lab, layer, scene, px = _volume_scene()
    r, ctl = _open(scene)
    with r, ctl:
        adapter = ctl.adapters["cells"]
        img = r.screenshot().astype(int)
        (c1, r1), (c2, r2) = px
        np.testing.assert_allclose(img[r1, c1], id_colors([1])[0] * 255, atol=12)
        # Object 1 becomes object 2, written in place (as a label edit writes its working
        # copy), and the layer says where: only the bricks meeting that box are re-read.
        lab[lab == 1] = 2
        assert int(np.asarray(layer.data.read(0))[20, 12, 10]) == 2  # the source sees it
        layer.notify_edited([1, 2], [[(slice(14, 27), slice(6, 19), slice(4, 17))]])
        ctl.settle(60)
        img = r.screenshot().astype(int)
        assert ctl.adapters["cells"] is adapter  # the same streamer and atlas: not reopened
        np.testing.assert_allclose(img[r1, c1], id_colors([2])[0] * 255, atol=12)
        np.testing.assert_allclose(img[r2, c2], id_colors([2])[0] * 255, atol=12)


def test_an_id_mapping_change_recolours_the_label_volume() -> None:
    """A merge as an id mapping names no region: the label volume re-reads the resident
    bricks that held one of the ids (and only those) and draws the merged colour."""
    lab, layer, scene, px = _volume_scene()
    r, ctl = _open(scene)
    with r, ctl:
        adapter = ctl.adapters["cells"]
        streamer = adapter.streamer
        img = r.screenshot().astype(int)
        (c1, r1), _ = px
        np.testing.assert_allclose(img[r1, c1], id_colors([1])[0] * 255, atol=12)
        before = lab.copy()
        holding = set()
        for k in list(streamer.cache):
            level, reg = streamer.region(k)
            f = 2**level
            box = tuple(slice(s.start * f, s.stop * f, f) for s in reg[-3:])
            if np.isin(before[box], [1, 2]).any():
                holding.add(k)
        assert 0 < len(holding) < len(list(streamer.cache))  # not every brick
        read: list[int] = []
        real = streamer._load

        def load(key: int):  # type: ignore[no-untyped-def]
            read.append(key)
            return real(key)

        streamer._load = load
        lab[lab == 1] = 2
        layer.notify_edited([1, 2], remapped=True)
        ctl.settle(60)
        img = r.screenshot().astype(int)
        assert set(read) == holding
        np.testing.assert_allclose(img[r1, c1], id_colors([2])[0] * 255, atol=12)
