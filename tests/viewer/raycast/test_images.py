"""Images of the single-pass ray caster on llvmpipe, against independent references.

One brick holding the whole level is the reference for many bricks (same field, same
sample lattice); the NumPy marcher (``_marcher.py``) is the reference for the shader.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from analysis.volume import FunctionVolumeSource
from viewer.raycast import Harness, ResidentVolume, TransferFunction, camera_matrices
from viewer.streaming import BrickGrid

from ._marcher import march, psnr, rays, trilinear

pytestmark = pytest.mark.render

N = 64
SIZE = (64, 64)
CAMERA = dict(
    position=(20.0, 70.0, -110.0), focal_point=(32.0, 31.0, 30.0), view_up=(0.0, -1.0, 0.0)
)
FACE_ON = dict(
    position=(31.5, 31.5, -120.0), focal_point=(31.5, 31.5, 31.5), view_up=(0.0, -1.0, 0.0)
)
TF_MIP = TransferFunction.ramp((20.0, 235.0), colormap=[(0.1, 0.2, 0.9), (1.0, 0.9, 0.3)])
TF = TransferFunction.ramp(
    (20.0, 235.0), colormap=[(0.1, 0.2, 0.9), (1.0, 0.9, 0.3)], opacity=(0.0, 0.08)
)


def _sphere(level: int, region: tuple[slice, ...]) -> np.ndarray:
    # World coordinates of the level's voxel centres (FunctionVolumeSource: scale 2**level,
    # centre of voxel 0 at (2**level - 1) / 2).
    z, y, x = np.meshgrid(
        *((np.arange(s.start, s.stop) + 0.5) * 2**level - 0.5 for s in region), indexing="ij"
    )
    r = np.sqrt((z - 30) ** 2 + (y - 33) ** 2 + (x - 31) ** 2)
    wave = 40 * np.sin(x / 5.0) * np.cos(y / 7.0)
    return np.clip(250 * (1 - r / 30) + wave, 0, 255).astype(np.uint8)


def _volume(ctx: Any, chunks: tuple[int, int, int], n_levels: int = 1, **leaves: Any):
    src = FunctionVolumeSource((N, N, N), _sphere, chunks=chunks, n_levels=n_levels)
    levels = [src.read(i) for i in range(n_levels)]
    return ResidentVolume(ctx, levels, BrickGrid.from_source(src), **leaves), levels, src


@pytest.fixture(scope="module")
def harness(ctx: Any) -> Any:
    h = Harness(SIZE, ctx)
    yield h
    h.release()


@pytest.mark.parametrize("mode", ["composite", "mip"])
@pytest.mark.parametrize("brick", [16, 32])
def test_many_bricks_match_one_brick(harness: Any, ctx: Any, mode: str, brick: int) -> None:
    one, _, _ = _volume(ctx, (N, N, N))
    many, _, _ = _volume(ctx, (brick, brick, brick))
    assert one.n_leaves == 1 and many.n_leaves == (N // brick) ** 3
    tf = TF if mode == "composite" else TF_MIP
    a = harness.render(one, tf, **CAMERA, mode=mode)
    b = harness.render(many, tf, **CAMERA, mode=mode)
    assert a[..., 3].max() > 0.3  # something is drawn
    assert psnr(a, b) >= 40.0


@pytest.mark.parametrize("mode", ["composite", "mip"])
def test_mixed_levels_match_the_same_mixed_field(harness: Any, ctx: Any, mode: str) -> None:
    """Half the volume (x >= 32) drawn from level 1: as two big bricks vs 16³ bricks."""
    # Reference: two level-0 bricks (x halves); the far one drawn from the level-1 brick.
    ref, _, _ = _volume(
        ctx,
        (N, N, N // 2),
        2,
        leaf_levels=[0, 0],
        leaf_ijk=[(0, 0, 0), (0, 0, 1)],
        sample_levels=[0, 1],
    )
    # 16³ bricks: x < 32 level-0 leaves; x >= 32 some level-1 leaves and some level-0
    # leaves that their level-1 parent stands in for.
    g0 = np.stack(np.meshgrid(*(np.arange(4),) * 3, indexing="ij"), -1).reshape(-1, 3)
    g1 = np.stack(np.meshgrid(*(np.arange(2),) * 3, indexing="ij"), -1).reshape(-1, 3)
    near = g0[g0[:, 2] < 2]
    coarse_leaf = g1[(g1[:, 2] == 1) & (g1[:, 0] == 0)]  # level-1 leaves, z < 32
    stand = g0[(g0[:, 2] >= 2) & (g0[:, 0] >= 2)]  # level-0 leaves drawn from level 1
    lv = np.r_[np.zeros(len(near)), np.ones(len(coarse_leaf)), np.zeros(len(stand))]
    ijk = np.concatenate([near, coarse_leaf, stand])
    sl = np.r_[np.zeros(len(near)), np.ones(len(coarse_leaf)), np.ones(len(stand))]
    mixed, _, _ = _volume(ctx, (16, 16, 16), 2, leaf_levels=lv, leaf_ijk=ijk, sample_levels=sl)
    tf = TF if mode == "composite" else TF_MIP
    a = harness.render(ref, tf, **CAMERA, mode=mode)
    b = harness.render(mixed, tf, **CAMERA, mode=mode)
    assert a[..., 3].max() > 0.3
    assert psnr(a, b) >= 40.0


def test_a_level_off_level_0s_corner_is_sampled_where_its_voxels_are(
    harness: Any, ctx: Any
) -> None:
    """Level 1 at translation 0 (half a fine voxel before the nested place), drawn for
    the whole volume: the picture is level 1's field at its own voxel positions."""
    import dataclasses

    src = FunctionVolumeSource((N, N, N), _sphere, chunks=(16,) * 3, n_levels=2)
    moved = dataclasses.replace(src.levels[1], translation=(0.0, 0.0, 0.0))
    src._levels = (src.levels[0], moved)
    levels = [src.read(0), src.read(1)]
    g1 = np.stack(np.meshgrid(*(np.arange(2),) * 3, indexing="ij"), -1).reshape(-1, 3)
    vol = ResidentVolume(
        ctx, levels, BrickGrid.from_source(src), leaf_levels=np.ones(8), leaf_ijk=g1
    )
    img = harness.render(vol, TF, **CAMERA)
    field = trilinear(levels[1], moved.translation, moved.scale, 255.0)
    eye, d = rays(CAMERA["position"], CAMERA["focal_point"], CAMERA["view_up"], 30.0, SIZE)
    lo, hi = TF.contrast_limits
    ref = march(field, (0, 0, 0), (N - 1,) * 3, eye, d, 1.0, 1.0, TF.table, (lo / 255, hi / 255))
    # The same field placed where a nested level 1 would be differs (the test can fail).
    nested = trilinear(levels[1], np.asarray(src.levels[0].translation) + 0.5, moved.scale, 255.0)
    wrong = march(nested, (0, 0, 0), (N - 1,) * 3, eye, d, 1.0, 1.0, TF.table, (lo / 255, hi / 255))
    assert ref[..., 3].max() > 0.3
    assert psnr(img, ref) >= 35.0
    assert psnr(img, ref) > psnr(img, wrong) + 3.0


