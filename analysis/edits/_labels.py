"""Label edits: merge, apply a table, split, delete, relabel, paint/erase a ball, fill,
interpolate between two sections, lock and unlock ids.

Every command computes its change once, as a :class:`LabelAtom` (napari's
``_MaskedPaintAtom``: per touched level-0 chunk an offset, a mask and the old and
new values of the masked voxels), validates before anything is written, hands the
atom to the label image to keep (``record``) and then writes it (``set``).
Undo writes the old values back through the same masks, redo the new ones, so both
are exact whatever the data. The journal holds the command's arguments and the
atom's id; a replayed or redone command reuses the stored atom instead of
recomputing it (a watershed or a preserve-mode brush gives the same voxels again).

The label image is any object with the :class:`EditableLabels` interface; the
project's one (:class:`analysis.io.LabelEditStore`) writes only the touched chunks
of level 0 and re-downsamples them into every coarser level.

Locked ids (:class:`LockLabels`, :class:`UnlockLabels`, :func:`locked_ids`) are part of
the edit state, not of the voxels: they are kept per label image object in memory and
rebuilt by the journal's replay like every other edit (undo unlocks again). No command
changes a voxel of a locked object: paint, erase, fill and interpolate leave its voxels
as they are, and merge, delete, split, relabel and tables refuse to touch it.

Merges and tables change no voxel: they change the image's id mapping (raw id -> shown
id, :class:`LabelIds`, ``docs/design/0005-merge-as-id-mapping.md``) and journal the
entries they changed. Every command means *shown* ids (the object at a point, its mask,
locks, preserve painting) but reads and writes raw values in its atom, so undo restores
the fragments exactly.
"""

from __future__ import annotations

import functools
import math
import weakref
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from analysis.edits._command import Command
from analysis.edits._label_ids import LabelIds, MapEntry
from analysis.errors import FormatError, LabelEditError

__all__ = [
    "ApplyTable",
    "CommitLabels",
    "DeleteLabels",
    "EditableLabels",
    "FillLabel",
    "InterpolateLabel",
    "LabelAtom",
    "LabelChange",
    "LabelIds",
    "LabelPiece",
    "LockLabels",
    "MergeLabels",
    "PaintBall",
    "RelabelLabel",
    "SplitLabel",
    "UnlockLabels",
    "ball_mask",
    "brush_region",
    "constant_value",
    "id_state",
    "labels_of",
    "locked_ids",
    "object_sections",
    "shown_at",
]

Region = tuple[slice, ...]


@dataclass(frozen=True)
class LabelPiece:
    """The change inside one level-0 chunk.

    Attributes
    ----------
    offset : (3,) ints
        Level-0 voxel index (z, y, x) of ``mask[0, 0, 0]``.
    mask : (dz, dy, dx) bool array
        Voxels that change.
    old, new : (n,) arrays, n = mask.sum()
        Their values before and after, in C order of the mask.
    """

    offset: tuple[int, int, int]
    mask: npt.NDArray[np.bool_]
    old: npt.NDArray[Any]
    new: npt.NDArray[Any]

    @property
    def region(self) -> Region:
        return tuple(slice(o, o + s) for o, s in zip(self.offset, self.mask.shape, strict=True))

    def values(self, forward: bool) -> npt.NDArray[Any]:
        return self.new if forward else self.old


@dataclass(frozen=True)
class LabelAtom:
    """One command's change: pieces of touched chunks (only voxels whose value changes).

    ``footprint``: None, or (offset, box mask) when the pieces' masks are exactly that
    mask cut at the pieces' boxes (a brush stamp every voxel of which changed: the
    brush's cached ball). An atom file then keeps the one mask instead of every
    piece's (:meth:`analysis.io.LabelEditStore.record`).
    """

    pieces: tuple[LabelPiece, ...]
    footprint: tuple[tuple[int, int, int], npt.NDArray[np.bool_]] | None = None

    @property
    def n_voxels(self) -> int:
        return int(sum(p.old.size for p in self.pieces))

    def new_ids(self) -> set[int]:
        return {int(v) for p in self.pieces for v in np.unique(p.new)}

    @classmethod
    def from_region(
        cls,
        offset: Sequence[int],
        mask: npt.NDArray[np.bool_],
        old: npt.NDArray[Any],
        new: npt.NDArray[Any],
        chunks: Sequence[int],
    ) -> LabelAtom:
        """Cut a box change (``old`` box-shaped, ``new`` box-shaped or one value for the
        whole box (a 0-d array: a brush), ``mask`` where it applies) by chunk. A single
        ``new`` value gives pieces whose ``new`` is that value broadcast (no copy; see
        :func:`constant_value`)."""
        return cls(tuple(_pieces(offset, mask & (old != new), old, new, chunks)))


@dataclass(frozen=True)
class LabelChange:
    """What one write of an atom changed (the payload of a label image's ``changed`` event).

    Attributes
    ----------
    name : str
        The label image.
    ids : frozenset of int
        Every id whose voxels changed (old and new values, background 0 left out).
    boxes : tuple (one per level) of tuples of regions
        The chunk regions rewritten at each level (level 0 first), as slices of that
        level's (z, y, x) array: a view re-reads only these.
    forward : bool
        The atom's new values were written (apply, redo); False: its old ones (undo).
    remapped : frozenset of int, or None
        None for a voxel write. For a change of the id mapping (a merge or a table,
        ``docs/design/0005``): no voxel was written (``boxes`` are empty) and the voxels
        that showed one of these ids (0 included) may show another id now: a view
        re-reads (or re-maps) what shows them. ``ids`` then holds these ids and the ids
        they show now (background left out).
    """

    name: str
    ids: frozenset[int]
    boxes: tuple[tuple[Region, ...], ...]
    forward: bool = True
    remapped: frozenset[int] | None = None


def constant_value(values: npt.NDArray[Any]) -> npt.NDArray[Any] | None:
    """The one value of ``values`` as a 0-d array when they are one value broadcast (a
    brush's new values: stride 0, no copy made), else None (a look at the strides only:
    an ordinary array of equal values gives None)."""
    if values.ndim == 1 and values.size and values.strides[0] == 0:
        return np.asarray(values[0])
    return None


def _one_value(values: npt.NDArray[Any]) -> bool:
    """Whether ``values`` is one value broadcast (strides 0: a chunk made as fill value
    that no edit wrote, as ``read_parts`` shows it), seen without a look at the values."""
    return bool(values.size) and not any(values.strides)


