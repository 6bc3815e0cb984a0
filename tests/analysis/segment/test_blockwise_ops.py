"""Block-wise clean-up, splitting and distance maps equal the whole-array SciPy /
scikit-image results, read only bounded regions, and chain into OME-Zarr writers."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import filters, morphology

from analysis.distances import surface_distance_map_blockwise
from analysis.errors import ParameterError
from analysis.io import ScratchVolume, open_labels, write_labels, write_ngff
from analysis.segment import (
    BlockwiseSource,
    ball_footprint,
    binary_open,
    close_blockwise,
    fill_holes_blockwise,
    label_close,
    label_open,
    open_blockwise,
    otsu_threshold_blockwise,
    region_grow,
    region_grow_blockwise,
    remove_small_objects_blockwise,
    watershed_split,
    watershed_split_blockwise,
)
from analysis.volume import FunctionVolumeSource


class CountingSource:
    """Serves ``arr`` (or ``fn(region)``) region by region and records every read's size."""

    def __init__(self, shape, region_fn, dtype, chunks, scale_um=(1.0, 1.0, 1.0)):
        self.reads: list[int] = []

        def fn(level, region):
            assert level == 0
            self.reads.append(math.prod(s.stop - s.start for s in region))
            return region_fn(region)

        self.source = FunctionVolumeSource(
            shape, fn, dtype=dtype, chunks=chunks, scale_um=scale_um, n_levels=1
        )

    @classmethod
    def of(cls, arr, chunks, scale_um=(1.0, 1.0, 1.0)):
        return cls(arr.shape, lambda r: arr[r], arr.dtype, chunks, scale_um)


