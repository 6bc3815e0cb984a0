"""Label outlines: an object's voxels with another id beside them across the view drawn
opaque, the rest faint; against scikit-image's ``find_boundaries`` of the labels seen
face on (prisms along the view: the projection is the 2D label image)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from skimage.segmentation import find_boundaries

from analysis.volume import ArrayVolumeSource
from viewer.raycast import Harness, LabelStyle, ResidentVolume, label_colours
from viewer.streaming import BrickGrid

from ._marcher import rays

pytestmark = pytest.mark.render

Y = X = 40
DEPTH = 12
SIZE = (80, 80)
# Far away with a narrow field: nearly parallel rays along +z (an orthographic view).
CAMERA = dict(position=(-2000.0, 19.5, 19.5), focal_point=(5.5, 19.5, 19.5), view_up=(0, -1, 0))
ANGLE = 1.26


def _plane() -> np.ndarray:
    y, x = np.mgrid[:Y, :X]
    lab = np.zeros((Y, X), np.uint32)
    lab[5:20, 5:18] = 1
    lab[5:20, 18:30] = 2  # touches 1: their common face is an outline of both
    lab[(y - 29) ** 2 + (x - 12) ** 2 < 49] = 3
    lab[25:35, 24:36] = 70000
    return lab


def _pixels_to_voxels() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each pixel's voxel column (y, x) and whether its ray stays inside that column
    across the volume and inside the volume's box (the ones the test compares)."""
    eye, d = rays(CAMERA["position"], CAMERA["focal_point"], CAMERA["view_up"], ANGLE, SIZE)
    ends = []
    for z in (0.0, DEPTH - 1.0):
        t = (z - eye[0]) / d[..., 0]
        ends.append(eye[1:] + d[..., 1:] * t[..., None])
    front, back = ends
    vox = np.floor(front + 0.5).astype(int)
    same = (vox == np.floor(back + 0.5).astype(int)).all(-1)
    inside = (
        (front >= 0) & (front <= [Y - 1, X - 1]) & (back >= 0) & (back <= [Y - 1, X - 1])
    ).all(-1)
    margin = (np.abs(front - np.round(front)) < 0.45).all(-1)
    return vox[..., 0].clip(0, Y - 1), vox[..., 1].clip(0, X - 1), same & inside & margin


@pytest.mark.parametrize("chunk", [8, 64])
def test_outline_is_scikit_images_boundaries_of_the_projected_labels(ctx: Any, chunk: int) -> None:
    plane = _plane()
    vol_arr = np.repeat(plane[None], DEPTH, axis=0)
    src = ArrayVolumeSource(vol_arr, chunks=(chunk,) * 3)
    # (room for more slots than bricks: the atlas's layout may round the count down)
    slot = (min(chunk, X) + 2) ** 3 * 4
    vol = ResidentVolume(
        ctx, [src.read(0)], BrickGrid.from_source(src), labels=True, budget_bytes=64 * slot
    )
    h = Harness(SIZE, ctx)
    try:
        style = LabelStyle(opacity=0.5, outline=True, interior_opacity=0.05)
        img = h.render(vol, style, **CAMERA, view_angle=ANGLE)
        plain = h.render(vol, LabelStyle(opacity=0.5), **CAMERA, view_angle=ANGLE)
    finally:
        h.release()
        vol.release()
    yi, xi, ok = _pixels_to_voxels()
    ids = plane[yi, xi]
    edge = find_boundaries(plane, connectivity=1, mode="inner")[yi, xi]
    alpha = img[..., 3]
    outline, interior, background = ok & edge, ok & ~edge & (ids > 0), ok & (ids == 0)
    assert outline.sum() > 200 and interior.sum() > 500 and background.sum() > 500
    assert alpha[outline].min() > 0.99
    # Outline pixels in the object's own colour (its first voxel is opaque).
    want = label_colours(ids[outline])
    np.testing.assert_allclose(img[outline][:, :3], want, atol=2e-3)
    # Interiors: 11 voxels of the faint opacity, corrected to the half-voxel step.
    lo, hi = 1 - 0.95**10.5, 1 - 0.95**11.5
    assert lo - 1e-3 <= alpha[interior].min() and alpha[interior].max() <= hi + 1e-3
    assert alpha[background].max() == 0.0
    # Without the option the same objects are uniformly opaque (the test can fail).
    assert plain[..., 3][interior].min() > 0.99
