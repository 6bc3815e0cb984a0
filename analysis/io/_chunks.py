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
(zarr v3: ``bytes`` + any of zstd / blosc / gzip / crc32c, also as the inner
codecs of a shard, whose index is fetched once per shard and kept; zarr v2: no
filters and a numcodecs compressor or none). Anything else (transpose, filters,
nested sharding, irregular grids) makes :meth:`ChunkReader.for_array` return
``None`` and the caller reads through zarr as before. The bytes still come from the
array's own zarr store (local, fsspec/HTTP, memory), fetched concurrently on
zarr's event loop, so remote reads overlap their latency within one batch.

Why by hand: zarr has no public "fetch these chunks, give me each decoded"
call; its codec objects wrap the same numcodecs codecs used here, and the
tests compare every result with ``arr[region]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numcodecs
import numpy as np
import numpy.typing as npt
import zarr
import zarr.codecs
import zarr.storage
from numcodecs.abc import Codec
from zarr.abc.store import ByteRequest, RangeByteRequest, SuffixByteRequest
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
    zarr.codecs.Crc32cCodec: numcodecs.CRC32C,  # checks the 4-byte sum and strips it
}


_MISSING = np.uint64(2**64 - 1)  # a shard index entry of an empty inner chunk
_MAX_INDEXES = 4096  # shard indexes kept per array (16 bytes per inner chunk each)
_GONE: Any = object()  # an index evicted by another thread since it was fetched

Raw = npt.NDArray[np.uint8] | None | BaseException


def _bytes_decoders(codecs: Sequence[Any]) -> list[Codec] | None:
    """numcodecs decoders (in decoding order) for zarr v3 bytes-to-bytes codecs, or None."""
    out: list[Codec] = []
    for c in reversed(codecs):
        dec = _V3_DECODERS.get(type(c))
        if dec is None:
            return None
        out.append(dec())
    return out


def _stored_dtype(dtype: np.dtype[Any], serializer: Any) -> np.dtype[Any] | None:
    if type(serializer) is not zarr.codecs.BytesCodec:
        return None  # transpose, vlen or another array-to-bytes codec
    endian = serializer.endian
    if dtype.itemsize > 1 and endian is not None:
        return dtype.newbyteorder("<" if endian.value == "little" else ">")
    return dtype


