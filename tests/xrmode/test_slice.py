"""The slice tool's resampling, without a runtime: the finest level, only the plane's box,
against analytic geometry (the Monado test checks what the eyes see)."""

from __future__ import annotations

import numpy as np

from analysis.volume import ArrayVolumeSource
from xrmode.tools import resample_plane

CENTRE = np.array([20.0, 20.0, 20.0])
RADIUS = 10.0


def _ball_source() -> tuple[ArrayVolumeSource, list[tuple[int, tuple[slice, ...]]]]:
    z, y, x = np.mgrid[:40, :40, :40].astype(float)
    ball = ((z - CENTRE[0]) ** 2 + (y - CENTRE[1]) ** 2 + (x - CENTRE[2]) ** 2 < RADIUS**2) * 200.0
    # Level 1 is deliberately empty: only level 0 shows the ball.
    src = ArrayVolumeSource([ball.astype(np.uint8), np.zeros((20, 20, 20), np.uint8)])
    reads: list[tuple[int, tuple[slice, ...]]] = []
    read = src.read

    def spy(level: int, region: tuple[slice, ...] | None = None) -> np.ndarray:
        reads.append((level, tuple(region or ())))
        return np.asarray(read(level, region))

    src.read = spy  # type: ignore[method-assign]
    return src, reads


def test_a_plane_through_the_ball_cuts_the_analytic_disk_from_the_finest_level() -> None:
    src, reads = _ball_source()
    # The plane z = 24 (4 voxels from the centre): a disk of radius sqrt(100 - 16).
    corners = [(24.0, 5.0, 5.0), (24.0, 5.0, 35.0), (24.0, 35.0, 5.0)]
    img = resample_plane(src, corners, n=60)
    a = 5.0 + (np.arange(60) + 0.5) * 0.5
    yy, xx = np.meshgrid(a, a, indexing="ij")  # rows along y (second side), columns along x
    r = np.hypot(yy - CENTRE[1], xx - CENTRE[2])
    r_disk = np.sqrt(RADIUS**2 - 4.0**2)
    assert (img[r < r_disk - 1.0] > 150).all()
    assert (img[r > r_disk + 1.0] < 50).all()
    # Only level 0 was read, and only the plane's box (one or two z planes).
    assert [lv for lv, _ in reads] == [0]
    zs = reads[0][1][0]
    assert zs.stop - zs.start <= 2


def test_outside_the_volume_is_nan_and_a_small_budget_falls_back_to_a_coarser_level() -> None:
    src, reads = _ball_source()
    corners = [(20.0, -20.0, 20.0), (20.0, -20.0, 21.0), (20.0, -19.0, 20.0)]
    assert np.isnan(resample_plane(src, corners, n=8)).all()
    assert reads == []
    inside = [(20.0, 15.0, 15.0), (20.0, 15.0, 25.0), (20.0, 25.0, 15.0)]
    img = resample_plane(src, inside, n=8, budget=10)
    assert [lv for lv, _ in reads] == [1]
    assert (img == 0).all()  # the (empty) coarse level, not the ball


def test_a_streamed_plane_reads_only_the_bricks_the_cache_lacks() -> None:
    """Through a VolumeStreamer (the volume's brick cache): with every brick of the
    finest level resident, the plane reads nothing from the store and still cuts the
    analytic disk; with one brick evicted, exactly that brick is read."""
    from viewer.streaming import VolumeStreamer
    from xrmode.tools import streamer_box_reader

    z, y, x = np.mgrid[:40, :40, :40].astype(float)
    ball = ((z - CENTRE[0]) ** 2 + (y - CENTRE[1]) ** 2 + (x - CENTRE[2]) ** 2 < RADIUS**2) * 200.0
    src = ArrayVolumeSource([ball.astype(np.uint8)], chunks=(16, 16, 16))
    reads: list[tuple[int, tuple[slice, ...]]] = []
    read = src.read

    def spy(level: int, region: tuple[slice, ...] | None = None) -> np.ndarray:
        reads.append((level, tuple(region or ())))
        return np.asarray(read(level, region))

    src.read = spy  # type: ignore[method-assign]
    with VolumeStreamer(src, n_workers=1, cache_bytes=1 << 24) as streamer:
        g = streamer.grid
        keys = [streamer.key_base() + k for k in range(int(g.offsets[0]), int(g.offsets[1]))]
        for k in keys:  # what the volume's loaders leave in the cache
            level, region = streamer.region(k)
            streamer.cache.put(k, np.asarray(read(level, region)))
        corners = [(24.0, 5.0, 5.0), (24.0, 5.0, 35.0), (24.0, 35.0, 5.0)]
        img = resample_plane(src, corners, n=60, read_box=streamer_box_reader(streamer))
        assert reads == []
        a = 5.0 + (np.arange(60) + 0.5) * 0.5
        yy, xx = np.meshgrid(a, a, indexing="ij")
        r = np.hypot(yy - CENTRE[1], xx - CENTRE[2])
        r_disk = np.sqrt(RADIUS**2 - 4.0**2)
        assert (img[r < r_disk - 1.0] > 150).all()
        assert (img[r > r_disk + 1.0] < 50).all()
        # Brick (z 16..32, y 16..32, x 16..32) leaves the cache: it alone is read again.
        gone = (
            streamer.key_base()
            + int(g.offsets[0])
            + (1 * int(g.grid[0, 1]) + 1) * int(g.grid[0, 2])
            + 1
        )
        streamer.cache.discard(gone)
        again = resample_plane(src, corners, n=60, read_box=streamer_box_reader(streamer))
        assert [(lv, tuple((s.start, s.stop) for s in reg[-3:])) for lv, reg in reads] == [
            (0, ((16, 32), (16, 32), (16, 32)))
        ]
        np.testing.assert_array_equal(again, img)
