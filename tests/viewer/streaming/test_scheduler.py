"""Scheduler: priority order, dropping stale requests, failures, and a frame that never waits."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from analysis.errors import ParameterError
from analysis.volume import FunctionVolumeSource
from viewer.scene import Camera
from viewer.streaming import ChunkScheduler, View, VolumeStreamer


def _gated_loader(gate: threading.Event, order: list[int]):
    def load(key: int) -> np.ndarray:
        order.append(key)
        if len(order) == 1:
            gate.wait(10)  # hold the single worker on the first request
        return np.full(4, key, np.uint8)

    return load


def _results(s: ChunkScheduler, n: int, timeout: float = 10.0) -> list:
    out: list = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += s.drain()
        time.sleep(0.005)
    return out


def test_loads_in_submitted_priority_order() -> None:
    gate, order = threading.Event(), []
    with ChunkScheduler(_gated_loader(gate, order), n_workers=1) as s:
        s.submit([100])
        while not order:
            time.sleep(0.001)
        s.submit([7, 3, 9, 1])
        gate.set()
        res = _results(s, 5)
    assert order == [100, 7, 3, 9, 1]
    assert [r.request.key for r in res] == [100, 7, 3, 9, 1]
    assert all(np.all(r.array == r.request.key) for r in res)
    assert len({r.request.id for r in res}) == 5


def test_stale_requests_are_dropped_and_running_ones_not_repeated() -> None:
    gate, order = threading.Event(), []
    with ChunkScheduler(_gated_loader(gate, order), n_workers=1) as s:
        s.submit([1, 2, 3, 4])
        while not order:
            time.sleep(0.001)
        # The camera moved: 2, 3, 4 are no longer wanted; 1 is running, listed again.
        s.submit([1, 5, 6])
        gate.set()
        res = _results(s, 3)
        st = s.stats()
    assert order == [1, 5, 6]
    assert st.dropped == 3 and st.completed == 3 and st.pending == 0
    assert res[0].stale and not res[-1].stale


def test_a_failed_load_is_reported_and_the_worker_survives() -> None:
    def load(key: int) -> np.ndarray:
        if key == 2:
            raise OSError("connection reset")
        return np.zeros(1, np.uint8)

    with ChunkScheduler(load, n_workers=2) as s:
        s.submit([1, 2, 3])
        res = _results(s, 3)
    failed = [r for r in res if r.error]
    assert len(failed) == 1 and failed[0].request.key == 2 and "connection reset" in failed[0].error
    assert s.stats().failed == 1 and s.stats().completed == 2
    with pytest.raises(ParameterError):
        ChunkScheduler(load, n_workers=0)


def test_update_never_waits_for_a_slow_source() -> None:
    release = threading.Event()

    def fn(level: int, region: tuple[slice, ...]) -> np.ndarray:
        if level == 0:
            release.wait(30)  # full resolution "hangs" until the test releases it
        return np.full([s.stop - s.start for s in region], level + 1, np.uint8)

    src = FunctionVolumeSource((256, 256, 256), fn, chunks=(32, 32, 32))
    cam = Camera(position=(-40.0, 128.0, 128.0), focal_point=(128.0, 128.0, 128.0))
    view = View.from_camera(cam, (800, 600))
    streamer = VolumeStreamer(src, cache_bytes=64 << 20, n_workers=4)
    frames: list = []

    def frame_loop() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            f = streamer.update(view)
            frames.append(f)
            if f.stats.drawn and f.stats.stand_ins and f.stats.in_flight:
                return
            time.sleep(0.01)

    t = threading.Thread(target=frame_loop)
    t.start()
    t.join(25)
    finished = not t.is_alive()
    release.set()
    t.join(5)
    streamer.close()
    # The loop finished while level 0 was still blocked: frames never waited on it,
    # and coarser resident bricks stood in for the missing fine ones.
    assert finished
    last = frames[-1]
    assert last.stats.stand_ins > 0 and last.stats.in_flight > 0
    assert set(last.levels.tolist()) and min(last.levels.tolist()) > 0


def test_requests_go_coarse_first_then_from_the_view_centre() -> None:
    order: list[tuple[int, tuple[slice, ...]]] = []
    lock = threading.Lock()

    def fn(level: int, region: tuple[slice, ...]) -> np.ndarray:
        with lock:
            order.append((level, region))
        return np.zeros([s.stop - s.start for s in region], np.uint8)

    src = FunctionVolumeSource((128, 512, 512), fn, chunks=(32, 32, 32))
    cam = Camera(position=(-120.0, 200.0, 300.0), focal_point=(64.0, 200.0, 300.0))
    view = View.from_camera(cam, (800, 600))
    with VolumeStreamer(src, cache_bytes=256 << 20, n_workers=1) as st:
        st.scheduler.pause()
        frame = st.update(view)
        queued = st.scheduler.queued()  # the submitted order
        st.scheduler.pause(False)
        st.settle(view, timeout=30)
    codes = queued % st.grid.n_bricks
    levels = st.grid.decode(codes)[0]
    assert np.all(np.diff(levels) <= 0)  # coarse first
    lo, hi = st.grid.code_boxes(codes)
    rel = (lo + hi) / 2 - np.asarray(cam.position)
    # angle between the brick centre and the view axis, computed here from scratch
    score = np.arccos(np.clip(rel @ cam.direction / np.linalg.norm(rel, axis=1), -1, 1))
    for lvl in np.unique(levels):
        s = score[levels == lvl]
        assert np.all(np.diff(s) >= -1e-9)  # then from the view centre outwards
    assert len(frame.selection.nodes) >= len(queued) > 0
    # loads followed that order
    assert [lv for lv, _ in order][: len(levels)] == levels.tolist()


def _batched(calls: list[list[int]], fail: int | None = None, fail_all: bool = False):
    def load_many(keys: list[int]) -> list:
        calls.append(list(keys))
        if fail_all:
            raise TimeoutError("store unreachable")
        return [OSError("bad chunk") if k == fail else np.full(4, k, np.uint8) for k in keys]

    def load(key: int) -> np.ndarray:
        calls.append([key])
        return np.full(4, key, np.uint8)

    return load, load_many


def test_batches_keep_priority_order_and_spread_over_the_workers() -> None:
    calls: list[list[int]] = []
    load, many = _batched(calls)
    with ChunkScheduler(load, n_workers=2, load_many=many, batch=4) as s:
        s.pause()
        s.submit(list(range(100, 120)))  # 20 keys, most wanted first
        s.pause(False)
        res = _results(s, 20)
    assert sorted(r.request.key for r in res) == list(range(100, 120))
    assert all(np.all(r.array == r.request.key) for r in res)
    # one worker's calls are in list order, and every key was loaded exactly once
    flat = [k for c in calls for k in c]
    assert sorted(flat) == list(range(100, 120))
    assert all(c == sorted(c) for c in calls)
    # the head of a list submitted to idle workers goes out alone, then batches of
    # at most 4 and never more than an even share of what is left
    assert [100] in calls
    assert max(len(c) for c in calls) == 4
    assert [119] in calls  # the tail is shared out, not taken by one worker
    assert s.stats().completed == 20


def test_a_failed_key_fails_alone_and_a_failed_batch_fails_every_key() -> None:
    calls: list[list[int]] = []
    load, many = _batched(calls, fail=5)
    with ChunkScheduler(load, n_workers=1, load_many=many, batch=8) as s:
        s.pause()
        s.submit(list(range(20)))
        s.pause(False)
        res = _results(s, 20)
    failed = [r for r in res if r.error]
    assert [r.request.key for r in failed] == [5] and "bad chunk" in failed[0].error
    assert any(5 in c and len(c) > 1 for c in calls)  # it failed inside a batch
    calls.clear()
    load, many = _batched(calls, fail_all=True)
    with ChunkScheduler(load, n_workers=1, load_many=many, batch=8) as s:
        s.pause()
        s.submit(list(range(20)))
        s.pause(False)
        res = _results(s, 20)
        st = s.stats()
    batched = {k for c in calls if len(c) > 1 for k in c}
    assert batched and all("store unreachable" in r.error for r in res if r.request.key in batched)
    assert st.failed == len(batched) and st.completed == 20 - len(batched)
    with pytest.raises(ParameterError):
        ChunkScheduler(load, load_many=many, batch=0)


def test_streamer_reads_zarr_bricks_in_batches(tmp_path) -> None:
    from analysis.io import open_volume, write_ngff

    data = np.random.default_rng(1).integers(0, 255, (64, 64, 96), dtype=np.uint8)
    write_ngff(data, tmp_path / "b.zarr", scale_um=(1.0, 1.0, 1.0), chunks=(16, 16, 16))
    src = open_volume(tmp_path / "b.zarr")
    sizes: list[int] = []
    real = src.read_many

    def read_many(requests):  # type: ignore[no-untyped-def]
        sizes.append(len(requests))
        return real(requests)

    src.read_many = read_many  # type: ignore[method-assign]
    with VolumeStreamer(src, cache_bytes=64 << 20, n_workers=2) as st:
        keys = np.arange(st.grid.offsets[0], st.grid.offsets[1])
        st.scheduler.submit(keys)
        res = _results(st.scheduler, len(keys))
        for r in res:
            level, reg = st.region(r.request.key)
            assert level == 0
            np.testing.assert_array_equal(r.array, data[reg])
    assert len(res) == len(keys) == 4 * 4 * 6
    assert max(sizes) == 8  # batched (the scheduler's default batch)


def test_a_finished_load_counts_as_in_flight_until_drained() -> None:
    """'Nothing pending, nothing in flight' must mean the caller has every result."""
    with ChunkScheduler(lambda k: np.full(2, k, np.uint8), n_workers=2) as s:
        s.submit([1, 2, 3])
        assert s.wait_idle(10)  # every load finished; none drained yet
        st = s.stats()
        assert st.pending == 0 and st.completed == 3 and st.in_flight == 3
        got = s.drain()
        assert sorted(r.request.key for r in got) == [1, 2, 3]
        assert s.stats().in_flight == 0


def test_default_workers_and_batches(tmp_path) -> None:
    import os
    import types

    from viewer.streaming import default_batch, default_workers

    assert default_workers() == max(1, min(8, os.cpu_count() or 2))
    assert default_batch(types.SimpleNamespace(url="https://example.org/a.zarr")) == 32
    assert default_batch(types.SimpleNamespace(url="/data/a.zarr")) == 8
    assert default_batch(types.SimpleNamespace(url="file:///data/a.zarr")) == 8
    assert default_batch(object()) == 8
    src = FunctionVolumeSource((32, 32, 32), lambda lv, reg: np.zeros(1, np.uint8))
    with VolumeStreamer(src, cache_bytes=1 << 20) as st:
        assert st.scheduler._n_workers == default_workers()
    with VolumeStreamer(src, cache_bytes=1 << 20, n_workers=3) as st:
        assert st.scheduler._n_workers == 3
