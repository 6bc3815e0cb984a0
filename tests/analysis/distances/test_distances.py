"""Distances against brute-force SciPy cdist over voxel centres and analytic spheres."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from skimage import draw

from analysis.distances import (
    distance_to_mask,
    distance_to_masks,
    nearest_object_distance,
    object_to_mask_distance,
    surface_distance_map,
)
from analysis.errors import ParameterError

SPACING = (1.5, 1.0, 0.75)


def _scene(seed=0):
    """A ball mask plus a handful of small cubic objects, some inside it."""
    rng = np.random.default_rng(seed)
    shape = (24, 30, 36)
    zz, yy, xx = np.indices(shape)
    centre = np.array([12, 15, 18])
    mask = ((zz - centre[0]) * 1.5) ** 2 + (yy - centre[1]) ** 2 + ((xx - centre[2]) * 0.75) ** 2
    mask = mask < 8.0**2
    labels = np.zeros(shape, np.int32)
    for i in range(1, 9):
        z, y, x = (int(rng.integers(0, s - 3)) for s in shape)
        labels[z : z + 2, y : y + 3, x : x + 2] = i * 2
    return mask, labels


def _coords(m):
    return np.argwhere(m) * np.asarray(SPACING)


def test_surface_distance_map_equals_brute_force():
    mask, _ = _scene()
    field = surface_distance_map(mask, SPACING, signed=True)
    inside, outside = _coords(mask), _coords(~mask)
    d_in = cdist(inside, outside).min(axis=1)
    d_out = cdist(outside, inside).min(axis=1)
    np.testing.assert_allclose(field[mask], -d_in, rtol=1e-12)
    np.testing.assert_allclose(field[~mask], d_out, rtol=1e-12)


def test_distance_to_mask_at_voxel_centres():
    mask, _ = _scene()
    rng = np.random.default_rng(1)
    vox = np.stack([rng.integers(0, s, 30) for s in mask.shape], axis=1)
    pts = vox * np.asarray(SPACING)
    brute = np.array(
        [
            cdist(p[None], _coords(~mask) if mask[tuple(v)] else _coords(mask)).min()
            for p, v in zip(pts, vox, strict=True)
        ]
    )
    np.testing.assert_allclose(distance_to_mask(pts, mask, SPACING, order=0), brute, rtol=1e-12)
    # Trilinear sampling at the exact voxel centres gives the same numbers.
    np.testing.assert_allclose(distance_to_mask(pts, mask, SPACING, order=1), brute, rtol=1e-12)


def test_distance_to_sphere_surface_is_analytic_within_a_voxel():
    spacing = (1.0, 0.5, 0.5)
    ball = np.pad(draw.ellipsoid(10, 10, 10, spacing=spacing), 10)
    centre = (np.asarray(ball.shape) - 1) / 2 * np.asarray(spacing)
    pts = centre + np.array([[0, 0, 0], [0, 3.0, 0], [2.0, 0, 4.0], [0, 0, 14.0]])
    got = distance_to_mask(pts, ball, spacing)
    expected = np.abs(10.0 - np.linalg.norm(pts - centre, axis=1))
    np.testing.assert_allclose(got, expected, atol=max(spacing))


def test_min_over_several_masks():
    mask, _ = _scene()
    shell = np.zeros_like(mask)
    shell[:, :, :3] = True
    pts = np.array([[12 * 1.5, 15.0, 18 * 0.75], [3.0, 3.0, 3.0]])
    table = distance_to_masks(pts, {"ball": mask, "wall": shell}, SPACING, order=0)
    ball = distance_to_mask(pts, mask, SPACING, order=0)
    wall = distance_to_mask(pts, shell, SPACING, order=0)
    np.testing.assert_array_equal(table["distance_to_ball_um"], ball)
    np.testing.assert_array_equal(table["min_distance_um"], np.minimum(ball, wall))
    assert list(table["nearest_surface"]) == [
        "ball" if b < w else "wall" for b, w in zip(ball, wall, strict=True)
    ]


def test_object_to_mask_distance_equals_brute_force():
    mask, labels = _scene()
    got = object_to_mask_distance(labels, mask, SPACING).set_index("label")["distance_um"]
    for lab_id in np.unique(labels)[1:]:
        obj = labels == lab_id
        inside = obj & mask
        outside = obj & ~mask
        cands = []
        if inside.any():
            cands.append(cdist(_coords(inside), _coords(~mask)).min())
        if outside.any():
            cands.append(cdist(_coords(outside), _coords(mask)).min())
        assert got[lab_id] == pytest.approx(min(cands), rel=1e-12)


def test_nearest_object_distance_equals_brute_force():
    rng = np.random.default_rng(3)
    labels = np.zeros((30, 30, 30), np.int32)
    for i in range(1, 16):
        z, y, x = (int(v) for v in rng.integers(0, 26, 3))
        labels[z : z + int(rng.integers(1, 5)), y : y + 3, x : x + int(rng.integers(1, 5))] = i
    got = nearest_object_distance(labels, SPACING).set_index("label")
    ids = [i for i in np.unique(labels)[1:]]
    for a in ids:
        dists = {b: cdist(_coords(labels == a), _coords(labels == b)).min() for b in ids if b != a}
        best = min(dists, key=dists.get)
        assert got.loc[a, "distance_um"] == pytest.approx(dists[best], rel=1e-12)
        assert dists[got.loc[a, "nearest_label"]] == pytest.approx(dists[best], rel=1e-12)
    single = nearest_object_distance((labels == ids[0]).astype(np.int32), SPACING)
    assert single["nearest_label"].tolist() == [-1]
    assert np.isnan(single["distance_um"].iloc[0])


@pytest.mark.parametrize(
    ("mask", "match"),
    [
        (np.zeros((4, 4, 4), bool), "empty"),
        (np.ones((4, 4, 4), bool), "no surface"),
        (np.ones((4, 4), bool), "3D"),
    ],
)
def test_bad_masks(mask, match):
    with pytest.raises(ParameterError, match=match):
        distance_to_mask(np.zeros((1, 3)), mask, (1, 1, 1))


def test_points_outside_the_volume_are_rejected():
    mask, _ = _scene()
    with pytest.raises(ParameterError, match="outside the volume"):
        distance_to_mask(np.array([[0.0, 0.0, 100.0]]), mask, SPACING)
