"""The id state of a label image that is not in its voxels: the id mapping and the counts.

**Mapping** (``docs/design/0005-merge-as-id-mapping.md``). Merges and tables do not
rewrite voxels: they change a flat mapping *raw id -> shown id* (Paintera's
fragment -> segment table, CAVE's agglomeration). The voxels keep their raw values
(the fragments); every reader sees ``shown = mapping.get(raw, raw)``, one lookup (never
a chain). Only remapped raw ids are keys, and no key maps to itself. A shown id ``d`` is
held by the raw ids :meth:`LabelIds.raws_of` ``({d})``: ``d`` itself when it is not a key,
and every key whose value is ``d``. To make a voxel show ``d`` an edit writes
:meth:`LabelIds.raw_for` ``(d)`` (``d``, or a key that shows as ``d`` when ``d`` is itself
remapped elsewhere, e.g. after a table that swaps two ids).

**Counts.** Voxels per raw id, computed once by a block scan when first needed (like the
largest id was) and then kept up to date from every atom written (apply, undo, redo):
existence checks of shown ids, the voxels a merge changes and the next free id need no
scan per edit. The largest id (:meth:`LabelIds.top`) is above every raw id that holds a
voxel and every key and value of the mapping, so a new id is never remapped.

The state is edit state like the locks (``docs/design/0004``): kept in memory, rebuilt by
the journal's replay (merge and table commands carry the mapping entries they change).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from psygnal import Signal

__all__ = ["LabelIds", "MapEntry"]

#: One change of the mapping: raw id, its value before and after (None: not a key).
MapEntry = tuple[int, int | None, int | None]

#: Largest key for which :meth:`LabelIds.show` uses a dense lookup table (one ``take``
#: per voxel) instead of a binary search of the sorted keys (``searchsorted``).
_DENSE_KEYS = 1 << 22
#: Largest value for which counts use ``np.bincount`` (else ``np.unique``, a sort).
_BINCOUNT_MAX = 1 << 22


class _Snapshot:
    """The mapping as sorted arrays (immutable: readers on other threads keep theirs)."""

    def __init__(self, mapping: dict[int, int]) -> None:
        keys = np.array(sorted(mapping), dtype=np.int64)
        self.keys = keys
        self.values = np.array([mapping[int(k)] for k in keys], dtype=np.int64)
        self.top_key = int(keys[-1]) if keys.size else -1
        self._luts: dict[np.dtype[Any], npt.NDArray[Any]] = {}

    def lut(self, dtype: np.dtype[Any]) -> npt.NDArray[Any] | None:
        if self.top_key >= _DENSE_KEYS:
            return None
        got = self._luts.get(dtype)
        if got is None:
            got = np.arange(self.top_key + 1, dtype=dtype)
            got[self.keys] = self.values.astype(dtype)
            self._luts[dtype] = got
        return got


def _value_counts(values: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Distinct values and how often each occurs (``np.bincount`` when they are small)."""
    flat = values.reshape(-1)
    if not flat.size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    lo, hi = int(flat.min()), int(flat.max())
    if lo >= 0 and hi < _BINCOUNT_MAX:
        bc = np.bincount(flat.astype(np.intp, copy=False))
        nz = np.flatnonzero(bc)
        return nz, bc[nz]
    u, c = np.unique(flat, return_counts=True)
    return u, c


