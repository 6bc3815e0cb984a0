"""One group of 10,000 add-marker commands through a collaboration session (issue 21).

Run: ``.venv/bin/python tests/benchmarks/bench_collab_group.py [--commands 10000] [--repeats 3]``
(``make bench``). Measured in the same run:

- **session**: a ``CollabServer`` on loopback with ``Session.for_project`` (the project's
  journal fsync'd, the session's SQLite log), one ``AsyncCollabClient`` submitting the
  group as one ``Compound``; the time from submit until the client holds the server's
  "applied" (the client's optimistic apply, JSON both ways, validation, the server's
  apply and both journals);
- **apply** (reference): the same ``Compound`` applied in process to a bare annotation
  workspace, no I/O -- the floor the edit model itself sets.

Printed: the median of each, their ratio, and the load average (the development machine
is shared). The issue's goal is "well under a second" for the session path.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def _group(n: int) -> Any:
    from analysis.annotations import AddMarker
    from viewer.collab import Compound

    return Compound([AddMarker("cell", (1.0, 1.0, float(i))) for i in range(n)], "bench")


def session_once(n: int) -> float:
    from analysis.project import Project
    from viewer.collab import AsyncCollabClient, CollabServer, Session

    folder = Path(tempfile.mkdtemp(prefix="bench-group-")) / "proj"
    Project.create(folder, classes=["cell"]).close()

    async def run() -> float:
        server = CollabServer("127.0.0.1", 0)
        server.add_session(Session.for_project(folder, "review"))
        await server.start()
        try:
            client = await AsyncCollabClient(server.join_url("review"), name="bench").start()
            cmd = _group(n)
            t0 = time.perf_counter()
            op = client.submit(cmd)
            await client.wait_for(
                lambda: any(
                    e.op_id == op and e.kind in ("applied", "rejected") for e in client.events
                )
            )
            dt = time.perf_counter() - t0
            kinds = [e.kind for e in client.events if e.op_id == op]
            if "applied" not in kinds:
                raise RuntimeError(f"the group was not applied: {kinds}")
            await client.close()
            return dt
        finally:
            await server.stop()

    return asyncio.run(run())


def apply_once(n: int) -> float:
    from analysis.annotations import Annotations

    ws = Annotations()  # the first marker creates class "cell", as in the session
    cmd = _group(n)
    t0 = time.perf_counter()
    cmd.apply(ws)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--commands", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    load0 = os.getloadavg()[0]
    ses = [session_once(a.commands) for _ in range(a.repeats)]
    ref = [apply_once(a.commands) for _ in range(a.repeats)]
    s, r = statistics.median(ses), statistics.median(ref)
    print(f"group of {a.commands} add-marker commands, median of {a.repeats}:")
    print(f"  session (loopback, journals fsync'd): {s * 1e3:8.1f} ms")
    print(f"  apply in process (reference):         {r * 1e3:8.1f} ms")
    print(f"  ratio session / apply: {s / r:.2f}   (goal: session well under 1 s)")
    print(f"  load average {load0:.1f} -> {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
