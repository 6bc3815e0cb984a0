"""A connection cannot claim the client id of a participant who is connected (issue 21: a
participant claiming another's id undid that person's op)."""

from __future__ import annotations

import json
from pathlib import Path

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
            alice = await AsyncCollabClient(url, name="alice", client_id="alice-1").start()
            alice.submit(Cut(9))
            await alice.wait_synced()
            op_id = session.log.entries[-1].op_id
            async with connect(url) as ws:
                hello = {"type": "hello", "client_id": "alice-1", "name": "Mallory"}
                await ws.send(json.dumps(hello))
                msg = json.loads(await ws.recv())
                assert msg["type"] == "error" and msg["code"] == "identity"
                assert "alice-1" in msg["message"]
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
                await extra.send(json.dumps({"type": "hello", "client_id": "c", "name": "c"}))
                msg = json.loads(await extra.recv())
                assert msg["type"] == "error" and msg["code"] == "full"
            assert len(session.conns) == 2
            await b.close()
            async with connect(url) as ws2:  # a place is free again
                await ws2.send(json.dumps({"type": "hello", "client_id": "c", "name": "c"}))
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
