"""``StreamedVolume``: a :class:`~viewer.streaming.VolumeStreamer`'s frames into atlas + tree.

The frame thread does only bounded work per frame: at most ``max_uploads`` slot
writes (each key looked up alone), the borders of neighbours of arrivals, and, when a
new page tree is ready, swapping it in. The tree itself (every node of the selection
looked up in the atlas, stand-ins, packing: linear in the bricks drawn, 1.5 ms at
100k leaves on this machine) is built on a worker thread from a *snapshot*: the
frame's selection (immutable), a copy of the atlas's slot table (which key in which
slot, their generations and value ranges: a few thousand entries, never per brick).
Until it is ready the previous tree is drawn, complete at its own (coarser or
finer) levels; the frame never waits for it.

Why this is safe without locks: the slots the drawn tree points to are pinned
(:attr:`SlotTable.pinned`), so no upload overwrites them while it is drawn; a new tree
is swapped in only if every slot it points to kept the generation it had in the
snapshot (a slot reallocated meanwhile would hold another brick): else it is
dropped, the slots it wanted are marked recently used (so the next try keeps them)
and a new build starts; after two such misses in a row the tree is built on the
frame thread once (progress is bounded). ``background=False`` builds every tree on
the frame thread (one-shot renders: the picture is then complete when drawn).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from viewer.streaming import NEIGHBOUR_OFFSETS, StreamFrame, VolumeStreamer

from ._atlas import BrickAtlas, pad_to_slot
from ._transfer import LabelStyle, TransferFunction
from ._tree import MAX_SLOTS, PageTree, stand_in_words

__all__ = ["StreamedVolume", "UpdateStats"]

U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]
#: Page-tree words per row of the node texture (the pool is padded to whole rows).
NODE_ROW = 4096


@dataclass(frozen=True)
class UpdateStats:
    """What one :meth:`StreamedVolume.update` did.

    Attributes
    ----------
    leaves : int
        Leaves of the frame's selection (tree leaves).
    drawn : int
        Leaves with something in the atlas (own brick or a stand-in).
    uploads, border_uploads : int
        Slots written this frame: new bricks, and bricks rewritten because a
        neighbour arrived that fills their border.
    atlas_bricks, atlas_bytes : int
        Slots in use, and the atlas texture's size.
    nodes : int
        Words in the node pool.
    tree_ms, upload_ms : float
        Frame-thread wall-clock time of the tree work (starting a build, swapping a
        finished one in; the whole build when it ran on the frame thread) and of the
        uploads.
    behind : int
        Uploads still owed after this frame: the frame's bricks not in the atlas yet
        (0 when they cannot all fit in it), borders still to rewrite, and 1 while a
        newer page tree is being built. A host that draws progressively keeps drawing
        while this is above 0.
    pending : bool
        A newer page tree is being built: the tree drawn is the previous one.
    build_ms : float
        Worker time of the last finished build (0 if none finished this frame).
    levels : tuple of int
        Pyramid levels the drawn tree samples.
    """

    leaves: int
    drawn: int
    uploads: int
    border_uploads: int
    atlas_bricks: int
    atlas_bytes: int
    nodes: int
    tree_ms: float
    upload_ms: float
    behind: int = 0
    pending: bool = False
    build_ms: float = 0.0
    levels: tuple[int, ...] = ()


@dataclass(frozen=True)
class _Snapshot:
    """What a page-tree build reads, copied on the frame thread (never per brick)."""

    frame: StreamFrame
    skip_for: TransferFunction | LabelStyle | None
    base: int
    slot_keys: I64  # (n_slots,) key in each slot, -1: free
    generation: I64  # (n_slots,)
    ranges: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]
    previous: U32  # the pool the new one replaces (padded to whole rows)
    stamp: tuple[Any, ...]


@dataclass(frozen=True)
class _Tree:
    """A page tree built from a :class:`_Snapshot`."""

    snapshot: _Snapshot
    pool: U32  # padded to whole rows of NODE_ROW words
    n_words: int
    changed_rows: tuple[int, int]  # rows that differ from snapshot.previous
    used: I64  # distinct atlas slots the leaves point to
    drawn: int  # leaves drawn (own brick or a stand-in)
    levels: tuple[int, ...]
    todo: I64  # the frame's keys not in the atlas, coarse level first
    build_ms: float


def _coarse_first(frame: StreamFrame, missing: npt.NDArray[np.bool_]) -> I64:
    """The frame's keys where ``missing``, coarse level first (a stable radix sort on
    8-bit levels). A stand-in cropped to several leaves is several draw items of one
    key: :meth:`StreamedVolume._upload` takes each key once."""
    idx = missing.nonzero()[0]
    lv = frame.levels.take(idx).astype(np.int8)
    np.negative(lv, out=lv)
    return np.asarray(frame.keys.take(idx.take(np.argsort(lv, kind="stable"))), np.int64)


def _lookup_sorted(slot_keys: I64, keys: I64) -> I64:
    """Slot of each key among ``slot_keys`` (the key in each slot, -1: free), -1 where
    absent: a binary search (for tables without a dense index)."""
    used = (slot_keys >= 0).nonzero()[0]
    if not len(used) or not len(keys):
        return np.full(len(keys), -1, np.int64)
    order = used.take(np.argsort(slot_keys.take(used), kind="stable"))
    sk = slot_keys.take(order)
    i = np.minimum(np.searchsorted(sk, keys), len(sk) - 1)
    return np.where(sk.take(i) == keys, order.take(i), -1)


class StreamedVolume:
    """Keeps an atlas and a page tree in step with a streamer, frame by frame.

    Parameters
    ----------
    ctx : moderngl.Context
    streamer : VolumeStreamer
    budget_bytes : int
        Atlas texture memory.
    max_uploads : int, default: 64
        Slots written per frame (new bricks first, coarse levels first; then borders).
    upload_budget_s : float, default: 0.004
        Frame-thread time for uploads (slot images are assembled from the RAM cache,
        about a millisecond each on a slow CPU): no new upload starts after it.
    background : bool, default: True
        Build page trees on a worker thread (see the module notes); False: on the
        calling thread, every frame drawing the tree of its own selection.

    Notes
    -----
    Per frame (:meth:`update`): the draw items' bricks (resident in RAM) missing from
    the atlas are uploaded, at most ``max_uploads``, from the list the last tree build
    made; then, when the selection, the atlas or the skipping changed, a new tree is
    started: every leaf of the selection is given its own brick's slot or its nearest
    ancestor's that the atlas holds (:func:`stand_in_words`), and the pool is packed
    from the selection (:meth:`PageTree.build_from_selection`). Nothing waits: a brick
    not uploaded yet is drawn by a coarser one until it is, a tree not built yet by
    the previous tree.
    """

    def __init__(
        self,
        ctx: Any,
        streamer: VolumeStreamer,
        budget_bytes: int,
        max_uploads: int = 64,
        upload_budget_s: float = 0.004,
        background: bool = True,
    ) -> None:
        self.streamer = streamer
        self.tree = PageTree(streamer.grid)
        edge = int(streamer.grid.chunks.max())
        # Keys of every time point and channel: base + code.
        n_keys = streamer.key_base(streamer.n_time - 1, streamer.n_channels - 1)
        n_keys += streamer.grid.n_bricks
        self.atlas = BrickAtlas(
            ctx,
            edge,
            streamer.source.dtype,
            budget_bytes,
            max_uploads,
            labels=streamer.labels,
            key_space=n_keys,
        )
        self.upload_budget_s = float(upload_budget_s)
        self.background = bool(background)
        rows = -(-self.tree.n_roots // NODE_ROW)
        #: The pool drawn now, padded with empty words to whole rows of :data:`NODE_ROW`.
        self.pool: U32 = np.zeros(rows * NODE_ROW, np.uint32)
        #: Words of :attr:`pool` that are the tree's (the rest is padding).
        self.n_words = self.tree.n_roots
        #: The pool :attr:`pool` replaced and the rows (first, stop) that differ from it.
        self.pool_previous: U32 | None = None
        self.pool_rows = (0, rows)
        self.levels: tuple[int, ...] = ()
        self.drawn = 0
        self.conflicts = 0  # finished trees dropped: a slot they use changed hands
        self._stale: set[int] = set()
        self._ranges_version = 0  # border rewrites that changed a slot's value range
        self._stamp: tuple[Any, ...] | None = None  # inputs of the tree drawn or building
        self._todo: I64 = np.zeros(0, np.int64)
        self._job: Future[_Tree] | None = None
        self._misses = 0
        self._pool_thread: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()  # guards _pool_thread against release()
        self.last: UpdateStats | None = None

    def _neighbours(self, keys: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Keys of the same-level neighbours (26 each, inside the volume) of ``keys``."""
        grid = self.streamer.grid
        code = keys % grid.n_bricks
        base = keys - code
        lvl, ijk = grid.decode(code)
        nb = ijk[:, None, :] + NEIGHBOUR_OFFSETS[None, :, :]
        inside = ((nb >= 0) & (nb < grid.grid[lvl][:, None, :])).all(axis=2)
        lv = np.broadcast_to(lvl[:, None], inside.shape)[inside]
        out = self.tree.codes(lv, nb[inside]) + np.broadcast_to(base[:, None], inside.shape)[inside]
        return np.asarray(out, dtype=np.int64)

    def _fetch(self, key: int) -> npt.NDArray[np.generic] | None:
        pb = self.streamer.padded(key)
        if pb is None:
            return None
        pad_lo = [int(s.start > 0) for s in pb.region]
        return pad_to_slot(pb.array, pad_lo, self.atlas.brick_edge)

    # -- the tree (worker thread) ----------------------------------------------------------
    def _snapshot(
        self, frame: StreamFrame, skip_for: TransferFunction | LabelStyle | None, stamp: Any
    ) -> _Snapshot:
        t = self.atlas.table
        return _Snapshot(
            frame=frame,
            skip_for=skip_for,
            base=self.streamer.key_base(),
            slot_keys=t.keys.copy(),
            generation=t.generation.copy(),
            ranges=(self.atlas.slot_min.copy(), self.atlas.slot_max.copy()),
            previous=self.pool,
            stamp=stamp,
        )

    def _slots_of(self, snap: _Snapshot, keys: I64) -> I64:
        """Slot of each key in the snapshot's table (-1: not there).

        Read through the live table's dense index (one ``take``; it may have changed
        since the snapshot), then kept only where the snapshot has that key in that
        slot: exactly the snapshot's answer for keys it holds, -1 for the rest.
        """
        if not len(keys):
            return np.zeros(0, np.int64)
        table = self.atlas.table
        dense = table._dense
        if dense is None or int(keys.max()) >= len(dense):
            return _lookup_sorted(snap.slot_keys, keys)
        slots = dense.take(keys).astype(np.int64)
        held = snap.slot_keys.take(np.maximum(slots, 0)) == keys
        np.copyto(slots, -1, where=~held)
        return slots

    def _build(self, snap: _Snapshot) -> _Tree:
        """The page tree of a snapshot (pure: reads only the snapshot and the immutable
        selection, so it runs on any thread)."""
        t0 = time.perf_counter()
        frame = snap.frame
        sel = frame.selection
        node_slot = self._slots_of(snap, snap.base + sel.nodes)
        skip = None
        if snap.skip_for is not None:
            skip = self.atlas.transparent_slots(snap.skip_for, snap.ranges)
        words = stand_in_words(sel, node_slot, skip)
        packed = self.tree.build_from_selection(sel, words)
        rows = max(1, -(-len(packed) // NODE_ROW))
        pool = np.zeros(rows * NODE_ROW, np.uint32)
        pool[: len(packed)] = packed
        prev = snap.previous
        if len(prev) == len(pool):
            diff = (prev.reshape(rows, NODE_ROW) != pool.reshape(rows, NODE_ROW)).any(axis=1)
            ch = diff.nonzero()[0]
            changed = (int(ch[0]), int(ch[-1]) + 1) if len(ch) else (0, 0)
        else:
            changed = (0, rows)
        drawn_words = words[words != 0]
        slots = (drawn_words & np.uint32(MAX_SLOTS - 1)).astype(np.int64)
        mask = np.zeros(len(snap.slot_keys), bool)
        mask[slots] = True
        lv_count = np.bincount((drawn_words >> np.uint32(24)).astype(np.int64) & 63)
        # Uploads still to do: the frame's bricks the atlas lacks, coarse first (one
        # coarse brick stands in for many fine ones).
        todo = _coarse_first(frame, self._slots_of(snap, frame.keys) < 0)
        return _Tree(
            snapshot=snap,
            pool=pool,
            n_words=len(packed),
            changed_rows=changed,
            used=mask.nonzero()[0],
            drawn=len(drawn_words),
            levels=tuple(int(v) for v in lv_count.nonzero()[0]),
            todo=todo,
            build_ms=(time.perf_counter() - t0) * 1e3,
        )

    def _submit(self, snap: _Snapshot) -> Future[_Tree]:
        with self._lock:
            if self._pool_thread is None:
                self._pool_thread = ThreadPoolExecutor(1, thread_name_prefix="vrscope-tree")
            return self._pool_thread.submit(self._build, snap)

    def _swap(self, tree: _Tree) -> bool:
        """Draw ``tree`` from now on, if every slot it uses still holds its brick."""
        table = self.atlas.table
        used = tree.used
        if (table.generation.take(used) != tree.snapshot.generation.take(used)).any():
            # A slot changed hands since the snapshot: keep what it wanted recently used
            # so the next try finds it (only slots still holding the same key).
            same = table.keys.take(used) == tree.snapshot.slot_keys.take(used)
            table.touch(used[same])
            self.conflicts += 1
            return False
        table.pinned[:] = False
        table.pinned[used] = True
        table.touch(used)
        self.pool_previous, self.pool = self.pool, tree.pool
        whole = (0, len(tree.pool) // NODE_ROW)
        known = tree.snapshot.previous is self.pool_previous
        self.pool_rows = tree.changed_rows if known else whole
        self.n_words = tree.n_words
        self.levels = tree.levels
        self.drawn = tree.drawn
        self._todo = tree.todo
        return True

    def rewrite(self, keys: npt.ArrayLike) -> None:
        """The voxels of bricks ``keys`` changed (a label edit, the streamer re-read them):
        rewrite them and their neighbours' borders in their atlas slots at the next
        updates (the old texels are drawn until then)."""
        k = np.asarray(keys, dtype=np.int64).reshape(-1)
        if len(k):
            self._stale.update(k.tolist())
            self._stale.update(self._neighbours(k).tolist())

    # -- the frame -----------------------------------------------------------------------
    def update(
        self,
        frame: StreamFrame,
        skip_for: TransferFunction | LabelStyle | None = None,
        wait: bool = False,
    ) -> U32:
        """Upload what the frame draws (bounded), refresh the tree; returns the pool drawn.

        ``skip_for``: the transfer function of a *composite* draw; bricks wholly
        transparent under it become empty leaves (empty-space skipping). Leave it None
        for maximum/minimum intensity projection. ``wait``: the returned pool is this
        frame's tree (built on the calling thread unless a build of the same inputs is
        running, which is then waited for).
        """
        atlas = self.atlas
        t0 = time.perf_counter()
        atlas.table.next_frame()
        if self.last is None:
            # The first frame: no tree has listed the bricks to upload yet.
            self._todo = _coarse_first(frame, atlas.table.lookup(frame.keys) < 0)
        done = self._upload()
        # A neighbour that arrived fills borders that repeat the edge until then: note
        # the atlas bricks next to each arrival (vectorised over arrivals x 26).
        if len(frame.arrived):
            nb = self._neighbours(frame.arrived)
            self._stale.update(nb[atlas.table.lookup(nb) >= 0].tolist())
        self._stale.difference_update(done.tolist())
        n_border = 0
        room = atlas.max_uploads - len(done)
        late = time.perf_counter() - t0 > self.upload_budget_s
        if self._stale and room > 0 and not late:
            stale = np.fromiter(self._stale, np.int64, len(self._stale))
            slots = atlas.table.lookup(stale)
            self._stale = {int(k) for k in stale[slots >= 0]}
            for k, s in zip(stale.tolist(), slots.tolist(), strict=True):
                if s < 0 or n_border >= room:
                    continue
                image = self._fetch(k)
                if image is not None:
                    before = (atlas.slot_min[s], atlas.slot_max[s])
                    atlas.write(s, image)
                    n_border += 1
                    if (atlas.slot_min[s], atlas.slot_max[s]) != before:
                        # The border moved the brick's value range, on which empty-space
                        # skipping decides: the tree is built again.
                        self._ranges_version += 1
                self._stale.discard(k)
        t1 = time.perf_counter()
        build_ms = self._refresh(frame, skip_for, wait)
        t2 = time.perf_counter()
        self.last = UpdateStats(
            leaves=len(frame.selection.leaves),
            drawn=self.drawn,
            uploads=len(done),
            border_uploads=n_border,
            atlas_bricks=len(atlas.table),
            atlas_bytes=atlas.nbytes,
            nodes=self.n_words,
            tree_ms=(t2 - t1) * 1e3,
            upload_ms=(t1 - t0) * 1e3,
            behind=self._behind() + len(self._stale) + int(self._job is not None),
            pending=self._job is not None,
            build_ms=build_ms,
            levels=self.levels,
        )
        return self.pool

    def _upload(self) -> I64:
        """Write the next missing bricks of the last tree's list (each looked up again:
        the list is a snapshot's), at most ``max_uploads``."""
        atlas = self.atlas
        todo = self._todo
        if not len(todo):
            return np.zeros(0, np.int64)
        n = atlas.max_uploads
        head = todo[: 4 * n] if n < len(todo) // 4 else todo
        missing = head[atlas.table.lookup(head) < 0]
        # Each key once, in the list's order.
        _, first = np.unique(missing, return_index=True)
        missing = missing.take(np.sort(first))
        done = atlas.upload(missing[:n], self._fetch, limit=n, time_budget_s=self.upload_budget_s)
        # Drop what is in the atlas now from the head; the rest waits for the next frame.
        rest = head[atlas.table.lookup(head) < 0]
        self._todo = np.concatenate([rest, todo[len(head) :]]) if len(rest) else todo[len(head) :]
        return done

    def _behind(self) -> int:
        if len(self._todo) and len(self._todo) + len(self.atlas.table) > self.atlas.n_slots:
            # More bricks than the atlas holds: what it cannot take is not owed.
            return max(self.atlas.n_slots - len(self.atlas.table), 0)
        return len(self._todo)

    def _refresh(
        self, frame: StreamFrame, skip_for: TransferFunction | LabelStyle | None, wait: bool
    ) -> float:
        """Swap in a finished tree; start one when the inputs changed. Returns the build's ms."""
        build_ms = 0.0
        job = self._job
        if job is not None and (job.done() or wait):
            self._job = None
            tree = job.result()
            build_ms = tree.build_ms
            if self._swap(tree):
                self._misses = 0
            else:
                self._misses += 1
                self._stamp = None  # build again
        # The selection and the draw list (the streamer hands the same objects back while
        # they hold), the skipping, the atlas's contents and the time point / channel.
        stamp = (
            frame.selection,
            frame.keys,
            skip_for,
            self.atlas.table.version,
            self.streamer.key_base(),
            self._ranges_version if skip_for is not None else 0,
        )
        cur = self._stamp
        same = cur is not None and all(a is b for a, b in zip(stamp[:3], cur[:3], strict=True))
        same = same and cur is not None and stamp[3:] == cur[3:]
        if same or self._job is not None:
            return build_ms  # up to date, or a build runs (the next one starts after it)
        snap = self._snapshot(frame, skip_for, stamp)
        self._stamp = stamp
        first = self.last is None
        if wait or not self.background or first or self._misses >= 2:
            # On this thread: one-shot renders, the first frame (nothing to draw yet),
            # and after two trees in a row were dropped.
            tree = self._build(snap)
            build_ms = tree.build_ms
            ok = self._swap(tree)
            assert ok, "a tree built on the frame thread is always current"
            self._misses = 0
        else:
            self._job = self._submit(snap)
        return build_ms

    def release(self) -> None:
        with self._lock:
            pool, self._pool_thread = self._pool_thread, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self._job = None
        self.atlas.release()
