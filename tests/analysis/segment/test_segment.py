"""Segmentation against scikit-image / SciPy on arrays and block-wise on VolumeSources."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import draw, filters, morphology

from analysis.errors import ParameterError
from analysis.segment import (
    apply_blockwise,
    ball_footprint,
    binary_close,
    binary_open,
    fill_holes,
    label_blockwise,
    label_close,
    label_open,
    local_threshold_mask,
    otsu_mask,
    otsu_threshold,
    otsu_threshold_blockwise,
    region_grow,
    remove_small_objects_um3,
    watershed_split,
)
from analysis.volume import ArrayVolumeSource, FunctionVolumeSource


def _blobs(shape=(40, 48, 56), seed=0, fraction=0.3):
    rng = np.random.default_rng(seed)
    noise = ndi.gaussian_filter(rng.normal(size=shape), 2.5)
    return noise > np.quantile(noise, 1 - fraction)


def _as_function_source(arr, chunks):
    """A procedural source that serves ``arr`` only region by region."""
    reads = []

    def fn(level, region):
        assert level == 0
        reads.append(region)
        return arr[region]

    return FunctionVolumeSource(arr.shape, fn, dtype=arr.dtype, chunks=chunks, n_levels=1), reads


def _same_partition(a, b):
    """True when label images a and b define the same objects (up to renumbering)."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


def test_otsu_separates_two_populations_and_blockwise_equals_whole():
    rng = np.random.default_rng(1)
    img = np.where(_blobs(), rng.normal(200, 15, (40, 48, 56)), rng.normal(60, 15, (40, 48, 56)))
    t = otsu_threshold(img)
    assert 90 < t < 170
    assert np.mean(otsu_mask(img) == _blobs()) > 0.99
    assert t == filters.threshold_otsu(img)
    src, reads = _as_function_source(img.astype(np.float32), (16, 16, 16))
    assert otsu_threshold_blockwise(src) == pytest.approx(
        filters.threshold_otsu(img.astype(np.float32)), rel=1e-6
    )
    assert all(r[0].stop - r[0].start <= 16 for r in reads)  # never the whole volume
    # Integer images: scikit-image bins one integer value per bin (it ignores nbins).
    for dtype, scale in ((np.uint8, 1.0), (np.uint16, 180.0)):
        ints = np.clip(img * scale, 0, np.iinfo(dtype).max).astype(dtype)
        src, _ = _as_function_source(ints, (16, 16, 16))
        assert otsu_threshold_blockwise(src) == filters.threshold_otsu(ints)


def test_local_threshold_beats_global_under_uneven_illumination():
    truth = _blobs(seed=2)
    ramp = np.linspace(0.2, 1.0, truth.shape[2])[None, None, :]
    img = (np.where(truth, 1.0, 0.3) * ramp * 100).astype(np.float32)
    local = local_threshold_mask(img, block_size=15)

    def iou(m):
        return (m & truth).sum() / (m | truth).sum()

    assert iou(local) > 0.85
    assert iou(local) > iou(otsu_mask(img)) + 0.05
    # Block-wise with a halo of one block size reproduces the whole-array result.
    src, _ = _as_function_source(img, (16, 16, 16))
    out = apply_blockwise(src, lambda b: local_threshold_mask(b, block_size=15), halo=(15, 15, 15))
    np.testing.assert_array_equal(out, local)


def test_watershed_splits_two_touching_balls():
    spacing = (2.0, 1.0, 1.0)
    shape = (30, 50, 70)
    zz, yy, xx = np.indices(shape)
    centres = [(15, 25, 22), (15, 25, 46)]
    mask = np.zeros(shape, bool)
    for c in centres:
        mask |= ((zz - c[0]) * 2.0) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < 14.0**2
    assert ndi.label(mask)[1] == 1  # they touch
    lab = watershed_split(mask, spacing, min_distance_um=8.0)
    assert lab.max() == 2
    assert np.array_equal(lab > 0, mask)
    for c in centres:
        assert lab[c] > 0
    assert lab[centres[0]] != lab[centres[1]]
    # The cut lies half-way between the centres.
    xs = [np.argwhere(lab == i)[:, 2].mean() for i in (lab[centres[0]], lab[centres[1]])]
    assert xs[0] == pytest.approx(22 - 1.0, abs=2.5) and xs[1] == pytest.approx(46 + 1.0, abs=2.5)


def test_remove_small_objects_um3_matches_skimage_voxel_count():
    spacing = (0.5, 0.25, 0.25)  # voxel volume 1/32 µm³
    mask = _blobs(seed=3, fraction=0.08)
    min_vol = 40 / 32  # 40 voxels
    ours = remove_small_objects_um3(mask, min_vol, spacing)
    ref = morphology.remove_small_objects(mask, max_size=39, connectivity=3)
    np.testing.assert_array_equal(ours, ref)
    lab, n = ndi.label(mask, structure=np.ones((3, 3, 3)))
    kept = remove_small_objects_um3(lab, min_vol, spacing)
    np.testing.assert_array_equal(kept > 0, ref)
    assert set(np.unique(kept)) <= set(np.unique(lab))


def test_ball_footprint_matches_skimage_ball_and_is_anisotropic():
    np.testing.assert_array_equal(ball_footprint(3.0, (1, 1, 1)), morphology.ball(3).astype(bool))
    fp = ball_footprint(3.0, (3.0, 1.0, 1.0))
    assert fp.shape == (3, 7, 7)


