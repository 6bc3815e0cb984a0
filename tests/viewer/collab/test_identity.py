"""Identities are the server's (issue 21: a participant claiming another's id undid that
person's op). A connection cannot claim the id of a participant (connected, or the author
of ops that can still be undone) without its key, and never picks its own id."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from analysis.edits import Cut
from viewer.collab import AsyncCollabClient

from .conftest import conflict_graph, run, served


def test_a_connected_client_id_cannot_be_claimed(tmp_path: Path) -> None:
    async def main() -> None:
        async with served(tmp_path / "s.sqlite", conflict_graph()) as (server, session):
            url = server.join_url("review")
            alice = await AsyncCollabClient(url, name="alice").start()
            me = alice.core.client_id
            assert me is not None
            alice.submit(Cut(9))
            await alice.wait_synced()
            op_id = session.log.entries[-1].op_id
            async with connect(url) as ws:
                hello = {"type": "hello", "client_id": me, "name": "Mallory"}
                await ws.send(json.dumps(hello))
                msg = json.loads(await ws.recv())
                assert msg["type"] == "error" and msg["code"] == "identity"
                assert me in msg["message"]
                with pytest.raises(ConnectionClosed):
                    await ws.send(json.dumps({"type": "undo", "op_id": "m.1", "target": op_id}))
                    await ws.recv()
            # Alice's op stands, and she is still connected and can undo it herself.
            assert session.target.parent(9) is None
            assert len(session.conns) == 1
            alice.undo()
            await alice.wait_synced()
            assert session.target.parent(9) == 8
            await alice.close()

    run(main())


def test_connection_and_group_caps(tmp_path: Path) -> None:
    """Issue 21: 1,000 connections were accepted and one 10,000-command group froze the
    server; both are bounded per session / per message (small limits here)."""
    from analysis.annotations import AddMarker, Annotations, AnnotationsState, classes_from
    from analysis.edits import command_to_json
    from analysis.project import Workspace
    from viewer.collab import Compound, ServerLimits
    from viewer.collab._protocol import OpMsg

    ws = Workspace(conflict_graph(), Annotations(AnnotationsState(classes=classes_from(["c"]))))
    limits = ServerLimits(max_connections=2, max_group_commands=3)

    async def main() -> None:
        async with served(tmp_path / "s.sqlite", ws, limits=limits) as (server, session):
            url = server.join_url("review")
            a = await AsyncCollabClient(url, name="a").start()
            b = await AsyncCollabClient(url, name="b").start()
            async with connect(url) as extra:
                await extra.send(json.dumps({"type": "hello", "name": "c"}))
                msg = json.loads(await extra.recv())
                assert msg["type"] == "error" and msg["code"] == "full"
            assert len(session.conns) == 2
            await b.close()
            async with connect(url) as ws2:  # a place is free again
                await ws2.send(json.dumps({"type": "hello", "name": "c"}))
                assert json.loads(await ws2.recv())["type"] == "welcome"
                big = Compound([AddMarker("c", (1.0, 1.0, float(i))) for i in range(4)], "g")
                op = OpMsg.model_validate({"op_id": "c.1", "cmd": command_to_json(big)})
                await ws2.send(op.model_dump_json())
                while (reply := json.loads(await ws2.recv()))["type"] != "rejected":
                    pass
                assert "4 commands" in reply["reason"]
                ok = Compound([AddMarker("c", (1.0, 1.0, float(i))) for i in range(3)], "g")
                op = OpMsg.model_validate({"op_id": "c.2", "cmd": command_to_json(ok)})
                await ws2.send(op.model_dump_json())
                while json.loads(await ws2.recv())["type"] != "applied":
                    pass
            assert len(session.target.annotations.markers) == 3
            await a.close()

    run(main())


async def _hello(ws: Any, **fields: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "hello", "name": "x", **fields}))
    return json.loads(await ws.recv())  # type: ignore[no-any-return]


async def _answer(ws: Any, kind: str) -> dict[str, Any]:
    while (msg := json.loads(await ws.recv()))["type"] != kind:
        pass
    return msg  # type: ignore[no-any-return]


def test_the_server_gives_identities_and_a_reconnect_gets_its_own_back(tmp_path: Path) -> None:
    """Issue 21: client ids were client-asserted. The server now gives them; after a
    dropped connection (and after a server restart) the same participant resumes with
    its key and can still undo its own ops; without the key, or with the key over the
    other token, the identity cannot be claimed."""
    from analysis.edits import command_to_json

    async def main() -> None:
        async with served(tmp_path / "s.sqlite", conflict_graph()) as (server, session):
            port = server.port
            url = server.join_url("review")
            a = await connect(url)
            w = await _hello(a, name="alice")
            assert w["type"] == "welcome"
            me, key = w["client_id"], w["resume"]
            other = await connect(url)
            w2 = await _hello(other, name="bob")
            assert w2["client_id"] != me and w2["resume"] != key
            # Alice cuts before node 9; the op carries the id the server gave her.
            cut = command_to_json(Cut(9))
            await a.send(json.dumps({"type": "op", "op_id": "al.1", "cmd": cut}))
            applied = await _answer(a, "applied")
            assert applied["client_id"] == me
            assert session.target.parent(9) is None
            a.transport.abort()  # the connection drops
            await asyncio.sleep(0)
            # Bob cannot undo it, neither as himself nor by claiming alice's id.
            await other.send(json.dumps({"type": "undo", "op_id": "b.1", "target": "al.1"}))
            assert "someone else's" in (await _answer(other, "rejected"))["reason"]
            for claim in ({}, {"resume": "0" * 64}, {"resume": w2["resume"]}):
                async with connect(url) as m:
                    got = await _hello(m, name="Mallory", client_id=me, **claim)
                    assert got["type"] == "error" and got["code"] == "identity"
                    with pytest.raises(ConnectionClosed):
                        await m.send(json.dumps({"type": "undo", "op_id": "m.1", "target": "al.1"}))
                        await m.recv()
            # The key is bound to the token: over the view token it is not alice's.
            async with connect(server.join_url("review", role="view")) as m:
                got = await _hello(m, role="observer", client_id=me, resume=key)
                assert got["type"] == "error" and got["code"] == "identity"
            assert session.target.parent(9) is None
            # Alice reconnects with her key: the same participant, who undoes her cut.
            a2 = await connect(url)
            w3 = await _hello(a2, name="alice", client_id=me, resume=key, last_seq=1)
            assert (w3["type"], w3["client_id"]) == ("welcome", me)
            await a2.send(json.dumps({"type": "undo", "op_id": "al.2", "target": "al.1"}))
            assert (await _answer(a2, "applied"))["kind"] == "undo"
            assert session.target.parent(9) == 8
            # A second connection with her key takes over (the first one is closed).
            a3 = await connect(url)
            assert (await _hello(a3, name="alice", client_id=me, resume=key))["type"] == "welcome"
            with pytest.raises(ConnectionClosed):
                while True:
                    await a2.recv()
            assert sum(c.client_id == me for c in session.conns) == 1
            await a3.send(json.dumps({"type": "op", "op_id": "al.3", "cmd": cut}))
            await _answer(a3, "applied")
            for ws in (a3, other):
                await ws.close()
        # After a restart (a new Session on the same journal) the key still holds.
        async with served(tmp_path / "s.sqlite", conflict_graph(), port=port) as (server, session):
            url = server.join_url("review")
            async with connect(url) as m:
                got = await _hello(m, name="Mallory", client_id=me)
                assert got["code"] == "identity"
            async with connect(url) as a4:
                w4 = await _hello(a4, name="alice", client_id=me, resume=key)
                assert (w4["type"], w4["client_id"]) == ("welcome", me)
                await a4.send(json.dumps({"type": "undo", "op_id": "al.4", "target": "al.3"}))
                assert (await _answer(a4, "applied"))["kind"] == "undo"
            assert session.target.parent(9) == 8

    run(main())


def test_a_client_keeps_its_identity_across_a_dropped_connection(tmp_path: Path) -> None:
    """The client side: AsyncCollabClient resumes with the server's key by itself."""

    async def main() -> None:
        async with served(tmp_path / "s.sqlite", conflict_graph()) as (server, session):
            url = server.join_url("review")
            alice = await AsyncCollabClient(url, name="alice").start()
            me = alice.core.client_id
            assert me is not None and alice.core.resume is not None
            alice.submit(Cut(9))
            await alice.wait_synced()
            alice.abort()
            await alice.wait_for(lambda: not alice.connected)
            await alice.wait_for(lambda: alice.connected and len(session.conns) == 1)
            await alice.wait_for(lambda: any(e.kind == "welcome" for e in alice.events[1:]))
            assert alice.core.client_id == me
            assert next(iter(session.conns)).client_id == me
            alice.undo()
            await alice.wait_synced()
            assert session.target.parent(9) == 8
            await alice.close()

    run(main())


