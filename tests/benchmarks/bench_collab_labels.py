"""Label edits as session ops: brush stamp -> every participant can redraw it.

``.venv/bin/python tests/benchmarks/bench_collab_labels.py [--ops 100] [--size 128]``

A project session (``Session.for_project``) serves a ``size``^3 label image (chunks 32^3,
every level). Participant A paints balls (radius 5 voxels) one after the other; for each
stamp the time from A's ``submit`` to (a) A's acknowledgement (``applied``: the server
validated, computed the atom, wrote every level, journaled twice) and (b) participant B's
``LabelChange`` (B loaded the atom from the shared copy and knows which chunks to re-read)
is taken. Reference, same run and same disk: the desktop's own stamp,
``Project.history.apply(PaintBall)`` on a project of the same data (atom, every level,
one fsync'd journal append, no network). Prints p50 / p95 and the ratios, and the load.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from analysis.edits import PaintBall  # noqa: E402
from analysis.io import write_labels, write_ngff  # noqa: E402
from analysis.project import Project  # noqa: E402
from viewer.collab import AsyncCollabClient, CollabServer, Session  # noqa: E402

SCALE = (0.01, 0.01, 0.01)


def _store(path: Path, size: int) -> Path:
    lab = np.zeros((size,) * 3, np.uint32)
    q = size // 4
    lab[q : 3 * q, q : 3 * q, q : 2 * q] = 1
    lab[q : 3 * q, q : 3 * q, 2 * q : 3 * q] = 2
    write_ngff(np.zeros(lab.shape, np.uint8), path, scale_um=SCALE, chunks=(32,) * 3)
    write_labels(path, "cells", lab)
    return path


def _centres(n: int, size: int, seed: int) -> list[tuple[int, int, int]]:
    rng = np.random.default_rng(seed)
    return [tuple(int(v) for v in rng.integers(8, size - 8, 3)) for _ in range(n)]  # type: ignore[misc]


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000, q))


async def _session_run(folder: Path, centres: list[tuple[int, int, int]]) -> dict[str, list[float]]:
    server = CollabServer("127.0.0.1", 0)
    server.add_session(Session.for_project(folder, "bench"))
    await server.start()
    url = server.join_url("bench")
    acked: asyncio.Queue[float] = asyncio.Queue()
    seen: asyncio.Queue[float] = asyncio.Queue()

    def on_a(ev: Any) -> None:
        if ev.kind == "applied" and ev.local:
            acked.put_nowait(time.perf_counter())

    a = await AsyncCollabClient(url, name="A", on_event=on_a).start()
    b = await AsyncCollabClient(url, name="B", on_event=lambda ev: None).start()
    b.core.label_images["cells"].changed.connect(lambda _c: seen.put_nowait(time.perf_counter()))
    out: dict[str, list[float]] = {"ack": [], "other": []}
    for i, c in enumerate(centres):
        t0 = time.perf_counter()
        a.submit(PaintBall("cells", c, 0.05, 3 + i % 5))
        out["ack"].append(await asyncio.wait_for(acked.get(), 60) - t0)
        out["other"].append(await asyncio.wait_for(seen.get(), 60) - t0)
    await a.close()
    await b.close()
    await server.stop()
    return out


def _local_run(folder: Path, centres: list[tuple[int, int, int]]) -> list[float]:
    out = []
    with Project.open(folder) as pr:
        pr.edit_labels("cells")
        for i, c in enumerate(centres):
            t0 = time.perf_counter()
            pr.history.apply(PaintBall("cells", c, 0.05, 3 + i % 5))
            out.append(time.perf_counter() - t0)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    ap.add_argument("--ops", type=int, default=100)
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        store = _store(t / "img.zarr", args.size)
        for name in ("served", "local"):
            Project.create(t / name, image=str(store), labels=["cells"]).close()
        centres = _centres(args.ops, args.size, 0)
        ref = _local_run(t / "local", centres)
        got = asyncio.run(_session_run(t / "served", centres))
    load = os.getloadavg()
    print(f"label stamps in a session: {args.ops} balls of 5 voxels on {args.size}^3, chunks 32")
    rows = [
        ("session: A's acknowledgement", got["ack"]),
        ("session: B told what to re-read", got["other"]),
        ("reference: Project.history.apply", ref),
    ]
    for label, xs in rows:
        print(f"  {label:36s} p50 {_pct(xs, 50):7.2f} ms   p95 {_pct(xs, 95):7.2f} ms")
    r = statistics.median(got["other"]) / statistics.median(ref)
    print(f"  ratio (B told / local apply), p50: {r:.2f}")
    print(f"  load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
