"""LOD choice and culling against analytic projections, frusta and half-spaces."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.errors import ParameterError
from viewer.scene import Camera, ClippingPlane
from viewer.streaming import BrickGrid, View, clip_planes_array, select_bricks

from ._support import pinhole, pyramid_levels

SIZE = (800, 600)


def _camera(eye, focal, up=(0.0, -1.0, 0.0), fov=30.0, parallel=False, scale=50.0) -> Camera:
    return Camera(
        position=tuple(map(float, eye)),
        focal_point=tuple(map(float, focal)),
        view_up=up,
        view_angle=fov,
        parallel_projection=parallel,
        parallel_scale=scale,
    )


@pytest.mark.parametrize("distance", [150.0, 420.0, 1300.0, 2900.0, 7000.0])
def test_level_is_coarsest_with_subpixel_voxels(distance: float) -> None:
    # A slab one brick thick, seen face-on: every level's front face is z = -0.5,
    # so the brick on the view axis is at exactly `distance` at every level.
    levels = pyramid_levels((64, 4096, 4096), 64, 7)
    grid = BrickGrid(levels)
    eye = np.array([-0.5 - distance, 2048.0, 2048.0])
    cam = _camera(eye, eye + [1.0, 0, 0])
    sel = select_bricks(grid, [View.from_camera(cam, SIZE)], max_error_px=1.0)
    # Independent: project two points one level-L voxel apart on the front face.
    expected = 0
    for lvl, lev in enumerate(levels):
        p = np.array([[-0.5, 2048.0, 2048.0], [-0.5, 2048.0, 2048.0 + lev.scale[2]]])
        px, _ = pinhole(eye, (1, 0, 0), (0, -1, 0), 30.0, SIZE, p)
        if np.linalg.norm(px[1] - px[0]) <= 1.0:
            expected = lvl
    lo, hi = grid.boxes(sel.leaf_levels, sel.leaf_ijk)
    on_axis = np.flatnonzero(
        ((lo[:, 1:] <= 2048.0) & (hi[:, 1:] > 2048.0)).all(axis=1) & (lo[:, 0] < 0)
    )
    assert len(on_axis) == 1
    assert sel.leaf_levels[on_axis[0]] == expected


def test_leaves_respect_the_error_bound_and_parents_did_not() -> None:
    levels = pyramid_levels((512, 512, 512), 32, 5)
    grid = BrickGrid(levels)
    cam = _camera((-300.0, 200.0, 260.0), (256.0, 256.0, 256.0))
    view = View.from_camera(cam, SIZE)
    sel = select_bricks(grid, [view], max_error_px=1.5)
    f_px = SIZE[1] / 2 / math.tan(math.radians(30) / 2)
    eye = np.asarray(cam.position)

    def nearest(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return np.linalg.norm(np.clip(eye, lo, hi) - eye, axis=1)

    lo, hi = grid.boxes(sel.leaf_levels, sel.leaf_ijk)
    vox = grid.scale[sel.leaf_levels, 0]
    fine = sel.leaf_levels > 0
    # Every leaf above level 0 projects its voxel to <= 1.5 px (at its nearest point)...
    assert np.all(vox[fine] * f_px / nearest(lo[fine], hi[fine]) <= 1.5 * (1 + 1e-9))
    # ... and its parent did not (that is why it was refined).
    plev, pijk = grid.decode(grid.parents(sel.leaves[sel.leaf_levels < 4]))
    plo, phi = grid.boxes(plev, pijk)
    assert np.all(grid.scale[plev, 0] * f_px / nearest(plo, phi) > 1.5)


def test_frustum_culling_keeps_every_visible_brick() -> None:
    levels = pyramid_levels((256, 256, 256), 16, 1)
    grid = BrickGrid(levels)
    rng = np.random.default_rng(3)
    for _ in range(4):
        eye = rng.uniform(-150, 400, 3)
        focal = rng.uniform(60, 200, 3)
        cam = _camera(eye, focal, fov=float(rng.uniform(20, 60)))
        if abs(np.dot(cam.direction, (0, -1, 0))) > 0.99:
            continue
        sel = select_bricks(grid, [View.from_camera(cam, SIZE)], max_error_px=1e9)
        kept = set(sel.leaves.tolist())
        g = grid.grid[0]
        ijk = np.stack(np.meshgrid(*map(np.arange, g), indexing="ij"), -1).reshape(-1, 3)
        lo, hi = grid.boxes(0, ijk)
        t = np.linspace(0, 1, 6)
        s = np.stack(np.meshgrid(t, t, t, indexing="ij"), -1).reshape(-1, 3)
        pts = lo[:, None, :] + s[None] * (hi - lo)[:, None, :]
        px, depth = pinhole(
            cam.position, cam.direction, cam.view_up, cam.view_angle, SIZE, pts.reshape(-1, 3)
        )
        inside = (
            (
                (depth > 0)
                & (px[:, 0] >= 0)
                & (px[:, 0] <= SIZE[0])
                & (px[:, 1] >= 0)
                & (px[:, 1] <= SIZE[1])
            )
            .reshape(len(ijk), -1)
            .any(axis=1)
        )
        codes = grid.encode(0, ijk)
        visible = set(codes[inside].tolist())
        assert visible <= kept  # no visible brick is ever culled
        # Conservative but tight: extra bricks touch the frustum's border region.
        assert len(kept - visible) <= 0.35 * max(len(kept), 1)
        assert len(kept) < len(codes)


def test_clipping_planes_cull_exactly_the_bricks_wholly_removed() -> None:
    levels = pyramid_levels((128, 128, 128), 16, 1)
    grid = BrickGrid(levels)
    plane = ClippingPlane(origin=(60.0, 70.0, 50.0), normal=(0.3, -0.5, 0.8))
    cam = _camera(
        (64.0, 64.0, -5000.0), (64.0, 64.0, 64.0), up=(0.0, -1.0, 0.0), parallel=True, scale=500.0
    )
    sel = select_bricks(
        grid, [View.from_camera(cam, SIZE)], clip_planes_array([plane]), max_error_px=1e9
    )
    g = grid.grid[0]
    ijk = np.stack(np.meshgrid(*map(np.arange, g), indexing="ij"), -1).reshape(-1, 3)
    lo, hi = grid.boxes(0, ijk)
    corners = np.array([(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    pts = lo[:, None, :] + corners[None] * (hi - lo)[:, None, :]
    # Independent: the scene model's own half-space test on all 8 corners.
    survives = plane.keeps(pts.reshape(-1, 3)).reshape(len(ijk), 8).any(axis=1)
    assert set(sel.leaves.tolist()) == set(grid.encode(0, ijk[survives]).tolist())
    assert 0 < survives.sum() < len(ijk)


def test_disabled_plane_culls_nothing() -> None:
    plane = ClippingPlane(origin=(0.0, 0.0, 0.0), normal=(1.0, 0.0, 0.0), enabled=False)
    assert clip_planes_array([plane]).shape == (0, 4)


def test_two_eyes_see_the_union_of_both_views() -> None:
    levels = pyramid_levels((64, 512, 512), 32, 1)
    grid = BrickGrid(levels)
    left = View.from_camera(_camera((-200, 256, 100), (32, 256, 100)), SIZE)
    right = View.from_camera(_camera((-200, 256, 420), (32, 256, 420)), SIZE)
    both = select_bricks(grid, [left, right], max_error_px=1e9)
    a = select_bricks(grid, [left], max_error_px=1e9)
    b = select_bricks(grid, [right], max_error_px=1e9)
    assert set(both.leaves.tolist()) == set(a.leaves.tolist()) | set(b.leaves.tolist())
    assert set(a.leaves.tolist()) != set(b.leaves.tolist())


def test_eye_view_with_explicit_projection_equals_camera_view() -> None:
    from dataclasses import dataclass

    from viewer.streaming import perspective_matrix

    @dataclass
    class Eye:  # what viewer.render.EyeView / OpenXR provide
        position_um: tuple[float, float, float]
        forward: tuple[float, float, float]
        up: tuple[float, float, float]
        projection: np.ndarray

    levels = pyramid_levels((256, 256, 256), 32, 4)
    grid = BrickGrid(levels)
    cam = _camera((-100.0, 90.0, 120.0), (128.0, 128.0, 128.0))
    eye = Eye(
        cam.position,
        tuple(cam.direction),
        cam.view_up,
        perspective_matrix(30.0, SIZE[0] / SIZE[1], 0.1, 1e6),
    )
    s1 = select_bricks(grid, [View.from_camera(cam, SIZE)])
    s2 = select_bricks(grid, [View.from_eye(eye, SIZE)])
    assert np.array_equal(np.sort(s1.leaves), np.sort(s2.leaves))


def test_children_and_parents_agree_with_world_boxes() -> None:
    # A pyramid that is not factor 2 with equal chunks: level 1 has 3x voxels, other chunks.
    from analysis.volume import Level

    levels = [
        Level("0", (90, 90, 90), (16, 16, 16), (1.0,) * 3, (0.0,) * 3),
        Level("1", (30, 30, 30), (8, 8, 8), (3.0,) * 3, (1.0,) * 3),
    ]
    grid = BrickGrid(levels)
    ijk = np.stack(np.meshgrid(*map(np.arange, grid.grid[1]), indexing="ij"), -1).reshape(-1, 3)
    for one in ijk:
        kids = grid.children(1, one[None])
        plo, phi = grid.boxes(1, one[None])
        klo, khi = grid.boxes(0, kids)
        # children overlap the parent and together cover it
        assert np.all((klo < phi) & (khi > plo))
        assert np.all(klo.min(0) <= plo[0] + 1e-9) and np.all(khi.max(0) >= phi[0] - 1e-9)
    # factor-2 pyramid: parent of each child contains it
    g2 = BrickGrid(pyramid_levels((100, 70, 50), 8, 4))
    codes = np.arange(g2.offsets[0], g2.offsets[3])
    par = g2.parents(codes)
    lo, hi = g2.code_boxes(codes)
    plo, phi = g2.code_boxes(par)
    assert np.all(plo <= lo + 1e-9) and np.all(phi >= np.minimum(hi, phi) - 1e-9)
    c = (lo + hi) / 2
    assert np.all((plo <= c) & (c <= phi))


def test_codes_round_trip_and_bad_input() -> None:
    grid = BrickGrid(pyramid_levels((100, 70, 50), 8, 4))
    codes = np.arange(grid.n_bricks)
    lvl, ijk = grid.decode(codes)
    assert np.array_equal(grid.encode_mixed(lvl, ijk), codes)
    with pytest.raises(ParameterError):
        grid.decode([grid.n_bricks])
    with pytest.raises(ParameterError):
        select_bricks(grid, [], max_error_px=1.0)
    with pytest.raises(ParameterError):
        select_bricks(grid, [View.from_camera(Camera(), SIZE)], max_error_px=0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hierarchical_culling_covers_the_frustum_with_disjoint_leaves(seed: int) -> None:
    """Multi-level walk (children of bricks wholly inside the frustum are not tested):
    every point of the volume inside the frustum lies in exactly one leaf, and no leaf
    lies wholly outside a frustum plane (8-corner test, exact for boxes)."""
    levels = pyramid_levels((256, 256, 256), 16, 5)
    grid = BrickGrid(levels)
    rng = np.random.default_rng(seed)
    cam = _camera(rng.uniform(-200, -50, 3), rng.uniform(100, 160, 3), fov=45.0)
    view = View.from_camera(cam, SIZE)
    sel = select_bricks(grid, [view], max_error_px=4.0)
    assert len(set(sel.leaf_levels.tolist())) >= 2  # a real mix of levels
    assert sel.n_tested < len(sel.nodes)  # some children were accepted without a test
    lo, hi = grid.boxes(sel.leaf_levels, sel.leaf_ijk)
    pts = rng.uniform(-0.5, 255.5, (20000, 3))
    px, depth = pinhole(cam.position, cam.direction, cam.view_up, 45.0, SIZE, pts)
    seen = (
        (depth > 0) & (px[:, 0] > 0) & (px[:, 0] < SIZE[0]) & (px[:, 1] > 0) & (px[:, 1] < SIZE[1])
    )
    pts = pts[seen]
    assert len(pts) > 1000
    n_in = ((pts[:, None, :] >= lo[None]) & (pts[:, None, :] < hi[None])).all(axis=2).sum(axis=1)
    assert np.all(n_in == 1)
    corners = np.array([(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    # full (conservative) brick boxes, as the walk uses
    size = grid.chunks[sel.leaf_levels] * grid.scale[sel.leaf_levels]
    blo = grid.translation[sel.leaf_levels] - grid.scale[sel.leaf_levels] / 2 + sel.leaf_ijk * size
    cp = blo[:, None, :] + corners[None] * size[:, None, :]
    for plane in view.planes:
        d = cp @ plane[:3] + plane[3]
        assert np.all((d >= -1e-9).any(axis=1))


def test_node_arrays_describe_the_tree() -> None:
    levels = pyramid_levels((100, 70, 50), 8, 4)
    grid = BrickGrid(levels)
    cam = _camera((-60.0, 35.0, 25.0), (50.0, 35.0, 25.0))
    sel = select_bricks(grid, [View.from_camera(cam, SIZE)], max_error_px=1.0)
    lvl, ijk = grid.decode(sel.nodes)  # independent: decode the codes
    assert np.array_equal(lvl, sel.node_levels) and np.array_equal(ijk, sel.node_ijk)
    has = sel.node_parent >= 0
    # each parent is the brick one level up whose box contains the child's centre
    assert np.array_equal(grid.parents(sel.nodes[has]), sel.nodes[sel.node_parent[has]])
    assert np.array_equal(sel.nodes[sel.leaf_index], sel.leaves)
    for level, start, stop in sel.level_bounds:
        assert np.all(sel.node_levels[start:stop] == level)
