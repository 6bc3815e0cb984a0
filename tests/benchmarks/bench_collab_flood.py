"""An editor's op round trip while another client floods the server (run directly).

Run: ``.venv/bin/python tests/benchmarks/bench_collab_flood.py [--edits 40]`` (``make bench``).

One ``viewer.collab.CollabServer`` in this process, two editors ``a`` and ``b``. ``a``
marks a node reviewed ``--edits`` times and waits for each op to come back applied; the
round trip is measured first on a quiet server (the reference), then while a third
client sends 10,000 presence frames a second until the server closes it with 1008
(the flood of ``tests/viewer/collab/test_robustness.py``, whose unit test asserts only
that every edit is applied and the flooder is closed). Printed: p50 / p95 of both, the
ratio flood / quiet, and the flooder's achieved rate.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main(argv: list[str]) -> int:
    from analysis.edits import MarkReviewed
    from tests.viewer.collab.conftest import conflict_graph, served
    from tests.viewer.collab.test_robustness import _flood
    from viewer.collab import AsyncCollabClient, ServerLimits

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edits", type=int, default=40, help="ops timed per case (default: 40)")
    args = ap.parse_args(argv)

    async def go(folder: Path) -> tuple[list[float], list[float], dict[str, object]]:
        async with served(
            folder / "s.sqlite", conflict_graph(), limits=ServerLimits(max_message_bytes=1 << 20)
        ) as (server, _session):
            url = server.join_url("review")
            a = await AsyncCollabClient(url, name="a").start()
            b = await AsyncCollabClient(url, name="b").start()

            async def round_trips(k: int, node: int) -> list[float]:
                out = []
                for i in range(k):
                    t0 = time.perf_counter()
                    op = a.submit(MarkReviewed([node], reviewed=bool(i % 2)))
                    await a.wait_for(
                        lambda op=op: any(e.op_id == op and e.kind == "applied" for e in a.events)
                    )
                    out.append(time.perf_counter() - t0)
                    await asyncio.sleep(0.005)
                return out

            quiet = await round_trips(args.edits, 1)
            flood: dict[str, object] = {}
            flooder = threading.Thread(target=_flood, args=(url, 100_000, flood))
            flooder.start()
            await asyncio.sleep(0.05)
            during = await round_trips(args.edits, 2)
            await asyncio.get_running_loop().run_in_executor(None, flooder.join, 60)
            await a.close()
            await b.close()
            return quiet, during, flood

    with tempfile.TemporaryDirectory() as tmp:
        quiet, during, flood = asyncio.run(go(Path(tmp)))
    q, d = np.asarray(quiet) * 1e3, np.asarray(during) * 1e3
    print(f"{'case':<22} {'p50 ms':>8} {'p95 ms':>8}")
    print(f"{'quiet (reference)':<22} {np.median(q):8.2f} {np.percentile(q, 95):8.2f}")
    print(f"{'during a flood':<22} {np.median(d):8.2f} {np.percentile(d, 95):8.2f}")
    print(
        f"ratio flood/quiet: p50 {np.median(d) / np.median(q):.2f}, "
        f"p95 {np.percentile(d, 95) / np.percentile(q, 95):.2f}; "
        f"flooder: {flood.get('rate_hz')} frames/s, closed with {flood.get('close_code')}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
