"""``Residency``: which bricks of the streamed (time, channel) are in RAM, drawn, or failed.

Split out of :class:`~viewer.streaming.VolumeStreamer` (issue 16): the streamer asks
questions per frame ("which of these nodes are resident?", "is this brick drawn?")
that must cost NumPy indexing, not a cache lookup per brick, so it keeps bitmaps over
the grid's brick codes in step with the :class:`BrickCache`. This class owns those
bitmaps and the rules that keep them right:

- the residency bitmap is rebuilt when the cache changed behind its back (another
  layer's puts, an eviction it did not see) or the (time, channel) base moved, else it
  is patched per batch of arrivals and evictions;
- the drawn bitmap marks the bricks of the last draw list (the cache gives them a
  second chance before evicting them);
- failed bricks are remembered, and never requested again.

``version`` increases whenever the resident set may have changed, so the streamer can
reuse a draw list computed for the same selection and version.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ._cache import BrickCache

__all__ = ["Residency"]

I64 = npt.NDArray[np.int64]


class Residency:
    """Bitmaps over the ``n_bricks`` brick codes of one (time, channel) key base.

    Parameters
    ----------
    cache : BrickCache
        Holds the bricks (keys are ``base + code``).
    n_bricks : int
        Bricks in the grid (every level).
    """

    def __init__(self, cache: BrickCache, n_bricks: int) -> None:
        self.cache = cache
        self.n_bricks = int(n_bricks)
        self.resident = np.zeros(self.n_bricks, dtype=bool)
        self.base = -1
        self.version = 0
        self._cache_version = -1
        self.drawn = np.zeros(self.n_bricks, dtype=bool)
        self._drawn_codes = np.zeros(0, np.int64)
        self._failed: set[int] = set()
        self.failed_keys = np.zeros(0, np.int64)  # sorted

    # -- residency ----------------------------------------------------------------------
    def sync(self, base: int) -> None:
        """Rebuild the bitmap if the cache changed behind our back or ``base`` moved."""
        if base == self.base and self.cache.version == self._cache_version:
            return
        # A new array, not a rewrite in place: a selection worker reading the old one
        # (VolumeStreamer(background=True)) never sees it half rebuilt.
        resident = np.zeros(self.n_bricks, dtype=bool)
        keys = self.cache.keys_array()
        mine = keys[(keys >= base) & (keys < base + self.n_bricks)]
        resident[mine - base] = True
        self.resident = resident
        if base != self.base:
            self.mark_drawn(np.zeros(0, np.int64))
        self.base = base
        self._cache_version = self.cache.version
        self.version += 1

    def store(self, keys: Sequence[int], arrays: Sequence[npt.NDArray[np.generic]]) -> list[int]:
        """Put arrivals into the cache (one ``put_many``; drawn bricks are kept) and
        patch the bitmap for them and for what the cache evicted. Returns the evicted."""
        in_sync = self.cache.version == self._cache_version
        evicted = self.cache.put_many(list(keys), list(arrays), self.in_use_many)
        if in_sync:
            base, n, res = self.base, self.n_bricks, self.resident
            ev = np.asarray(evicted, dtype=np.int64) - base
            res[ev[(ev >= 0) & (ev < n)]] = False
            # Evicted within this call (more arrived than fit), or refused: not resident.
            if evicted:
                cache = self.cache
                code = np.asarray([k for k in keys if k in cache], dtype=np.int64) - base
            else:
                code = np.asarray(keys, dtype=np.int64) - base
            res[code[(code >= 0) & (code < n)]] = True
            self._cache_version = self.cache.version
        self.version += 1
        return evicted

    # -- drawn ---------------------------------------------------------------------------
    def mark_drawn(self, codes: I64) -> None:
        """Remember the bricks drawn now (the cache gives them a second chance)."""
        self.drawn[self._drawn_codes] = False
        self.drawn[codes] = True
        self._drawn_codes = codes

    def in_use_many(self, keys: I64) -> npt.NDArray[np.bool_]:
        """Whether each of ``keys`` (N,) is drawn now."""
        code = np.asarray(keys, dtype=np.int64) - self.base
        ok = (code >= 0) & (code < self.n_bricks)
        out = np.zeros(len(code), dtype=bool)
        out[ok] = self.drawn[code[ok]]
        return out

    # -- failed --------------------------------------------------------------------------
    def add_failed(self, keys: Sequence[int]) -> None:
        """Bricks that could not be read (never requested again)."""
        if keys:
            self._failed.update(int(k) for k in keys)
            self.failed_keys = np.array(sorted(self._failed), dtype=np.int64)

    @property
    def n_failed(self) -> int:
        return len(self._failed)
