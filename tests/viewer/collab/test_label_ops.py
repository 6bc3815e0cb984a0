"""Label edits as session ops (issue 17): the server computes and writes them into the
project's working copy, every participant re-reads what changed, undo stays per user.

References: NumPy edits of the original array (``blobs``), the working copy read with
zarr-python (``levels_of``), the writer's pyramid rule (``assert_pyramid``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import connect

from analysis.edits import DeleteLabels, LabelChange, MergeLabels, PaintBall, command_to_json
from analysis.errors import InvalidEditError
from analysis.project import Project
from tests.analysis.edits._labels_support import (
    assert_pyramid,
    blobs,
    levels_of,
    lookup,
    make_store,
)
from viewer.collab import AsyncCollabClient, CollabServer, Session

from .conftest import run


@contextlib.asynccontextmanager
async def project_served(folder: Path, port: int = 0) -> AsyncIterator[tuple[Any, Any]]:
    server = CollabServer("127.0.0.1", port)
    session = server.add_session(Session.for_project(folder, "review"))
    await server.start()
    try:
        yield server, session
    finally:
        await server.stop()


@pytest.fixture
def label_project(tmp_path: Path) -> Path:
    store = make_store(tmp_path / "img.zarr", blobs())
    folder = tmp_path / "p"
    Project.create(folder, image=store, labels=["cells"], fsync=False).close()
    return folder


def stored_levels(folder: Path) -> list[np.ndarray]:
    """The working copy's levels as stored (zarr-python): merges leave them alone."""
    return levels_of(folder / "labels" / "cells.zarr")


def copy_levels(folder: Path, session: Any = None) -> list[np.ndarray]:
    """The working copy's levels as shown: stored levels with NumPy's lookup of the id
    mapping (the serving session's, or the project's replayed journal's)."""
    if session is not None:
        mapping = session.log.target.labels["cells"].ids.mapping
    else:
        with Project.open(folder, read_only=True) as pr:
            img = pr.workspace.labels.get("cells")
            mapping = img.ids.mapping if img is not None else {}
    return [lookup(lv, mapping) for lv in stored_levels(folder)]


def covered(change: LabelChange, where: np.ndarray, level: int = 0) -> bool:
    """Every voxel index in ``where`` (k, 3) lies in one of the change's boxes of ``level``."""
    inside = np.zeros(len(where), bool)
    for box in change.boxes[level]:
        lo = np.array([s.start for s in box])
        hi = np.array([s.stop for s in box])
        inside |= np.all((where >= lo) & (where < hi), axis=1)
    return bool(inside.all())


def test_a_merge_reaches_the_project_and_every_participant(label_project: Path) -> None:
    lab = blobs()
    merged = np.where(lab == 2, 1, lab)

    async def main() -> None:
        async with project_served(label_project) as (server, session):
            url = server.join_url("review")
            info = session.info
            assert info["label_copies"] == {
                "cells": str((label_project / "labels" / "cells.zarr").resolve())
            }
            a = await AsyncCollabClient(url, name="A").start()
            b = await AsyncCollabClient(url, name="B").start()
            seen: list[LabelChange] = []
            b.core.label_images["cells"].changed.connect(seen.append)
            before = copy_levels(label_project, session)
            # Validated before it is sent: an id that is not there is refused at once.
            with pytest.raises(InvalidEditError, match="not in label image"):
                from viewer.collab import CollabHistory

                CollabHistory(a).apply(MergeLabels("cells", [1, 99]))  # type: ignore[arg-type]
            a.submit(MergeLabels("cells", [1, 2]))
            # Not applied here: the mapping is the server's to change.
            np.testing.assert_array_equal(copy_levels(label_project, session)[0], lab)
            await a.wait_synced()
            await b.wait_for(lambda: b.core.last_seq == a.core.last_seq)
            levels = copy_levels(label_project, session)
            np.testing.assert_array_equal(levels[0], merged)
            assert_pyramid(levels)
            # A merge is an id mapping: the stored voxels did not change ...
            for old, new in zip(before, stored_levels(label_project), strict=True):
                np.testing.assert_array_equal(old, new)
            # ... B was told which ids now show another (no region: nothing was written)
            assert len(seen) == 1 and seen[0].forward and seen[0].ids == frozenset({1, 2})
            assert seen[0].remapped == frozenset({2}) and all(not b for b in seen[0].boxes)
            # ... and B's views, which read through B's copy of the mapping, show the merge
            # at every level.
            img = b.core.label_images["cells"]
            assert img.ids.mapping == {2: 1}
            for k, lv in enumerate(levels):
                np.testing.assert_array_equal(img.source.read(k), lv)
            assert len(levels) == len(before) > 1
            await a.close()
            await b.close()

    run(main())


