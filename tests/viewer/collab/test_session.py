"""End-to-end sessions on loopback: convergence under conflicts, undo, late joiners,
presence fan-out, and the threaded GUI client.

The convergence reference is an independent set model of the graph (node and edge
sets with the merge/cut/delete rules written out here), fed with the server's order.
"""

from __future__ import annotations

import asyncio
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from analysis.edits import Cut, Delete, Merge
from analysis.errors import InvalidEditError
from analysis.tracks import TrackGraph
from viewer.collab import AsyncCollabClient, ClipPlane, CollabClient, Laser, Pose, state_digest

from .conftest import conflict_graph, run, served


def _set_model_replay(
    base: TrackGraph, entries: list[Any]
) -> tuple[set[int], set[tuple[int, int]]]:
    """Apply accepted ops with plain set rules; assert each was valid when accepted."""
    nodes = {int(i) for i in base.node_ids}
    t = {int(i): base.time(int(i)) for i in nodes}
    edges = {(int(p), int(c)) for p, c in base.edges}
    for e in entries:
        cmd = e.cmd
        if isinstance(cmd, Merge):
            a, b = cmd.end_id, cmd.start_id
            assert a in nodes and b in nodes
            assert not any(p == a for p, _ in edges), "merge accepted onto a node with a child"
            assert not any(c == b for _, c in edges), "merge accepted onto a node with a parent"
            assert t[b] > t[a]
            edges.add((a, b))
        elif isinstance(cmd, Cut):
            par = [p for p, c in edges if c == cmd.node_id]
            assert cmd.node_id in nodes and len(par) == 1, "cut accepted without a parent"
            edges.discard((par[0], cmd.node_id))
        elif isinstance(cmd, Delete):
            assert cmd.what == "node" and cmd.ids[0] in nodes
            n = cmd.ids[0]
            nodes.discard(n)
            edges = {(p, c) for p, c in edges if n not in (p, c)}
        else:
            raise AssertionError(f"unexpected op {cmd!r}")
    return nodes, edges


@pytest.mark.parametrize("order_seed", [0, 1, 2])
def test_four_clients_conflicting_edits_converge(tmp_path: Path, order_seed: int) -> None:
    base = conflict_graph()
    edits = [Merge(2, 3), Merge(2, 5), Cut(9), Delete.node(9)]

    async def main() -> None:
        async with served(tmp_path / "s.sqlite", base.copy()) as (server, session):
            url = server.join_url("review")
            clients = [await AsyncCollabClient(url, name=f"c{i}").start() for i in range(4)]
            order = list(range(4))
            random.Random(order_seed).shuffle(order)
            # All four apply locally at once (each valid on its own copy), then race.
            for i in order:
                clients[i].submit(edits[i])
            for c in clients:
                await c.wait_synced(timeout=15)
            last = session.last_seq
            for c in clients:
                await c.wait_synced(seq=last, timeout=15)
            accepted = [e for e in session.log.entries if e.kind == "cmd"]
            kinds = [type(e.cmd).__name__ for e in accepted]
            assert kinds.count("Merge") == 1, "exactly one of two merges on one track end wins"
            assert "Delete" in kinds  # a delete of 9 is valid before or after the cut
            cut_first = kinds.index("Cut") < kinds.index("Delete") if "Cut" in kinds else False
            assert ("Cut" in kinds) == cut_first
            rejected = [
                ev for c in clients for ev in c.events if ev.kind in ("rejected", "dropped")
            ]
            assert len(rejected) == 4 - len(accepted)
            nodes, edges = _set_model_replay(base, accepted)
            snap = session.target
            snap.validate()
            assert {int(i) for i in snap.node_ids} == nodes
            assert {(int(p), int(c)) for p, c in snap.edges} == edges
            for c in clients:
                assert c.target.equals(snap)
                assert state_digest(c.target) == state_digest(snap)
            for c in clients:
                await c.close()

    run(main())


