"""HTTP(S) reads of remote stores, bounded in size and asked again after transient errors.

zarr reads a remote store through fsspec's ``HTTPFileSystem``, whose ``_cat_file``
reads a whole answer into memory, whatever its ``Content-Length`` says or however
long the body runs, and before it looks at the status. The attack campaign of
issue 21 made the client hang or grow without bound with endless bodies, lying
lengths and gzip bombs. :class:`BoundedHTTPFileSystem` is that file system with a
``_cat_file`` that:

- refuses an answer whose ``Content-Length`` exceeds the cap before reading it;
- reads a body without a length, or with a ``Content-Encoding``, in pieces and stops
  at the cap (a body with a length and no encoding is read to that length, which
  aiohttp never passes). The bytes counted are the decoded ones: aiohttp inflates
  a ``Content-Encoding: gzip`` (deflate, br, zstd) body piece by piece as it is
  read (3.12+ bounds each piece), so a gzip bomb stops at the cap too;
- looks at the status before reading the body (a 500 with an endless page);
- asks again after a server error (5xx) or a dropped connection, up to three
  times (:data:`RETRY_DELAYS_S`): metadata, the chunk reader's fetches and zarr's
  own chunk reads alike, since all go through here;
- ends every request, retries included, at the command's total deadline
  (:func:`analysis.io._deadline.remote_deadline`), if one is set.

The cap is :data:`MAX_METADATA_BYTES` for metadata documents (``zarr.json``,
``.zarray``, ``.zattrs``, ``.zgroup``, ``.zmetadata``) and :data:`MAX_ANSWER_BYTES`
for anything else; a caller that knows better (the chunk reader knows each chunk's
size) narrows it for its requests with :func:`answer_cap`.

Why a subclass: fsspec and aiohttp have no size limit for a response body
(aiohttp's ``read_bufsize`` is a buffer size, not a cap), and zarr's
``FsspecStore`` takes any async fsspec file system.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import aiohttp
from fsspec.implementations.http import HTTPFileSystem

from analysis.io._deadline import current_block, exceeded

__all__ = [
    "MAX_ANSWER_BYTES",
    "MAX_METADATA_BYTES",
    "RETRY_DELAYS_S",
    "BoundedHTTPFileSystem",
    "ResponseTooLarge",
    "answer_cap",
    "transient",
]

#: Largest answer read for a metadata document (bytes).
MAX_METADATA_BYTES = 64 << 20
#: Largest answer read for anything else (a chunk or a whole shard), unless a
#: caller narrows it (:func:`answer_cap`).
MAX_ANSWER_BYTES = 1 << 30
#: Pauses before asking again for an answer that was a server error (5xx) or a
#: dropped connection: three retries, about 1.4 s in all.
RETRY_DELAYS_S = (0.2, 0.4, 0.8)

_METADATA_NAMES = frozenset({"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"})
_PIECE = 1 << 18

_cap: contextvars.ContextVar[int | None] = contextvars.ContextVar("vrscope_http_cap", default=None)


class ResponseTooLarge(OSError):
    """An answer larger than the cap for one request (refused before reading it, or
    when the bytes read passed the cap)."""


@contextlib.contextmanager
def answer_cap(nbytes: int) -> Iterator[None]:
    """Within this block (and the tasks it starts), non-metadata answers larger than
    ``nbytes`` are refused. Use it inside the coroutine that starts the requests:
    zarr runs them on its own event loop thread."""
    token = _cap.set(int(nbytes))
    try:
        yield
    finally:
        _cap.reset(token)


def _mib(n: int) -> str:
    if n < 1 << 20:
        return f"{n / (1 << 10):.4g} KiB"
    return f"{n / (1 << 20):.4g} MiB"


def transient(exc: BaseException | object) -> bool:
    """Whether a failed request is worth asking again (5xx, a reset or dropped connection)."""
    if not isinstance(exc, BaseException):
        return False
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return status >= 500
    if isinstance(exc, ConnectionError):  # reset, refused, aborted
        return True
    return isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError)


class BoundedHTTPFileSystem(HTTPFileSystem):  # type: ignore[misc]
    """fsspec's HTTP file system with size-capped, retried ``_cat_file`` (module doc)."""

    async def _cat_file(
        self, url: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        tries = 1 + len(RETRY_DELAYS_S)
        # The command's total deadline (analysis.io._deadline): the block this request
        # started in, kept for all its tries.
        block = current_block()
        for attempt in range(tries):
            if block is not None and block.left_s() <= 0:
                raise exceeded(url, block)
            try:
                if block is None:
                    return await self._cat_once(url, start, end, **kwargs)
                return await asyncio.wait_for(
                    self._cat_once(url, start, end, **kwargs), block.left_s()
                )
            except Exception as exc:
                if isinstance(exc, TimeoutError) and block is not None and block.left_s() <= 0:
                    raise exceeded(url, block) from exc
                if attempt == tries - 1 or not transient(exc):
                    if attempt:
                        exc.tries = attempt + 1  # type: ignore[attr-defined]
                    raise
            await asyncio.sleep(
                RETRY_DELAYS_S[attempt]
                if block is None
                else max(0.0, min(RETRY_DELAYS_S[attempt], block.left_s()))
            )
        raise AssertionError("unreachable")  # pragma: no cover

    async def _cat_once(self, url: str, start: int | None, end: int | None, **kwargs: Any) -> bytes:
        kw = self.kwargs.copy()
        kw.update(kwargs)
        if start is not None or end is not None:
            if start == end:
                return b""
            headers = kw.pop("headers", {}).copy()
            headers["Range"] = await self._process_limits(url, start, end)
            kw["headers"] = headers
        name = url.rstrip("/").rsplit("/", 1)[-1]
        cap = MAX_METADATA_BYTES if name in _METADATA_NAMES else (_cap.get() or MAX_ANSWER_BYTES)
        session = await self.set_session()
        async with session.get(self.encode_url(url), **kw) as r:
            self._raise_not_found_for_status(r, url)
            declared = r.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > cap:
                raise ResponseTooLarge(
                    f"the answer for {url} says it is {_mib(int(declared))}, more than the "
                    f"{_mib(cap)} cap for one request"
                )
            encoding = r.headers.get("Content-Encoding", "identity").strip().lower()
            if declared.isdigit() and encoding == "identity":
                # aiohttp reads exactly the declared length (within the cap): one call,
                # as fast as fsspec's own.
                return bytes(await r.read())
            # No length, or a length of the encoded bytes: count what arrives, decoded.
            pieces: list[bytes] = []
            size = 0
            async for piece in r.content.iter_chunked(_PIECE):
                pieces.append(piece)
                size += len(piece)
                if size > cap:
                    raise ResponseTooLarge(
                        f"the answer for {url} runs past the {_mib(cap)} cap for one request "
                        "(an endless body, a wrong Content-Length or a decompression bomb?)"
                    )
        return b"".join(pieces)
