"""Session edits land in the project's own journal: the project reopens without the server.

References are written out by hand from ``conflict_graph``'s definition (edge sets,
marker positions), never read back from the server. Groups fold into one op and one
undo step, for the session and for the reopened project.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from analysis.annotations import AddMarker
from analysis.edits import Cut, Journal, command_from_json, command_to_json
from analysis.errors import FormatError, InvalidEditError, ParameterError
from analysis.project import Project
from viewer.collab import (
    AsyncCollabClient,
    CollabClient,
    CollabHistory,
    Compound,
    ProjectMirror,
    Session,
)

from ._server_thread import ServerThread
from .conftest import conflict_graph, run
from .test_robustness import ROOT, _free_port, _start_serve

BASE_EDGES = {(0, 1), (1, 2), (3, 4), (5, 6), (7, 8), (8, 9), (9, 10)}


def _edges(g: Any) -> set[tuple[int, int]]:
    return {(int(a), int(b)) for a, b in g.edges.tolist()}


def _markers(ws: Any) -> Counter[tuple[float, ...]]:
    return Counter(tuple(m.position_um) for m in ws.annotations.markers)


def _collab_records(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / "journal.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "collab" in r]


def _project(tmp_path: Path) -> Path:
    folder = tmp_path / "proj"
    Project.create(folder, tracks=conflict_graph(), classes=["cell"]).close()
    return folder


async def _served(folder: Path) -> Any:
    from viewer.collab import CollabServer

    server = CollabServer("127.0.0.1", 0)
    server.add_session(Session.for_project(folder, "review"))
    await server.start()
    return server


def test_project_reopens_with_groups_and_selective_undos(tmp_path: Path) -> None:
    folder = _project(tmp_path)

    async def main() -> tuple[set[tuple[int, int]], Counter[tuple[float, ...]]]:
        server = await _served(folder)
        url = server.join_url("review")
        a = await AsyncCollabClient(url, name="a").start()
        b = await AsyncCollabClient(url, name="b").start()

        async def step(c: AsyncCollabClient, fn: Any) -> None:
            fn()
            await c.wait_synced()
            await a.wait_for(lambda: a.core.last_seq == b.core.last_seq)

        await step(a, lambda: a.submit(Compound([Cut(2), AddMarker("cell", (2, 2, 2))], "tidy")))
        await step(a, lambda: a.submit(Cut(9)))
        await step(b, lambda: b.submit(AddMarker("cell", (1.0, 1.0, 1.0))))
        await step(b, lambda: b.submit(Cut(4)))
        # a undoes its cut of 9 although b edited after it (selective undo) ...
        await step(a, a.undo)
        assert _edges(a.target.tracks) == BASE_EDGES - {(1, 2), (3, 4)}
        # ... and then its group: both of its commands go, b's edits stay.
        await step(a, a.undo)
        await b.wait_for(lambda: b.core.last_seq == 6)
        assert _edges(b.target.tracks) == BASE_EDGES - {(3, 4)}
        assert _markers(b.target) == Counter({(1.0, 1.0, 1.0): 1})
        for c in (a, b):
            await c.close()
        await server.stop()
        # A restarted server accepts the project as it is (nothing to catch up) ...
        server = await _served(folder)
        c = await AsyncCollabClient(server.join_url("review"), name="c").start()
        got = _edges(c.target.tracks), _markers(c.target)
        await c.close()
        await server.stop()
        return got

    edges, markers = run(main())
    assert edges == BASE_EDGES - {(3, 4)}
    assert markers == Counter({(1.0, 1.0, 1.0): 1})
    # The project without the server: the session's state, and a History that can walk
    # back to the base (its undo steps are consistent with what was replayed).
    with Project.open(folder) as pr:
        assert pr.tracks is not None
        assert _edges(pr.tracks) == BASE_EDGES - {(3, 4)}
        assert _markers(pr.workspace) == Counter({(1.0, 1.0, 1.0): 1})
        assert [s.name for s in pr.history.undo_steps] == ["add cell marker", "cut before 4"]
        while pr.history.can_undo:
            pr.history.undo()
        assert _edges(pr.tracks) == BASE_EDGES and not pr.annotations.markers
    # Every op is in the project journal exactly once, its parts complete.
    recs = _collab_records(folder)
    assert sorted({r["collab"]["seq"] for r in recs}) == [1, 2, 3, 4, 5, 6]
    for seq in range(1, 7):
        parts = [r["collab"]["part"] for r in recs if r["collab"]["seq"] == seq]
        assert parts == list(range(1, len(parts) + 1))


def test_a_project_edited_outside_the_session_needs_a_new_session(tmp_path: Path) -> None:
    folder = _project(tmp_path)

    async def session_cut() -> None:
        server = await _served(folder)
        a = await AsyncCollabClient(server.join_url("review"), name="a").start()
        a.submit(Cut(9))
        await a.wait_synced()
        await a.close()
        await server.stop()

    run(session_cut())
    with Project.open(folder) as pr:  # the desktop, offline, after the session
        pr.history.apply(Cut(2))
    with pytest.raises(FormatError, match="--new-session"):
        Session.for_project(folder, "review")
    s = Session.for_project(folder, "review", new_session=True)
    try:
        assert _edges(s.target.tracks) == BASE_EDGES - {(8, 9), (1, 2)}
    finally:
        s.close()


def test_serve_restarts_after_a_rejected_group(tmp_path: Path) -> None:
    """The campaign: a prolong followed by an invalid merge in one group was rejected, but
    the prolong's rollback left the node id counter advanced; the restart compared states
    and refused ("edited outside the session"). The counter is now restored with the state."""
    from types import SimpleNamespace

    from analysis.edits import Merge, Prolong
    from viewer.collab._protocol import OpMsg

    folder = _project(tmp_path)
    sent: list[str] = []
    # What the server sees of a connection (the group reaches it as sent, e.g. by a client
    # whose replica had not seen a conflicting edit yet).
    conn = SimpleNamespace(
        participant=SimpleNamespace(role="editor", name="a"),
        client_id="a",
        strikes=0,
        push=sent.append,
    )

    def op(op_id: str, cmd: Any) -> OpMsg:
        return OpMsg.model_validate({"op_id": op_id, "cmd": command_to_json(cmd)})

    async def session() -> None:
        s = Session.for_project(folder, "review")
        try:
            await s.submit(conn, op("a.1", Cut(9)))  # type: ignore[arg-type]
            # Node 2 ends track A at t=2; after the prolong it has a child: the merge fails.
            bad = Compound([Prolong(2, [[3.0, 1.0, 1.0, 1.0]]), Merge(2, 3)], "bad")
            await s.submit(conn, op("a.2", bad))  # type: ignore[arg-type]
            await s.submit(conn, op("a.3", Prolong(10, [[4.0, 0.0, 0.0, 0.0]])))  # type: ignore[arg-type]
            # The campaign's absurd values: refused, each with one answer, no traceback.
            for k, body in enumerate(
                [
                    {"kind": "cut", "v": 1, "args": {"node": float("inf")}},  # node 1e400
                    {
                        "kind": "add_marker",
                        "v": 1,
                        "args": {"class": "x" * 100_000, "position_um": [1, 2, 3]},
                    },
                    {
                        "kind": "add_marker",
                        "v": 1,
                        "args": {"class": "cell", "id": 2**63, "position_um": [1, 2, 3]},
                    },
                    {
                        "kind": "add_marker",
                        "v": 1,
                        "args": {"class": "cell", "t": float("nan"), "position_um": [1, 2, 3]},
                    },
                ]  # fmt: skip
            ):
                msg = OpMsg.model_validate({"op_id": f"bad.{k}", "cmd": body})
                await s.submit(conn, msg)  # type: ignore[arg-type]
        finally:
            s.close()

    run(session())
    # Only the refusals were answered (accepted ops go to the session's connections).
    assert len(sent) == 5 and all('"rejected"' in m for m in sent) and '"a.2"' in sent[0]
    s = Session.for_project(folder, "review")  # refused before the fix
    try:
        g = s.target.tracks
        assert _edges(g) == (BASE_EDGES - {(8, 9)}) | {(10, 11)}
        assert g.next_id == 12  # ids 0..10 were taken, the accepted prolong took 11
    finally:
        s.close()
    with Project.open(folder) as pr:
        assert pr.tracks is not None and _edges(pr.tracks) == (BASE_EDGES - {(8, 9)}) | {(10, 11)}


def test_project_session_checkpoint_window_is_bounded(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="at most 1000"):
        Session.for_project(_project(tmp_path), checkpoint_every=5000)


def test_mirror_drops_an_incomplete_op_at_the_end(tmp_path: Path) -> None:
    folder = _project(tmp_path)
    m = ProjectMirror(folder, "uid1")
    assert m.last_seq == 0
    m.append(1, "x.1", [{"op": "apply", "cmd": command_to_json(Cut(9))}])
    m.append(1, "x.1", [{"op": "apply", "cmd": command_to_json(Cut(2))}])
    m.close()
    size = (folder / "journal.jsonl").stat().st_size
    # A power cut between the lines of one op: only its first of two parts reached the disk.
    torn = {"op": "undo", "collab": {"session": "uid1", "seq": 2, "op": "x.2"}}
    torn["collab"].update(part=1, of=2)
    with Journal(folder / "journal.jsonl") as j:  # a whole, checksummed line
        j.append(torn)
    m2 = ProjectMirror(folder, "uid1")
    assert m2.last_seq == 1
    assert (folder / "journal.jsonl").stat().st_size == size
    assert ProjectMirror(folder, "another-session").last_seq == 0
    with Project.open(folder) as pr:  # the resend of op 1 was not written twice
        assert pr.tracks is not None and _edges(pr.tracks) == BASE_EDGES - {(8, 9)}


def test_a_served_project_is_locked_until_the_session_closes(tmp_path: Path) -> None:
    """`serve` is the project's one writer: a desktop or CLI edit beside it would
    interleave journal lines; it is refused naming the server, and reads still work."""
    from analysis.edits import ProjectLockedError

    folder = _project(tmp_path)
    session = Session.for_project(folder, "review")
    try:
        with pytest.raises(ProjectLockedError, match=f"vrscope serve \\(pid {os.getpid()}"):
            Project.open(folder)
        with pytest.raises(ProjectLockedError):
            Session.for_project(folder, "other")
        with Project.open(folder, read_only=True) as ro:
            assert ro.tracks is not None and _edges(ro.tracks) == BASE_EDGES
    finally:
        session.close()
    with Project.open(folder) as pr:
        assert pr.tracks is not None and _edges(pr.tracks) == BASE_EDGES


def test_compound_is_all_or_nothing_and_refuses_nesting() -> None:
    g = conflict_graph()
    bad = Compound([Cut(9), Cut(0)])  # node 0 has no parent: the second part fails
    with pytest.raises(InvalidEditError):
        bad.apply(g)
    assert _edges(g) == BASE_EDGES
    ok = Compound([Cut(9), Compound([Cut(2)])], "two cuts")
    assert [c.node_id for c in ok.commands] == [9, 2]  # type: ignore[attr-defined]
    ok.apply(g)
    assert _edges(g) == BASE_EDGES - {(8, 9), (1, 2)}
    ok.revert(g)
    assert _edges(g) == BASE_EDGES
    nested = {"kind": "collab_group", "v": 1, "args": {"name": "n", "commands": []}}
    with pytest.raises(FormatError):
        command_from_json({"kind": "collab_group", "v": 1, "args": {"commands": [nested]}})
    with pytest.raises(FormatError):
        command_from_json(nested)


def test_collab_history_group_is_one_op_and_one_undo_step(tmp_path: Path) -> None:
    folder = _project(tmp_path)
    srv = ServerThread(lambda: Session.for_project(folder, "review"))
    try:
        h1 = CollabHistory(CollabClient(srv.url(), name="desk").start())
        h2 = CollabHistory(CollabClient(srv.url(), name="xr").start())
        with h1.group("tidy"):
            h1.apply(Cut(9))
            with h1.group("inner"):
                h1.apply(AddMarker("cell", (5.0, 5.0, 5.0)))
            assert not h1.target.tracks.has_edge(8, 9)  # applied at once locally
            assert h1.process() == [] and not h1.can_undo  # nothing reordered under a group
        assert h1.can_undo

        def pump(done: Any) -> None:
            deadline = time.monotonic() + 20
            while not done() and time.monotonic() < deadline:
                h1.process(timeout=0.005)
                h2.process(timeout=0.005)
            assert done()

        pump(lambda: h1.client.core.synced and h2.client.core.last_seq == 1)
        assert srv.session is not None and srv.session.last_seq == 1  # one op for the group
        assert not h2.target.tracks.has_edge(8, 9) and len(h2.target.annotations.markers) == 1
        step = h1.undo()
        assert step.name == "tidy"
        pump(lambda: h2.client.core.last_seq == 2 and h1.client.core.last_seq == 2)
        assert h2.target.tracks.has_edge(8, 9) and not h2.target.annotations.markers
        assert h1.target.tracks.has_edge(8, 9) and not h1.target.annotations.markers
        h1.close()
        h2.close()
    finally:
        srv.close()
    with Project.open(folder) as pr:
        # begin/apply/apply/end then undo: the reopened desktop can redo the group as one.
        assert pr.history.redo_steps[0].name == "tidy"
        assert len(pr.history.redo_steps[0].commands) == 2
        pr.history.redo()
        assert pr.tracks is not None and not pr.tracks.has_edge(8, 9)
        assert len(pr.annotations.markers) == 1


# ---------------------------------------------------------------------------- crashes
_HOOK = """
import os, signal, sys
from viewer.collab import _mirror
kill_seq, where = int(sys.argv[1]), sys.argv[2]
original = _mirror.ProjectMirror.append
def append(self, seq, op_id, records):
    if seq == kill_seq and where == "before":
        os.kill(os.getpid(), signal.SIGKILL)   # SQLite has the op, the project journal not
    original(self, seq, op_id, records)
    if seq == kill_seq and where == "after":
        os.kill(os.getpid(), signal.SIGKILL)   # both have it, the author has no ack
