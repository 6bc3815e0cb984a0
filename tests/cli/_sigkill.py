"""SIGKILL a process editing a project at random moments; check every acknowledged edit.

One project, many rounds. Each round starts a writer process (``Project.open`` and a
stream of ``history.apply``: markers, measurements, track cuts, and undos), reads the
edits it acknowledges (a line printed after ``apply`` / ``undo`` returned: what a user
saw as done), and SIGKILLs it after a seeded random number of acknowledgements plus a
seeded random delay of 0-20 ms, so the kill lands anywhere in the next edit's journal
write. Then the project is reopened (as the next writer will) and checked against the
acknowledgements of all rounds so far, independently of the journal: the markers'
positions, the measurements' points and the graph's edges, from the writer's own log of
what each edit was.

Used by ``tests/cli/test_sigkill_edits.py`` (10 kills) and ``scripts/campaign.py`` (60).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHAIN = 400  # one track 0 -> 1 -> ... -> CHAIN-1, one node per frame

_WRITER = """
import sys
from analysis.annotations import AddMarker, AddMeasurement
from analysis.edits import Cut
from analysis.project import Project

folder, start = sys.argv[1], int(sys.argv[2])
pr = Project.open(folder)
for i in range(start, start + 10_000):
    kind = i % 4
    if kind == 0:
        pr.history.apply(AddMarker("cell", (float(i), 1.0, 2.0)))
        print("marker", i, flush=True)
    elif kind == 1:
        pr.history.apply(AddMeasurement("distance", [(float(i), 0, 0), (float(i), 3, 4)]))
        print("measurement", i, flush=True)
    elif kind == 2:
        node = 1 + (i // 4) % (%(chain)d - 1)
        if pr.tracks.parent(node) is not None:
            pr.history.apply(Cut(node))
            print("cut", node, flush=True)
        else:
            print("skip", i, flush=True)
    else:
        pr.history.apply(AddMarker("cell", (float(i), 9.0, 9.0)))
        pr.history.undo()
        print("undone", i, flush=True)
""".replace("%(chain)d", str(CHAIN))


def make_project(folder: Path) -> None:
    from analysis.project import Project
    from analysis.tracks import TrackGraph

    g = TrackGraph()
    prev = None
    for t in range(CHAIN):
        n = g.add_node(t, (float(t), 5.0, 5.0))
        if prev is not None:
            g.add_edge(prev, n)
        prev = n
    Project.create(folder, tracks=g, classes=["cell"]).close()


@dataclass
class Acks:
    markers: set[float] = field(default_factory=set)
    measurements: set[float] = field(default_factory=set)
    cuts: set[int] = field(default_factory=set)
    undone: set[float] = field(default_factory=set)
    next_index: int = 0

    def take(self, line: str) -> None:
        kind, value = line.split()
        if kind == "marker":
            self.markers.add(float(value))
        elif kind == "measurement":
            self.measurements.add(float(value))
        elif kind == "cut":
            self.cuts.add(int(value))
        elif kind == "undone":
            self.undone.add(float(value))


def check(folder: Path, acks: Acks) -> str | None:
    """Why the reopened project misses an acknowledged edit (None: it has them all)."""
    from analysis.project import Project

    try:
        pr = Project.open(folder)
    except Exception as exc:  # the project must open: anything else is a bricked project
        return f"the project does not open: {type(exc).__name__}: {exc}"
    with pr:
        markers = {m.position_um[0] for m in pr.annotations.markers if m.position_um[1] == 1.0}
        undone = {m.position_um[0] for m in pr.annotations.markers if m.position_um[1] == 9.0}
        lost = acks.markers - markers
        if lost:
            return f"acknowledged markers lost: {sorted(lost)[:5]}"
        if acks.undone & undone:
            return f"acknowledged undos lost: {sorted(acks.undone & undone)[:5]}"
        got = {m.points_um[0][0] for m in pr.annotations.measurements}
        if acks.measurements - got:
            return f"acknowledged measurements lost: {sorted(acks.measurements - got)[:5]}"
        still = {n for n in acks.cuts if pr.tracks.parent(n) is not None}
        if still:
            return f"acknowledged cuts lost: {sorted(still)[:5]}"
    return None


@dataclass
class Result:
    kills: int = 0
    clean: int = 0
    acknowledged: int = 0
    failures: list[str] = field(default_factory=list)


def kill_rounds(folder: Path, n: int, seed: int, per_round: tuple[int, int] = (1, 40)) -> Result:
    """``n`` writer processes on ``folder``, each SIGKILLed at a random moment."""
    rng = random.Random(seed)
    acks = Acks()
    result = Result()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(n):
        err_file = tempfile.TemporaryFile("w+")
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(folder), str(acks.next_index)],
            stdout=subprocess.PIPE,
            stderr=err_file,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        want = rng.randint(*per_round)
        got = 0
        deadline = time.monotonic() + 120
        while got < want and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acks.take(line)
            got += 1
        time.sleep(rng.uniform(0.0, 0.02))
        proc.send_signal(signal.SIGKILL)
        # What it printed between the last read and the kill was acknowledged too. Read
        # through the same buffered file: readline() may already hold more lines than it
        # returned (communicate() would read the pipe behind that buffer and miss them).
        rest = proc.stdout.read()
        proc.wait(30)
        err_file.seek(0)
        err = err_file.read()
        err_file.close()
        for line in rest.splitlines():
            acks.take(line)
            got += 1
        result.kills += 1
        result.acknowledged += got
        acks.next_index += got + 1  # positions never repeat across rounds
        why = (
            check(folder, acks) if got else f"the writer acknowledged nothing: {err.strip()[-300:]}"
        )
        if why is None:
            result.clean += 1
        else:
            result.failures.append(why)
    return result