def _same_partition(a, b):
    """True when label images a and b define the same objects (up to renumbering)."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


def _blobs(shape, seed, fraction):
    rng = np.random.default_rng(seed)
    noise = ndi.gaussian_filter(rng.normal(size=shape), 2.0)
    return noise > np.quantile(noise, 1 - fraction)


def _balls(shape, spacing, centres_um, radii_um):
    """A region function drawing physical balls (evaluated only inside the region)."""
    sp = np.asarray(spacing)

    def fn(region):
        out = np.zeros(tuple(s.stop - s.start for s in region), bool)
        for c, r in zip(centres_um, radii_um, strict=True):
            lo = np.maximum(np.floor((c - r) / sp).astype(int), [s.start for s in region])
            hi = np.minimum(np.ceil((c + r) / sp).astype(int) + 1, [s.stop for s in region])
            if np.any(hi <= lo):
                continue
            grid = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
            d2 = sum(((g * s) - cc) ** 2 for g, s, cc in zip(grid, sp, c, strict=True))
            local = tuple(
                slice(a - s.start, b - s.start) for a, b, s in zip(lo, hi, region, strict=True)
            )
            out[local] |= d2 <= r * r
        return out

    return fn


def _touching_pairs(shape, spacing, n_pairs, seed, radius_um=(1.6, 2.4)):
    """Centres/radii of pairs of overlapping balls, pairs well apart from each other."""
    rng = np.random.default_rng(seed)
    extent = np.asarray(shape) * np.asarray(spacing)
    rmax = max(radius_um)
    centres, radii = [], []
    for _ in range(10_000):
        if len(centres) == 2 * n_pairs:
            break
        r1, r2 = rng.uniform(*radius_um, 2)
        c = rng.uniform(2 * rmax, extent - 2 * rmax)
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        c2 = c + direction * (r1 + r2) * 0.75
        if np.any(c2 < rmax) or np.any(c2 > extent - rmax):
            continue
        if any(np.linalg.norm(c - o) < 4 * rmax + 1 for o in centres):
            continue
        centres += [c, c2]
        radii += [r1, r2]
    assert len(centres) == 2 * n_pairs, "volume too small for the pairs"
    return np.array(centres), np.array(radii)


def _full(fn, shape):
    return fn(tuple(slice(0, s) for s in shape))


@pytest.mark.parametrize("block", [(7, 9, 11), (16, 16, 16)])
def test_open_close_blockwise_equal_whole_array(block):
    spacing = (1.0, 0.5, 0.5)
    mask = _blobs((30, 40, 44), seed=1, fraction=0.35)
    src = CountingSource.of(mask, block, spacing)
    for lazy, whole in (
        (open_blockwise(src.source, 1.0), morphology.opening),
        (close_blockwise(src.source, 1.0), morphology.closing),
    ):
        got = lazy.read(0)  # one read of the whole result, computed from halo'd blocks
        fp = ball_footprint(1.0, spacing)
        ref = whole(mask, fp)
        inner = (slice(2, -2), slice(4, -4), slice(4, -4))  # away from the volume border
        np.testing.assert_array_equal(got[inner], ref[inner])
    # Block by block (each read a block of the result) equals one read of the whole.
    opened = open_blockwise(src.source, 1.0)
    tiled = np.zeros(mask.shape, bool)
    for z in range(0, 30, block[0]):
        for y in range(0, 40, block[1]):
            for x in range(0, 44, block[2]):
                sl = (slice(z, z + block[0]), slice(y, y + block[1]), slice(x, x + block[2]))
                tiled[sl] = opened.read(0, sl)
    np.testing.assert_array_equal(tiled, binary_open(mask, 1.0, spacing))
    assert max(src.reads[-8:]) <= math.prod(
        b + 2 * h for b, h in zip(block, (2, 4, 4), strict=True)
    )


def test_label_open_close_blockwise_equal_whole_array():
    lab, _ = ndi.label(_blobs((24, 36, 36), seed=2, fraction=0.4))
    lab = lab.astype(np.int32)
    src = CountingSource.of(lab, (10, 10, 10))
    tiled_open = open_blockwise(src.source, 1.5, labels=True)
    tiled_close = close_blockwise(src.source, 1.5, labels=True)
    out_o = np.zeros_like(lab)
    out_c = np.zeros_like(lab)
    for z in range(0, 24, 10):
        for y in range(0, 36, 10):
            for x in range(0, 36, 10):
                sl = (slice(z, z + 10), slice(y, y + 10), slice(x, x + 10))
                out_o[sl] = tiled_open.read(0, sl)
                out_c[sl] = tiled_close.read(0, sl)
    np.testing.assert_array_equal(out_o, label_open(lab, 1.5, (1, 1, 1)))
    np.testing.assert_array_equal(out_c, label_close(lab, 1.5, (1, 1, 1)))


def test_remove_small_objects_blockwise_equals_skimage():
    spacing = (0.5, 0.25, 0.25)  # voxel volume 1/32 µm³
    mask = _blobs((30, 40, 50), seed=3, fraction=0.08)
    min_vol = 40 / 32
    ref = morphology.remove_small_objects(mask, max_size=39, connectivity=3)
    src = CountingSource.of(mask, (8, 13, 10), spacing)
    got = remove_small_objects_blockwise(src.source, min_vol)
    np.testing.assert_array_equal(got, ref)
    assert max(src.reads) <= 8 * 13 * 10
    # A label image: per label value sizes, labels kept as they are.
    lab, _ = ndi.label(mask, structure=np.ones((3, 3, 3)))
    lab = lab.astype(np.uint16)
    src_l = CountingSource.of(lab, (8, 13, 10), spacing)
    out = np.zeros_like(lab)
    kept = remove_small_objects_blockwise(src_l.source, min_vol, out)
    assert kept is out
    np.testing.assert_array_equal(kept > 0, ref)
    np.testing.assert_array_equal(kept[ref], lab[ref])


def test_fill_holes_blockwise_equals_scipy_across_block_borders():
    shape = (30, 36, 40)
    mask = _blobs(shape, seed=4, fraction=0.55)  # a sponge: many holes of all sizes
    zz, yy, xx = np.indices(shape)
    shell = np.abs(np.sqrt((zz - 15) ** 2 + (yy - 18) ** 2 + (xx - 20) ** 2) - 11) < 1.5
    mask |= shell  # a big hollow ball whose cavity spans several blocks
    ref = ndi.binary_fill_holes(mask)
    assert (ref & ~mask).sum() > 1000  # there is something to fill
    src = CountingSource.of(mask, (8, 8, 8))
    got = fill_holes_blockwise(src.source)
    np.testing.assert_array_equal(got, ref)
    assert max(src.reads) <= 8**3


def test_watershed_blockwise_equals_whole_array_when_halo_suffices():
    shape, spacing = (32, 64, 80), (1.0, 0.5, 0.5)
    centres, radii = _touching_pairs(shape, spacing, 6, seed=5)
    fn = _balls(shape, spacing, centres, radii)
    mask = _full(fn, shape)
    assert ndi.label(mask)[1] == 6  # six clumps of two touching balls
    ref = watershed_split(mask, spacing, min_distance_um=1.5)
    assert ref.max() == 12
    # Largest clump: (2 r + 0.75 (r1 + r2)) µm <= 9.6 µm -> 10 z / 20 y, x voxels.
    halo = (11, 21, 21)
    src = CountingSource(shape, fn, bool, (12, 16, 16), spacing)
    got, n = watershed_split_blockwise(src.source, halo, min_distance_um=1.5)
    assert n == 12
    assert _same_partition(got, ref)
    assert max(src.reads) <= math.prod(b + 2 * h for b, h in zip((12, 16, 16), halo, strict=True))
    # Object ids are 1..n numbered by the position of each marker's first voxel.
    assert set(np.unique(got)) == set(range(13))
    # Too small a halo is detected, never a silently different result.
    with pytest.raises(ParameterError, match="halo"):
        watershed_split_blockwise(src.source, (2, 2, 2), min_distance_um=1.5)


def test_region_grow_blockwise_equals_whole_array():
    shape = (20, 30, 60)
    mask = np.zeros(shape, bool)
    mask[2:18, 3:27, 2:28] = True
    mask[2:18, 3:27, 32:58] = True
    seeds = np.zeros(shape, np.int32)
    seeds[10, 15, 5] = 7
    seeds[10, 15, 24] = 9
    seeds[5, 5, 40] = 3
    ref = region_grow(seeds, mask, (1, 1, 1))
    s_src = CountingSource.of(seeds, (10, 10, 10))
    m_src = CountingSource.of(mask, (10, 10, 10))
    got = region_grow_blockwise(s_src.source, m_src.source, (20, 30, 60))
    np.testing.assert_array_equal(got, ref)
    img = np.ones(shape)
    img[:, :, 12] = 10.0
    ref_img = region_grow(seeds, mask, (1, 1, 1), image=img)
    i_src = CountingSource.of(img, (10, 10, 10))
    got_img = region_grow_blockwise(s_src.source, m_src.source, (16, 24, 26), image=i_src.source)
    np.testing.assert_array_equal(got_img, ref_img)
    with pytest.raises(ParameterError, match="halo"):
        region_grow_blockwise(s_src.source, m_src.source, (3, 3, 3))


@pytest.mark.parametrize("signed", [False, True])
def test_distance_map_blockwise_is_capped_scipy_edt(signed):
    spacing = (0.8, 0.3, 0.3)
    mask = _blobs((26, 40, 48), seed=6, fraction=0.4)
    cap = 1.5
    inside = ndi.distance_transform_edt(mask, sampling=spacing)
    outside = ndi.distance_transform_edt(~mask, sampling=spacing)
    ref = np.where(mask, np.minimum(inside, cap), np.minimum(outside, cap))
    if signed:
        ref = np.where(mask, -ref, ref)
    src = CountingSource.of(mask, (9, 10, 11), spacing)
    dist = surface_distance_map_blockwise(src.source, cap, signed=signed)
    got = np.zeros(mask.shape)
    for z in range(0, 26, 9):
        for y in range(0, 40, 10):
            for x in range(0, 48, 11):
                sl = (slice(z, z + 9), slice(y, y + 10), slice(x, x + 11))
                got[sl] = dist.read(0, sl)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)
    halo = (2, 5, 5)  # ceil(1.5 / spacing)
    assert max(src.reads) <= math.prod(b + 2 * h for b, h in zip((9, 10, 11), halo, strict=True))
    with pytest.raises(ParameterError, match="max distance"):
        surface_distance_map_blockwise(src.source, 0.0)


def test_pipeline_runs_in_bounded_reads_and_equals_whole_array(tmp_path):
    """Threshold -> open -> fill holes -> remove small -> watershed -> OME-Zarr labels,
    on a procedural image read only in bounded regions; scratch volumes on disk."""
    shape, spacing = (32, 96, 160), (1.0, 0.5, 0.5)
    centres, radii = _touching_pairs(shape, spacing, 12, seed=7)
    # Hollow some balls (holes to fill) and add specks (objects to remove).
    rng = np.random.default_rng(8)
    specks = rng.integers([2, 2, 2], np.asarray(shape) - 4, size=(25, 3))
    balls = _balls(shape, spacing, centres, radii)
    cavities = _balls(shape, spacing, centres[::3], radii[::3] * 0.4)

    def image(region):
        fg = balls(region) & ~cavities(region)
        for s in specks:  # 3x3x3 cubes: opening leaves a 7-voxel cross, then removed
            local = tuple(
                slice(max(0, a - r.start), max(0, a + 3 - r.start))
                for a, r in zip(s, region, strict=True)
            )
            fg[local] = True
        zz = np.arange(region[0].start, region[0].stop)[:, None, None]
        return np.where(fg, 180.0, 40.0).astype(np.float32) + zz.astype(np.float32)

    chunks = (16, 32, 32)
    halo = (11, 21, 21)
    limit = math.prod(c + 2 * h for c, h in zip(chunks, halo, strict=True))
    assert limit < math.prod(shape) / 2  # never more than a fraction of the volume at once
    src = CountingSource(shape, image, np.float32, chunks, spacing)
    store = tmp_path / "img.zarr"
    min_vol = 30 * 0.25  # 30 voxels of 0.25 µm³

    tracemalloc.start()
    write_ngff(src.source, store, chunks=chunks)
    threshold = otsu_threshold_blockwise(src.source)
    mask = BlockwiseSource(src.source, lambda b: b > threshold, dtype=bool)
    opened = open_blockwise(mask, 1.0)
    kw = {"chunks": chunks, "scale_um": spacing}
    with (
        ScratchVolume(shape, bool, **kw) as filled,
        ScratchVolume(shape, np.int64, **kw) as tmp_labels,
        ScratchVolume(shape, bool, **kw) as cleaned,
        ScratchVolume(shape, np.int64, **kw) as split,
    ):
        fill_holes_blockwise(opened, filled, scratch=tmp_labels)
        remove_small_objects_blockwise(filled, min_vol, cleaned, scratch=tmp_labels)
        _, n = watershed_split_blockwise(cleaned, halo, split, min_distance_um=1.5)
        write_labels(store, "cells", split)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert max(src.reads) <= limit

    # The same pipeline on the whole array with SciPy / scikit-image.
    tracemalloc.start()
    img = image(tuple(slice(0, s) for s in shape))
    m = img > filters.threshold_otsu(img)
    m = binary_open(m, 1.0, spacing)
    m = ndi.binary_fill_holes(m)
    m = morphology.remove_small_objects(m, max_size=29, connectivity=3)
    ref = watershed_split(m, spacing, min_distance_um=1.5)
    _, peak_whole = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    got = open_labels(store, "cells").read(0)
    assert n == ref.max()
    assert n >= 20  # most of the 12 pairs split in two (ball pairs, hollow ones, no specks)
    assert _same_partition(got, ref)
    # Bounded: a working set of a few 8-byte arrays the size of the largest read
    # (measured ~51 bytes per voxel of it), well below the whole-array pipeline's.
    assert peak < 80 * limit, (peak, limit)
    assert peak < peak_whole / 2, (peak, peak_whole)


def test_bad_blockwise_inputs():
    mask = np.zeros((8, 8, 8), bool)
    mask[2:5, 2:5, 2:5] = True
    src = CountingSource.of(mask, (4, 4, 4)).source
    floats = CountingSource.of(mask.astype(np.float32), (4, 4, 4)).source
    with pytest.raises(ParameterError, match="output shape"):
        remove_small_objects_blockwise(src, 1.0, np.zeros((2, 2, 2), bool))
    with pytest.raises(ParameterError, match="integer or bool"):
        remove_small_objects_blockwise(floats, 1.0)
    with pytest.raises(ParameterError, match="min volume"):
        remove_small_objects_blockwise(src, -1.0)
    with pytest.raises(ParameterError, match="64-bit"):
        watershed_split_blockwise(src, (4, 4, 4), np.zeros(mask.shape, np.int32))
    with pytest.raises(ParameterError, match="halo"):
        watershed_split_blockwise(src, (-1, 0, 0))
    with pytest.raises(ParameterError, match="radius"):
        open_blockwise(src, 0.0)
    with pytest.raises(ParameterError, match="one level"):
        open_blockwise(src, 1.0).read(1)
    with pytest.raises(ParameterError, match="differs"):
        region_grow_blockwise(src, CountingSource.of(mask[:4], (4, 4, 4)).source, (2, 2, 2))
