"""Editable label images in a project folder: a multiscale copy edited in place.

Layout inside the project folder (see ``docs/design/0003-label-edits.md``)::

    labels/<name>.zarr        the working copy: an OME-Zarr label multiscale (root group,
                              the source's NGFF version and chunks, every level), made from
                              the source's level 0 with the writer's stride pyramid
    labels/<name>.atoms/      one ``<id>.npz`` per edit: per touched level-0 chunk the
                              offset, mask, old and new values (the undo/redo data)
    labels/<name>.intent.json the last atom being written and in which direction

An edit is written in this order: atom file (fsync), intent (atomic, fsync), the
touched chunks of level 0 and of every coarser level, then the caller journals the
command (fsync) and only then acknowledges it. On reopening, the journal is replayed
without touching voxels (:attr:`LabelEditStore.replaying`), then :meth:`recover`
rewrites the intent's atom in the direction the journal says (writing absolute values
through a mask is idempotent): an edit that was written but not journaled is rolled
back, an undo or redo that was journaled but not completely written is completed.

The store keeps decoded chunks of every level in memory (write-through: a chunk is kept
once zarr wrote it), so a brush stroke reads each chunk once; see :class:`LabelEditStore`.

Coarser levels follow the writer's rule for labels (``level[k] = level[k-1][::2]``, see
:mod:`analysis.io._write`), so level ``k`` is level 0 sampled every ``f_k`` voxels: an
edit rewrites, per level, only the chunks holding a sample that changed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import shutil
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import zarr
import zarr.storage
from numcodecs import Zstd
from psygnal import Signal
from zarr.core.sync import sync as zarr_sync

from analysis.edits import LabelAtom, LabelChange, LabelIds, LabelPiece
from analysis.errors import ChunkError, FormatError, LabelEditError, ParameterError
from analysis.io._format import format_for
from analysis.io._outputs import check_output, replacing
from analysis.io._project import read_json_file, write_json_atomic
from analysis.io._read import CheckedVolumeSource, ZarrVolumeSource, open_labels, open_volume
from analysis.io._validate import validate_ngff
from analysis.io._write import _multiscale, _write_pyramid, level_shapes

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
#: Decoded chunks a working copy keeps in memory (all levels; least recently used go first).
CACHE_BYTES = 256 * 2**20
#: Atom files compress their masks and values (a stamp's ~4 MB of mostly equal values
#: shrinks to a few kB, so the atom's fsync is cheap); level 1: ~1 ms for 2 MB.
_ATOM_CODEC = Zstd(level=1)
#: (first voxel, mask, values (mask-shaped), whether a value written is not background)
_Update = tuple[tuple[int, int, int], npt.NDArray[np.bool_], npt.NDArray[Any], bool]
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
        c = [int(v) for v in arr.chunks]
        while c[2] < shape[2] and math.prod(c) * 2 <= _BLOCK_VOXELS:
            c[2] *= 2
        while c[1] < shape[1] and math.prod(c) * 2 <= _BLOCK_VOXELS:
            c[1] *= 2
        for z in range(0, shape[0], c[0]):
            for y in range(0, shape[1], c[1]):
                for x in range(0, shape[2], c[2]):
                    box = (slice(z, z + c[0]), slice(y, y + c[1]), slice(x, x + c[2]))
                    data = np.asarray(arr[box])
                    shown = ids.show(data)
                    if shown is not data and not np.array_equal(shown, data):
                        arr[box] = shown


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
        fsync atom files and the intent file (the journal's own fsync is separate).
    cache_bytes : int, default: :data:`CACHE_BYTES`
        Decoded chunks kept in memory (0: none). The cache is write-through: every chunk
        the store writes is written to zarr first and then kept, so an entry always
        equals the chunk on disk (the project lock makes the copy ours alone). An edit
        reads its chunks once (``read`` then ``set`` hit the cache) and a stroke's stamps
        reuse them.

    Attributes
    ----------
    replaying : bool
        While True, :meth:`set` only records which atoms are applied (journal replay).

    Events
    ------
    changed(LabelChange)
        After an atom was written (apply, undo, redo, recovery): the ids whose voxels
        changed and the chunk regions rewritten at every level. Emitted on the thread
        that wrote, before the history journals the command (views only mark dirty).
    """

    changed = Signal(object)

    def __init__(
        self,
        root: str | os.PathLike[str],
        name: str,
        fsync: bool = True,
        cache_bytes: int = CACHE_BYTES,
    ) -> None:
        self.root = Path(root)
        self._name = name
        self._fsync = fsync
        self.atoms_dir = self.root.with_name(f"{name}.atoms")
        self.intent_path = self.root.with_name(f"{name}.intent.json")
        #: The copy as stored (raw ids: the fragments a merge left as they were).
        self.raw_source = open_volume(self.root)
        _check_editable(self.raw_source, f"label copy {self.root}")
        #: The id mapping and the voxel counts (``docs/design/0005``).
        self.ids = LabelIds()
        self.ids.remapped.connect(self._announce_remap)
        #: What views draw: every read shows the id mapping applied.
        self.source = MappedLabelSource(self.raw_source, self.ids)
        group = zarr.open_group(zarr.storage.LocalStore(self.root), mode="r+")
        self._arrays: list[zarr.Array[Any]] = []
        for lv in self.raw_source.levels:
            node = group[lv.path]
            if not isinstance(node, zarr.Array):
                raise FormatError(f"{self.root}/{lv.path} is not an array")
            self._arrays.append(node)
        # Writes of chunks that hold a label skip zarr's check for chunks equal to the fill
        # value (``write_empty_chunks``: ``np.array_equal`` against the scalar, ~5 ms per
        # 1 MiB chunk, most of a stamp's CPU time); all-background chunks go through the
        # plain array, which deletes them as before.
        self._writers = [a.with_config({"write_empty_chunks": True}) for a in self._arrays]
        self._shapes = [tuple(int(s) for s in lv.shape) for lv in self.raw_source.levels]
        self._factors = _level_factors(self._shapes)
        self._chunks = [tuple(int(c) for c in a.chunks) for a in self._arrays]
        self._applied: dict[str, bool] = {}
        self._cache = _ChunkCache(cache_bytes)
        #: Held while chunks are read or written (a view may read while an edit writes).
        self._lock = threading.RLock()
        self.replaying = False

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
        """A copy of ``region`` of level ``level``, assembled from the decoded chunks
        (cached, or read in one zarr trip and cached); regions of more than
        ``_BATCH_CHUNKS`` chunks (block scans) are read through zarr directly."""
        shape = self._shapes[level]
        if len(region) != 3 or any(not isinstance(r, slice) for r in region):
            return np.asarray(self._arrays[level][region])
        box = [r.indices(n) for r, n in zip(region, shape, strict=True)]
        if any(step != 1 for _, _, step in box):
            return np.asarray(self._arrays[level][region])
        lo = [a for a, _, _ in box]
        hi = [max(a, b) for a, b, _ in box]
        ck = self._chunks[level]
        ranges = [range(a // c, -(-b // c)) for a, b, c in zip(lo, hi, ck, strict=True)]
        if math.prod(len(r) for r in ranges) > _BATCH_CHUNKS:
            with self._lock:
                return np.asarray(self._arrays[level][region])
        out = np.empty([b - a for a, b in zip(lo, hi, strict=True)], dtype=self.dtype)
        keys: list[_ChunkKey] = [
            (level, (z, y, x)) for z in ranges[0] for y in ranges[1] for x in ranges[2]
        ]
        with self._lock:
            got = self._fetch(keys)
            for (_, coords), data in zip(keys, got, strict=True):
                src = []
                dst = []
                for j, c, a, b in zip(coords, ck, lo, hi, strict=True):
                    s0, s1 = max(j * c, a), min(j * c + c, b)
                    src.append(slice(s0 - j * c, s1 - j * c))
                    dst.append(slice(s0 - a, s1 - a))
                out[tuple(dst)] = data[tuple(src)]
        return out

    def blocks(self) -> Iterator[tuple[slice, ...]]:
        """Chunk-aligned level-0 regions: whole chunks, rows of chunks when they are small."""
        c = list(self.chunks)
        shape = self.shape
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

    def max_id(self) -> int:
        """The largest id in use (raw ids holding voxels, the mapping's keys and values):
        counted once, then kept by every write; it goes down when an undo removes an id."""
        return self.ids.top(self)

    def record(self, atom: LabelAtom) -> str:
        """Keep ``atom`` as ``<id>.npz`` (fsync'd); return its id."""
        atom_id = uuid.uuid4().hex
        self.atoms_dir.mkdir(exist_ok=True)
        k = len(atom.pieces)
        dtype = self.dtype

        def packed(parts: list[npt.NDArray[Any]], dt: Any) -> npt.NDArray[np.uint8]:
            flat = np.concatenate(parts).astype(dt, copy=False) if k else np.zeros(0, dt)
            if not flat.size:  # zstd cannot decode an empty frame
                return np.zeros(0, np.uint8)
            return np.frombuffer(_ATOM_CODEC.encode(np.ascontiguousarray(flat)), np.uint8)

        arrays: dict[str, npt.NDArray[Any]] = {
            "offsets": np.array([p.offset for p in atom.pieces], dtype=np.int64).reshape(k, 3),
            "shapes": np.array([p.mask.shape for p in atom.pieces], dtype=np.int64).reshape(k, 3),
            "masks": packed(
                [np.packbits(np.concatenate([p.mask.reshape(-1) for p in atom.pieces]))]
                if k
                else [],
                np.uint8,
            ),
            "old": packed([p.old for p in atom.pieces], dtype),
            "new": packed([p.new for p in atom.pieces], dtype),
            "codec": np.array("zstd"),
        }
        path = self.atoms_dir / f"{atom_id}.npz"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
            fh.flush()
            if self._fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        if self._fsync:
            _fsync_dir(self.atoms_dir)
        return atom_id

    def load(self, atom_id: str) -> LabelAtom:
        path = self.atoms_dir / f"{atom_id}.npz"
        if not path.is_file():
            raise FormatError(f"the undo data of label edit {atom_id} is missing ({path})")
        with np.load(path) as z:
            offsets, shapes = z["offsets"], z["shapes"]
            sizes = [int(np.prod(s)) for s in shapes]
            packed, old, new = z["masks"], z["old"], z["new"]
            if "codec" in z.files:  # compressed (older atoms hold plain arrays)
                packed = _unpack(packed, np.dtype(np.uint8))
                old = _unpack(old, self.dtype)
                new = _unpack(new, self.dtype)
            masks = np.unpackbits(packed, count=sum(sizes)).astype(bool)
        pieces = []
        mpos = vpos = 0
        for off, shp, n in zip(offsets, shapes, sizes, strict=True):
            m = masks[mpos : mpos + n].reshape(tuple(int(s) for s in shp))
            mpos += n
            c = int(m.sum())
            pieces.append(
                LabelPiece(
                    (int(off[0]), int(off[1]), int(off[2])),
                    m,
                    old[vpos : vpos + c],
                    new[vpos : vpos + c],
                )
            )
            vpos += c
        return LabelAtom(tuple(pieces))

    def set(self, atom_id: str, forward: bool, atom: LabelAtom | None = None) -> None:
        """Write the atom's new (``forward``) or old values into every level."""
        if self.replaying:
            self._applied[atom_id] = forward
            return
        if atom is None:
            atom = self.load(atom_id)
        write_json_atomic(self.intent_path, {"atom": atom_id, "forward": forward})
        boxes = self._write(atom, forward)
        self._applied[atom_id] = forward
        self.ids.applied(atom, forward)
        self._announce(atom, forward, boxes)

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
        """After a journal replay: make the last atom written agree with the journal."""
        self.replaying = False
        self.ids.forget_counts()  # the voxels may change below (or did, unjournaled)
        if not self.intent_path.is_file():
            return
        intent = read_json_file(self.intent_path)
        atom_id = str(intent.get("atom", "")) if isinstance(intent, dict) else ""
        if not (self.atoms_dir / f"{atom_id}.npz").is_file():
            return
        state = self._applied.get(atom_id, False)
        log.info("label image %s: rewriting edit %s as %s", self.name, atom_id, state)
        atom = self.load(atom_id)
        self._announce(atom, state, self._write(atom, state))

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
        """Write the atom's values into level 0 and the samples it changes of every level;
        the chunk regions written, per level."""
        updates: dict[_ChunkKey, list[_Update]] = {}

        def add(k: int, first: tuple[int, int, int], u: _Update) -> None:
            coords = tuple(j // c for j, c in zip(first, self._chunks[k], strict=True))
            updates.setdefault((k, coords), []).append(u)

        for piece in atom.pieces:
            vals = piece.values(forward)
            full = np.zeros(piece.mask.shape, dtype=self.dtype)
            full[piece.mask] = vals
            add(0, piece.offset, (piece.offset, piece.mask, full, bool(vals.any())))
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
                sub = full[pos]  # background outside the mask
                add(k, at, (at, sub_mask, sub, bool(sub.any())))
        return self._write_chunks(updates)

    def _write_chunks(
        self, updates: dict[_ChunkKey, list[_Update]]
    ) -> list[list[tuple[slice, ...]]]:
        """Apply updates to the chunks they fall in (each read once, from the cache when
        there), then write every changed chunk of every level in one zarr trip per batch
        of ``_BATCH_CHUNKS``; a chunk is kept in the cache only once zarr wrote it."""
        written: list[list[tuple[slice, ...]]] = [[] for _ in self._arrays]
        items = sorted(updates.items())
        with self._lock:
            for b in range(0, len(items), _BATCH_CHUNKS):
                batch = items[b : b + _BATCH_CHUNKS]
                keys = [key for key, _ in batch]
                datas = self._fetch(keys)
                regions = [self._chunk_region(k, c) for k, c in keys]
                try:
                    for region, data, (_, us) in zip(regions, datas, batch, strict=True):
                        for first, mask, vals, _ in us:
                            local = tuple(
                                slice(j - r.start, j - r.start + n)
                                for j, r, n in zip(first, region, mask.shape, strict=True)
                            )
                            np.copyto(data[local], vals, where=mask)
                    jobs = []
                    for (k, _), region, data, (_, us) in zip(
                        keys, regions, datas, batch, strict=True
                    ):
                        labelled = any(u[3] for u in us) or bool(data.any())
                        jobs.append(
                            ((self._writers if labelled else self._arrays)[k], region, data)
                        )
                    _gather_write(jobs)
                except BaseException:
                    self._cache.drop(keys)  # changed in memory, maybe not on disk
                    raise
                for (k, _), region in zip(keys, regions, strict=True):
                    written[k].append(region)
        return written

    def _fetch(self, keys: list[_ChunkKey]) -> list[npt.NDArray[Any]]:
        """The decoded chunks ``keys`` (writable; the cached arrays themselves): from the
        cache, the others read in one zarr trip and cached. Call with the lock held."""
        got: list[npt.NDArray[Any] | None] = [self._cache.get(key) for key in keys]
        miss = [i for i, g in enumerate(got) if g is None]
        if miss:
            datas = _gather_read(
                [(self._arrays[keys[i][0]], self._chunk_region(*keys[i])) for i in miss]
            )
            for i, data in zip(miss, datas, strict=True):
                self._cache.put(keys[i], data)
                got[i] = data
        return [g for g in got if g is not None]

    def _chunk_region(
        self, k: int, coords: tuple[int, ...], stop: tuple[int, ...] | None = None
    ) -> tuple[slice, ...]:
        """Level ``k``'s region of chunk ``coords`` (or of chunks ``coords`` .. ``stop``)."""
        end = stop if stop is not None else tuple(c + 1 for c in coords)
        return tuple(
            slice(c * n, min(e * n, s))
            for c, e, n, s in zip(coords, end, self._chunks[k], self._shapes[k], strict=True)
        )

    def __repr__(self) -> str:
        return f"LabelEditStore({str(self.root)!r}, shape={self.shape}, dtype={self.dtype})"


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
    """Decoded chunks by (level, chunk coords); the least recently used go first beyond
    ``budget`` bytes (an ``OrderedDict`` LRU: ``functools.lru_cache`` cannot be updated
    in place by writes or bounded by bytes)."""

    def __init__(self, budget: int) -> None:
        self.budget = int(budget)
        self.nbytes = 0
        self._data: OrderedDict[_ChunkKey, npt.NDArray[Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: _ChunkKey) -> npt.NDArray[Any] | None:
        data = self._data.get(key)
        if data is not None:
            self._data.move_to_end(key)
        return data

    def put(self, key: _ChunkKey, data: npt.NDArray[Any]) -> None:
        self.drop([key])
        if data.nbytes > self.budget:
            return
        self._data[key] = data
        self.nbytes += data.nbytes
        while self.nbytes > self.budget:
            _, old = self._data.popitem(last=False)
            self.nbytes -= old.nbytes

    def drop(self, keys: list[_ChunkKey]) -> None:
        for key in keys:
            old = self._data.pop(key, None)
            if old is not None:
                self.nbytes -= old.nbytes


def _unpack(data: npt.NDArray[np.uint8], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """An array that :meth:`LabelEditStore.record` compressed."""
    if not data.size:
        return np.zeros(0, dtype)
    return np.frombuffer(_ATOM_CODEC.decode(data), dtype)


def _distinct(values: npt.NDArray[Any]) -> set[int]:
    """The distinct values of ``values``: one comparison when they are all equal (a
    brush's new values, background under it), else ``np.unique``."""
    if values.size == 0:
        return set()
    first = values.flat[0]
    if bool((values == first).all()):
        return {int(first)}
    return {int(v) for v in np.unique(values)}


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
