"""Editable label images in a project folder: a multiscale copy edited in place.

Layout inside the project folder (see ``docs/design/0003-label-edits.md``)::

    labels/<name>.zarr          the working copy: an OME-Zarr label multiscale (root group,
                                the source's NGFF version and chunks, every level), made from
                                the source's level 0 with the writer's stride pyramid
    labels/<name>.atoms/        one ``<id>.npz`` per edit: per touched level-0 chunk the
                                offset, mask, old and new values (the undo/redo data);
                                ``atoms.log`` while a session's atoms are durable only
                                there (:class:`_AtomLog`)
    labels/<name>.pending.json  while this session has chunk writes that may not be in the
                                files: where the files are complete and the writes since

An edit (:meth:`LabelEditStore.set`) is written in this order: the touched chunks of
level 0 and of every coarser level *in memory* (the store's decoded chunks: dirty until
written) while the atom is made durable in the atom log on a thread (from
:meth:`LabelEditStore.record`; ``set`` returns once it is durable), then the caller
journals the command (fsync) and only then acknowledges it. A background thread
(write-behind) puts the dirty chunks into zarr once they are quiet, each whole, as they
were between two edits; before it writes any chunk it replaces ``pending.json`` (fsync)
with the chain hash of the last write whose chunks are all in the files (``base``) and
the writes since (``writes``: atom id and direction, in order). Every read (:meth:`read`, the
layer's :attr:`source`) takes the dirty chunks from memory, so nobody sees a stale chunk.

On reopening, the journal is replayed without touching voxels
(:attr:`LabelEditStore.replaying`: the store notes the writes it asks for and their
chain hashes), then :meth:`recover`, when ``pending.json`` is there, finds ``base`` in
that chain, reverts (newest first) the listed writes the journal does not hold and
rewrites every journaled write after ``base`` in order (writing absolute values through
a mask is idempotent). :meth:`LabelEditStore.settle` (``Project.close``) and
:meth:`LabelEditStore.close` write everything and remove the file.

Coarser levels follow the writer's rule for labels (``level[k] = level[k-1][::2]``, see
:mod:`analysis.io._write`), so level ``k`` is level 0 sampled every ``f_k`` voxels: an
edit rewrites, per level, only the chunks holding a sample that changed.
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import hashlib
import io
import json
import logging
import math
import mmap
import os
import platform
import re
import shutil
import struct
import sys
import threading
import time
import uuid
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psutil
import zarr
import zarr.storage
from numcodecs import Zstd
from psygnal import Signal
from zarr.codecs import BytesCodec, ZstdCodec
from zarr.codecs.bytes import Endian
from zarr.core.metadata import ArrayV2Metadata, ArrayV3Metadata
from zarr.core.sync import sync as zarr_sync

from analysis.edits import LabelAtom, LabelChange, LabelIds, LabelPiece, constant_value
from analysis.errors import ChunkError, FormatError, LabelEditError, ParameterError
from analysis.io._format import format_for
from analysis.io._outputs import check_output, replacing
from analysis.io._project import read_json_file
from analysis.io._read import CheckedVolumeSource, ZarrVolumeSource, open_labels, open_volume
from analysis.io._validate import validate_ngff
from analysis.io._write import _multiscale, _write_pyramid, level_shapes
from analysis.volume import Region

__all__ = [
    "LABELS_DIR",
    "LabelEditStore",
    "MappedLabelSource",
    "create_label_copy",
    "export_label_copy",
    "label_copy_path",
    "read_id_table",
]

log = logging.getLogger(__name__)

LABELS_DIR = "labels"
_BLOCK_VOXELS = 2**21
#: Chunks read and written concurrently by one zarr call (bounds memory for big merges).
_BATCH_CHUNKS = 64
#: Atoms of at most this many voxels (their pieces' boxes) are packed by :meth:`record`'s
#: caller, bigger ones on the atom thread (a brush stamp's box: ~1 M).
_INLINE_ATOM_VOXELS = 2**22
#: Decoded chunks a working copy keeps in memory (all levels; least recently used go
#: first; chunks not yet written are kept whatever the budget, counted in it): by default
#: :data:`CACHE_RAM_FRACTION` of the machine's memory, within :data:`CACHE_MIN_BYTES` ..
#: :data:`CACHE_MAX_BYTES` (:func:`default_label_cache_bytes`). The minimum is twice the
#: bound of unwritten chunks (:data:`DIRTY_BYTES`): at 256 MiB a stroke's clean chunks
#: were evicted while the brush still met them and read again (2-6 ms a stamp). Stamps at
#: new places of a 1024³ image (4 GiB at level 0) that come back where earlier stamps
#: were decode what the cache let go: p95 13.5 ms at 512 MiB, 10.8 ms at 2 GiB
#: (``docs/benchmarks.md``). napari's chunk cache takes a quarter of the memory, as does
#: this project's brick cache.
CACHE_RAM_FRACTION = 1 / 8
CACHE_MIN_BYTES = 512 * 2**20
CACHE_MAX_BYTES = 4 * 2**30
#: At most this many bytes of spare chunk maps kept for reuse (:meth:`LabelEditStore._recycle`).
_SPARE_BYTES = 64 * 2**20
#: Spare maps the writer makes ready while it has nothing to write (a stroke's new chunks).
_SPARE_READY_BYTES = 32 * 2**20
#: References to an array the chunk cache let go, held by the cache's ``put`` and by
#: :meth:`LabelEditStore._recycle` (``sys.getrefcount`` counts its argument too): any
#: more and someone else holds it.
_EVICTED_REFS = 3
#: Atom files compress their masks and values (a stamp's ~4 MB of mostly equal values
#: shrinks to a few kB, so the atom's fsync is cheap); level 1: ~1 ms for 2 MB.
_ATOM_CODEC = Zstd(level=1)
#: (first voxel, mask, values (mask-shaped or one value (0-d); written where the mask is set))
_Update = tuple[tuple[int, int, int], npt.NDArray[np.bool_], npt.NDArray[Any]]
_ChunkKey = tuple[int, tuple[int, ...]]


def _check_editable(src: ZarrVolumeSource, what: str) -> None:
    if tuple(src.axes) != ("z", "y", "x"):
        raise LabelEditError(
            f"{what} has axes {''.join(src.axes)!r}; only (z, y, x) label images can be edited"
        )
    if not np.issubdtype(src.dtype, np.integer):
        raise LabelEditError(f"{what} holds {src.dtype} values, not integer labels")


def create_label_copy(image: str, name: str, out: str | os.PathLike[str]) -> Path:
    """Copy label image ``name`` of store ``image`` to ``out`` as an editable multiscale.

    Level 0 is copied block by block (bounded memory, local or remote sources); the
    coarser levels are rebuilt with the writer's stride rule, as many as the source has.
    The copy is complete before it takes its name.
    """
    src = open_labels(image, name)
    _check_editable(src, f"label image {name!r} of {image}")
    fmt = format_for(src.ngff_version)
    lev0 = src.levels[0]
    chunks = tuple(int(c) for c in lev0.chunks)
    shapes = level_shapes(lev0.shape, src.axes, chunks, len(src.levels))
    with replacing(out, overwrite=False) as tmp:
        group = zarr.create_group(store=zarr.storage.LocalStore(tmp), zarr_format=fmt.zarr_format)
        factors = _write_pyramid(group, src, fmt, shapes, chunks, "stride", False, "copy")
        ms = _multiscale(
            name,
            src.axes,
            ["micrometer"] * 3,
            list(lev0.scale),
            list(lev0.translation),
            factors,
            "stride",
        )
        label: dict[str, Any] = {}
        if src.label_colors:
            label["colors"] = [
                {"label-value": v, "rgba": list(c)} for v, c in src.label_colors.items()
            ]
        attrs = fmt.wrap({"multiscales": [ms], "image-label": label})
        validate_ngff(attrs, "image", fmt.version)
        validate_ngff(attrs, "label", fmt.version)
        group.attrs.update(attrs)
    log.info("copied label image %s of %s to %s", name, image, out)
    return Path(out)


class MappedLabelSource:
    """A label copy as every view reads it: each read applies the id mapping (merges and
    tables, ``docs/design/0005``), a vectorised lookup per read; levels, axes, dtype and
    every other attribute are the copy's own (the mapping is pointwise, so each level of
    the stride pyramid stays the sampling of level 0)."""

    def __init__(self, source: ZarrVolumeSource, ids: LabelIds) -> None:
        self.raw = source
        self.ids = ids

    @property
    def name(self) -> str:
        return self.raw.name

    @property
    def axes(self) -> tuple[str, ...]:
        return self.raw.axes

    @property
    def dtype(self) -> np.dtype[np.generic]:
        return self.raw.dtype

    @property
    def levels(self) -> tuple[Any, ...]:
        return self.raw.levels

    def read(self, level: int, region: tuple[slice, ...] | None = None) -> npt.NDArray[Any]:
        return self.ids.show(self.raw.read(level, region))

    def read_many(self, requests: Any) -> list[npt.NDArray[np.generic] | ChunkError]:
        return [
            g if isinstance(g, ChunkError) else self.ids.show(g)
            for g in self.raw.read_many(requests)
        ]

    def read_checked(
        self, level: int, region: tuple[slice, ...] | None = None, *, allow_missing: bool = False
    ) -> tuple[npt.NDArray[Any], list[ChunkError]]:
        data, bad = self.raw.read_checked(level, region, allow_missing=allow_missing)
        return self.ids.show(data), bad

    def read_level(
        self, level: int, *, allow_missing: bool = False
    ) -> tuple[npt.NDArray[Any], list[ChunkError]]:
        return self.read_checked(level, None, allow_missing=allow_missing)

    def checked(self, unreadable: list[ChunkError] | None = None) -> CheckedVolumeSource:
        return CheckedVolumeSource(self, unreadable)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)

    def __repr__(self) -> str:
        return f"MappedLabelSource({self.raw!r}, {len(self.ids)} ids remapped)"


def export_label_copy(
    copy: str | os.PathLike[str],
    out: str | os.PathLike[str],
    inputs: list[str],
    overwrite: bool = False,
    ids: LabelIds | None = None,
) -> Path:
    """Write the edited label image (every level, the source's NGFF version) to ``out``.

    ``ids``: the copy's id mapping (``LabelEditStore.ids``), applied to every voxel of
    every level of the export (merges made permanent); the copy itself is not changed.
    """
    dest = check_output(out, [str(copy), *inputs])
    with replacing(dest, overwrite=overwrite) as tmp:
        shutil.copytree(copy, tmp)
        if ids is not None and len(ids):
            _apply_mapping(Path(tmp), ids)
    return dest


def _apply_mapping(root: Path, ids: LabelIds) -> None:
    """Rewrite every level of the label multiscale at ``root`` with the id mapping, block
    by block (chunk-aligned, bounded memory); blocks the mapping does not change are
    not written."""
    src = open_volume(root)
    group = zarr.open_group(zarr.storage.LocalStore(root), mode="r+")
    for lv in src.levels:
        arr = group[lv.path]
        assert isinstance(arr, zarr.Array)
        shape = tuple(int(s) for s in arr.shape)
        for box in _blocks(shape, tuple(int(v) for v in arr.chunks)):
            data = np.asarray(arr[box])
            shown = ids.show(data)
            if shown is not data and not np.array_equal(shown, data):
                arr[box] = shown


def _blocks(shape: tuple[int, ...], chunks: tuple[int, ...]) -> Iterator[tuple[slice, ...]]:
    """Chunk-aligned (z, y, x) regions covering ``shape``: whole chunks, rows of chunks
    along x then y while a block stays within ``_BLOCK_VOXELS``."""
    c = list(chunks)
    while c[2] < shape[2] and math.prod(c) * 2 <= _BLOCK_VOXELS:
        c[2] *= 2
    while c[1] < shape[1] and math.prod(c) * 2 <= _BLOCK_VOXELS:
        c[1] *= 2
    for z in range(0, shape[0], c[0]):
        for y in range(0, shape[1], c[1]):
            for x in range(0, shape[2], c[2]):
                yield (
                    slice(z, min(z + c[0], shape[0])),
                    slice(y, min(y + c[1], shape[1])),
                    slice(x, min(x + c[2], shape[2])),
                )


def read_id_table(path: str | os.PathLike[str]) -> list[list[int]]:
    """An ``old,new`` CSV (header row with those names; extra columns ignored)."""
    import pandas as pd

    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(2, "No such file or directory", str(p))
    try:
        df = pd.read_csv(p)
    except (ValueError, pd.errors.ParserError) as exc:
        raise FormatError(f"{p} is not a CSV table: {exc}") from exc
    cols = {str(c).strip().lower(): c for c in df.columns}
    if "old" not in cols or "new" not in cols:
        raise FormatError(f"{p} needs columns 'old' and 'new', found {list(df.columns)}")
    sub = df[[cols["old"], cols["new"]]]
    if sub.isna().any().any():
        raise FormatError(f"{p} has empty cells in 'old' or 'new'")
    values = sub.to_numpy()
    if not np.issubdtype(values.dtype, np.integer):
        raise FormatError(f"{p}: 'old' and 'new' must be integer ids")
    if (values < 0).any():
        raise FormatError(f"{p}: ids must not be negative")
    return [[int(a), int(b)] for a, b in values]


def _level_factors(shapes: list[tuple[int, ...]]) -> list[tuple[int, int, int]]:
    out = [(1, 1, 1)]
    for prev, cur in zip(shapes, shapes[1:], strict=False):
        step = [2 if p != c else 1 for p, c in zip(prev, cur, strict=True)]
        f = out[-1]
        out.append((f[0] * step[0], f[1] * step[1], f[2] * step[2]))
    return out


class LabelEditStore:
    """The project's working copy of one label image (an :class:`analysis.edits.EditableLabels`).

    Parameters
    ----------
    root : path of ``labels/<name>.zarr`` in the project
    name : the label image name
    fsync : bool, default: True
        fsync atom files and the ``pending.json`` file (the journal's own fsync is separate).
    cache_bytes : int, optional
        Clean decoded chunks kept in memory (0: none; default:
        :func:`default_label_cache_bytes`). Dirty chunks (written by an edit,
        not yet in zarr) and those being written are always kept, whatever the budget:
        they are what readers get for those chunks. An edit reads its chunks once
        (``read`` then ``set`` hit the cache) and a stroke's stamps reuse them.

    Attributes
    ----------
    replaying : bool
        While True, :meth:`set` only records which atoms are applied (journal replay).
    write_error : BaseException or None
        The last error of the background writer (a full disk): its chunks stay dirty
        (in memory, read from there) and it tries again; None once a write succeeded.

    Events
    ------
    changed(LabelChange)
        After an atom was written (apply, undo, redo, recovery): the ids whose voxels
        changed and the chunk regions rewritten at every level. Emitted on the thread
        that wrote, before the history journals the command (views only mark dirty;
        they read the chunks from memory until the writer put them into zarr).
    written(int)
        From the writer thread: every write up to :attr:`n_writes` = this value is in
        zarr (benchmarks, tests).
    """

    changed = Signal(object)
    written = Signal(int)

    def __init__(
        self,
        root: str | os.PathLike[str],
        name: str,
        fsync: bool = True,
        cache_bytes: int | None = None,
    ) -> None:
        self.root = Path(root)
        self._name = name
        self._fsync = fsync
        self.atoms_dir = self.root.with_name(f"{name}.atoms")
        self.intent_path = self.root.with_name(f"{name}.intent.json")
        self.pending_path = self.root.with_name(f"{name}.pending.json")
        group = zarr.open_group(zarr.storage.LocalStore(self.root), mode="r+")
        #: The copy as stored (raw ids: the fragments a merge left as they were); its
        #: reads take the chunks not yet written to zarr from this store's memory.
        self.raw_source: ZarrVolumeSource = _CachedSource(
            zarr.open_group(zarr.storage.LocalStore(self.root), mode="r"), str(self.root), self
        )
        _check_editable(self.raw_source, f"label copy {self.root}")
        #: The id mapping and the voxel counts (``docs/design/0005``).
        self.ids = LabelIds()
        self.ids.remapped.connect(self._announce_remap)
        #: What views draw: every read shows the id mapping applied.
        self.source = MappedLabelSource(self.raw_source, self.ids)
        self._arrays: list[zarr.Array[Any]] = []
        for lv in self.raw_source.levels:
            node = group[lv.path]
            if not isinstance(node, zarr.Array):
                raise FormatError(f"{self.root}/{lv.path} is not an array")
            self._arrays.append(node)
        # Writes of chunks that hold a label skip zarr's check for chunks equal to the fill
        # value (``write_empty_chunks``: ``np.array_equal`` against the scalar, ~5 ms per
        # 1 MiB chunk); all-background chunks go through the plain array, which deletes
        # them as before.
        self._writers = [a.with_config({"write_empty_chunks": True}) for a in self._arrays]
        #: Per level: the encoder of one whole chunk when the writer puts chunks straight
        #: into their files (the copy's own formats, :func:`_chunk_encoder`), else None.
        self._encoders = [_chunk_encoder(a) for a in self._arrays]
        self._decoders = [_chunk_decoder(a) for a in self._arrays]
        self._shapes = [tuple(int(s) for s in lv.shape) for lv in self.raw_source.levels]
        self._factors = _level_factors(self._shapes)
        self._chunks = [tuple(int(c) for c in a.chunks) for a in self._arrays]
        self._chunk_bytes = [math.prod(c) * self.dtype.itemsize for c in self._chunks]
        #: Per level: the folder its chunk keys are relative to.
        self._dirs = [os.path.join(self.root, a.path) for a in self._arrays]
        #: Per level: whether a chunk's file is found by its key (not sharded), fill value.
        self._sparse = [getattr(a, "shards", None) is None for a in self._arrays]
        self._fill = [a.fill_value if a.fill_value is not None else 0 for a in self._arrays]
        self._applied: dict[str, bool] = {}
        #: Held while chunks are read or changed in memory (views read while edits write).
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        #: Chunks changed in memory, not yet handed to the writer / being written by it;
        #: both are pinned in the cache (never evicted).
        #: Values: [live write number of the first write that dirtied it, time of that,
        #: time of the last] (monotonic seconds).
        self._dirty: dict[_ChunkKey, list[Any]] = {}
        self._inflight: dict[_ChunkKey, list[Any]] = {}
        #: In-flight chunks whose array the writer still reads: an edit copies them first.
        self._frozen: set[_ChunkKey] = set()
        budget = default_label_cache_bytes() if cache_bytes is None else int(cache_bytes)
        self._cache = _ChunkCache(budget, self._pinned, self._recycle)
        #: By size: memory maps of chunks made as fill value that the cache let go, every
        #: page in memory, nothing else referring to them (:meth:`_recycle`). A new chunk
        #: of fill value takes one, cleared (~0.02 ms per MiB), rather than a fresh map
        #: (a page fault per 4 KiB it writes, then an unmap when the cache lets it go:
        #: ~0.45 ms per MiB; a stamp into new space makes ~20 chunks and lets ~20 go).
        self._spare: dict[int, list[mmap.mmap]] = {}
        #: Spare maps not cleared yet (the writer thread clears them between its writes).
        self._spare_unclear: dict[int, list[mmap.mmap]] = {}
        #: Chunks made as fill value (no file) that no edit has written yet: a brush reads
        #: them as the fill value without touching their memory (:meth:`read_parts`).
        self._untouched: set[_ChunkKey] = set()
        #: Chunks made as fill value, each a memory map of its own, whose pages the writer
        #: has not asked for yet (:func:`_populate`).
        self._lazy: set[_ChunkKey] = set()
        #: Brush templates and their packed bits, by id (:meth:`_packed_footprint`).
        self._footprints: dict[int, tuple[npt.NDArray[np.bool_], npt.NDArray[np.uint8]]] = {}
        #: Per level, the encoded bytes of a chunk of fill value only.
        self._fill_blobs: dict[int, bytes] = {}
        #: The atom log of this session's atoms (made at the first; used on the atom thread).
        self._atom_log: _AtomLog | None = None
        #: Incremented (under the lock) each time the writer finished putting chunks into zarr.
        self._generation = 0
        #: Chain hash of every write asked of this store (replayed and live), in order.
        self._chain = _CHAIN_SEED
        #: During replay: (atom, forward, chain hash after it) per write the journal asks for.
        self._replayed: list[tuple[str, bool, bytes]] = []
        #: Live writes since ``_log_base`` (chain hash before the first): the last ones and
        #: all those whose chunks are not all in zarr yet; ``_log_done`` of them are.
        self._log: list[tuple[str, bool, bytes]] = []
        self._log_base = _CHAIN_SEED
        self._log_done = 0
        #: The live write number of the log's first entry; a write in progress in set().
        self._log_start = 0
        self._in_set = False
        #: Writes asked of this store since it was opened (live); ``_n_written`` are in zarr.
        self.n_writes = 0
        self._n_written = 0
        self._pending_ours = False
        self._flush_mutex = threading.Lock()
        self._writer: threading.Thread | None = None
        #: Atom files being written by the atom thread (:meth:`record`), and whether a
        #: write into memory waits for its atom (no snapshot meanwhile).
        self._atom_io: ThreadPoolExecutor | None = None
        self._atoms_pending: dict[str, Future[None]] = {}
        self._busy = False
        #: The region a hovering brush is about to stamp (:meth:`prefetch`), and the
        #: thread that decodes its chunks (made at the first).
        self._prefetch_want: tuple[tuple[slice, ...], threading.Event] | None = None
        self._prefetch_last: tuple[tuple[slice, ...], threading.Event] | None = None
        self._prefetch_wake = threading.Condition(self._lock)
        self._prefetcher: threading.Thread | None = None
        self._closed = False
        self.write_error: BaseException | None = None
        self.replaying = False
        _OPEN.add(self)
        _keep_freed_memory()
        if "pandas" not in sys.modules:
            # The changed ids of an edit are found with pandas (:func:`_distinct`); its
            # import (~0.25 s) is done now, in the background, not in the first stamp.
            threading.Thread(target=_import_pandas, name="labels-import", daemon=True).start()

    # -- EditableLabels ------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def shape(self) -> tuple[int, int, int]:
        s = self._shapes[0]
        return (s[0], s[1], s[2])

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(self._arrays[0].dtype)

    @property
    def chunks(self) -> tuple[int, int, int]:
        c = self._chunks[0]
        return (c[0], c[1], c[2])

    @property
    def scale_um(self) -> tuple[float, float, float]:
        return self.raw_source.levels[0].scale_um

    @property
    def n_levels(self) -> int:
        return len(self._arrays)

    def read(self, region: tuple[slice, ...], level: int = 0) -> npt.NDArray[Any]:
        """A copy of ``region`` of level ``level`` as the edits left it, assembled from the
        decoded chunks (cached, or read in one zarr trip and cached); regions of more than
        ``_BATCH_CHUNKS`` chunks (block scans) are read through zarr with the chunks not
        yet written taken from memory."""
        shape = self._shapes[level]
        if len(region) != 3 or not all(isinstance(r, (slice, int, np.integer)) for r in region):
            raise ParameterError(f"a label region is three slices or indices, not {region!r}")
        if not all(isinstance(r, slice) for r in region):
            ints = [
                None if isinstance(r, slice) else int(r) % n
                for r, n in zip(region, shape, strict=True)
            ]
            sl = tuple(
                r if i is None else slice(i, i + 1) for r, i in zip(region, ints, strict=True)
            )
            return self.read(sl, level)[tuple(slice(None) if i is None else 0 for i in ints)]
        box = [r.indices(n) for r, n in zip(region, shape, strict=True)]
        if any(step != 1 for _, _, step in box):
            full = tuple(slice(a, max(a, b)) for a, b, _ in box)
            sub = tuple(slice(None, None, step) for _, _, step in box)
            return self.read(full, level)[sub]
        lo = [a for a, _, _ in box]
        hi = [max(a, b) for a, b, _ in box]
        ck = self._chunks[level]
        ranges = [range(a // c, -(-b // c)) for a, b, c in zip(lo, hi, ck, strict=True)]
        reg = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        if math.prod(len(r) for r in ranges) > _BATCH_CHUNKS:
            return self._read_through(level, reg, lambda: np.asarray(self._arrays[level][reg]))
        out = np.empty([b - a for a, b in zip(lo, hi, strict=True)], dtype=self.dtype)
        keys: list[_ChunkKey] = [
            (level, (z, y, x)) for z in ranges[0] for y in ranges[1] for x in ranges[2]
        ]
        fill = np.asarray(self._fill[level], dtype=self.dtype)
        with self._lock:
            got = self._fetch(keys)
            for key, data in zip(keys, got, strict=True):
                # A chunk made as fill value that no edit wrote: its memory is not read
                # (the kernel gives its pages only when an edit writes them).
                src = np.broadcast_to(fill, data.shape) if key in self._untouched else data
                self._copy_chunk(level, key[1], src, reg, out)
        return out

    def read_parts(
        self, region: tuple[slice, ...]
    ) -> list[tuple[tuple[int, int, int], npt.NDArray[Any]]]:
        """Level 0 at ``region`` (slices, step 1, inside the image) by chunk, with no copy:
        per level-0 chunk it meets, the first voxel of the part and a read-only view of
        the decoded chunk there (read, or made as fill value, like :meth:`read`). A view
        shows the chunk as it is: the next edit of it shows through, so a caller copies
        what it keeps (a brush computes its change from them at once: no 4 MB box copy
        per stamp). Regions of more than ``_BATCH_CHUNKS`` chunks come from :meth:`read`
        as one part."""
        lo = [int(r.start) for r in region]
        hi = [int(r.stop) for r in region]
        ck = self._chunks[0]
        ranges = [range(a // c, -(-b // c)) for a, b, c in zip(lo, hi, ck, strict=True)]
        if math.prod(len(r) for r in ranges) > _BATCH_CHUNKS:
            return [((lo[0], lo[1], lo[2]), self.read(tuple(region)))]
        keys: list[_ChunkKey] = [
            (0, (z, y, x)) for z in ranges[0] for y in ranges[1] for x in ranges[2]
        ]
        out = []
        with self._lock:
            got = self._fetch(keys)
            fresh = [key in self._untouched for key in keys]
        fill = np.asarray(self._fill[0], dtype=self.dtype)
        for (_, coords), data, new in zip(keys, got, fresh, strict=True):
            first = [max(j * c, a) for j, c, a in zip(coords, ck, lo, strict=True)]
            src = tuple(
                slice(f - j * c, min(j * c + c, b) - j * c)
                for f, j, c, b in zip(first, coords, ck, hi, strict=True)
            )
            if new:  # all fill value: no read of memory the kernel has not mapped yet
                view = np.broadcast_to(fill, tuple(s.stop - s.start for s in src))
            else:
                view = data[src]
                view.flags.writeable = False
            out.append(((first[0], first[1], first[2]), view))
        return out

    def prefetch(self, region: tuple[slice, ...]) -> threading.Event:
        """Decode, in the background, the chunks of every level that an edit of level-0
        ``region`` reads and has to decode (those with a file, not in memory), into the
        cache: a brush hovering there (the desktop's brush circle, the headset's ball at
        the hand) is about to stamp, and a stamp that finds its chunks decoded does not
        wait ~0.25 ms for each (10-25 of them where objects are). Returns at once; a newer
        region replaces one not done yet. A chunk that an edit or the writer changed
        meanwhile is never put in (the decoded file would be stale). The event returned
        is set once the thread is done with ``region`` (decoded, or given up for a newer
        one)."""
        want = tuple(
            slice(max(0, int(r.start)), min(n, int(r.stop)))
            for r, n in zip(region, self.shape, strict=True)
        )
        done = threading.Event()
        if any(r.start >= r.stop for r in want):
            done.set()
            return done
        with self._lock:
            if self._closed:
                done.set()
                return done
            last = self._prefetch_last
            if last is not None and last[0] == want and not last[1].is_set():
                return last[1]  # the brush has not moved: the same work goes on
            if self._prefetch_want is not None:
                self._prefetch_want[1].set()  # replaced before it was begun
            self._prefetch_want = self._prefetch_last = (want, done)
            if self._prefetcher is None:
                self._prefetcher = self._thread(_prefetch_loop, "prefetch")
            self._prefetch_wake.notify_all()
        return done

    def _prefetch_region(self, region: tuple[slice, ...]) -> int:
        """:meth:`prefetch`'s work (on its thread): how many chunks it put in the cache."""
        keys: list[_ChunkKey] = []
        for k, (f, ck, shape) in enumerate(
            zip(self._factors, self._chunks, self._shapes, strict=True)
        ):
            # The level's samples in the region (superset: from the sample at or before
            # its start), by chunk.
            ranges = [
                range((r.start // fi) // c, -(-min(-(-r.stop // fi), n) // c))
                for r, fi, c, n in zip(region, f, ck, shape, strict=True)
            ]
            keys += [(k, (z, y, x)) for z in ranges[0] for y in ranges[1] for x in ranges[2]]
        done = 0
        for key in keys:
            k, coords = key
            with self._lock:
                if self._closed or self._prefetch_want is not None:
                    return done  # closed, or the brush moved on: its new place first
                if (
                    self._cache.get(key, touch=False) is not None
                    or not self._sparse[k]
                    or self._decoders[k] is None
                ):
                    continue
                gen = self._generation
            path = self._chunk_path(k, coords)
            if not os.path.exists(path):
                continue  # empty space: a stamp makes it as fill value at no cost
            with self._lock:
                out = self._decode_target(k)
            data = self._get_chunk(k, path, self._chunk_shape(k, coords), out)
            if data is None:
                continue  # left to zarr, whose errors the edit's read reports
            with self._lock:
                # Unchanged since the file was read: still not in memory (an edit would
                # have put it there), and no write of the writer finished (a chunk an
                # edit changed, written and let go meanwhile has a newer file).
                if (
                    not self._closed
                    and self._generation == gen
                    and self._cache.get(key, touch=False) is None
                ):
                    self._cache.put(key, data)
                    done += 1
        return done

    def _copy_chunk(
        self,
        level: int,
        coords: tuple[int, ...],
        data: npt.NDArray[Any],
        reg: tuple[slice, ...],
        out: npt.NDArray[Any],
    ) -> None:
        """Copy chunk ``coords`` (``data``) where it meets ``reg`` into ``out`` (``reg``'s)."""
        src = []
        dst = []
        for j, c, r in zip(coords, self._chunks[level], reg, strict=True):
            s0, s1 = max(j * c, r.start), min(j * c + c, r.stop)
            if s0 >= s1:
                return
            src.append(slice(s0 - j * c, s1 - j * c))
            dst.append(slice(s0 - r.start, s1 - r.start))
        out[tuple(dst)] = data[tuple(src)]

    def _read_through(self, level: int, reg: tuple[slice, ...], read: Any) -> npt.NDArray[Any]:
        """``read()`` (zarr at ``reg`` of ``level``) through :meth:`overlay_many`."""
        got: npt.NDArray[Any] = self.overlay_many([(level, reg)], lambda: [read()])[0]
        return got

    def overlay_many(
        self, regions: Sequence[tuple[int, tuple[slice, ...]]], read: Any
    ) -> list[Any]:
        """What the working copy holds at ``regions`` (level, region): ``read()`` (a read
        of the zarr files there, one result or :class:`ChunkError` per region) with the
        chunks not yet written taken from memory. When the writer finished a write
        meanwhile (the files changed under the read) it is read again; the third time
        with the lock held."""
        for attempt in range(3):
            gen = self._generation
            if attempt == 2:
                with self._lock:
                    return self._overlay(regions, list(read()))
            got = list(read())
            with self._lock:
                if self._generation == gen:
                    return self._overlay(regions, got)
        raise AssertionError("unreachable")

    def _overlay(
        self, regions: Sequence[tuple[int, tuple[slice, ...]]], got: list[Any]
    ) -> list[Any]:
        """Zarr's reads ``got`` of ``regions`` with the pinned chunks copied over them.
        Call with the lock held."""
        pinned = set(self._dirty) | set(self._inflight)
        out = []
        for (level, reg), data in zip(regions, got, strict=True):
            if isinstance(data, ChunkError) or not pinned:
                out.append(data)
                continue
            data = np.asarray(data)
            for key in pinned:
                if key[0] != level:
                    continue
                chunk = self._cache.get(key, touch=False)
                if chunk is None:  # cannot happen: pinned chunks are never evicted
                    continue
                if not data.flags.writeable:
                    data = data.copy()
                self._copy_chunk(level, key[1], chunk, reg, data)
            out.append(data)
        return out

    def blocks(self) -> Iterator[tuple[slice, ...]]:
        """Chunk-aligned level-0 regions: whole chunks, rows of chunks when they are small."""
        return _blocks(self.shape, self.chunks)

    def max_id(self) -> int:
        """The largest id in use (raw ids holding voxels, the mapping's keys and values):
        counted once, then kept by every write; it goes down when an undo removes an id."""
        return self.ids.top(self)

    def record(self, atom: LabelAtom) -> str:
        """Keep ``atom`` as ``<id>.npz``, durably; return its id.

        The atom is made durable on the store's atom thread while the caller goes on (a
        command computes, records, then :meth:`set` writes the atom): :meth:`set` (and
        :meth:`load`) wait until it is, so the journal line, written after :meth:`set`
        returns, never names an atom that is not on disk, and the sync overlaps the
        writes into memory. Durable by the atom log first (:class:`_AtomLog`: one
        ``fdatasync`` of an overwrite in place, where a new file fsync'd, renamed and
        its folder fsync'd cost ~3x that, and its tail decided a stamp's p95), then as
        its own file, whose sync waits until the log is sealed (:meth:`settle`).

        A small atom (a brush stamp's) is packed here first: packed on the thread, its
        Python work (``np.savez``) took the GIL from the caller's writes, which then
        waited for the thread (~0.5 ms of a stamp's p95); a big one (a split, a fill) is
        packed on the thread, overlapping the writes."""
        atom_id = uuid.uuid4().hex
        self.atoms_dir.mkdir(exist_ok=True)
        small = sum(p.mask.size for p in atom.pieces) <= _INLINE_ATOM_VOXELS
        blob = self._pack_atom(atom) if small else None
        with self._lock:
            if self._atom_io is None:
                self._atom_io = ThreadPoolExecutor(
                    1, thread_name_prefix=f"labels-{self.name}-atoms"
                )
            self._atoms_pending[atom_id] = self._atom_io.submit(
                self._write_atom, atom_id, blob if blob is not None else atom
            )
        return atom_id

    def _write_atom(self, atom_id: str, atom: LabelAtom | bytes) -> None:
        """Make ``atom`` (packed, or packed here) durable in the atom log, then write
        ``<id>.npz`` (synced when the log is sealed). On the atom thread."""
        blob = atom if isinstance(atom, bytes) else self._pack_atom(atom)
        if self._atom_log is None:
            self.restore_atoms()  # a log no open restored (a crash): its atoms first
            self._atom_log = _AtomLog(self.atoms_dir / ATOM_LOG, self._fsync)
        self._atom_log.append(atom_id, blob)
        path = self.atoms_dir / f"{atom_id}.npz"
        _put_file(path, blob)
        self._atom_log.written.append(path)

    def restore_atoms(self) -> int:
        """Write, durably, the atom files an atom log left by a session that did not end
        (:class:`_AtomLog`) holds but the folder lacks or holds otherwise, then drop the
        log. For the project's writer only (a reader must not touch a live log). Returns
        how many files were written."""
        log_path = self.atoms_dir / ATOM_LOG
        if not log_path.is_file():
            return 0
        n = 0
        for atom_id, blob in _read_atom_log(log_path):
            path = self.atoms_dir / f"{atom_id}.npz"
            if path.is_file() and path.read_bytes() == blob:
                continue
            _put_file(path, blob, sync=self._fsync)
            n += 1
        if n:
            log.warning("label image %s: %d atom file(s) restored from the atom log", self.name, n)
            if self._fsync:
                _fsync_dir(self.atoms_dir)  # the restored files' names, before the log goes
        log_path.unlink()
        if self._fsync:
            _fsync_dir(self.atoms_dir)
        return n

    def _seal_atoms(self) -> None:
        """Every atom file durable on its own, the atom log dropped (waits for the atoms
        recorded so far: on the atom thread, after them)."""
        with self._lock:
            atom_io = self._atom_io
        if atom_io is None:
            return
        try:
            sealed = atom_io.submit(self._seal_atom_log)
        except RuntimeError:  # the interpreter is exiting: the thread ran its queue, stopped
            self._seal_atom_log()
            return
        sealed.result()

    def _seal_atom_log(self) -> None:
        # On the atom thread (where the first atom makes the log), after the atoms before.
        if self._atom_log is not None:
            self._atom_log.seal()

    def _pack_atom(self, atom: LabelAtom) -> bytes:
        """The bytes of ``atom``'s ``.npz`` file (what :meth:`load` reads)."""
        k = len(atom.pieces)
        dtype = self.dtype

        arrays: dict[str, npt.NDArray[Any]] = {
            "offsets": np.array([p.offset for p in atom.pieces], dtype=np.int64).reshape(k, 3),
            "shapes": np.array([p.mask.shape for p in atom.pieces], dtype=np.int64).reshape(k, 3),
            "codec": np.array("zstd"),
        }
        if atom.footprint is not None:  # the pieces' masks are this one mask, cut
            first, mask = atom.footprint
            arrays["footprint_offset"] = np.array(first, dtype=np.int64)
            arrays["footprint_shape"] = np.array(mask.shape, dtype=np.int64)
            arrays["footprint"] = self._packed_footprint(mask)
        elif k:
            bits = np.packbits(np.concatenate([p.mask.reshape(-1) for p in atom.pieces]))
            arrays["masks"] = np.frombuffer(_ATOM_CODEC.encode(bits), np.uint8)
        else:  # zstd cannot decode an empty frame
            arrays["masks"] = np.zeros(0, np.uint8)
        # One value for every voxel, kept as that value: a brush's new values, the old
        # ones where it painted chunks no edit had touched (empty space, seen without a
        # look at the values) or only background (a stroke's stamps after the first).
        for name in ("old", "new"):
            parts = [p.values(name == "new") for p in atom.pieces]
            one = [constant_value(v) for v in parts]
            if k and all(v is not None and v == one[0] for v in one):
                arrays[f"{name}_value"] = np.asarray(one[0], dtype=dtype)
                continue
            flat = np.concatenate(parts).astype(dtype, copy=False) if k else np.zeros(0, dtype)
            if flat.size and not np.any(flat != flat[0]):
                arrays[f"{name}_value"] = np.asarray(flat[0], dtype=dtype)
            elif flat.size:
                arrays[name] = np.frombuffer(_ATOM_CODEC.encode(flat), np.uint8)
            else:  # zstd cannot decode an empty frame
                arrays[name] = np.zeros(0, np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        return buf.getvalue()

    def _packed_footprint(self, mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint8]:
        """``mask`` packed for an atom file (bits, compressed). A brush's whole ball (a
        read-only view of its cached template) is packed once per template: a stroke's
        stamps into new space, and stamps at new places, share it (~1.5 ms a stamp)."""
        base = mask.base
        if not (
            isinstance(base, np.ndarray)
            and not base.flags.writeable
            and base.shape == mask.shape
            and base.strides == mask.strides
        ):
            base = None
        if base is not None:
            hit = self._footprints.get(id(base))
            if hit is not None and hit[0] is base:
                return hit[1]
        bits = np.packbits(np.ascontiguousarray(mask).reshape(-1))
        blob = np.frombuffer(_ATOM_CODEC.encode(bits), np.uint8)
        if base is not None:
            # The template is kept with its bits, so its id names it while cached.
            if len(self._footprints) >= 8:
                self._footprints.pop(next(iter(self._footprints)))
            self._footprints[id(base)] = (base, blob)
        return blob

    def _atom_durable(self, atom_id: str) -> None:
        """Wait until :meth:`record`'s file of ``atom_id`` is on disk (its error, if any)."""
        with self._lock:
            fut = self._atoms_pending.get(atom_id)
        if fut is None:
            return
        try:
            fut.result()
        finally:
            with self._lock:
                self._atoms_pending.pop(atom_id, None)

    def load(self, atom_id: str) -> LabelAtom:
        self._atom_durable(atom_id)
        path = self.atoms_dir / f"{atom_id}.npz"
        if not path.is_file():
            raise FormatError(f"the undo data of label edit {atom_id} is missing ({path})")
        with np.load(path) as z:
            coded = "codec" in z.files  # compressed (older atoms hold plain arrays)

            def array(name: str, dtype: np.dtype[Any]) -> npt.NDArray[Any]:
                return _unpack(z[name], dtype) if coded else np.asarray(z[name])

            offsets, shapes = z["offsets"], z["shapes"]
            boxes = [
                (tuple(int(o) for o in off), tuple(int(n) for n in shp))
                for off, shp in zip(offsets, shapes, strict=True)
            ]
            masks: list[npt.NDArray[np.bool_]] = []
            if "footprint" in z.files:  # one mask, cut by piece (see :meth:`_pack_atom`)
                fshape = tuple(int(n) for n in z["footprint_shape"])
                first = [int(o) for o in z["footprint_offset"]]
                bits = array("footprint", np.dtype(np.uint8))
                whole = np.unpackbits(bits, count=math.prod(fshape)).astype(bool)
                whole = whole.reshape(fshape)
                for off, shp in boxes:
                    at = tuple(
                        slice(o - f, o - f + n) for o, f, n in zip(off, first, shp, strict=True)
                    )
                    masks.append(np.ascontiguousarray(whole[at]))
            else:
                sizes = [math.prod(shp) for _, shp in boxes]
                flat = np.unpackbits(array("masks", np.dtype(np.uint8)), count=sum(sizes))
                ends = np.cumsum(sizes)
                for (_, shp), end, n in zip(boxes, ends, sizes, strict=True):
                    masks.append(flat[end - n : end].astype(bool).reshape(shp))
            counts = [int(np.count_nonzero(m)) for m in masks]
            # ``<name>_value``: one value for every voxel (see :meth:`_pack_atom`).
            old, new = (
                array(name, self.dtype)
                if name in z.files
                else np.broadcast_to(np.asarray(z[f"{name}_value"], self.dtype), (sum(counts),))
                for name in ("old", "new")
            )
        pieces = []
        vpos = 0
        for (off, _), m, c in zip(boxes, masks, counts, strict=True):
            pieces.append(
                LabelPiece((off[0], off[1], off[2]), m, old[vpos : vpos + c], new[vpos : vpos + c])
            )
            vpos += c
        return LabelAtom(tuple(pieces))

    def set(self, atom_id: str, forward: bool, atom: LabelAtom | None = None) -> None:
        """Write the atom's new (``forward``) or old values into every level: into the
        decoded chunks in memory at once (readers see them), into zarr by the writer
        thread soon after (:meth:`flush` waits for it)."""
        before = self._chain
        self._chain = _chain_hash(before, atom_id, forward)
        if self.replaying:
            self._applied[atom_id] = forward
            self._replayed.append((atom_id, forward, self._chain))
            return
        try:
            if atom is None:
                atom = self.load(atom_id)
            with self._lock:
                if self._closed:
                    raise LabelEditError(f"label image {self.name!r} is closed")
                if not self._pending_ours:
                    self._start_pending(before)
                entry = (atom_id, forward, self._chain)
                self._log.append(entry)
                self._in_set = True
        except BaseException:
            self._chain = before
            raise
        try:
            boxes = self._set_logged(atom_id, forward, atom, entry, before)
        finally:
            with self._lock:
                self._in_set = False
        self._applied[atom_id] = forward
        self.ids.applied(atom, forward)
        self._announce(atom, forward, boxes)
        over = self._dirty_bytes() - DIRTY_BYTES
        if over > 0:
            # More pinned than the bound (edits faster than the writer, or one big edit):
            # this edit writes the oldest dirty chunks, as many bytes as it is over, rather
            # than everything at once (that stalled one stamp in many for 0.3-0.6 s).
            self._flush_once(force=False, oldest=over)

    def _set_logged(
        self,
        atom_id: str,
        forward: bool,
        atom: LabelAtom,
        entry: tuple[str, bool, bytes],
        before: bytes,
    ) -> list[list[tuple[slice, ...]]]:
        """:meth:`set`'s write into memory, its log entry made: on failure, taken back."""
        overlap = atom_id in self._atoms_pending and len(atom.pieces) <= _BATCH_CHUNKS // 2
        try:
            if not overlap:
                self._atom_durable(atom_id)
            with self._lock:
                # Until the atom is durable, the writer takes no snapshot (it could put
                # the write into the files with no undo data to revert it after a crash).
                self._busy = overlap
            try:
                boxes = self._write(atom, forward)
                self._atom_durable(atom_id)
            finally:
                with self._lock:
                    self._busy = False
                    self._wake.notify_all()
        except BaseException:
            try:  # put back what the write changed in memory
                self._write(atom, not forward)
            except Exception:
                # Still listed in the log: pending.json makes the next open revert it.
                log.error("label image %s: a failed write could not be taken back", self.name)
                raise
            with self._lock:
                self._log.remove(entry)
            self._chain = before
            raise
        with self._lock:
            self.n_writes += 1
            self._wake.notify_all()
        return boxes

    def _announce(
        self, atom: LabelAtom, forward: bool, boxes: list[list[tuple[slice, ...]]]
    ) -> None:
        if not atom.pieces:
            return
        ids: set[int] = set()
        for p in atom.pieces:
            ids |= _distinct(p.old)
            ids |= _distinct(p.new)
        ids.discard(0)
        self.changed.emit(
            LabelChange(self.name, frozenset(ids), tuple(tuple(b) for b in boxes), forward)
        )

    def _announce_remap(self, before: frozenset[int], after: frozenset[int], forward: bool) -> None:
        """The id mapping changed (a merge or a table): no voxel written, no region."""
        empty: tuple[tuple[tuple[slice, ...], ...], ...] = tuple(() for _ in self._arrays)
        ids = frozenset((before | after) - {0})
        self.changed.emit(LabelChange(self.name, ids, empty, forward, before))

    def recover(self) -> None:
        """After a journal replay: make the files agree with the journal.

        When ``pending.json`` is there (the last session ended with chunk writes that may
        not be in the files): find its ``base`` in the chain of replayed writes (not
        found: from the first write), revert, newest first, its listed writes from the
        first one that is not the journal's write at that place (never journaled: a crash
        between the write and the journal line), then rewrite every journaled write from
        ``base`` on, in order. Reverting newest first gives each voxel the value it had
        before the first reverted write that touched it; rewriting in order gives each
        voxel a journaled write touched the last such write's value; other voxels hold
        what the files hold, which ``base`` says is complete. A ``.intent.json`` left by
        an older version (synchronous writes) is honoured as it was.
        """
        self.replaying = False
        self.restore_atoms()
        self.ids.forget_counts()  # the voxels may change below (or did, unjournaled)
        replayed, self._replayed = self._replayed, []
        if self.intent_path.is_file():
            intent = read_json_file(self.intent_path)
            atom_id = str(intent.get("atom", "")) if isinstance(intent, dict) else ""
            if (self.atoms_dir / f"{atom_id}.npz").is_file():
                state = self._applied.get(atom_id, False)
                log.info("label image %s: rewriting edit %s as %s", self.name, atom_id, state)
                atom = self.load(atom_id)
                self._announce(atom, state, self._write(atom, state))
        if self.pending_path.is_file():
            pending = read_json_file(self.pending_path)
            if not isinstance(pending, dict):
                raise FormatError(f"{self.pending_path} does not hold a JSON object")
            try:
                base = bytes.fromhex(str(pending.get("base", "")))
                writes = [(str(a), bool(f)) for a, f in pending.get("writes", [])]
            except (TypeError, ValueError) as exc:
                raise FormatError(f"{self.pending_path} is malformed: {exc}") from exc
            chain = [_CHAIN_SEED] + [h for _, _, h in replayed]
            start = chain.index(base) if base in chain else 0
            same = 0
            while (
                same < len(writes)
                and start + same < len(replayed)
                and writes[same] == replayed[start + same][:2]
            ):
                same += 1
            log.warning(
                "label image %s: the last session ended with chunk writes pending; reverting "
                "%d unjournaled write(s), rewriting %d journaled one(s)",
                self.name,
                len(writes) - same,
                len(replayed) - start,
            )
            for atom_id, forward in reversed(writes[same:]):
                if (self.atoms_dir / f"{atom_id}.npz").is_file():  # (repair moved strays aside)
                    atom = self.load(atom_id)
                    self._announce(atom, not forward, self._write(atom, not forward))
            for atom_id, forward, _ in replayed[start:]:
                atom = self.load(atom_id)
                self._announce(atom, forward, self._write(atom, forward))
        # The rewrites (and a repair's reverts) go to the files now; only then are the
        # recovery files dropped (a crash in between recovers again, idempotently).
        self._flush_all(record=False)
        for path in (self.pending_path, self.intent_path):
            if path.is_file():
                path.unlink()
                if self._fsync:
                    _fsync_dir(path.parent)
        self._log, self._log_base, self._log_done = [], self._chain, 0
        self._log_start = self.n_writes

    def discard_unjournaled(self, journal_text: bytes, aside_suffix: str) -> int:
        """After a journal repair: revert every edit whose atom the replayed journal does
        not name (made after the cut), newest first, and move their atom files aside to
        ``<name>.atoms.<aside_suffix>/``. Returns how many were reverted.

        Reverting, newest first, every atom made after a point gives each voxel the value
        it had before the first of them that touched it: the state at that point, whatever
        undos and redos came between. Creation order is where the atom's id first appears
        in ``journal_text`` (the damaged journal), then the file's time.
        """
        if not self.atoms_dir.is_dir():
            return 0
        self.restore_atoms()
        stray = [p for p in self.atoms_dir.glob("*.npz") if p.stem not in self._applied]
        if not stray:
            return 0

        def created(p: Path) -> tuple[int, int]:
            at = journal_text.find(p.stem.encode())
            return (at if at >= 0 else len(journal_text), p.stat().st_mtime_ns)

        stray.sort(key=created, reverse=True)
        self.ids.forget_counts()
        for p in stray:
            self._write(self.load(p.stem), False)
        aside = self.atoms_dir.with_name(f"{self.atoms_dir.name}.{aside_suffix}")
        aside.mkdir(exist_ok=True)
        for p in stray:
            os.replace(p, aside / p.name)
        log.warning(
            "label image %s: reverted %d edit(s) the repaired journal no longer holds "
            "(their undo data is kept in %s)",
            self.name,
            len(stray),
            aside,
        )
        return len(stray)

    # -- writing -------------------------------------------------------------------
    def _write(self, atom: LabelAtom, forward: bool) -> list[list[tuple[slice, ...]]]:
        """Write the atom's values into level 0 and the samples it changes of every level,
        in the decoded chunks in memory (marked dirty for the writer); the chunk regions
        written, per level."""
        updates: dict[_ChunkKey, list[_Update]] = {}

        def add(k: int, first: tuple[int, int, int], u: _Update) -> None:
            coords = tuple(j // c for j, c in zip(first, self._chunks[k], strict=True))
            updates.setdefault((k, coords), []).append(u)

        for piece in atom.pieces:
            vals = piece.values(forward)
            full = constant_value(vals)  # one value (a brush): written as a scalar
            if full is None:
                full = np.zeros(piece.mask.shape, dtype=self.dtype)
                full[piece.mask] = vals
            add(0, piece.offset, (piece.offset, piece.mask, full))
            for k in range(1, len(self._arrays)):
                f = self._factors[k]
                first = [-(-o // fi) for o, fi in zip(piece.offset, f, strict=True)]
                pos = tuple(
                    slice(j * fi - o, None, fi)
                    for j, fi, o in zip(first, f, piece.offset, strict=True)
                )
                sub_mask = piece.mask[pos]
                if not sub_mask.any():
                    break  # coarser samples are a subset of these
                at = (first[0], first[1], first[2])
                sub = full if full.ndim == 0 else full[pos]  # background outside the mask
                add(k, at, (at, sub_mask, sub))
        return self._write_chunks(updates)

    def _write_chunks(
        self, updates: dict[_ChunkKey, list[_Update]]
    ) -> list[list[tuple[slice, ...]]]:
        """Apply updates to the chunks they fall in (each read once, from the cache when
        there) and mark them dirty. Up to ``_BATCH_CHUNKS`` chunks, all are read before any
        is changed (a failed read leaves memory as it was) and the lock is held
        throughout (readers see the edit whole or not at all); larger edits (merges) go
        in rounds of ``_BATCH_CHUNKS``, flushing between rounds beyond
        :data:`DIRTY_BYTES` (memory). Call without the lock held."""
        written: list[list[tuple[slice, ...]]] = [[] for _ in self._arrays]
        items = sorted(updates.items())
        step = max(1, len(items) if len(items) <= _BATCH_CHUNKS else _BATCH_CHUNKS)
        for b in range(0, len(items), step):
            batch = items[b : b + step]
            with self._lock:
                keys = [key for key, _ in batch]
                datas = self._fetch(keys)
                for key, data, (_, us) in zip(keys, datas, batch, strict=True):
                    self._untouched.discard(key)
                    if key in self._frozen:  # the writer is reading this array: copy on write
                        data = data.copy()
                        self._frozen.discard(key)
                    region = self._chunk_region(*key)
                    for first, mask, vals in us:
                        local = tuple(
                            slice(j - r.start, j - r.start + n)
                            for j, r, n in zip(first, region, mask.shape, strict=True)
                        )
                        np.copyto(data[local], vals, where=mask)
                    now = time.monotonic()
                    d = self._dirty.get(key)
                    if d is None:
                        self._dirty[key] = [self._log_start + max(0, len(self._log) - 1), now, now]
                    else:
                        d[2] = now
                    self._cache.put(key, data)
                    written[key[0]].append(region)
            if step < len(items) and not self._busy and self._dirty_bytes() > DIRTY_BYTES:
                self.flush()  # a big edit: bound the memory its chunks pin
        return written

    def _fresh(self, k: int, shape: tuple[int, ...]) -> tuple[npt.NDArray[Any], bool]:
        """A chunk of level ``k`` holding its fill value: a spare map (cleared) where one
        fits, else :func:`_fresh_chunk`. Call with the lock held."""
        nbytes = math.prod(shape) * self.dtype.itemsize
        if self._fill[k] == 0:
            spare = self._spare.get(nbytes)
            if spare:
                return np.frombuffer(spare.pop(), dtype=self.dtype).reshape(shape), False
            spare = self._spare_unclear.get(nbytes)
            if spare:
                data = np.frombuffer(spare.pop(), dtype=self.dtype).reshape(shape)
                data.fill(0)
                return data, False
        return _fresh_chunk(shape, self.dtype, self._fill[k])

    def _clear_spares(self) -> None:
        """Clear the spare maps the cache let go (:meth:`_recycle`), so that an edit takes
        them ready; on the writer thread, between its writes."""
        while True:
            with self._lock:
                size = next((n for n, maps in self._spare_unclear.items() if maps), None)
                if size is None or self._closed:
                    return
                mm = self._spare_unclear[size].pop()
            np.frombuffer(mm, dtype=np.uint8).fill(0)
            with self._lock:
                self._spare.setdefault(size, []).append(mm)

    def _ready_spare(self) -> bool:
        """While the writer has nothing to write: make one spare map of a whole level-0
        chunk ready, its pages asked for at once (zero), up to :data:`_SPARE_READY_BYTES`
        of them, so that a stroke's first stamp into new space finds chunks with no page
        to fault in (it paid ~3 ms of faults for ~800 pages). False when there is none
        to make (enough are ready, or chunks of empty space are not memory maps here)."""
        nbytes = self._chunk_bytes[0]
        if self._fill[0] != 0 or nbytes < _MAP_MIN_BYTES or not _populate_supported():
            return False
        with self._lock:
            ready, unclear = self._spare_bytes()
            if self._closed or ready >= _SPARE_READY_BYTES or ready + unclear >= _SPARE_BYTES:
                return False
        mm = mmap.mmap(-1, nbytes)
        _populate(np.frombuffer(mm, dtype=np.uint8))
        with self._lock:
            self._spare.setdefault(nbytes, []).append(mm)
        return True

    def _spare_bytes(self) -> tuple[int, int]:
        """Bytes of spare maps: cleared, and not yet cleared. Call with the lock held."""
        ready = sum(n * len(maps) for n, maps in self._spare.items())
        return ready, sum(n * len(maps) for n, maps in self._spare_unclear.items())

    def _recycle(self, key: _ChunkKey, data: npt.NDArray[Any]) -> None:
        """The cache let ``data`` go: keep its memory map as a spare (:attr:`_spare`) when
        it is one of :func:`_fresh_chunk`'s, its pages all in memory (the writer asked
        for them) and nothing else refers to it. A view of the chunk (a reader's, the
        writer's snapshot) refers to the array under it, so such a chunk is never reused
        while anyone can still see it. Call with the lock held."""
        root = data.base  # np.frombuffer's array: its base is a memoryview of the map
        view = getattr(root, "base", None)
        if not isinstance(view, memoryview) or not isinstance(view.obj, mmap.mmap):
            return
        if len(view.obj) != data.nbytes:  # a decoded edge chunk: a cut of a whole one
            return
        # Only ``data`` refers to ``root`` (and the name here); ``data`` only the cache's
        # name and this call's (getrefcount counts its own argument too).
        if sys.getrefcount(root) != 3 or sys.getrefcount(data) != _EVICTED_REFS:
            return
        if key in self._lazy or self._closed:  # pages never asked for: nothing to save
            return
        if sum(self._spare_bytes()) + data.nbytes <= _SPARE_BYTES:
            # The writer clears it, after its pause (not now: mid-stamp, its clearing
            # took a CPU from the stamp).
            self._spare_unclear.setdefault(data.nbytes, []).append(view.obj)

    def _dirty_bytes(self) -> int:
        with self._lock:
            return sum(self._chunk_bytes[k] for k, _ in (*self._dirty, *self._inflight))

    def _pinned(self, key: _ChunkKey) -> bool:
        return key in self._dirty or key in self._inflight

    def _fetch(self, keys: list[_ChunkKey]) -> list[npt.NDArray[Any]]:
        """The decoded chunks ``keys`` (writable; the cached arrays themselves): from the
        cache, the others read in one zarr trip and cached. Call with the lock held."""
        got: list[npt.NDArray[Any] | None] = [self._cache.get(key) for key in keys]
        miss = [i for i, g in enumerate(got) if g is None]
        files: list[tuple[int, str, tuple[int, ...]]] = []
        for i in list(miss):
            # A chunk with no file is all fill value (a sparse label image: painting into
            # empty space); zarr would return the same, at ~1 ms of its machinery each.
            # Only unpinned chunks miss, and only the writer (pinned ones) writes files.
            k, coords = keys[i]
            if not self._sparse[k]:
                continue
            path = self._chunk_path(k, coords)
            shape = self._chunk_shape(k, coords)
            if os.path.exists(path):
                files.append((i, path, shape))
                continue
            data, mapped = self._fresh(k, shape)
            self._untouched.add(keys[i])
            if mapped:
                self._lazy.add(keys[i])
            self._cache.put(keys[i], data)
            got[i] = data
            miss.remove(i)
        # The copy's own formats are decoded here (as the writer encodes them: zarr's
        # machinery costs ~1-3 ms per chunk; decoding on two threads gained nothing
        # measurable); anything else, and any chunk that does not decode, is left to
        # zarr (its errors are the readers').
        for i, path, shape in files:
            decoded = self._get_chunk(keys[i][0], path, shape, self._decode_target(keys[i][0]))
            if decoded is not None:
                self._cache.put(keys[i], decoded)
                got[i] = decoded
                miss.remove(i)
        if miss:
            datas = _gather_read(
                [(self._arrays[keys[i][0]], self._chunk_region(*keys[i])) for i in miss]
            )
            for i, data in zip(miss, datas, strict=True):
                self._cache.put(keys[i], data)
                got[i] = data
        return [g for g in got if g is not None]

    # -- write-behind --------------------------------------------------------------
    def _start_pending(self, base: bytes) -> None:
        """Before this session's first write: ``pending.json`` saying the files are
        complete up to ``base`` (fsync'd: from now on an acknowledged write may exist
        only in memory, the atoms and the journal). Call with the lock held."""
        if self.pending_path.is_file():
            raise LabelEditError(
                f"label image {self.name!r}: {self.pending_path.name} says chunk writes of "
                "a session that ended abnormally are pending; open the project to recover"
            )
        self._log, self._log_base, self._log_done = [], base, 0
        self._log_start = self.n_writes
        self._write_pending()
        self._pending_ours = True
        if self._writer is None:
            self._writer = self._thread(_writer_loop, "writer")

    def _thread(
        self, loop: Callable[[weakref.ref[LabelEditStore]], None], what: str
    ) -> threading.Thread:
        """A daemon thread running ``loop`` on a weak reference to this store, started."""
        thread = threading.Thread(
            target=loop, args=(weakref.ref(self),), name=f"labels-{self.name}-{what}", daemon=True
        )
        thread.start()
        return thread

    def _pending_data(self) -> dict[str, Any]:
        """What ``pending.json`` says now (call with the lock held)."""
        return {"base": self._log_base.hex(), "writes": [[a, f] for a, f, _ in self._log]}

    def _write_pending(self, data: dict[str, Any] | None = None) -> None:
        """Replace ``pending.json`` with ``data`` (default: the log now, read with the
        lock held; atomic, fsync'd)."""
        if data is None:
            data = self._pending_data()
        path = self.pending_path
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
                fh.flush()
                if self._fsync:
                    os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if self._fsync:
            _fsync_dir(path.parent)

    def _flush_once(self, record: bool = True, force: bool = True, oldest: int = 0) -> int:
        """Put dirty chunks into zarr (one snapshot); how many (0: there were none to write).

        ``force``: every dirty chunk; else only the quiet ones (unchanged for
        :data:`QUIET_S`, or dirty for :data:`MAX_AGE_S`): the chunks under a moving brush
        are written once it has passed, not after every stamp (fewer writes, and no copy
        of a chunk the writer is reading when the next stamp changes it); at most
        ``_BATCH_CHUNKS`` of them, those dirty the longest first (the flush mutex is held
        while they are written: an edit that must write chunks waits for at most one
        batch). ``oldest``: instead, the chunks dirty the longest, that many bytes of them.

        Under the lock (between two edits): the chosen chunks go from the dirty to the
        in-flight set, their arrays are frozen (an edit copies one before changing it)
        and, with ``record``, ``pending.json`` is rewritten to list every write since its
        base (just after, without the lock). Then the chunks are written whole, without
        the lock, so each chunk file holds the copy as it was after some write of the
        log. Then the writes whose
        chunks are all in the files are done, and the log keeps only the last
        :data:`_RECENT_WRITES` of them (the base moves up).
        """
        with self._flush_mutex:
            with self._lock:
                while self._busy:
                    self._wake.wait()
                now = time.monotonic()
                by_age = sorted(self._dirty, key=lambda kk: self._dirty[kk][1])
                if oldest > 0:  # the longest dirty ones, ``oldest`` bytes of them
                    chosen = []
                    for key in by_age:
                        if oldest <= 0:
                            break
                        chosen.append(key)
                        oldest -= self._chunk_bytes[key[0]]
                else:  # at most a batch, oldest first: an edit never waits long for it
                    chosen = [
                        key
                        for key in by_age
                        if force
                        or now - self._dirty[key][2] >= QUIET_S
                        or now - self._dirty[key][1] >= MAX_AGE_S
                    ][:_BATCH_CHUNKS]
                keys = sorted(chosen)
                if not keys:
                    return 0
                snap = [(key, self._cache.get(key, touch=False)) for key in keys]
                lazy = self._lazy & set(keys)
                self._lazy -= lazy
                self._inflight = {key: self._dirty.pop(key) for key in keys}
                self._frozen = set(keys)
                pending = self._pending_data() if record and self._pending_ours else None
            if pending is not None:
                # Before any chunk of the snapshot is written; without the lock (an fsync:
                # the edits go on meanwhile, their chunks are not in this snapshot).
                try:
                    self._write_pending(pending)
                except BaseException:
                    with self._lock:
                        self._unflight()
                    raise
            try:
                jobs = []
                failed: OSError | None = None
                for (k, coords), data in snap:
                    assert data is not None  # pinned chunks are never evicted
                    if (k, coords) in lazy:
                        _populate(data)  # before reading it whole
                    if self._encoders[k] is not None:
                        try:
                            self._put_chunk(k, coords, data)
                        except OSError as exc:  # the others are still tried (as zarr does)
                            failed = failed or exc
                        continue
                    target = self._writers[k] if data.any() else self._arrays[k]
                    jobs.append((target, self._chunk_region(k, coords), data))
                for b in range(0, len(jobs), _BATCH_CHUNKS):
                    _gather_write(jobs[b : b + _BATCH_CHUNKS])
                if failed is not None:
                    raise failed
            except BaseException:
                with self._lock:
                    self._unflight()
                raise
            with self._lock:
                self._inflight, self._frozen = {}, set()
                self._generation += 1
                # A write is done when no chunk it dirtied is still waiting (nor is it
                # the write in progress).
                done = len(self._log) - (1 if self._in_set else 0)
                for since, _, _ in self._dirty.values():
                    done = min(done, since - self._log_start)
                self._log_done = max(self._log_done, done)
                drop = min(self._log_done, len(self._log) - _RECENT_WRITES)
                if drop > 0:
                    self._log_base = self._log[drop - 1][2]
                    del self._log[:drop]
                    self._log_done -= drop
                    self._log_start += drop
                n_done = self._log_start + self._log_done
                emit = n_done > self._n_written
                self._n_written = max(self._n_written, n_done)
                self._wake.notify_all()
            self.write_error = None
            if emit:
                self.written.emit(n_done)
            return len(keys)

    def _decode_target(self, k: int) -> npt.NDArray[Any]:
        """A whole chunk of level ``k`` to decode a file into: a spare map where one fits
        (its pages are in memory: a fresh 1 MiB took ~0.25 ms of page faults to write,
        half a decode), else uninitialised memory. Call with the lock held."""
        nbytes = self._chunk_bytes[k]
        for spares in (self._spare_unclear, self._spare):
            maps = spares.get(nbytes)
            if maps:
                return np.frombuffer(maps.pop(), dtype=self.dtype).reshape(self._chunks[k])
        return np.empty(self._chunks[k], dtype=self.dtype)

    def _get_chunk(
        self, k: int, path: str, shape: tuple[int, ...], out: npt.NDArray[Any] | None = None
    ) -> npt.NDArray[Any] | None:
        """Chunk file ``path`` of level ``k`` decoded into ``out`` (a whole chunk, or new
        memory; returned writable, cut to ``shape`` at the image's edge), or None when its
        level is not in one of the copy's own formats or the file does not decode to a
        whole chunk (zarr reads it then)."""
        decode = self._decoders[k]
        if decode is None:
            return None
        chunk = self._chunks[k]
        if out is None:
            out = np.empty(chunk, dtype=self.dtype)
        try:
            with open(path, "rb") as f:
                blob = f.read()
            decode(blob, out)
        except Exception:  # damaged, or not what we expect: zarr says what is wrong
            return None
        if shape != chunk:
            out = out[tuple(slice(0, n) for n in shape)]
        return out

    def _put_chunk(self, k: int, coords: tuple[int, ...], data: npt.NDArray[Any]) -> None:
        """Put one whole chunk of level ``k`` into its file, encoded as zarr would (its
        level's :func:`_chunk_encoder`; an edge chunk padded with the fill value); a chunk
        of fill value only has its file removed (zarr's ``write_empty_chunks=False``).
        Written to a temporary file and renamed over the chunk, as zarr's LocalStore does:
        a reader sees the old chunk or the new one. (zarr's own write of one chunk costs
        ~1-3 ms of CPU in its event loop and thread hand-offs; this ~0.4 ms, mostly zstd,
        which releases the GIL: the writer takes little from the edits meanwhile.)"""
        path = Path(self._chunk_path(k, coords))
        fill = self._fill[k]
        chunk = self._chunks[k]
        if data.shape != chunk:  # an edge chunk: zarr stores every chunk whole
            whole = np.full(chunk, fill, dtype=self.dtype)
            whole[tuple(slice(0, n) for n in data.shape)] = data
            data = whole
        encode = self._encoders[k]
        assert encode is not None
        blob = encode(np.ascontiguousarray(data))
        # All fill value exactly when its bytes are a fill chunk's (the encoding is
        # lossless and deterministic): no second pass over the chunk to find out.
        empty = self._fill_blobs.get(k)
        if empty is None:
            empty = self._fill_blobs[k] = bytes(encode(np.full(chunk, fill, dtype=self.dtype)))
        if len(blob) == len(empty) and bytes(blob) == empty:
            path.unlink(missing_ok=True)
            return
        _put_file(path, blob)

    def _unflight(self) -> None:
        """A snapshot failed: its chunks are dirty again (keeping the earliest write that
        dirtied each). Call with the lock held."""
        for key, (since, first, last) in self._inflight.items():
            d = self._dirty.get(key)
            if d is None:
                self._dirty[key] = [since, first, last]
            else:
                d[0], d[1] = min(d[0], since), min(d[1], first)
        self._inflight, self._frozen = {}, set()

    def _flush_all(self, record: bool = True) -> None:
        while self._flush_once(record):
            pass

    def flush(self) -> None:
        """Put every chunk changed in memory into zarr now (what a reader of the files in
        another process, an export or a close needs). Raises the write's error."""
        self._flush_all()

    @property
    def n_unwritten(self) -> int:
        """Chunks (all levels) changed in memory and not yet in zarr."""
        with self._lock:
            return len(set(self._dirty) | set(self._inflight))

    @staticmethod
    def flush_open(root: str | os.PathLike[str] | None = None) -> None:
        """Flush every open store of this process (or those of working copy ``root``)."""
        want = None if root is None else Path(root).resolve()
        for store in list(_OPEN):
            if want is None or store.root.resolve() == want:
                store.flush()

    def settle(self) -> None:
        """Write every pending chunk and drop ``pending.json``: the files are complete,
        the next open has nothing to recover. The store stays usable (its next write
        starts a new ``pending.json``). On a write error the file stays (the next open
        recovers) and the error is raised."""
        self._flush_all()
        self._seal_atoms()
        with self._lock:
            if self._pending_ours and not (self._dirty or self._inflight):
                self.pending_path.unlink(missing_ok=True)
                if self._fsync:
                    _fsync_dir(self.pending_path.parent)
                self._pending_ours = False

    def close(self) -> None:
        """:meth:`settle`, then stop the writer thread and refuse edits (idempotent)."""
        if self._closed:
            return
        self.settle()
        self._stop()

    def _stop(self) -> None:
        """Stop the writer and atom threads and refuse edits (what is unwritten stays so)."""
        with self._lock:
            self._closed = True
            self._wake.notify_all()
            self._prefetch_wake.notify_all()
            if self._prefetch_want is not None:
                self._prefetch_want[1].set()
                self._prefetch_want = None
            atom_io, self._atom_io = self._atom_io, None
            self._spare, self._spare_unclear = {}, {}
            # Its memory goes now, not whenever the store is collected (a cache of GBs
            # let go at a later collection stalled whatever ran then).
            self._cache.let_go_clean()
        if atom_io is not None:
            atom_io.shutdown(wait=True)
        _OPEN.discard(self)

    def _chunk_region(
        self, k: int, coords: tuple[int, ...], stop: tuple[int, ...] | None = None
    ) -> tuple[slice, ...]:
        """Level ``k``'s region of chunk ``coords`` (or of chunks ``coords`` .. ``stop``)."""
        end = stop if stop is not None else tuple(c + 1 for c in coords)
        return tuple(
            slice(c * n, min(e * n, s))
            for c, e, n, s in zip(coords, end, self._chunks[k], self._shapes[k], strict=True)
        )

    def _chunk_path(self, k: int, coords: tuple[int, ...]) -> str:
        """The file of chunk ``coords`` of level ``k`` (not sharded levels)."""
        return os.path.join(self._dirs[k], self._arrays[k].metadata.encode_chunk_key(coords))

    def _chunk_shape(self, k: int, coords: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of chunk ``coords`` of level ``k`` in the image (cut at its edge)."""
        return tuple(r.stop - r.start for r in self._chunk_region(k, coords))

    def __repr__(self) -> str:
        return f"LabelEditStore({str(self.root)!r}, shape={self.shape}, dtype={self.dtype})"


class _CachedSource(ZarrVolumeSource):
    """The working copy as a volume source (what label layers draw once edited): reads
    take the chunks not yet written to zarr from the store's memory."""

    def __init__(self, group: zarr.Group, url: str, store: LabelEditStore) -> None:
        super().__init__(group, url)
        self._edits = weakref.ref(store)

    def read(self, level: int, region: Region | None = None) -> npt.NDArray[np.generic]:
        store = self._edits()
        if store is None:
            return super().read(level, region)
        reg = self._regions(level, region)[0]
        return store._read_through(
            level, reg, lambda: super(_CachedSource, self).read(level, region)
        )

    def read_many(
        self, requests: Sequence[tuple[int, Region | None]]
    ) -> list[npt.NDArray[np.generic] | ChunkError]:
        store = self._edits()
        if store is None:
            return super().read_many(requests)
        regs = [(lv, self._regions(lv, r)[0]) for lv, r in requests]
        return store.overlay_many(regs, lambda: super(_CachedSource, self).read_many(requests))


#: Every store of this process with a writer (flushed at exit; ``flush_open``).
_OPEN: weakref.WeakSet[LabelEditStore] = weakref.WeakSet()
#: Seconds between the writer's looks at the dirty chunks.
FLUSH_DELAY_S = 0.01
#: The writer writes a chunk once no edit changed it for this long (a stroke's stamps
#: coalesce into one write per chunk), or once it has been dirty for MAX_AGE_S.
QUIET_S = 0.05
MAX_AGE_S = 0.5
#: Chunk bytes an edit may leave pinned in memory before it waits for the writer.
DIRTY_BYTES = 256 * 2**20
#: Writes ``pending.json`` keeps listed beyond those not yet in the files (the last one
#: may not be journaled yet: recovery must be able to revert it).
_RECENT_WRITES = 8
_CHAIN_SEED = bytes(16)


#: glibc ``mallopt`` settings made once a working copy is opened (:func:`_keep_freed_memory`).
_MALLOPT = {
    -3: 4 * 2**20,  # M_MMAP_THRESHOLD: blocks below 4 MiB come from the heap
    -1: 64 * 2**20,  # M_TRIM_THRESHOLD: up to 64 MiB of free heap kept mapped
}
_MALLOPT_DONE = False


def _fresh_chunk(
    shape: tuple[int, ...], dtype: np.dtype[Any], fill: Any
) -> tuple[npt.NDArray[Any], bool]:
    """A writable chunk holding ``fill``, and whether it is a memory map of its own.

    Zeros are an anonymous memory map of their own (unmapped with the array): the kernel
    gives each page on first touch, so an edit pays only for the pages it writes, when
    it writes them; the writer asks for the rest at once (:func:`_populate`) before it
    reads the chunk. (A first touch costs ~1 ms per MiB written, ~3.5 ms per MiB read,
    on the shared test machine, a VM: cleared in place (``np.zeros`` from the heap) the
    brush's first stamp into new chunks paid for all of them.)"""
    nbytes = math.prod(shape) * dtype.itemsize
    # Small chunks come from the heap: a map each would count against the kernel's limit
    # of maps per process (vm.max_map_count, 65530 by default) for little gain.
    if fill != 0 or nbytes < _MAP_MIN_BYTES or not _populate_supported():
        return np.full(shape, fill, dtype), False
    return np.frombuffer(mmap.mmap(-1, nbytes), dtype=dtype).reshape(shape), True


_MADV_POPULATE_WRITE = 23  # Linux >= 5.14
_MAP_MIN_BYTES = 256 * 2**10
#: libc's madvise when MADV_POPULATE_WRITE works here (False: not; None: not tried yet).
_MADVISE: Any = None


def _populate_supported() -> bool:
    global _MADVISE
    if _MADVISE is None:
        _MADVISE = False
        if sys.platform == "linux":
            try:
                madvise = ctypes.CDLL(None, use_errno=True).madvise
                madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
                probe = np.frombuffer(mmap.mmap(-1, mmap.PAGESIZE), dtype=np.uint8)
                if madvise(probe.ctypes.data, probe.nbytes, _MADV_POPULATE_WRITE) == 0:
                    _MADVISE = madvise
            except (OSError, AttributeError):
                pass
    return _MADVISE is not False


def _populate(arr: npt.NDArray[Any]) -> None:
    """Ask for every page of ``arr`` (a :func:`_fresh_chunk` map: page-aligned) at once,
    contents left alone: one call instead of a fault per 4 KiB page (without the GIL)."""
    if _MADVISE:
        _MADVISE(arr.ctypes.data, arr.nbytes, _MADV_POPULATE_WRITE)


def _keep_freed_memory() -> None:
    """Let glibc's allocator reuse freed memory instead of handing it back to the kernel.

    An edit allocates a few MB of short-lived arrays (masks, old values, chunk-sized
    buffers of 0.1-1 MiB) and the writer others; by default glibc maps such blocks afresh
    until its adaptive threshold has grown, and trims the top of the heap once a few MB
    are free, so stamps paid page faults on memory just freed (a first touch costs ~1 ms
    per MiB on the shared test machine, a VM). Fixed thresholds, once per process, glibc
    only: blocks below 4 MiB from the heap, up to 64 MiB of free heap kept (what glibc's
    adaptive thresholds reach by themselves at most; 512 MiB kept a test process's
    resident memory 1.6 GB high)."""
    global _MALLOPT_DONE
    if _MALLOPT_DONE:
        return
    _MALLOPT_DONE = True
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    for param, value in _MALLOPT.items():
        if mallopt(param, value) != 1:
            log.debug("mallopt(%d, %d) refused", param, value)


def _chain_hash(prev: bytes, atom_id: str, forward: bool) -> bytes:
    """The chain hash after writing ``atom_id`` in direction ``forward``: names a place in
    the sequence of writes (the same place in the journal's replay)."""
    h = hashlib.blake2b(prev, digest_size=16)
    h.update(atom_id.encode())
    h.update(b"+" if forward else b"-")
    return h.digest()


def _writer_loop(ref: weakref.ref[LabelEditStore]) -> None:
    """The write-behind thread: put dirty chunks into zarr soon after they appear, until
    the store is closed or gone (a store dropped without close loses its pending chunks,
    as a crash would: the next open recovers them from the journal)."""
    backlog = False
    while True:
        store = ref()
        if store is None:
            return
        wake = store._wake
        with wake:
            if store._closed:
                return
            idle = not store._dirty
        if idle:
            store._clear_spares()
            if not store._ready_spare():  # nothing left to do: wait for an edit
                with wake:
                    if not store._dirty and not any(store._spare_unclear.values()):
                        del store  # no strong reference while waiting
                        wake.wait(timeout=1.0)
            continue
        del store
        if not backlog:
            time.sleep(FLUSH_DELAY_S)
        store = ref()
        if store is None:
            return
        # After the pause: clearing right when an edit woke the writer took memory
        # bandwidth (and the GIL between maps) from the end of that edit.
        store._clear_spares()
        try:
            # A whole batch written: more may be waiting (edits faster than the writer).
            backlog = store._flush_once(force=False) == _BATCH_CHUNKS
        except Exception as exc:  # a full disk: the chunks stay dirty; try again later
            if store.write_error is None:
                log.error("label image %s: writing chunks failed: %s", store.name, exc)
            store.write_error = exc
            del store
            time.sleep(1.0)
            continue
        del store


def _prefetch_loop(ref: weakref.ref[LabelEditStore]) -> None:
    """:meth:`LabelEditStore.prefetch`'s thread: decode the latest region asked for, until
    the store is closed or gone."""
    while True:
        store = ref()
        if store is None:
            return
        wake = store._prefetch_wake
        with wake:
            if store._closed:
                return
            want, store._prefetch_want = store._prefetch_want, None
            if want is None:
                del store  # no strong reference while waiting
                wake.wait(timeout=1.0)
                continue
        try:
            store._prefetch_region(want[0])
        except Exception as exc:  # only a hint: the edit reads (and reports) for itself
            log.debug("label image %s: prefetch failed: %s", store.name, exc)
        finally:
            want[1].set()
        del store


@atexit.register
def _flush_at_exit() -> None:
    for store in list(_OPEN):
        try:
            store.close()
        except Exception as exc:  # pending.json stays: the next open recovers
            log.warning("label image %s: chunks not written at exit (%s)", store.name, exc)
            store._stop()  # no thread of it left running while the interpreter is torn down


def _chunk_codec(arr: zarr.Array[Any]) -> tuple[Any] | None:
    """``(compressor,)``: the numcodecs object zarr itself calls on one whole chunk of
    ``arr`` (C-ordered, its dtype), or None when chunks are stored raw, for the formats a
    label copy is made in (:func:`create_label_copy`: zarr v3 ``bytes`` (little-endian) +
    ``zstd`` or no compressor; zarr v2 with no filters, C order, a numcodecs compressor
    or none); None for anything else (sharded arrays, other codecs: zarr writes and reads
    those chunks). So the store's files are byte for byte what zarr writes."""
    if getattr(arr, "shards", None) is not None or sys.byteorder != "little":
        return None
    meta = arr.metadata
    if np.dtype(arr.dtype).byteorder == ">":
        return None
    if isinstance(meta, ArrayV3Metadata):
        codecs = list(meta.codecs)
        if not codecs or not isinstance(codecs[0], BytesCodec):
            return None
        if codecs[0].endian not in (None, Endian.little):
            return None
        if len(codecs) == 1:
            return (None,)
        if len(codecs) == 2 and isinstance(codecs[1], ZstdCodec):
            return (Zstd(level=codecs[1].level, checksum=codecs[1].checksum),)
        return None
    if isinstance(meta, ArrayV2Metadata):
        if meta.filters or meta.order != "C":
            return None
        comp = meta.compressor
        if comp is None:
            return (None,)
        return (comp,) if hasattr(comp, "encode") and hasattr(comp, "decode") else None
    return None


def _chunk_encoder(arr: zarr.Array[Any]) -> Callable[[npt.NDArray[Any]], Any] | None:
    """The encoder of one whole chunk of ``arr`` into the bytes of its file
    (:func:`_chunk_codec`'s formats; None for others)."""
    found = _chunk_codec(arr)
    if found is None:
        return None
    codec = found[0]
    if codec is not None:
        return codec.encode  # type: ignore[no-any-return]

    def raw(data: npt.NDArray[Any]) -> Any:
        return data.tobytes()

    return raw


def _chunk_decoder(arr: zarr.Array[Any]) -> Callable[[bytes, npt.NDArray[Any]], None] | None:
    """The decoder of one chunk file of ``arr`` into a whole C-ordered chunk (``out``), for
    :func:`_chunk_codec`'s formats; None for others. Raises when the bytes are not one
    whole chunk."""
    found = _chunk_codec(arr)
    if found is None:
        return None
    codec = found[0]

    def decode(blob: bytes, out: npt.NDArray[Any]) -> None:
        if isinstance(codec, Zstd) and _zstd_content_size(blob) == out.nbytes:
            # Straight into ``out``: no chunk-sized buffer to fault in and copy (~0.15 ms
            # of a ~0.35 ms decode); numcodecs refuses a frame larger than ``out``.
            codec.decode(blob, out=out.reshape(-1).view(np.uint8))
            return
        raw = codec.decode(blob) if codec is not None else blob
        flat = np.frombuffer(raw, dtype=out.dtype)
        if flat.size != out.size:
            raise ValueError(f"{flat.size} values, not {out.size}")
        out.reshape(-1)[...] = flat

    return decode


def _zstd_content_size(blob: bytes) -> int | None:
    """The decompressed size a zstd frame declares in its header (RFC 8878, 3.1.1.1),
    or None when ``blob`` does not start with a frame that declares it. (numcodecs has
    no call for it; zarr's zstd chunks declare it.)"""
    if len(blob) < 6 or blob[:4] != b"\x28\xb5\x2f\xfd":
        return None
    fhd = blob[4]
    fcs_flag, single, dict_flag = fhd >> 6, (fhd >> 5) & 1, fhd & 3
    pos = 5 + (0 if single else 1) + (0, 1, 2, 4)[dict_flag]
    size = (1 if single else 0, 2, 4, 8)[fcs_flag]
    if size == 0 or len(blob) < pos + size:
        return None
    value = int.from_bytes(blob[pos : pos + size], "little")
    return value + 256 if size == 2 else value


ATOM_LOG = "atoms.log"


class _AtomLog:
    """The write-ahead log of a store's atom files (``<name>.atoms/atoms.log``).

    Each atom is appended (a header: magic, length, CRC-32, atom id; then the bytes of
    its ``.npz``) where the file already holds zeros, then ``fdatasync``'d: the file's
    size and blocks do not change, so the sync writes only the data (~0.15 ms here,
    against ~0.6-1 ms for a new file fsync'd, renamed and its folder fsync'd). Zeros
    are added :data:`SEGMENT` bytes at a time (fsync'd). The atom's own file is written
    right after without a sync; :meth:`seal` syncs them all and drops the log (a
    settle, a close). A session that does not end leaves the log: the project's next
    writer writes the atom files it holds (:meth:`LabelEditStore.restore_atoms`) before
    anything reads them. A record cut short by a crash fails its length or CRC check:
    the log ends before it (its atom was never durable, so no journal line names it).
    Not a format of its own to keep: nothing reads it but that restore."""

    MAGIC = b"VRSATOM1"
    HEADER = struct.Struct("<8sQI32s")
    SEGMENT = 4 * 2**20

    def __init__(self, path: Path, fsync: bool) -> None:
        self.path = path
        self._fsync = fsync
        self._fd: int | None = None
        self._pos = 0
        self._size = 0
        #: Atom files written since the log began, synced by :meth:`seal`.
        self.written: list[Path] = []

    def append(self, atom_id: str, blob: bytes) -> None:
        """Append one atom and make it durable (one thread at a time)."""
        head = self.HEADER.pack(self.MAGIC, len(blob), zlib.crc32(blob), atom_id.encode())
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            self._pos = self._size = 0
        need = len(head) + len(blob)
        if self._pos + need > self._size:
            grow = max(self.SEGMENT, need)
            os.pwrite(self._fd, bytes(grow), self._size)
            if self._fsync:
                os.fsync(self._fd)  # the new size and blocks
                if self._size == 0:
                    _fsync_dir(self.path.parent)
            self._size += grow
        os.pwrite(self._fd, head + blob, self._pos)
        if self._fsync:
            _datasync(self._fd)
        self._pos += need

    def seal(self) -> None:
        """Sync every atom file written since the log began, then drop the log."""
        if self._fd is None:
            return
        if self._fsync:
            for path in self.written:
                try:
                    fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:  # moved aside by a repair meanwhile
                    continue
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            _fsync_dir(self.path.parent)
        os.close(self._fd)
        self._fd = None
        self.path.unlink(missing_ok=True)
        if self._fsync:
            _fsync_dir(self.path.parent)
        self.written.clear()


_ATOM_ID = re.compile(rb"[0-9a-f]{32}")
#: ``fdatasync`` where there is one (not on macOS: ``fsync`` there).
_datasync = getattr(os, "fdatasync", os.fsync)


def _read_atom_log(path: Path) -> Iterator[tuple[str, bytes]]:
    """The atoms (id, ``.npz`` bytes) of an atom log, up to its first record that is not
    whole (the zeros after the last, or one a crash cut short)."""
    data = path.read_bytes()
    head = _AtomLog.HEADER
    pos = 0
    while pos + head.size <= len(data):
        magic, n, crc, atom_id = head.unpack_from(data, pos)
        blob = data[pos + head.size : pos + head.size + n]
        if (
            magic != _AtomLog.MAGIC
            or not _ATOM_ID.fullmatch(atom_id)
            or len(blob) != n
            or zlib.crc32(blob) != crc
        ):
            return
        yield atom_id.decode(), blob
        pos += head.size + n


def _put_file(path: Path, blob: Any, sync: bool = False) -> None:
    """Write ``blob`` as ``path`` through a temporary file renamed over it (``sync``: the
    file fsync'd before the rename)."""
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
    try:
        try:
            fh = open(tmp, "wb")
        except FileNotFoundError:  # the chunk's first file in its folder
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(tmp, "wb")
        with fh:
            fh.write(blob)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _gather_read(
    jobs: list[tuple[zarr.Array[Any], tuple[slice, ...]]],
) -> list[npt.NDArray[Any]]:
    """Read several regions (of any levels) in one trip through zarr's event loop (chunks
    decode in parallel; one ``arr[region]`` per chunk pays the loop round trip each time)."""

    async def run() -> list[Any]:
        return list(await asyncio.gather(*(a._async_array.getitem(r) for a, r in jobs)))

    # zarr allocates each result for this call: keep it (writable) instead of copying.
    return [d if d.flags.writeable else np.array(d) for d in map(np.asarray, zarr_sync(run()))]


def _gather_write(jobs: list[tuple[zarr.Array[Any], tuple[slice, ...], npt.NDArray[Any]]]) -> None:
    """Write several regions (of any levels) in one trip through zarr's event loop."""

    async def run() -> None:
        await asyncio.gather(*(a._async_array.setitem(r, d) for a, r, d in jobs))

    zarr_sync(run())


class _ChunkCache:
    """Decoded chunks by (level, chunk coords); beyond ``budget`` bytes the least recently
    used go first, except the ``pinned`` ones (dirty or being written: they are the only
    copy of an edit until the writer put them into zarr).

    Chunks of the coarser levels (level > 0) go first only while they hold more than
    ``coarse_share`` of the budget, those of the finest such level first: a chunk of
    level k covers 8^k level-0 chunks, so an edit anywhere in that region rewrites it
    (stamps at new places in a 1024³ image decoded ~3 coarse chunks each, ~45% of their
    decodes, when all levels shared one LRU order). One ``OrderedDict`` LRU per level:
    ``functools.lru_cache`` cannot be updated in place by writes or bounded by bytes."""

    def __init__(
        self,
        budget: int,
        pinned: Callable[[_ChunkKey], bool],
        evicted: Callable[[_ChunkKey, npt.NDArray[Any]], None] | None = None,
        coarse_share: float = 0.25,
    ) -> None:
        self.budget = int(budget)
        self.nbytes = 0
        self._pinned = pinned
        #: Called with each array the cache lets go (replaced or evicted).
        self._evicted = evicted
        self._coarse_budget = int(budget * coarse_share)
        #: Per level, its chunks, least recently used first; bytes of levels > 0.
        self._levels: dict[int, OrderedDict[_ChunkKey, npt.NDArray[Any]]] = {}
        self._coarse_bytes = 0

    def __len__(self) -> int:
        return sum(len(lru) for lru in self._levels.values())

    def get(self, key: _ChunkKey, touch: bool = True) -> npt.NDArray[Any] | None:
        lru = self._levels.get(key[0])
        if lru is None:
            return None
        data = lru.get(key)
        if data is not None and touch:
            lru.move_to_end(key)
        return data

    def put(self, key: _ChunkKey, data: npt.NDArray[Any]) -> None:
        lru = self._levels.setdefault(key[0], OrderedDict())
        gone = lru.pop(key, None)
        if gone is not None:
            self._count(key, -gone.nbytes)
            if self._evicted is not None and gone is not data:
                self._evicted(key, gone)
        lru[key] = data
        self._count(key, data.nbytes)
        if self.nbytes > self.budget:
            self._evict()

    def _evict(self) -> None:
        """Let go of least recently used chunks, as many bytes as are over the budget (a
        scan that stops there: a copy of every key per put cost ~1 ms of a stamp):
        coarse chunks over their share (finest level first), then level 0, then the
        coarse levels (finest first)."""
        over = self.nbytes - self.budget
        coarse_over = self._coarse_bytes - self._coarse_budget
        coarse = [self._levels[k] for k in sorted(self._levels) if k > 0]
        fine = [self._levels[0]] if 0 in self._levels else []
        chosen: dict[_ChunkKey, None] = {}  # (in order)
        for lrus, only_coarse in ((coarse, True), (fine, False), (coarse, False)):
            for lru in lrus:
                for k in lru:  # (no name kept for an array: see ``evicted``)
                    if over <= 0 or (only_coarse and coarse_over <= 0):
                        break
                    if k not in chosen and not self._pinned(k):
                        chosen[k] = None
                        n = lru[k].nbytes
                        over -= n
                        coarse_over -= n if k[0] else 0
        for k in chosen:
            gone = self._levels[k[0]].pop(k)
            self._count(k, -gone.nbytes)
            if self._evicted is not None:
                self._evicted(k, gone)

    def let_go_clean(self) -> None:
        """Let go of every chunk but the pinned ones (and keep none from now on)."""
        self.budget = self._coarse_budget = 0
        if self.nbytes:
            self._evict()

    def _count(self, key: _ChunkKey, n: int) -> None:
        self.nbytes += n
        if key[0]:
            self._coarse_bytes += n


def default_label_cache_bytes() -> int:
    """The default budget of a working copy's decoded chunks: :data:`CACHE_RAM_FRACTION`
    of the physical memory (psutil), within :data:`CACHE_MIN_BYTES` ..
    :data:`CACHE_MAX_BYTES`."""
    total = int(psutil.virtual_memory().total * CACHE_RAM_FRACTION)
    return min(max(total, CACHE_MIN_BYTES), CACHE_MAX_BYTES)


def _unpack(data: npt.NDArray[np.uint8], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """An array that :meth:`LabelEditStore.record` compressed."""
    if not data.size:
        return np.zeros(0, dtype)
    return np.frombuffer(_ATOM_CODEC.decode(data), dtype)


def _import_pandas() -> None:
    try:
        import pandas  # noqa: F401
    except ImportError:  # pragma: no cover - a dependency; _distinct says what is missing
        pass


def _distinct(values: npt.NDArray[Any]) -> set[int]:
    """The distinct values of ``values``: one value when they are one broadcast value (a
    brush's new values), else those that start a run (in C order) made distinct: a
    label image's voxels come in runs (a brush's old values: ~0.5 M values in a few
    thousand runs), so one comparison of neighbours leaves few values to hash
    (``pandas.unique``: a hash table, ~3x faster than ``np.unique``'s sort; it took
    ~0.3 ms per chunk's part of a stamp on all of them)."""
    if values.size == 0:
        return set()
    one = constant_value(values)
    if one is not None:
        return {int(one)}
    flat = values.reshape(-1)
    starts = flat[1:][flat[1:] != flat[:-1]]
    if starts.size == 0:
        return {int(flat[0])}
    import pandas as pd

    return {int(flat[0]), *(int(v) for v in pd.unique(starts))}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def label_copy_path(project: str | os.PathLike[str], name: str) -> Path:
    """Where the working copy of label image ``name`` lives in a project folder."""
    if not name or "/" in name or name in (".", ".."):
        raise ParameterError(f"label name {name!r} must be a non-empty name without '/'")
    return Path(project) / LABELS_DIR / f"{name}.zarr"
