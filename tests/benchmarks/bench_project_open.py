"""Opening a project with many edits: the journal is checked (seq + CRC-32 per line) and
replayed. Issue 21: a project with 6,000 markers took 18 s to open (each marker edit
recounted every marker); the target is < 1 s for 10,000 edits.

Run: ``.venv/bin/python tests/benchmarks/bench_project_open.py [--markers 10000 --cuts 2000]``
(``make bench``). Prints, best of ``--repeat``:

- reference: reading the journal's lines with ``json.loads`` only (no checks, no replay),
  in the same run;
- ``Journal.read`` (every line's checksum and sequence number checked), ratio to the reference;
- ``Project.open`` (base files + checks + replay of every edit), ratio to the reference,
  and whether it meets the 1 s target.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

TARGET_S = 1.0


def best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--markers", type=int, default=10_000)
    ap.add_argument("--cuts", type=int, default=2_000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)

    from analysis.annotations import AddMarker
    from analysis.edits import Cut, Journal
    from analysis.project import Project
    from analysis.tracks import random_lineages

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "p"
        g = random_lineages(4 * a.cuts, track_length=4, division_fraction=0.0, seed=0)
        cuts = [int(n) for n in g.node_ids if g.parent(int(n)) is not None][: a.cuts]
        with Project.create(folder, tracks=g, classes=["cell"], fsync=False) as pr:
            for i in range(a.markers):
                pr.history.apply(AddMarker("cell", (1.0, 2.0, float(i))))
            for n in cuts:
                pr.history.apply(Cut(n))
        journal = folder / "journal.jsonl"
        n_lines = len(journal.read_bytes().splitlines())

        def plain() -> None:
            [json.loads(line) for line in journal.read_bytes().splitlines()]

        def checked() -> None:
            Journal(journal).read(repair_tail=False)

        def reopen() -> None:
            Project.open(folder, fsync=False).close()

        ref = best(plain, a.repeat)
        rd = best(checked, a.repeat)
        op = best(reopen, a.repeat)
    print(f"project with {a.markers} markers + {len(cuts)} cuts ({n_lines} journal lines)")
    print(f"{'':34s} {'time':>9s} {'ratio':>7s}")
    print(f"{'reference: json.loads per line':34s} {ref * 1e3:8.1f}ms {1.0:7.2f}")
    print(f"{'Journal.read (seq + crc checked)':34s} {rd * 1e3:8.1f}ms {rd / ref:7.2f}")
    print(f"{'Project.open (checks + replay)':34s} {op * 1e3:8.1f}ms {op / ref:7.2f}")
    ok = op < TARGET_S
    print(f"target: open < {TARGET_S:.0f} s for {n_lines - 1} edits: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
