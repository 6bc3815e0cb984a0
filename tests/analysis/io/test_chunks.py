"""The whole-chunk read path (analysis/io/_chunks.py) against zarr's own ``arr[region]``.

Every case builds a zarr array with zarr itself (v2 and v3, the codecs OME-Zarr writers
use, big- and little-endian, F order, edge chunks, missing chunks) and compares what
``ChunkReader`` and ``ZarrVolumeSource.read`` / ``read_many`` return with zarr's result.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest
import zarr
import zarr.codecs
import zarr.storage

from analysis.errors import ChunkError
from analysis.io import open_volume
from analysis.io._chunks import ChunkReader
from tests.analysis.io._support import RecordingStore, write_with_ome_zarr
from tests.viewer.streaming._support import slow_http_server

SHAPE = (21, 18, 35)  # not a multiple of the chunks: edge chunks are partial
CHUNKS = (8, 8, 16)


def _data(dtype: str, shape: tuple[int, ...] = SHAPE) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(3)
    z, y, x = np.indices(shape)
    smooth = np.sin(z / 3) * 40 + np.cos(y / 5) * 30 + x
    return (smooth + rng.integers(0, 9, shape)).astype(dtype)


V3_CODECS: dict[str, Any] = {
    "zstd": zarr.codecs.ZstdCodec(level=3),
    "blosc": zarr.codecs.BloscCodec(cname="lz4", shuffle="bitshuffle"),
    "gzip": zarr.codecs.GzipCodec(level=5),
    "none": None,
}
V2_COMPRESSORS: dict[str, Any] = {
    "zstd": numcodecs.Zstd(level=2),
    "blosc": numcodecs.Blosc(cname="zstd", shuffle=numcodecs.Blosc.SHUFFLE),
    "zlib": numcodecs.Zlib(level=4),
    "none": None,
}


def _v3(path: Path, data: np.ndarray[Any, Any], codec: Any, endian: str = "little") -> Any:
    arr = zarr.create_array(
        str(path),
        shape=data.shape,
        chunks=CHUNKS,
        dtype=data.dtype,
        zarr_format=3,
        serializer=zarr.codecs.BytesCodec(endian=endian),
        compressors=[codec] if codec is not None else None,
        fill_value=7,
    )
    arr[...] = data
    return arr


def _v2(path: Path, data: np.ndarray[Any, Any], comp: Any, order: str = "C") -> Any:
    arr = zarr.create_array(
        str(path),
        shape=data.shape,
        chunks=CHUNKS,
        dtype=data.dtype,
        zarr_format=2,
        compressors=comp,
        order=order,  # type: ignore[arg-type]
        fill_value=7,
    )
    arr[...] = data
    return arr


def _every_chunk(reader: ChunkReader, arr: Any) -> None:
    """Each whole chunk decoded by ``reader`` equals zarr's read of it."""
    grid = [range(0, n, c) for n, c in zip(arr.shape, CHUNKS, strict=True)]
    keys, regions = [], []
    for z in grid[0]:
        for y in grid[1]:
            for x in grid[2]:
                reg = (slice(z, z + 8), slice(y, y + 8), slice(x, x + 16))
                coords = reader.chunk_of(
                    tuple(
                        slice(s.start, min(s.stop, n)) for s, n in zip(reg, arr.shape, strict=True)
                    )
                )
                assert coords is not None
                keys.append(coords)
                regions.append(reg)
    for reg, raw in zip(regions, reader.fetch_chunks(keys), strict=True):
        assert not isinstance(raw, BaseException)
        got = reader.decode(raw)
        crop = tuple(
            slice(0, min(s.stop, n) - s.start) for s, n in zip(reg, arr.shape, strict=True)
        )
        np.testing.assert_array_equal(got[crop], arr[reg])
        assert got.dtype == arr.dtype and got.flags.writeable


