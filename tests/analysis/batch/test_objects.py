"""Block-wise objects of a class map (``batch infer --objects``) against the whole map.

The reference is :func:`analysis.inference.objects_from_probabilities` on the whole array
(what ``vrscope infer --objects`` runs), and for the plain case ``scipy.ndimage.label``
itself. The map's blobs are long and winding (smoothed noise), so objects cross block
faces, edges and corners, and some touch only diagonally (26- but not 6-connected).
The block tasks run in this process, one after the other, as a worker would run them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from analysis.batch import block_grid
from analysis.batch._objects import (
    CC,
    OBJECTS,
    label_objects_block,
    link_objects_block,
    merge_objects,
    relabel_block,
)
from analysis.inference import objects_from_probabilities
from analysis.io import ScratchVolume, write_ngff

SHAPE = (30, 41, 37)
SPACING = (0.2, 0.1, 0.1)


@dataclass(frozen=True)
class _Job:
    store: str
    threshold: float = 0.5
    closing_um: float = 0.0
    min_volume_um3: float = 0.0


def _probabilities(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = ndi.gaussian_filter(rng.normal(size=SHAPE), 1.5)
    return (1 / (1 + np.exp(-smooth / smooth.std() * 2 + 1.2))).astype(np.float32)


def _blockwise(tmp_path: Path, prob: np.ndarray, job: _Job, block) -> np.ndarray:
    parts = tmp_path / "parts"
    scratch = ScratchVolume(SHAPE, np.float32, chunks=block, folder=parts / "labels.zarr")
    scratch[...] = prob
    for name in (CC, OBJECTS):
        ScratchVolume(SHAPE, np.int32, chunks=block, folder=parts / name)
    grid = block_grid(SHAPE, block)
    conns = (1, 3) if job.min_volume_um3 > 0 else (1,)
    counts = [label_objects_block(job, str(parts), s, e) for s, e in grid]
    links = [link_objects_block(str(parts), s, e, block, conns) for s, e in grid]
    luts = merge_objects(counts, links, float(np.prod(SPACING)), job.min_volume_um3)
    for (s, e), lut in zip(grid, luts, strict=True):
        relabel_block(str(parts), s, e, lut)
    return np.asarray(ScratchVolume.reopen(parts / OBJECTS).read(0))


@pytest.fixture
def store(tmp_path) -> str:
    path = tmp_path / "img.zarr"
    write_ngff(np.zeros(SHAPE, np.uint8), path, scale_um=SPACING, chunks=(8, 8, 8), n_levels=1)
    return str(path)


def _crossing(lab: np.ndarray, block) -> int:
    """Objects whose voxels lie in more than one block."""
    n = 0
    for sl in ndi.find_objects(lab):
        if sl is not None and any(
            s.start // b != (s.stop - 1) // b for s, b in zip(sl, block, strict=True)
        ):
            n += 1
    return n


@pytest.mark.parametrize("block", [(8, 8, 8), (16, 8, 24), (30, 41, 37)])
@pytest.mark.parametrize("seed", [0, 1])
def test_components_equal_ndimage_label(tmp_path, store, block, seed):
    prob = _probabilities(seed)
    ref, n = ndi.label(prob > 0.5)
    got = _blockwise(tmp_path, prob, _Job(store), block)
    assert n > 10
    if block != SHAPE:
        assert _crossing(ref, block) > 5
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize(("closing_um", "min_volume_um3"), [(0.15, 0.0), (0.0, 0.02), (0.25, 0.05)])
def test_closing_and_size_filter_equal_the_whole_map(tmp_path, store, closing_um, min_volume_um3):
    prob = _probabilities(2)
    ref = objects_from_probabilities(
        prob, spacing=SPACING, closing_um=closing_um, min_volume_um3=min_volume_um3
    )
    plain = objects_from_probabilities(prob, spacing=SPACING)
    if min_volume_um3 > 0:  # the filter removes some objects, and keeps some
        assert 0 < ref.max() < plain.max()
    if closing_um > 0:
        assert not np.array_equal(ref > 0, plain > 0)
    got = _blockwise(tmp_path, prob, _Job(store, 0.5, closing_um, min_volume_um3), (8, 8, 8))
    assert _crossing(ref, (8, 8, 8)) >= 2
    np.testing.assert_array_equal(got, ref)


def test_size_filter_counts_diagonal_neighbours_across_blocks(tmp_path, store):
    """Two cubes that touch only at a corner, in different blocks: one 26-connected
    object for the size filter (kept together), two 6-connected objects in the output."""
    prob = np.zeros(SHAPE, np.float32)
    prob[5:8, 5:8, 5:8] = 1.0  # block (0, 0, 0); its corner voxel (7, 7, 7)
    prob[8:11, 8:11, 8:11] = 1.0  # block (1, 1, 1); its corner voxel (8, 8, 8)
    prob[20:22, 20:22, 20:22] = 1.0  # small alone: removed
    volume = float(np.prod(SPACING))
    job = _Job(store, 0.5, 0.0, 40 * volume)  # each cube 27 voxels, the pair 54
    ref = objects_from_probabilities(prob, spacing=SPACING, min_volume_um3=40 * volume)
    assert ref.max() == 2 and ref[21, 21, 21] == 0
    np.testing.assert_array_equal(_blockwise(tmp_path, prob, job, (8, 8, 8)), ref)


def test_a_map_without_objects_gives_an_empty_label_image(tmp_path, store):
    prob = np.full(SHAPE, 0.25, np.float32)
    ref = objects_from_probabilities(prob, spacing=SPACING, min_volume_um3=0.01)
    assert ref.max() == 0
    got = _blockwise(tmp_path, prob, _Job(store, 0.5, 0.0, 0.01), (8, 8, 8))
    np.testing.assert_array_equal(got, ref)
