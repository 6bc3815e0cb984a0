"""Independent references for the streaming tests: a pinhole camera written from its
definition, levels of a factor-2 pyramid, and a loopback HTTP server with latency."""

from __future__ import annotations

import functools
import http.server
import math
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.volume import Level


def pyramid_levels(shape: tuple[int, int, int], chunk: int, n: int, s0: float = 1.0) -> list[Level]:
    """Levels of a 2x mean pyramid (NGFF convention: level L voxel centres at s0*(2^L-1)/2)."""
    out = []
    for i in range(n):
        shp = tuple(max(1, -(-s // 2**i)) for s in shape)
        out.append(
            Level(
                f"s{i}",
                shp,
                tuple(min(chunk, s) for s in shp),
                (s0 * 2**i,) * 3,
                (s0 * (2**i - 1) / 2,) * 3,
            )
        )
    return out


def pinhole(
    eye_zyx: npt.ArrayLike,
    forward_zyx: npt.ArrayLike,
    up_zyx: npt.ArrayLike,
    fov_deg: float,
    size: tuple[int, int],
    points_zyx: npt.ArrayLike,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Pixel (col, row) and depth of world points, from the look-at/pinhole definitions."""
    eye = np.asarray(eye_zyx, float)[::-1]
    f = np.asarray(forward_zyx, float)[::-1]
    f = f / np.linalg.norm(f)
    r = np.cross(f, np.asarray(up_zyx, float)[::-1])
    r /= np.linalg.norm(r)
    u = np.cross(r, f)
    rel = np.atleast_2d(np.asarray(points_zyx, float))[:, ::-1] - eye
    xc, yc, zc = rel @ r, rel @ u, rel @ f
    w, h = size
    t = math.tan(math.radians(fov_deg) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        col = (xc / (zc * t * w / h) + 1) / 2 * w
        row = (1 - yc / (zc * t)) / 2 * h
    return np.stack([col, row], axis=1), zc


@contextmanager
def slow_http_server(root: Path, latency_s: float = 0.1) -> Iterator[tuple[str, dict[str, Any]]]:
    """Serve ``root`` on loopback; every request waits ``latency_s`` first.

    Yields the base URL and a dict with ``requests`` (paths), ``bytes`` (body bytes
    sent) and ``max_concurrent`` (most requests being served at once).
    """
    info: dict[str, Any] = {"requests": [], "bytes": 0, "max_concurrent": 0, "active": 0}
    lock = threading.Lock()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _enter(self) -> None:
            with lock:
                info["active"] += 1
                info["max_concurrent"] = max(info["max_concurrent"], info["active"])
                info["requests"].append(self.path)
            time.sleep(latency_s)

        def _leave(self) -> None:
            with lock:
                info["active"] -= 1

        def _ranged(self, spec: str) -> None:
            """Answer ``Range: bytes=a-b`` / ``bytes=-n`` with 206 (as S3, nginx, ... do)."""
            path = self.translate_path(self.path)
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", spec.strip())
            if not os.path.isfile(path) or m is None:
                self.send_error(404 if m else 416)
                return
            n = os.path.getsize(path)
            if m.group(1) == "":
                start, end = max(n - int(m.group(2)), 0), n
            else:
                start = int(m.group(1))
                end = min(int(m.group(2)) + 1, n) if m.group(2) else n
            with open(path, "rb") as f:
                f.seek(start)
                body = f.read(max(end - start, 0))
            self.send_response(206)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{n}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            with lock:
                info["bytes"] += len(body)

        def do_GET(self) -> None:
            self._enter()
            try:
                if self.headers.get("Range"):
                    self._ranged(self.headers["Range"])
                    return
                f = self.send_head()
                if f:
                    try:
                        data = f.read()
                        self.wfile.write(data)
                        with lock:
                            info["bytes"] += len(data)
                    finally:
                        f.close()
            finally:
                self._leave()

        def do_HEAD(self) -> None:
            self._enter()
            try:
                super().do_HEAD()
            finally:
                self._leave()

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 64

    server = Server(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", info
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