@pytest.mark.parametrize("codec", sorted(V3_CODECS))
@pytest.mark.parametrize(
    ("dtype", "endian"),
    [("uint8", "little"), ("<u2", "big"), (">i2", "little"), ("float32", "little")],
)
def test_v3_chunks_equal_zarr(tmp_path: Path, codec: str, dtype: str, endian: str) -> None:
    _v3(tmp_path / "a.zarr", _data(dtype), V3_CODECS[codec], endian)
    arr = zarr.open_array(str(tmp_path / "a.zarr"), mode="r")
    reader = ChunkReader.for_array(arr)
    assert reader is not None
    _every_chunk(reader, arr)


@pytest.mark.parametrize("comp", sorted(V2_COMPRESSORS))
@pytest.mark.parametrize(
    ("dtype", "order"), [("uint8", "C"), (">u2", "C"), ("<f4", "F"), ("int32", "F")]
)
def test_v2_chunks_equal_zarr(tmp_path: Path, comp: str, dtype: str, order: str) -> None:
    _v2(tmp_path / "a.zarr", _data(dtype), V2_COMPRESSORS[comp], order)
    arr = zarr.open_array(str(tmp_path / "a.zarr"), mode="r")
    reader = ChunkReader.for_array(arr)
    assert reader is not None
    _every_chunk(reader, arr)


def test_layouts_zarr_must_read_get_no_reader(tmp_path: Path) -> None:
    data = _data("uint16")
    transposed = zarr.create_array(
        str(tmp_path / "t.zarr"),
        shape=SHAPE,
        chunks=CHUNKS,
        dtype="uint16",
        filters=[zarr.codecs.TransposeCodec(order=(2, 1, 0))],
    )
    filtered = zarr.create_array(
        str(tmp_path / "f.zarr"),
        shape=SHAPE,
        chunks=CHUNKS,
        dtype="uint16",
        zarr_format=2,
        filters=[numcodecs.Delta(dtype="uint16")],
    )
    for arr in (transposed, filtered):
        arr[...] = data
        assert ChunkReader.for_array(arr) is None, arr.metadata


@pytest.mark.parametrize("index_location", ["end", "start"])
@pytest.mark.parametrize(
    ("inner", "index_crc"),
    [("zstd", True), ("none", True), ("zstd+crc32c", False), ("gzip", False)],
)
def test_sharded_inner_chunks_equal_zarr(
    tmp_path: Path, index_location: str, inner: str, index_crc: bool
) -> None:
    """Inner chunks through the shard index (byte ranges), edge shards, empty inner
    chunks and a missing shard, against zarr's reads of the same array."""
    compressors: list[Any] = {
        "zstd": [zarr.codecs.ZstdCodec()],
        "none": [],
        "zstd+crc32c": [zarr.codecs.ZstdCodec(), zarr.codecs.Crc32cCodec()],
        "gzip": [zarr.codecs.GzipCodec()],
    }[inner]
    sharding = zarr.codecs.ShardingCodec(
        chunk_shape=CHUNKS,
        codecs=[zarr.codecs.BytesCodec(), *compressors],
        index_codecs=[zarr.codecs.BytesCodec()]
        + ([zarr.codecs.Crc32cCodec()] if index_crc else []),
        index_location=index_location,
    )
    data = _data("<u2")
    data[8:16] = 0  # whole inner chunks of zeros: not written (empty in the index)
    path = tmp_path / "sh.zarr"
    arr = zarr.create_array(
        str(path),
        shape=SHAPE,
        chunks=(16, 16, 32),
        dtype="<u2",
        serializer=sharding,
        compressors=None,
        fill_value=0,
    )
    arr[...] = data
    assert arr.shards == (16, 16, 32) and arr.chunks == CHUNKS
    shutil.rmtree(path / "c" / "1" / "1")  # shards (1, 1, *): missing, read as fill
    arr = zarr.open_array(str(path), mode="r")
    reader = ChunkReader.for_array(arr)
    assert reader is not None and reader.per_shard == (2, 2, 2)
    _every_chunk(reader, arr)
    # one index per shard, kept; the two missing shards are remembered as missing
    assert len(reader._indexes) == 8
    assert sum(v is None for v in reader._indexes.values()) == 2