@dataclass(frozen=True)
class ChunkReader:
    """Fetches and decodes whole chunks of one zarr array.

    Attributes
    ----------
    array : zarr.Array
    chunks : tuple of int
        Chunk shape (the store's axes); the *inner* chunks of a sharded array.
    stored_dtype : numpy.dtype
        Element type of the decoded bytes (byte order as stored).
    order : {"C", "F"}
        Memory order of a chunk's bytes.
    decoders : tuple of numcodecs Codec
        Applied in this order to a chunk's bytes.
    per_shard : tuple of int, optional
        Inner chunks per shard along each axis (None: not sharded). An inner chunk is
        read with a byte-range request after its shard's index, which is fetched once
        per shard (suffix or prefix request) and kept (up to 4,096 shards).
    index_at_end : bool
    index_decoders : tuple of numcodecs Codec
        For the shard index (a crc32c check, when the index has one).
    """

    array: zarr.Array[Any]
    chunks: tuple[int, ...]
    stored_dtype: np.dtype[np.generic]
    order: str
    decoders: tuple[Codec, ...]
    per_shard: tuple[int, ...] | None = None
    index_at_end: bool = True
    index_decoders: tuple[Codec, ...] = ()
    _indexes: dict[str, npt.NDArray[np.uint64] | None] = field(
        default_factory=dict, repr=False, compare=False
    )
    # Loader threads share the reader: evicting (first key) while another inserts
    # must not interleave.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

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
        if array.ndim == 0:
            return None
        if meta.zarr_format == 3:
            codecs = list(meta.codecs)
            if len(codecs) == 1 and isinstance(codecs[0], zarr.codecs.ShardingCodec):
                return cls._sharded(array, codecs[0], dtype)
            if array.shards is not None or not codecs:
                return None
            stored = _stored_dtype(dtype, codecs[0])
            decoders = _bytes_decoders(codecs[1:])
            if stored is None or decoders is None:
                return None
            return cls(array, chunks, stored, "C", tuple(decoders))
        # zarr v2: the dtype carries the byte order; one optional compressor.
        if meta.filters or meta.order not in ("C", "F"):
            return None
        comp = meta.compressor
        if comp is not None and not isinstance(comp, Codec):
            return None
        return cls(array, chunks, dtype, meta.order, (comp,) if comp is not None else ())

    @classmethod
    def _sharded(
        cls, array: zarr.Array[Any], sharding: Any, dtype: np.dtype[Any]
    ) -> ChunkReader | None:
        inner = list(sharding.codecs)
        if not inner or array.shards is None:
            return None
        if isinstance(inner[0], zarr.codecs.ShardingCodec):
            return None  # nested sharding
        stored = _stored_dtype(dtype, inner[0])
        decoders = _bytes_decoders(inner[1:])
        index = list(sharding.index_codecs)
        index_decoders = _bytes_decoders(index[1:])
        if stored is None or decoders is None or index_decoders is None:
            return None
        if (
            type(index[0]) is not zarr.codecs.BytesCodec
            or index[0].endian is None
            or (index[0].endian.value != "little")
        ):
            return None
        chunks = tuple(int(c) for c in sharding.chunk_shape)
        shards = tuple(int(s) for s in array.shards)
        if any(s % c for s, c in zip(shards, chunks, strict=True)):
            return None
        at_end = sharding.index_location.value == "end"
        per_shard = tuple(s // c for s, c in zip(shards, chunks, strict=True))
        return cls(
            array, chunks, stored, "C", tuple(decoders), per_shard, at_end, tuple(index_decoders)
        )

    def chunk_of(self, region: Sequence[slice]) -> tuple[int, ...] | None:
        """Grid coordinates of the one chunk holding all of ``region`` (else ``None``)."""
        coords = []
        for sl, c in zip(region, self.chunks, strict=True):
            i = sl.start // c
            if sl.stop <= sl.start or sl.stop > (i + 1) * c:
                return None
            coords.append(i)
        return tuple(coords)

    def object_name(self, coords: Sequence[int]) -> str:
        """Key (below the array) of the stored object holding a chunk: the chunk's own
        key, or its shard's for a sharded array."""
        grid = tuple(int(c) for c in coords)
        if self.per_shard is not None:
            grid = tuple(c // n for c, n in zip(grid, self.per_shard, strict=True))
        return str(self.array.metadata.encode_chunk_key(grid))

    def key(self, coords: Sequence[int]) -> str:
        """Store key (below the store's root) of :meth:`object_name`."""
        prefix = self.array.store_path.path
        name = self.object_name(coords)
        return f"{prefix}/{name}" if prefix else name

    def fetch_chunks(self, coords: Sequence[Sequence[int]]) -> list[Raw]:
        """Encoded bytes of each chunk (``None`` when absent, the exception when a get failed).

        All gets of one round run concurrently (on zarr's event loop, or on this thread
        for local files); a sharded array needs a first round for the shard indexes it
        has not seen yet.
        """
        if self.per_shard is None:
            return self._get([(self.key(c), None) for c in coords])
        keys = [self.key(c) for c in coords]
        new = [k for k in dict.fromkeys(keys) if k not in self._indexes]
        bad: dict[str, BaseException] = {}  # not kept: a later read asks again
        if new:
            n = int(np.prod(self.per_shard)) * 16 + 4 * len(self.index_decoders)
            where = SuffixByteRequest(n) if self.index_at_end else RangeByteRequest(0, n)
            for k, raw in zip(new, self._get([(k, where) for k in new]), strict=True):
                try:
                    if isinstance(raw, BaseException):
                        raise raw
                    if raw is not None and len(raw) > n:  # a server that ignored the range
                        raw = raw[-n:] if self.index_at_end else raw[:n]
                    index = None if raw is None else self._parse_index(raw)
                except Exception as exc:
                    bad[k] = ValueError(f"bad shard index: {type(exc).__name__}: {exc}")
                    continue
                with self._lock:
                    if len(self._indexes) >= _MAX_INDEXES:
                        self._indexes.pop(next(iter(self._indexes)), None)
                    self._indexes[k] = index
        out: list[Raw] = [None] * len(coords)
        ranges: list[tuple[str, ByteRequest | None]] = []
        slots: list[int] = []
        for i, (k, c) in enumerate(zip(keys, coords, strict=True)):
            index = self._indexes.get(k, _GONE)
            if k in bad or index is _GONE:
                out[i] = bad.get(k) or OSError(f"shard index of {k} was evicted; read again")
                continue
            if index is None:
                continue  # no shard: every inner chunk is the fill value
            inner = tuple(int(x) % n for x, n in zip(c, self.per_shard, strict=True))
            offset, nbytes = (int(v) for v in index[inner])
            if offset == int(_MISSING) and nbytes == int(_MISSING):
                continue
            ranges.append((k, RangeByteRequest(offset, offset + nbytes)))
            slots.append(i)
        for i, (_, r), raw in zip(slots, ranges, self._get(ranges), strict=True):
            assert isinstance(r, RangeByteRequest)
            if raw is None:
                raw = OSError("the shard its index names has gone")
            elif not isinstance(raw, BaseException) and len(raw) > r.end - r.start:
                raw = raw[r.start : r.end]  # a server that ignored the range sent it all
            out[i] = raw
        return out

    def _parse_index(self, raw: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint64]:
        """(per_shard..., 2) offsets and sizes; raises for a wrong size or checksum."""
        buf: Any = raw
        for codec in self.index_decoders:
            buf = codec.decode(buf)  # crc32c: checks the sum and strips it
        flat = np.frombuffer(buf, dtype="<u8")
        assert self.per_shard is not None
        return flat.reshape(*self.per_shard, 2).astype(np.uint64)

    def _get(self, requests: Sequence[tuple[str, ByteRequest | None]]) -> list[Raw]:
        store = self.array.store_path.store
        if isinstance(store, zarr.storage.LocalStore):
            # Local files: read on this thread (the read releases the GIL), without
            # the hops to zarr's event loop and its I/O threads (~200 µs of CPU per
            # chunk on the benchmark machine, and the GIL held for most of it).
            return [_read_file(store.root / k, r) for k, r in requests]
        proto = default_buffer_prototype()
        # Over HTTP, an answer for a whole chunk larger than the chunk could be once
        # encoded is refused as it arrives (issue 21; analysis.io._http, which also asks
        # again after a 5xx or a dropped connection). A range request may be answered
        # with the whole shard (a server that ignores ranges): the general cap.
        from analysis.io._http import answer_cap

        cap = None
        if self.per_shard is None:
            nbytes = int(np.prod(self.chunks)) * self.stored_dtype.itemsize
            cap = nbytes + nbytes // 8 + (64 << 10)  # codecs' worst-case growth and framing

        async def get_all(todo: Sequence[tuple[str, ByteRequest | None]]) -> list[Any]:
            with answer_cap(cap) if cap is not None else contextlib.nullcontext():
                return await asyncio.gather(
                    *(store.get(k, proto, byte_range=r) for k, r in todo), return_exceptions=True
                )

        results: list[Any] = list(sync(get_all(requests)))
        out: list[Raw] = []
        for got in results:
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
        # Copied into a new writable array: callers may modify what read() returns,
        # as they may with zarr's (decoded buffers can be read-only bytes).
        out = np.empty(self.chunks, dtype=self.stored_dtype, order=order)
        buf: Any = raw
        n = out.nbytes
        for codec in self.decoders[:-1]:
            # (a checksum or a second compressor: bounded like the last one, with room
            # for its own framing)
            buf = _decode_bounded(codec, buf, n + 4096)
        if self.decoders:
            flat = np.frombuffer(_decode_bounded(self.decoders[-1], buf, n), np.uint8)
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


def _declared_size(codec_id: str, buf: Any) -> int | None:
    """The decompressed size a compressed chunk declares in its header, if it does.

    Read before decompressing, so a chunk that would inflate far beyond its chunk shape
    (a decompression bomb, a wrong file) is refused without allocating it: Blosc's
    header (``nbytes`` at bytes 4-8), numcodecs' LZ4 (a 4-byte size prefix) and a
    zstd frame's content size (RFC 8878, section 3.1.1.1).
    """
    b = memoryview(buf).cast("B") if not isinstance(buf, bytes) else memoryview(buf)
    if codec_id == "blosc" and len(b) >= 16:
        return int.from_bytes(b[4:8], "little")
    if codec_id == "lz4" and len(b) >= 4:
        return int.from_bytes(b[0:4], "little")
    if codec_id == "zstd" and len(b) >= 6 and bytes(b[0:4]) == b"\x28\xb5\x2f\xfd":
        fhd = b[4]
        fcs_flag, single, dict_flag = fhd >> 6, (fhd >> 5) & 1, fhd & 3
        pos = 5 + (0 if single else 1) + (0, 1, 2, 4)[dict_flag]
        size = (1 if single else 0) if fcs_flag == 0 else (1, 2, 4, 8)[fcs_flag]
        if size == 0 or len(b) < pos + size:
            return None  # the frame does not say
        value = int.from_bytes(b[pos : pos + size], "little")
        return value + 256 if size == 2 else value
    return None


def _decode_bounded(codec: Codec, buf: Any, limit: int) -> Any:
    """``codec.decode(buf)``, refusing (``ValueError``) output of more than ``limit``
    bytes before it is allocated."""
    cid = str(getattr(codec, "codec_id", ""))
    if cid in ("gzip", "zlib"):
        import zlib

        wbits = 16 + zlib.MAX_WBITS if cid == "gzip" else zlib.MAX_WBITS
        d = zlib.decompressobj(wbits)
        data = d.decompress(
            memoryview(buf).cast("B") if not isinstance(buf, bytes) else buf, limit + 1
        )
        if len(data) > limit or d.unconsumed_tail:
            raise ValueError(
                f"a chunk inflates beyond {limit} bytes (corrupt, or a decompression bomb)"
            )
        return data
    declared = _declared_size(cid, buf)
    if declared is not None and declared > limit:
        raise ValueError(
            f"a chunk declares {declared} bytes decompressed, more than its {limit} "
            "(corrupt, or a decompression bomb)"
        )
    if declared is None and cid in ("zstd", "blosc", "lz4"):
        # No size in the header: decompress into a buffer of the limit (the codec
        # refuses more).
        dest = np.empty(limit, np.uint8)
        return codec.decode(buf, out=dest)
    return codec.decode(buf)


def _read_file(path: Path, byte_range: ByteRequest | None = None) -> Raw:
    try:
        with open(path, "rb") as f:
            if byte_range is None:
                data = f.read()
            elif isinstance(byte_range, SuffixByteRequest):
                size = f.seek(0, os.SEEK_END)
                f.seek(max(size - byte_range.suffix, 0))
                data = f.read()
            else:
                assert isinstance(byte_range, RangeByteRequest)
                f.seek(byte_range.start)
                data = f.read(byte_range.end - byte_range.start)
                if len(data) != byte_range.end - byte_range.start:
                    return OSError(f"{path} ends at byte {byte_range.start + len(data)}")
        return np.frombuffer(data, np.uint8)
    except FileNotFoundError:
        return None  # a missing chunk: the fill value
    except OSError as exc:
        return exc
