"""Collaboration fan-out: 8 clients sending poses at 90 Hz (target: p99 latency < 20 ms).

Run: ``.venv/bin/python tests/benchmarks/bench_collab.py [--seconds 30] [--clients 8]``
(``make bench``). Two servers are measured in the same run, each in its own process:

- **ours**: ``viewer.collab.CollabServer`` with a session on a 10k-node graph, every
  frame rate-checked, validated against the pydantic models and fanned out latest-wins;
- **relay** (reference): a bare ``websockets`` server that forwards every frame to
  every other connection with ``websockets.broadcast`` -- no validation, no token,
  the floor the library itself sets.

Clients (split over two processes, asyncio, raw ``websockets``) send a presence
message (head, both hands, laser) at 90 Hz with their wall clock in ``ts``; every
receiver records ``now - ts``. Printed: p50 / p99 / max fan-out latency, delivered
fraction, server CPU (psutil, % of one core over the run), the ratio ours / relay,
and the load average (the development machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

TARGET_P99_MS = 20.0


# ---------------------------------------------------------------------- servers
async def _serve_ours(folder: str) -> None:
    from analysis.tracks import random_lineages
    from viewer.collab import CollabServer, Session

    server = CollabServer("127.0.0.1", 0)
    server.add_session(
        Session("bench", random_lineages(10_000, seed=0), Path(folder) / "bench.sqlite")
    )
    await server.start()
    print(server.join_url("bench"), flush=True)
    await server.serve_forever()


async def _serve_relay() -> None:
    import websockets
    from websockets.asyncio.server import serve

    conns: set[Any] = set()

    async def handler(ws: Any) -> None:
        conns.add(ws)
        try:
            async for msg in ws:
                websockets.broadcast([c for c in conns if c is not ws], msg)
        finally:
            conns.discard(ws)

    async with serve(handler, "127.0.0.1", 0, compression=None) as srv:
        port = next(iter(srv.sockets)).getsockname()[1]
        print(f"ws://127.0.0.1:{port}/bench", flush=True)
        await srv.serve_forever()


# ---------------------------------------------------------------------- clients
def _pose(k: int, i: int) -> dict[str, Any]:
    a = 0.01 * k
    return {"position_um": [float(i), np.sin(a), np.cos(a)], "orientation": [1.0, 0.0, 0.0, 0.0]}


async def _client(
    url: str, i: int, hz: float, seconds: float, ours: bool, start_at: float
) -> list[float]:
    from websockets.asyncio.client import connect

    lat: list[float] = []
    async with connect(url, compression=None, max_size=None) as ws:
        if ours:
            await ws.send(json.dumps({"type": "hello", "name": f"b{i}"}))
            await ws.recv()  # welcome

        async def reader() -> None:
            async for raw in ws:
                now = time.time()
                msg = json.loads(raw)
                if ours:
                    if msg.get("type") != "peer_presence":
                        continue
                    ts = msg["presence"]["ts"]
                else:
                    ts = msg["ts"]
                if ts >= start_at:
                    lat.append(now - ts)

        task = asyncio.create_task(reader())
        await asyncio.sleep(max(0.0, start_at - time.time()))
        period = 1.0 / hz
        t_next = time.monotonic()
        end = t_next + seconds
        k = 0
        while t_next < end:
            msg = {
                "type": "presence",
                "ts": time.time(),
                "head": _pose(k, i),
                "left_hand": _pose(k + 1, i),
                "right_hand": _pose(k + 2, i),
                "laser": {
                    "origin_um": [0.0, 0.0, 0.0],
                    "direction": [0.0, 0.0, 1.0],
                    "active": True,
                },
            }
            await ws.send(json.dumps(msg))
            k += 1
            t_next += period
            await asyncio.sleep(max(0.0, t_next - time.monotonic()))
        await asyncio.sleep(0.5)  # let the last messages arrive
        task.cancel()
    return lat


async def _clients(
    url: str, ids: list[int], hz: float, seconds: float, ours: bool, start_at: float
) -> list[float]:
    res = await asyncio.gather(*(_client(url, i, hz, seconds, ours, start_at) for i in ids))
    return [x for r in res for x in r]


# ---------------------------------------------------------------------- driver
def _run_case(name: str, n_clients: int, hz: float, seconds: float) -> dict[str, float]:
    import psutil

    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", name, "--folder", tmp],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        try:
            assert server.stdout is not None
            url = server.stdout.readline().strip()
            proc = psutil.Process(server.pid)
            start_at = time.time() + 2.0
            halves = [list(range(0, n_clients, 2)), list(range(1, n_clients, 2))]
            workers = [
                subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--clients-of",
                        url,
                        "--ids",
                        ",".join(map(str, ids)),
                        "--hz",
                        str(hz),
                        "--seconds",
                        str(seconds),
                        "--start-at",
                        str(start_at),
                        "--case",
                        name,
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=ROOT,
                )
                for ids in halves
            ]
            time.sleep(max(0.0, start_at - time.time()))
            cpu0, t0 = proc.cpu_times(), time.perf_counter()
            time.sleep(seconds)
            cpu1, t1 = proc.cpu_times(), time.perf_counter()
            lat: list[float] = []
            for w in workers:
                out, _ = w.communicate(timeout=seconds + 60)
                lat.extend(json.loads(out.strip().splitlines()[-1]))
        finally:
            server.kill()
            server.wait()
    a = np.asarray(lat) * 1e3
    expected = n_clients * (n_clients - 1) * hz * seconds
    cpu = ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / (t1 - t0) * 100
    return {
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
        "delivered": len(a) / expected,
        "cpu": cpu,
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--hz", type=float, default=90.0)
    p.add_argument("--serve", choices=["ours", "relay"], help=argparse.SUPPRESS)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    p.add_argument("--clients-of", help=argparse.SUPPRESS)
    p.add_argument("--ids", help=argparse.SUPPRESS)
    p.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    p.add_argument("--case", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve == "ours":
        asyncio.run(_serve_ours(args.folder))
        return 0
    if args.serve == "relay":
        asyncio.run(_serve_relay())
        return 0
    if args.clients_of:
        ids = [int(x) for x in args.ids.split(",")]
        lat = asyncio.run(
            _clients(
                args.clients_of, ids, args.hz, args.seconds, args.case == "ours", args.start_at
            )
        )
        print(json.dumps(lat))
        return 0

    load0 = os.getloadavg()
    print(
        f"{args.clients} clients x {args.hz:g} Hz poses for {args.seconds:g} s; "
        f"load average before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} on {os.cpu_count()} cores"
    )
    res = {name: _run_case(name, args.clients, args.hz, args.seconds) for name in ("ours", "relay")}
    load1 = os.getloadavg()
    print(f"{'server':<8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'delivered':>10} {'CPU %':>7}")
    for name, r in res.items():
        print(
            f"{name:<8} {r['p50']:8.2f} {r['p99']:8.2f} {r['max']:8.1f} {r['delivered']:10.3f} {r['cpu']:7.1f}"
        )
    o, b = res["ours"], res["relay"]
    print(
        f"ratio ours/relay: p50 {o['p50'] / b['p50']:.2f}, p99 {o['p99'] / b['p99']:.2f}, "
        f"CPU {o['cpu'] / b['cpu']:.2f}"
    )
    print(f"load average after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    ok = o["p99"] < TARGET_P99_MS
    print(f"target p99 < {TARGET_P99_MS:g} ms: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
