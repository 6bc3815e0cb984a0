"""Edit round trip in a session: submit -> acknowledged, with and without the project journal.

``.venv/bin/python tests/benchmarks/bench_collab_edits.py [--ops 200]``

One client on loopback adds ``--ops`` markers one after the other, waiting for each
acknowledgement (``applied``), against (a) a session journaling to SQLite only and
(b) a project session (``Session.for_project``: SQLite, then the project's
``journal.jsonl``, both fsync'd before the ack). The reference is the desktop's own
edit, ``Project.history.apply`` (one fsync'd ``journal.jsonl`` append, no network),
measured in the same run on the same disk.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from analysis.annotations import AddMarker, Annotations
from analysis.project import Project, Workspace
from analysis.tracks import TrackGraph
from viewer.collab import AsyncCollabClient, CollabServer, Session


def _graph() -> TrackGraph:
    return TrackGraph.from_arrays([0, 1], [0, 1], [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]], [[0, 1]])


async def _round_trips(session: Session, n: int) -> list[float]:
    server = CollabServer("127.0.0.1", 0)
    server.add_session(session)
    await server.start()
    acked: asyncio.Queue[float] = asyncio.Queue()

    def on_event(ev: object) -> None:
        # Timestamped the moment the acknowledgement is handled (no polling delay).
        if getattr(ev, "kind", "") == "applied" and getattr(ev, "local", False):
            acked.put_nowait(time.perf_counter())

    c = await AsyncCollabClient(
        server.join_url(session.name), name="bench", on_event=on_event
    ).start()
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        c.submit(AddMarker("cell", (float(i), 0.0, 0.0)))
        out.append(await asyncio.wait_for(acked.get(), 30) - t0)
    await c.close()
    await server.stop()
    return out


def _stats(xs: list[float]) -> tuple[float, float]:
    a = np.asarray(xs) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        plain = Session("plain", Workspace(_graph(), Annotations()), root / "plain.sqlite")
        sqlite_only = asyncio.run(_round_trips(plain, args.ops))
        folder = root / "proj"
        Project.create(folder, tracks=_graph(), classes=["cell"]).close()
        proj = asyncio.run(_round_trips(Session.for_project(folder, "bench"), args.ops))
        ref_folder = root / "ref"
        ref = []
        with Project.create(ref_folder, tracks=_graph(), classes=["cell"]) as pr:
            for i in range(args.ops):
                t0 = time.perf_counter()
                pr.history.apply(AddMarker("cell", (float(i), 0.0, 0.0)))
                ref.append(time.perf_counter() - t0)
    rows = [
        ("session, SQLite journal only", sqlite_only),
        ("project session (SQLite + journal.jsonl)", proj),
        ("reference: Project.history.apply (desktop)", ref),
    ]
    print(f"{args.ops} markers, one at a time, submit -> acknowledged")
    print("| edit path | p50 | p99 | mean |")
    print("|---|---|---|---|")
    for name, xs in rows:
        p50, p99 = _stats(xs)
        print(f"| {name} | {p50:.2f} ms | {p99:.2f} ms | {statistics.mean(xs) * 1000:.2f} ms |")
    r50 = _stats(proj)[0] / _stats(ref)[0]
    s50 = _stats(proj)[0] / _stats(sqlite_only)[0]
    print(f"ratio project session / desktop apply (p50): {r50:.2f}")
    print(f"ratio project session / SQLite-only session (p50): {s50:.2f}")


if __name__ == "__main__":
    main()
