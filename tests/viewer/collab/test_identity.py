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
