"""A total deadline for the remote reads of one command (issue 21).

Each HTTP request has its own timeouts (:mod:`analysis.io._read`: to connect, between
reads, for the request) and up to three retries (:mod:`analysis.io._http`), so a server
that answers every request slowly, but each within its limits, could keep a command
reading for hours. :func:`remote_deadline` bounds them all together: within the block,
every remote request (metadata, chunks, retries; on any thread: zarr and fsspec run
their requests on their own event-loop threads) is cut short when the block's time is
up, with :class:`RemoteDeadlineExceeded`. A block that ends after a request met the
deadline raises it too, even when the caller took the failed read for a missing chunk.

This module imports nothing heavy: a command enters the block before it knows whether
it will read anything remote.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator

from analysis.errors import VrscopeError

__all__ = ["RemoteDeadlineExceeded", "current_block", "remote_deadline"]


class RemoteDeadlineExceeded(VrscopeError, TimeoutError):
    """The remote reads of a command took longer in all than its deadline."""


class Block:
    """One :func:`remote_deadline` block: its end (a ``time.monotonic()`` value) and name.

    A request keeps the block it started in (:func:`current_block`), so a read left
    running by earlier work neither takes the deadline of a later block nor is reported
    as that block's failure.
    """

    __slots__ = ("end", "seconds", "what")

    def __init__(self, end: float, seconds: float, what: str) -> None:
        self.end, self.seconds, self.what = end, seconds, what

    def left_s(self) -> float:
        """Seconds left for this block's remote reads."""
        return self.end - time.monotonic()


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.block: Block | None = None
        self.hit: RemoteDeadlineExceeded | None = None


_state = _State()


@contextlib.contextmanager
def remote_deadline(seconds: float, what: str = "--remote-timeout") -> Iterator[None]:
    """Within this block, remote reads end ``seconds`` after it starts, in all.

    ``what`` names the limit in the message (the option that sets it). Blocks do not
    nest: an inner block keeps the outer (earlier) deadline if that one is sooner.
    """
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"a remote deadline must be finite and > 0 s, not {seconds!r}")
    with _state.lock:
        saved = (_state.block, _state.hit)
        end = time.monotonic() + seconds
        if _state.block is None or end < _state.block.end:
            _state.block = Block(end, seconds, what)
        _state.hit = None
    try:
        try:
            yield
        except Exception as exc:
            # The deadline is the cause of whatever the caller made of the failed read
            # (a chunk error, bricks that could not be read): say so.
            with _state.lock:
                hit = _state.hit
            if hit is None or exc is hit or isinstance(exc, RemoteDeadlineExceeded):
                raise
            raise hit from exc
        with _state.lock:
            hit = _state.hit
        if hit is not None:
            raise hit
    finally:
        with _state.lock:
            _state.block, _state.hit = saved


def current_block() -> Block | None:
    """The deadline block a request starting now belongs to (None: no deadline)."""
    with _state.lock:
        return _state.block


def exceeded(url: str, block: Block) -> RemoteDeadlineExceeded:
    """The error for a request to ``url`` that met ``block``'s deadline.

    It is remembered as the block's failure only while ``block`` is still the current
    one: a request of an earlier, ended block does not speak for a later one.
    """
    exc = RemoteDeadlineExceeded(
        f"remote reads took more than {block.seconds:g} s in all ({block.what}); stopped at {url}"
    )
    with _state.lock:
        if _state.block is block and _state.hit is None:
            _state.hit = exc
    return exc
