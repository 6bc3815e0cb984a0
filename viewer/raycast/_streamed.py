"""``StreamedVolume``: a :class:`~viewer.streaming.VolumeStreamer`'s frames into atlas + tree."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from viewer.streaming import NEIGHBOUR_OFFSETS, StreamFrame, VolumeStreamer

from ._atlas import BrickAtlas, pad_to_slot
from ._transfer import LabelStyle, TransferFunction
from ._tree import PageTree, stand_in_words

__all__ = ["StreamedVolume", "UpdateStats"]

U32 = npt.NDArray[np.uint32]


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
        Wall-clock time of the tree build (lookups, stand-ins, packing) and of the uploads.
    behind : int
        Uploads still owed after this frame: the frame's bricks not in the atlas yet
        (0 when they cannot all fit in it) and borders still to rewrite. A host that
        draws progressively keeps drawing while this is above 0.
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

    Notes
    -----
    Per frame (:meth:`update`): the draw items' bricks (resident in RAM) missing from
    the atlas are uploaded, at most ``max_uploads``; then every leaf of the frame's
    selection is given its own brick's slot or its nearest ancestor's that the atlas
    holds (:func:`stand_in_words`), and the pool is packed from the selection
    (:meth:`PageTree.build_from_selection`). Nothing waits: a brick not uploaded yet
    is drawn by a coarser one until it is.
    """

    def __init__(
        self,
        ctx: Any,
        streamer: VolumeStreamer,
        budget_bytes: int,
        max_uploads: int = 64,
        upload_budget_s: float = 0.004,
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
        self.pool: U32 = np.zeros(self.tree.n_roots, np.uint32)
        self._stale: set[int] = set()
        self._key: tuple[Any, Any, int] | None = None
        self._node_slot: npt.NDArray[np.int64] | None = None
        self._words: U32 = np.zeros(0, np.uint32)
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

    def rewrite(self, keys: npt.ArrayLike) -> None:
        """The voxels of bricks ``keys`` changed (a label edit, the streamer re-read them):
        rewrite them and their neighbours' borders in their atlas slots at the next
        updates (the old texels are drawn until then)."""
        k = np.asarray(keys, dtype=np.int64).reshape(-1)
        if len(k):
            self._stale.update(k.tolist())
            self._stale.update(self._neighbours(k).tolist())

    def update(
        self, frame: StreamFrame, skip_for: TransferFunction | LabelStyle | None = None
    ) -> U32:
        """Upload what the frame draws (bounded), rebuild the pool; returns the pool.

        ``skip_for``: the transfer function of a *composite* draw; bricks wholly
        transparent under it become empty leaves (empty-space skipping). Leave it None
        for maximum/minimum intensity projection.
        """
        atlas = self.atlas
        t0 = time.perf_counter()
        atlas.table.next_frame()
        # Coarse first: one coarse brick stands in for many fine ones.
        keys = frame.keys.take(np.argsort(-frame.levels, kind="stable"))
        done = atlas.upload(keys, self._fetch, time_budget_s=self.upload_budget_s)
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
                    atlas.write(s, image)
                    n_border += 1
                self._stale.discard(k)
        t1 = time.perf_counter()
        sel = frame.selection
        node_slot = atlas.table.lookup(self.streamer.key_base() + sel.nodes)
        # The streamer keeps its selection while the camera barely moves: with the same
        # slots too, last frame's pool is still right.
        key = (sel, skip_for, atlas.uploads)
        same = (
            self._key is not None
            and all(a is b for a, b in zip(key[:2], self._key[:2], strict=True))
            and key[2] == self._key[2]
            and self._node_slot is not None
            and np.array_equal(node_slot, self._node_slot)
        )
        if not same:
            skip = None if skip_for is None else atlas.transparent_slots(skip_for)
            self._words = stand_in_words(sel, node_slot, skip)
            self.pool = self.tree.build_from_selection(sel, self._words)
            self._key, self._node_slot = key, node_slot
        words = self._words
        # Protect the stand-ins in use from this frame's evictions (touch the slots drawn;
        # skipped ones are not touched: they are the first to go).
        drawn = words != 0
        atlas.table.touch((words[drawn] & np.uint32((1 << 24) - 1)).astype(np.int64))
        t2 = time.perf_counter()
        missing = 0
        if len(frame.keys) <= atlas.n_slots:
            missing = int(np.count_nonzero(atlas.table.lookup(frame.keys) < 0))
        self.last = UpdateStats(
            leaves=len(sel.leaves),
            drawn=int(np.count_nonzero(drawn)),
            uploads=len(done),
            border_uploads=n_border,
            atlas_bricks=len(atlas.table),
            atlas_bytes=atlas.nbytes,
            nodes=len(self.pool),
            tree_ms=(t2 - t1) * 1e3,
            upload_ms=(t1 - t0) * 1e3,
            behind=missing + len(self._stale),
        )
        return self.pool

    def release(self) -> None:
        self.atlas.release()
