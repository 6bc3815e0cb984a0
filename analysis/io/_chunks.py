"""Whole-chunk reads that skip zarr's per-call machinery: fetch many chunks at once, decode here.

zarr's ``Array.__getitem__`` is general (any selection, any codec chain,
sharding) and pays for it: per call it plans the selection, runs the codec
pipeline on zarr's event loop and hops threads per codec. For the streamer's
load pattern (thousands of reads that each cover at most one chunk) that
overhead dominates: on the 512³ benchmark store, fetching the chunk bytes
through the same zarr store and decoding them with numcodecs is 1.4-2x faster
than ``arr[...]`` of the whole level, and 2-3x faster than chunk-by-chunk
``arr[chunk]`` (``docs/benchmarks.md``, "Streaming").

:class:`ChunkReader` does that for the codec chains OME-Zarr writers produce
(zarr v3: ``bytes`` + any of zstd / blosc / gzip; zarr v2: no filters and a
numcodecs compressor or none). Anything else (sharding, transpose, filters,
checksums, irregular grids) makes :meth:`ChunkReader.for_array` return ``None``
and the caller reads through zarr as before. The bytes still come from the
array's own zarr store (local, fsspec/HTTP, memory), fetched concurrently on
zarr's event loop, so remote reads overlap their latency within one batch.

Why by hand: zarr has no public "fetch these chunks, give me each decoded"
call; its codec objects wrap the same numcodecs codecs used here, and the
tests compare every result with ``arr[region]``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numcodecs
import numpy as np
import numpy.typing as npt
import zarr
import zarr.codecs
import zarr.storage
from numcodecs.abc import Codec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

__all__ = ["ChunkReader"]

log = logging.getLogger(__name__)

# zarr v3 bytes-to-bytes codecs and the numcodecs codec that decodes the same stream.
# Decoding needs no parameters (level, shuffle, blocksize are in the stream).
_V3_DECODERS: dict[type, type[Codec]] = {
    zarr.codecs.ZstdCodec: numcodecs.Zstd,
    zarr.codecs.BloscCodec: numcodecs.Blosc,
    zarr.codecs.GzipCodec: numcodecs.GZip,
}


@dataclass(frozen=True)
class ChunkReader:
    """Fetches and decodes whole chunks of one zarr array.

    Attributes
    ----------
    array : zarr.Array
    chunks : tuple of int
        Chunk shape (the store's axes).
    stored_dtype : numpy.dtype
        Element type of the decoded bytes (byte order as stored).
    order : {"C", "F"}
        Memory order of a chunk's bytes.
    decoders : tuple of numcodecs Codec
        Applied in this order to a chunk's bytes.
    """

    array: zarr.Array[Any]
    chunks: tuple[int, ...]
    stored_dtype: np.dtype[np.generic]
    order: str
    decoders: tuple[Codec, ...]

    @classmethod
    def for_array(cls, array: zarr.Array[Any]) -> ChunkReader | None:
        """A reader for ``array``, or ``None`` when its layout needs zarr's general path."""
        meta = array.metadata
        dtype = np.dtype(array.dtype)
        if dtype.hasobject or dtype.fields is not None or dtype.itemsize == 0:
            return None
        try:
            chunks = tuple(int(c) for c in array.chunks)
        except (NotImplementedError, TypeError, ValueError):  # irregular chunk grids
            return None
        if array.shards is not None or array.ndim == 0:
            return None
        if meta.zarr_format == 3:
            codecs = list(meta.codecs)
            if not codecs or type(codecs[0]) is not zarr.codecs.BytesCodec:
                return None  # transpose, sharding, or another array-to-bytes codec
            endian = codecs[0].endian
            stored = dtype
            if dtype.itemsize > 1 and endian is not None:
                stored = dtype.newbyteorder("<" if endian.value == "little" else ">")
            decoders: list[Codec] = []
            for c in reversed(codecs[1:]):
                dec = _V3_DECODERS.get(type(c))
                if dec is None:
                    return None
                decoders.append(dec())
            return cls(array, chunks, stored, "C", tuple(decoders))
        # zarr v2: the dtype carries the byte order; one optional compressor.
        if meta.filters or meta.order not in ("C", "F"):
            return None
        comp = meta.compressor
        if comp is not None and not isinstance(comp, Codec):
            return None
        return cls(array, chunks, dtype, meta.order, (comp,) if comp is not None else ())

    def chunk_of(self, region: Sequence[slice]) -> tuple[int, ...] | None:
        """Grid coordinates of the one chunk holding all of ``region`` (else ``None``)."""
        coords = []
        for sl, c in zip(region, self.chunks, strict=True):
            i = sl.start // c
            if sl.stop <= sl.start or sl.stop > (i + 1) * c:
                return None
            coords.append(i)
        return tuple(coords)

    def key(self, coords: Sequence[int]) -> str:
        """Store key of a chunk (below the store's root)."""
        prefix = self.array.store_path.path
        name = self.array.metadata.encode_chunk_key(tuple(coords))
        return f"{prefix}/{name}" if prefix else name

    def fetch(self, keys: Sequence[str]) -> list[npt.NDArray[np.uint8] | None | BaseException]:
        """Encoded bytes of each chunk (``None`` when absent, the exception when the get failed).

        All gets run concurrently on zarr's event loop (one round trip for remote stores).
        """
        store = self.array.store_path.store
        if isinstance(store, zarr.storage.LocalStore):
            # Local files: read on this thread (the read releases the GIL), without
            # the hops to zarr's event loop and its I/O threads (~200 µs of CPU per
            # chunk on the benchmark machine, and the GIL held for most of it).
            return [_read_file(store.root / k) for k in keys]
        proto = default_buffer_prototype()

        async def get_all() -> list[Any]:
            return await asyncio.gather(
                *(store.get(k, proto) for k in keys), return_exceptions=True
            )

        out: list[npt.NDArray[np.uint8] | None | BaseException] = []
        for got in sync(get_all()):
            if got is None or isinstance(got, BaseException):
                out.append(got)
            else:
                out.append(got.as_numpy_array())  # a view of the fetched bytes, no copy
        return out

    def decode(self, raw: npt.NDArray[np.uint8] | bytes | None) -> npt.NDArray[np.generic]:
        """One whole chunk as an array of the array's dtype (fill value when ``raw`` is None).

        Raises ``ValueError`` (or the codec's own error) when the bytes do not decode to
        exactly one chunk.
        """
        dtype = np.dtype(self.array.dtype)
        if raw is None:
            fill = self.array.fill_value
            return np.full(self.chunks, 0 if fill is None else fill, dtype=dtype)
        order: Literal["C", "F"] = "F" if self.order == "F" else "C"
        # The last codec decodes straight into a new writable array (callers may
        # modify what read() returns, as they may with zarr's).
        out = np.empty(self.chunks, dtype=self.stored_dtype, order=order)
        buf: Any = raw
        for codec in self.decoders[:-1]:
            buf = codec.decode(buf)
        n = out.nbytes
        if self.decoders:
            flat = np.frombuffer(self.decoders[-1].decode(buf), np.uint8)
        else:
            flat = np.frombuffer(buf, np.uint8)
        if flat.size != n:
            raise ValueError(
                f"decoded chunk holds {flat.size} bytes, expected {n} "
                f"(chunk shape {self.chunks}, {self.stored_dtype})"
            )
        out.reshape(-1, order="A").view(np.uint8)[...] = flat
        if out.dtype != dtype:
            return out.astype(dtype)
        return out


def _read_file(path: Path) -> npt.NDArray[np.uint8] | None | BaseException:
    try:
        with open(path, "rb") as f:
            return np.frombuffer(f.read(), np.uint8)
    except FileNotFoundError:
        return None  # a missing chunk: the fill value
    except OSError as exc:
        return exc
