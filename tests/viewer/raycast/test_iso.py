"""Iso-surface mode of the single pass against an analytic sphere, across bricks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from analysis.volume import FunctionVolumeSource
from viewer.raycast import Harness, ResidentVolume, TransferFunction
from viewer.streaming import BrickGrid

from ._marcher import psnr, rays

pytestmark = pytest.mark.render

N = 64
SIZE = (64, 64)
CENTRE = np.array([31.5, 31.5, 31.5])
RADIUS = 20.0
CAMERA = dict(
    position=(20.0, 70.0, -110.0), focal_point=(31.5, 31.5, 31.5), view_up=(0.0, -1.0, 0.0)
)
COLOUR = (1.0, 0.5, 0.2)


def _cone(level: int, region: tuple[slice, ...]) -> np.ndarray:
    # Value falls linearly with the distance from the centre: 200 - 4 r (uint8).
    z, y, x = np.meshgrid(*(np.arange(s.start, s.stop) for s in region), indexing="ij")
    r = np.sqrt((z - CENTRE[0]) ** 2 + (y - CENTRE[1]) ** 2 + (x - CENTRE[2]) ** 2)
    return np.clip(200.0 - 4.0 * r, 0, 255).astype(np.float32)


def _vol(ctx: Any, chunk: int) -> ResidentVolume:
    src = FunctionVolumeSource((N, N, N), _cone, chunks=(chunk,) * 3, n_levels=1, dtype=np.float32)
    return ResidentVolume(ctx, [src.read(0)], BrickGrid.from_source(src))


def _tf(opacity: float) -> TransferFunction:
    return TransferFunction.ramp((0.0, 255.0), colormap=[COLOUR, COLOUR], opacity=(opacity,) * 2)


def _analytic() -> np.ndarray:
    """The sphere r = 20 (iso value 120) under a headlight: ambient 0.1, diffuse 0.7,
    specular 0.2 with power 10, two-sided, first surface only (opacity 1)."""
    eye, d = rays(CAMERA["position"], CAMERA["focal_point"], CAMERA["view_up"], 30.0, SIZE)
    oc = eye - CENTRE
    b = np.einsum("hwk,k->hw", d, oc)
    c = oc @ oc - RADIUS**2
    disc = b * b - c
    hit = disc > 0
    t = -b - np.sqrt(np.where(hit, disc, 0.0))
    p = eye + d * t[..., None]
    n = (p - CENTRE) / RADIUS
    ndl = np.abs(np.einsum("hwk,hwk->hw", n, d))
    spec = np.maximum(2 * ndl * ndl - 1, 0) ** 10
    rgb = np.asarray(COLOUR)[None, None, :] * (0.1 + 0.7 * ndl)[..., None] + 0.2 * spec[..., None]
    out = np.zeros((*SIZE[::-1], 4))
    out[..., :3] = np.where(hit[..., None], np.minimum(rgb, 1.0), 0.0)
    out[..., 3] = hit
    return out


@pytest.fixture(scope="module")
def harness(ctx: Any) -> Any:
    h = Harness(SIZE, ctx)
    yield h
    h.release()


def test_iso_surface_matches_the_analytic_sphere(harness: Any, ctx: Any) -> None:
    img = harness.render(_vol(ctx, N), _tf(1.0), **CAMERA, mode="isosurface", iso_value=120.0)
    ref = _analytic()
    mask, want = img[..., 3] > 0.5, ref[..., 3] > 0.5
    assert want.mean() > 0.1
    # Silhouette: only pixels on the outline may disagree.
    assert np.count_nonzero(mask != want) <= 0.02 * want.sum()
    both = mask & want
    assert np.abs(img[both] - ref[both]).mean() < 0.02
    assert psnr(img, ref) >= 25.0
    # A different iso value is a different sphere (the test can fail).
    other = harness.render(_vol(ctx, N), _tf(1.0), **CAMERA, mode="isosurface", iso_value=160.0)
    assert (other[..., 3] > 0.5).sum() < 0.6 * want.sum()


@pytest.mark.parametrize("brick", [8, 16])
def test_iso_surface_across_bricks_matches_one_brick(harness: Any, ctx: Any, brick: int) -> None:
    one = harness.render(_vol(ctx, N), _tf(1.0), **CAMERA, mode="isosurface", iso_value=120.0)
    many = harness.render(_vol(ctx, brick), _tf(1.0), **CAMERA, mode="isosurface", iso_value=120.0)
    assert psnr(one, many) >= 40.0


def test_translucent_iso_surface_composites_front_and_back(harness: Any, ctx: Any) -> None:
    img = harness.render(_vol(ctx, 16), _tf(0.5), **CAMERA, mode="isosurface", iso_value=120.0)
    ref = _analytic()
    centre = img[SIZE[1] // 2, SIZE[0] // 2]
    # Two crossings at opacity 0.5: 1 - 0.5 * 0.5.
    assert centre[3] == pytest.approx(0.75, abs=0.01)
    assert ref[SIZE[1] // 2, SIZE[0] // 2, 3] == 1.0
