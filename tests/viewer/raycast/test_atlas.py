"""The brick atlas against a model: random frames, evictions under a small budget, readback."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from viewer.raycast import BrickAtlas, SlotTable, atlas_layout, pad_to_slot, slot_from_level

EDGE = 6  # B: slots of 8³ texels


def _image(key: int, dtype: Any = np.uint8) -> np.ndarray:
    """A slot image that only ``key`` has (so a readback tells which key a slot holds)."""
    rng = np.random.default_rng(key)
    return rng.integers(0, 255, (EDGE + 2,) * 3).astype(dtype)


frames = st.lists(
    st.lists(st.integers(0, 40), min_size=0, max_size=12, unique=True), min_size=1, max_size=25
)


def _check_frame(
    table: SlotTable,
    before: dict[int, int],
    wanted: list[int],
    limit: int,
    uploaded: np.ndarray,
    last_before: dict[int, int],
) -> None:
    """Invariants of one upload, against a plain-dict model of the table before it."""
    after = {int(k): s for s, k in enumerate(table.keys) if k >= 0}
    assert len(after) <= table.n_slots
    assert len(set(after.values())) == len(after)
    resident_wanted = [k for k in wanted if k in before]
    missing = [k for k in wanted if k not in before]
    # Resident wanted keys stay where they were.
    assert all(after.get(k) == before[k] for k in resident_wanted)
    # Uploads are the first missing keys in order, as many as the limit and room allow.
    evictable = len([k for k in before if k not in resident_wanted]) + table.n_slots - len(before)
    n_expected = min(limit, len(missing), evictable)
    assert uploaded.tolist() == missing[:n_expected]
    # Evicted keys were the least recently used of those not wanted this frame.
    evicted = [k for k in before if k not in after]
    kept_unwanted = [k for k in before if k in after and k not in wanted]
    if evicted and kept_unwanted:
        assert max(last_before[k] for k in evicted) <= min(last_before[k] for k in kept_unwanted)
    np.testing.assert_array_equal(table.lookup(list(after)), list(after.values()))


@settings(max_examples=60, deadline=None)
@given(frames=frames, n_slots=st.integers(1, 9), limit=st.integers(1, 5))
def test_slot_table_uploads_and_evicts_lru(frames, n_slots, limit) -> None:
    table = SlotTable(n_slots)
    last: dict[int, int] = {}
    for wanted in frames:
        table.next_frame()
        before = {int(k): s for s, k in enumerate(table.keys) if k >= 0}
        last_before = dict(last)
        slots = table.lookup(wanted)
        table.touch(slots)
        missing = np.asarray([k for k, s in zip(wanted, slots, strict=True) if s < 0], np.int64)
        got = table.allocate(missing[:limit])
        uploaded = missing[:limit][got >= 0]
        _check_frame(table, before, wanted, limit, uploaded, last_before)
        for k in wanted:
            if k in before or k in uploaded.tolist():
                last[k] = table.frame


@pytest.mark.render
@settings(max_examples=15, deadline=None)
@given(
    frames=frames,
    n_slots=st.integers(1, 9),
    limit=st.integers(1, 5),
    dtype=st.sampled_from([np.uint8, np.uint16, np.float32]),
    staging=st.sampled_from([0, 1, 4]),
)
def test_atlas_texture_holds_exactly_its_resident_bricks(
    ctx: Any, frames, n_slots, limit, dtype, staging
) -> None:
    """Whether slot images go through pixel-unpack buffers (a ring of 1 or 4, reused
    many times here) or straight from memory, the texture holds what was written."""
    item = np.dtype(dtype).itemsize
    atlas = BrickAtlas(
        ctx,
        EDGE,
        dtype,
        n_slots * (EDGE + 2) ** 3 * item,
        max_uploads=limit,
        staging_buffers=staging,
    )
    try:
        n = atlas.n_slots
        assert n == np.prod(atlas_layout(n_slots, EDGE + 2))
        fetched: list[int] = []
        for wanted in frames:
            atlas.table.next_frame()
            before = {int(k): s for s, k in enumerate(atlas.table.keys) if k >= 0}

            def fetch(key: int) -> np.ndarray:
                fetched.append(key)
                return _image(key, dtype)

            done = atlas.upload(wanted, fetch)
            missing = [k for k in wanted if k not in before]
            assert done.tolist() == missing[: len(done)]
            assert len(done) <= limit
            # Every wanted key is resident unless the limit or the room stopped it.
            if len(done) < min(limit, len(missing)):
                assert len(atlas.table) == n
        assert bool(fetched) == any(frames)  # something was uploaded when anything was wanted
        raw = np.frombuffer(atlas.texture.read(alignment=1), atlas.dtype)
        full = raw.reshape(atlas.texels[::-1])
        for slot, key in enumerate(atlas.table.keys):
            if key < 0:
                continue
            x, y, z = atlas.slot_origin(slot)
            e = atlas.edge
            np.testing.assert_array_equal(
                full[z : z + e, y : y + e, x : x + e], _image(int(key), dtype)
            )
            np.testing.assert_array_equal(atlas.read_slot(slot), _image(int(key), dtype))
    finally:
        atlas.release()


def test_slots_repeat_edges_where_no_neighbour_is_known() -> None:
    level = np.arange(10 * 12 * 7, dtype=np.uint16).reshape(10, 12, 7)
    s = slot_from_level(level, (4, 8, 0), 4)  # ragged in y (12 - 8 = 4 fits) and x (7 < 4+4)
    assert s.shape == (6, 6, 6)
    np.testing.assert_array_equal(s[1:5, 1:5, 1:4], level[4:8, 8:12, 0:3])
    np.testing.assert_array_equal(s[0, 1:5, 1:5], level[3, 8:12, 0:4])  # neighbour below in z
    np.testing.assert_array_equal(s[1:5, 1:5, 0], level[4:8, 8:12, 0])  # x edge repeated
    np.testing.assert_array_equal(s[1:5, 5, 1:5], level[4:8, 11, 0:4])  # far y: edge repeated
    np.testing.assert_array_equal(s[1:5, 1:5, 5], level[4:8, 8:12, 4])  # x neighbour
    np.testing.assert_array_equal(pad_to_slot(level[3:9, 7:12, 0:5], (1, 1, 0), 4), s)


@pytest.mark.render
def test_uploads_stop_when_the_time_budget_is_spent(ctx: Any) -> None:
    import time

    atlas = BrickAtlas(ctx, EDGE, np.uint8, 20 * (EDGE + 2) ** 3, max_uploads=20)
    try:

        def slow(key: int) -> np.ndarray:
            time.sleep(0.02)
            return _image(key)

        atlas.table.next_frame()
        done = atlas.upload(list(range(10)), slow, time_budget_s=0.03)
        assert 1 <= len(done) <= 3  # the first always; then none after 30 ms
        assert done.tolist() == list(range(len(done)))
        # Only what was written is resident (the slots reserved for the rest came back).
        assert sorted(int(k) for k in atlas.table.keys if k >= 0) == done.tolist()
        atlas.table.next_frame()
        more = atlas.upload(list(range(10)), slow, time_budget_s=0.0)
        assert more.tolist() == [len(done)]  # at least one per call, the next wanted
    finally:
        atlas.release()


@pytest.mark.render
def test_draw_into_a_sub_viewport_of_another_framebuffer_restores_it(ctx: Any) -> None:
    """As a host (VTK) would call it: a viewport inside its framebuffer, state given back."""
    from analysis.volume import ArrayVolumeSource
    from viewer.raycast import Harness, ResidentVolume, TransferFunction
    from viewer.streaming import BrickGrid

    z, y, x = np.mgrid[:32, :32, :32]
    data = (255 * (x / 31)).astype(np.uint8) * ((z - 16) ** 2 + (y - 16) ** 2 < 150)
    src = ArrayVolumeSource(data, chunks=(8, 8, 8))
    tf = TransferFunction.ramp((0, 255), opacity=(0.0, 0.2))
    cam = dict(position=(16.0, 60.0, -40.0), focal_point=(15.5, 15.5, 15.5))
    h = Harness((40, 30), ctx)
    try:
        vol = ResidentVolume(ctx, [src.read(0)], BrickGrid.from_source(src))
        ref = h.render(vol, tf, **cam)
        assert ref[..., 3].max() > 0.2
        host_tex = ctx.texture((64, 50), 4, dtype="f4")
        host = ctx.framebuffer(color_attachments=[host_tex])
        other = ctx.simple_framebuffer((8, 8))
        other.use()
        ctx.viewport = (1, 2, 3, 4)
        host.clear(0.25, 0.0, 0.0, 1.0)
        view, proj = h.matrices(cam["position"], cam["focal_point"], (0.0, -1.0, 0.0))
        h.raycaster.set_nodes(vol.pool)
        h.raycaster.draw(host, view, proj, vol.tree, vol.atlas, tf, viewport=(10, 7, 40, 30))
        assert ctx.fbo is other and tuple(ctx.viewport) == (1, 2, 3, 4)
        img = np.frombuffer(host.read(components=4, dtype="f4"), np.float32).reshape(50, 64, 4)
        inside = img[7:37, 10:50]
        # Premultiplied "over" a known background: out = src + (1 - src.a) * bg.
        bg = np.array([0.25, 0.0, 0.0, 1.0], np.float32)
        want = ref[::-1] + (1 - ref[::-1][..., 3:]) * bg
        np.testing.assert_allclose(inside, want, atol=2e-6)
        outside = img.copy()
        outside[7:37, 10:50] = bg
        np.testing.assert_array_equal(outside, np.broadcast_to(bg, img.shape))
        for obj in (host, host_tex, other):
            obj.release()
    finally:
        h.release()


@settings(max_examples=40, deadline=None)
@given(frames=frames, n_slots=st.integers(1, 9), limit=st.integers(1, 5))
def test_dense_lookup_equals_the_binary_search(frames, n_slots, limit) -> None:
    dense, plain = SlotTable(n_slots, key_space=41), SlotTable(n_slots)
    probe = np.arange(-3, 50)
    for wanted in frames:
        for t in (dense, plain):
            t.next_frame()
            s = t.lookup(wanted)
            t.touch(s)
            miss = np.asarray([k for k, v in zip(wanted, s, strict=True) if v < 0], np.int64)
            t.allocate(miss[:limit])
            if wanted:
                t.evict(wanted[:1])
        np.testing.assert_array_equal(dense.keys, plain.keys)
        np.testing.assert_array_equal(dense.lookup(probe), plain.lookup(probe))
        np.testing.assert_array_equal(dense.lookup(probe[3:44]), plain.lookup(probe[3:44]))