def _by_chunk(
    offset: Sequence[int], shape: Sequence[int], chunks: Sequence[int]
) -> Iterator[tuple[tuple[int, int, int], Region]]:
    """The parts of the box at ``offset`` of ``shape`` that fall in one chunk each: the
    part's first voxel (image index) and its slices within the box."""
    ranges = []
    for o, n, c in zip(offset, shape, chunks, strict=True):
        ranges.append(
            [(max(a, o) - o, min(a + c, o + n) - o) for a in range((o // c) * c, o + n, c)]
        )
    for rz in ranges[0]:
        for ry in ranges[1]:
            for rx in ranges[2]:
                first = (int(offset[0] + rz[0]), int(offset[1] + ry[0]), int(offset[2] + rx[0]))
                yield first, (slice(*rz), slice(*ry), slice(*rx))


def _pieces(
    offset: Sequence[int],
    mask: npt.NDArray[np.bool_],
    old: npt.NDArray[Any],
    new: npt.NDArray[Any],
    chunks: Sequence[int],
) -> Iterator[LabelPiece]:
    if not mask.any():
        return
    one = new.ndim == 0
    for first, sub in _by_chunk(offset, mask.shape, chunks):
        m = np.ascontiguousarray(mask[sub])
        if not m.any():
            continue
        if _one_value(old):  # an untouched chunk
            was = np.broadcast_to(old.flat[0], (int(np.count_nonzero(m)),))
        else:
            was = old[sub][m]
        yield LabelPiece(first, m, was, np.broadcast_to(new, was.shape) if one else new[sub][m])


def _chunk_parts(
    img: EditableLabels, region: Region
) -> Iterator[tuple[tuple[int, int, int], npt.NDArray[Any]]]:
    """Level 0 at ``region`` by level-0 chunk: (first voxel, its raw values, read-only:
    views of the chunks where ``img`` has ``read_parts`` (the project's working copy),
    else views of one :meth:`~EditableLabels.read` of the box)."""
    parts = getattr(img, "read_parts", None)
    if parts is not None:
        yield from parts(region)
        return
    box = img.read(region)
    for first, sub in _by_chunk([r.start for r in region], box.shape, img.chunks):
        yield first, box[sub]


@runtime_checkable
class EditableLabels(Protocol):
    """A (z, y, x) integer label image that label commands can edit.

    ``read`` returns level 0; ``blocks`` covers level 0 with chunk-aligned regions;
    ``record`` keeps an atom durably and returns its id; ``set`` writes an atom's new
    (``forward``) or old values into every level; ``load`` gives a recorded atom back.
    """

    @property
    def name(self) -> str: ...

    @property
    def shape(self) -> tuple[int, int, int]: ...

    @property
    def dtype(self) -> np.dtype[Any]: ...

    @property
    def chunks(self) -> tuple[int, int, int]: ...

    @property
    def scale_um(self) -> tuple[float, float, float]: ...

    def read(self, region: Region) -> npt.NDArray[Any]: ...

    def blocks(self) -> Iterator[Region]: ...

    def max_id(self) -> int: ...

    def record(self, atom: LabelAtom) -> str: ...

    def load(self, atom_id: str) -> LabelAtom: ...

    def set(self, atom_id: str, forward: bool, atom: LabelAtom | None = None) -> None: ...


def labels_of(target: Any, name: str) -> EditableLabels:
    """The label image ``name`` of ``target`` (a workspace with ``.labels``, or the image)."""
    labels = getattr(target, "labels", None)
    if isinstance(labels, Mapping):
        img = labels.get(name)
        if img is None:
            raise LabelEditError(
                f"no editable label image {name!r} (open: {sorted(labels) or 'none'})"
            )
        return img  # type: ignore[no-any-return]
    if isinstance(target, EditableLabels):
        return target
    raise LabelEditError(f"{type(target).__name__} holds no label images")


#: Locked ids per label image object (see the module docstring). Keyed weakly: the state
#: lives as long as the image object the journal replays onto.
_LOCKS: weakref.WeakKeyDictionary[Any, set[int]] = weakref.WeakKeyDictionary()


def locked_ids(img: EditableLabels) -> frozenset[int]:
    """The ids of ``img`` that no edit may change (:class:`LockLabels`)."""
    return frozenset(_LOCKS.get(img, ()))


def _refuse_locked(img: EditableLabels, ids: Sequence[int], what: str = "object") -> None:
    hit = sorted(set(int(i) for i in ids) & locked_ids(img))
    if hit:
        shown = ", ".join(str(i) for i in hit[:5]) + (" ..." if len(hit) > 5 else "")
        raise LabelEditError(
            f"{what} {shown} of {img.name!r} {'is' if len(hit) == 1 else 'are'} locked "
            "(unlock first: labels.unlock)"
        )


def _keep_locked(img: EditableLabels, mask: npt.NDArray[np.bool_], old: npt.NDArray[Any]) -> None:
    """Clear ``mask`` where ``old`` (voxels of ``img``) holds a locked id (nothing to do,
    and no pass over the box, when no id is locked)."""
    locked = locked_ids(img)
    if locked:
        mask &= ~np.isin(old, np.fromiter(locked, dtype=np.int64, count=len(locked)))


#: The id state of label images that keep none themselves (an ``EditableLabels`` without
#: an ``ids`` attribute); the project's working copy keeps its own (``LabelEditStore.ids``).
_IDS: weakref.WeakKeyDictionary[Any, LabelIds] = weakref.WeakKeyDictionary()


def id_state(img: EditableLabels) -> LabelIds:
    """The id mapping and voxel counts of ``img`` (:class:`LabelIds`)."""
    own = getattr(img, "ids", None)
    if isinstance(own, LabelIds):
        return own
    got = _IDS.get(img)
    if got is None:
        got = _IDS[img] = LabelIds()
    return got


def _shown(img: EditableLabels, raw: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return id_state(img).show(raw)


def shown_at(img: EditableLabels, point: Sequence[int]) -> int:
    """The id shown at level-0 voxel ``point`` (the id mapping applied)."""
    raw = int(img.read(tuple(slice(int(v), int(v) + 1) for v in point)).reshape(-1)[0])
    return id_state(img).shown_id(raw)


def _raw_value(img: EditableLabels, value: int) -> int:
    """The raw id an edit writes so that its voxels show ``value``."""
    st = id_state(img)
    raw = st.raw_for(value)
    if raw is None:
        raise LabelEditError(
            f"id {value} of {img.name!r} was merged into {st.shown_id(value)}: use that id "
            "or a new one"
        )
    return raw


def _require_present(img: EditableLabels, ids: Sequence[int]) -> None:
    """Refuse shown ids that hold no voxel (the counts, no scan)."""
    _missing(ids, id_state(img).present(img, ids), img)


# ---------------------------------------------------------------------- validation helpers


def _check_id(img: EditableLabels, value: int, what: str, allow_zero: bool = False) -> int:
    v = int(value)
    if v == 0 and not allow_zero:
        raise LabelEditError(f"{what} 0 is the background, not an object")
    info = np.iinfo(img.dtype)
    if not max(0, int(info.min)) <= v <= int(info.max):
        raise LabelEditError(
            f"{what} {v} does not fit the label image {img.name!r} ({img.dtype}: 0..{info.max})"
        )
    return v


def _check_ids(
    img: EditableLabels, values: Sequence[int], what: str, allow_zero: bool = False
) -> list[int]:
    """:func:`_check_id` for many ids (the image's dtype looked up once: a table has
    tens of thousands of rows)."""
    info = np.iinfo(img.dtype)
    lo, hi = max(0, int(info.min)), int(info.max)
    out = [int(v) for v in values]
    for v in out:
        if (v == 0 and not allow_zero) or not lo <= v <= hi:
            _check_id(img, v, what, allow_zero)  # raises the message
    return out


def _check_point(img: EditableLabels, point: Sequence[int], what: str) -> tuple[int, int, int]:
    if len(point) != 3:
        raise LabelEditError(f"{what} must be three voxel indices z, y, x, got {tuple(point)}")
    p = tuple(int(v) for v in point)
    if any(not 0 <= v < s for v, s in zip(p, img.shape, strict=True)):
        raise LabelEditError(
            f"{what} {p} lies outside the label image {img.name!r} (shape {img.shape})"
        )
    return (p[0], p[1], p[2])


def _value_at(img: EditableLabels, p: Sequence[int]) -> int:
    return shown_at(img, p)


def _map_blocks(img: EditableLabels, keys: npt.NDArray[Any], values: npt.NDArray[Any]) -> LabelAtom:
    """Rewrite raw voxels ``keys[i]`` to ``values[i]`` everywhere (a block scan): the atom."""
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    v = values[order].astype(img.dtype)
    pieces: list[LabelPiece] = []
    if not k.size:
        return LabelAtom(())
    for block in img.blocks():
        data = img.read(block)
        idx = np.searchsorted(k, data)
        np.minimum(idx, len(k) - 1, out=idx)
        hit = k[idx] == data
        if not hit.any():
            continue
        new = np.where(hit, v[idx], data)
        pieces.extend(
            _pieces(tuple(s.start for s in block), hit & (new != data), data, new, img.chunks)
        )
    return LabelAtom(tuple(pieces))


def _missing(ids: Sequence[int], found: set[int], img: EditableLabels) -> None:
    missing = sorted(set(ids) - found)
    if missing:
        shown = ", ".join(str(i) for i in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise LabelEditError(
            f"{len(missing)} id(s) not in label image {img.name!r}: {shown} (unknown ids)"
        )


# ---------------------------------------------------------------------- commands


class _LabelCommand(Command):
    """Shared apply/revert: compute (validate) the atom once, record it, write it."""

    labels: str
    atom_id: str | None

    def _compute(self, img: EditableLabels) -> LabelAtom:
        raise NotImplementedError

    def apply(self, target: Any) -> None:
        img = labels_of(target, self.labels)
        if self.atom_id is None:
            atom = self._compute(img)
            self.atom_id = img.record(atom)
            self.n_voxels = atom.n_voxels
            img.set(self.atom_id, True, atom)
        else:
            img.set(self.atom_id, True)

    def preview(self, target: Any) -> LabelAtom:
        """The change the command would make, computed (and validated) without writing
        anything (a split's parts shown before the user accepts them)."""
        return self._compute(labels_of(target, self.labels))

    def revert(self, target: Any) -> None:
        if self.atom_id is None:
            raise LabelEditError(f"{self.kind} was never applied")
        labels_of(target, self.labels).set(self.atom_id, False)

    def _base_json(self) -> dict[str, Any]:
        return {"labels": self.labels, "atom": self.atom_id}


def _ids(values: Sequence[int]) -> list[int]:
    return [int(v) for v in values]


def _entries_from_json(data: Any) -> list[MapEntry] | None:
    """The ``map`` of a merge or table journal line: ``[[raw, before, after], ...]``."""
    if data is None:
        return None
    if not isinstance(data, list):
        raise FormatError(f"id mapping entries must be a list, got {type(data).__name__}")
    out: list[MapEntry] = []
    for e in data:
        if (
            not isinstance(e, list | tuple)
            or len(e) != 3
            or not all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in e)
            or e[0] is None
            or any(v is not None and not 0 <= v < 2**63 for v in e)
            or e[1] == e[2]
        ):
            raise FormatError(f"id mapping entry {e!r} is not [raw id, before, after]")
        out.append((int(e[0]), e[1], e[2]))
    if len({e[0] for e in out}) != len(out):
        raise FormatError("id mapping entries name a raw id more than once")
    return out


def _remap(kind: str, img: EditableLabels, entries: list[MapEntry], forward: bool) -> None:
    """Set (``forward``) or take back ``entries`` on ``img``'s id mapping; a journal
    replay (the store's ``replaying``) may find them set already."""
    try:
        id_state(img).remap(entries, forward, strict=not getattr(img, "replaying", False))
    except ValueError as exc:
        raise LabelEditError(f"{kind}: {exc}") from exc


class _MapCommand(_LabelCommand):
    """A command that changes the id mapping (``docs/design/0005``), not voxels.

    The first apply computes (and validates) the mapping entries it changes, ``[raw id,
    value before, value after]`` (None: not remapped); they are journaled, so a replay or
    redo sets the same entries and an undo puts back the values before, exactly. Journal
    lines of older versions carry an atom instead (the merge was a voxel rewrite): those
    still write their atom.
    """

    entries: list[MapEntry] | None

    def _entries(self, img: EditableLabels) -> list[MapEntry]:
        raise NotImplementedError

    def apply(self, target: Any) -> None:
        img = labels_of(target, self.labels)
        if self.atom_id is not None:  # an older journal's voxel rewrite
            img.set(self.atom_id, True)
            return
        st = id_state(img)
        if self.entries is None:
            entries = self._entries(img)
            if not entries:
                raise LabelEditError(f"{self.description} changes no id of {img.name!r}")
            self.n_voxels = st.voxels_of_raws(img, [e[0] for e in entries])
            self.entries = entries
        elif getattr(img, "available", True):  # replayed or received: ids that fit
            _check_ids(img, [v for e in self.entries for v in e if v is not None], "id", True)
        _remap(self.kind, img, self.entries, True)

    def preview(self, target: Any) -> LabelAtom:
        self._entries(labels_of(target, self.labels))  # validates
        return LabelAtom(())

    def revert(self, target: Any) -> None:
        img = labels_of(target, self.labels)
        if self.atom_id is not None:
            img.set(self.atom_id, False)
            return
        if self.entries is None:
            raise LabelEditError(f"{self.kind} was never applied")
        _remap(self.kind, img, self.entries, False)

    def _base_json(self) -> dict[str, Any]:
        out = super()._base_json()
        if self.entries is not None:
            out["map"] = [list(e) for e in self.entries]
        return out


def _remap_entries(img: EditableLabels, new_of: Mapping[int, int]) -> list[MapEntry]:
    """The mapping entries that make every voxel showing ``d`` show ``new_of[d]`` (raw ids
    that hold voxels only; an entry that would map a raw id to itself removes its key)."""
    st = id_state(img)
    counts = st.counts(img)
    out: list[MapEntry] = []
    for r in sorted(st.raws_of(new_of)):
        if not counts.get(r, 0):
            continue
        before = st.mapping_of(r)
        target = new_of[r if before is None else before]
        after = None if target == r else target
        if after != before:
            out.append((r, before, after))
    return out


class MergeLabels(_MapCommand):
    """Merge objects ``ids`` into one id (``into``, default the smallest): the id mapping
    shows them all as ``into``; no voxel is written."""

    kind = "labels.merge"

    def __init__(
        self,
        labels: str,
        ids: Sequence[int],
        into: int | None = None,
        atom: str | None = None,
        entries: Sequence[MapEntry] | None = None,
    ) -> None:
        self.labels = str(labels)
        self.ids = _ids(ids)
        self.into = None if into is None else int(into)
        self.atom_id = atom
        self.entries = None if entries is None else list(entries)
        self.n_voxels = 0

    @property
    def description(self) -> str:
        return f"merge {len(self.ids)} objects"

    def _entries(self, img: EditableLabels) -> list[MapEntry]:
        ids = _check_ids(img, self.ids, "id")
        if len(set(ids)) < 2:
            raise LabelEditError(f"merge needs at least two different ids, got {self.ids}")
        into = _check_id(img, self.into if self.into is not None else min(ids), "target id")
        _refuse_locked(img, [*ids, into])
        _require_present(img, ids)
        self.into = into
        return _remap_entries(img, {d: into for d in set(ids)})

    def to_json(self) -> dict[str, Any]:
        return {**self._base_json(), "ids": self.ids, "into": self.into}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MergeLabels:
        return cls(
            data["labels"],
            data["ids"],
            data.get("into"),
            data.get("atom"),
            _entries_from_json(data.get("map")),
        )


class ApplyTable(_MapCommand):
    """Relabel many ids at once: ``table`` rows ``(old, new)`` (an agglomeration), through
    the id mapping (no voxel is written).

    Rows with ``old == new`` are ignored; ``new`` may be 0 (the object is shown as
    background). Every old id must be in the label image and listed once; the rows apply
    at once (a table may swap two ids).
    """

    kind = "labels.apply_table"

    def __init__(
        self,
        labels: str,
        table: Sequence[Sequence[int]],
        atom: str | None = None,
        entries: Sequence[MapEntry] | None = None,
    ) -> None:
        self.labels = str(labels)
        self.table = [[int(a), int(b)] for a, b in table]
        self.atom_id = atom
        self.entries = None if entries is None else list(entries)
        self.n_voxels = 0

    @property
    def description(self) -> str:
        return f"apply a table of {len(self.table)} rows"

    def _entries(self, img: EditableLabels) -> list[MapEntry]:
        rows = [(a, b) for a, b in self.table if a != b]
        if not rows:
            raise LabelEditError("the table changes nothing (every row maps an id to itself)")
        old = _check_ids(img, [a for a, _ in rows], "old id")
        new = _check_ids(img, [b for _, b in rows], "new id", allow_zero=True)
        if len(set(old)) != len(old):
            dup = sorted(a for a, n in Counter(old).items() if n > 1)[:5]
            raise LabelEditError(f"old ids listed more than once in the table: {dup}")
        _refuse_locked(img, [*old, *new])
        _require_present(img, old)
        return _remap_entries(img, dict(zip(old, new, strict=True)))

    def to_json(self) -> dict[str, Any]:
        return {**self._base_json(), "table": self.table}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApplyTable:
        return cls(
            data["labels"], data["table"], data.get("atom"), _entries_from_json(data.get("map"))
        )


class CommitLabels(_LabelCommand):
    """Make the id mapping permanent in the voxels: every voxel of a remapped raw id is
    rewritten to the id it shows (one atom, a block scan) and the mapping is cleared.
    Nothing shown changes; undo puts the fragments and the mapping back."""

    kind = "labels.commit"

    def __init__(
        self, labels: str, atom: str | None = None, entries: Sequence[MapEntry] | None = None
    ) -> None:
        self.labels = str(labels)
        self.atom_id = atom
        self.entries = None if entries is None else list(entries)
        self.n_voxels = 0

    @property
    def description(self) -> str:
        return "commit merges"

    def _compute(self, img: EditableLabels) -> LabelAtom:
        mapping = id_state(img).mapping
        if not mapping:
            raise LabelEditError(f"{img.name!r} has no merges or tables to commit")
        keys = np.array(sorted(mapping), dtype=np.int64)
        values = np.array([mapping[int(k)] for k in keys], dtype=np.int64)
        self.entries = [(int(k), int(v), None) for k, v in zip(keys, values, strict=True)]
        return _map_blocks(img, keys.astype(img.dtype), values)

    def preview(self, target: Any) -> LabelAtom:
        atom = super().preview(target)
        self.entries = None  # computed where it is applied (a collaboration server)
        return atom

    def apply(self, target: Any) -> None:
        img = labels_of(target, self.labels)
        super().apply(target)  # the voxels first (the journal line names the atom) ...
        assert self.entries is not None
        _remap(self.kind, img, self.entries, True)  # ... then the mapping they make redundant

    def revert(self, target: Any) -> None:
        img = labels_of(target, self.labels)
        if self.entries is None:
            raise LabelEditError(f"{self.kind} was never applied")
        _remap(self.kind, img, self.entries, False)
        super().revert(target)

    def to_json(self) -> dict[str, Any]:
        out = self._base_json()
        if self.entries is not None:
            out["map"] = [list(e) for e in self.entries]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CommitLabels:
        entries = _entries_from_json(data.get("map"))
        if (data.get("atom") is None) != (entries is None):
            raise FormatError("labels.commit needs both its atom and its mapping entries")
        return cls(data["labels"], data.get("atom"), entries)


class DeleteLabels(_LabelCommand):
    """Set every voxel of objects ``ids`` to the background (0)."""

    kind = "labels.delete"

    def __init__(self, labels: str, ids: Sequence[int], atom: str | None = None) -> None:
        self.labels = str(labels)
        self.ids = _ids(ids)
        self.atom_id = atom
        self.n_voxels = 0

    @property
    def description(self) -> str:
        return f"delete {len(self.ids)} objects"

    def _compute(self, img: EditableLabels) -> LabelAtom:
        if not self.ids:
            raise LabelEditError("give at least one id to delete")
        ids = sorted({_check_id(img, i, "id") for i in self.ids})
        _refuse_locked(img, ids)
        _require_present(img, ids)
        # Every raw id that shows as one of them (the fragments of a merged object).
        keys = np.array(sorted(id_state(img).raws_of(ids)), dtype=img.dtype)
        atom = _map_blocks(img, keys, np.zeros(keys.shape, dtype=img.dtype))
        return atom

    def to_json(self) -> dict[str, Any]:
        return {**self._base_json(), "ids": self.ids}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeleteLabels:
        return cls(data["labels"], data["ids"], data.get("atom"))


def _bbox_of(img: EditableLabels, value: int) -> Region | None:
    lo = np.array(img.shape)
    hi = np.zeros(3, dtype=int)
    for block in img.blocks():
        m = _shown(img, img.read(block)) == value
        if not m.any():
            continue
        for ax in range(3):
            other = tuple(a for a in range(3) if a != ax)
            idx = np.flatnonzero(m.any(axis=other))
            lo[ax] = min(lo[ax], block[ax].start + idx[0])
            hi[ax] = max(hi[ax], block[ax].start + idx[-1] + 1)
    if (hi <= lo).any():
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


class SplitLabel(_LabelCommand):
    """Split object ``id`` by two or more seed points (level-0 voxel indices z, y, x).

    A seeded watershed on the object's distance transform (in µm), inside the object's
    bounding box: every voxel of the object goes to one seed's part (voxels the flood
    cannot reach, in a separate piece of the object, go to the nearest part); nothing
    outside the object changes. The first seed's part keeps ``id``; the others get new
    ids above the largest id in the image (``new_ids`` once applied).
    """

    kind = "labels.split"

    def __init__(
        self,
        labels: str,
        id: int,
        seeds: Sequence[Sequence[int]],
        new_ids: Sequence[int] | None = None,
        atom: str | None = None,
    ) -> None:
        self.labels = str(labels)
        self.id = int(id)
        self.seeds = [[int(v) for v in s] for s in seeds]
        self.new_ids = None if new_ids is None else _ids(new_ids)
        self.atom_id = atom
        self.n_voxels = 0
        #: The object's bounding box (level-0 voxel regions), once computed.
        self.box: Region | None = None

    @property
    def description(self) -> str:
        return f"split object {self.id}"

    @property
    def result_ids(self) -> list[int]:
        """The ids the seeds end in, in seed order (after apply)."""
        return [self.id, *(self.new_ids or [])]

    def _compute(self, img: EditableLabels) -> LabelAtom:
        from scipy import ndimage as ndi
        from skimage.segmentation import watershed

        oid = _check_id(img, self.id, "id")
        _refuse_locked(img, [oid])
        if len(self.seeds) < 2:
            raise LabelEditError(f"split needs at least two seeds, got {len(self.seeds)}")
        seeds = [_check_point(img, s, f"seed {i + 1}") for i, s in enumerate(self.seeds)]
        if len(set(seeds)) != len(seeds):
            raise LabelEditError(f"seeds coincide: {seeds} (place each seed somewhere else)")
        for i, s in enumerate(seeds):
            got = _value_at(img, s)
            if got != oid:
                raise LabelEditError(
                    f"seed {i + 1} {s} lies outside object {oid} (the voxel holds {got})"
                )
        box = _bbox_of(img, oid)
        assert box is not None  # the seeds are inside the object
        self.box = box
        start = np.array([b.start for b in box])
        data = img.read(box)
        obj = _shown(img, data) == oid
        markers = np.zeros(data.shape, dtype=np.int32)
        for i, s in enumerate(seeds):
            markers[tuple(np.array(s) - start)] = i + 1
        dist = ndi.distance_transform_edt(obj, sampling=img.scale_um)
        parts = np.asarray(watershed(-dist, markers, mask=obj))  # type: ignore[no-untyped-call]
        if (obj & (parts == 0)).any():
            # Pieces of the object that no seed reaches (disconnected) join the nearest part.
            _, inds = ndi.distance_transform_edt(
                parts == 0, sampling=img.scale_um, return_indices=True
            )
            parts = np.where(obj, parts[tuple(inds)], 0)
        top = img.max_id()
        ids = [oid, *range(top + 1, top + len(seeds))]
        for v in ids[1:]:
            _check_id(img, v, "new id")
        self.new_ids = ids[1:]
        # The first seed's part keeps its raw values (the object's fragments, shown as
        # ``id``); the others get the new ids (above every raw and mapped id: not remapped).
        lut = np.array([0, 0, *ids[1:]], dtype=img.dtype)
        new = np.where(obj & (parts > 1), lut[parts], data)
        return LabelAtom.from_region(start.tolist(), obj, data, new, img.chunks)

    def to_json(self) -> dict[str, Any]:
        return {
            **self._base_json(),
            "id": self.id,
            "seeds": self.seeds,
            "new_ids": self.new_ids,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SplitLabel:
        return cls(data["labels"], data["id"], data["seeds"], data.get("new_ids"), data.get("atom"))


def ball_mask(
    center: Sequence[int],
    radius_um: float,
    scale_um: Sequence[float],
    shape: Sequence[int],
    flat_axis: int | None = None,
    copy: bool = True,
) -> tuple[tuple[int, int, int], npt.NDArray[np.bool_]]:
    """The voxels whose centres lie within ``radius_um`` of ``center``'s centre, clipped
    to ``shape``: the box's offset and the mask (a writable copy; ``copy=False``: a
    read-only view of the brush's cached template).

    ``flat_axis``: a disc instead of a ball, one voxel thick across that axis (the
    plane of a slice view: 0 XY, 1 XZ, 2 YZ).
    """
    radii, template = _ball_template(float(radius_um), tuple(float(s) for s in scale_um), flat_axis)
    lo = []
    cut = []
    for c, r, n in zip(center, radii, shape, strict=True):
        a, b = max(0, int(c) - r), min(int(n), int(c) + r + 1)
        lo.append(a)
        cut.append(slice(a - (int(c) - r), b - (int(c) - r)))
    mask = template[tuple(cut)]
    return (lo[0], lo[1], lo[2]), mask.copy() if copy else mask


def brush_region(
    center: Sequence[int],
    radius_um: float,
    scale_um: Sequence[float],
    shape: Sequence[int],
    flat_axis: int | None = None,
    reach: float = 1.5,
) -> tuple[slice, ...]:
    """The level-0 box that the brush's next stamps read when it hovers at ``center``:
    its ball (or disc, one voxel thick across ``flat_axis``) grown to ``reach`` times
    its radius (a stroke's next stamps are half a radius apart), clipped to ``shape``.
    What :meth:`analysis.io.LabelEditStore.prefetch` is asked to decode."""
    out = []
    for ax, (c, s, n) in enumerate(zip(center, scale_um, shape, strict=True)):
        r = 0 if ax == flat_axis else int(math.ceil(radius_um * reach / s))
        out.append(slice(max(0, int(c) - r), min(int(n), int(c) + r + 1)))
    return tuple(out)


@functools.lru_cache(maxsize=16)
def _ball_template(
    radius_um: float, scale_um: tuple[float, ...], flat_axis: int | None
) -> tuple[tuple[int, ...], npt.NDArray[np.bool_]]:
    """The unclipped ball (or disc) around a voxel, per (radius, voxel size, axis): a
    stroke stamps the same brush many times. (``skimage.morphology.ball`` /
    ``ellipsoid`` take radii in voxels and round differently; the brush is defined
    by voxel centres within ``radius_um`` µm at anisotropic voxel sizes.)"""
    radii = tuple(
        0 if ax == flat_axis else int(math.floor(radius_um / s)) for ax, s in enumerate(scale_um)
    )
    grids = np.ogrid[tuple(slice(-r, r + 1) for r in radii)]
    d2 = sum((g * s) ** 2 for g, s in zip(grids, scale_um, strict=True))
    mask = np.asarray(d2 <= radius_um**2 * (1 + 1e-9))
    mask.flags.writeable = False
    return radii, mask


class PaintBall(_LabelCommand):
    """Paint (``value`` > 0) or erase (``value`` 0) a 3D ball of ``radius_um`` µm.

    ``preserve``: never overwrite voxels that hold another object (only background and
    ``value`` itself are painted; erasing removes only ``erase_id`` when given).
    Voxels of locked ids are never painted or erased; painting a locked id is refused.
    ``axis``: a 2D disc in the plane across that axis (a slice view's brush) instead of
    a ball.
    """

    kind = "labels.paint"

    def __init__(
        self,
        labels: str,
        center: Sequence[int],
        radius_um: float,
        value: int,
        preserve: bool = False,
        erase_id: int | None = None,
        atom: str | None = None,
        axis: int | None = None,
    ) -> None:
        self.labels = str(labels)
        self.center = [int(v) for v in center]
        self.axis = None if axis is None else int(axis)
        self.radius_um = float(radius_um)
        self.value = int(value)
        self.preserve = bool(preserve)
        self.erase_id = None if erase_id is None else int(erase_id)
        self.atom_id = atom
        self.n_voxels = 0

    @property
    def description(self) -> str:
        return "erase" if self.value == 0 else f"paint {self.value}"

    def _compute(self, img: EditableLabels) -> LabelAtom:
        value = _check_id(img, self.value, "id", allow_zero=True)
        c = _check_point(img, self.center, "ball centre")
        if not (math.isfinite(self.radius_um) and self.radius_um > 0):
            raise LabelEditError(
                f"brush radius must be a positive number of µm, got {self.radius_um}"
            )
        # Checked before the brush is built: its (unclipped) template spans 2 r / voxel
        # size voxels per axis, so a radius of 1e6 µm asked for petabytes (a MemoryError).
        # A ball wider than the image's diagonal covers no more voxels than one as wide.
        diagonal = math.hypot(*(n * s for n, s in zip(img.shape, img.scale_um, strict=True)))
        if self.radius_um > diagonal:
            raise LabelEditError(
                f"brush radius {self.radius_um} µm is larger than the label image "
                f"{img.name!r} (its diagonal is {diagonal:.4g} µm)"
            )
        if self.axis is not None and self.axis not in (0, 1, 2):
            raise LabelEditError(f"disc axis must be 0, 1 or 2 (z, y, x), got {self.axis}")
        offset, ball = ball_mask(c, self.radius_um, img.scale_um, img.shape, self.axis, False)
        region = tuple(slice(o, o + s) for o, s in zip(offset, ball.shape, strict=True))
        if value != 0:
            _refuse_locked(img, [value], "id")
        elif self.erase_id is not None:
            _refuse_locked(img, [self.erase_id])
        erase_id = (
            _check_id(img, self.erase_id, "erase id")
            if value == 0 and self.erase_id is not None
            else None
        )
        raw_value = _raw_value(img, value)
        new = np.asarray(raw_value, dtype=img.dtype)  # one value: pieces share it
        remapped = len(id_state(img)) > 0
        pieces: list[LabelPiece] = []
        # Chunk by chunk (each part is one piece of the atom): the ball's part of the
        # template and the chunk's voxels are looked at once, while in the CPU's cache.
        for first, old in _chunk_parts(img, region):
            at = tuple(
                slice(f - o, f - o + n) for f, o, n in zip(first, offset, old.shape, strict=True)
            )
            if _one_value(old):  # a chunk no edit wrote
                if old.flat[0] == new:
                    continue
                mask = np.array(ball[at], order="C")  # a copy: the checks below clear it
            else:
                mask = old != new
                mask &= ball[at]
            if not mask.any():
                continue
            shown = _shown(img, old)  # what the checks mean; the atom keeps raw values
            if value != 0 and self.preserve:
                mask &= (shown == 0) | (shown == value)
            elif erase_id is not None:
                mask &= shown == erase_id
            _keep_locked(img, mask, shown)  # locked objects keep every voxel
            if remapped:
                mask &= shown != value  # voxels that show it already keep their fragment
            pieces.extend(_pieces(first, mask, old, new, img.chunks))
        # Every voxel of the ball changes (painting into space the brush has not been):
        # the ball is the atom's mask (each piece's is a subset of the ball).
        whole = sum(p.old.size for p in pieces) == np.count_nonzero(ball)
        return LabelAtom(tuple(pieces), (offset, ball) if whole and pieces else None)

    def to_json(self) -> dict[str, Any]:
        return {
            **self._base_json(),
            "center": self.center,
            "radius_um": self.radius_um,
            "value": self.value,
            "preserve": self.preserve,
            "erase_id": self.erase_id,
            **({"axis": self.axis} if self.axis is not None else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PaintBall:
        return cls(
            data["labels"],
            data["center"],
            data["radius_um"],
            data["value"],
            bool(data.get("preserve", False)),
            data.get("erase_id"),
            data.get("atom"),
            data.get("axis"),
        )


class FillLabel(_LabelCommand):
    """3D flood fill from ``seed`` with ``value``, limited to ``box`` (z0, y0, x0, z1, y1, x1,
    level-0 voxels, end exclusive): the face-connected voxels holding the seed's value."""

    kind = "labels.fill"

    def __init__(
        self,
        labels: str,
        seed: Sequence[int],
        value: int,
        box: Sequence[int],
        atom: str | None = None,
    ) -> None:
        self.labels = str(labels)
        self.seed = [int(v) for v in seed]
        self.value = int(value)
        self.box = [int(v) for v in box]
        self.atom_id = atom
        self.n_voxels = 0

    @property
    def description(self) -> str:
        return f"fill {self.value}"

    def _compute(self, img: EditableLabels) -> LabelAtom:
        from scipy import ndimage as ndi

        value = _check_id(img, self.value, "id", allow_zero=True)
        seed = _check_point(img, self.seed, "fill seed")
        if len(self.box) != 6:
            raise LabelEditError(f"box must be z0 y0 x0 z1 y1 x1, got {self.box}")
        lo = [max(0, v) for v in self.box[:3]]
        hi = [min(n, v) for v, n in zip(self.box[3:], img.shape, strict=True)]
        if any(b <= a for a, b in zip(lo, hi, strict=True)):
            raise LabelEditError(f"box {self.box} is empty inside the label image {img.shape}")
        if any(not a <= s < b for s, a, b in zip(seed, lo, hi, strict=True)):
            raise LabelEditError(f"fill seed {seed} lies outside the box {self.box}")
        region = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        old = img.read(region)
        shown = _shown(img, old)  # a merged object fills as one; the atom keeps raw values
        local = tuple(s - a for s, a in zip(seed, lo, strict=True))
        _refuse_locked(img, [int(shown[local])] if shown[local] else [])
        if value != 0:
            _refuse_locked(img, [value], "id")
        raw_value = _raw_value(img, value)
        same = shown == shown[local]
        comp, _ = ndi.label(same)
        mask = comp == comp[local]
        new = np.asarray(raw_value, dtype=img.dtype)
        return LabelAtom.from_region(lo, mask, old, new, img.chunks)

    def to_json(self) -> dict[str, Any]:
        return {**self._base_json(), "seed": self.seed, "value": self.value, "box": self.box}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FillLabel:
        return cls(data["labels"], data["seed"], data["value"], data["box"], data.get("atom"))


# ---------------------------------------------------------------------- locks


class LockLabels(Command):
    """Lock objects ``ids`` of label image ``labels``: no later edit changes their voxels
    (paint, erase, fill and interpolate go around them; merge, delete, split and relabel
    refuse them) until :class:`UnlockLabels`. Undo unlocks the ids this command locked."""

    kind = "labels.lock"
    _lock = True

    def __init__(
        self, labels: str, ids: Sequence[int], changed: Sequence[int] | None = None
    ) -> None:
        self.labels = str(labels)
        self.ids = _ids(ids)
        #: The ids whose state this command changed (set by the first apply).
        self.changed = None if changed is None else _ids(changed)

    @property
    def description(self) -> str:
        verb = "lock" if self._lock else "unlock"
        return f"{verb} {', '.join(str(i) for i in self.ids[:3])}" + (
            " ..." if len(self.ids) > 3 else ""
        )

    def _compute(self, img: EditableLabels) -> list[int]:
        if not self.ids:
            raise LabelEditError(f"give at least one id to {'lock' if self._lock else 'unlock'}")
        ids = {_check_id(img, i, "id") for i in self.ids}
        locked = locked_ids(img)
        if self._lock:
            todo = ids - locked
            if not todo:
                raise LabelEditError(f"{sorted(ids)} of {img.name!r} already locked")
            _require_present(img, sorted(todo))
        else:
            todo = ids & locked
            if not todo:
                raise LabelEditError(f"{sorted(ids)} of {img.name!r} not locked")
        return sorted(todo)

    def _set(self, img: EditableLabels, ids: Sequence[int], on: bool) -> None:
        locks = _LOCKS.setdefault(img, set())
        if on:
            locks.update(ids)
        else:
            locks.difference_update(ids)

    def apply(self, target: Any) -> None:
        img = labels_of(target, self.labels)
        if self.changed is None:
            self.changed = self._compute(img)
        self._set(img, self.changed, self._lock)

    def revert(self, target: Any) -> None:
        if self.changed is None:
            raise LabelEditError(f"{self.kind} was never applied")
        self._set(labels_of(target, self.labels), self.changed, not self._lock)

    def to_json(self) -> dict[str, Any]:
        return {"labels": self.labels, "ids": self.ids, "changed": self.changed}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LockLabels:
        return cls(data["labels"], data["ids"], data.get("changed"))


class UnlockLabels(LockLabels):
    """Unlock objects ``ids`` (the locked ones among them); undo locks them again."""

    kind = "labels.unlock"
    _lock = False


# ---------------------------------------------------------------------- relabel


class RelabelLabel(_LabelCommand):
    """Give object ``id`` another id: ``to`` (a free id: not in the image, not locked), or
    by default a new one (one above the largest id in the image)."""

    kind = "labels.relabel"

    def __init__(
        self, labels: str, id: int, to: int | None = None, atom: str | None = None
    ) -> None:
        self.labels = str(labels)
        self.id = int(id)
        self.to = None if to is None else int(to)
        self.atom_id = atom
        self.n_voxels = 0

    @property
    def description(self) -> str:
        return f"relabel {self.id}" + (f" as {self.to}" if self.to is not None else "")

    def _compute(self, img: EditableLabels) -> LabelAtom:
        oid = _check_id(img, self.id, "id")
        _refuse_locked(img, [oid])
        chosen = self.to is not None
        to = _check_id(img, self.to if self.to is not None else img.max_id() + 1, "new id")
        if to == oid:
            raise LabelEditError(f"object {oid} already has id {to}")
        _refuse_locked(img, [to], "id")
        _require_present(img, [oid])
        st = id_state(img)
        if st.present(img, [to]):
            what = "chosen" if chosen else "new"
            raise LabelEditError(
                f"{what} id {to} is in use in {img.name!r} (relabel to a free id, or merge)"
            )
        raw_to = _raw_value(img, to)
        # Every raw id that shows as ``oid`` (a merged object's fragments) becomes ``to``.
        keys = np.array(sorted(st.raws_of([oid])), dtype=img.dtype)
        atom = _map_blocks(img, keys, np.full(keys.shape, raw_to, dtype=img.dtype))
        self.to = to
        return atom

    def to_json(self) -> dict[str, Any]:
        return {**self._base_json(), "id": self.id, "to": self.to}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RelabelLabel:
        return cls(data["labels"], data["id"], data.get("to"), data.get("atom"))


# ---------------------------------------------------------------------- interpolate


def object_sections(img: EditableLabels, value: int, axis: int) -> list[int]:
    """The slice indices across ``axis`` (0 z, 1 y, 2 x) that hold voxels of ``value``."""
    hit: set[int] = set()
    other = tuple(a for a in range(3) if a != axis)
    for block in img.blocks():
        m = _shown(img, img.read(block)) == value
        if m.any():
            start = block[axis].start
            hit.update(int(start + i) for i in np.flatnonzero(m.any(axis=other)))
    return sorted(hit)


def _signed_distance(mask: npt.NDArray[np.bool_], sampling: Sequence[float]) -> npt.NDArray[Any]:
    """Signed distance (µm) to the mask's edge, > 0 inside, < 0 outside.

    The Euclidean distance transforms give, inside, the distance to the nearest outside
    voxel centre and, outside, to the nearest inside one; the edge lies half a voxel from
    both, so each side is moved half a voxel towards it (the zero level then sits between
    the last inside and the first outside voxel, whichever section it comes from). The
    mask is padded by one background voxel so that a mask touching the crop ends there.
    """
    from scipy import ndimage as ndi

    m = np.pad(mask, 1)
    half = 0.5 * min(sampling)
    inside = np.asarray(ndi.distance_transform_edt(m, sampling=sampling), np.float64)
    outside = np.asarray(ndi.distance_transform_edt(~m, sampling=sampling), np.float64)
    return np.where(m, inside - half, half - outside)


class InterpolateLabel(_LabelCommand):
    """Fill object ``id`` between its sections ``start`` and ``stop`` across ``axis``
    (shape interpolation, as Paintera and napari-interpolation do).

    The object's 2D masks on the two sections are turned into signed distance transforms
    (SciPy's Euclidean distance transform, in µm, positive inside); on each slice between
    them the two are blended linearly by the slice's position and the object is where the
    blend is > 0. Only background voxels are filled (other objects, locked ones included,
    keep theirs), inside the box of the two masks and strictly between the sections.
    """

    kind = "labels.interpolate"

    def __init__(
        self,
        labels: str,
        id: int,
        axis: int,
        start: int,
        stop: int,
        atom: str | None = None,
    ) -> None:
        self.labels = str(labels)
        self.id = int(id)
        self.axis = int(axis)
        self.start = int(start)
        self.stop = int(stop)
        self.atom_id = atom
        self.n_voxels = 0

    @property
    def description(self) -> str:
        return f"interpolate {self.id}"

    def _section(self, img: EditableLabels, oid: int, k: int) -> npt.NDArray[np.bool_]:
        region = [slice(0, n) for n in img.shape]
        region[self.axis] = slice(k, k + 1)
        shown = _shown(img, img.read(tuple(region)))
        m = np.asarray(np.take(shown == oid, 0, axis=self.axis), dtype=bool)
        if not m.any():
            name = "zyx"[self.axis]
            raise LabelEditError(
                f"object {oid} has no voxels on section {name}={k}: paint both sections first"
            )
        return m

    def _compute(self, img: EditableLabels) -> LabelAtom:
        oid = _check_id(img, self.id, "id")
        _refuse_locked(img, [oid])
        ax = self.axis
        if ax not in (0, 1, 2):
            raise LabelEditError(f"axis must be 0, 1 or 2 (z, y, x), got {ax}")
        k1, k2 = sorted((self.start, self.stop))
        n = img.shape[ax]
        for k in (k1, k2):
            if not 0 <= k < n:
                raise LabelEditError(
                    f"section {'zyx'[ax]}={k} lies outside the label image (0..{n - 1})"
                )
        if k2 - k1 < 2:
            raise LabelEditError(
                f"sections {'zyx'[ax]}={k1} and {k2} have no slice between them to fill"
            )
        m1, m2 = self._section(img, oid, k1), self._section(img, oid, k2)
        # The blend is < 0 where both distances are (outside both masks): the union's box
        # holds every voxel that can be filled.
        both = m1 | m2
        rows = np.flatnonzero(both.any(axis=1))
        cols = np.flatnonzero(both.any(axis=0))
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        plane_axes = [a for a in range(3) if a != ax]
        sampling = [img.scale_um[a] for a in plane_axes]
        d1 = _signed_distance(m1[r0:r1, c0:c1], sampling)[1:-1, 1:-1]
        d2 = _signed_distance(m2[r0:r1, c0:c1], sampling)[1:-1, 1:-1]
        t = (np.arange(k1 + 1, k2, dtype=np.float64) - k1) / (k2 - k1)
        blend = (1 - t)[:, None, None] * d1[None] + t[:, None, None] * d2[None]
        inside = np.moveaxis(blend > 0, 0, ax)
        region = [slice(0, 0)] * 3
        region[ax] = slice(k1 + 1, k2)
        region[plane_axes[0]] = slice(r0, r1)
        region[plane_axes[1]] = slice(c0, c1)
        old = img.read(tuple(region))
        mask = inside & (_shown(img, old) == 0)
        new = np.asarray(_raw_value(img, oid), dtype=img.dtype)
        return LabelAtom.from_region([r.start for r in region], mask, old, new, img.chunks)

    def to_json(self) -> dict[str, Any]:
        return {
            **self._base_json(),
            "id": self.id,
            "axis": self.axis,
            "start": self.start,
            "stop": self.stop,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InterpolateLabel:
        return cls(
            data["labels"], data["id"], data["axis"], data["start"], data["stop"], data.get("atom")
        )
