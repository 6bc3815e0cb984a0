"""Remote reads are bounded (issue 21): a server that accepts and never answers, or
answers a header and then stalls, makes open_volume fail within its timeouts with one
line, instead of hanging."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

import analysis.io._read as read_mod
from analysis.errors import FormatError
from analysis.io import open_volume


def _server(behaviour: str) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    port = sock.getsockname()[1]
    conns: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            conns.append(conn)
            if behaviour == "header-then-stall":
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{")
            # "silent": read nothing, answer nothing

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{port}/store.zarr"
    finally:
        stop.set()
        t.join(2)
        for c in conns:
            c.close()
        sock.close()


@pytest.mark.parametrize("behaviour", ["silent", "header-then-stall"])
def test_a_stalled_server_is_an_error_within_the_timeouts(
    behaviour: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read_mod, "HTTP_READ_S", 1.0)
    monkeypatch.setattr(read_mod, "HTTP_TOTAL_S", 3.0)
    gen = _server(behaviour)
    url = next(gen)
    try:
        t0 = time.monotonic()
        with pytest.raises(FormatError) as info:
            open_volume(url)
        took = time.monotonic() - t0
    finally:
        gen.close()
    assert took < 30.0  # bounded (fsspec may retry a request once or twice)
    assert "\n" not in str(info.value) and url in str(info.value)


def _answering(status: int, body: bytes, ctype: str) -> Iterator[str]:
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_HEAD = do_GET

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/store.zarr"
    finally:
        srv.shutdown()
        srv.server_close()


HTML = (
    b"<!DOCTYPE html>\n<html>\n<head><title>Sign in</title></head>\n<body>\n{\n</body>\n</html>\n"
)


@pytest.mark.parametrize(
    ("status", "body", "ctype", "says"),
    [
        (200, HTML, "text/html", "not zarr metadata"),  # a login page instead of metadata
        (403, b"Forbidden\n", "text/plain", "access denied (HTTP 403)"),
        (401, b"Unauthorized\n", "text/plain", "not authorised (HTTP 401)"),
        (500, b"Internal Server Error\nstack line 1\nline 2\n", "text/plain", "HTTP 500"),
    ],
)
def test_odd_answers_are_one_line_errors(status: int, body: bytes, ctype: str, says: str) -> None:
    gen = _answering(status, body, ctype)
    url = next(gen)
    try:
        t0 = time.monotonic()
        with pytest.raises(FormatError) as info:
            open_volume(url)
        assert time.monotonic() - t0 < 30.0
    finally:
        gen.close()
    msg = str(info.value)
    assert "\n" not in msg and url in msg and len(msg) < 400, msg
    assert says in msg
