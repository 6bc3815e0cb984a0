"""Page trees built off the frame thread (``StreamedVolume(background=True)``).

References: the tree against a brute-force model of what each point must show (the
brick of the atlas slot it reads covers the point, at the level of the finest
ancestor of the point's leaf that the atlas holds), the synchronous build once the
inputs rest, and images of the same leaves cut from whole levels in memory.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.volume import FunctionVolumeSource
from viewer.raycast import (
    Harness,
    PageTree,
    ResidentVolume,
    StreamedVolume,
    TransferFunction,
    camera_matrices,
    stand_in_words,
)
from viewer.streaming import BrickGrid, View, VolumeStreamer

from ._marcher import psnr

pytestmark = pytest.mark.render

N = 64
SIZE = (64, 64)
TF = TransferFunction.ramp(
    (20.0, 235.0), colormap=[(0.1, 0.2, 0.9), (1.0, 0.9, 0.3)], opacity=(0.0, 0.08)
)
FOCUS = (32.0, 31.0, 30.0)


def _sphere(level: int, region: tuple[slice, ...]) -> np.ndarray:
    z, y, x = np.meshgrid(
        *((np.arange(s.start, s.stop) + 0.5) * 2**level - 0.5 for s in region), indexing="ij"
    )
    r = np.sqrt((z - 30) ** 2 + (y - 33) ** 2 + (x - 31) ** 2)
    wave = 40 * np.sin(x / 5.0) * np.cos(y / 7.0)
    return np.clip(250 * (1 - r / 30) + wave, 0, 255).astype(np.uint8)


def _view(position: tuple[float, float, float]) -> View:
    view, proj = camera_matrices(position, FOCUS, (0.0, -1.0, 0.0), 30, SIZE)
    return View.from_matrices(view, proj, SIZE)


def _check_tree(sv: StreamedVolume, rng: np.random.Generator) -> None:
    """Every point reads, through the drawn tree, the brick of its leaf's finest ancestor
    that the atlas holds (or nothing when none is), from a slot that holds that brick."""
    st_ = sv.streamer
    grid = st_.grid
    tree = sv.tree
    pool = sv.pool[: sv.n_words]
    lo = grid.translation[0] - 0.5 * grid.scale[0]
    hi = lo + grid.shape[0] * grid.scale[0]
    pts = lo + rng.random((300, 3)) * (hi - lo)
    word, _, _ = tree.lookup(pool, pts)
    kind, slot, level = PageTree.decode(word)
    table = sv.atlas.table
    base = st_.key_base()
    for p, k, s, lv in zip(pts, kind, slot, level, strict=True):
        if k != 2:
            continue
        key = int(table.keys[s])
        assert key >= 0, "a leaf points to a free slot"
        assert bool(table.pinned[s]), "a slot the drawn tree uses is not pinned"
        got_level, ijk = grid.decode(np.asarray([key - base]))
        assert int(got_level[0]) == lv
        blo, bhi = grid.boxes(int(lv), ijk)
        assert ((p >= blo[0] - 1e-9) & (p <= bhi[0] + 1e-9)).all()


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_tree_built_off_thread_points_at_the_right_bricks(ctx: Any, seed: int) -> None:
    """A fly-around with a small atlas (evictions every frame) and the tree built on the
    worker: at every frame the tree drawn is consistent with the atlas; once the
    camera rests, the tree equals the synchronous build of the same inputs."""
    rng = np.random.default_rng(seed)
    src = FunctionVolumeSource((N, N, N), _sphere, chunks=(8, 8, 8), n_levels=3)
    with VolumeStreamer(src, cache_bytes=64 << 20, n_workers=1, max_error_px=1.5) as st_:
        slot = (8 + 2) ** 3
        # Room for one view (300-500 bricks), not for all five: evictions as it turns.
        sv = StreamedVolume(ctx, st_, 700 * slot, max_uploads=24, upload_budget_s=60.0)
        try:
            for _ in range(5):
                d = rng.normal(size=3)
                pos = tuple(np.asarray(FOCUS) + d / np.linalg.norm(d) * rng.uniform(70, 200))
                v = _view(pos)  # type: ignore[arg-type]
                for _ in range(6):
                    st_.wait(0.05)
                    sv.update(st_.update(v), skip_for=TF)
                    _check_tree(sv, rng)
            # Rest: no more uploads, no build running; then the pool is the synchronous one.
            # (A liveness bound, not a timing: loads and builds are slow on a busy machine.)
            deadline = time.monotonic() + 120.0
            while time.monotonic() < deadline:
                frame = st_.update(v)
                sv.update(frame, skip_for=TF)
                last = sv.last
                assert last is not None
                if last.behind == 0 and not last.pending and frame.complete:
                    sv.update(frame, skip_for=TF)
                    if not sv.last.pending:  # type: ignore[union-attr]
                        break
                st_.wait(0.02)
            assert not sv.last.pending, (sv.last, frame.complete)  # type: ignore[union-attr]
            _check_tree(sv, rng)
            sel = frame.selection
            node_slot = sv.atlas.table.lookup(st_.key_base() + sel.nodes)
            words = stand_in_words(sel, node_slot, sv.atlas.transparent_slots(TF))
            want = sv.tree.build_from_selection(sel, words)
            np.testing.assert_array_equal(sv.pool[: sv.n_words], want)
            assert not sv.pool[sv.n_words :].any()
        finally:
            sv.release()


def test_frame_drawn_while_a_rebuild_is_pending_is_complete(ctx: Any) -> None:
    """Zoom in while the worker is held: the frame draws the previous (coarser) tree,
    a complete picture (the old leaves cut from whole levels); once the build lands,
    the new leaves."""
    src = FunctionVolumeSource((N, N, N), _sphere, chunks=(8, 8, 8), n_levels=3)
    levels = [src.read(i) for i in range(3)]
    grid = BrickGrid.from_source(src)
    far, near = (20.0, 70.0, -300.0), (26.0, 50.0, -60.0)
    h = Harness(SIZE, ctx)
    with VolumeStreamer(src, cache_bytes=64 << 20, n_workers=1, max_error_px=1.0) as st_:
        sv = StreamedVolume(ctx, st_, 8 << 20, max_uploads=1 << 20, upload_budget_s=60.0)
        gate = threading.Event()
        build = sv._build

        def held(snap: Any) -> Any:
            gate.wait(30)
            return build(snap)

        try:
            frame = st_.settle(_view(far), timeout=60)
            sv.update(frame, wait=True)
            old_sel = frame.selection
            old_pool = sv.pool
            sv._build = held  # type: ignore[method-assign]
            frame2 = st_.settle(_view(near), timeout=60)
            assert frame2.complete
            new_sel = frame2.selection
            assert new_sel.leaf_levels.min() < old_sel.leaf_levels.min()  # finer now
            sv.update(frame2)
            assert sv.last is not None and sv.last.pending
            assert sv.pool is old_pool  # the previous tree is drawn
            h.raycaster.set_nodes(sv.pool)
            during = h.render(_Proxy(sv), TF, near, FOCUS)
            ref_old = ResidentVolume(
                ctx, levels, grid, old_sel.leaf_levels, old_sel.leaf_ijk, budget_bytes=8 << 20
            )
            want_old = h.render(ref_old, TF, near, FOCUS)
            assert want_old[..., 3].max() > 0.3
            assert psnr(want_old, during) >= 40.0
            gate.set()
            for _ in range(100):
                sv.update(st_.update(_view(near)))
                if not sv.last.pending and sv.last.behind == 0:
                    break
                st_.wait(0.02)
            assert sv.pool is not old_pool
            h.raycaster.set_nodes(sv.pool)
            after = h.render(_Proxy(sv), TF, near, FOCUS)
            ref_new = ResidentVolume(
                ctx, levels, grid, new_sel.leaf_levels, new_sel.leaf_ijk, budget_bytes=8 << 20
            )
            want_new = h.render(ref_new, TF, near, FOCUS)
            assert psnr(want_new, after) >= 40.0
            assert psnr(want_new, during) < psnr(want_new, after)  # it did refine
            ref_old.release()
            ref_new.release()
        finally:
            gate.set()
            sv.release()
            h.release()


class _Proxy:
    """What Harness.render needs of a volume, from a StreamedVolume."""

    def __init__(self, sv: StreamedVolume) -> None:
        self.pool, self.tree, self.atlas = sv.pool[: sv.n_words], sv.tree, sv.atlas
