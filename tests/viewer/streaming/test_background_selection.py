"""VolumeStreamer(background=True): the brick selection, draw list and requests computed on
the worker thread equal the synchronous ones for the same camera (and the LOD's own
``select_bricks``), and a frame never waits for the worker (issue 15)."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.volume import FunctionVolumeSource
from viewer.scene import Camera
from viewer.streaming import BrickCache, BrickGrid, View, VolumeStreamer, select_bricks

SIZE = (800, 600)
SHAPE = (128, 160, 192)


def _fn(level: int, region: tuple[slice, ...]) -> np.ndarray:
    raise AssertionError("the schedulers are paused: nothing is read")


def _source() -> FunctionVolumeSource:
    return FunctionVolumeSource(SHAPE, _fn, chunks=(16, 16, 16), n_levels=4)


@pytest.fixture(scope="module")
def half_resident() -> BrickCache:
    """A cache holding a random half of the bricks of every level (so that draw lists mix
    own bricks, stand-ins and undrawn leaves)."""
    cache = BrickCache(1 << 30)
    with VolumeStreamer(_source(), cache=cache, n_workers=1) as st:
        st.scheduler.pause()
        rng = np.random.default_rng(3)
        codes = np.flatnonzero(rng.random(st.grid.n_bricks) < 0.5)
        for k in codes.tolist():
            _, reg = st.region(k)
            cache.put(k, np.zeros(tuple(s.stop - s.start for s in reg), np.uint8))
    return cache


def _view(azimuth: float, elevation: float, distance: float, shift: float) -> View:
    centre = np.asarray(SHAPE, float) / 2 + shift
    d = np.array(
        [
            math.sin(elevation),
            math.cos(elevation) * math.sin(azimuth),
            math.cos(elevation) * math.cos(azimuth),
        ]
    )
    up = (1.0, 0.0, 0.0) if abs(d[0]) < 0.9 else (0.0, 1.0, 0.0)
    cam = Camera(
        position=tuple(map(float, centre + distance * d)),
        focal_point=tuple(map(float, centre)),
        view_up=up,
        view_angle=30.0,
    )
    return View.from_camera(cam, SIZE)


cameras = st.builds(
    _view,
    azimuth=st.floats(-math.pi, math.pi),
    elevation=st.floats(-1.4, 1.4),
    distance=st.floats(60.0, 3000.0),
    shift=st.floats(-80.0, 80.0),
)


@pytest.fixture()
def pair(half_resident: BrickCache) -> Iterator[tuple[VolumeStreamer, VolumeStreamer]]:
    # reuse_px=0: every frame selects for its own camera (no reuse of a close one's).
    bg = VolumeStreamer(_source(), cache=half_resident, n_workers=1, background=True, reuse_px=0.0)
    ref = VolumeStreamer(_source(), cache=half_resident, n_workers=1, reuse_px=0.0)
    bg.scheduler.pause()
    ref.scheduler.pause()
    try:
        yield bg, ref
    finally:
        bg.close()
        ref.close()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(start=cameras, cam=cameras)
def test_worker_selection_equals_the_synchronous_one(
    pair: tuple[VolumeStreamer, VolumeStreamer], start: View, cam: View
) -> None:
    bg, ref = pair
    bg.update(start)  # a fresh streamer's first frame (or hands ``start`` to the worker)
    for _ in range(2):
        # The first hands ``cam`` to the worker unless it is busy with an earlier camera;
        # the second draws that camera's plan and hands ``cam`` over for sure.
        bg.update(cam)
        bg.join(30)
    got = bg.update(cam)  # draws the worker's plan for ``cam``
    want = ref.update(cam)
    lod = select_bricks(bg.grid, [cam], max_error_px=1.0)
    np.testing.assert_array_equal(got.selection.leaves, lod.leaves)
    np.testing.assert_array_equal(got.selection.nodes, lod.nodes)
    np.testing.assert_array_equal(got.keys, want.keys)
    np.testing.assert_array_equal(got.levels, want.levels)
    np.testing.assert_allclose(got.crop_lo, want.crop_lo)
    np.testing.assert_allclose(got.crop_hi, want.crop_hi)
    assert (got.stats.stand_ins, got.stats.undrawn) == (want.stats.stand_ins, want.stats.undrawn)
    assert got.stats.held_back == want.stats.held_back
    np.testing.assert_array_equal(bg.scheduler.queued(), ref.scheduler.queued())
    # Every drawn key is resident (the draw list is independent of how it was computed).
    assert all(int(k) in bg.cache for k in got.keys)


def test_a_held_back_worker_never_blocks_the_frame(half_resident: BrickCache) -> None:
    a, b = _view(0.3, 0.2, 400.0, 0.0), _view(1.9, -0.4, 250.0, 30.0)
    gate = threading.Event()
    started = threading.Event()
    with VolumeStreamer(_source(), cache=half_resident, n_workers=1, background=True) as bg:
        bg.scheduler.pause()
        first = bg.update(a)  # the first frame is computed on this thread
        compute = bg._compute

        def held(*args: Any) -> Any:
            started.set()
            assert gate.wait(60)
            return compute(*args)

        bg._compute = held  # type: ignore[method-assign]
        try:
            frames = [bg.update(b) for _ in range(5)]
            assert started.wait(30)
            # Every frame returned while the worker was still held: the previous plan.
            assert not gate.is_set()
            for f in frames:
                assert f.selection is first.selection
                assert f.keys is first.keys
        finally:
            gate.set()
        bg.join(30)
        frame = bg.update(b)
    want = select_bricks(bg.grid, [b], max_error_px=1.0)
    np.testing.assert_array_equal(frame.selection.leaves, want.leaves)
    assert not np.array_equal(want.leaves, first.selection.leaves)


def test_wait_computes_this_cameras_selection_on_the_frame_thread(
    half_resident: BrickCache,
) -> None:
    a, b, c = (_view(0.1 * i, 0.1, 300.0 + 200 * i, 5.0 * i) for i in range(3))
    with VolumeStreamer(_source(), cache=half_resident, n_workers=1, background=True) as bg:
        bg.scheduler.pause()
        bg.update(a)
        bg.update(b)  # a worker job may be running now
        frame = bg.update(c, wait=True)
    want = select_bricks(bg.grid, [c], max_error_px=1.0)
    np.testing.assert_array_equal(frame.selection.leaves, want.leaves)
    assert len(frame.selection.leaves) and len(frame.keys)


def test_frames_say_selecting_until_the_last_cameras_bricks_are_drawn(
    half_resident: BrickCache,
) -> None:
    """A host that draws on demand (the desktop view) stops when the camera stops: the
    frames must say so while the worker has not caught up, and only then stop saying it."""
    a, b = _view(0.3, 0.2, 400.0, 0.0), _view(1.9, -0.4, 250.0, 30.0)
    want = select_bricks(BrickGrid.from_source(_source()), [b], max_error_px=1.0)
    with VolumeStreamer(_source(), cache=half_resident, n_workers=1, background=True) as bg:
        bg.scheduler.pause()
        frame = bg.update(a)
        for _ in range(20):  # at rest on a
            bg.join(30)
            frame = bg.update(a)
            if not frame.stats.selecting:
                break
        assert not frame.stats.selecting
        moved = bg.update(b)  # the camera jumps to b and stops there
        assert moved.stats.selecting
        assert not np.array_equal(moved.selection.leaves, want.leaves)
        for _ in range(20):
            bg.join(30)
            frame = bg.update(b)
            if not frame.stats.selecting:
                break
        assert not frame.stats.selecting
        np.testing.assert_array_equal(frame.selection.leaves, want.leaves)
    with VolumeStreamer(_source(), cache=half_resident, n_workers=1) as sync:
        sync.scheduler.pause()
        assert not sync.update(a).stats.selecting and not sync.update(b).stats.selecting
