"""No lost or doubled edits across a killed client and a killed server; bad clients are
refused or throttled while the others carry on.

"Exactly once" is checked on the state itself: every client op adds one marker at
a unique position, so the multiset of marker positions must equal the set of
submitted positions (a lost op is a missing position, a doubled one a repeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidState, InvalidStatus

from analysis.annotations import AddMarker, Annotations
from analysis.edits import MarkReviewed
from analysis.errors import ParameterError
from analysis.project import Project, Workspace
from viewer.collab import AsyncCollabClient, ServerLimits

from .conftest import conflict_graph, run, served

ROOT = Path(__file__).resolve().parents[3]


def _positions(target: Workspace) -> Counter[tuple[float, ...]]:
    return Counter(tuple(m.position_um) for m in target.annotations.markers)


def test_client_killed_mid_edit_resumes_exactly_once(tmp_path: Path) -> None:
    n = 40

    async def main() -> None:
        ws = Workspace(conflict_graph(), Annotations())
        async with served(tmp_path / "s.sqlite", ws) as (server, session):
            url = server.join_url("review")
            a = await AsyncCollabClient(url, name="a").start()
            watcher = await AsyncCollabClient(url, name="w", role="observer").start()
            for i in range(n):
                a.submit(AddMarker("cell", (float(i), 0.0, 0.0)))
            # Kill the connection once some, not all, acknowledgements are back.
            await a.wait_for(lambda: sum(e.kind == "applied" for e in a.events) >= 5)
            a.abort()
            acked_before = {e.op_id for e in a.events if e.kind == "applied"}
            await a.wait_for(lambda: a.connected, timeout=10)
            await a.wait_synced(timeout=20)
            await watcher.wait_synced(seq=session.last_seq, timeout=20)
            assert 5 <= len(acked_before) < n or len(acked_before) == n
            want = Counter((float(i), 0.0, 0.0) for i in range(n))
            assert _positions(session.target) == want
            assert _positions(a.target) == want
            assert _positions(watcher.target) == want
            assert session.last_seq == n
            assert not any(e.kind in ("rejected", "dropped") for e in a.events)
            # Every op id is in the journal once, in the order the client sent them.
            rows = session.journal.ops_after(0)
            assert len({r[1] for r in rows}) == n
            await a.close()
            await watcher.close()

    run(main())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_serve(folder: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vrscope",
            "serve",
            str(folder),
            "--port",
            str(port),
            "--session",
            "review",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "join (edit)" in line:
            return proc, line.split()[-1]
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"vrscope serve did not start: {proc.stdout.read()}")


@pytest.mark.slow
def test_server_killed_and_restarted_mid_session_loses_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    Project.create(folder, tracks=conflict_graph(), classes=["cell"]).close()
    port = _free_port()
    proc, url = _start_serve(folder, port)
    n = 60
    try:

        async def main() -> tuple[set[str], Counter[tuple[float, ...]], int]:
            nonlocal proc
            a = await AsyncCollabClient(url, name="a").start()
            b = await AsyncCollabClient(url, name="b").start()
            for i in range(n):
                a.submit(AddMarker("cell", (float(i), 1.0, 1.0)))
                if i == n // 3:
                    # Crash the server (SIGKILL: no shutdown code runs) with ops in flight.
                    await a.wait_for(lambda: sum(e.kind == "applied" for e in a.events) >= 5)
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    acked = {e.op_id for e in a.events if e.kind == "applied" and e.local}
                    proc, url2 = _start_serve(folder, port)
                    assert url2 == url  # same tokens: clients rejoin by themselves
                await asyncio.sleep(0.002)
            await a.wait_synced(timeout=40)
            await b.wait_for(lambda: b.core.last_seq >= a.core.last_seq, timeout=40)
            assert a.target.tracks.equals(b.target.tracks)
            # A fresh observer sees the restarted server's state from its snapshot + tail.
            c = await AsyncCollabClient(url, name="c", role="observer").start()
            final = _positions(c.target)
            assert _positions(a.target) == final == _positions(b.target)
            all_acked = {e.op_id for e in a.events if e.kind == "applied" and e.local}
            assert acked <= all_acked
            for x in (a, b, c):
                await x.close()
            return acked, final, c.core.last_seq

        acked, final, last = run(main(), timeout=120)
        assert final == Counter((float(i), 1.0, 1.0) for i in range(n))
        assert last == n
        assert len(acked) >= 5
    finally:
        proc.kill()
        proc.wait()
    # The project itself (its journal.jsonl, no server) has every op exactly once too.
    with Project.open(folder) as pr:
        assert _positions(pr.workspace) == Counter((float(i), 1.0, 1.0) for i in range(n))


def test_bad_clients_are_refused_and_others_unaffected(tmp_path: Path) -> None:
    limits = ServerLimits(max_message_bytes=1 << 20)

    async def main() -> None:
        async with served(tmp_path / "s.sqlite", conflict_graph(), limits=limits) as (
            server,
            session,
        ):
            url = server.join_url("review")
            base = url.split("?")[0]
            a = await AsyncCollabClient(url, name="a").start()
            b = await AsyncCollabClient(url, name="b").start()

            # Wrong or missing token: refused at the handshake (HTTP 401), no frame read.
            with pytest.raises(ParameterError, match="token was refused"):
                await AsyncCollabClient(base + "?token=wrong", reconnect=False).start()
            with pytest.raises(InvalidStatus) as info:
                async with connect(base):
                    pass
            assert info.value.response.status_code == 401
            # The view token cannot claim an editor role.
            view_url = server.join_url("review", role="view")
            async with connect(view_url) as ws:
                await ws.send(json.dumps({"type": "hello", "name": "x", "role": "editor"}))
                msg = json.loads(await ws.recv())
                assert msg["code"] == "forbidden"
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
            # Wrong protocol version.
            async with connect(url) as ws:
                await ws.send(json.dumps({"type": "hello", "v": 99, "name": "x"}))
                assert json.loads(await ws.recv())["code"] == "version"

            async with connect(url, max_size=None) as ws:
                await ws.send(json.dumps({"type": "hello", "name": "bad"}))
                assert json.loads(await ws.recv())["type"] == "welcome"
                # Malformed JSON: an error, the connection stays usable.
                await ws.send("{not json")
                err = await _next_of(ws, "error")
                assert err["code"] == "malformed"
                # Unknown op kind: rejected, never looked up anywhere but the registry.
                await ws.send(
                    json.dumps(
                        {
                            "type": "op",
                            "op_id": "bad.1",
                            "cmd": {"kind": "os_system", "args": {"c": "ls"}},
                        }
                    )
                )
                rej = await _next_of(ws, "rejected")
                assert "unknown command kind" in rej["reason"]
                # An op whose args do not fit the command: rejected as malformed.
                await ws.send(
                    json.dumps(
                        {"type": "op", "op_id": "bad.2", "cmd": {"kind": "cut", "args": {"x": 1}}}
                    )
                )
                assert "malformed" in (await _next_of(ws, "rejected"))["reason"]
            # 10 MB message: the connection is closed with 1009 (message too big).
            big = await connect(url, max_size=None)
            await big.send(json.dumps({"type": "hello", "name": "big"}))
            assert json.loads(await big.recv())["type"] == "welcome"
            with pytest.raises(ConnectionClosed) as closed:
                await big.send(json.dumps({"type": "presence", "ts": 1.0, "pad": "x" * 10_000_000}))
                while True:
                    await big.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
            if not big.transport.is_closing():
                big.transport.abort()

            # Flood: 10,000 frames a second until the server closes it, from another thread,
            # while a and b keep editing: every edit of a's is applied all the same. (Op
            # round trips before and during a flood: tests/benchmarks/bench_collab_flood.py.)
            async def edits(k: int, node: int) -> int:
                applied = 0
                for i in range(k):
                    op = a.submit(MarkReviewed([node], reviewed=bool(i % 2)))
                    await a.wait_for(
                        lambda op=op: any(e.op_id == op and e.kind == "applied" for e in a.events)
                    )
                    applied += 1
                    await asyncio.sleep(0.005)
                return applied

            assert await edits(20, 1) == 20
            flood_result: dict[str, object] = {}
            flooder = threading.Thread(target=_flood, args=(url, 100_000, flood_result))
            flooder.start()
            await asyncio.sleep(0.05)
            assert await edits(40, 2) == 40
            await asyncio.get_running_loop().run_in_executor(None, flooder.join, 60)
            print(f"flood: {flood_result}")
            assert flood_result["close_code"] == 1008  # closed as a policy violation
            assert a.connected and b.connected
            await b.wait_synced(seq=session.last_seq)
            assert a.target.equals(session.target) and b.target.equals(session.target)
            await a.close()
            await b.close()

    run(main(), timeout=120)


async def _next_of(ws, kind: str) -> dict:  # type: ignore[no-untyped-def]
    while True:
        msg = json.loads(await ws.recv())
        if msg["type"] == kind:
            return msg


def _flood(url: str, n: int, result: dict[str, object]) -> None:
    """Send presence frames at 10,000 per second (batches of 500 every 50 ms) until the
    server closes the connection, ``n`` frames at most (a real flood does not stop
    after a fixed count; a loaded server may need a few seconds of it to react).

    Frames are produced with the websockets sans-I/O protocol and written straight to
    the transport, so the sending rate is not limited by this test's own Python speed.
    """

    async def go() -> None:
        frame = json.dumps({"type": "presence", "ts": 1.0}).encode()
        sent = 0
        t0 = time.perf_counter()
        # max_queue=None: this client never calls recv(), and with a bounded queue
        # websockets stops reading once 16 broadcasts are queued, so the server's close
        # frame would go unseen.
        ws = await connect(url, max_queue=None)
        await ws.send(json.dumps({"type": "hello", "name": "flood"}))
        with contextlib.suppress(ConnectionClosed, InvalidState):
            while sent < n and ws.protocol.close_rcvd is None:
                for _ in range(500):
                    ws.protocol.send_text(frame)
                for data in ws.protocol.data_to_send():
                    ws.transport.write(data)
                sent += 500
                await asyncio.sleep(0.05)
        result["rate_hz"] = round(sent / (time.perf_counter() - t0))
        deadline = time.monotonic() + 10
        while ws.protocol.close_rcvd is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        rcvd = ws.protocol.close_rcvd
        result["close_code"] = rcvd.code if rcvd is not None else None
        ws.transport.abort()
        result["sent"] = sent

    asyncio.run(go())


def test_tls_session_with_a_self_signed_certificate(tmp_path: Path) -> None:
    """wss:// with --certfile/--keyfile (certificate made by the openssl CLI)."""
    import shutil
    import ssl

    from viewer.collab import CollabServer, Session

    openssl = shutil.which("openssl")
    assert openssl is not None, "the openssl command is needed to make a test certificate"
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))

    async def main() -> None:
        server = CollabServer("127.0.0.1", 0, ssl_context=server_ctx)
        server.add_session(Session("review", conflict_graph(), tmp_path / "s.sqlite"))
        await server.start()
        try:
            url = server.join_url("review")
            assert url.startswith("wss://127.0.0.1:")
            a = await AsyncCollabClient(url, name="a", ssl=client_ctx).start()
            a.submit(MarkReviewed([3]))
            await a.wait_synced()
            assert server.sessions["review"].target.is_reviewed(3)
            await a.close()
            # Without trusting the certificate the client cannot join.
            with pytest.raises(ParameterError, match="cannot join"):
                await AsyncCollabClient(url, name="b", reconnect=False).start(timeout=5)
        finally:
            await server.stop()

    run(main())