_mirror.ProjectMirror.append = append
from vrscope.cli import main
sys.exit(main(sys.argv[3:]))
"""


def _start_hooked(folder: Path, port: int, kill_seq: int, where: str) -> tuple[Any, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    args = ["serve", str(folder), "--port", str(port), "--session", "review"]
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOOK, str(kill_seq), where, *args],
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
    raise AssertionError("hooked vrscope serve did not start")


@pytest.mark.slow
@pytest.mark.parametrize("where", ["before", "after"])
def test_server_killed_between_the_two_writes_applies_each_op_once(
    tmp_path: Path, where: str
) -> None:
    folder = _project(tmp_path)
    port = _free_port()
    n, kill_seq = 6, 3
    proc, url = _start_hooked(folder, port, kill_seq, where)
    try:

        async def main() -> None:
            nonlocal proc
            a = await AsyncCollabClient(url, name="a").start()
            for i in range(n):
                a.submit(AddMarker("cell", (float(i), 0.0, 0.0)))
            await asyncio.get_running_loop().run_in_executor(None, proc.wait)
            assert proc.returncode == -signal.SIGKILL
            acked = {e.seq for e in a.events if e.kind == "applied"}
            assert kill_seq not in acked  # killed before its acknowledgement
            # The crash fell where it was meant to: the session journal has the op ...
            db = sqlite3.connect(folder / "collab-review.sqlite")
            assert db.execute("SELECT MAX(seq) FROM ops").fetchone()[0] == kill_seq
            db.close()
            # ... and the project journal has it only when killed after its write.
            seqs = {r["collab"]["seq"] for r in _collab_records(folder)}
            assert seqs == set(range(1, kill_seq + (where == "after")))
            proc, url2 = _start_serve(folder, port)
            assert url2 == url
            await a.wait_synced(timeout=40)
            assert _markers(a.target) == Counter((float(i), 0.0, 0.0) for i in range(n))
            await a.close()

        run(main(), timeout=120)
    finally:
        proc.kill()
        proc.wait()
    with Project.open(folder) as pr:
        assert _markers(pr.workspace) == Counter((float(i), 0.0, 0.0) for i in range(n))
    ops = Counter(r["collab"]["op"] for r in _collab_records(folder))
    assert len(ops) == n and set(ops.values()) == {1}
    # And the next start agrees with the project (no catch-up, no mismatch).
    Session.for_project(folder, "review").close()


@pytest.mark.parametrize("n_ops", [4, 5])
def test_restart_after_checkpoints_checks_the_project_at_its_last_op(
    tmp_path: Path, n_ops: int
) -> None:
    """With a checkpoint every 2 ops the project's last op is the checkpoint itself (4)
    or one after it (5); either way the restart accepts the project as it is, and
    refuses it once it was edited outside the session."""
    folder = _project(tmp_path)
    want = Counter((float(i), 0.0, 0.0) for i in range(n_ops))

    async def main() -> None:
        from viewer.collab import CollabServer

        server = CollabServer("127.0.0.1", 0)
        server.add_session(Session.for_project(folder, "review", checkpoint_every=2))
        await server.start()
        a = await AsyncCollabClient(server.join_url("review"), name="a").start()
        for i in range(n_ops):
            a.submit(AddMarker("cell", (float(i), 0.0, 0.0)))
        await a.wait_synced()
        await a.close()
        await server.stop()

    run(main())
    s = Session.for_project(folder, "review", checkpoint_every=2)
    try:
        assert s.log.base_seq == 4 and s.last_seq == n_ops
        assert _markers(s.target) == want
    finally:
        s.close()
    with Project.open(folder) as pr:
        assert _markers(pr.workspace) == want
        pr.history.apply(AddMarker("cell", (9.0, 9.0, 9.0)))
    with pytest.raises(FormatError, match="edited outside the session"):
        Session.for_project(folder, "review", checkpoint_every=2)