def test_undo_own_ops_redo_and_refusals(tmp_path: Path) -> None:
    async def main() -> None:
        async with served(tmp_path / "s.sqlite", conflict_graph()) as (server, session):
            url = server.join_url("review")
            a = await AsyncCollabClient(url, name="a").start()
            b = await AsyncCollabClient(url, name="b").start()
            a.submit(Cut(9))
            await a.wait_synced()
            b.submit(Merge(2, 3))
            await b.wait_synced()
            a.undo()  # a's cut, older than b's merge: selective undo
            await a.wait_for(lambda: a.target.has_edge(8, 9))
            await b.wait_for(lambda: b.target.has_edge(8, 9))
            assert b.target.has_edge(2, 3)  # b's op untouched
            a.redo()
            await a.wait_synced()
            await b.wait_synced(seq=session.last_seq)
            assert not b.target.has_edge(8, 9)
            # b relinks what a cut; a's undo of its cut would now clash and is refused.
            a.submit(Cut(1))
            await a.wait_synced()
            await b.wait_synced(seq=session.last_seq)
            b.submit(Merge(0, 1))
            await b.wait_synced()
            await a.wait_synced(seq=session.last_seq)
            before = session.last_seq
            a.undo()
            await a.wait_for(lambda: any(e.kind == "rejected" for e in a.events))
            assert session.last_seq == before
            assert a.target.equals(session.target) and b.target.equals(session.target)
            await a.close()
            await b.close()

    run(main())


def test_late_joiner_gets_checkpoint_snapshot_plus_tail(tmp_path: Path) -> None:
    async def main() -> None:
        async with served(tmp_path / "s.sqlite", conflict_graph(), checkpoint_every=3) as (
            server,
            session,
        ):
            url = server.join_url("review")
            a = await AsyncCollabClient(url, name="a").start()
            for cmd in (Cut(1), Cut(4), Cut(6), Cut(8), Cut(10)):
                a.submit(cmd)
            await a.wait_synced()
            assert session.log.base_seq == 3 and session.last_seq == 5
            late = await AsyncCollabClient(url, name="late").start()
            welcome = next(e for e in late.events if e.kind == "welcome")
            assert welcome.seq == 5
            applied = [e.seq for e in late.events if e.kind == "applied"]
            assert applied == [4, 5]  # the tail after the checkpoint at seq 3
            assert late.target.equals(session.target)
            assert late.target.n_edges == conflict_graph().n_edges - 5
            await a.close()
            await late.close()

    run(main())


def test_presence_view_and_follow_fan_out(tmp_path: Path) -> None:
    async def main() -> None:
        async with served(tmp_path / "s.sqlite", conflict_graph()) as (server, _):
            url = server.join_url("review")
            pres = await AsyncCollabClient(url, name="PI", role="presenter").start()
            stud = await AsyncCollabClient(url, name="student").start()
            obs = await AsyncCollabClient(url, name="guest", role="observer").start()
            pid = pres.core.me.id
            await stud.wait_for(lambda: pid in stud.core.peers)
            for k in range(40):  # latest-wins: the final pose must arrive
                pres.presence(
                    head=Pose(position_um=(float(k), 0.0, 0.0)),
                    right_hand=Pose(position_um=(1.0, 2.0, 3.0), orientation=(0.0, 1.0, 0.0, 0.0)),
                    laser=Laser(
                        origin_um=(0.0, 0.0, 0.0), direction=(0.0, 0.0, 1.0), hit_um=(0.0, 0.0, 5.0)
                    ),
                )
                await asyncio.sleep(0)
            plane = ClipPlane(origin_um=(5.0, 5.0, 5.0), normal=(0.0, 1.0, 0.0))
            pres.view(
                clip_planes=[plane],
                time_point=3.0,
                layers={"cells": False},
                camera=Pose(position_um=(9.0, 9.0, 9.0)),
            )
            pres.set_follow(True)
            for c in (stud, obs):
                await c.wait_for(
                    lambda c=c: (
                        c.core.peers[pid].presence is not None
                        and c.core.peers[pid].presence.head.position_um[0] == 39.0
                        and c.core.peers[pid].view is not None
                        and c.core.follow.enabled
                    )
                )
                peer = c.core.peers[pid]
                assert peer.presence.laser.hit_um == (0.0, 0.0, 5.0)
                assert peer.view.clip_planes == [plane]
                assert peer.view.time == 3.0 and peer.view.layers == {"cells": False}
                assert c.core.presenter_view.camera.position_um == (9.0, 9.0, 9.0)
                assert peer.participant.role == "presenter"
            # A newcomer sees the latest presence and view without waiting for the next update.
            late = await AsyncCollabClient(url, name="late").start()
            await late.wait_for(
                lambda: (
                    pid in late.core.peers
                    and late.core.peers[pid].view is not None
                    and late.core.peers[pid].presence is not None
                )
            )
            assert late.core.follow.enabled and late.core.follow.presenter == pid
            # Only the presenter may switch follow mode; observers cannot edit.
            stud.set_follow(False)
            await stud.wait_for(lambda: any(e.kind == "error" for e in stud.events))
            with pytest.raises(InvalidEditError, match="observers"):
                obs.submit(Cut(1))
            # Leaving ends follow mode and is announced.
            await pres.close()
            await stud.wait_for(lambda: pid not in stud.core.peers and not stud.core.follow.enabled)
            for c in (stud, obs, late):
                await c.close()

    run(main())


