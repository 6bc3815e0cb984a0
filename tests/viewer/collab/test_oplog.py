"""The op log: selective undo keeps "state = base + active ops in order"; replicas converge.

References: the state an independent replay of the active commands (rebuilt from
their JSON) gives on a fresh copy of the base graph, and the TrackGraph's own
``validate()``.
"""

from __future__ import annotations

import random

import pytest

from analysis.edits import Cut, Delete, MarkReviewed, Merge, command_from_json, command_to_json
from analysis.errors import InvalidEditError
from analysis.tracks import TrackGraph, random_lineages
from viewer.collab import OrderedLog, Replica
from viewer.collab._oplog import Entry
from viewer.collab._protocol import Applied, CommandBody

from .conftest import conflict_graph


def replay_active(base: TrackGraph, log: OrderedLog) -> TrackGraph:
    """Independent reference: apply the JSON of every op not undone, in sequence order."""
    g = base.copy()
    undone = {e.target for e in log.entries if e.kind == "undo"}
    for e in log.entries:
        if e.kind == "cmd" and e.op_id not in undone:
            assert e.cmd is not None
            command_from_json(command_to_json(e.cmd)).apply(g)
    return g


def test_selective_undo_of_an_older_op_matches_replay_without_it() -> None:
    base = conflict_graph()
    log = OrderedLog(base.copy())
    ops = [("a", Cut(1)), ("b", Cut(9)), ("a", MarkReviewed([3, 4])), ("b", Merge(2, 5))]
    for i, (who, cmd) in enumerate(ops, start=1):
        log.apply(Entry(i, f"op{i}", who, who, "cmd", cmd))
    log.apply(Entry(5, "u1", "a", "a", "undo", target="op1"))  # a undoes its first op
    assert log.target.has_edge(0, 1)
    assert log.target.equals(replay_active(base, log))
    log.target.validate()


def test_undo_refused_when_a_later_op_depends_and_state_kept() -> None:
    base = conflict_graph()
    log = OrderedLog(base.copy())
    log.apply(Entry(1, "op1", "a", "a", "cmd", Cut(1)))
    log.apply(Entry(2, "op2", "b", "b", "cmd", Merge(0, 1)))  # b relinks what a cut
    before = log.target.copy()
    with pytest.raises(InvalidEditError, match="depends on it"):
        log.apply(Entry(3, "u", "a", "a", "undo", target="op1"))
    assert log.target.equals(before)
    with pytest.raises(InvalidEditError, match="someone else's"):
        log.apply(Entry(3, "u2", "a", "a", "undo", target="op2"))
    with pytest.raises(InvalidEditError, match="too old|unknown"):
        log.apply(Entry(3, "u3", "a", "a", "undo", target="nope"))


def _random_cmd(rng: random.Random, g: TrackGraph) -> object:
    ids = [int(i) for i in g.node_ids]
    n = rng.choice(ids)
    k = rng.random()
    if k < 0.3:
        return Cut(n)
    if k < 0.5:
        return Delete.node(n)
    if k < 0.8:
        return Merge(n, rng.choice(ids))
    return MarkReviewed([n], reviewed=rng.random() < 0.5)


@pytest.mark.parametrize("seed", range(6))
def test_replicas_converge_under_random_delivery(seed: int) -> None:
    """Simulated server + 3 optimistic replicas, random interleavings of sends and deliveries."""
    rng = random.Random(seed)
    base = random_lineages(n_nodes=120, track_length=8, seed=seed)
    server = OrderedLog(base.copy())
    reps = [Replica(base.copy(), f"c{i}") for i in range(3)]
    to_server: list[tuple[int, str, str, object]] = []  # (client, op_id, kind, payload)
    inbox: list[list[Applied | tuple[str, str]]] = [[] for _ in reps]
    for _ in range(300):
        r = rng.random()
        i = rng.randrange(len(reps))
        rep = reps[i]
        if r < 0.35:
            cmd = _random_cmd(rng, rep.target)
            try:
                p = rep.submit(cmd)  # type: ignore[arg-type]
            except InvalidEditError:
                continue
            assert p.body is not None
            to_server.append((i, p.op_id, "cmd", p.body))
        elif r < 0.42:
            try:
                p = rep.request_undo()
            except InvalidEditError:
                continue
            to_server.append((i, p.op_id, "undo", p.target))
        elif r < 0.75 and to_server:
            ci, op_id, kind, payload = to_server.pop(0)  # the server takes ops in arrival order
            seq = server.last_seq + 1
            if kind == "cmd":
                assert isinstance(payload, CommandBody)
                entry = Entry(
                    seq, op_id, f"c{ci}", f"c{ci}", "cmd", command_from_json(payload.model_dump())
                )
            else:
                entry = Entry(seq, op_id, f"c{ci}", f"c{ci}", "undo", target=str(payload))
            try:
                server.apply(entry)
            except InvalidEditError:
                inbox[ci].append(("rejected", op_id))
                continue
            msg = entry.to_message()
            for box in inbox:
                box.append(msg)
        else:
            j = rng.randrange(len(reps))
            if inbox[j]:
                m = inbox[j].pop(0)
                if isinstance(m, Applied):
                    reps[j].on_applied(m)
                else:
                    reps[j].on_rejected(m[1])
    # Drain: the server takes everything, every replica gets everything.
    while to_server or any(inbox):
        if to_server:
            ci, op_id, kind, payload = to_server.pop(0)
            seq = server.last_seq + 1
            if kind == "cmd":
                assert isinstance(payload, CommandBody)
                entry = Entry(
                    seq, op_id, f"c{ci}", f"c{ci}", "cmd", command_from_json(payload.model_dump())
                )
            else:
                entry = Entry(seq, op_id, f"c{ci}", f"c{ci}", "undo", target=str(payload))
            try:
                server.apply(entry)
                for box in inbox:
                    box.append(entry.to_message())
            except InvalidEditError:
                inbox[ci].append(("rejected", op_id))
        for j, box in enumerate(inbox):
            while box:
                m = box.pop(0)
                if isinstance(m, Applied):
                    reps[j].on_applied(m)
                else:
                    reps[j].on_rejected(m[1])
    assert server.last_seq > 10
    server.target.validate()
    assert server.target.equals(replay_active(base, server))
    for rep in reps:
        assert not rep.pending
        assert rep.target.equals(server.target)
