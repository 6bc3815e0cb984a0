"""The page table: a multi-resolution tree over the bricks of the pyramid, packed for the GPU.

Nodes are bricks of the pyramid (level ``L``, brick index ``ijk``); the children of a
level-``L`` brick are the level-``L - 1`` bricks inside it. Along each axis a level
either halves the brick's world size (factor 2: two children) or keeps it (factor 1:
one child), so every inner node owns a block of 8 child words, the unused ones empty.
The roots are all bricks of the coarsest level, stored first in the pool in their
linear (z, y, x) order, so a ray finds its root with one division.

A node is one ``uint32`` word:

- ``0``: empty. Nothing to draw here (culled, outside the volume, or not resident at
  any level yet): rays skip the node's box without sampling.
- ``1 << 30 | base``: inner node; its children are the words ``base .. base + 7``,
  child ``4 * bz + 2 * by + bx`` for the half (0/1) it takes along z, y and x.
- ``2 << 30 | level << 24 | slot``: leaf, drawn from atlas ``slot`` holding a brick of
  ``level``: the leaf's own brick or a coarser ancestor standing in for it (the
  shader works out which ancestor from the leaf's box).

Everything here is NumPy over whole arrays: a build is a fixed number of array
operations per pyramid level, never a Python loop over bricks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analysis.errors import ParameterError
from viewer.streaming import BrickGrid, Selection

__all__ = [
    "EMPTY",
    "PageTree",
    "TreeLevels",
    "leaf_words",
    "nearest_resident",
    "stand_in_words",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U32 = npt.NDArray[np.uint32]

EMPTY = np.uint32(0)
_INNER = np.uint32(1 << 30)
_LEAF = np.uint32(2 << 30)
_PAYLOAD = (1 << 30) - 1
MAX_SLOTS = 1 << 24
MAX_LEVELS = 64
# The shader's uniform arrays hold this many levels (uniform arrays need a fixed size).
SHADER_LEVELS = 16


def leaf_words(slots: npt.ArrayLike, levels: npt.ArrayLike) -> U32:
    """Leaf words (M,) for atlas ``slots`` (M,) holding bricks of ``levels`` (M,); slot < 0: empty."""
    s = np.asarray(slots, dtype=np.int64)
    lv = np.asarray(levels, dtype=np.int64)
    if s.size and (int(s.max()) >= MAX_SLOTS or int(lv.max()) >= MAX_LEVELS):
        raise ParameterError(f"atlas slots must be < {MAX_SLOTS} and levels < {MAX_LEVELS}")
    w = lv.astype(np.uint32)
    w <<= np.uint32(24)
    w |= s.astype(np.uint32)
    w |= _LEAF
    np.copyto(w, EMPTY, where=s < 0)
    return w


@dataclass(frozen=True)
class TreeLevels:
    """Per-level geometry of a nested pyramid, world zyx µm.

    Attributes
    ----------
    corner : (L, 3) float
        World position of the tree's grid corner of each level: level 0's (half a voxel
        before its voxel 0) for all, so the bricks nest; a level's own voxels may sit up
        to half of its voxel off it (``voxel0`` is where they are).
    brick_um : (L, 3) float
        World size of one full brick.
    level_hi : (L, 3) float
        ``corner + shape * scale``: where each level's last brick ends.
    voxel0 : (L, 3) float
        Centre of voxel (0, 0, 0) of each level (``Level.translation``).
    scale : (L, 3) float
    chunks : (L, 3) int
    grid : (L, 3) int
    factor : (L, 3) int
        Children per axis of a level-``L`` brick (1 or 2; row 0 is all 1).
    """

    corner: F64
    brick_um: F64
    level_hi: F64
    voxel0: F64
    scale: F64
    chunks: I64
    grid: I64
    factor: I64


class PageTree:
    """Builds and reads the node pool of a :class:`~viewer.streaming.BrickGrid`.

    Parameters
    ----------
    grid : BrickGrid
        Its levels must nest: along each axis a level's bricks are 1x or 2x the next
        finer level's and its grid corner is the same (true of factor-2 pyramids with
        one chunk size, which is what ``analysis.io`` writes and
        ``FunctionVolumeSource`` makes).

    Raises
    ------
    ParameterError
        When the levels do not nest (see the package docstring for what to do then).
    """

    def __init__(self, grid: BrickGrid) -> None:
        if grid.n_levels > SHADER_LEVELS:
            raise ParameterError(f"at most {SHADER_LEVELS} levels, got {grid.n_levels}")
        corner = grid.translation - 0.5 * grid.scale
        brick = grid.chunks * grid.scale
        factor = np.ones((grid.n_levels, 3), np.int64)
        for lv in range(1, grid.n_levels):
            ratio = brick[lv] / brick[lv - 1]
            f = np.rint(ratio).astype(np.int64)
            tol = 1e-6 * float(np.abs(brick[lv]).max())
            # The tree's bricks nest by construction: every level's grid starts at level
            # 0's corner. A level placed up to half of its voxel off that corner (stores
            # whose levels all sit at translation 0: each coarser grid starts half a
            # voxel earlier) is still sampled where its voxels really are (the shader
            # maps world -> texel with the level's own origin); the slot's one-voxel
            # border holds the neighbour voxels such a shift reaches.
            off = np.abs(corner[lv] - corner[0])
            if (
                not np.isin(f, (1, 2)).all()
                or np.abs(ratio - f).max() > 1e-6
                or (off > 0.5 * grid.scale[lv] + tol).any()
                or (grid.grid[lv - 1] > grid.grid[lv] * f).any()
            ):
                raise ParameterError(
                    f"pyramid levels {lv - 1} and {lv} do not nest (brick sizes "
                    f"{brick[lv - 1].tolist()} -> {brick[lv].tolist()} µm, corners "
                    f"{corner[lv - 1].tolist()} / {corner[lv].tolist()}): the page tree "
                    "needs each level's bricks to be 1x or 2x the next finer level's, "
                    "starting within half a voxel of the finest level's corner"
                )
            factor[lv] = f
        self.grid = grid
        tree_corner = np.broadcast_to(corner[0], corner.shape).copy()
        self.levels = TreeLevels(
            corner=tree_corner,
            brick_um=brick,
            level_hi=tree_corner + grid.shape * grid.scale,
            voxel0=grid.translation.copy(),
            scale=grid.scale.copy(),
            chunks=grid.chunks.copy(),
            grid=grid.grid.copy(),
            factor=factor,
        )
        self.top = grid.n_levels - 1
        self.n_roots = int(np.prod(grid.grid[self.top]))
        g = grid.grid
        self._strides = np.stack([g[:, 1] * g[:, 2], g[:, 2], np.ones(len(g), np.int64)], axis=1)

    # -- building -----------------------------------------------------------------------
    def build(self, leaf_levels: npt.ArrayLike, leaf_ijk: npt.ArrayLike, words: U32) -> U32:
        """The node pool for any set of leaves that tile (part of) the volume.

        Parameters
        ----------
        leaf_levels : (M,) int
        leaf_ijk : (M, 3) int
            Leaf bricks; no leaf may lie inside another.
        words : (M,) uint32
            Each leaf's word (:func:`leaf_words`; 0 for an empty leaf).

        Returns
        -------
        (N,) uint32
            The pool: ``n_roots`` root words, then 8 words per inner node.

        Notes
        -----
        Inner nodes are the leaves' ancestors, found level by level with one
        ``np.unique`` each. A viewer's frame already has them in its
        :class:`~viewer.streaming.Selection` and should use :meth:`build_from_selection`,
        which does not sort at all.
        """
        lv = np.asarray(leaf_levels, dtype=np.int64).reshape(-1)
        ijk = np.asarray(leaf_ijk, dtype=np.int64).reshape(-1, 3)
        w = np.asarray(words, dtype=np.uint32).reshape(-1)
        if not len(lv) == len(ijk) == len(w):
            raise ParameterError("leaf_levels, leaf_ijk and words must have one row per leaf")
        if len(lv) and (lv.min() < 0 or lv.max() > self.top):
            raise ParameterError("leaf level out of range")
        # Nodes level by level, coarsest first (the order build_from_selection expects):
        # per level the leaves of that level, then the inner nodes (ancestors of finer leaves).
        node_lin: list[I64] = []
        node_leaf: list[npt.NDArray[np.bool_]] = []
        node_word: list[U32] = []
        parent_lin: list[I64] = []
        inner_l: I64 = np.zeros(0, np.int64)  # inner nodes (linear index) of this level
        per_level: list[tuple[I64, I64, U32]] = []  # (leaf lin, inner lin, leaf words)
        for level in range(self.top + 1):
            sel = (lv == level).nonzero()[0]
            ijk_l = ijk.take(sel, 0)
            per_level.append((self._lin(level, ijk_l), inner_l, w.take(sel)))
            if level < self.top:
                # The next level's inner nodes: parents of this level's nodes.
                here = np.concatenate([ijk_l, self._unlin(level, inner_l)])
                inner_l = np.unique(self._lin(level + 1, here // self.levels.factor[level + 1]))
        # Assemble in coarse-first order with parent indices.
        start = 0
        index_of: list[tuple[I64, I64, int, int]] = []  # per level: sorted lin, order, start
        for level in range(self.top, -1, -1):
            leaf_l, inner_l, words_l = per_level[level]
            lin = np.concatenate([leaf_l, inner_l])
            n = len(lin)
            node_lin.append(lin)
            node_leaf.append(
                np.concatenate([np.ones(len(leaf_l), bool), np.zeros(len(inner_l), bool)])
            )
            node_word.append(np.concatenate([words_l, np.zeros(len(inner_l), np.uint32)]))
            order = np.argsort(lin, kind="stable")
            index_of.append((lin.take(order), order, start, level))
            start += n
        # Parents: look each node's parent up among the previous (coarser) level's nodes.
        for i, level in enumerate(range(self.top, -1, -1)):
            lin = node_lin[i]
            if level == self.top:
                parent_lin.append(np.full(len(lin), -1, np.int64))
                continue
            sorted_lin, order, pstart, _ = index_of[i - 1]
            pij = self._unlin(level, lin) // self.levels.factor[level + 1]
            plin = self._lin(level + 1, pij)
            pos = np.searchsorted(sorted_lin, plin)
            if len(pos) and (
                pos.max(initial=0) >= len(sorted_lin) or (sorted_lin.take(pos) != plin).any()
            ):
                raise ParameterError("internal: a node's parent is missing")
            parent_lin.append(pstart + order.take(pos))
        lin_all = np.concatenate(node_lin)
        ijk_all = np.zeros((len(lin_all), 3), np.int64)
        bounds = []
        s = 0
        for i, level in enumerate(range(self.top, -1, -1)):
            n = len(node_lin[i])
            ijk_all[s : s + n] = self._unlin(level, node_lin[i])
            bounds.append((level, s, s + n))
            s += n
        leaf_mask = np.concatenate(node_leaf)
        leaf_index = leaf_mask.nonzero()[0]
        return self._pack(
            tuple(bounds),
            ijk_all,
            np.concatenate(parent_lin),
            leaf_index,
            np.concatenate(node_word).take(leaf_index),
        )

    def build_from_selection(self, sel: Selection, leaf_word: U32) -> U32:
        """The node pool of a frame's :class:`~viewer.streaming.Selection`.

        Parameters
        ----------
        sel : Selection
            From ``VolumeStreamer.update`` (``StreamFrame.selection``) or
            :func:`~viewer.streaming.select_bricks`; its top level must be the grid's
            coarsest level (it always is).
        leaf_word : (M,) uint32
            One word per leaf of ``sel`` (same order as ``sel.leaves``).

        Returns
        -------
        (N,) uint32
        """
        if sel.level_bounds and sel.level_bounds[0][0] != self.top:
            raise ParameterError("the selection's top level must be the grid's coarsest")
        return self._pack(
            sel.level_bounds,
            sel.node_ijk,
            sel.node_parent,
            sel.leaf_index,
            np.asarray(leaf_word, dtype=np.uint32),
            (~sel.node_leaf).nonzero()[0],
        )

    def _pack(
        self,
        bounds: tuple[tuple[int, int, int], ...],
        node_ijk: I64,
        node_parent: I64,
        leaf_index: I64,
        leaf_word: U32,
        inner: I64 | None = None,
    ) -> U32:
        """Lay nodes out: roots at their linear index, then 8 words per inner node.

        Nodes come coarsest level first, ``bounds`` giving each level's (level, start,
        stop); the top level's nodes are the roots; ``leaf_index`` says which nodes are
        leaves, ``inner`` (optional) the others. An inner node's block is ``n_roots + 8 * rank``
        (its rank among inner nodes); a child's word goes to its parent's block at its
        half-bits, which for a factor-2 axis is the child index's lowest bit. A few
        NumPy operations per level on column slices (2-D ``take`` on (N, 3) arrays
        costs several times more); only inner nodes (about an eighth) get a rank.
        """
        n = len(node_parent)
        if inner is None:
            is_inner = np.ones(n, bool)
            is_inner[leaf_index] = False
            inner = is_inner.nonzero()[0]
        n_inner = len(inner)
        size = self.n_roots + 8 * n_inner
        if size > _PAYLOAD:
            raise ParameterError(f"page tree of {size} words is too large")
        # Block start of each inner node (only parents are ever looked up).
        block = np.empty(n, np.int64)
        block[inner] = np.arange(self.n_roots, size, 8, dtype=np.int64)
        pos = np.empty(n, np.int64)
        st = self._strides
        for level, s, e in bounds:
            iz, iy, ix = node_ijk[s:e, 0], node_ijk[s:e, 1], node_ijk[s:e, 2]
            if level == self.top:
                if (node_parent[s:e] >= 0).any():
                    raise ParameterError("the tree's roots must be bricks of the coarsest level")
                pos[s:e] = iz * st[level, 0] + iy * st[level, 1] + ix
                continue
            split = self.levels.factor[level + 1] == 2
            p = block.take(node_parent[s:e])
            for bit, axis, on in ((4, iz, split[0]), (2, iy, split[1]), (1, ix, split[2])):
                if on:
                    b = axis & 1
                    if bit > 1:
                        b *= bit
                    p += b
            pos[s:e] = p
        pool = np.zeros(size, np.uint32)
        pool[pos.take(leaf_index)] = leaf_word
        words = block.take(inner).astype(np.uint32)
        words |= _INNER
        pool[pos.take(inner)] = words
        return pool

    def codes(self, levels: npt.ArrayLike, ijk: npt.ArrayLike) -> I64:
        """Brick codes (``BrickGrid`` numbering) of bricks of mixed levels (N,) / (N, 3)."""
        lvl = np.asarray(levels, dtype=np.int64).reshape(-1)
        ij = np.asarray(ijk, dtype=np.int64).reshape(-1, 3)
        return np.asarray(
            self.grid.offsets.take(lvl) + (ij * self._strides.take(lvl, 0)).sum(axis=1),
            dtype=np.int64,
        )

    def ancestors(self, levels: npt.ArrayLike, ijk: npt.ArrayLike, to_levels: npt.ArrayLike) -> I64:
        """Brick index (N, 3) on ``to_levels`` (N,) (each >= its level) holding each brick."""
        lvl = np.asarray(levels, dtype=np.int64).reshape(-1)
        to = np.asarray(to_levels, dtype=np.int64).reshape(-1)
        if (to < lvl).any():
            raise ParameterError("an ancestor's level must be >= the brick's")
        cum = np.cumprod(self.levels.factor, axis=0)
        div = cum.take(to, 0) // cum.take(lvl, 0)
        return np.asarray(np.asarray(ijk, dtype=np.int64).reshape(-1, 3) // div, dtype=np.int64)

    def _lin(self, level: int, ijk: I64) -> I64:
        return np.asarray(ijk.reshape(-1, 3) @ self._strides[level], dtype=np.int64)

    def _unlin(self, level: int, lin: I64) -> I64:
        st = self._strides[level]
        z = lin // st[0]
        rem = lin - z * st[0]
        y = rem // st[1]
        return np.stack([z, y, rem - y * st[1]], axis=1)

    # -- reading (the CPU model of the shader's descent) ---------------------------------
    def lookup(self, pool: U32, points_zyx: npt.ArrayLike) -> tuple[U32, I64, I64]:
        """Descend the tree like the shader does, for many points at once.

        Parameters
        ----------
        pool : (N,) uint32
        points_zyx : (P, 3) float
            World points inside the volume's grid.

        Returns
        -------
        word : (P,) uint32
            The word of the leaf (or empty node) each point falls in.
        level : (P,) int
            That node's level.
        ijk : (P, 3) int
            That node's brick index on its level.
        """
        p = np.asarray(points_zyx, dtype=np.float64).reshape(-1, 3)
        lv = self.levels
        level = np.full(len(p), self.top, np.int64)
        ijk = np.floor((p - lv.corner[self.top]) / lv.brick_um[self.top]).astype(np.int64)
        np.clip(ijk, 0, lv.grid[self.top] - 1, out=ijk)
        word = pool.take(self._lin(self.top, ijk))
        active = (word >> np.uint32(30)) == 1
        while active.any():
            a = active.nonzero()[0]
            lvl = level.take(a) - 1
            f = lv.factor.take(lvl + 1, 0)
            child_ijk = ijk.take(a, 0) * f
            mid = lv.corner.take(lvl, 0) + (child_ijk + 1) * lv.brick_um.take(lvl, 0)
            bits = ((p.take(a, 0) >= mid) & (f == 2)).astype(np.int64)
            child_ijk += bits
            idx = (word.take(a) & np.uint32(_PAYLOAD)).astype(np.int64)
            idx += bits[:, 0] * 4 + bits[:, 1] * 2 + bits[:, 2]
            word[a] = pool.take(idx)
            level[a] = lvl
            ijk[a] = child_ijk
            active[a] = ((word.take(a) >> np.uint32(30)) == 1) & (lvl > 0)
        return word, level, ijk

    def boxes(self, levels: npt.ArrayLike, ijk: npt.ArrayLike) -> tuple[F64, F64]:
        """World boxes ``lo, hi`` (N, 3) zyx of nodes (the last brick of a level may be smaller)."""
        lvl = np.asarray(levels, dtype=np.int64).reshape(-1)
        ij = np.asarray(ijk, dtype=np.int64).reshape(-1, 3)
        lv = self.levels
        lo = lv.corner.take(lvl, 0) + ij * lv.brick_um.take(lvl, 0)
        hi = np.minimum(lo + lv.brick_um.take(lvl, 0), lv.level_hi.take(lvl, 0))
        return lo, hi

    @staticmethod
    def decode(words: npt.ArrayLike) -> tuple[I64, I64, I64]:
        """``kind`` (0 empty, 1 inner, 2 leaf), ``slot`` (or child base) and ``level`` of words."""
        w = np.asarray(words, dtype=np.uint32)
        kind = (w >> np.uint32(30)).astype(np.int64)
        is_leaf = kind == 2
        slot = np.where(is_leaf, w & np.uint32(MAX_SLOTS - 1), w & np.uint32(_PAYLOAD))
        level = np.where(is_leaf, (w >> np.uint32(24)) & np.uint32(63), -1)
        return kind, slot.astype(np.int64), level.astype(np.int64)


def nearest_resident(sel: Selection, node_slot: I64) -> tuple[I64, I64]:
    """Each leaf's atlas slot and level: its own brick's, else its nearest resident ancestor's.

    The streamer's stand-in rule, applied to what the GPU atlas holds rather than to
    what the RAM cache holds, so a brick loaded but not uploaded yet is drawn by a
    coarser one that is, and the frame never waits for an upload.

    Parameters
    ----------
    sel : Selection
    node_slot : (K,) int
        Atlas slot of each node of ``sel`` (-1: not in the atlas).

    Returns
    -------
    slot, level : (M,) int
        Per leaf (order of ``sel.leaves``); slot -1 where no ancestor is resident.
    """
    n = len(sel.nodes)
    # best[i]: the node drawing node i, n (a sentinel row below) when none does.
    best = np.empty(n, np.int64)
    own = node_slot >= 0
    idx = np.arange(n, dtype=np.int64)
    # Nodes are coarsest level first and parents precede children: one pass per level.
    for k, (_, s, e) in enumerate(sel.level_bounds):
        inherited = np.full(e - s, n, np.int64) if k == 0 else best.take(sel.node_parent[s:e])
        np.copyto(inherited, idx[s:e], where=own[s:e])
        best[s:e] = inherited
    b = best.take(sel.leaf_index)
    slot = np.append(node_slot, -1).take(b)
    level = np.append(sel.node_levels, -1).take(b)
    return slot.astype(np.int64, copy=False), level.astype(np.int64, copy=False)


def stand_in_words(
    sel: Selection, node_slot: I64, skip: npt.NDArray[np.bool_] | None = None
) -> U32:
    """Leaf words (M,) of a selection: :func:`nearest_resident` and :func:`leaf_words` in one.

    The frame's path: the word each node would have as a leaf drawing itself is made
    once for all nodes, then handed down level by level where a node is not resident
    (one ``take`` of 32-bit words per level). ``node_slot`` must be < 2**24 (atlas
    slots are, :class:`~viewer.raycast.BrickAtlas` checks it).

    ``skip`` (n_slots,) bool, optional: slots known to be wholly transparent
    (:meth:`BrickAtlas.transparent_slots`); leaves drawn from them become empty, so
    rays step over them without sampling (empty-space skipping).
    """
    own = node_slot >= 0
    # Garbage where node_slot is -1; never used there (``own`` masks it below).
    words = sel.node_levels.astype(np.uint32)
    words <<= np.uint32(24)
    words |= node_slot.astype(np.uint32)
    words |= _LEAF
    best = np.empty(len(words), np.uint32)
    for k, (_, s, e) in enumerate(sel.level_bounds):
        if k == 0:
            inherited = np.zeros(e - s, np.uint32)
        else:
            inherited = best.take(sel.node_parent[s:e])
        np.copyto(inherited, words[s:e], where=own[s:e])
        best[s:e] = inherited
    out = best.take(sel.leaf_index)
    if skip is not None and len(out):
        slot = (out & np.uint32(MAX_SLOTS - 1)).astype(np.int64)
        np.copyto(out, EMPTY, where=skip.take(slot) & (out != EMPTY))
    return out
