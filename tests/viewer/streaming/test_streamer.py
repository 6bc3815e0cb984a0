"""VolumeStreamer: streamed bricks equal the store (read independently with zarr), stand-ins
tile the view, labels and time-lapses stream, the cache budget holds, HTTP works in parallel."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import zarr
from skimage.transform import downscale_local_mean

from analysis.errors import ParameterError
from analysis.io import open_labels, open_volume, write_ngff
from analysis.volume import ArrayVolumeSource, FunctionVolumeSource
from tests.analysis.io._support import write_with_ome_zarr
from viewer.scene import Camera
from viewer.streaming import PaddedBrick, View, VolumeStreamer

from ._support import slow_http_server

SIZE = (800, 600)


def _close_view(src_shape: tuple[int, ...]) -> View:
    """A view of the whole volume (use with a tiny max_error_px: level 0 everywhere)."""
    cam = Camera()
    cam.frame(np.zeros(3), np.asarray(src_shape[-3:], float), direction=(1.0, 0.2, 0.1))
    return View.from_camera(cam, SIZE)


def _inner(pb: PaddedBrick) -> np.ndarray:
    """The brick's own voxels (its border cut off)."""
    pad = np.round(
        (np.asarray(pb.box_lo_um) - np.asarray(pb.origin_um)) / np.asarray(pb.spacing_um) + 0.5
    ).astype(int)
    return pb.array[
        tuple(
            slice(int(p), int(p) + (r.stop - r.start)) for p, r in zip(pad, pb.region, strict=True)
        )
    ]


