"""The page tree against brute force (no GL): random leaf sets, stand-ins, selections."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.errors import ParameterError
from analysis.volume import FunctionVolumeSource, Level
from viewer.raycast import EMPTY, PageTree, leaf_words, nearest_resident, stand_in_words
from viewer.scene import Camera
from viewer.streaming import BrickGrid, View, select_bricks


def _grid(shape, chunks) -> BrickGrid:
    src = FunctionVolumeSource(shape, lambda lv, r: None, chunks=chunks)  # fn never called
    return BrickGrid.from_source(src)


def _random_leaves(grid: BrickGrid, rng: np.random.Generator):
    """Leaves of a random refinement from the top bricks (some subtrees culled)."""
    top = grid.n_levels - 1
    stack = [(top, tuple(int(v) for v in ijk)) for ijk in np.ndindex(*grid.grid[top])]
    leaves = []
    while stack:
        lv, ijk = stack.pop()
        r = rng.random()
        if r < 0.1:
            continue  # culled: nothing here
        if lv > 0 and r < 0.65:
            kids = grid.children(lv, np.asarray([ijk]))
            stack.extend((lv - 1, tuple(int(v) for v in k)) for k in kids)
        else:
            leaves.append((lv, ijk))
    lv = np.asarray([x[0] for x in leaves], np.int64)
    ijk = np.asarray([x[1] for x in leaves], np.int64).reshape(-1, 3)
    return lv, ijk


def _brute(grid: BrickGrid, lv, ijk, words, points):
    """The word of the leaf whose box (BrickGrid.boxes) holds each point, else EMPTY."""
    out = np.full(len(points), EMPTY, np.uint32)
    for level, b, w in zip(lv, ijk, words, strict=True):
        lo, hi = grid.boxes(int(level), b[None])
        inside = ((points >= lo[0]) & (points < hi[0])).all(axis=1)
        out[inside] = w
    return out


def _points(grid: BrickGrid, rng: np.random.Generator, n: int = 400):
    lo = grid.translation[0] - 0.5 * grid.scale[0]
    hi = lo + grid.shape[0] * grid.scale[0]
    return lo + rng.random((n, 3)) * (hi - lo)


shapes = st.tuples(*(st.integers(16, 72),) * 3)
chunks = st.sampled_from([(8, 8, 8), (16, 16, 16), (8, 16, 8), (4, 8, 8)])


@settings(max_examples=60, deadline=None)
@given(shape=shapes, ch=chunks, seed=st.integers(0, 2**32 - 1))
def test_lookup_through_the_tree_equals_brute_force(shape, ch, seed) -> None:
    rng = np.random.default_rng(seed)
    grid = _grid(shape, ch)
    tree = PageTree(grid)
    lv, ijk = _random_leaves(grid, rng)
    slots = np.where(rng.random(len(lv)) < 0.2, -1, rng.integers(0, 5000, len(lv)))
    sample = rng.integers(lv, grid.n_levels)  # own level or a coarser stand-in
    words = leaf_words(slots, sample)
    pool = tree.build(lv, ijk, words)
    pts = _points(grid, rng)
    got, got_level, got_ijk = tree.lookup(pool, pts)
    np.testing.assert_array_equal(got, _brute(grid, lv, ijk, words, pts))
    kind, slot, level = PageTree.decode(got)
    leaf = kind == 2
    assert (level[leaf] >= got_level[leaf]).all()  # a stand-in is never finer than its leaf
    # The node found contains the point (its box from the tree's own geometry).
    lo, hi = tree.boxes(got_level, got_ijk)
    assert ((pts >= lo - 1e-9) & (pts <= hi + 1e-9)).all()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ch=chunks)
def test_selection_tree_and_stand_ins_equal_brute_force(seed, ch) -> None:
    rng = np.random.default_rng(seed)
    grid = _grid((64, 80, 96), ch)
    tree = PageTree(grid)
    pos = rng.uniform(-150, 250, 3)
    cam = Camera(position=tuple(pos), focal_point=(32.0, 40.0, 48.0))
    sel = select_bricks(
        grid, [View.from_camera(cam, (64, 48))], max_error_px=float(rng.uniform(0.5, 8))
    )
    # A random resident set: each visible node in the atlas with probability 1/2.
    node_slot = np.where(
        rng.random(len(sel.nodes)) < 0.5, rng.integers(0, 10**6, len(sel.nodes)), -1
    )
    slot, level = nearest_resident(sel, node_slot)
    # Brute force: walk each leaf's ancestors by containment among the selection's nodes.
    codes = {int(c): i for i, c in enumerate(sel.nodes)}
    for k, (lv, ijk) in enumerate(zip(sel.leaf_levels, sel.leaf_ijk, strict=True)):
        lo, hi = grid.boxes(int(lv), ijk[None])
        centre = (lo[0] + hi[0]) / 2
        want_slot, want_level = -1, -1
        for up in range(int(lv), grid.n_levels):
            a_ijk = np.floor(
                (centre - (grid.translation[up] - grid.scale[up] / 2))
                / (grid.chunks[up] * grid.scale[up])
            ).astype(np.int64)
            i = codes.get(int(grid.encode(up, a_ijk[None])[0]))
            if i is not None and node_slot[i] >= 0:
                want_slot, want_level = int(node_slot[i]), up
                break
        assert (slot[k], level[k]) == (want_slot, want_level)
    pool = tree.build_from_selection(sel, leaf_words(slot, level))
    pts = _points(grid, rng)
    got, _, _ = tree.lookup(pool, pts)
    np.testing.assert_array_equal(
        got, _brute(grid, sel.leaf_levels, sel.leaf_ijk, leaf_words(slot, level), pts)
    )
    # The generic build gives the same lookups.
    pool2 = tree.build(sel.leaf_levels, sel.leaf_ijk, leaf_words(slot, level))
    np.testing.assert_array_equal(tree.lookup(pool2, pts)[0], got)


@pytest.mark.parametrize(
    "level1",
    [
        # A level-1 grid more than half its voxel off level 0's corner.
        Level("1", (32, 32, 32), (16, 16, 16), (2.0, 2.0, 2.0), (1.6, 0.5, 0.5)),
        # Bricks 4x the finer level's (a factor-4 pyramid).
        Level("1", (16, 16, 16), (16, 16, 16), (4.0, 4.0, 4.0), (1.5, 1.5, 1.5)),
    ],
)
def test_levels_that_do_not_nest_are_refused(level1: Level) -> None:
    levels = [Level("0", (64, 64, 64), (16, 16, 16), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)), level1]
    with pytest.raises(ParameterError, match="do not nest"):
        PageTree(BrickGrid(levels))


def test_levels_at_translation_zero_are_taken_on_level_0s_grid() -> None:
    """Stores whose levels all sit at translation 0 (each coarser grid starts half a
    voxel earlier): the tree's bricks start at level 0's corner for every level."""
    levels = [
        Level("0", (64, 64, 64), (16, 16, 16), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)),
        Level("1", (32, 32, 32), (16, 16, 16), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0)),
    ]
    tree = PageTree(BrickGrid(levels))
    np.testing.assert_allclose(tree.levels.corner, [[-0.5] * 3] * 2)
    np.testing.assert_allclose(tree.levels.voxel0, [[0.0] * 3] * 2)  # sampled where it is


def test_anisotropic_pyramid_with_factor_one_axes() -> None:
    """z is not downsampled: a brick has 4 children (2 x 2 in y, x), one along z."""
    levels = [
        Level("0", (16, 64, 64), (8, 16, 16), (4.0, 1.0, 1.0), (0.0, 0.0, 0.0)),
        Level("1", (16, 32, 32), (8, 16, 16), (4.0, 2.0, 2.0), (0.0, 0.5, 0.5)),
    ]
    grid = BrickGrid(levels)
    tree = PageTree(grid)
    assert tree.levels.factor[1].tolist() == [1, 2, 2]
    rng = np.random.default_rng(1)
    lv, ijk = _random_leaves(grid, rng)
    words = leaf_words(np.arange(len(lv)), lv)
    pool = tree.build(lv, ijk, words)
    pts = _points(grid, rng)
    np.testing.assert_array_equal(tree.lookup(pool, pts)[0], _brute(grid, lv, ijk, words, pts))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_stand_in_words_equal_nearest_resident(seed) -> None:
    rng = np.random.default_rng(seed)
    grid = _grid((64, 80, 96), (8, 8, 8))
    cam = Camera(position=tuple(rng.uniform(-150, 250, 3)), focal_point=(32.0, 40.0, 48.0))
    sel = select_bricks(
        grid, [View.from_camera(cam, (64, 48))], max_error_px=float(rng.uniform(0.5, 8))
    )
    node_slot = np.where(
        rng.random(len(sel.nodes)) < 0.3, rng.integers(0, 10**6, len(sel.nodes)), -1
    )
    np.testing.assert_array_equal(
        stand_in_words(sel, node_slot), leaf_words(*nearest_resident(sel, node_slot))
    )


def test_stand_in_words_skip_transparent_slots() -> None:
    rng = np.random.default_rng(3)
    grid = _grid((64, 80, 96), (8, 8, 8))
    cam = Camera(position=(-100.0, 40.0, 48.0), focal_point=(32.0, 40.0, 48.0))
    sel = select_bricks(grid, [View.from_camera(cam, (64, 48))], max_error_px=2.0)
    node_slot = np.where(rng.random(len(sel.nodes)) < 0.5, rng.permutation(len(sel.nodes)), -1)
    skip = rng.random(len(sel.nodes)) < 0.3
    slot, level = nearest_resident(sel, node_slot)
    want = leaf_words(np.where((slot >= 0) & skip[np.maximum(slot, 0)], -1, slot), level)
    got = stand_in_words(sel, node_slot, skip)
    np.testing.assert_array_equal(got, want)
    assert (got == EMPTY).sum() > (slot < 0).sum()  # something was skipped