def test_open_and_close_match_skimage_away_from_border():
    spacing = (1.0, 1.0, 1.0)
    mask = _blobs(seed=4)
    fp = morphology.ball(2)
    opened = binary_open(mask, 2.0, spacing)
    inner = (slice(3, -3),) * 3
    np.testing.assert_array_equal(opened[inner], morphology.opening(mask, fp)[inner])
    assert np.all(opened <= mask)  # opening is anti-extensive, also at the border
    closed = binary_close(mask, 2.0, spacing)
    np.testing.assert_array_equal(closed[inner], morphology.closing(mask, fp)[inner])
    assert np.all(closed >= mask)  # closing is extensive, also at the border


def test_fill_holes_and_per_label_open_close():
    shell = draw.ellipsoid(8, 8, 8) & ~np.pad(draw.ellipsoid(5, 5, 5), 3)
    lab = np.zeros((2 * shell.shape[0] + 2, *shell.shape[1:]), np.int32)
    lab[: shell.shape[0]][shell] = 3
    lab[shell.shape[0] + 2 :][shell] = 9
    filled = fill_holes(lab)
    for v, sl in ((3, slice(None, shell.shape[0])), (9, slice(shell.shape[0] + 2, None))):
        np.testing.assert_array_equal(filled[sl] == v, ndi.binary_fill_holes(lab[sl] == v))
    np.testing.assert_array_equal(fill_holes(lab > 0), ndi.binary_fill_holes(lab > 0))
    # Two touching cubes: opening/closing each label never merges or swaps them.
    cubes = np.zeros((20, 20, 30), np.int32)
    cubes[5:15, 5:15, 3:15] = 1
    cubes[5:15, 5:15, 15:27] = 2
    cubes[10, 10, 8] = 0  # a pinhole
    closed = label_close(cubes, 1.0, (1, 1, 1))
    assert closed[10, 10, 8] == 1
    assert set(np.unique(closed)) == {0, 1, 2}
    opened = label_open(cubes, 1.0, (1, 1, 1))
    for v in (1, 2):
        np.testing.assert_array_equal(
            opened == v, ndi.binary_opening(cubes == v, ball_footprint(1.0, (1, 1, 1)))
        )


def test_region_grow_stays_in_connected_mask():
    mask = np.zeros((10, 10, 40), bool)
    mask[2:8, 2:8, 2:18] = True
    mask[2:8, 2:8, 22:38] = True
    seeds = np.zeros(mask.shape, np.int32)
    seeds[5, 5, 3] = 1
    seeds[5, 5, 16] = 2
    grown = region_grow(seeds, mask, (1, 1, 1))
    assert np.all(grown[:, :, 22:] == 0)  # the unseeded component stays empty
    assert np.array_equal(grown > 0, mask & (np.arange(40) < 20)[None, None, :])
    # The boundary between the two seeds is half-way (x = 9.5).
    assert np.all(grown[2:8, 2:8, 2:10] == 1) and np.all(grown[2:8, 2:8, 10:18] == 2)
    # With an image, a dark barrier stops the bright seed's flood.
    img = np.ones(mask.shape)
    img[:, :, 12] = 10.0
    grown_img = region_grow(seeds, mask, (1, 1, 1), image=img)
    assert np.all(grown_img[2:8, 2:8, 2:12] == 1)


@pytest.mark.parametrize("connectivity", [1, 3])
@pytest.mark.parametrize("block", [(7, 9, 11), (16, 16, 16)])
def test_label_blockwise_equals_scipy_label(connectivity, block):
    mask = _blobs(seed=5, fraction=0.25)
    ref, n = ndi.label(mask, structure=ndi.generate_binary_structure(3, connectivity))
    src, reads = _as_function_source(mask.astype(np.uint8), block)
    out, m = label_blockwise(src, connectivity=connectivity, block_shape=block)
    assert m == n
    assert _same_partition(out, ref)
    assert max(r[0].stop - r[0].start for r in reads) <= block[0] + 2


def test_label_blockwise_writes_into_given_array_and_checks_shape():
    mask = _blobs(seed=6)
    out = np.zeros(mask.shape, np.uint32)
    res, n = label_blockwise(ArrayVolumeSource(mask.astype(np.uint8), chunks=(10, 10, 10)), out)
    assert res is out and out.max() == n == ndi.label(mask)[1]
    with pytest.raises(ParameterError, match="output shape"):
        label_blockwise(ArrayVolumeSource(mask.astype(np.uint8)), np.zeros((2, 2, 2)))


def test_apply_blockwise_gaussian_equals_whole_array():
    rng = np.random.default_rng(7)
    img = rng.normal(size=(33, 40, 27)).astype(np.float32)
    src, _ = _as_function_source(img, (10, 12, 9))
    out = apply_blockwise(
        src, lambda b: ndi.gaussian_filter(b, 1.5, mode="reflect"), halo=(7, 7, 7)
    )
    np.testing.assert_array_equal(out, ndi.gaussian_filter(img, 1.5, mode="reflect"))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: otsu_threshold(np.ones((4, 4, 4))), "constant"),
        (lambda: local_threshold_mask(np.ones((4, 4, 4)), block_size=4), "odd"),
        (lambda: remove_small_objects_um3(np.ones((4, 4, 4), int), -1, (1, 1, 1)), "min volume"),
        (lambda: binary_open(np.ones((4, 4, 4)), 0.0, (1, 1, 1)), "radius"),
        (lambda: watershed_split(np.ones((4, 4)), (1, 1, 1)), "3D"),
        (lambda: region_grow(np.ones((4, 4, 4), int), np.ones((3, 4, 4)), (1, 1, 1)), "shape"),
    ],
)
def test_bad_segment_inputs(call, match):
    with pytest.raises(ParameterError, match=match):
        call()