def test_face_on_constant_volume_has_no_seams(ctx: Any) -> None:
    h = Harness((96, 96), ctx)
    try:

        def const(level: int, region: tuple[slice, ...]) -> np.ndarray:
            return np.full([s.stop - s.start for s in region], 128, np.uint8)

        tf = TransferFunction.ramp((0.0, 255.0), opacity=(0.03, 0.03))
        imgs = []
        for ch in (N, 8):
            src = FunctionVolumeSource((N, N, N), const, chunks=(ch,) * 3, n_levels=1)
            vol = ResidentVolume(ctx, [src.read(0)], BrickGrid.from_source(src))
            imgs.append(h.render(vol, tf, **FACE_ON))
        a, b = imgs
        assert a[..., 3].max() > 0.5
        assert np.abs(a - b).max() * 255 <= 2.0
    finally:
        h.release()


def _marched(levels, src, mode="composite", planes=(), t_end=None, step_factor=0.5, tf=TF):
    lv0 = src.levels[0]
    field = trilinear(levels[0], lv0.translation, lv0.scale, 255.0)
    eye, d = rays(CAMERA["position"], CAMERA["focal_point"], CAMERA["view_up"], 30.0, SIZE)
    lo, hi = tf.contrast_limits
    return march(
        field,
        (0, 0, 0),
        (N - 1,) * 3,
        eye,
        d,
        step_factor,
        1.0,
        tf.table,
        (lo / 255, hi / 255),
        mode,
        planes,
        t_end,
    )


@pytest.mark.parametrize("mode", ["composite", "mip"])
def test_shader_matches_numpy_marcher(harness: Any, ctx: Any, mode: str) -> None:
    vol, levels, src = _volume(ctx, (N, N, N))
    tf = TF if mode == "composite" else TF_MIP
    img = harness.render(vol, tf, **CAMERA, mode=mode)
    ref = _marched(levels, src, mode, tf=tf)
    assert ref[..., 3].max() > 0.3
    assert psnr(img, ref) >= 35.0


