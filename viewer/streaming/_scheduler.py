"""The chunk scheduler: worker threads load bricks in priority order; the frame never waits.

Every frame the streamer hands :meth:`ChunkScheduler.submit` the complete list
of bricks it is missing, already sorted (coarse first, then by distance from
the view centre). The list *replaces* the previous one: requests that are no
longer wanted after a camera move are dropped before they start; requests
already running finish, and their results are still handed back (the bytes are
paid for and the brick will likely be wanted again). Workers take the next key
from the head of the current list (a few at a time with ``load_many``), load them and put a
:class:`BrickResult` on a queue that the frame loop drains without blocking
(:meth:`ChunkScheduler.drain`), like napari's ``_layer_slicer``.

``load`` is usually a ``VolumeSource.read`` of one chunk. zarr runs its own
event loop for store I/O; several threads calling it at once give that loop
several requests to overlap, which is what hides HTTP latency.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analysis.errors import ParameterError

__all__ = [
    "BrickRequest",
    "BrickResult",
    "ChunkScheduler",
    "LoadMany",
    "SchedulerStats",
    "default_batch",
    "default_workers",
]

LoadMany = Callable[[list[int]], list[npt.NDArray[np.generic] | Exception]]

log = logging.getLogger(__name__)


def default_workers() -> int:
    """Loader threads by default: one per core, at most 8.

    Decoding is CPU work: more threads than cores add no throughput, only GIL
    contention with the frame thread (measured on 2 cores with zarr loads: frame
    wall-clock p95 8 ms with 2 loaders, 34 ms with 8, same bricks per second).
    Remote latency is hidden by batches, not threads (:func:`default_batch`).
    """
    return max(1, min(8, os.cpu_count() or 2))


def default_batch(source: object) -> int:
    """Bricks per ``read_many`` call by default: 32 for a remote store, else 8.

    Each batch's chunks are fetched concurrently, so ``workers * batch`` requests are
    in flight; over HTTP with 100 ms latency more in flight is what shortens the time
    to full detail (docs/benchmarks.md, "Streaming").
    """
    url = str(getattr(source, "url", "") or "")
    return 32 if "://" in url and not url.startswith("file://") else 8


@dataclass(frozen=True)
class BrickRequest:
    """One brick to load.

    Attributes
    ----------
    id : int
        Unique over the scheduler's life.
    key : int
        Brick code (the streamer's key).
    rank : int
        Position in the frame's priority order (0 = most wanted).
    generation : int
        The :meth:`ChunkScheduler.submit` call it came from.
    """

    id: int
    key: int
    rank: int
    generation: int


@dataclass(frozen=True)
class BrickResult:
    """What a worker hands back: the array, or the error message when loading failed."""

    request: BrickRequest
    array: npt.NDArray[np.generic] | None
    error: str | None
    seconds: float
    stale: bool


@dataclass(frozen=True)
class SchedulerStats:
    """Counters since the scheduler started.

    ``pending``: requests not started; ``in_flight``: started and not yet handed over
    by :meth:`ChunkScheduler.drain` (running, or finished and waiting in the queue).
    """

    pending: int
    in_flight: int
    submitted: int
    started: int
    completed: int
    failed: int
    dropped: int
    bytes_loaded: int
    load_seconds: float
    #: Why the first failed load failed (empty: none failed); the others are only logged.
    first_error: str = ""


class ChunkScheduler:
    """Loads bricks on ``n_workers`` threads in the order of the latest :meth:`submit`.

    Parameters
    ----------
    load : callable ``key -> array``
        Runs on a worker thread; exceptions become failed results.
    n_workers : int, default: 8
        Threads; more overlap more I/O latency (HTTP), decoding shares the cores.
    load_many : callable ``keys -> list of (array or Exception)``, optional
        Loads several keys in one call (one result per key, in order; an exception in
        the list fails that key only). With it a worker takes up to ``batch`` keys at
        a time from the head of the list, fewer when the list is short, so that every
        worker gets a share: ``ZarrVolumeSource.read_many`` fetches a batch's chunks
        concurrently, which is what overlaps HTTP latency (``n_workers * batch``
        requests in flight) and saves zarr's per-call overhead on local disks.
    batch : int, default: 8
        Most keys per ``load_many`` call.
    """

    def __init__(
        self,
        load: Callable[[int], npt.NDArray[np.generic]],
        n_workers: int = 8,
        *,
        load_many: LoadMany | None = None,
        batch: int = 8,
    ) -> None:
        if n_workers < 1:
            raise ParameterError(f"n_workers must be >= 1, got {n_workers}")
        if batch < 1:
            raise ParameterError(f"batch must be >= 1, got {batch}")
        self._load = load
        self._load_many = load_many
        self._batch = int(batch) if load_many is not None else 1
        self._n_workers = int(n_workers)
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # workers wait here for work
        # Waiters for progress (wait_idle / wait_below) share the lock, not the wake-ups.
        self._progress = threading.Condition(lock)
        self._queue: npt.NDArray[np.int64] = np.zeros(0, np.int64)
        self._pos = 0
        self._generation = 0
        self._in_flight: dict[int, BrickRequest] = {}
        # Finished but not yet drained: not resident in the caller's cache yet, so a
        # new submit may still list them; they must not be loaded twice.
        self._done: set[int] = set()
        self._results: queue.SimpleQueue[BrickResult] = queue.SimpleQueue()
        self._ids = itertools.count()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._paused = False
        self._solo = 0  # keys to hand out alone before batching (see _next)
        self._submitted = self._started = self._completed = self._failed = self._dropped = 0
        self._first_error = ""
        self._bytes = 0
        self._seconds = 0.0

    # -- frame thread -----------------------------------------------------------
    def submit(self, keys: npt.ArrayLike) -> int:
        """Replace the wanted list by ``keys`` (most wanted first); return its generation.

        Keys of the old list that are not in the new one and have not started
        are dropped (counted in ``dropped``). Never blocks on I/O.
        """
        new = np.asarray(keys, dtype=np.int64).reshape(-1)
        with self._cond:
            if self._closed:
                raise RuntimeError("the scheduler is closed")
            rest = self._queue[self._pos :]
            if len(rest):
                # Python sets of <= max_requests ints: cheaper than np.isin's sorts.
                self._dropped += len(set(rest.tolist()).difference(new.tolist()))
            self._queue = new
            self._pos = 0
            if not self._in_flight:
                self._solo = min(len(new), max(1, self._n_workers // 2))
            self._generation += 1
            self._submitted += len(new)
            # Wake only as many idle workers as there is work: waking all of them
            # every frame would make them compete with the frame thread for the GIL.
            if len(new) and not self._paused:
                self._cond.notify(min(len(new), self._n_workers))
            self._progress.notify_all()
            generation = self._generation
        self._start_threads()
        return generation

    def cancel(self) -> None:
        """Drop every request that has not started."""
        self.submit(np.zeros(0, np.int64))

    def drain(self, max_results: int | None = None) -> list[BrickResult]:
        """Results that arrived since the last call (never waits)."""
        out: list[BrickResult] = []
        while max_results is None or len(out) < max_results:
            try:
                out.append(self._results.get_nowait())
            except queue.Empty:
                break
        if out:
            with self._cond:
                self._done.difference_update(r.request.key for r in out)
        return out

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is queued or running (for tests and one-shot renders)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pos < len(self._queue) or self._in_flight:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._progress.wait(timeout=left if left is not None else 0.1)
        return True

    def wait_below(self, n_queued: int, timeout: float | None = None) -> bool:
        """Block until at most ``n_queued`` requests wait to start (running ones do not
        count); True unless ``timeout`` passed first.

        One-shot renders use it to hand over the next batch before the workers run dry.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while len(self._queue) - self._pos > n_queued and not self._paused:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._progress.wait(timeout=left if left is not None else 0.1)
        return True

    def pause(self, paused: bool = True) -> None:
        """Stop starting new requests (running ones finish)."""
        with self._cond:
            self._paused = paused
            self._cond.notify_all()

    def n_queued(self) -> int:
        """Number of requests not started yet."""
        with self._cond:
            return len(self._queue) - self._pos

    def queued(self) -> npt.NDArray[np.int64]:
        """Keys not started yet, in the order they will start."""
        with self._cond:
            return self._queue[self._pos :].copy()

    @property
    def in_flight_keys(self) -> frozenset[int]:
        with self._cond:
            return frozenset(self._in_flight)

    def stats(self) -> SchedulerStats:
        with self._cond:
            return SchedulerStats(
                pending=len(self._queue) - self._pos,
                # Finished but not drained counts as in flight: the caller has not
                # got it yet, so 'nothing pending, nothing in flight' means idle.
                in_flight=len(self._in_flight) + len(self._done),
                submitted=self._submitted,
                started=self._started,
                completed=self._completed,
                failed=self._failed,
                dropped=self._dropped,
                bytes_loaded=self._bytes,
                load_seconds=self._seconds,
                first_error=self._first_error,
            )

    def close(self) -> None:
        """Drop pending requests and join the workers (running loads finish first)."""
        with self._cond:
            self._closed = True
            self._queue = np.zeros(0, np.int64)
            self._pos = 0
            self._cond.notify_all()
            self._progress.notify_all()
        for t in self._threads:
            t.join(timeout=30)
        self._threads.clear()

    def __enter__(self) -> ChunkScheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- workers ------------------------------------------------------------------
    def _start_threads(self) -> None:
        if self._threads:
            return
        for i in range(self._n_workers):
            t = threading.Thread(target=self._work, name=f"vrscope-stream-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def _next(self) -> list[BrickRequest]:
        """The next keys of the current list not already running (caller holds the lock).

        Up to ``batch`` of them, but no more than an even share of what is left (a
        short list still spreads over the workers). After a submit to idle workers the
        first few keys go out alone (``_solo``), so the most wanted bricks (the coarse
        stand-ins a first image waits for) are not held up by the slowest chunk of a
        batch; while loads run, lists are replaced every frame and stay batched.
        """
        if self._paused:
            return []
        q = self._queue
        left = len(q) - self._pos
        if self._solo > 0:
            self._solo -= 1
            want = 1
        else:
            want = max(1, min(self._batch, left // self._n_workers))
        out: list[BrickRequest] = []
        while self._pos < len(q) and len(out) < want:
            key = int(q[self._pos])
            rank = self._pos
            self._pos += 1
            if key in self._in_flight or key in self._done:
                continue
            req = BrickRequest(next(self._ids), key, rank, self._generation)
            self._in_flight[key] = req
            self._started += 1
            out.append(req)
        return out

    def _work(self) -> None:
        done: list[BrickResult] = []
        while True:
            with self._cond:
                # Book the finished loads and take the next ones under one lock hold.
                for res in done:
                    self._finish(res)
                done = []
                reqs = self._next()
                while not reqs and not self._closed:
                    self._cond.wait()
                    reqs = self._next()
                if not reqs:
                    return
            done = self._run(reqs)

    def _run(self, reqs: list[BrickRequest]) -> list[BrickResult]:
        """Load ``reqs`` (one call when there are several and ``load_many`` was given)."""
        t0 = time.perf_counter()
        got: list[npt.NDArray[np.generic] | Exception]
        if len(reqs) > 1 and self._load_many is not None:
            try:
                got = list(self._load_many([r.key for r in reqs]))
                if len(got) != len(reqs):
                    raise RuntimeError(f"load_many returned {len(got)} results for {len(reqs)}")
            except Exception as exc:  # the whole batch failed: every key fails with it
                got = [exc] * len(reqs)
        else:
            got = []
            for r in reqs:
                try:
                    got.append(self._load(r.key))
                except Exception as exc:  # a worker must survive any failed load
                    got.append(exc)
        seconds = (time.perf_counter() - t0) / len(reqs)
        out = []
        for req, g in zip(reqs, got, strict=True):
            if isinstance(g, BaseException):
                error = f"{type(g).__name__}: {g}".splitlines()[0]
                # Not a warning: callers count failures (SchedulerStats) and say so once
                # (a command's one error line, the window's status bar).
                log.info("brick %d failed to load: %s", req.key, error)
                out.append(BrickResult(req, None, error, seconds, False))
            else:
                out.append(BrickResult(req, g, None, seconds, False))
        return out

    def _finish(self, res: BrickResult) -> None:
        """Count a finished load and hand it to :meth:`drain` (caller holds the lock)."""
        key = res.request.key
        self._in_flight.pop(key, None)
        self._done.add(key)
        if res.error is None and res.array is not None:
            self._completed += 1
            self._bytes += int(res.array.nbytes)
        else:
            self._failed += 1
            if not self._first_error:
                self._first_error = f"brick {key}: {res.error}"
        self._seconds += res.seconds
        stale = res.request.generation != self._generation
        # Queued before waking the waiters, so a wait_idle() caller finds it in drain().
        self._results.put(BrickResult(res.request, res.array, res.error, res.seconds, stale))
        self._progress.notify_all()
