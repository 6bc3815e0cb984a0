"""Memory budgets: an LRU cache of decoded bricks bounded in bytes, and GPU texture accounting.

The cache is touched only by the frame thread (workers hand their results
through a queue), so it needs no lock. Its byte count is the sum of the
``nbytes`` of the arrays it holds; :meth:`BrickCache.put` evicts least recently
used bricks until the new one fits, and refuses a brick larger than the whole
budget, so the count never exceeds the budget.
"""

from __future__ import annotations

import itertools
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import numpy.typing as npt
import psutil

from analysis.errors import ParameterError

__all__ = ["BrickCache", "TextureBudget", "default_cache_bytes"]

log = logging.getLogger(__name__)

#: Default share of the machine's RAM the brick cache may use.
DEFAULT_RAM_FRACTION = 0.25


def default_cache_bytes(fraction: float = DEFAULT_RAM_FRACTION) -> int:
    """``fraction`` of the total physical memory (psutil), in bytes."""
    if not 0 < fraction <= 1:
        raise ParameterError(f"cache fraction must be in (0, 1], got {fraction}")
    return int(psutil.virtual_memory().total * fraction)


class BrickCache:
    """LRU of decoded bricks, bounded in bytes.

    Parameters
    ----------
    budget_bytes : int, optional
        Default: :func:`default_cache_bytes` (a quarter of RAM).

    Attributes
    ----------
    nbytes : int
        Bytes held now (always ``<= budget_bytes``).
    evictions : int
        Bricks evicted so far.
    version : int
        Incremented whenever the set of keys changes (for callers caching key arrays).
    """

    def __init__(self, budget_bytes: int | None = None) -> None:
        budget = default_cache_bytes() if budget_bytes is None else int(budget_bytes)
        if budget <= 0:
            raise ParameterError(f"cache budget must be positive, got {budget_bytes}")
        self.budget_bytes = budget
        self._items: OrderedDict[int, npt.NDArray[np.generic]] = OrderedDict()
        self.nbytes = 0
        self.evictions = 0
        self.version = 0
        self._keys_version = -1
        self._keys = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[int]:
        return iter(self._items)

    def put(
        self,
        key: int,
        array: npt.NDArray[np.generic],
        in_use: Callable[[int], bool] | None = None,
    ) -> list[int]:
        """Store ``array`` under ``key`` as most recently used; return the evicted keys.

        A brick larger than the whole budget is not stored (logged, returns ``[]``).

        ``in_use(key)`` marks bricks being drawn: when one reaches the least
        recently used end it gets a second chance (moved to the other end) instead
        of being evicted, once per pass over the cache. The frame loop then need
        not touch every drawn brick every frame to keep it (a per-brick Python
        loop); only bricks actually reaching eviction are looked at.
        """
        size = int(array.nbytes)
        if size > self.budget_bytes:
            log.warning("brick %d (%d bytes) exceeds the cache budget; not cached", key, size)
            return []
        old = self._items.pop(key, None)
        if old is not None:
            self.nbytes -= int(old.nbytes)
        evicted = []
        chances = len(self._items) if in_use is not None else 0
        while self.nbytes + size > self.budget_bytes:
            k, a = self._items.popitem(last=False)
            if chances > 0 and in_use is not None and in_use(k):
                chances -= 1
                self._items[k] = a
                continue
            self.nbytes -= int(a.nbytes)
            evicted.append(k)
        self.evictions += len(evicted)
        self._items[key] = array
        self.nbytes += size
        self.version += 1
        return evicted

    def put_many(
        self,
        keys: Sequence[int],
        arrays: Sequence[npt.NDArray[np.generic]],
        in_use: Callable[[npt.NDArray[np.int64]], npt.NDArray[np.bool_]] | None = None,
    ) -> list[int]:
        """``put(key, array, in_use)`` for each pair in turn; return all evicted keys.

        The result (contents, LRU order, evictions, in that order) is exactly that
        of the sequential :meth:`put` calls. ``in_use`` is vectorised here: it maps
        an (N,) int64 array of keys to an (N,) bool array, and must not change
        during the call. It is asked once for a run of keys at the least recently
        used end instead of once per key reaching it: the frame loop stores tens of
        arrived bricks per frame, and a Python call per eviction candidate was most
        of the cost of doing so.

        An evicted key may have been stored earlier in the same call (more arrived
        than fit); ``key in cache`` tells what is held afterwards.
        """
        items = self._items
        budget = self.budget_bytes
        popitem = items.popitem
        evicted: list[int] = []
        # in_use(key) for keys at the LRU end, asked for in runs (in_use is constant here).
        use: dict[int, bool] = {}
        ahead = 2 * len(keys) + 16
        nbytes = self.nbytes
        stored = False
        for key, array in zip(keys, arrays, strict=True):
            size = array.nbytes
            if size > budget:
                log.warning("brick %d (%d bytes) exceeds the cache budget; not cached", key, size)
                continue
            if key in items:
                nbytes -= items.pop(key).nbytes
            if nbytes + size > budget:
                # Same rule as put(): one pass of second chances per stored brick.
                chances = len(items) if in_use is not None else 0
                while nbytes + size > budget:
                    k, a = popitem(last=False)
                    if chances > 0:
                        u = use.get(k)
                        if u is None:
                            assert in_use is not None
                            run = [k, *itertools.islice(items, ahead)]
                            got = in_use(np.asarray(run, np.int64)).tolist()
                            use.update(zip(run, got, strict=True))
                            u = use[k]
                        if u:
                            chances -= 1
                            items[k] = a
                            continue
                    nbytes -= a.nbytes
                    evicted.append(k)
            items[key] = array
            nbytes += size
            stored = True
        self.nbytes = int(nbytes)
        self.evictions += len(evicted)
        if stored:
            self.version += 1
        return evicted

    def get(self, key: int) -> npt.NDArray[np.generic] | None:
        """The brick (marked most recently used) or None."""
        a = self._items.get(key)
        if a is not None:
            self._items.move_to_end(key)
        return a

    def peek(self, key: int) -> npt.NDArray[np.generic] | None:
        """The brick without changing the LRU order, or None."""
        return self._items.get(key)

    def touch(self, keys: Iterable[int]) -> None:
        """Mark ``keys`` (those present) most recently used, in the given order."""
        items = self._items
        for k in keys:
            if k in items:
                items.move_to_end(k)

    def discard(self, key: int) -> None:
        a = self._items.pop(key, None)
        if a is not None:
            self.nbytes -= int(a.nbytes)
            self.version += 1

    def clear(self) -> None:
        self._items.clear()
        self.nbytes = 0
        self.version += 1

    def keys_array(self) -> npt.NDArray[np.int64]:
        """Sorted (N,) int64 array of the keys held (rebuilt only when they changed)."""
        if self._keys_version != self.version:
            self._keys = np.sort(np.fromiter(self._items.keys(), np.int64, len(self._items)))
            self._keys_version = self.version
        return self._keys

    def contains_array(self, keys: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Vectorised membership of ``keys`` (N,)."""
        have = self.keys_array()
        if not len(have) or not len(keys):
            return np.zeros(len(keys), dtype=bool)
        i = np.minimum(np.searchsorted(have, keys), len(have) - 1)
        return np.asarray(have[i] == keys)


class TextureBudget:
    """Accounting of GPU texture memory for the bricks being drawn.

    The renderer reports what it uploaded (:meth:`set`); the streamer compares
    :attr:`used` with :attr:`budget_bytes` and coarsens the level of detail
    when over budget.

    Parameters
    ----------
    budget_bytes : int, default: 1 GiB
    """

    def __init__(self, budget_bytes: int = 1 << 30) -> None:
        if budget_bytes <= 0:
            raise ParameterError(f"GPU texture budget must be positive, got {budget_bytes}")
        self.budget_bytes = int(budget_bytes)
        self._items: dict[int, int] = {}
        self.used = 0

    def set(self, sizes: dict[int, int]) -> None:
        """Replace the accounted textures by ``key -> bytes``."""
        self._items = dict(sizes)
        self.used = int(sum(self._items.values()))

    @property
    def over_budget(self) -> bool:
        return self.used > self.budget_bytes

    def __len__(self) -> int:
        return len(self._items)