def test_corrupt_shard_index_is_a_chunk_error_naming_the_shard(tmp_path: Path) -> None:
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_image

    data = _data("uint8", (64, 64, 64))
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="w", zarr_format=3)
    opts = {"chunks": (16, 16, 16), "shards": (32, 32, 32)}
    write_image(data, group, axes="zyx", fmt=FormatV05(), scale_factors=(2,), storage_options=opts)
    shard = tmp_path / "s.zarr" / "s0" / "c" / "1" / "0" / "1"
    raw = bytearray(shard.read_bytes())
    raw[-10] ^= 0xFF  # inside the index (at the end), so its crc32c no longer matches
    shard.write_bytes(bytes(raw))
    src = open_volume(tmp_path / "s.zarr")
    bad = (slice(32, 48), slice(0, 16), slice(48, 64))
    good = (slice(0, 16), slice(0, 16), slice(0, 16))
    got = src.read_many([(0, bad), (0, good)])
    assert isinstance(got[0], ChunkError) and got[0].key == "s0/c/1/0/1"
    assert "shard index" in str(got[0])
    np.testing.assert_array_equal(got[1], data[good])


VERSIONS = ["0.4", "0.5"]


@pytest.mark.parametrize("version", VERSIONS)
def test_read_many_equals_zarr_for_bricks_sub_chunks_and_spanning_regions(
    tmp_path: Path, version: str
) -> None:
    data = _data("uint16", (40, 36, 50))
    path = write_with_ome_zarr(tmp_path / "r.zarr", data, version=version, chunks=(16, 16, 16))
    src = open_volume(path)
    arr0 = zarr.open_array(str(path / src.levels[0].path), mode="r")
    arr1 = zarr.open_array(str(path / src.levels[1].path), mode="r")
    requests = [
        (0, (slice(16, 32), slice(0, 16), slice(48, 50))),  # a whole edge chunk
        (0, (slice(3, 9), slice(20, 21), slice(17, 30))),  # inside one chunk
        (0, (slice(10, 20), slice(14, 18), slice(0, 50))),  # spans chunks: zarr's path
        (1, (slice(0, 16), slice(0, 16), slice(16, 25))),
        (0, (slice(16, 32), slice(0, 16), slice(48, 50))),  # the same chunk twice
    ]
    got = src.read_many(requests)
    for (level, reg), g in zip(requests, got, strict=True):
        ref = (arr0 if level == 0 else arr1)[reg]
        assert isinstance(g, np.ndarray)
        np.testing.assert_array_equal(g, ref)
        np.testing.assert_array_equal(src.read(level, reg), ref)
    assert got[0] is not got[4]  # each caller gets its own array


def test_missing_chunk_is_the_fill_value_on_the_chunk_path(tmp_path: Path) -> None:
    data = _data("uint8") | 1
    arr = _v3(tmp_path / "m.zarr", data, V3_CODECS["zstd"])
    shutil.rmtree(tmp_path / "m.zarr" / "c" / "1" / "0")  # every chunk with z index 1, y index 0
    reader = ChunkReader.for_array(zarr.open_array(str(tmp_path / "m.zarr"), mode="r"))
    assert reader is not None
    reg = (slice(8, 16), slice(0, 8), slice(16, 32))
    (raw,) = reader.fetch_chunks([(1, 0, 1)])
    assert raw is None
    expect = arr[reg]
    assert (expect == 7).all()  # zarr reads it as the fill value too
    np.testing.assert_array_equal(reader.decode(raw), expect)