def test_label_undo_rules_and_a_restart(label_project: Path) -> None:
    lab = blobs()
    merged = np.where(lab == 2, 1, lab)

    async def main() -> None:
        async with project_served(label_project) as (server, session):
            port = server.port
            url = server.join_url("review")
            a = await AsyncCollabClient(url, name="A").start()
            b = await AsyncCollabClient(url, name="B").start()
            a.submit(MergeLabels("cells", [1, 2]))
            await a.wait_synced()
            merge_op = session.log.entries[-1].op_id
            await b.wait_for(lambda: b.core.last_seq == session.last_seq)
            # B cannot undo A's merge: nothing of B's, and a forged undo is refused.
            with pytest.raises(InvalidEditError, match="nothing of yours"):
                b.undo()
            async with connect(url) as ws:
                await ws.send(json.dumps({"type": "hello", "name": "M"}))
                assert json.loads(await ws.recv())["type"] == "welcome"
                await ws.send(json.dumps({"type": "undo", "op_id": "m.1", "target": merge_op}))
                while (r := json.loads(await ws.recv()))["type"] != "rejected":
                    pass
                assert "someone else's" in r["reason"]
                # An atom named by a client is refused (the server computes label edits).
                forged = command_to_json(MergeLabels("cells", [1, 3], atom="0" * 32))
                await ws.send(json.dumps({"type": "op", "op_id": "m.2", "cmd": forged}))
                while (r := json.loads(await ws.recv()))["type"] != "rejected":
                    pass
                assert "without an atom id" in r["reason"]
            np.testing.assert_array_equal(copy_levels(label_project, session)[0], merged)
            # B paints over A's merged object: A's undo would restore stale voxels: refused.
            b.submit(PaintBall("cells", (10, 10, 10), 0.03, 7))
            await b.wait_synced()
            painted = copy_levels(label_project, session)[0]
            assert (painted == 7).sum() > 0 and ((painted != merged) == (painted == 7)).all()
            a.events.clear()
            a.undo()
            await a.wait_for(lambda: any(e.kind == "rejected" for e in a.events))
            assert "builds on it" in next(e for e in a.events if e.kind == "rejected").reason
            np.testing.assert_array_equal(copy_levels(label_project, session)[0], painted)
            # B undoes its paint; then A's undo is accepted and the objects come back.
            b.undo()
            await b.wait_synced()
            np.testing.assert_array_equal(copy_levels(label_project, session)[0], merged)
            a.undo()
            await a.wait_synced()
            np.testing.assert_array_equal(copy_levels(label_project, session)[0], lab)
            # Redo: the command again, computed anew by the server (no atom sent).
            a.redo()
            await a.wait_synced()
            np.testing.assert_array_equal(copy_levels(label_project, session)[0], merged)
            me = (a.core.client_id, a.core.resume)
            await a.close()
            await b.close()
        # A restart keeps the edits and A's right to undo its own op (A resumes its identity).
        assert_pyramid(copy_levels(label_project))
        np.testing.assert_array_equal(copy_levels(label_project)[0], merged)  # replayed
        async with project_served(label_project, port) as (server, session):
            url = server.join_url("review")
            np.testing.assert_array_equal(copy_levels(label_project, session)[0], merged)
            a = await AsyncCollabClient(url, name="A", client_id=me[0], resume=me[1]).start()
            assert a.core.client_id == me[0]
            img = a.core.label_images["cells"]
            np.testing.assert_array_equal(img.source.read(0), merged)  # A's views: the merge
            a.undo()
            await a.wait_synced()
            np.testing.assert_array_equal(copy_levels(label_project, session)[0], lab)
            assert_pyramid(copy_levels(label_project, session))
            await a.close()
        # The project alone (no server) has every acknowledged edit.
        with Project.open(label_project, read_only=True) as pr:
            np.testing.assert_array_equal(pr.workspace.labels["cells"].source.read(0), lab)

    run(main(), timeout=120)