class LabelIds:
    """The id mapping and the voxel counts of one label image (see the module docstring).

    Events
    ------
    remapped(before, after, forward)
        After the mapping changed: ``before`` the ids (0 included) that the remapped raw
        ids showed (a view re-reads what shows them), ``after`` the ids they show now,
        ``forward`` False for an undo.
    """

    remapped = Signal(object, object, bool)

    def __init__(self) -> None:
        self._map: dict[int, int] = {}
        #: shown id -> the keys that map to it (the mapping inverted, kept in step)
        self._inverse: dict[int, set[int]] = {}
        self._snap = _Snapshot({})
        self._counts: dict[int, int] | None = None

    # -- mapping ---------------------------------------------------------------------
    @property
    def mapping(self) -> dict[int, int]:
        """A copy of the mapping (raw -> shown; only remapped raw ids)."""
        return dict(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def mapping_of(self, raw: int) -> int | None:
        """The value of key ``raw`` (None: ``raw`` is not remapped)."""
        return self._map.get(int(raw))

    def shown_id(self, raw: int) -> int:
        return self._map.get(int(raw), int(raw))

    def show(self, data: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """``data`` (raw ids, any shape) as shown: a vectorised lookup of the mapping
        (the array itself when nothing is remapped, else a new one)."""
        snap = self._snap
        if not snap.keys.size or data.size == 0 or data.dtype.kind not in "iu":
            return data
        lut = snap.lut(data.dtype)
        if lut is not None:
            out = np.take(lut, data, mode="clip")
            outside = data > snap.top_key
            if data.dtype.kind == "i":
                outside |= data < 0
            np.putmask(out, outside, data)
            return out
        idx = np.searchsorted(snap.keys, data)
        np.minimum(idx, snap.keys.size - 1, out=idx)
        hit = snap.keys[idx] == data
        return np.where(hit, snap.values[idx].astype(data.dtype), data)

    def raws_of(self, shown: Iterable[int]) -> set[int]:
        """The raw ids that show as one of ``shown``."""
        want = {int(d) for d in shown}
        out = {d for d in want if d not in self._map}
        for d in want:
            out.update(self._inverse.get(d, ()))
        return out

    def raw_for(self, shown: int) -> int | None:
        """The raw id to write so that a voxel shows ``shown`` (None: every raw id that
        would is remapped elsewhere; ``shown`` was merged away)."""
        d = int(shown)
        if d == 0 or d not in self._map:
            return d
        got = self._inverse.get(d)
        return min(got) if got else None

    def remap(self, entries: Sequence[MapEntry], forward: bool, strict: bool = True) -> None:
        """Apply (``forward``) or revert mapping ``entries``; emits :attr:`remapped`.

        Raises ValueError (before changing anything) when an entry's starting value is
        not the current one (a journal or message that does not fit this state), unless
        not ``strict``: then the values are set whatever they were (a journal replayed
        over a state that holds it already, like an atom written again; idempotent).
        """
        changes = [(r, a, b) if forward else (r, b, a) for r, a, b in entries]
        if not strict:
            changes = [(r, self._map.get(r), b) for r, _, b in changes]
            changes = [(r, a, b) for r, a, b in changes if a != b]
        for r, a, _ in changes:
            if self._map.get(r) != a:
                raise ValueError(
                    f"id mapping of raw id {r} is {self._map.get(r)}, the edit expects {a}"
                )
        shown: set[int] = set()
        now: set[int] = set()
        for r, a, b in changes:
            shown.add(r if a is None else a)
            now.add(r if b is None else b)
            if a is not None:
                keys = self._inverse[a]
                keys.discard(r)
                if not keys:
                    del self._inverse[a]
            if b is None:
                self._map.pop(r, None)
            else:
                self._map[r] = b
                self._inverse.setdefault(b, set()).add(r)
        self._snap = _Snapshot(self._map)
        if changes:
            self.remapped.emit(frozenset(shown), frozenset(now), forward)

    # -- counts ----------------------------------------------------------------------
    def counts(self, img: Any) -> dict[int, int]:
        """Voxels per raw id (level 0; background left out): one block scan of ``img``
        the first time, then kept up to date by :meth:`applied`."""
        if self._counts is None:
            total: dict[int, int] = {}
            for block in img.blocks():
                for v, c in zip(*_value_counts(np.asarray(img.read(block))), strict=True):
                    total[int(v)] = total.get(int(v), 0) + int(c)
            total.pop(0, None)
            self._counts = total
        return self._counts

    def forget_counts(self) -> None:
        """The voxels changed outside :meth:`applied` (recovery): count again when asked."""
        self._counts = None

    def applied(self, atom: Any, forward: bool) -> None:
        """An atom's ``forward`` (new) or old values were written: update the counts (no
        work while they have not been counted)."""
        counts = self._counts
        if counts is None or not atom.pieces:
            return
        gone = np.concatenate([p.values(not forward) for p in atom.pieces])
        came = np.concatenate([p.values(forward) for p in atom.pieces])
        for values, sign in ((gone, -1), (came, 1)):
            for v, c in zip(*_value_counts(values), strict=True):
                n = counts.get(int(v), 0) + sign * int(c)
                if n > 0:
                    counts[int(v)] = n
                else:
                    counts.pop(int(v), None)
        counts.pop(0, None)

    def present(self, img: Any, shown: Iterable[int]) -> set[int]:
        """Which of the shown ids ``shown`` hold at least one voxel."""
        counts = self.counts(img)
        remapped, inverse = self._map, self._inverse
        out: set[int] = set()
        for d in map(int, shown):
            if (d not in remapped and d in counts) or any(r in counts for r in inverse.get(d, ())):
                out.add(d)
        return out

    def voxels_of_raws(self, img: Any, raws: Iterable[int]) -> int:
        counts = self.counts(img)
        return sum(counts.get(int(r), 0) for r in raws)

    def top(self, img: Any) -> int:
        """The largest id in use: raw ids holding voxels, and the mapping's keys and
        values (a new id, one above, is neither shown nor remapped)."""
        counts = self.counts(img)
        snap = self._snap
        top = max(counts, default=0)
        if snap.keys.size:
            top = max(top, int(snap.keys[-1]), int(snap.values.max()))
        return top

    def __repr__(self) -> str:
        return f"LabelIds({len(self._map)} remapped, counted={self._counts is not None})"
