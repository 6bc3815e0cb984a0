"""Helpers for the collaboration tests: small graphs, a loopback server, asyncio runner."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import pytest

from analysis.tracks import TrackGraph
from viewer.collab import CollabServer, ServerLimits, Session


def run(coro: Coroutine[Any, Any, Any], timeout: float = 60.0) -> Any:
    """Run a coroutine on a fresh loop with an overall time limit."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def conflict_graph() -> TrackGraph:
    """Tracks for conflicting edits.

    A: 0(t0) -> 1(t1) -> 2(t2)          (ends at t2: two merges compete for it)
    B: 3(t3) -> 4(t4)                   (starts at t3)
    C: 5(t3) -> 6(t4)                   (starts at t3)
    D: 7(t0) -> 8(t1) -> 9(t2) -> 10(t3) (node 9: a cut and a delete compete)
    """
    t = [0, 1, 2, 3, 4, 3, 4, 0, 1, 2, 3]
    zyx = [[float(i), 0.0, 0.0] for i in range(11)]
    edges = [[0, 1], [1, 2], [3, 4], [5, 6], [7, 8], [8, 9], [9, 10]]
    return TrackGraph.from_arrays(list(range(11)), t, zyx, edges)


@contextlib.asynccontextmanager
async def served(
    journal: Path,
    target: Any,
    limits: ServerLimits | None = None,
    checkpoint_every: int = 500,
    port: int = 0,
) -> AsyncIterator[tuple[CollabServer, Session]]:
    server = CollabServer("127.0.0.1", port, limits=limits)
    session = server.add_session(
        Session("review", target, journal, {"image": "/data/x.zarr"}, checkpoint_every)
    )
    await server.start()
    try:
        yield server, session
    finally:
        await server.stop()


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "session.sqlite"