def test_the_headset_labels_tool_merges_through_the_session(label_project: Path) -> None:
    """The headset's labels tool (scripted trigger and A button, no runtime) in a session:
    the merge goes to the server like the desktop's; a desktop participant gets it; the
    headset's own labels layer draws the shared copy and is told what changed."""
    import time

    from analysis.io import open_labels
    from tests.analysis.edits._labels_support import SCALE
    from tests.viewer.collab._server_thread import ServerThread
    from tests.xrmode.test_tools import IDENT, Script, aim_at
    from viewer.actions import LabelEditing
    from viewer.collab import CollabClient, CollabHistory
    from viewer.scene import Labels, Scene
    from xrmode._transform import StageTransform
    from xrmode.tools import LabelTool, ToolContext

    lab = blobs()
    srv = ServerThread(lambda: Session.for_project(label_project, "review"))
    clients: list[Any] = []
    try:
        hs = CollabHistory(CollabClient(srv.url(), name="XR").start())
        desk = CollabHistory(CollabClient(srv.url(), name="desk").start())
        clients += [hs, desk]
        image = str(label_project.parent / "img.zarr")
        scene = Scene([Labels(open_labels(image, "cells"), name="cells")])
        ctx = ToolContext(
            transform=StageTransform(0.5, IDENT, (0.0, 1.0, -0.5)),
            apply=hs.apply,
            scene=scene,
            workspace=hs.target,
            history=hs,  # type: ignore[arg-type]
        )
        editing = LabelEditing(scene, hs.edit_labels, hs.label_images)
        assert scene.layers.get("cells").data is hs.label_images["cells"].source
        updates: list[list[int]] = []
        scene.layers.get("cells").labels_update.connect(updates.append)
        tool = LabelTool(editing, "cells")
        tool.enabled = True
        s = Script()

        def w(v: tuple[int, int, int]) -> tuple[float, float, float]:
            return (v[0] * SCALE[0], v[1] * SCALE[1], v[2] * SCALE[2])

        s.click(tool, ctx, pose=aim_at(ctx, w((30, 15, 20))))  # object 2 (the ray's first)
        s.click(tool, ctx, pose=aim_at(ctx, w((30, 40, 30))))  # object 3
        assert scene.selection.label_ids == [2, 3]
        s.click(tool, ctx, pose=aim_at(ctx, w((30, 40, 30))), button="primary")  # A: merge
        expect = np.where(lab == 3, 2, lab)
        deadline = time.monotonic() + 30
        while not (updates and desk.client.core.last_seq >= 1):
            assert time.monotonic() < deadline, "the merge did not come back in time"
            hs.process(timeout=0.02)
            desk.process(timeout=0.02)
        np.testing.assert_array_equal(copy_levels(label_project, srv.session)[0], expect)
        assert set(updates[0]) == {2, 3}
        np.testing.assert_array_equal(desk.label_images["cells"].source.read(0), expect)
    finally:
        for h in clients:
            h.close()
        srv.close()