class _ServerThread:
    """A server on its own loop thread, for the synchronous GUI-client test."""

    def __init__(self, journal: Path, target: Any = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._cm = served(journal, conflict_graph() if target is None else target)
        self.server, self.session = asyncio.run_coroutine_threadsafe(
            self._cm.__aenter__(), self.loop
        ).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._cm.__aexit__(None, None, None), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def test_two_gui_clients_see_each_others_cut_and_plane(tmp_path: Path) -> None:
    """The threaded client: state changes only inside process(), on the calling thread."""
    srv = _ServerThread(tmp_path / "s.sqlite")
    try:
        url = srv.server.join_url("review")
        one = CollabClient(url, name="desk1").start()
        two = CollabClient(url, name="desk2").start()
        assert one.info["image"] == "/data/x.zarr"
        one.submit(Cut(9))
        assert not one.target.has_edge(8, 9)  # optimistic: at once, locally
        plane = ClipPlane(origin_um=(1.0, 2.0, 3.0), normal=(1.0, 0.0, 0.0))
        one.view(clip_planes=[plane])
        one.presence(laser=Laser(origin_um=(0.0, 0.0, 0.0), direction=(1.0, 0.0, 0.0)))
        seen_cut = seen_plane = seen_laser = False
        for _ in range(400):
            one.process(timeout=0.005)
            for ev in two.process(timeout=0.005):
                seen_cut |= ev.kind == "applied" and not ev.local
                seen_plane |= ev.kind == "view" and ev.message.clip_planes == [plane]
                seen_laser |= ev.kind == "presence" and ev.message.laser is not None
            if seen_cut and seen_plane and seen_laser and one.core.synced:
                break
        assert seen_cut and seen_plane and seen_laser
        assert not two.target.has_edge(8, 9)
        assert two.target.equals(one.target)
        one.close()
        two.close()
    finally:
        srv.close()


def test_collab_history_drives_a_history_style_app(tmp_path: Path) -> None:
    """An app using apply/undo/changed (like the XR app) on a shared Workspace."""
    from analysis.annotations import AddMarker, Annotations
    from analysis.project import Workspace
    from viewer.collab import CollabHistory

    srv = _ServerThread(tmp_path / "s.sqlite", Workspace(conflict_graph(), Annotations()))
    try:
        url = srv.server.join_url("review")
        h1 = CollabHistory(CollabClient(url, name="xr").start())
        h2 = CollabHistory(CollabClient(url, name="desk").start())
        seen1: list[str] = []
        seen2: list[str] = []
        h1.changed.connect(lambda action, _: seen1.append(action))
        h2.changed.connect(lambda action, _: seen2.append(action))
        h1.apply(AddMarker("cell", (1.0, 2.0, 3.0)))
        h1.apply(Cut(9))
        assert seen1 == ["apply", "apply"] and h1.can_undo
        for _ in range(400):
            h1.process(timeout=0.005)
            h2.process(timeout=0.005)
            if seen2.count("remote") == 2 and h1.client.core.synced:
                break
        assert seen2.count("remote") == 2
        assert len(h2.target.annotations.markers) == 1 and not h2.target.tracks.has_edge(8, 9)
        h1.undo()  # the cut (the newest own op)
        for _ in range(400):
            h1.process(timeout=0.005)
            h2.process(timeout=0.005)
            if "undo" in seen1 and "undo" in seen2:
                break
        assert h1.target.tracks.has_edge(8, 9) and h2.target.tracks.has_edge(8, 9)
        assert h1.can_redo and len(h2.target.annotations.markers) == 1
        assert h2.target.annotations.equals(srv.session.target.annotations)
        h1.close()
        h2.close()
    finally:
        srv.close()
