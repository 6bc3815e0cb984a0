"""The brick atlas: one 3D texture of fixed-size padded brick slots, LRU within a byte budget.

A slot holds one brick of ``B³`` voxels with a one-voxel border: ``(B + 2)³`` texels.
The border holds the neighbouring bricks' voxels where they are known and repeats the
brick's edge elsewhere (outer faces of the volume, a ragged last brick's far side,
neighbours not resident), so every slot is full and hardware trilinear filtering never
reads another slot.

:class:`SlotTable` is the bookkeeping alone (keys, slots, last use; NumPy, no GL) so it
can be tested against a model; :class:`BrickAtlas` adds the texture and the uploads.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.errors import ParameterError

from ._transfer import LabelStyle, TransferFunction
from ._tree import MAX_SLOTS

__all__ = ["BrickAtlas", "SlotTable", "atlas_layout", "pad_to_slot", "slot_from_level"]

I64 = npt.NDArray[np.int64]

# numpy dtype -> (moderngl texture dtype, value of 1.0 in the texture's units). Normalised
# integer textures read back as value / max; other dtypes go up as float32.
_TEX_DTYPES: dict[str, tuple[str, float]] = {
    "uint8": ("f1", 255.0),
    "uint16": ("nu2", 65535.0),
    "float16": ("f2", 1.0),
    "float32": ("f4", 1.0),
}


def texture_format(dtype: npt.DTypeLike, labels: bool = False) -> tuple[np.dtype[Any], str, float]:
    """(numpy dtype uploaded, moderngl dtype, data value that reads as 1.0) for ``dtype``.

    Labels go up as 32-bit unsigned integers (ids modulo 2**32), read without filtering.
    """
    if labels:
        return np.dtype(np.uint32), "u4", 1.0
    d = np.dtype(dtype)
    if d.name in _TEX_DTYPES:
        tex, one = _TEX_DTYPES[d.name]
        return d, tex, one
    # int8/16/32, uint32, float64, ...: float32 keeps the values (exactly up to 2**24).
    return np.dtype(np.float32), "f4", 1.0


def atlas_layout(n_slots: int, edge: int, max_texels: int = 2048) -> tuple[int, int, int]:
    """Slots per axis (x, y, z) of an atlas holding at most ``n_slots`` slots of ``edge`` texels.

    Near-cubic, each axis at most ``max_texels`` texels (``GL_MAX_3D_TEXTURE_SIZE``).
    """
    per = max_texels // edge
    if per < 1:
        raise ParameterError(f"a slot of {edge} texels exceeds the 3D texture limit {max_texels}")
    n = max(1, min(int(n_slots), per**3))
    # Each factor at most n // (product so far): the product never exceeds n.
    sx = min(per, n, math.ceil(n ** (1 / 3)))
    sy = min(per, n // sx, math.ceil(math.sqrt(n / sx)))
    sz = min(per, n // (sx * sy))
    return sx, sy, sz


def pad_to_slot(
    array: npt.NDArray[np.generic], pad_lo: Sequence[int], edge: int
) -> npt.NDArray[np.generic]:
    """A ``(edge + 2)³`` slot image from a brick that already has some of its border.

    Parameters
    ----------
    array : (Z, Y, X) array
        The brick's voxels with ``pad_lo[a]`` (0 or 1) border voxels before them
        along each axis and whatever border it has after them (a
        :class:`~viewer.streaming.PaddedBrick` has one on each side with a neighbour).
    pad_lo : (3,) int
    edge : int
        Brick edge ``B`` in voxels (the slot is ``B + 2``).

    Returns
    -------
    (B + 2, B + 2, B + 2) array
        The voxels at offset 1, every missing texel repeating the nearest one
        (a ragged brick's far side too).
    """
    n = edge + 2
    lo = [1 - int(p) for p in pad_lo]
    hi = [n - a - s for a, s in zip(lo, array.shape, strict=True)]
    if min(lo + hi) < 0:
        raise ParameterError(f"brick of shape {array.shape} does not fit a slot of edge {edge}")
    if not any(lo + hi):
        return array
    return np.pad(array, list(zip(lo, hi, strict=True)), mode="edge")


def slot_from_level(
    level_array: npt.NDArray[np.generic], start: Sequence[int], edge: int
) -> npt.NDArray[np.generic]:
    """The slot image of the brick at voxel ``start`` of a whole level held in memory.

    The border comes from the neighbouring voxels of ``level_array`` (what the
    streamer's :meth:`~viewer.streaming.VolumeStreamer.padded` gives when all
    neighbours are resident); outer faces and a ragged far side repeat the edge.
    """
    lo = [max(int(s) - 1, 0) for s in start]
    hi = [min(int(s) + edge + 1, n) for s, n in zip(start, level_array.shape, strict=True)]
    sub = level_array[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    return pad_to_slot(sub, [int(s) - a for s, a in zip(start, lo, strict=True)], edge)


_RANGE_MAX: dict[int, tuple[TransferFunction, npt.NDArray[np.float32]]] = {}


def _range_max(tf: TransferFunction) -> npt.NDArray[np.float32]:
    """(N, N) table: largest opacity among entries ``i..j`` (``j >= i``); cached per table."""
    hit = _RANGE_MAX.get(id(tf))
    if hit is not None and hit[0] is tf:
        return hit[1]
    a = np.asarray(tf.table[:, 3], np.float32)
    n = len(a)
    out = np.zeros((n, n), np.float32)
    for i in range(n):  # N calls once per transfer function (256: about a millisecond)
        out[i, i:] = np.maximum.accumulate(a[i:])
    _RANGE_MAX.clear()  # one live transfer function is the common case; keep memory flat
    _RANGE_MAX[id(tf)] = (tf, out)
    return out


# Largest key space given a dense key -> slot table (int32: 128 MB).
DENSE_LIMIT = 1 << 25


class SlotTable:
    """Which key sits in which slot, and when each slot was last used (no GL).

    Parameters
    ----------
    n_slots : int
    key_space : int, optional
        Keys are known to lie in ``[0, key_space)``: lookups then read a dense
        key -> slot table (int32, 4 bytes per key, kept up to date on every change)
        with one ``take``, instead of a binary search (about 6x faster for a frame's
        100k nodes). Ignored above :data:`DENSE_LIMIT` keys.

    Attributes
    ----------
    pinned : (n_slots,) bool
        Slots never taken by :meth:`allocate` (those a page tree being drawn points to:
        set by its owner when it swaps a tree in).
    generation : (n_slots,) int64
        Bumped whenever a slot changes hands (allocated or evicted): a page tree built
        from a snapshot of the table is still right if the slots it uses kept theirs.
    version : int
        Bumped on every change of which key sits where.

    Notes
    -----
    Without the dense table, lookups are a binary search in the resident keys, kept
    sorted (re-sorted only after a change, a few thousand keys at most).
    """

    def __init__(self, n_slots: int, key_space: int | None = None) -> None:
        if n_slots < 1:
            raise ParameterError(f"an atlas needs at least one slot, got {n_slots}")
        self.n_slots = int(n_slots)
        self._dense: npt.NDArray[np.int32] | None = None
        if key_space is not None and 0 < key_space <= DENSE_LIMIT:
            self._dense = np.full(int(key_space), -1, np.int32)
        self.keys = np.full(self.n_slots, -1, np.int64)
        self.last_used = np.full(self.n_slots, -1, np.int64)
        self.pinned = np.zeros(self.n_slots, bool)
        self.generation = np.zeros(self.n_slots, np.int64)
        self.version = 0
        self.frame = 0
        self._sorted_keys = np.zeros(0, np.int64)
        self._sorted_slots = np.zeros(0, np.int64)
        self._dirty = False

    def __len__(self) -> int:
        return int(np.count_nonzero(self.keys >= 0))

    def _index(self) -> None:
        if self._dirty:
            used = (self.keys >= 0).nonzero()[0]
            order = np.argsort(self.keys.take(used))
            self._sorted_slots = used.take(order)
            self._sorted_keys = self.keys.take(self._sorted_slots)
            self._dirty = False

    def lookup(self, keys: npt.ArrayLike) -> I64:
        """Slot of each key (N,), -1 where it is not resident."""
        k = np.asarray(keys, dtype=np.int64).reshape(-1)
        d = self._dense
        if d is not None and len(k) and int(k.min()) >= 0 and int(k.max()) < len(d):
            return d.take(k).astype(np.int64)
        self._index()
        have = self._sorted_keys
        if not len(have) or not len(k):
            return np.full(len(k), -1, np.int64)
        i = np.minimum(np.searchsorted(have, k), len(have) - 1)
        return np.where(have.take(i) == k, self._sorted_slots.take(i), -1)

    def _forget(self, keys: I64) -> None:
        if self._dense is not None:
            k = keys[(keys >= 0) & (keys < len(self._dense))]
            self._dense[k] = -1

    def _remember(self, keys: I64, slots: I64) -> None:
        if self._dense is not None:
            ok = (keys >= 0) & (keys < len(self._dense))
            self._dense[keys[ok]] = slots[ok]

    def next_frame(self) -> None:
        """Start a frame: slots touched from now on are protected from eviction until the next."""
        self.frame += 1

    def touch(self, slots: npt.ArrayLike) -> None:
        s = np.asarray(slots, dtype=np.int64).reshape(-1)
        s = s[s >= 0]
        self.last_used[s] = self.frame

    def allocate(self, keys: npt.ArrayLike) -> I64:
        """Slots for new ``keys`` (N,), in order: free slots first, then least recently used.

        Slots touched in the current frame and pinned slots are never taken; keys that find no slot get
        -1 (and are not resident). The new slots are touched. Keys already resident
        must not be passed.
        """
        k = np.asarray(keys, dtype=np.int64).reshape(-1)
        free = (self.last_used < self.frame) | (self.keys < 0)
        free &= ~self.pinned
        cand = free.nonzero()[0]
        # Free slots (never used: last_used -1) sort first, then oldest use first.
        order = np.argsort(
            np.where(self.keys.take(cand) < 0, -2, self.last_used.take(cand)), kind="stable"
        )
        cand = cand.take(order)[: len(k)]
        out = np.full(len(k), -1, np.int64)
        out[: len(cand)] = cand
        if len(cand):
            self._forget(self.keys.take(cand))
            self._remember(k[: len(cand)], cand)
            self.keys[cand] = k[: len(cand)]
            self.last_used[cand] = self.frame
            self.generation[cand] += 1
            self.version += 1
            self._dirty = True
        return out

    def evict(self, keys: npt.ArrayLike) -> None:
        """Forget ``keys`` (their slots become free)."""
        s = self.lookup(keys)
        s = s[s >= 0]
        self._forget(self.keys.take(s))
        self.keys[s] = -1
        self.last_used[s] = -1
        self.generation[s] += 1
        self.version += 1
        self._dirty = True


class BrickAtlas:
    """The 3D texture of brick slots and the uploads into it.

    Parameters
    ----------
    ctx : moderngl.Context
    brick_edge : int
        ``B``: bricks of up to ``B³`` voxels; slots are ``(B + 2)³`` texels.
    dtype : numpy dtype
        Of the voxels: uint8 -> R8, uint16 -> R16 (normalised), float16/32 -> R16F/R32F,
        anything else -> R32F.
    budget_bytes : int
        Texture memory; the atlas holds ``budget_bytes // slot_bytes`` slots (at most
        what ``GL_MAX_3D_TEXTURE_SIZE`` allows).
    max_uploads : int, default: 64
        Most slots written per :meth:`upload` call (per frame).
    labels : bool, default: False
        A label volume: R32UI, nearest (ids modulo 2**32).
    key_space : int, optional
        Keys lie in ``[0, key_space)`` (see :class:`SlotTable`).
    staging_buffers : int, default: 4
        Pixel-unpack buffers (PBOs) slot images go through, used in turn (0: write
        from client memory). The copy into a PBO returns at once and the driver moves
        it into the texture asynchronously (BigVolumeViewer's ``TextureCache`` fills
        its cache the same way); each buffer is orphaned before reuse, so a write
        never waits for the GPU to finish reading the previous one.

    Attributes
    ----------
    table : SlotTable
    texture : moderngl.Texture3D
    slots_xyz : (3,) int
        Slots per texture axis (x, y, z).
    value_one : float
        The voxel value that reads as 1.0 in the shader (255 for uint8, 65535 for uint16).
    uploads : int
        Slots written since creation.
    """

    def __init__(
        self,
        ctx: Any,
        brick_edge: int,
        dtype: npt.DTypeLike,
        budget_bytes: int,
        max_uploads: int = 64,
        labels: bool = False,
        key_space: int | None = None,
        staging_buffers: int = 4,
    ) -> None:
        if brick_edge < 1:
            raise ParameterError(f"brick_edge must be >= 1, got {brick_edge}")
        self.ctx = ctx
        self.brick_edge = int(brick_edge)
        self.edge = self.brick_edge + 2
        self.labels = bool(labels)
        self.dtype, tex_dtype, self.value_one = texture_format(dtype, self.labels)
        self.slot_bytes = self.edge**3 * self.dtype.itemsize
        max_tex = int(ctx.info["GL_MAX_3D_TEXTURE_SIZE"])
        n = max(1, int(budget_bytes) // self.slot_bytes)
        self.slots_xyz = atlas_layout(n, self.edge, max_tex)
        sx, sy, sz = self.slots_xyz
        if sx * sy * sz > MAX_SLOTS:  # the page tree's leaf words hold 24-bit slots
            sz = MAX_SLOTS // (sx * sy)
            self.slots_xyz = (sx, sy, sz)
        self.table = SlotTable(sx * sy * sz, key_space)
        # Value range of each slot image (border included: samples near a face read it),
        # data units; for empty-space skipping against the transfer function.
        self.slot_min = np.full(self.table.n_slots, np.inf)
        self.slot_max = np.full(self.table.n_slots, -np.inf)
        self.max_uploads = int(max_uploads)
        self.texture = ctx.texture3d(
            (sx * self.edge, sy * self.edge, sz * self.edge), 1, dtype=tex_dtype
        )
        import moderngl  # the one GL import of this module (the table works without it)

        # Integer textures cannot be filtered (and labels must not be).
        f = moderngl.NEAREST if self.labels else moderngl.LINEAR
        self.texture.filter = (f, f)
        self.texture.repeat_x = self.texture.repeat_y = self.texture.repeat_z = False
        self.uploads = 0
        self._staging = [ctx.buffer(reserve=self.slot_bytes) for _ in range(staging_buffers)]

    @property
    def n_slots(self) -> int:
        return self.table.n_slots

    @property
    def nbytes(self) -> int:
        """Texture memory of the atlas."""
        return self.n_slots * self.slot_bytes

    @property
    def texels(self) -> tuple[int, int, int]:
        """Texture size (x, y, z)."""
        return tuple(int(s) * self.edge for s in self.slots_xyz)  # type: ignore[return-value]

    def slot_origin(self, slot: int) -> tuple[int, int, int]:
        """Texel (x, y, z) of a slot's first texel."""
        sx, sy, _ = self.slots_xyz
        return (
            (slot % sx) * self.edge,
            ((slot // sx) % sy) * self.edge,
            (slot // (sx * sy)) * self.edge,
        )

    def write(self, slot: int, image: npt.NDArray[np.generic]) -> None:
        """Write a ``(B + 2)³`` slot image (z, y, x) into ``slot``."""
        if image.shape != (self.edge,) * 3:
            raise ParameterError(f"slot image must be {(self.edge,) * 3}, got {image.shape}")
        if self.labels and image.dtype.itemsize > 4:
            image = (np.asarray(image).astype(np.uint64) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        data = np.ascontiguousarray(image, dtype=self.dtype)
        x, y, z = self.slot_origin(int(slot))
        box = (x, y, z, self.edge, self.edge, self.edge)
        if self._staging:
            pbo = self._staging[self.uploads % len(self._staging)]
            pbo.orphan(self.slot_bytes)
            pbo.write(data)
            self.texture.write(pbo, viewport=box, alignment=1)
        else:
            self.texture.write(data, viewport=box, alignment=1)
        self.slot_min[slot] = float(data.min())
        self.slot_max[slot] = float(data.max())
        self.uploads += 1

    def transparent_slots(
        self,
        tf: TransferFunction | LabelStyle,
        ranges: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None,
    ) -> npt.NDArray[np.bool_]:
        """Slots (n_slots,) whose every value has zero opacity under ``tf``.

        For labels: slots holding only background (id 0). ``ranges``: the slots'
        ``(slot_min, slot_max)`` to use instead of the current ones (a snapshot taken
        for a page tree built on another thread).

        A slot's values lie in ``[slot_min, slot_max]``; the shader reads the table with
        linear filtering, so the entries that range can touch are from
        ``floor(u_min N - 0.5)`` to ``ceil(u_max N - 0.5)``. Composite rays may skip such
        bricks (they add nothing); maximum/minimum projections may not.
        """
        smin, smax = (self.slot_min, self.slot_max) if ranges is None else ranges
        if isinstance(tf, LabelStyle):
            return np.asarray((smax <= 0) & np.isfinite(smin))
        lo, hi = tf.contrast_limits
        n = len(tf.table)
        rmax = _range_max(tf)
        with np.errstate(invalid="ignore"):
            u0 = np.clip((smin - lo) / (hi - lo), 0.0, 1.0) * n - 0.5
            u1 = np.clip((smax - lo) / (hi - lo), 0.0, 1.0) * n - 0.5
        i0 = np.clip(np.floor(np.nan_to_num(u0)), 0, n - 1).astype(np.int64)
        i1 = np.clip(np.ceil(np.nan_to_num(u1)), 0, n - 1).astype(np.int64)
        out = rmax[i0, np.maximum(i0, i1)] <= 0.0
        out &= np.isfinite(smin)
        return np.asarray(out)

    def upload(
        self,
        keys: npt.ArrayLike,
        fetch: Callable[[int], npt.NDArray[np.generic] | None],
        limit: int | None = None,
        time_budget_s: float | None = None,
    ) -> I64:
        """Bring the first missing ``keys`` (most wanted first) into the atlas, never more
        than ``limit`` (default ``max_uploads``) per call, and no new one once
        ``time_budget_s`` has passed (at least one is always written).

        Resident keys among ``keys`` are touched (protected this frame) first; new ones
        take free or least recently used slots. ``fetch(key)`` returns the slot image
        (``(B + 2)³``), or None when the brick is no longer available (skipped).

        Returns
        -------
        (U,) int64
            The keys uploaded.
        """
        k = np.asarray(keys, dtype=np.int64).reshape(-1)
        slots = self.table.lookup(k)
        self.table.touch(slots)
        missing = k[slots < 0]
        n = self.max_uploads if limit is None else int(limit)
        missing = missing[:n]
        if not len(missing):
            return missing
        got = self.table.allocate(missing)
        done: list[int] = []
        deadline = None if time_budget_s is None else time.perf_counter() + time_budget_s
        for i, (key, slot) in enumerate(zip(missing.tolist(), got.tolist(), strict=True)):
            if slot < 0:
                break  # every slot is in use this frame
            if deadline is not None and done and time.perf_counter() > deadline:
                # Out of time: give the slots allocated for the rest back.
                rest = got[i:]
                rest = rest[rest >= 0]
                self.table.evict(self.table.keys.take(rest))
                break
            image = fetch(key)
            if image is None:
                self.table.evict([key])
                continue
            self.write(slot, image)
            done.append(key)
        return np.asarray(done, dtype=np.int64)

    def read_slot(self, slot: int) -> npt.NDArray[np.generic]:
        """Read a slot back (z, y, x) (tests; slow, synchronises with the GPU)."""
        x, y, z = self.slot_origin(int(slot))
        e = self.edge
        raw = self.texture.read(alignment=1)
        full = np.frombuffer(raw, dtype=self.dtype).reshape(self.texels[::-1])
        return full[z : z + e, y : y + e, x : x + e].copy()

    def release(self) -> None:
        self.texture.release()
        for buf in self._staging:
            buf.release()
        self._staging = []
