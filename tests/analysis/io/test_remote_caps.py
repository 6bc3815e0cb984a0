"""Remote answers are size-capped and metadata reads retried (issue 21, "bounded remote I/O").

A loopback HTTP fault server serves a store written by ome-zarr-py and misbehaves for
one path: an endless body (no length, never ending), a Content-Length of a terabyte
with a trickling body, a gzip ``Content-Encoding`` bomb (64 MiB of zeros in 64 KiB),
or 503 answers. The campaign found the client hanging for the full 200 s watch or
growing without bound on such answers. Each now ends in one line naming the URL and
the cap, within a liveness deadline, with the Python heap (tracemalloc) bounded far
below what the server offers. Metadata documents (``zarr.json``, ``.zattrs``,
``.zarray``) are asked again after a 503, as chunks already were.
"""

from __future__ import annotations

import functools
import gzip
import http.server
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import analysis.io._http as http_mod
import analysis.io._read as read_mod
from analysis.errors import ChunkError, FormatError
from analysis.io import open_volume
from tests.analysis.io._support import write_with_ome_zarr

SHAPE = (32, 32, 48)
CHUNKS = (16, 16, 16)
OFFERED = 64 << 20  # what a misbehaving server sends at most (main read all of it)
BLOCK = b"\0" * (64 << 10)
SLOW_S = 0.5  # the "slow" fault's delay before each answer


@functools.cache
def _gzip_bomb() -> bytes:
    return gzip.compress(b"\0" * OFFERED, compresslevel=9)


def _data() -> np.ndarray[Any, Any]:
    z, y, x = np.indices(SHAPE)
    return ((z * 7 + y * 3 + x) % 250 + 1).astype(np.uint16)


class Fault:
    def __init__(self) -> None:
        self.url = ""
        self.asked = 0  # requests for the faulty path


@contextmanager
def fault_server(root: Path, path: str, fault: str, times: int | None = None) -> Iterator[Fault]:
    """Serve ``root`` on loopback; GETs whose path ends with ``path`` get ``fault``
    (the first ``times`` of them; all when None)."""
    state = Fault()
    if fault == "gzip-bomb":
        _gzip_bomb()  # made here, outside the measured heap

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_GET(self) -> None:
            if not self.path.endswith(path):
                super().do_GET()
                return
            state.asked += 1
            if times is not None and state.asked > times:
                super().do_GET()
                return
            try:
                self._fault()
            except OSError:
                pass  # the client hung up: what it should do

        def _fault(self) -> None:
            if fault == "slow":  # the right answer, late (within every per-request limit)
                time.sleep(SLOW_S)
                super().do_GET()
                return
            if fault == "503":
                self.send_error(503)
                return
            self.send_response(200)
            if fault == "gzip-bomb":
                body = _gzip_bomb()
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if fault == "gzip":  # a well-behaved server that compresses the real file
                body = gzip.compress((root / self.path.lstrip("/")).read_bytes())
                self.send_header("Content-Encoding", "gzip")
                self.end_headers()  # no length: read to the end
                self.close_connection = True
                self.wfile.write(body)
                return
            if fault == "lying-length":
                self.send_header("Content-Length", str(1 << 40))
                self.end_headers()
                for _ in range(600):  # a trickle: 1 byte per 0.1 s
                    self.wfile.write(b"{")
                    self.wfile.flush()
                    time.sleep(0.1)
                return
            assert fault == "endless"
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            for _ in range(OFFERED // len(BLOCK)):
                self.wfile.write(BLOCK)

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _store(tmp_path: Path, version: str = "0.5") -> Path:
    return write_with_ome_zarr(tmp_path / "s.zarr", _data(), version=version, chunks=CHUNKS)


def _one_line(msg: str) -> None:
    assert "\n" not in msg and len(msg) < 500, msg


@pytest.mark.parametrize("fault", ["endless", "lying-length", "gzip-bomb"])
@pytest.mark.parametrize("document", ["zarr.json", "s0/zarr.json"])
def test_an_oversized_metadata_answer_is_one_line_naming_url_and_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str, document: str
) -> None:
    _store(tmp_path)
    monkeypatch.setattr(http_mod, "MAX_METADATA_BYTES", 1 << 20)
    monkeypatch.setattr(read_mod, "HTTP_TOTAL_S", 20.0)  # main: the trickle ran 120 s
    with fault_server(tmp_path, f"/s.zarr/{document}", fault) as server:
        base = server.url
        tracemalloc.start()
        t0 = time.monotonic()
        try:
            with pytest.raises(FormatError) as info:
                open_volume(f"{base}/s.zarr")
            took = time.monotonic() - t0
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    msg = str(info.value)
    _one_line(msg)
    assert f"{base}/s.zarr/{document}" in msg and "1 MiB cap" in msg, msg
    assert took < 30.0  # a liveness deadline: the campaign watched these hang 200 s
    assert peak < 16 << 20, f"{peak / 2**20:.1f} MiB held for a 1 MiB cap"  # offered: 64 MiB


