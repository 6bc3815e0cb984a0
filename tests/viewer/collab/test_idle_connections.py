"""Idle and slow connections against ``vrscope serve`` (issue 21, the campaign's socket cases).

A real ``vrscope serve`` process on loopback. What must hold:

- a TCP connection that never sends a byte, an HTTP client that sends its request
  headers one byte at a time (slowloris) and a websocket that never sends ``hello`` are
  each closed by the server within a liveness deadline (the campaign measured 9-11 s;
  the deadline here is 45 s, generous for a loaded machine);
- 200 joined websocket connections that never read or send anything do not stop a
  participant's edits: every edit is acknowledged (``applied``) and is in the project's
  journal; the server's resident memory per idle connection is measured (``/proc``)
  and must stay under 1 MiB.

No wall-clock asserts beyond the liveness deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from analysis.annotations import AddMarker
from analysis.project import Project
from viewer.collab import PROTOCOL_VERSION, AsyncCollabClient

from .conftest import conflict_graph, run

ROOT = Path(__file__).resolve().parents[3]
CLOSE_DEADLINE_S = 45.0


@contextlib.contextmanager
def serving(folder: Path) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    """``vrscope serve FOLDER --port 0``: (process, edit URL, view URL)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vrscope", "serve", str(folder), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.stdout is not None
    edit = view = ""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not view:
        line = proc.stdout.readline()
        if "join (edit)" in line:
            edit = line.split()[-1]
        elif "join (view only)" in line:
            view = line.split()[-1]
        elif not line and proc.poll() is not None:
            break
    try:
        assert edit and view, "vrscope serve did not print its join URLs"
        yield proc, edit, view
    finally:
        proc.kill()
        proc.wait(10)


def _project(tmp_path: Path) -> Path:
    folder = tmp_path / "proj"
    Project.create(folder, tracks=conflict_graph(), classes=["cell"]).close()
    return folder


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _closed_within(sock: socket.socket, deadline: float, trickle: bytes = b"") -> float | None:
    """Seconds until the peer closes ``sock`` (reads EOF or a reset), sending one byte of
    ``trickle`` every 0.5 s meanwhile; None when it is still open at ``deadline``."""
    t0 = time.monotonic()
    sock.settimeout(0.5)
    sent = 0
    while time.monotonic() - t0 < deadline:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - t0
        except TimeoutError:
            pass
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - t0
        if sent < len(trickle):
            try:
                sock.sendall(trickle[sent : sent + 1])
            except (ConnectionResetError, BrokenPipeError):
                return time.monotonic() - t0
            sent += 1
    return None


@pytest.mark.slow
def test_silent_slow_and_mute_connections_are_closed(tmp_path: Path) -> None:
    with serving(_project(tmp_path)) as (_proc, edit, _view):
        url = urlsplit(edit)
        host, port = url.hostname or "127.0.0.1", int(url.port or 0)
        request = (
            f"GET {url.path}?{url.query} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Version: 13\r\nX-Slow: " + "a" * 400
        ).encode()
        results: dict[str, float | None] = {}

        def watch(name: str, trickle: bytes) -> None:
            with socket.create_connection((host, port), timeout=10) as sock:
                results[name] = _closed_within(sock, CLOSE_DEADLINE_S, trickle)

        async def mute_websocket() -> float | None:
            # the websocket handshake completes, then nothing: no hello
            t0 = time.monotonic()
            async with connect(edit, ping_interval=None) as ws:
                try:
                    await asyncio.wait_for(ws.recv(), CLOSE_DEADLINE_S)
                    await asyncio.wait_for(ws.recv(), CLOSE_DEADLINE_S)  # an error, then close
                except ConnectionClosed:
                    return time.monotonic() - t0
                except TimeoutError:
                    return None
            return None

        async def main() -> None:
            loop = asyncio.get_running_loop()
            silent = loop.run_in_executor(None, watch, "silent TCP", b"")
            slow = loop.run_in_executor(None, watch, "slowloris", request)
            results["no hello"] = await mute_websocket()
            await silent
            await slow

        run(main(), timeout=CLOSE_DEADLINE_S * 3)
    print("closed after (s):", {k: None if v is None else round(v, 1) for k, v in results.items()})
    for name, seconds in results.items():
        assert seconds is not None, f"{name}: still open after {CLOSE_DEADLINE_S} s"


IDLE = 200


@pytest.mark.slow
def test_200_idle_websockets_do_not_stop_edits(tmp_path: Path) -> None:
    folder = _project(tmp_path)
    n_edits = 20
    with serving(folder) as (proc, edit, view):
        before = _rss_kib(proc.pid)
        hello = json.dumps(
            {"type": "hello", "v": PROTOCOL_VERSION, "name": "idle", "role": "observer"}
        )

        async def main() -> tuple[int, int]:
            idle = []
            t0 = time.monotonic()
            for i in range(IDLE):
                # a library client that never reads: its socket buffers fill, then the
                # server's sends to it stall
                ws = await connect(view, ping_interval=None, max_queue=1)
                await ws.send(hello.replace('"idle"', f'"idle{i}"'))
                idle.append(ws)
            await asyncio.sleep(2.0)  # let the server take every hello
            during = _rss_kib(proc.pid)
            print(f"{IDLE} idle connections joined after {time.monotonic() - t0:.1f} s")
            a = await AsyncCollabClient(edit, name="editor").start()
            for i in range(n_edits):
                a.submit(AddMarker("cell", (float(i), 1.0, 2.0)))
            await a.wait_for(
                lambda: sum(e.kind == "applied" for e in a.events) >= n_edits, timeout=90
            )
            assert not any(e.kind in ("rejected", "dropped") for e in a.events)
            print(f"{n_edits} edits applied after {time.monotonic() - t0:.1f} s")
            await a.close()
            for ws in idle:
                ws.transport.abort()  # a closing handshake would wait on each unread queue
            return during, sum(e.kind == "applied" for e in a.events)

        during, applied = run(main(), timeout=240)
    per_conn_kib = (during - before) / IDLE
    print(
        f"{IDLE} idle websockets: server RSS {before} -> {during} KiB, {per_conn_kib:.1f} KiB each"
    )
    assert applied == n_edits
    assert per_conn_kib < 1024
    # every acknowledged edit is in the project, read back without the server
    with Project.open(folder, read_only=True) as p:
        positions = {tuple(m.position_um) for m in p.workspace.annotations.markers}
    assert {(float(i), 1.0, 2.0) for i in range(n_edits)} <= positions
