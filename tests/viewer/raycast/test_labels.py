"""Label volumes: nearest ids, one colour per id, hidden and selected ids, across bricks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from analysis.volume import ArrayVolumeSource
from viewer.raycast import Harness, LabelStyle, ResidentVolume, label_colours
from viewer.streaming import BrickGrid

from ._marcher import lowbias32, march_labels, psnr, rays

pytestmark = pytest.mark.render

N = 48
SIZE = (64, 64)
CAMERA = dict(
    position=(10.0, 75.0, -70.0), focal_point=(24.0, 23.0, 22.0), view_up=(0.0, -1.0, 0.0)
)
BIG = 2**31 + 7  # ids beyond 2**24 stay exact (integer texture)


def _labels() -> np.ndarray:
    z, y, x = np.mgrid[:N, :N, :N]
    lab = np.zeros((N, N, N), np.uint32)
    lab[((z - 16) ** 2 + (y - 20) ** 2 + (x - 18) ** 2) < 100] = 3
    lab[((z - 30) ** 2 + (y - 28) ** 2 + (x - 30) ** 2) < 120] = BIG
    lab[(abs(z - 24) < 4) & (abs(y - 10) < 6) & (x > 6) & (x < 42)] = 11
    lab[(z > 36) & (y > 30) & (x < 16)] = 12
    return lab


@pytest.fixture(scope="module")
def harness(ctx: Any) -> Any:
    h = Harness(SIZE, ctx)
    yield h
    h.release()


def _vol(ctx: Any, chunk: int) -> ResidentVolume:
    src = ArrayVolumeSource(_labels(), chunks=(chunk,) * 3)
    return ResidentVolume(ctx, [src.read(0)], BrickGrid.from_source(src), labels=True)


def _reference(style: LabelStyle, colors: dict[int, Any] | None = None) -> np.ndarray:
    eye, d = rays(CAMERA["position"], CAMERA["focal_point"], CAMERA["view_up"], 30.0, SIZE)
    return march_labels(
        _labels(),
        (0, 0, 0),
        (1, 1, 1),
        (0, 0, 0),
        (N - 1,) * 3,
        eye,
        d,
        0.5,
        1.0,
        style.opacity,
        style.hidden,
        style.selected,
        style.selected_opacity,
        colors,
    )


def test_label_colours_are_the_hash_of_the_id() -> None:
    ids = np.array([0, 1, 3, 11, 12, BIG, 2**32 - 1])
    h = lowbias32(ids)
    want = 0.2 + 0.8 * np.stack([h & 255, (h >> 8) & 255, (h >> 16) & 255], 1) / 255.0
    np.testing.assert_allclose(label_colours(ids), want, atol=1e-6)


@pytest.mark.parametrize("chunk", [16, 8])
def test_labels_in_bricks_match_one_brick_and_the_marcher(
    harness: Any, ctx: Any, chunk: int
) -> None:
    style = LabelStyle(opacity=0.3)
    one = harness.render(_vol(ctx, N), style, **CAMERA)
    many = harness.render(_vol(ctx, chunk), style, **CAMERA)
    ref = _reference(style)
    assert one[..., 3].max() > 0.5
    assert psnr(one, many) >= 40.0
    assert psnr(one, ref) >= 35.0
    # Nearest sampling: where a sample sits on a voxel boundary, float rounding can pick
    # the neighbour; a few pixels may differ, most agree closely.
    assert np.mean(np.abs(one - ref).max(axis=-1) > 0.02) < 0.02


def test_hidden_and_selected_ids(harness: Any, ctx: Any) -> None:
    vol = _vol(ctx, 8)
    plain = harness.render(vol, LabelStyle(opacity=0.3), **CAMERA)
    style = LabelStyle(opacity=0.3, hidden=(BIG, 12), selected=(3,), selected_opacity=0.95)
    img = harness.render(vol, style, **CAMERA)
    assert psnr(img, _reference(style)) >= 35.0
    assert np.abs(img - plain).max() > 0.3  # it changed something
    # Hiding an id that is also selected hides it.
    both = LabelStyle(opacity=0.3, hidden=(3,), selected=(3,))
    assert (
        psnr(harness.render(vol, both, **CAMERA), _reference(LabelStyle(0.3, hidden=(3,)))) >= 35.0
    )


def test_background_bricks_are_skipped_without_changing_the_image(harness: Any, ctx: Any) -> None:
    vol = _vol(ctx, 8)
    style = LabelStyle(opacity=0.3)
    full = harness.render(vol, style, **CAMERA)
    lab = _labels()
    want = sum(
        int(not lab[max(z - 1, 0) : z + 9, max(y - 1, 0) : y + 9, max(x - 1, 0) : x + 9].any())
        for z in range(0, N, 8)
        for y in range(0, N, 8)
        for x in range(0, N, 8)
    )
    assert vol.skip_transparent(style) == want > 20
    np.testing.assert_array_equal(harness.render(vol, style, **CAMERA), full)


def test_colours_given_per_id_replace_the_hash(harness: Any, ctx: Any) -> None:
    """A host's legend colours (by id, by feature, fixed) reach the picture; ids it does
    not list keep the hash; hidden and selected still apply to coloured ids."""
    vol = _vol(ctx, 8)
    colors = {3: (1.0, 0.0, 0.0), BIG: (0.1, 0.9, 0.3), 11: (0.0, 0.0, 1.0)}
    ids = np.array(list(colors), dtype=np.int64)
    rgb = np.array(list(colors.values()))
    style = LabelStyle(opacity=0.3, color_ids=ids, color_rgb=rgb)
    img = harness.render(vol, style, **CAMERA)
    assert psnr(img, _reference(style, colors)) >= 35.0
    assert psnr(img, _reference(LabelStyle(opacity=0.3))) < 30.0  # not the hashed picture
    sel = LabelStyle(opacity=0.3, selected=(3,), hidden=(11,), color_ids=ids, color_rgb=rgb)
    got = harness.render(vol, sel, **CAMERA)
    assert psnr(got, _reference(sel, colors)) >= 35.0


def test_style_table_is_sorted_with_hidden_winning() -> None:
    style = LabelStyle(
        hidden=(5, 2**32 + 9),
        selected=(5, 7),
        color_ids=np.array([7, 9, 3]),
        color_rgb=np.array([[1.0, 0.5, 0.0], [0.0, 0.0, 1.0], [0.2, 0.2, 0.2]]),
    )
    t = style.table
    assert t[:, 0].tolist() == [3, 5, 7, 9]
    assert t[:, 1].tolist() == [4, 1, 2 | 4, 1 | 4]  # 9 hidden (2**32 + 9) and coloured
    assert t[2, 2] == 255 | (128 << 8)
    assert style.special_table().tolist() == [[5, 1], [7, 2], [9, 1]]