def test_an_id_asked_for_without_its_key_is_never_granted(tmp_path: Path) -> None:
    """Issue 21: a client could pick its id (an unused one asked for without a key was
    granted), e.g. the id the server would give another participant. Only the server
    chooses ids now: the asked one is ignored, with no key or a made-up one."""
    from analysis.edits import command_to_json

    async def main() -> None:
        async with served(tmp_path / "s.sqlite", conflict_graph()) as (server, session):
            url = server.join_url("review")
            for claim in ({}, {"resume": "0" * 64}):
                async with connect(url) as m:
                    got = await _hello(m, name="Mallory", client_id="alice", **claim)
                    assert got["type"] == "welcome"
                    assert got["client_id"] != "alice"
                    cut = command_to_json(Cut(9))
                    await m.send(json.dumps({"type": "op", "op_id": f"m.{len(claim)}", "cmd": cut}))
                    assert (await _answer(m, "applied"))["client_id"] == got["client_id"]
                    undo = {
                        "type": "undo",
                        "op_id": f"m.u{len(claim)}",
                        "target": f"m.{len(claim)}",
                    }
                    await m.send(json.dumps(undo))
                    assert (await _answer(m, "applied"))["kind"] == "undo"
            assert all(e.client_id != "alice" for e in session.log.entries)
            # The server gives the id back, with its key, to whoever holds the key.
            async with connect(url) as a:
                w = await _hello(a, name="alice")
                async with connect(url) as a2:
                    again = await _hello(
                        a2, name="alice", client_id=w["client_id"], resume=w["resume"]
                    )
                    assert (again["type"], again["client_id"]) == ("welcome", w["client_id"])

    run(main())


