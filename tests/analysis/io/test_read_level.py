"""``ZarrVolumeSource.read_level``: a whole level with every chunk checked (issue 21).

An absent chunk key is a sparse store (zarr writers leave out chunks of fill values):
the fill value, no error. A key that exists but cannot be read (corrupt bytes, a folder
in place of the chunk file, a server error) is damage: a ``ChunkError`` naming the store,
level and chunk, or with ``allow_missing`` the fill value and the error in a list. zarr's
own read takes a folder for an absent chunk (zeros, silently): the reference for the
voxels is the array ome-zarr-py wrote, with the damaged chunk zeroed by hand.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from analysis.errors import ChunkError
from analysis.io import open_volume
from tests.analysis.io._support import write_with_ome_zarr

SHAPE = (32, 32, 48)
CHUNKS = (16, 16, 16)


def _data() -> np.ndarray[Any, Any]:
    z, y, x = np.indices(SHAPE)
    data = ((z * 7 + y * 3 + x) % 250 + 1).astype(np.uint16)
    data[16:, 16:, :] = 0  # chunks of zeros: never written (sparse)
    return data


def _zeroed(data: np.ndarray[Any, Any], coords: tuple[int, ...]) -> np.ndarray[Any, Any]:
    out = data.copy()
    out[tuple(slice(c * n, (c + 1) * n) for c, n in zip(coords, CHUNKS, strict=True))] = 0
    return out


def _chunk(level0: Path, coords: tuple[int, ...]) -> Path:
    for name in ("c/" + "/".join(map(str, coords)), "/".join(map(str, coords))):
        if (level0 / name).is_file():
            return level0 / name
    raise AssertionError(f"no chunk file {coords} under {level0}")


@pytest.mark.parametrize("path", ["chunk reader", "zarr"])
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_read_level_equals_the_data_and_absent_chunks_are_fill(
    tmp_path: Path, version: str, path: str
) -> None:
    data = _data()
    store = write_with_ome_zarr(tmp_path / "s.zarr", data, version=version, chunks=CHUNKS)
    level0 = store / "s0"
    with pytest.raises(AssertionError):
        _chunk(level0, (1, 1, 0))  # sparse: the all-zero chunk was never written
    src = open_volume(store)
    if path == "zarr":
        src._chunk_readers[0] = None  # the codecs the chunk reader does not know
    got, bad = src.read_level(0)
    assert bad == []
    np.testing.assert_array_equal(got, data)
    np.testing.assert_array_equal(got, zarr.open_array(str(level0), mode="r")[...])


@pytest.mark.parametrize("path", ["chunk reader", "zarr"])
@pytest.mark.parametrize("damage", ["corrupt", "folder"])
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_damaged_chunk_is_refused_or_counted(
    tmp_path: Path, version: str, damage: str, path: str
) -> None:
    data = _data()
    store = write_with_ome_zarr(tmp_path / "s.zarr", data, version=version, chunks=CHUNKS)
    chunk = _chunk(store / "s0", (0, 1, 2))
    if damage == "corrupt":
        chunk.write_bytes(b"\x00garbage" * 8)
    else:
        chunk.unlink()
        chunk.mkdir()
    src = open_volume(store)
    if path == "zarr":
        src._chunk_readers[0] = None
    key = str(chunk.relative_to(store))
    with pytest.raises(ChunkError) as info:
        src.read_level(0)
    assert info.value.key == key
    message = str(info.value)
    assert "\n" not in message and key in message and "level 0" in message
    assert str(store) in message
    got, bad = src.read_level(0, allow_missing=True)
    assert [e.key for e in bad] == [key]
    np.testing.assert_array_equal(got, _zeroed(data, (0, 1, 2)))


@pytest.mark.parametrize("path", ["chunk reader", "zarr"])
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_region_is_checked_chunk_by_chunk(tmp_path: Path, version: str, path: str) -> None:
    """``read_checked`` and ``checked()`` (what train and infer read through): regions
    that cut across chunks, one of them a folder where zarr reads zeros silently."""
    data = _data()
    store = write_with_ome_zarr(tmp_path / "s.zarr", data, version=version, chunks=CHUNKS)
    chunk = _chunk(store / "s0", (0, 1, 2))
    chunk.unlink()
    chunk.mkdir()
    src = open_volume(store)
    if path == "zarr":
        src._chunk_readers[0] = None
    key = str(chunk.relative_to(store))
    expected = _zeroed(data, (0, 1, 2))
    clean = (slice(3, 29), slice(0, 13), slice(5, 40))  # misses the damaged chunk
    got, bad = src.read_checked(0, clean)
    assert bad == []
    np.testing.assert_array_equal(got, data[clean])
    across = (slice(7, 21), slice(9, 30), slice(25, 47))  # 8 chunks, one damaged
    with pytest.raises(ChunkError) as info:
        src.read_checked(0, across)
    assert info.value.key == key
    with pytest.raises(ChunkError):
        src.checked().read(0, across)
    unreadable: list[ChunkError] = []
    view = src.checked(unreadable)
    np.testing.assert_array_equal(view.read(0, across), expected[across])
    np.testing.assert_array_equal(view.read(0, across), expected[across])  # counted once
    np.testing.assert_array_equal(view.read(0, (slice(5, 5),)), data[5:5])  # empty region
    assert [e.key for e in unreadable] == [key]
    assert view.levels == src.levels and view.label_names == src.label_names


def test_a_sharded_level_with_a_folder_in_place_of_a_shard(tmp_path: Path) -> None:
    """NGFF 0.5 with shards (ome-zarr-py): an absent shard is fill, a folder is damage
    (each of its inner chunks read as fill, the shard counted once)."""
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_image

    z, y, x = np.indices((64, 64, 64))
    data = ((z + 2 * y + 3 * x) % 200 + 1).astype(np.uint8)
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="w", zarr_format=3)
    opts = {"chunks": (16, 16, 16), "shards": (32, 32, 32)}
    write_image(data, group, axes="zyx", fmt=FormatV05(), scale_factors=(2,), storage_options=opts)
    shards = tmp_path / "s.zarr" / "s0" / "c"
    (shards / "0" / "0" / "1").unlink()  # absent: fill
    (shards / "1" / "1" / "0").unlink()
    (shards / "1" / "1" / "0").mkdir()  # damage
    src = open_volume(tmp_path / "s.zarr")
    expected = data.copy()
    expected[:32, :32, 32:] = 0
    with pytest.raises(ChunkError) as info:
        src.read_level(0)
    assert info.value.key == "s0/c/1/1/0"
    got, bad = src.read_level(0, allow_missing=True)
    assert [e.key for e in bad] == ["s0/c/1/1/0"]
    expected[32:, 32:, :32] = 0
    np.testing.assert_array_equal(got, expected)


@contextmanager
def _failing_server(
    root: Path, fail: str, status: int, times: int | None = None, asked: list[str] | None = None
) -> Iterator[str]:
    """Serve ``root`` on loopback; requests for ``fail`` get HTTP ``status`` (the first
    ``times`` of them; all when None) and are listed in ``asked``."""
    failures = [0]

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.endswith(fail):
                if asked is not None:
                    asked.append(self.path)
                if times is None or failures[0] < times:
                    failures[0] += 1
                    self.send_error(status)
                    return
            super().do_GET()

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status", [500, 403])
def test_a_server_error_for_a_chunk_is_damage_not_a_missing_chunk(
    tmp_path: Path, status: int
) -> None:
    """The campaign: 500 and 403 answers for chunks were taken as missing chunks. A 404
    (the key is absent) stays the fill value."""
    data = _data()
    write_with_ome_zarr(tmp_path / "h.zarr", data, version="0.5", chunks=CHUNKS)
    with _failing_server(tmp_path, "/s0/c/1/0/1", status) as url:
        src = open_volume(f"{url}/h.zarr")
        with pytest.raises(ChunkError) as info:
            src.read_level(0)
        assert info.value.key == "s0/c/1/0/1"
        assert str(status) in str(info.value)
        got, bad = src.read_level(0, allow_missing=True)
    assert [e.key for e in bad] == ["s0/c/1/0/1"]
    np.testing.assert_array_equal(got, _zeroed(data, (1, 0, 1)))


def test_a_transient_server_error_is_retried(tmp_path: Path) -> None:
    """Two 503 answers then the chunk: read whole, after retries (issue 21 item 3)."""
    data = _data()
    write_with_ome_zarr(tmp_path / "h.zarr", data, version="0.5", chunks=CHUNKS)
    asked: list[str] = []
    with _failing_server(tmp_path, "/s0/c/0/1/1", 503, times=2, asked=asked) as url:
        got, bad = open_volume(f"{url}/h.zarr").read_level(0)
    assert bad == [] and len(asked) == 3
    np.testing.assert_array_equal(got, data)


def test_a_lasting_server_error_gives_up_after_the_retries(tmp_path: Path) -> None:
    from analysis.io._http import RETRY_DELAYS_S

    data = _data()
    write_with_ome_zarr(tmp_path / "h.zarr", data, version="0.5", chunks=CHUNKS)
    asked: list[str] = []
    with _failing_server(tmp_path, "/s0/c/0/1/1", 502, asked=asked) as url:
        with pytest.raises(ChunkError) as info:
            open_volume(f"{url}/h.zarr").read_level(0)
    assert info.value.key == "s0/c/0/1/1" and "502" in str(info.value)
    assert len(asked) == 1 + len(RETRY_DELAYS_S)
