"""Single-pass ray casting on llvmpipe (issue 15): cost against the brick count, tree CPU.

Run: ``.venv/bin/python tests/benchmarks/bench_raycast.py [--quick]`` (no VTK; EGL).

1. Frame time of the same 128³ content and camera drawn as 1, 64, 512 and 4096 bricks
   (one draw call each) at 256 x 256 pixels; the ratio 512 / 1 is the figure (target
   <= 1.5). Then 512 and 4096 bricks again with empty-space skipping (bricks wholly
   transparent under the transfer function stepped over).
2. Per-frame CPU of the page tree for a selection of ~100k leaves (every node looked up
   in an atlas holding half of them, stand-ins, packing), against NumPy sorting the
   same leaves' keys in the same run; and the node texture upload.
3. Frame-thread CPU of ``StreamedVolume.update`` (+ the node texture update) with the
   tree built on the worker thread (``background=True``, the viewer's default) against
   building it on the frame thread (``background=False``, the previous behaviour) in the
   same run: selection reused, and selection changed every frame, at about 1.6k, 13k
   and 102k leaves (bricks drawn), with an atlas table of 7,200 slots (a 2 GB budget of
   66³ slots) holding 7,200 of the visible nodes. Uploads are excluded (they are
   bounded separately: at most 64 slots and 4 ms a frame); frames are 11 ms apart, the
   worker's build time is printed too. Then the same for ``VolumeStreamer.update`` (brick
   selection: LOD, culling, draw list, requests), camera still and moving 2 µm a frame,
   with the selection on the frame thread (``background=False``, the reference) and on
   the worker thread (``background=True``, the viewer's default since issue 15).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from analysis.volume import FunctionVolumeSource  # noqa: E402
from viewer.raycast import (  # noqa: E402
    Harness,
    PageTree,
    ResidentVolume,
    SlotTable,
    TransferFunction,
    camera_matrices,
    leaf_words,
    nearest_resident,
    stand_in_words,
)
from viewer.streaming import (  # noqa: E402
    BrickGrid,
    StreamFrame,
    View,
    VolumeStreamer,
    select_bricks,
)

N = 128


def _content(level: int, region: tuple[slice, ...]) -> np.ndarray:
    z, y, x = np.meshgrid(
        *((np.arange(s.start, s.stop) + 0.5) * 2**level - 0.5 for s in region), indexing="ij"
    )
    r = np.sqrt((z - N / 2) ** 2 + (y - N / 2) ** 2 + (x - N / 2) ** 2)
    return np.clip(250 * (1 - r / (N / 2)) + 40 * np.sin(x / 9) * np.cos(y / 13), 0, 255).astype(
        np.uint8
    )


def _timed(fn, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def frame_times(size: int, reps: int) -> list[str]:
    h = Harness((size, size), dtype="f1")
    tf = TransferFunction.ramp((20, 235), opacity=(0.0, 0.05))
    cam = dict(position=(40.0, 150.0, -160.0), focal_point=(64.0, 62.0, 60.0))
    rows, base = [], None
    cases = [(N, False, 1.0), (32, False, 1.0), (16, False, 1.0), (8, False, 1.0)]
    cases += [(16, True, 1.0), (8, True, 1.0), (16, False, 0.5)]
    for chunk, skip, scale in cases:
        src = FunctionVolumeSource((N,) * 3, _content, chunks=(chunk,) * 3, n_levels=1)
        vol = ResidentVolume(h.ctx, [src.read(0)], BrickGrid.from_source(src))
        if skip:
            vol.skip_transparent(tf)

        def draw(vol=vol, scale=scale) -> None:
            h.render(vol, tf, **cam, read=False, render_scale=scale)
            h.ctx.finish()

        draw()
        ms = statistics.median(_timed(draw, reps))
        base = ms if base is None else base
        calls = h.raycaster.stats.draw_calls
        note = f", {vol.skipped} transparent bricks skipped" if skip else ""
        if scale != 1.0:
            note += f", render scale {scale} ({scale**2:.0%} of the rays)"
        rows.append(
            f"| {vol.n_leaves} bricks of {chunk}³ | {ms:.1f} ms | {ms / base:.2f} | "
            f"{calls} draw call, {len(vol.pool)} tree words{note} |"
        )
        vol.release()
    h.release()
    return rows


def tree_cpu(reps: int) -> list[str]:
    # 32 x 64 x 50 bricks of 64³ at level 0, all of them leaves (a parallel view that needs
    # the finest level everywhere): 102,400 leaves, 117k nodes.
    src = FunctionVolumeSource((2048, 4096, 3200), lambda lv, r: None, chunks=(64, 64, 64))
    grid = BrickGrid.from_source(src)
    tree = PageTree(grid)
    view, proj = camera_matrices(
        (1024, 2048, -20000), (1024, 2048, 1600), (0, -1, 0), 20.0, (4096, 4096)
    )
    sel = select_bricks(grid, [View.from_matrices(view, proj, (4096, 4096))], max_error_px=0.01)
    rng = np.random.default_rng(0)
    # The atlas of a 2 GB budget (7,200 slots of 66³ uint8) holding half the visible nodes
    # (and nothing else): looked up through the dense table (StreamedVolume's case) and
    # through a binary search.
    held = rng.permutation(sel.nodes)[: min(7200, len(sel.nodes) // 2)]
    tables = {}
    for name, space in (("dense", grid.n_bricks), ("sorted", None)):
        t = SlotTable(7200, space)
        t.next_frame()
        t.allocate(held)
        tables[name] = t
    node_slot = tables["dense"].lookup(sel.nodes)
    keys = sel.leaves.copy()
    rng.shuffle(keys)

    def frame(table: SlotTable = tables["dense"]) -> None:
        ns = table.lookup(sel.nodes)
        tree.build_from_selection(sel, stand_in_words(sel, ns))

    def generic() -> None:
        slot, level = nearest_resident(sel, node_slot)
        tree.build(sel.leaf_levels, sel.leaf_ijk, leaf_words(slot, level))

    def baseline() -> None:
        np.sort(keys)

    frame()
    t_frame = statistics.median(_timed(frame, reps))
    t_sorted = statistics.median(_timed(lambda: frame(tables["sorted"]), reps))
    t_generic = statistics.median(_timed(generic, max(reps // 4, 3)))
    t_sort = statistics.median(_timed(baseline, reps))
    cpu = []
    for _ in range(reps):
        c = time.thread_time()
        frame()
        cpu.append((time.thread_time() - c) * 1e3)
    pool = tree.build_from_selection(sel, leaf_words(*nearest_resident(sel, node_slot)))
    h = Harness((16, 16))
    up = _timed(
        lambda: (
            h.raycaster.set_nodes(pool ^ np.uint32(1)),
            h.raycaster.set_nodes(pool),
            h.ctx.finish(),
        ),
        5,
    )
    h.release()
    n = len(sel.leaves)
    return [
        f"| tree per frame (atlas lookup of every node, dense table; stand-ins; pack from the "
        f"selection), {n} leaves, {len(sel.nodes)} nodes "
        f"| {t_frame:.2f} ms wall, {statistics.median(cpu):.2f} ms thread CPU | "
        f"{t_frame / t_sort:.2f} x np.sort of the leaf keys ({t_sort:.2f} ms) |",
        f"| the same with a binary-search lookup (no dense table) | {t_sorted:.2f} ms | "
        f"{t_sorted / t_sort:.2f} x np.sort |",
        f"| tree from a bare leaf set (PageTree.build, np.unique per level), {n} leaves "
        f"| {t_generic:.2f} ms | {t_generic / t_sort:.2f} x np.sort |",
        f"| node texture upload, {len(pool)} words ({len(pool) * 4 / 2**20:.2f} MB), whole pool "
        f"twice + finish | {statistics.median(up):.2f} ms | |",
    ]


def _frame_of(streamer: VolumeStreamer, sel) -> StreamFrame:
    """A streaming frame drawing every leaf of ``sel`` by itself (no loads: the page-tree
    path only reads the selection and the atlas table)."""
    keys = streamer.key_base() + sel.nodes.take(sel.leaf_index)
    box = np.zeros((len(keys), 3))
    return StreamFrame(
        keys=keys,
        crop_lo=box,
        crop_hi=box,
        levels=sel.leaf_levels.copy(),
        arrived=np.zeros(0, np.int64),
        selection=sel,
        stats=streamer.stats(),
    )


def frame_thread_cpu(reps: int) -> list[str]:
    from viewer.raycast import StreamedVolume

    src = FunctionVolumeSource((2048, 4096, 3200), lambda lv, r: None, chunks=(64, 64, 64))
    grid = BrickGrid.from_source(src)
    view, proj = camera_matrices(
        (1024, 2048, -20000), (1024, 2048, 1600), (0, -1, 0), 20.0, (4096, 4096)
    )
    views = [View.from_matrices(view, proj, (4096, 4096))]
    h = Harness((16, 16))
    rows = []
    rng = np.random.default_rng(0)
    with VolumeStreamer(src, n_workers=1, cache_bytes=1 << 20) as st:
        for err in (4.0, 2.0, 0.5):
            # Two equal selections as two objects: to the frame thread a new selection.
            sels = [select_bricks(grid, views, max_error_px=err) for _ in range(2)]
            frames = [_frame_of(st, s_) for s_ in sels]
            n = len(sels[0].leaves)
            held = st.key_base() + rng.permutation(sels[0].nodes)[:7200]
            got = {}
            for background in (True, False):
                walls: list[float] = []
                sv = StreamedVolume(h.ctx, st, 1 << 20, background=background)
                # The table of a 2 GB atlas (CPU only: no 2 GB texture on llvmpipe).
                sv.atlas.table = SlotTable(7200, sv.atlas.table._dense.size)  # type: ignore[union-attr]
                sv.atlas.slot_min = np.zeros(7200)
                sv.atlas.slot_max = np.full(7200, 255.0)
                sv.atlas.table.next_frame()
                sv.atlas.table.allocate(held)
                sv.atlas.max_uploads = 0

                def step(frame: StreamFrame, sv=sv, wall: list[float] = walls) -> float:
                    c, t = time.thread_time(), time.perf_counter()
                    sv.update(frame)
                    h.raycaster.set_nodes(
                        sv.pool, owner=sv, changed=(sv.pool_previous, sv.pool_rows)
                    )
                    wall.append((time.perf_counter() - t) * 1e3)
                    return (time.thread_time() - c) * 1e3

                step(frames[0])
                time.sleep(0.05)
                reused = []
                for _ in range(reps):
                    reused.append(step(frames[0]))
                    time.sleep(0.011)
                changed, builds, pending = [], [], 0
                walls.clear()
                for i in range(reps):
                    changed.append(step(frames[(i + 1) % 2]))
                    last = sv.last
                    assert last is not None
                    pending += int(last.pending)
                    if last.build_ms:
                        builds.append(last.build_ms)
                    time.sleep(0.011)
                got[background] = (reused, changed, builds, pending, statistics.median(walls))
                h.raycaster.forget_nodes(sv)
                sv.release()
            for background in (True, False):
                reused, changed, builds, pending, wall = got[background]
                how = "worker thread" if background else "frame thread (before)"
                ratio = statistics.median(changed) / statistics.median(got[False][1])
                rows.append(
                    f"| {n:,} leaves, tree on the {how} | {statistics.median(reused):.3f} / "
                    f"{np.percentile(reused, 95):.3f} | {statistics.median(changed):.3f} / "
                    f"{np.percentile(changed, 95):.3f} (wall {wall:.3f}) | {ratio:.2f} | "
                    f"{statistics.median(builds) if builds else 0:.2f} ms, "
                    f"{pending} of {reps} frames drew the previous tree |"
                )
    h.release()
    return rows


def streamer_cpu(reps: int) -> list[str]:
    """Frame-thread CPU of ``VolumeStreamer.update`` (LOD, culling, draw list, requests)
    with the view of :func:`frame_thread_cpu`, loads paused: camera still (selection
    reused) and moved by 2 µm every frame (selection recomputed), with the selection on
    the frame thread (``background=False``, the reference and one-shot renders' path)
    and on the worker thread (``background=True``, the viewer's) in the same run."""
    src = FunctionVolumeSource((2048, 4096, 3200), lambda lv, r: None, chunks=(64, 64, 64))
    rows = []
    for err in (4.0, 2.0, 0.5):
        cams = []
        for dx in (0.0, 2.0):
            view, proj = camera_matrices(
                (1024 + dx, 2048, -20000), (1024 + dx, 2048, 1600), (0, -1, 0), 20.0, (4096, 4096)
            )
            cams.append(View.from_matrices(view, proj, (4096, 4096)))
        got = {}
        for background in (False, True):
            # A RAM budget above the view's bytes (nothing is loaded: the LOD stays put).
            with VolumeStreamer(
                src, n_workers=1, cache_bytes=1 << 45, max_error_px=err, background=background
            ) as st:
                st.scheduler.pause()
                frame = st.update(cams[0])
                st.join()
                still, moved, fresh = [], [], 0
                for _ in range(reps):
                    c = time.thread_time()
                    st.update(cams[0])
                    still.append((time.thread_time() - c) * 1e3)
                    time.sleep(0.011)
                st.join()
                for i in range(reps):
                    c = time.thread_time()
                    new = st.update(cams[(i + 1) % 2])
                    moved.append((time.thread_time() - c) * 1e3)
                    fresh += int(new.selection is not frame.selection)
                    frame = new
                    time.sleep(0.011)
                got[background] = (still, moved, fresh, len(frame.selection.leaves))
        for background in (False, True):
            still, moved, fresh, n = got[background]
            how = "worker thread" if background else "frame thread (before)"
            ratio = statistics.median(moved) / statistics.median(got[False][1])
            rows.append(
                f"| streamer, {n:,} leaves, selection on the {how} | "
                f"{statistics.median(still):.3f} / {np.percentile(still, 95):.3f} | "
                f"{statistics.median(moved):.3f} / {np.percentile(moved, 95):.3f} | "
                f"{ratio:.2f} | new selection drawn in {fresh} of {reps} moving frames |"
            )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument(
        "--streamer", action="store_true", help="only the streamer's frame-thread CPU (section 3)"
    )
    args = ap.parse_args()
    reps = 3 if args.quick else 9
    if args.streamer:
        print(
            f"\n| frame-thread CPU of VolumeStreamer.update, load average "
            f"{os.getloadavg()[0]:.1f} | still: median / p95 ms | moving: median / p95 ms | "
            f"moving, ratio to the frame thread | notes |\n|---|---|---|---|---|"
        )
        for row in streamer_cpu(reps * 3):
            print(row, flush=True)
        return 0
    print(
        f"\n| llvmpipe, 256 x 256, same 128³ content and camera, load average "
        f"{os.getloadavg()[0]:.1f} | frame | ratio to 1 brick | notes |\n|---|---|---|---|"
    )
    for row in frame_times(128 if args.quick else 256, reps):
        print(row, flush=True)
    print(
        f"\n| page tree CPU, load average {os.getloadavg()[0]:.1f} | time | against |\n|---|---|---|"
    )
    for row in tree_cpu(reps * 3):
        print(row, flush=True)
    print(
        f"\n| frame-thread CPU of StreamedVolume.update + node texture, load average "
        f"{os.getloadavg()[0]:.1f} | selection reused: median / p95 ms | selection changed "
        f"every frame: median / p95 ms (wall median) | changed, ratio to the frame-thread build | tree "
        f"build (median) |\n|---|---|---|---|---|"
    )
    for row in frame_thread_cpu(reps * 5):
        print(row, flush=True)
    for row in streamer_cpu(reps * 3):
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