def test_flood_detection_uses_a_sliding_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drops are judged over any window_s span, however slowly the server reads them."""
    from viewer.collab import _server

    clock = {"t": 0.0}
    monkeypatch.setattr(_server.time, "monotonic", lambda: clock["t"])

    def feed(bucket: _server._Bucket, hz: float, seconds: float) -> bool:
        """Frames arriving (as the server reads them) at ``hz``; True once flooding."""
        for _ in range(int(hz * seconds)):
            clock["t"] += 1.0 / hz
            if not bucket.take() and bucket.flooding(2.0):
                return True
        return False

    # Within budget (400 Hz): never dropped, never a flood.
    assert not feed(_server._Bucket(400, 400, 2000), 390, 10)
    # One burst over the budget: some drops, no flood.
    b = _server._Bucket(400, 400, 2000)
    assert not feed(b, 100_000, 0.01) and 0 < b.drops < 2000
    # A server that can only read 1,500 frames/s of a flood drops 1,100 a second: 2,000
    # of them always fall within 2 s of each other, wherever a fixed window would start.
    assert feed(_server._Bucket(400, 400, 2000), 1500, 4)
    # 600 drops a second are under the flood rate (2,000 per 2 s): never closed.
    assert not feed(_server._Bucket(400, 400, 2000), 1000, 10)