def test_the_files_hold_an_op_when_participants_are_told(
    label_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's copy writes behind (docs/design/0003): participants read the files,
    so the server puts an op's chunks there before it broadcasts the op. With the
    background writer stalled, only that can have written them."""
    import zarr

    import analysis.io._label_edits as le

    monkeypatch.setattr(le, "FLUSH_DELAY_S", 600.0)
    lab = blobs()
    copy = label_project / "labels" / "cells.zarr"
    seen: list[np.ndarray] = []

    def read_files(change: LabelChange) -> None:  # zarr-python, nothing flushed here
        seen.append(np.asarray(zarr.open_group(str(copy), mode="r")["s0"][...]))

    async def main() -> None:
        async with project_served(label_project) as (server, session):
            b = await AsyncCollabClient(server.join_url("review"), name="B").start()
            b.core.label_images["cells"].changed.connect(read_files)
            a = await AsyncCollabClient(server.join_url("review"), name="A").start()
            a.submit(PaintBall("cells", (20, 25, 30), 0.05, 9))
            await a.wait_synced()
            await b.wait_for(lambda: len(seen) == 1)
            await a.close()
            await b.close()

    run(main())
    zz, yy, xx = np.indices(lab.shape)
    ball = ((zz - 20) ** 2 + (yy - 25) ** 2 + (xx - 30) ** 2) * 0.01**2 <= 0.05**2 * (1 + 1e-9)
    np.testing.assert_array_equal(seen[0], np.where(ball, 9, lab))


def test_a_participant_reads_what_the_server_wrote_after_reading_it_before(
    label_project: Path,
) -> None:
    """A participant's copy reads the server's files (previews, picks, counts): a region
    it read before another participant's stamp reads the stamp afterwards (its copy
    kept decoded chunks of the files and served the old ones)."""
    lab = blobs()
    region = (slice(10, 30), slice(15, 35), slice(20, 40))

    async def main() -> None:
        async with project_served(label_project) as (server, session):
            b = await AsyncCollabClient(server.join_url("review"), name="B").start()
            img = b.core.label_images["cells"]
            np.testing.assert_array_equal(img.read(region), lab[region])
            a = await AsyncCollabClient(server.join_url("review"), name="A").start()
            a.submit(PaintBall("cells", (20, 25, 30), 0.05, 9))
            await a.wait_synced()
            await b.wait_for(lambda: b.core.last_seq == a.core.last_seq)
            got = img.read(region)
            await a.close()
            await b.close()
        zz, yy, xx = np.indices(lab.shape)
        d2 = ((zz - 20) ** 2 + (yy - 25) ** 2 + (xx - 30) ** 2) * 0.01**2
        ball = d2 <= 0.05**2 * (1 + 1e-9)
        np.testing.assert_array_equal(got, np.where(ball, 9, lab)[region])

    run(main())


def test_a_brush_stroke_is_one_op_and_one_undo(label_project: Path) -> None:
    """A stroke (stamps in ``CollabHistory.group``) waits for the server as one op; the
    copy holds both discs (voxel centres within the radius, computed here); one undo of
    it restores the start."""
    from tests.analysis.edits._labels_support import SCALE
    from tests.viewer.collab._server_thread import ServerThread
    from viewer.collab import CollabClient, CollabHistory

    lab = blobs()
    srv = ServerThread(lambda: Session.for_project(label_project, "review"))
    hist = CollabHistory(CollabClient(srv.url(), name="painter").start())
    try:
        centres, r_um = [(12, 20, 20), (12, 20, 26)], 0.035
        with hist.group("stroke"):
            for c in centres:
                hist.apply(PaintBall("cells", c, r_um, 6, axis=0))
        expect = lab.copy()
        zz, yy, xx = np.indices(lab.shape)
        for cz, cy, cx in centres:
            d2 = ((yy - cy) * SCALE[1]) ** 2 + ((xx - cx) * SCALE[2]) ** 2
            expect[(zz == cz) & (d2 <= r_um**2)] = 6

        def wait(pred: Any) -> None:
            import time

            deadline = time.monotonic() + 30
            while not pred():
                assert time.monotonic() < deadline
                hist.process(timeout=0.02)

        wait(lambda: hist.client.core.synced)
        assert srv.session is not None and srv.session.last_seq == 1  # one op
        np.testing.assert_array_equal(copy_levels(label_project, srv.session)[0], expect)
        hist.undo()
        wait(lambda: hist.client.core.synced and hist.client.core.last_seq == 2)
        np.testing.assert_array_equal(copy_levels(label_project, srv.session)[0], lab)
        assert_pyramid(copy_levels(label_project, srv.session))
    finally:
        hist.close()
        srv.close()


def test_a_label_write_that_fails_is_refused_and_taken_back(
    label_project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A disk-full write of the copy (simulated after part of it was written): the op is
    rejected without a traceback, the voxels are as before, the session goes on."""
    lab = blobs()

    async def main() -> None:
        async with project_served(label_project) as (server, session):
            store = session.log.target.labels["cells"]
            real_set = store.set
            failures = [1]

            def set_then_fail(atom_id: str, forward: bool, atom: Any = None) -> None:
                real_set(atom_id, forward, atom)
                if failures:
                    failures.pop()
                    raise OSError(28, "No space left on device")

            store.set = set_then_fail
            a = await AsyncCollabClient(server.join_url("review"), name="A").start()
            a.submit(DeleteLabels("cells", [2]))  # a voxel write (a merge writes none)
            await a.wait_for(lambda: any(e.kind == "rejected" for e in a.events))
            assert "could not write" in next(e for e in a.events if e.kind == "rejected").reason
            np.testing.assert_array_equal(copy_levels(label_project, session)[0], lab)
            assert session.last_seq == 0
            a.submit(MergeLabels("cells", [1, 3]))
            await a.wait_synced()
            np.testing.assert_array_equal(
                copy_levels(label_project, session)[0], np.where(lab == 3, 1, lab)
            )
            await a.close()

    run(main())
    assert not any(r.exc_info for r in caplog.records)


def test_a_participant_who_cannot_open_the_copy_is_refused_label_edits(
    label_project: Path,
) -> None:
    """On a machine where the copy's path does not open, label edits are refused with a
    message naming it, and the others' label ops change nothing there (no resync loop)."""
    from viewer.collab import CollabHistory

    async def main() -> None:
        async with project_served(label_project) as (server, session):
            url = server.join_url("review")
            a = await AsyncCollabClient(url, name="A").start()
            session.info["label_copies"] = {"cells": "/nonexistent/labels/cells.zarr"}
            b = await AsyncCollabClient(url, name="far").start()
            hist = CollabHistory(b)  # type: ignore[arg-type]
            assert hist.label_images == {}
            with pytest.raises(InvalidEditError, match="/nonexistent/labels/cells.zarr"):
                hist.edit_labels("cells")
            with pytest.raises(InvalidEditError, match="does not open here"):
                hist.apply(MergeLabels("cells", [1, 2]))
            assert b.core.replica is not None and not b.core.replica.pending
            a.submit(MergeLabels("cells", [1, 2]))
            await a.wait_synced()
            await b.wait_for(lambda: b.core.last_seq == session.last_seq)
            assert not [e for e in b.events if e.kind in ("error", "rejected")]
            await a.close()
            await b.close()

    run(main())