def _assemble(st: VolumeStreamer, keys: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    out = np.zeros(shape, st.source.dtype)
    seen = np.zeros(shape, bool)
    for k in keys:
        pb = st.padded(int(k))
        assert pb is not None and pb.level == 0
        out[pb.region] = _inner(pb)
        seen[pb.region] = True
    assert seen.all()
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(1)
    data = rng.integers(0, 255, (48, 80, 72), dtype=np.uint8)
    path = tmp_path_factory.mktemp("s") / "img.zarr"
    write_with_ome_zarr(
        path,
        data,
        version="0.5",
        chunks=(16, 16, 16),
        labels={"cells": (data // 40).astype(np.uint32)},
    )
    return path


def test_streamed_bricks_equal_the_store(store: Path) -> None:
    src = open_volume(store)
    ref = zarr.open_array(str(store / "s0"), mode="r")[...]  # independent read
    with VolumeStreamer(src, cache_bytes=64 << 20, max_error_px=1e-6) as st:
        frame = st.settle(_close_view(ref.shape), timeout=60)
        assert frame.complete and set(frame.levels.tolist()) == {0}
        got = _assemble(st, np.unique(frame.keys), ref.shape)
    np.testing.assert_array_equal(got, ref)


def test_borders_come_from_the_neighbours(store: Path) -> None:
    src = open_volume(store)
    ref = zarr.open_array(str(store / "s0"), mode="r")[...]
    with VolumeStreamer(src, cache_bytes=64 << 20, max_error_px=1e-6) as st:
        st.settle(_close_view(ref.shape), timeout=60)
        grid = st.grid
        interior = st.key_base() + grid.encode(0, [[1, 2, 2]])[0]
        pb = st.padded(int(interior))
        assert pb is not None and len(pb.neighbours) == 26
        reg = pb.region
        expect = ref[
            reg[0].start - 1 : reg[0].stop + 1,
            reg[1].start - 1 : reg[1].stop + 1,
            reg[2].start - 1 : reg[2].stop + 1,
        ]
        np.testing.assert_array_equal(pb.array, expect)
        assert pb.origin_um == (reg[0].start - 1.0, reg[1].start - 1.0, reg[2].start - 1.0)
        # A corner brick: no border on the volume's outer faces.
        corner = st.padded(int(st.key_base() + grid.encode(0, [[0, 0, 0]])[0]))
        assert corner is not None
        np.testing.assert_array_equal(corner.array, ref[:17, :17, :17])


def _half_blocked(levels: list[np.ndarray], release: threading.Event) -> FunctionVolumeSource:
    """An NGFF-style pyramid whose level-0 bricks with x >= 112 wait for ``release``."""

    def fn(level: int, region: tuple[slice, ...]) -> np.ndarray:
        if level == 0 and region[-1].start >= 112:
            release.wait(30)
        return levels[level][region]

    return FunctionVolumeSource(levels[0].shape, fn, chunks=(16, 16, 16), n_levels=len(levels))


def test_stand_ins_tile_the_leaves_without_overlap() -> None:
    rng = np.random.default_rng(2)
    data = rng.integers(0, 255, (64, 128, 128), dtype=np.uint8)
    levels = [data] + [
        downscale_local_mean(data, (f, f, f)).astype(np.uint8) for f in (2, 4)
    ]  # 2x / 4x means: voxel centres where FunctionVolumeSource's NGFF translation puts them
    release = threading.Event()
    src = _half_blocked(levels, release)
    view = _close_view(data.shape)
    # More workers than blocked bricks, so blocked ones cannot starve the others.
    st = VolumeStreamer(src, cache_bytes=64 << 20, max_error_px=1e-6, n_workers=40)
    try:
        frame = st.update(view)
        for _ in range(4000):
            st.scheduler.wait_idle(0.005)
            frame = st.update(view)
            # everything loaded but the 4 x 8 blocked bricks of the last x column
            if frame.stats.undrawn == 0 and frame.stats.stand_ins == 32:
                break
        assert frame.stats.undrawn == 0
        assert frame.stats.stand_ins == 32 and not frame.complete
        assert set(frame.levels.tolist()) >= {0, 1}
        # Items cover exactly the leaves' boxes (clamped to the volume), never twice.
        g = st.grid
        llo, lhi = g.boxes(frame.selection.leaf_levels, frame.selection.leaf_ijk)
        ext_lo, ext_hi = np.zeros(3), np.asarray(data.shape) - 1.0
        llo, lhi = np.maximum(llo, ext_lo), np.minimum(lhi, ext_hi)
        vol_leaves = np.prod(lhi - llo, axis=1).sum()
        vol_items = np.prod(frame.crop_hi - frame.crop_lo, axis=1).sum()
        assert vol_items == pytest.approx(vol_leaves, rel=1e-9)
        pts = np.random.default_rng(0).uniform(ext_lo, ext_hi, (4000, 3))
        in_leaf = ((pts[:, None] >= llo) & (pts[:, None] < lhi)).all(2).sum(1)
        in_item = ((pts[:, None] >= frame.crop_lo) & (pts[:, None] < frame.crop_hi)).all(2).sum(1)
        assert np.array_equal(in_item, in_leaf) and in_item.max() == 1
        # Each item's brick is resident, covers its crop box, and is a leaf or an ancestor.
        base = st.key_base()
        blo, bhi = g.code_boxes(frame.keys - base)
        assert np.all(blo <= frame.crop_lo + 1e-9) and np.all(bhi >= frame.crop_hi - 1e-9)
        assert all(int(k) in st.cache for k in frame.keys)
        # Voxels drawn by a stand-in are the coarser level's voxels.
        k = int(frame.keys[frame.levels == 1][0])
        pb = st.padded(k)
        assert pb is not None
        np.testing.assert_array_equal(_inner(pb), levels[1][pb.region])
    finally:
        release.set()
        st.close()


def test_labels_stream_exactly(store: Path) -> None:
    lab = open_labels(store, "cells")
    ref = zarr.open_array(str(store / "labels" / "cells" / lab.levels[0].path), mode="r")[...]
    with VolumeStreamer(lab, labels=True, cache_bytes=64 << 20, max_error_px=1e-6) as st:
        frame = st.settle(_close_view(ref.shape), timeout=60)
        got = _assemble(st, np.unique(frame.keys), ref.shape)
    assert got.dtype == ref.dtype == np.uint32
    np.testing.assert_array_equal(got, ref)


def frame0_leaves(st: VolumeStreamer, view: View) -> np.ndarray:
    from viewer.streaming import select_bricks

    return select_bricks(st.grid, [view], max_error_px=st.max_error_px).leaves


def test_time_lapse_prefetches_the_next_time_point() -> None:
    rng = np.random.default_rng(4)
    data = rng.integers(0, 255, (3, 32, 64, 64), dtype=np.uint8)
    src = ArrayVolumeSource(data, axes="tzyx", chunks=(1, 16, 16, 16))
    view = _close_view(data.shape)
    with VolumeStreamer(src, cache_bytes=64 << 20, max_error_px=1e-6, prefetch_time=1) as st:
        assert st.n_time == 3
        st.settle(view, timeout=60)
        st.scheduler.wait_idle(30)
        t1 = st.key_base(time_index=1) + frame0_leaves(st, view)
        assert st.cache.contains_array(t1).all()  # prefetched while t = 0 was shown
        st.time_index = 1
        frame = st.update(view)
        # The first frame at t = 1 is already complete: no stand-ins, nothing missing.
        assert frame.complete and frame.stats.stand_ins == 0
        st.scheduler.wait_idle(30)
        st.update(view)
        t2 = st.key_base(time_index=2) + frame0_leaves(st, view)
        assert st.cache.contains_array(t2).all()  # and now t = 2 is prefetched
        got = _assemble(st, np.unique(frame.keys), data.shape[1:])
        np.testing.assert_array_equal(got, data[1])
        with pytest.raises(ParameterError):
            st.time_index = 3


def test_cache_budget_holds_while_flying_through_a_huge_volume() -> None:
    def fn(level: int, region: tuple[slice, ...]) -> np.ndarray:
        z, y, x = (np.arange(s.start, s.stop) for s in region)
        return ((z[:, None, None] + 3 * y[None, :, None] + 7 * x[None, None, :]) % 251).astype(
            np.uint8
        )

    src = FunctionVolumeSource((16384, 16384, 8192), fn, chunks=(64, 64, 64))
    budget = 24 << 20
    with VolumeStreamer(src, cache_bytes=budget, n_workers=4) as st:
        biases = []
        for i in range(12):
            z = 2000.0 + 150.0 * i
            cam = Camera(position=(z, 8000.0, 4000.0), focal_point=(z + 100.0, 8000.0, 4000.0))
            frame = st.update(View.from_camera(cam, (640, 480)))
            st.scheduler.wait_idle(2)
            assert st.cache.nbytes <= budget
            biases.append(frame.stats.lod_bias)
        frame = st.settle(View.from_camera(cam, (640, 480)), timeout=60)
        assert st.cache.nbytes <= budget
        assert max(biases) > 1.0  # the budget, not the dataset, bounded the detail
        assert frame.stats.drawn > 0 and frame.stats.undrawn == 0


def test_bad_parameters() -> None:
    src = ArrayVolumeSource(np.zeros((8, 8, 8), np.uint8))
    with pytest.raises(ParameterError):
        VolumeStreamer(src, max_error_px=0)
    with VolumeStreamer(src) as st, pytest.raises(ParameterError):
        st.channel = 1


@pytest.mark.network
def test_remote_store_over_http_with_latency(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    data = rng.integers(0, 255, (64, 64, 64), dtype=np.uint8)
    write_ngff(data, tmp_path / "r.zarr", scale_um=(1.0, 1.0, 1.0), chunks=(16, 16, 16))
    ref = zarr.open_array(str(tmp_path / "r.zarr" / "s0"), mode="r")[...]
    with slow_http_server(tmp_path, latency_s=0.1) as (url, info):
        src = open_volume(f"{url}/r.zarr")
        info["requests"].clear()
        with VolumeStreamer(src, cache_bytes=64 << 20, max_error_px=1e-6, n_workers=8) as st:
            frame = st.settle(_close_view(data.shape), timeout=120)
            got = _assemble(st, np.unique(frame.keys), data.shape)
            n_loaded = st.scheduler.stats().completed
    np.testing.assert_array_equal(got, ref)
    assert frame.complete
    # Requests overlapped (each one waits 100 ms at the server).
    assert info["max_concurrent"] >= 4
    chunk_requests = [p for p in info["requests"] if "/c/" in p]
    assert len(chunk_requests) == n_loaded  # one request per brick: nothing fetched twice


def test_a_grandparent_stands_in_for_every_leaf_below_it() -> None:
    release = threading.Event()
    data = np.random.default_rng(7).integers(0, 255, (64, 64, 64), dtype=np.uint8)
    levels = [data] + [downscale_local_mean(data, (f,) * 3).astype(np.uint8) for f in (2, 4)]

    def fn(level: int, region: tuple[slice, ...]) -> np.ndarray:
        if level < 2:
            release.wait(30)  # only the coarsest level arrives
        return levels[level][region]

    src = FunctionVolumeSource(data.shape, fn, chunks=(8, 8, 8), n_levels=3)
    view = _close_view(data.shape)
    st = VolumeStreamer(src, cache_bytes=64 << 20, max_error_px=1e-6, n_workers=4)
    try:
        n_top = int(np.prod(st.grid.grid[2]))
        frame = st.update(view)
        for _ in range(2000):
            st.scheduler.wait_idle(0.005)
            frame = st.update(view)
            if frame.stats.undrawn == 0:
                break
        assert frame.stats.undrawn == 0 and frame.stats.stand_ins == len(frame.selection.leaves)
        assert set(frame.levels.tolist()) == {2} and len(frame) == n_top
    finally:
        release.set()
        st.close()


def test_selection_is_kept_while_the_camera_barely_moves() -> None:
    src = FunctionVolumeSource(
        (256, 256, 256),
        lambda lv, reg: np.zeros([s.stop - s.start for s in reg], np.uint8),
        chunks=(32, 32, 32),
    )
    focal = np.array([128.0, 128.0, 128.0])

    def view(dz: float) -> View:  # the camera slides along z (no turn)
        eye = np.array([-150.0 + dz, 100.0, 140.0])
        return View.from_camera(
            Camera(position=tuple(eye), focal_point=tuple(focal + [dz, 0.0, 0.0])), SIZE
        )

    with VolumeStreamer(src, cache_bytes=64 << 20, reuse_px=0.5) as st:
        st.scheduler.pause()
        a = st.update(view(0.0))
        finest = st.grid.scale[int(a.selection.leaf_levels.min())].min()
        b = st.update(view(0.2 * finest))  # well under half a finest voxel
        assert b.selection is a.selection
        c = st.update(view(3.0 * finest))  # more: a fresh selection, the same as select_bricks'
        assert c.selection is not a.selection
        from viewer.streaming import select_bricks

        ref = select_bricks(st.grid, [view(3.0 * finest)], max_error_px=st.max_error_px)
        assert np.array_equal(np.sort(c.selection.leaves), np.sort(ref.leaves))
    with VolumeStreamer(src, cache_bytes=64 << 20, reuse_px=0.0) as st:
        st.scheduler.pause()
        a = st.update(view(0.0))
        assert st.update(view(0.0)).selection is not a.selection  # reuse off


def test_requests_beyond_the_cap_wait_and_are_all_loaded_once() -> None:
    rng = np.random.default_rng(8)
    data = rng.integers(0, 255, (64, 64, 64), dtype=np.uint8)
    levels = [data] + [downscale_local_mean(data, (f,) * 3).astype(np.uint8) for f in (2, 4)]
    reads: list[tuple[int, tuple[slice, ...]]] = []
    lock = threading.Lock()

    def fn(level: int, region: tuple[slice, ...]) -> np.ndarray:
        with lock:
            reads.append((level, tuple((s.start, s.stop) for s in region)))
        return levels[level][region]

    src = FunctionVolumeSource(data.shape, fn, chunks=(16, 16, 16), n_levels=3)
    view = _close_view(data.shape)
    with VolumeStreamer(
        src, cache_bytes=64 << 20, max_error_px=1e-6, n_workers=2, max_requests=8
    ) as st:
        st.scheduler.pause()
        frame = st.update(view)
        assert len(st.scheduler.queued()) == 8
        assert frame.stats.held_back > 0
        assert frame.stats.pending == 8 + frame.stats.held_back
        st.scheduler.pause(False)
        frame = st.settle(view, timeout=60)
        assert frame.complete and frame.stats.pending == 0
        got = _assemble(st, np.unique(frame.keys), data.shape)
    np.testing.assert_array_equal(got, data)
    assert len(reads) == len(set(reads))  # nothing fetched twice
    assert sum(1 for lv, _ in reads if lv == 0) == 64


def test_edge_padding_equals_numpy_pad() -> None:
    import itertools

    from viewer.streaming._streamer import _pad_edge

    a = np.random.default_rng(9).integers(0, 255, (3, 4, 5), dtype=np.uint8)
    for lo in itertools.product((0, 1), repeat=3):
        for hi in itertools.product((0, 1), repeat=3):
            ref = np.pad(a, list(zip(lo, hi, strict=True)), mode="edge")
            np.testing.assert_array_equal(_pad_edge(a, list(lo), list(hi)), ref)


def test_stand_ins_items_and_requests_match_a_walk_up_the_tree() -> None:
    # Reference: per leaf, a Python walk up node_parent to the nearest resident node;
    # per missing leaf, its missing ancestors up to that node. Residency is random.
    src = FunctionVolumeSource(
        (64, 128, 96),
        lambda lv, reg: np.zeros([s.stop - s.start for s in reg], np.uint8),
        chunks=(8, 8, 8),
    )
    rng = np.random.default_rng(11)
    with VolumeStreamer(src, cache_bytes=1 << 30, max_requests=1 << 20) as st:
        st.scheduler.pause()
        base = st.key_base()
        ext_lo, ext_hi = np.zeros(3), np.asarray(src.levels[0].shape, float) - 1.0
        for i in range(6):
            eye = (-60.0 + 10 * i, 40.0 + 7 * i, 150.0 - 9 * i)
            views = [View.from_camera(Camera(position=eye, focal_point=(32.0, 64, 48)), SIZE)]
            st.max_error_px = (0.5, 2.0)[i % 2]
            sel = st._select(views, np.zeros((0, 4)))
            parent = sel.node_parent.tolist()
            for p in (0.0, 0.3, 0.8, 1.0):
                res = rng.random(len(sel.nodes)) < p
                ref = []
                for leaf in sel.leaf_index.tolist():
                    n = leaf
                    while n >= 0 and not res[n]:
                        n = parent[n]
                    ref.append(n)
                nodes, lo, hi, got = st._draw_items(sel, res)
                assert got.tolist() == ref
                # Each leaf's centre lies in exactly one item, drawn from its reference node.
                llo, lhi = st.grid.boxes(sel.leaf_levels, sel.leaf_ijk)
                c = (llo + lhi) / 2
                inside = ((c[:, None] >= lo) & (c[:, None] <= hi)).all(2)
                for j, r in enumerate(ref):
                    hits = np.flatnonzero(inside[j])
                    assert (len(hits), [int(nodes[h]) for h in hits]) == (
                        (1, [r]) if r >= 0 else (0, [])
                    )
                covered = np.asarray(ref) >= 0
                vol_leaves = np.prod(np.minimum(lhi, ext_hi) - np.maximum(llo, ext_lo), axis=1)[
                    covered
                ].sum()
                assert np.prod(hi - lo, axis=1).sum() == pytest.approx(vol_leaves, rel=1e-9)
                # Requests: the missing leaves and their missing ancestors, coarse first.
                want = set()
                for leaf in sel.leaf_index.tolist():
                    n = leaf
                    while n >= 0 and not res[n]:
                        want.add(n)
                        n = parent[n]
                keys, _, _ = st._plan_requests(sel, res, np.unique(nodes), base, views, None)
                st.scheduler.submit(keys)
                queued = st.scheduler.queued()
                assert sorted(queued.tolist()) == sorted(base + int(sel.nodes[n]) for n in want)
                levels, _ = st.grid.decode(queued - base)
                assert np.all(np.diff(levels) <= 0)


def test_residency_bitmap_follows_the_cache_through_evictions() -> None:
    # The bitmap is updated from each frame's arrivals and evictions; the reference is
    # the bitmap rebuilt from the cache's keys.
    src = FunctionVolumeSource(
        (256, 256, 256),
        lambda lv, reg: np.zeros([s.stop - s.start for s in reg], np.uint8),
        chunks=(16, 16, 16),
    )
    with VolumeStreamer(src, cache_bytes=300 * 16**3, n_workers=4) as st:
        evicted = 0
        for i in range(40):
            cam = Camera(position=(-100.0 + 8 * i, 128.0, 20.0 + 5 * i), focal_point=(128.0,) * 3)
            frame = st.update(View.from_camera(cam, SIZE))
            st.scheduler.wait_idle(1)
            keys = st.cache.keys_array()
            ref = np.zeros(st.grid.n_bricks, bool)
            ref[keys - st.key_base()] = True
            assert np.array_equal(st.residency.resident, ref)
            assert all(int(k) in st.cache for k in frame.keys)
            evicted = st.cache.evictions
        assert evicted > 100  # the budget forced evictions while frames were drawn


def test_capped_requests_are_the_coarsest_then_nearest_the_view_centre() -> None:
    """With more bricks missing than ``max_requests``, the requests handed over are the
    coarsest missing bricks, nearest the view's centre first (1 - cos of the angle from
    the view direction), computed here brick by brick in plain Python."""
    src = FunctionVolumeSource((64, 128, 128), lambda lv, r: None, chunks=(8, 8, 8), n_levels=4)
    view = _close_view((64, 128, 128))
    with VolumeStreamer(src, cache_bytes=1 << 40, max_error_px=0.5, max_requests=40) as st:
        st.scheduler.pause()
        frame = st.update(view)
        sel = frame.selection
        got = st.scheduler.queued().tolist()
    grid = st.grid
    pos = np.asarray(view.position_um, float)
    fwd = np.asarray(view.forward, float)
    # Nothing is resident: every leaf and every ancestor of a leaf is wanted.
    want = []
    for code, lv, ijk in zip(sel.nodes, sel.node_levels, sel.node_ijk, strict=True):
        lo, hi = grid.boxes(int(lv), ijk[None])  # 64 x 128 x 128 in 8^3: no ragged brick
        c = (lo[0] + hi[0]) / 2 - pos
        score = 1.0 - float(c @ fwd) / float(np.linalg.norm(c))
        want.append((-int(lv), score, int(code)))
    want.sort()
    assert len(want) > 2 * 40 and len({lv for lv, _, _ in want[:40]}) >= 2
    assert got == [st.key_base() + code for _, _, code in want[:40]]