@pytest.mark.parametrize("fault", ["endless", "lying-length", "gzip-bomb"])
def test_an_oversized_chunk_answer_is_a_chunk_error_naming_url_and_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """A whole-chunk answer larger than the chunk could be once encoded (8 KiB of
    uint16 here: the cap is 73 KiB) is refused as it arrives."""
    data = _data()
    _store(tmp_path)
    monkeypatch.setattr(read_mod, "HTTP_TOTAL_S", 20.0)
    with fault_server(tmp_path, "/s.zarr/s0/c/1/0/2", fault) as server:
        base = server.url
        src = open_volume(f"{base}/s.zarr")
        tracemalloc.start()
        t0 = time.monotonic()
        try:
            with pytest.raises(ChunkError) as info:
                src.read_level(0)
            took = time.monotonic() - t0
            _, peak = tracemalloc.get_traced_memory()
            got, bad = src.read_level(0, allow_missing=True)
        finally:
            tracemalloc.stop()
    msg = str(info.value)
    _one_line(msg)
    assert info.value.key == "s0/c/1/0/2"
    assert f"{base}/s.zarr/s0/c/1/0/2" in msg and "73 KiB cap" in msg, msg
    assert took < 30.0
    assert peak < 16 << 20, f"{peak / 2**20:.1f} MiB held"
    assert [e.key for e in bad] == ["s0/c/1/0/2"]
    expected = data.copy()
    expected[16:32, 0:16, 32:48] = 0  # the refused chunk counts as empty
    np.testing.assert_array_equal(got, expected)


def test_zarrs_own_path_is_capped_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads through zarr (codecs the chunk reader does not handle) meet the general cap."""
    _store(tmp_path)
    monkeypatch.setattr(http_mod, "MAX_ANSWER_BYTES", 1 << 20)
    with fault_server(tmp_path, "/s.zarr/s0/c/0/0/0", "endless") as server:
        base = server.url
        src = open_volume(f"{base}/s.zarr")
        src._chunk_readers[0] = None  # zarr's general path
        with pytest.raises(ChunkError) as info:
            src.read(0, (slice(0, 8), slice(0, 8), slice(0, 8)))
    _one_line(str(info.value))
    assert "1 MiB cap" in str(info.value)


@pytest.mark.parametrize(
    ("version", "document"),
    [("0.5", "zarr.json"), ("0.5", "s0/zarr.json"), ("0.4", ".zattrs"), ("0.4", "s0/.zarray")],
)
def test_metadata_answered_503_twice_then_opens(
    tmp_path: Path, version: str, document: str
) -> None:
    data = _data()
    _store(tmp_path, version)
    with fault_server(tmp_path, f"/s.zarr/{document}", "503", times=2) as server:
        base = server.url
        src = open_volume(f"{base}/s.zarr")
        got = src.read(0)
    assert server.asked == 3
    np.testing.assert_array_equal(got, data)


@pytest.mark.parametrize("document", ["zarr.json", "s0/zarr.json"])
def test_metadata_always_503_is_one_line_after_the_retries(tmp_path: Path, document: str) -> None:
    _store(tmp_path)
    with fault_server(tmp_path, f"/s.zarr/{document}", "503") as server:
        base = server.url
        with pytest.raises(FormatError) as info:
            open_volume(f"{base}/s.zarr")
    msg = str(info.value)
    _one_line(msg)
    assert f"{base}/s.zarr" in msg and "HTTP 503, 4 tries" in msg, msg
    assert server.asked == 1 + len(http_mod.RETRY_DELAYS_S)


@pytest.mark.parametrize("document", ["zarr.json", "s0/c/1/0/2"])
def test_a_gzip_encoded_answer_within_the_cap_reads_whole(tmp_path: Path, document: str) -> None:
    """The capped path (no length, ``Content-Encoding: gzip``) returns the decoded bytes."""
    data = _data()
    _store(tmp_path)
    with fault_server(tmp_path, f"/s.zarr/{document}", "gzip") as server:
        got, bad = open_volume(f"{server.url}/s.zarr").read_level(0)
    assert server.asked >= 1 and bad == []
    np.testing.assert_array_equal(got, data)


def test_vrscope_info_on_an_endless_answer_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the user sees: ``vrscope info URL`` prints one line naming the URL and the cap."""
    from vrscope.cli import main

    _store(tmp_path)
    monkeypatch.setattr(http_mod, "MAX_METADATA_BYTES", 1 << 20)
    with fault_server(tmp_path, "/s.zarr/zarr.json", "endless") as server:
        code = main(["info", f"{server.url}/s.zarr"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert f"{server.url}/s.zarr/zarr.json" in err[0] and "1 MiB cap" in err[0], err