def test_clipping_plane_removes_its_half(harness: Any, ctx: Any) -> None:
    vol, levels, src = _volume(ctx, (16, 16, 16))
    plane = np.array([0.0, 0.0, 1.0, -31.0])  # keep x >= 31 (zyx normal)
    img = harness.render(vol, TF, **CAMERA, clip_planes=[plane])
    ref = _marched(levels, src, planes=[plane])
    full = harness.render(vol, TF, **CAMERA)
    assert psnr(img, ref) >= 35.0
    # The clipped image differs from the full one: something was removed...
    removed = full[..., 3] - img[..., 3]
    assert removed.max() > 0.2
    # ...and nothing was added anywhere.
    assert removed.min() > -2 / 255


def test_depth_of_opaque_geometry_ends_rays(harness: Any, ctx: Any) -> None:
    """A plane z = 30 µm in front of which the volume stays and behind which it is hidden."""
    vol, levels, src = _volume(ctx, (16, 16, 16))
    view, proj = camera_matrices(
        CAMERA["position"], CAMERA["focal_point"], CAMERA["view_up"], 30.0, SIZE
    )
    eye, d = rays(CAMERA["position"], CAMERA["focal_point"], CAMERA["view_up"], 30.0, SIZE)
    # Where each ray meets the plane z = 30 (d[..., 0] is the z component), as a depth value.
    t_hit = (30.0 - eye[0]) / d[..., 0]
    p_xyz = (eye + d * t_hit[..., None])[..., ::-1]
    clip = np.einsum(
        "ij,hwj->hwi", proj @ view, np.concatenate([p_xyz, np.ones(SIZE[::-1] + (1,))], -1)
    )
    depth = (clip[..., 2] / clip[..., 3] + 1) / 2
    depth = np.where(t_hit > 0, depth, 1.0)
    img = harness.render(vol, TF, **CAMERA, depth=depth)
    ref = _marched(levels, src, t_end=np.where(t_hit > 0, t_hit, np.inf))
    full = harness.render(vol, TF, **CAMERA)
    assert psnr(img, ref) >= 35.0
    assert (full[..., 3] - img[..., 3]).max() > 0.1  # the plane hides part of the volume


class _Counting:
    """Wraps a vertex array and counts its render calls (the draw calls)."""

    def __init__(self, vao: Any) -> None:
        self.vao, self.calls = vao, 0

    def render(self, *a: Any, **k: Any) -> None:
        self.calls += 1
        self.vao.render(*a, **k)

    def release(self) -> None:
        self.vao.release()


