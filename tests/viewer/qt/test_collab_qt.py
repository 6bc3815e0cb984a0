"""Two desktop viewers and a simulated XR client in one review session (pytest-qt, Xvfb).

A ``vrscope serve``-equivalent server runs on loopback in a thread (the project's
session: ``Session.for_project``). Viewer A cuts a track with its GUI action; viewer
B shows the cut, A's pointer and A's clipping plane; the XR client's pointer shows
in both; after a server restart the cut is there for a new joiner and in the
project itself. References: the sample's ground-truth lineage CSV, the positions
the test points at, and the preset plane normal.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PySide6 import QtCore

from analysis.annotations import Annotations
from analysis.project import Project
from viewer.collab import AsyncCollabClient, CollabClient, Laser, Pose, Session

from ..collab._server_thread import ServerThread
from .conftest import wait_rendered, wait_slices
from .test_app import click, edge_set, truth_edges

pytestmark = pytest.mark.qt

Qt = QtCore.Qt


def _joined(qtbot: Any, url: str, name: str, x: int, role: str = "editor") -> tuple[Any, Any]:
    from viewer.qt import QtViewer
    from viewer.qt._collab import attach, join_session

    session, history = join_session(url, name=name, role=role)
    win = QtViewer(session, size=(900, 640))
    collab = attach(win, history)
    # Side by side: a synthetic mouse move goes to the window on top at that screen point.
    win.move(x, 0)
    win.show()
    qtbot.waitExposed(win)
    return win, collab


def _hover(qtbot: Any, win: Any, plane: str, zyx: Any) -> None:
    """A real mouse move (no button) over slice ``plane`` at world ``zyx``."""
    view = win.slices[plane]
    pos = view.mapFromScene(view.view_to_scene(tuple(float(v) for v in zyx)))
    qtbot.mouseMove(view.viewport(), pos)


def test_two_viewers_and_xr_share_a_session_and_a_cut_survives_a_restart(
    qtbot: Any, timelapse_store: Path, tmp_path: Path
) -> None:
    nodes = pd.read_csv(timelapse_store.with_name("tl.truth.csv"))
    truth = truth_edges(nodes)
    by_id = nodes.set_index("node_id")
    # A node n whose parent p is on the same (non-dividing) track, as in test_app.
    cand = nodes[(nodes["parent_id"] >= 0) & (nodes["t"] >= 2)]
    cand = cand[
        [
            by_id.loc[p, "track_id"] == tr
            for p, tr in zip(cand["parent_id"], cand["track_id"], strict=True)
        ]
    ]
    n = int(cand["node_id"].iloc[0])
    p = int(by_id.loc[n, "parent_id"])
    pos_n = by_id.loc[n, ["z", "y", "x"]].to_numpy(float)
    t_n = int(by_id.loc[n, "t"])

    folder = tmp_path / "proj"
    Project.create(
        folder, image=timelapse_store, labels=["nuclei"], tracks=timelapse_store / "tracks"
    ).close()
    srv = ServerThread(lambda: Session.for_project(folder, "review"))
    wins: list[Any] = []
    xr: AsyncCollabClient | None = None
    try:
        url = srv.url()
        wa, ca = _joined(qtbot, url, "Ana", 0, role="presenter")
        wb, cb = _joined(qtbot, url, "Ben", 960)
        wins += [wa, wb]
        sa, sb = wa.session, wb.session
        # Both opened the image the server named, with the project's tracks.
        assert sa.image_layer is not None and sa.image_layer.source == str(timelapse_store)
        assert edge_set(sa.tracks) == edge_set(sb.tracks) == truth
        for w in wins:
            wait_rendered(qtbot, w)

        # A simulated XR participant (head, hand and laser poses), on the server's loop.
        async def xr_join() -> AsyncCollabClient:
            c = await AsyncCollabClient(url, name="XR").start()
            c.presence(
                head=Pose(position_um=(-40.0, 20.0, 20.0)),
                right_hand=Pose(position_um=(10.0, 10.0, 10.0)),
                laser=Laser(
                    origin_um=(10.0, 10.0, 10.0),
                    direction=(0.0, 0.0, 1.0),
                    hit_um=(10.0, 10.0, 30.0),
                ),
            )
            return c

        xr = asyncio.run_coroutine_threadsafe(xr_join(), srv.loop).result(20)

        # --- A cuts the track before n with its GUI action (select by a click, then C).
        sa.set_time(t_n)
        sa.set_cursor(pos_n)
        click(qtbot, wa, "xy", pos_n)
        assert sa.scene.selection.node_ids == [n]
        wa.qactions["tracks.cut"].trigger()
        cut = truth - {(p, n)}
        assert edge_set(sa.tracks) == cut  # at once, optimistically
        qtbot.waitUntil(lambda: edge_set(sb.tracks) == cut, timeout=20_000)
        qtbot.waitUntil(
            lambda: (
                {(int(a), int(b)) for a, b in sb.scene.layers.get("tracks").data.edges.tolist()}
                == cut
            ),
            timeout=20_000,
        )
        # The shared time point came along with A's view (A moved to t(n) to cut).
        qtbot.waitUntil(lambda: sb.time == t_n, timeout=20_000)

        # --- A points: the mouse hovers A's XY slice; B draws A's pointer there.
        target = pos_n + np.array([0.0, 3.0, -2.0])
        _hover(qtbot, wa, "xy", target)
        px = wa.slices["xy"].pixel_size_um()

        def ana_pointer() -> Any:
            lay = cb.pointers
            return next(
                (q for q, c in zip(lay.positions_um, lay.classes, strict=True) if c == "Ana"), None
            )

        qtbot.waitUntil(lambda: ana_pointer() is not None, timeout=20_000)
        np.testing.assert_allclose(ana_pointer(), target, atol=2 * px)
        ana = next(q for q in cb.client.core.peers.values() if q.participant.name == "Ana")
        assert cb.pointers.class_colors["Ana"] == pytest.approx(
            tuple(int(ana.participant.colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
        )
        ray = sb.scene.layers.get("session: Ana")
        np.testing.assert_allclose(ray.items[0].points_um[-1], target, atol=2 * px)
        assert ray.items[0].label == "Ana"

        # --- B points in its 3D view: the picked point under the mouse; A draws it.
        from tests.viewer.render.conftest import project_independently

        rv = wb.render_view
        cam, dpr = sb.scene.camera, rv.devicePixelRatioF()
        size = (int(rv.width() * dpr), int(rv.height() * dpr))
        # Over the nucleus of node n (B shows t(n)): the pick finds its surface there.
        at = project_independently(
            cam.position, cam.focal_point, cam.view_up, cam.view_angle, size, pos_n
        )[0]
        mpos = QtCore.QPoint(int(round(at[0] / dpr)), int(round(at[1] / dpr)))
        qtbot.mouseMove(rv, mpos)
        qtbot.waitUntil(lambda: cb.pointer is not None, timeout=60_000)
        hit = np.asarray(cb.pointer)
        px3 = project_independently(
            cam.position, cam.focal_point, cam.view_up, cam.view_angle, size, hit
        )
        np.testing.assert_allclose(px3[0], [mpos.x() * dpr, mpos.y() * dpr], atol=2.0)
        qtbot.waitUntil(lambda: "Ben" in ca.pointers.classes, timeout=20_000)
        ben = ca.pointers.positions_um[ca.pointers.classes.index("Ben")]
        np.testing.assert_allclose(ben, hit)

        # --- A adds a clipping plane in its Clipping panel and moves it; B gets it.
        wa.clipping_panel.preset.setCurrentText("+x")
        qtbot.mouseClick(wa.clipping_panel.add, Qt.MouseButton.LeftButton)
        plane_a = sa.scene.clipping_planes[0]
        sa.clipping.set_offset(plane_a, 3.0)

        def same_plane() -> bool:
            planes = list(sb.scene.clipping_planes)
            return len(planes) == 1 and planes[0].origin == plane_a.origin

        qtbot.waitUntil(same_plane, timeout=20_000)
        assert sb.scene.clipping_planes[0].normal == (0.0, 0.0, 1.0)  # the "+x" preset, zyx
        assert sb.scene.clipping_planes[0].enabled

        # --- The XR participant's laser and hand show in both viewers.
        for c in (ca, cb):
            qtbot.waitUntil(lambda c=c: "XR" in c.pointers.classes, timeout=20_000)
            xr_pts = [
                q
                for q, k in zip(c.pointers.positions_um, c.pointers.classes, strict=True)
                if k == "XR"
            ]
            assert (10.0, 10.0, 30.0) in xr_pts and (10.0, 10.0, 10.0) in xr_pts
            seg = c.session.scene.layers.get("session: XR").items[0].points_um
            np.testing.assert_allclose(seg[-1], (10.0, 10.0, 30.0))
        assert not xr.target.tracks.has_edge(p, n)  # and the XR client has the cut

        # --- Follow the presenter: Ana leads, Ben's camera follows hers; then Ben roams.
        ca.actions["lead"].trigger()
        assert ca.actions["lead"].isChecked()
        sa.scene.camera.orbit(azimuth=50.0, elevation=10.0)

        def same_direction() -> bool:
            return bool(
                np.allclose(sb.scene.camera.direction, sa.scene.camera.direction, atol=1e-6)
            )

        qtbot.waitUntil(same_direction, timeout=20_000)
        np.testing.assert_allclose(sb.scene.camera.position, sa.scene.camera.position, atol=1e-6)
        cb.actions["follow"].trigger()  # unchecked: free roaming
        before = sb.scene.camera.position
        sa.scene.camera.orbit(azimuth=-30.0)
        qtbot.wait(400)
        cb.tick()
        assert sb.scene.camera.position == before

        # --- Restart the server: the cut is there for a new joiner; the viewers resume.
        srv.restart()
        late = CollabClient(srv.url(), name="late", role="observer").start()
        assert not late.target.tracks.has_edge(p, n)
        assert edge_set(late.target.tracks) == cut
        late.close()
        # B edits after the restart (its client reconnected by itself); A sees it.
        wb.qactions["tool.count"].trigger()
        click(qtbot, wb, "xy", pos_n)
        assert len(sb.annotations.markers) == 1
        qtbot.waitUntil(lambda: len(sa.annotations.markers) == 1, timeout=30_000)
        np.testing.assert_allclose(
            sa.annotations.markers[0].position_um, sb.annotations.markers[0].position_um
        )
        # B undoes its own marker (Edit > Undo) and redoes it: in server order, for everyone.
        wb.qactions["edit.undo"].trigger()
        qtbot.waitUntil(
            lambda: not sa.annotations.markers and not sb.annotations.markers, timeout=30_000
        )
        assert edge_set(sb.tracks) == cut  # A's cut is not B's to undo
        wb.qactions["edit.redo"].trigger()
        qtbot.waitUntil(lambda: len(sa.annotations.markers) == 1, timeout=30_000)
        assert not wb.qactions["file.save"].isEnabled()  # the server saves; no private copy
    finally:
        for w in wins:
            w.close()
        if xr is not None:
            asyncio.run_coroutine_threadsafe(xr.close(), srv.loop).result(10)
        srv.close()
    # The project itself, without the server: the cut and the marker, once each.
    with Project.open(folder) as pr:
        assert pr.tracks is not None and edge_set(pr.tracks) == cut
        assert len(pr.annotations.markers) == 1
        assert isinstance(pr.annotations, Annotations)
        assert math.isfinite(pr.annotations.markers[0].position_um[0])


def test_pointer_ray_is_clipped_to_the_data_box() -> None:
    """``ray_in_box`` against the analytic entry point of an axis-aligned box."""
    from viewer.qt._collab import ray_in_box

    lo, hi = np.zeros(3), np.array([10.0, 20.0, 30.0])
    # From far along -x towards a hit inside: enters at x = 0.
    seg = ray_in_box((5.0, 5.0, -100.0), (0.0, 0.0, 1.0), (5.0, 5.0, 12.0), lo, hi)
    assert seg == ((5.0, 5.0, 0.0), (5.0, 5.0, 12.0))
    # Diagonal without a hit: enters where the slab intervals overlap, leaves at the far face.
    d = np.array([1.0, 1.0, 1.0]) / math.sqrt(3)
    seg = ray_in_box((-5.0, -5.0, -5.0), d, None, lo, hi)
    assert seg is not None
    np.testing.assert_allclose(seg[0], (0.0, 0.0, 0.0), atol=1e-12)
    np.testing.assert_allclose(seg[1], (10.0, 10.0, 10.0), atol=1e-12)
    assert ray_in_box((-5.0, 50.0, 0.0), (1.0, 0.0, 0.0), None, lo, hi) is None  # misses


def test_camera_pose_round_trip_matches_the_camera() -> None:
    """The head pose of a camera: -Z along the view direction, +Y along view-up."""
    from viewer.qt._collab import camera_pose, pose_axes
    from viewer.scene import Camera

    cam = Camera(
        position=(-50.0, 10.0, 20.0), focal_point=(5.0, 5.0, 5.0), view_up=(0.0, -1.0, 0.0)
    )
    cam.orbit(azimuth=33.0, elevation=-12.0)
    fwd, up = pose_axes(camera_pose(cam))
    np.testing.assert_allclose(fwd, cam.direction, atol=1e-12)
    u = np.asarray(cam.view_up) - np.dot(cam.view_up, cam.direction) * cam.direction
    np.testing.assert_allclose(up, u / np.linalg.norm(u), atol=1e-12)


def test_view_join_cli_opens_the_session_and_refuses_bad_input(
    tmp_path: Path, timelapse_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import imageio.v3 as iio

    from vrscope.cli import main

    folder = tmp_path / "proj"
    Project.create(folder, image=timelapse_store, tracks=timelapse_store / "tracks").close()
    srv = ServerThread(lambda: Session.for_project(folder, "review"))
    try:
        url = srv.url()
        png = tmp_path / "joined.png"
        argv = ["view", "--join", url, "--name", "Cleo", "--exit-after", "1"]
        assert main([*argv, "--screenshot", str(png)]) == 0
        img = iio.imread(png)
        assert img.ndim == 3 and img.shape[0] > 300 and img.std() > 20

        def one_line(rc: int, match: str) -> None:
            err = capsys.readouterr().err
            assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
            assert match in err, err

        bad = url.split("token=")[0] + "token=wrong"
        one_line(main(["view", "--join", bad, "--exit-after", "0.1"]), "token was refused")
        one_line(main(["view", "--join", "http://x/s"]), "join URL must look like")
        one_line(main(["view", "--join", url, "--project", str(folder)]), "leave out --project")
    finally:
        srv.close()


def test_a_label_merge_by_one_participant_shows_for_the_other_and_survives_a_restart(
    qtbot: Any, tmp_path: Path
) -> None:
    """Issue 17: label edits are collaboration ops. Ana merges two objects with the mouse
    and Shift+M; Ben's slices show one id; only Ana can undo it; a restart keeps it.

    References: NumPy edits of the original array, the project's working copy read with
    zarr-python (``levels_of``) and shown through NumPy's lookup of the server's id mapping
    (a merge writes no voxel), the pixels of Ben's slice view (grabbed).
    """
    from tests.analysis.edits._labels_support import (
        assert_pyramid,
        blobs,
        levels_of,
        lookup,
        make_store,
    )

    from .test_app import key
    from .test_label_tools import cursor_voxel, pause, pixel, w

    lab = blobs()
    merged = np.where(lab == 2, 1, lab)
    store = make_store(tmp_path / "img.zarr", lab)
    folder = tmp_path / "proj"
    Project.create(folder, image=store, labels=["cells"]).close()
    copy = folder / "labels" / "cells.zarr"
    srv = ServerThread(lambda: Session.for_project(folder, "review"))
    wins: list[Any] = []

    def served() -> np.ndarray:
        """Level 0 as the server shows it: the stored voxels, its id mapping looked up."""
        assert srv.session is not None
        mapping = srv.session.log.target.labels["cells"].ids.mapping
        return lookup(levels_of(copy)[0], mapping)

    try:
        url = srv.url()
        wa, ca = _joined(qtbot, url, "Ana", 0)
        wb, cb = _joined(qtbot, url, "Ben", 960)
        wins += [wa, wb]
        for win in wins:
            wait_rendered(qtbot, win)
        sa = wa.session
        y = cursor_voxel(wa)[1]
        assert 5 <= y < 30 and cursor_voxel(wb)[1] == y  # xz crosses objects 1 and 2
        a, b = w((14, y, 34)), w((24, y, 8))  # inside 1 and inside 2
        assert not np.array_equal(pixel(wb, "xz", a), pixel(wb, "xz", b))

        def ben_shows(ids: set[int], gone: int | None = None) -> bool:
            shown = wb.slices["xz"].shown("cells")
            got = set(np.unique(shown.array).tolist()) if shown is not None else set()
            return ids <= got and gone not in got

        # --- Ana selects object 1, Ctrl+clicks object 2, merges with Shift+M.
        click(qtbot, wa, "xz", w((10, y, 14)))
        qtbot.waitUntil(lambda: sa.scene.selection.label_ids == [1], timeout=10_000)
        pause(qtbot)
        click(qtbot, wa, "xz", w((28, y, 26)), Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda: sa.scene.selection.label_ids == [1, 2], timeout=10_000)
        key(qtbot, wa, Qt.Key.Key_M, Qt.KeyboardModifier.ShiftModifier)
        # The server merged in the project's copy (its id mapping: the stored voxels stay);
        # Ben's slices read it through his copy of the mapping.
        qtbot.waitUntil(lambda: np.array_equal(served(), merged), timeout=30_000)
        np.testing.assert_array_equal(levels_of(copy)[0], lab)
        assert_pyramid(levels_of(copy))
        qtbot.waitUntil(lambda: ben_shows({1}, gone=2), timeout=30_000)
        wait_slices(qtbot, wb)
        np.testing.assert_array_equal(pixel(wb, "xz", a), pixel(wb, "xz", b))
        for plane in ("xy", "xz", "yz"):
            shown = wb.slices[plane].shown("cells")
            assert shown is not None and 2 not in set(np.unique(shown.array).tolist())

        # --- Ben cannot undo Ana's merge (Ctrl+Z: nothing of his); the voxels stay.
        assert not cb.history.can_undo
        key(qtbot, wb, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        cb.tick()
        np.testing.assert_array_equal(served(), merged)

        # --- A restart keeps it: a new joiner reads the merge; Ana (who resumed her
        # identity by herself) undoes it, and Ben sees both objects again.
        srv.restart()
        late = CollabClient(srv.url(), name="late", role="observer").start()
        img = late.core.label_images["cells"]
        np.testing.assert_array_equal(img.source.read(0), merged)
        late.close()
        assert ca.history.can_undo
        key(qtbot, wa, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda: np.array_equal(served(), lab), timeout=30_000)
        qtbot.waitUntil(lambda: ben_shows({1, 2}), timeout=30_000)
        wait_slices(qtbot, wb)
        assert not np.array_equal(pixel(wb, "xz", a), pixel(wb, "xz", b))
        # Ana redoes it (the command again, computed by the server): Ben sees one id again.
        assert not cb.history.can_redo
        wa.qactions["edit.redo"].trigger()
        qtbot.waitUntil(lambda: np.array_equal(served(), merged), timeout=30_000)
        qtbot.waitUntil(lambda: ben_shows({1}, gone=2), timeout=30_000)
    finally:
        for win in wins:
            win.close()
        srv.close()
    # The project alone (no server) holds the session's label edits, undoable there.
    with Project.open(folder) as pr:
        img = pr.edit_labels("cells")
        np.testing.assert_array_equal(img.source.read(0), merged)  # type: ignore[attr-defined]
        pr.history.undo()  # the merge, undone from the project's own journal
        np.testing.assert_array_equal(img.source.read(0), lab)  # type: ignore[attr-defined]
        assert img.ids.mapping == {}  # type: ignore[attr-defined]
        np.testing.assert_array_equal(levels_of(copy)[0], lab)
        assert_pyramid(levels_of(copy))