def test_a_keyless_hello_cannot_take_the_ops_of_a_previous_run(tmp_path: Path) -> None:
    """Ops made in an earlier run of the server stay their author's: after a restart, a
    hello that asks for the author's id without its key does not get it, and neither it
    nor a newcomer can undo those ops; the author, with the key, still can."""
    from analysis.edits import command_to_json

    async def main() -> None:
        async with served(tmp_path / "s.sqlite", conflict_graph()) as (server, session):
            port = server.port
            async with connect(server.join_url("review")) as a:
                w = await _hello(a, name="alice")
                me, key = w["client_id"], w["resume"]
                await a.send(
                    json.dumps({"type": "op", "op_id": "al.1", "cmd": command_to_json(Cut(9))})
                )
                await _answer(a, "applied")
        async with served(tmp_path / "s.sqlite", conflict_graph(), port=port) as (server, session):
            url = server.join_url("review")
            assert [e.client_id for e in session.log.entries if e.op_id == "al.1"] == [me]
            assert session.target.parent(9) is None
            async with connect(url) as m:
                got = await _hello(m, name="Mallory", client_id=me)
                assert got["type"] == "error" and got["code"] == "identity"
                with pytest.raises(ConnectionClosed):
                    await m.send(json.dumps({"type": "undo", "op_id": "m.1", "target": "al.1"}))
                    await m.recv()
            async with connect(url) as m:
                got = await _hello(m, name="Mallory")
                assert got["type"] == "welcome" and got["client_id"] != me
                await m.send(json.dumps({"type": "undo", "op_id": "m.2", "target": "al.1"}))
                assert "someone else's" in (await _answer(m, "rejected"))["reason"]
            assert session.target.parent(9) is None
            async with connect(url) as a:
                w = await _hello(a, name="alice", client_id=me, resume=key)
                assert (w["type"], w["client_id"]) == ("welcome", me)
                await a.send(json.dumps({"type": "undo", "op_id": "al.2", "target": "al.1"}))
                assert (await _answer(a, "applied"))["kind"] == "undo"
            assert session.target.parent(9) == 8

    run(main())
