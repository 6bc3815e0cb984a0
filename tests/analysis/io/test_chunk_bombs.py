"""A chunk that would inflate far beyond its chunk shape is refused before it is
allocated (issue 21): zstd, Blosc, LZ4, gzip and zlib, zarr v2 and v3. Peak memory is
measured with tracemalloc (NumPy and the codecs allocate through it)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest
import zarr

from analysis.errors import ChunkError
from analysis.io import open_volume
from analysis.io._chunks import ChunkReader
from tests.analysis.io._support import write_with_ome_zarr

BOMB = 256 << 20  # 256 MiB of zeros, a few kB compressed

V2: dict[str, Any] = {
    "zstd": numcodecs.Zstd(level=1),
    "blosc": numcodecs.Blosc(cname="lz4"),
    "lz4": numcodecs.LZ4(),
    "zlib": numcodecs.Zlib(level=1),
    "gzip": numcodecs.GZip(level=1),
}


def _bomb(codec: Any) -> bytes:
    return bytes(codec.encode(np.zeros(BOMB, np.uint8)))


@pytest.mark.parametrize("name", sorted(V2))
def test_a_decompression_bomb_is_refused_without_inflating_it(tmp_path: Path, name: str) -> None:
    codec = V2[name]
    arr = zarr.create_array(
        str(tmp_path / "a.zarr"),
        shape=(32, 32, 32),
        chunks=(16, 16, 16),
        dtype="uint8",
        zarr_format=2,
        compressors=codec,
    )
    arr[...] = 1
    (tmp_path / "a.zarr" / "0.0.1").write_bytes(_bomb(codec))
    reader = ChunkReader.for_array(arr)
    assert reader is not None
    raw = reader.fetch_chunks([(0, 0, 1)])[0]
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="bomb"):
            reader.decode(raw)  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak  # far below the 256 MiB it would inflate to
    np.testing.assert_array_equal(reader.decode(reader.fetch_chunks([(0, 0, 0)])[0]), 1)


def test_a_zstd_bomb_in_an_ome_zarr_store_is_a_chunk_error(tmp_path: Path) -> None:
    data = np.ones((32, 32, 32), np.uint8)
    path = write_with_ome_zarr(tmp_path / "b.zarr", data, version="0.5", chunks=(16, 16, 16))
    key = "s0/c/1/0/1"
    (path / key).write_bytes(_bomb(numcodecs.Zstd(level=1)))
    src = open_volume(path)
    with pytest.raises(ChunkError) as info:
        src.read(0, (slice(16, 32), slice(0, 16), slice(16, 32)))
    assert info.value.key == key and "\n" not in str(info.value)
    assert "bomb" in str(info.value)
    np.testing.assert_array_equal(src.read(0, (slice(0, 16),) * 3), 1)
