"""A lowered step count (frame budget) keeps brightness; MIP, MinIP and iso-surfaces skip
bricks that cannot change a ray and draw what they drew without skipping."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from analysis.volume import FunctionVolumeSource
from viewer.raycast import Harness, ResidentVolume, TransferFunction
from viewer.streaming import BrickGrid

from ._marcher import psnr
from .test_images import CAMERA, FACE_ON, SIZE, TF_MIP, N, _sphere
from .test_iso import CAMERA as ISO_CAMERA
from .test_iso import _cone

pytestmark = pytest.mark.render


@pytest.fixture(scope="module")
def harness(ctx: Any) -> Any:
    h = Harness(SIZE, ctx)
    yield h
    h.release()


def _const(level: int, region: tuple[slice, ...]) -> np.ndarray:
    return np.full([s.stop - s.start for s in region], 128, np.uint8)


@pytest.mark.parametrize("step_factor", [0.5, 1.0, 2.0, 4.0])
def test_a_longer_step_keeps_a_constant_volumes_opacity(
    harness: Any, ctx: Any, step_factor: float
) -> None:
    """Face on through 63 voxels of constant density: alpha = 1 - exp(-sigma L) whatever
    the step (opacity corrected per step), with as many samples as L / step."""
    a = 0.03  # opacity per voxel (the reference step)
    tf = TransferFunction.ramp((0.0, 255.0), opacity=(a, a))
    src = FunctionVolumeSource((N, N, N), _const, chunks=(16,) * 3, n_levels=1)
    vol = ResidentVolume(ctx, [src.read(0)], BrickGrid.from_source(src))
    img = harness.render(vol, tf, **FACE_ON, step_factor=step_factor)
    counts = harness.render(vol, tf, **FACE_ON, step_factor=step_factor, statistics=True)
    c = slice(SIZE[1] // 2 - 1, SIZE[1] // 2 + 1)
    alpha, samples = img[c, c, 3], counts[c, c, 0]
    sigma, length = -math.log(1 - a), float(N - 1)
    # The samples' lattice covers the length up to less than one step.
    assert np.all(np.abs(samples - length / step_factor) <= 1.0)
    lo = 1 - math.exp(-sigma * (length - step_factor))
    hi = 1 - math.exp(-sigma * length)
    assert np.all((alpha >= lo - 2e-3) & (alpha <= hi + 2e-3)), (alpha, lo, hi)
    # Grey 128: the colour is the value's, premultiplied.
    np.testing.assert_allclose(img[c, c, 0], alpha * 128 / 255, atol=3e-3)
    vol.release()


@pytest.mark.parametrize("mode", ["mip", "minip"])
def test_mip_skips_bricks_that_cannot_change_the_ray(harness: Any, ctx: Any, mode: str) -> None:
    def field(level: int, region: tuple[slice, ...]) -> np.ndarray:
        v = _sphere(level, region)
        return v if mode == "mip" else 255 - v  # MinIP: a dark sphere in bright

    src = FunctionVolumeSource((N, N, N), field, chunks=(8,) * 3, n_levels=1)
    vol = ResidentVolume(ctx, [src.read(0)], BrickGrid.from_source(src))
    full = harness.render(vol, TF_MIP, **CAMERA, mode=mode, skip_bricks=False)
    fast = harness.render(vol, TF_MIP, **CAMERA, mode=mode)
    n_full = harness.render(vol, TF_MIP, **CAMERA, mode=mode, skip_bricks=False, statistics=True)
    n_fast = harness.render(vol, TF_MIP, **CAMERA, mode=mode, statistics=True)
    vol.release()
    assert full[..., 3].max() > 0.3 and full.std() > 0.05
    assert psnr(full, fast) >= 40.0
    # Nothing skipped without skipping; with it, bricks skipped and samples saved on
    # most rays that cross the volume (every leaf is either sampled or skipped).
    assert n_full[..., 2].max() == 0
    hit = n_full[..., 1] > 0
    np.testing.assert_array_equal((n_fast[..., 1] + n_fast[..., 2])[hit], n_full[..., 1][hit])
    assert np.mean(n_fast[..., 2][hit] > 0) > 0.5
    assert n_fast[..., 0].sum() < 0.8 * n_full[..., 0].sum()


def test_iso_surface_skips_bricks_without_the_iso_value(ctx: Any) -> None:
    tf = TransferFunction.ramp((0.0, 255.0), colormap=[(1, 0.5, 0.2)] * 2, opacity=(0.5, 0.5))
    src = FunctionVolumeSource((N, N, N), _cone, chunks=(8,) * 3, n_levels=1, dtype=np.float32)
    vol = ResidentVolume(ctx, [src.read(0)], BrickGrid.from_source(src))
    h = Harness(SIZE, ctx)
    try:
        kw: dict[str, Any] = dict(ISO_CAMERA, mode="isosurface", iso_value=120.0)
        full = h.render(vol, tf, **kw, skip_bricks=False)
        fast = h.render(vol, tf, **kw)
        n_full = h.render(vol, tf, **kw, skip_bricks=False, statistics=True)
        n_fast = h.render(vol, tf, **kw, statistics=True)
        # An iso value inside no brick's range: every brick of every ray is skipped.
        none = h.render(vol, tf, **dict(kw, iso_value=250.0), statistics=True)
    finally:
        h.release()
        vol.release()
    # Translucent: front and back crossings of the sphere both drawn.
    assert full[SIZE[1] // 2, SIZE[0] // 2, 3] == pytest.approx(0.75, abs=0.01)
    assert psnr(full, fast) >= 40.0
    hit = n_full[..., 1] > 0
    assert n_full[..., 2].max() == 0
    assert np.mean(n_fast[..., 2][hit] > 0) > 0.5
    assert n_fast[..., 0].sum() < 0.8 * n_full[..., 0].sum()
    assert none[..., 0].max() == 0 and none[..., 2][hit].min() > 0