def test_2d_image_virtual_z(tmp_path: Path) -> None:
    data = _data("uint8", (1, 40, 33))[0]
    path = write_with_ome_zarr(tmp_path / "p.zarr", data, version="0.5", axes="yx", chunks=(16, 16))
    src = open_volume(path)
    assert src.axes[-3:] == ("z", "y", "x")
    (brick, part) = src.read_many([(0, (slice(0, 1), slice(16, 32), slice(32, 33))), (0, None)])
    assert isinstance(brick, np.ndarray) and isinstance(part, np.ndarray)
    np.testing.assert_array_equal(brick, data[None, 16:32, 32:33])
    np.testing.assert_array_equal(part, data[None])


@pytest.mark.parametrize("version", VERSIONS)
def test_corrupt_chunk_is_a_chunk_error_in_the_list_and_others_still_read(
    tmp_path: Path, version: str
) -> None:
    data = _data("uint8", (32, 32, 32))
    path = write_with_ome_zarr(tmp_path / "c.zarr", data, version=version, chunks=(16, 16, 16))
    key = "s0/c/1/0/1" if version == "0.5" else "s0/1/0/1"
    (path / key).write_bytes(b"this is not zstd")
    src = open_volume(path)
    bad = (slice(16, 32), slice(0, 16), slice(16, 32))
    good = (slice(0, 16), slice(0, 16), slice(0, 16))
    got = src.read_many([(0, bad), (0, good)])
    assert isinstance(got[0], ChunkError) and got[0].key == key
    assert key in str(got[0]) and "\n" not in str(got[0])
    np.testing.assert_array_equal(got[1], data[good])
    with pytest.raises(ChunkError) as info:
        src.read(0, bad)
    assert info.value.key == key


def test_truncated_chunk_names_the_size(tmp_path: Path) -> None:
    arr = _v3(tmp_path / "n.zarr", _data("uint16"), None)
    chunk = tmp_path / "n.zarr" / "c" / "0" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-10])
    reader = ChunkReader.for_array(arr)
    assert reader is not None
    with pytest.raises(ValueError, match="holds 2038 bytes, expected 2048 "):
        reader.decode(reader.fetch_chunks([(0, 0, 0)])[0])  # type: ignore[arg-type]


def test_transient_fetch_error_is_a_chunk_error(tmp_path: Path) -> None:
    """A store whose get fails (a network hiccup) gives a ChunkError naming the chunk."""
    path = write_with_ome_zarr(tmp_path / "t.zarr", _data("uint8", (8, 8, 8)), version="0.5")
    store = RecordingStore(zarr.storage.LocalStore(path, read_only=True))  # not a LocalStore
    src = open_volume(store)
    real_get = store.get

    async def flaky(key: str, prototype: Any = None, byte_range: Any = None) -> Any:
        if "/c/" in key:
            raise TimeoutError("connection reset")
        return await real_get(key, prototype, byte_range)

    store.get = flaky  # type: ignore[method-assign]
    with pytest.raises(ChunkError, match="connection reset") as info:
        src.read(0)
    assert info.value.key == "s0/c/0/0/0"


def test_unreadable_local_chunk_is_a_chunk_error(tmp_path: Path) -> None:
    data = _data("uint8", (16, 16, 16))
    path = write_with_ome_zarr(tmp_path / "u.zarr", data, version="0.4", chunks=(8, 8, 8))
    chunk = path / "s0" / "1" / "0" / "1"
    chunk.unlink()
    chunk.mkdir()  # a directory where the chunk file should be: reading it fails
    src = open_volume(path)
    got = src.read_many([(0, (slice(8, 16), slice(0, 8), slice(8, 16))), (0, (slice(0, 8),) * 3)])
    assert isinstance(got[0], ChunkError) and got[0].key == "s0/1/0/1"
    np.testing.assert_array_equal(got[1], data[:8, :8, :8])


