"""Picking on a slice by screen distance (issue 18.1): the zoom sets the µm, never the pixels."""

from __future__ import annotations

import numpy as np

from viewer.actions import SCREEN_TOLERANCE_PX, nearest_on_screen

# Two nodes on an XY slice at z = 10 µm: one 1.06 µm above it, one on it 5 µm away.
POINTS = np.array([[11.06, 20.0, 30.0], [10.0, 20.0, 35.0]])


def test_depth_within_the_drawn_slab_does_not_count() -> None:
    # 0.13 µm per pixel: 8 px = 1.04 µm, less than the 1.06 µm depth of the first node.
    assert SCREEN_TOLERANCE_PX * 0.13 < 1.06
    assert nearest_on_screen(POINTS, (10.0, 20.0, 30.2), 0, 0.13, slab_um=3.0) == 0
    # outside the drawn slab it is not on the slice at all
    assert nearest_on_screen(POINTS, (10.0, 20.0, 30.2), 0, 0.13, slab_um=1.0) is None


def test_tolerance_is_in_screen_pixels_at_any_zoom() -> None:
    for px_um in (0.01, 0.13, 2.0):
        near = (10.0, 20.0, 35.0 + 7 * px_um)  # 7 px to the right of the second node
        far = (10.0, 20.0, 35.0 + 9 * px_um)  # 9 px
        assert nearest_on_screen(POINTS, near, 0, px_um, slab_um=3.0) == 1
        assert nearest_on_screen(POINTS, far, 0, px_um, slab_um=3.0) is None


def test_other_planes_measure_in_their_own_plane() -> None:
    # An XZ slice (across y) at y = 21: the first node is 1 µm off it, 0.3 µm from the click.
    assert nearest_on_screen(POINTS, (11.0, 21.0, 30.2), 1, 0.1, slab_um=3.0) == 0
    assert nearest_on_screen(np.zeros((0, 3)), (0.0, 0.0, 0.0), 0, 1.0) is None