@pytest.mark.parametrize(("n", "brick"), [(64, 16), (64, 8), (64, 4), (88, 4)])
def test_one_draw_call_whatever_the_brick_count(ctx: Any, n: int, brick: int) -> None:
    h = Harness((32, 32), ctx)
    try:
        counter = _Counting(h.raycaster.vaos["image"])
        h.raycaster.vaos["image"] = counter
        src = FunctionVolumeSource((n,) * 3, _sphere, chunks=(brick,) * 3, n_levels=1)
        vol = ResidentVolume(ctx, [src.read(0)], BrickGrid.from_source(src))
        assert vol.n_leaves == -((-n // brick) ** 3)  # 64, 512, 4,096, 10,648
        img = h.render(vol, TF, **CAMERA)
        assert img[..., 3].max() > 0.3
        assert counter.calls == 1
        assert h.raycaster.stats.draw_calls == 1
        vol.release()
    finally:
        h.release()


def test_streamed_volume_draws_what_a_resident_one_draws(harness: Any, ctx: Any) -> None:
    """Streamer -> StreamedVolume (padded bricks, stand-ins from the atlas) vs the same leaves
    cut from whole levels in memory."""
    from viewer.raycast import StreamedVolume
    from viewer.streaming import View, VolumeStreamer

    src = FunctionVolumeSource((N, N, N), _sphere, chunks=(16, 16, 16), n_levels=3)
    view, _ = camera_matrices(
        CAMERA["position"], CAMERA["focal_point"], CAMERA["view_up"], 30, SIZE
    )
    with VolumeStreamer(src, cache_bytes=64 << 20, n_workers=1, max_error_px=2.0) as st:
        sv = StreamedVolume(ctx, st, 8 << 20, max_uploads=4, upload_budget_s=60.0)
        v = View.from_matrices(view, camera_matrices(**CAMERA, view_angle=30, size=SIZE)[1], SIZE)
        frame = st.settle(v, timeout=60)
        assert frame.complete
        sv.update(frame)
        # Uploads are bounded per frame: coarse stand-ins first, then the rest.
        assert sv.last is not None and sv.last.uploads == 4
        # Until every leaf is drawn from its own brick (a liveness deadline in seconds, not a
        # count of updates: on a loaded machine loads and tree builds lag the loop).
        deadline = time.monotonic() + 120.0
        while not (
            sv.last.drawn == sv.last.leaves and sv.last.uploads == 0 and not sv.last.pending
        ):
            assert time.monotonic() < deadline, f"the streamed volume never came to rest: {sv.last}"
            time.sleep(0.005)
            sv.update(st.update(v))
        sel = frame.selection
        levels = [src.read(i) for i in range(3)]
        ref = ResidentVolume(ctx, levels, BrickGrid.from_source(src), sel.leaf_levels, sel.leaf_ijk)
        assert len(set(sel.leaf_levels.tolist())) > 1  # mixed levels
        harness.raycaster.set_nodes(sv.pool)
        streamed = _StreamedProxy(sv)
        a = harness.render(ref, TF, **CAMERA)
        b = harness.render(streamed, TF, **CAMERA)
        assert a[..., 3].max() > 0.3
        assert psnr(a, b) >= 40.0


class _StreamedProxy:
    """What Harness.render needs of a volume, from a StreamedVolume."""

    def __init__(self, sv: Any) -> None:
        self.pool, self.tree, self.atlas = sv.pool, sv.tree, sv.atlas


def test_empty_space_skipping_changes_nothing_it_draws(harness: Any, ctx: Any) -> None:
    """Bricks wholly below the contrast window (zero opacity) are skipped, same image."""
    tf = TransferFunction.ramp((100.0, 235.0), opacity=(0.0, 0.08))
    vol, levels, _ = _volume(ctx, (8, 8, 8))
    full = harness.render(vol, tf, **CAMERA)
    skipped = vol.skip_transparent(tf)
    # Independent count: bricks whose slot (with its border) stays at or below 100.
    lv0 = levels[0]
    want = sum(
        int(lv0[max(z - 1, 0) : z + 9, max(y - 1, 0) : y + 9, max(x - 1, 0) : x + 9].max() <= 100)
        for z in range(0, N, 8)
        for y in range(0, N, 8)
        for x in range(0, N, 8)
    )
    assert skipped == want > 100
    fast = harness.render(vol, tf, **CAMERA)
    assert full[..., 3].max() > 0.3
    assert psnr(full, fast) >= 60.0
    vol.skip_transparent(None)
    np.testing.assert_array_equal(harness.render(vol, tf, **CAMERA), full)


def test_streamed_volume_neighbours_equal_the_streamers(ctx: Any) -> None:
    from viewer.raycast import StreamedVolume
    from viewer.streaming import VolumeStreamer

    src = FunctionVolumeSource((300, 200, 260), _sphere, chunks=(32, 32, 32))
    with VolumeStreamer(src, n_workers=1) as st:
        sv = StreamedVolume(ctx, st, 1 << 22)
        keys = np.random.default_rng(0).integers(0, st.grid.n_bricks, 200)
        got = sv._neighbours(keys)
        want = np.concatenate([k[k >= 0] for k in (st.neighbour_keys(int(x)) for x in keys)])
        np.testing.assert_array_equal(np.sort(got), np.sort(want))
        sv.release()


@pytest.mark.parametrize("with_depth", [False, True])
def test_render_scale_casts_fewer_rays_and_upsamples_them(
    harness: Any, ctx: Any, with_depth: bool
) -> None:
    """``render_scale=0.5``: the picture is a half-size render (rays through the same
    pixel centres) upsampled bilinearly (scikit-image's ``resize``, order 1)."""
    from skimage.transform import resize

    vol, _, _ = _volume(ctx, (16, 16, 16))
    depth = None
    if with_depth:  # the near half of the screen (left columns) behind an opaque wall
        depth = np.ones(SIZE[::-1])
        depth[:, : SIZE[0] // 2] = 0.9
    img = harness.render(vol, TF, **CAMERA, render_scale=0.5, depth=depth)
    half = Harness((SIZE[0] // 2, SIZE[1] // 2), ctx)
    try:
        small_depth = None if depth is None else depth[::2, ::2]
        small = half.render(vol, TF, **CAMERA, depth=small_depth)
    finally:
        half.release()
    ref = resize(small, img.shape, order=1, mode="edge", anti_aliasing=False)
    full = harness.render(vol, TF, **CAMERA, depth=depth)
    assert img[..., 3].max() > 0.3
    assert psnr(img, ref) >= 40.0
    assert psnr(img, full) >= 25.0  # the same picture, at a lower resolution
    assert psnr(img, full) < psnr(img, ref)  # (and not the full-resolution one)