def test_http_batch_fetches_chunks_concurrently(tmp_path: Path) -> None:
    data = _data("uint8", (32, 32, 64))
    write_with_ome_zarr(tmp_path / "h.zarr", data, version="0.5", chunks=(16, 16, 16))
    with slow_http_server(tmp_path, latency_s=0.1) as (url, info):
        src = open_volume(f"{url}/h.zarr")
        regions = [
            (0, (slice(z, z + 16), slice(y, y + 16), slice(x, x + 16)))
            for z in (0, 16)
            for y in (0, 16)
            for x in (0, 16, 32, 48)
        ]
        info["max_concurrent"] = 0
        got = src.read_many(regions)
        for (_, reg), g in zip(regions, got, strict=True):
            np.testing.assert_array_equal(g, data[reg])
        # 16 chunks at 100 ms each: fetched together, not one after another
        assert info["max_concurrent"] >= 8


def test_sharded_store_reads_through_zarr_and_equals_the_data(tmp_path: Path) -> None:
    """NGFF 0.5 with shards (written by ome-zarr-py): no chunk reader, zarr's path, same voxels."""
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_image

    data = _data("uint8", (64, 64, 64))
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="w", zarr_format=3)
    opts = {"chunks": (16, 16, 16), "shards": (32, 32, 32)}
    write_image(data, group, axes="zyx", fmt=FormatV05(), scale_factors=(2,), storage_options=opts)
    src = open_volume(tmp_path / "s.zarr")
    assert zarr.open_array(str(tmp_path / "s.zarr" / src.levels[0].path)).shards == (32, 32, 32)
    assert src._chunk_readers[0] is not None  # inner chunks through the shard index
    regions = [(0, (slice(16, 32), slice(32, 48), slice(0, 16))), (0, (slice(5, 40),) * 3)]
    for (_, reg), got in zip(regions, src.read_many(regions), strict=True):
        np.testing.assert_array_equal(got, data[reg])
    src._chunk_readers[0] = None  # and zarr's own path agrees
    np.testing.assert_array_equal(src.read(0, regions[0][1]), data[regions[0][1]])


def test_sharded_store_over_http_fetches_each_shard_index_once(tmp_path: Path) -> None:
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_image

    data = _data("uint8", (64, 64, 64))
    group = zarr.open_group(str(tmp_path / "h.zarr"), mode="w", zarr_format=3)
    opts = {"chunks": (16, 16, 16), "shards": (32, 32, 32)}
    write_image(data, group, axes="zyx", fmt=FormatV05(), scale_factors=(2,), storage_options=opts)
    with slow_http_server(tmp_path, latency_s=0.05) as (url, info):
        src = open_volume(f"{url}/h.zarr")
        regions = [
            (0, (slice(z, z + 16), slice(y, y + 16), slice(x, x + 16)))
            for z in range(0, 64, 16)
            for y in range(0, 64, 16)
            for x in range(0, 64, 16)
        ]
        info["requests"].clear()
        for i in range(0, len(regions), 16):
            got = src.read_many(regions[i : i + 16])
            for (_, reg), g in zip(regions[i : i + 16], got, strict=True):
                np.testing.assert_array_equal(g, data[reg])
        shard_gets = [r for r in info["requests"] if "/s0/c/" in r]
        # 8 shard indexes + 64 inner chunks (zarr's own path re-reads an index per call)
        assert len(shard_gets) == 8 + 64


def test_sharded_store_from_a_server_without_range_requests(tmp_path: Path) -> None:
    """A plain static server answers byte-range requests with the whole file (200):
    the index and the inner chunks are cut out of it, the voxels are still right."""
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_image

    from tests.analysis.io._support import serve_directory

    data = _data("uint8", (64, 64, 64))
    group = zarr.open_group(str(tmp_path / "p.zarr"), mode="w", zarr_format=3)
    opts = {"chunks": (16, 16, 16), "shards": (32, 32, 32)}
    write_image(data, group, axes="zyx", fmt=FormatV05(), scale_factors=(2,), storage_options=opts)
    with serve_directory(tmp_path) as (url, _):
        src = open_volume(f"{url}/p.zarr")
        regions = [(0, (slice(16, 32), slice(32, 48), slice(48, 64))), (0, (slice(0, 16),) * 3)]
        for (_, reg), got in zip(regions, src.read_many(regions), strict=True):
            np.testing.assert_array_equal(got, data[reg])
