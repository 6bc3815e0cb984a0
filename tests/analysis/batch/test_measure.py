"""Block-wise measure on a dask cluster against the single-process table and scikit-image.

Objects cross block boundaries on purpose (big ellipsoids on a small block grid), one
label is split into two far pieces in different blocks, one touches a shared face only,
and one label image has ids above a million: every case where a per-block row is not the
object's row. The reference is :func:`analysis.morphology.measure_objects` on the whole
image (what ``vrscope measure`` runs) and ``skimage.measure.regionprops``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster
from skimage import draw, measure

from analysis.batch import (
    MeasureJob,
    batch_measure,
    block_grid,
    budget_block,
    default_block,
    measure_block,
)
from analysis.io import write_labels, write_ngff
from analysis.morphology import BASE_COLUMNS, measure_objects

SPACING = (0.5, 0.25, 0.2)
SHAPE = (40, 52, 60)
BLOCK = (16, 16, 20)

EXACT = [
    "label", "voxel_count", "volume_um3", "centroid_z_um", "centroid_y_um", "centroid_x_um",
    *[f"bbox_{m}_{a}" for m in ("min", "max") for a in "zyx"],
]  # fmt: skip


def _labels(big_ids: bool) -> np.ndarray:
    rng = np.random.default_rng(3)
    lab = np.zeros(SHAPE, np.uint32)
    for i in range(1, 40):
        e = draw.ellipsoid(*rng.integers(2, 8, 3))
        z, y, x = (int(rng.integers(0, s - d)) for s, d in zip(SHAPE, e.shape, strict=True))
        lab[z : z + e.shape[0], y : y + e.shape[1], x : x + e.shape[2]][e] = i
    lab[2:6, 2:6, 2:6] = 50  # one label in two far pieces (two blocks)
    lab[34:38, 44:50, 50:56] = 50
    lab[20:24, 30:32, 36:40] = 51  # touches the face x = 40 of its block, does not cross it
    lab[0:40, 25, 10] = 52  # a thin rod through every z block
    if big_ids:
        lab = np.where(lab > 0, lab.astype(np.uint64) * 1_000_003 + 7, 0).astype(np.uint64)
    return lab


@pytest.fixture(scope="module")
def client():
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as cluster, Client(cluster) as c:  # fmt: skip
        yield c


def _store(tmp_path: Path, lab: np.ndarray) -> Path:
    path = tmp_path / "blobs.zarr"
    write_ngff(np.zeros(SHAPE, np.uint8), path, scale_um=SPACING, chunks=(8, 8, 10), n_levels=1)
    write_labels(path, "blobs", lab, chunks=(8, 8, 10))
    return path


def test_block_grid_covers_the_volume_once():
    blocks = block_grid(SHAPE, BLOCK)
    covered = np.zeros(SHAPE, np.int32)
    for start, stop in blocks:
        covered[tuple(slice(a, b) for a, b in zip(start, stop, strict=True))] += 1
    assert (covered == 1).all()
    assert default_block((1000, 100, 30), (64, 64, 64)) == (256, 100, 30)


@pytest.mark.parametrize(
    ("memory", "workers", "itemsize", "block"),
    [
        (2e9, 1, 2, (512, 512, 512)),  # 4 x 512³ x 2 B = 1.07 GB fits 2 GB; 8 blocks >= 2
        (2e9, 2, 2, (512, 512, 512)),  # 8 blocks >= 4
        (2e9, 8, 2, (256, 256, 256)),  # 8 blocks < 16 workers x 2: 64 blocks of 256³
        (2e9, 1, 8, (256, 256, 256)),  # uint64: 4 x 512³ x 8 B = 4.3 GB does not fit
        (0.1e9, 1, 2, (128, 128, 128)),  # 4 x 256³ x 2 B = 134 MB does not fit 100 MB
        (None, 1, 2, (256, 256, 256)),  # no limit known: the default edge
    ],
)
def test_budget_block_fits_the_memory_and_feeds_every_worker(memory, workers, itemsize, block):
    got = budget_block((1024, 1024, 1024), (128, 128, 128), itemsize, memory, workers)
    assert got == block
    n_blocks = len(block_grid((1024, 1024, 1024), got))
    assert n_blocks >= 2 * workers
    if memory:
        assert 4 * np.prod(got) * itemsize <= memory


def test_budget_block_on_a_small_or_flat_volume():
    # 96³ in 32³ chunks, 2 workers: 64³ blocks (8 >= 4); 128³ would be one block.
    assert budget_block((96, 96, 96), (32, 32, 32), 2, 2e9, 2) == (64, 64, 64)
    # Whole axes where they are shorter than the edge; whole chunks otherwise.
    assert budget_block((10, 1000, 1000), (10, 100, 100), 4, 2e9, 1) == (10, 800, 800)


@pytest.mark.parametrize("big_ids", [False, True], ids=["ids", "ids>1e6"])
@pytest.mark.parametrize("method", ["smooth", "binary"])
def test_blockwise_measure_equals_single_process(tmp_path, client, big_ids, method, caplog):
    lab = _labels(big_ids)
    store = _store(tmp_path, lab)
    job = MeasureJob(str(store), "blobs", 0, BLOCK, method)
    with caplog.at_level("INFO", logger="analysis.batch._measure"):
        result = batch_measure(client, job, tmp_path / "parts")
    # Both ways of measuring crossing objects ran: from the pieces the blocks kept, and
    # from the store (label 50's two far pieces touch no shared face: none kept).
    crossing = next(r.args for r in caplog.records if "objects crossing blocks" in r.msg)
    assert 0 < crossing[1] < crossing[0]
    assert result.table is not None and all(r.ok for r in result.outcomes)
    got = result.table
    ref = measure_objects(lab, SPACING, surface_method=method)
    assert list(got.columns) == list(BASE_COLUMNS)
    assert (got.dtypes == ref.dtypes).all()
    pd.testing.assert_frame_equal(got[EXACT], ref[EXACT], check_exact=True)
    np.testing.assert_allclose(got["surface_area_um2"], ref["surface_area_um2"], rtol=1e-9)
    # Every row comes from the crop the single-process run measures: all columns bit for bit.
    pd.testing.assert_frame_equal(got, ref, check_exact=True)
    assert not (tmp_path / "parts").exists()  # parts are removed once the table is written

    # Independent reference: regionprops with the same spacing.
    props = {p.label: p for p in measure.regionprops(lab.astype(np.int64), spacing=SPACING)}
    assert sorted(props) == got["label"].tolist()
    for row in got.itertuples():
        p = props[row.label]
        assert row.voxel_count == p.num_pixels
        assert row.volume_um3 == pytest.approx(p.area, rel=1e-12)
        np.testing.assert_allclose(
            (row.centroid_z_um, row.centroid_y_um, row.centroid_x_um), p.centroid, rtol=1e-12
        )
        assert (row.bbox_min_z, row.bbox_min_y, row.bbox_min_x) == p.bbox[:3]
        assert (row.bbox_max_z, row.bbox_max_y, row.bbox_max_x) == p.bbox[3:]


def test_resume_skips_blocks_done(tmp_path, client):
    lab = _labels(False)
    store = _store(tmp_path, lab)
    job = MeasureJob(str(store), "blobs", 0, BLOCK)
    full = batch_measure(client, job, tmp_path / "parts")
    assert full.blocks_run == full.blocks_total == len(block_grid(SHAPE, BLOCK))
    # An interrupted run: some blocks were written, one was being written (a temporary).
    parts = tmp_path / "parts"
    parts.mkdir()
    blocks = block_grid(SHAPE, BLOCK)
    for start, stop in blocks[:5]:
        measure_block(job, start, stop, str(parts))
    (parts / ".z0_y0_x20.parquet.tmp-123abc").write_bytes(b"half")
    (parts / "job.json").write_text(json.dumps(job.params()))
    again = batch_measure(client, job, parts, resume=True)
    assert again.blocks_run == len(blocks) - 5
    assert sum(r.skipped for r in again.outcomes) == 5
    assert again.table is not None
    pd.testing.assert_frame_equal(again.table, full.table, check_exact=True)


def test_crossing_groups_hold_every_object_once_inside_their_region():
    from analysis.batch._measure import _group_crossing

    rng = np.random.default_rng(0)
    objects = []
    for lab in range(1, 200):
        lo = tuple(int(v) for v in rng.integers(0, 90, 3))
        size = rng.integers(1, 12, 3)
        if lab % 50 == 0:
            size = np.array([100, 3, 3])  # long and thin: must not stretch a group's region
        if lab % 70 == 0:
            size = np.array([20, 20, 20])  # larger than a block: alone
        objects.append((lab, lo, tuple(int(a + s) for a, s in zip(lo, size, strict=True))))
    block = (16, 16, 16)
    groups = _group_crossing(objects, block)
    seen = sorted(o[0] for _, _, members in groups for o in members)
    assert seen == sorted(o[0] for o in objects)
    for lo, hi, members in groups:
        for _, a, b in members:
            assert all(p <= q and r <= s for p, q, r, s in zip(lo, a, b, hi, strict=True))
        if len(members) > 1:
            assert np.prod(np.subtract(hi, lo)) <= 8 * np.prod(block)
        if any(o[0] % 70 == 0 for o in members):
            assert len(members) == 1
