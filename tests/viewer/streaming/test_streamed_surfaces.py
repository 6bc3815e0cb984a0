"""Streamed label surfaces (VtkStreamedSurfaces) against independent references.

Geometry is compared with scikit-image's marching cubes of the whole volume (and the
analytic ellipsoid), pictures with a whole-level ``VtkLabels`` render of the same
unsmoothed surfaces, levels with the pinhole definition (``_support.pinhole``).
"""

from __future__ import annotations

import os

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import math
import threading
import time

import numpy as np
import pytest
from scipy.spatial import cKDTree
from skimage import measure

from analysis.volume import ArrayVolumeSource
from viewer.scene import Labels, Scene

from ._support import pinhole

pytestmark = pytest.mark.render

SHAPE = (80, 80, 80)
ELLIPSOID = ((36.0, 42.0, 38.0), (26.0, 19.0, 30.0))  # centre, semi-axes (zyx voxels)
BALL = ((58.0, 24.0, 60.0), 13.0)


def _labels() -> np.ndarray:
    """An ellipsoid (id 3) and a ball (id 70000, beyond uint16 compact ranges) spanning bricks."""
    zz, yy, xx = np.indices(SHAPE, dtype=np.float64)
    (cz, cy, cx), (az, ay, ax) = ELLIPSOID
    lab = np.zeros(SHAPE, np.uint32)
    lab[((zz - cz) / az) ** 2 + ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2 <= 1] = 3
    (bz, by, bx), r = BALL
    lab[(zz - bz) ** 2 + (yy - by) ** 2 + (xx - bx) ** 2 <= r**2] = 70000
    return lab


def _source(lab: np.ndarray, chunk: int = 16, scale=(1.0, 1.0, 1.0)) -> ArrayVolumeSource:
    return ArrayVolumeSource(
        [lab, lab[::2, ::2, ::2], lab[::4, ::4, ::4]], chunks=(chunk,) * 3, scale_um=scale
    )


def _reference(lab: np.ndarray, scale=(1.0, 1.0, 1.0)) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Whole-volume marching cubes per id (scikit-image), vertices in world xyz."""
    out = {}
    for i in np.unique(lab)[1:]:
        verts, faces, _, _ = measure.marching_cubes(
            np.pad(lab == i, 1).astype(np.float32), 0.5, spacing=scale
        )
        zyx = verts - np.asarray(scale)  # the pad
        out[int(i)] = (zyx[:, ::-1], faces)
    return out


def _ellipsoid_area(a: float, b: float, c: float) -> float:
    """Knud Thomsen's approximation of an ellipsoid's area (error < 1.1 %)."""
    p = 1.6075
    return 4 * math.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)


def _camera(scene: Scene, eye_zyx, focal_zyx, fov: float = 30.0) -> None:
    scene.camera.update({"position": tuple(eye_zyx), "focal_point": tuple(focal_zyx)})
    scene.camera.update({"view_up": (0.0, -1.0, 0.0), "view_angle": fov})


@pytest.mark.parametrize("scale", [(1.0, 1.0, 1.0), (2.0, 1.0, 0.5)])
def test_brick_meshes_together_are_the_whole_volume_surface(scale) -> None:
    from viewer.render import SceneRenderer
    from viewer.render._streaming import StreamingController

    lab = _labels()
    lay = Labels(_source(lab, scale=scale), name="cells")
    scene = Scene([lay])
    scene.reset_camera()
    with SceneRenderer(scene, size=(160, 120)) as r:
        with StreamingController(r, cache_bytes=64 << 20, max_error_px=1e-6) as ctl:
            frame = ctl.settle(timeout=60)["cells"]
            adapter = r.adapter(lay)
            assert frame.complete and adapter.complete
            drawn = adapter.drawn_triangles()
    assert {lv for lv, *_ in drawn} == {0}
    # The objects span many bricks (16³ voxels each): 27+ bricks carry triangles.
    assert sum(len(f) > 0 for _, _, f, _ in drawn) >= 27
    ref = _reference(lab, scale)
    for i, (rv, rf) in ref.items():
        parts = [(vx.astype(np.float64), f[ids == i]) for _, vx, f, ids in drawn]
        area = sum(measure.mesh_surface_area(vx, f) for vx, f in parts if len(f))
        n_tri = sum(len(f) for _, f in parts)
        ref_area = measure.mesh_surface_area(rv, rf)
        # Bricks own the whole-volume triangles exactly once each: same count and area
        # (float32 world coordinates are the only difference).
        assert n_tri == len(rf), (i, n_tri, len(rf))
        assert abs(area / ref_area - 1) < 1e-5, (i, area, ref_area)
        # Every vertex of ours lies on the whole-volume mesh (a vertex of it, in fact).
        ours = np.concatenate([vx[np.unique(f)] for vx, f in parts if len(f)])
        d, _ = cKDTree(rv).query(ours)
        assert d.max() < 1e-3 * min(scale)
        # And the whole-volume mesh is covered: each of its vertices has one of ours.
        d2, _ = cKDTree(ours).query(rv)
        assert d2.max() < 1e-3 * min(scale)
    # Against the analytic shape: the marching-cubes area of a voxelised ellipsoid is a
    # few % above the smooth one (staircase), which bounds it from both sides here.
    (_, semi) = ELLIPSOID
    analytic = _ellipsoid_area(*(s * k for s, k in zip(semi, scale, strict=True)))
    parts = [(vx.astype(np.float64), f[ids == 3]) for _, vx, f, ids in drawn]
    area = sum(measure.mesh_surface_area(vx, f) for vx, f in parts if len(f))
    assert 0.98 < area / analytic < 1.12, area / analytic


def _depth(r) -> np.ndarray:
    from viewer.render._vtk import vtk_to_numpy, vtkWindowToImageFilter

    r.render()
    f = vtkWindowToImageFilter()
    f.SetInput(r.window)
    f.SetInputBufferTypeToZBuffer()
    f.ReadFrontBufferOff()
    f.ShouldRerenderOff()
    f.Update()
    out = f.GetOutput()
    w, h, _ = out.GetDimensions()
    return vtk_to_numpy(out.GetPointData().GetScalars()).reshape(h, w)[::-1].copy()


@pytest.mark.parametrize("view", [(25.0, 15.0), (90.0, 0.0), (0.0, 89.0)])
def test_streamed_surfaces_render_like_the_whole_level_without_gaps(view) -> None:
    from viewer.render import SceneRenderer
    from viewer.render._streaming import StreamingController

    lab = _labels()
    size = (320, 320)

    def scene_for(data) -> tuple[Scene, Labels]:
        lay = Labels(data, name="cells", smoothing_iterations=0)
        scene = Scene([lay])
        scene.reset_camera()
        scene.camera.orbit(*view)
        return scene, lay

    # Reference: VtkLabels meshing the whole level 0 at once (same unsmoothed surfaces).
    scene, lay = scene_for(_source(lab))
    with SceneRenderer(scene, size=size, voxel_budget=2**30, show_scale_bar=False) as r:
        ref_img = r.screenshot().astype(int)
        ref_z = _depth(r)
        assert r.adapter(lay)._level == 0
    scene, lay = scene_for(_source(lab))
    with SceneRenderer(scene, size=size, show_scale_bar=False) as r:
        with StreamingController(r, cache_bytes=64 << 20, max_error_px=1e-6) as ctl:
            ctl.settle(timeout=60)
            img = r.screenshot().astype(int)
            z = _depth(r)
            assert len(r.adapter(lay).items) > 27
    fg_ref, fg = ref_z < 1.0, z < 1.0
    assert fg_ref.mean() > 0.05  # the objects fill a good part of the picture
    # A gap at a brick face shows the background or the far side of the object through it.
    assert np.mean(fg_ref != fg) < 0.01
    both = fg_ref & fg
    assert np.mean(np.abs(z - ref_z)[both] > 1e-3) < 0.01
    # Colours per id as VtkLabels draws them.
    d = np.abs(img - ref_img).max(axis=2)
    assert np.mean(d > 24) < 0.01


def test_level_of_detail_far_coarse_close_fine() -> None:
    from viewer.render import SceneRenderer
    from viewer.render._streaming import StreamingController

    lab = _labels()
    src = _source(lab)
    size = (320, 240)
    focal = np.array([40.0, 40.0, 40.0])

    def coarsest_fine_enough(eye: np.ndarray, fov: float) -> int:
        # The coarsest level whose voxel, at the volume point nearest the eye, spans
        # <= 1 px by the pinhole definition: no drawn brick may be finer than this.
        near = np.clip(eye, -0.5, 79.5)
        fwd = (focal - eye) / np.linalg.norm(focal - eye)
        side = np.cross(fwd, [0.0, 1.0, 0.0])
        side /= np.linalg.norm(side)
        best = 0
        for lv, lev in enumerate(src.levels):
            p = np.stack([near, near + side * lev.scale[0]])
            px, _ = pinhole(eye, fwd, (0.0, -1.0, 0.0), fov, size, p)
            if np.linalg.norm(px[1] - px[0]) <= 1.0:
                best = lv
        return best

    drawn_levels = {}
    for distance in (2400.0, 100.0):
        lay = Labels(src, name="cells")
        scene = Scene([lay])
        eye = focal + np.array([0.0, 0.0, -distance])
        _camera(scene, eye, focal)
        with SceneRenderer(scene, size=size) as r:
            with StreamingController(r, cache_bytes=64 << 20) as ctl:
                ctl.settle(timeout=60)
                adapter = r.adapter(lay)
                want = coarsest_fine_enough(eye, 30.0)
                levels = {lv for _, lv, _, _ in adapter.items}
                # The meshes drawn come from bricks of those levels.
                assert {lv for lv, *_ in adapter.drawn_triangles()} == levels
                assert adapter.complete and levels
                drawn_levels[distance] = (levels, want)
    far, want_far = drawn_levels[2400.0]
    close, want_close = drawn_levels[100.0]
    assert want_far == 2 and far == {2}
    assert want_close == 0 and 0 in close


def test_meshing_never_runs_on_the_frame_thread_and_coarse_meshes_stand_in() -> None:
    from viewer.render import SceneRenderer
    from viewer.render._streaming import StreamingController

    lab = _labels()
    lay = Labels(_source(lab), name="cells")
    scene = Scene([lay])
    scene.reset_camera()
    gate = threading.Event()
    threads: set[int] = set()
    with SceneRenderer(scene, size=(160, 120)) as r:
        with StreamingController(r, cache_bytes=64 << 20, max_error_px=1e-6) as ctl:
            adapter = r.adapter(lay)
            real = adapter.mesher

            blocked = [0]  # level-0 meshes waiting at the gate right now
            lock = threading.Lock()

            def mesher(pb, *args):
                threads.add(threading.get_ident())
                if pb.level == 0:
                    with lock:
                        blocked[0] += 1
                    gate.wait(30)  # level 0 blocked until released below
                    with lock:
                        blocked[0] -= 1
                return real(pb, *args)

            adapter.mesher = mesher
            t_end = time.monotonic() + 20
            frames_while_blocked = 0
            frame = None
            # Frames go on while level 0 cannot be meshed: coarse meshes stand in.
            while time.monotonic() < t_end:
                frame = ctl.update()["cells"]
                r.render()
                frames_while_blocked += blocked[0] > 0
                levels = {lv for _, lv, _, _ in adapter.items}
                loads = adapter.streamer.stats()
                if loads.pending == 0 and loads.in_flight == 0 and frames_while_blocked:
                    break  # every brick loaded; only the blocked meshes are left
                time.sleep(0.02)
            assert frame is not None and not frame.complete
            assert levels and 0 not in levels, levels  # drawn from coarser meshes
            assert adapter.jobs > 0  # level-0 meshes are waiting on the gate
            # Frames were drawn while a mesh was held at the gate: no frame waits for one
            # (a frame that did would stall until the gate's 30 s timeout and then draw it).
            assert frames_while_blocked > 0 and blocked[0] > 0
            gate.set()
            frame = ctl.settle(timeout=60)["cells"]
            assert frame.complete
            assert {lv for _, lv, _, _ in adapter.items} == {0}
    assert threads and threading.get_ident() not in threads


def test_mesh_cache_follows_the_brick_cache() -> None:
    from viewer.render import SceneRenderer
    from viewer.render._streaming import StreamingController

    lab = _labels()
    lay = Labels(_source(lab), name="cells")
    scene = Scene([lay])
    with SceneRenderer(scene, size=(160, 120)) as r:
        # A brick cache of 96 bricks (16³ uint32 = 16 KiB each) cannot keep the level-0
        # bricks of four close-ups of different corners.
        with StreamingController(r, cache_bytes=96 * 16 << 10, max_error_px=1e-6) as ctl:
            adapter = r.adapter(lay)
            for corner in [(20, 20, 20), (60, 60, 60), (20, 60, 20), (60, 20, 60)]:
                c = np.asarray(corner, dtype=float)
                _camera(scene, c + np.array([0.0, 0.0, -25.0]), c, fov=40.0)
                assert ctl.settle(timeout=30)["cells"].complete
                cache = adapter.streamer.cache
                mesh_keys = np.array(sorted(adapter._meshes), dtype=np.int64)
                assert len(mesh_keys)
                # A mesh lives only as long as its brick.
                assert cache.contains_array(mesh_keys).all()
            assert cache.evictions > 0


def test_hidden_ids_picking_and_the_selection_outline() -> None:
    from viewer.render import SceneRenderer
    from viewer.render._streaming import StreamingController
    from viewer.render._vtk import vtk_to_numpy

    lab = _labels()
    size = (240, 240)

    def scene_for() -> tuple[Scene, Labels]:
        lay = Labels(_source(lab), name="cells", smoothing_iterations=0, hidden_ids=[3])
        scene = Scene([lay])
        scene.reset_camera()
        scene.camera.orbit(30, 20)
        return scene, lay

    scene, lay = scene_for()
    with SceneRenderer(scene, size=size, voxel_budget=2**30, show_scale_bar=False) as r:
        ref_z = _depth(r)
    scene, lay = scene_for()
    with SceneRenderer(scene, size=size, show_scale_bar=False) as r:
        with StreamingController(r, cache_bytes=64 << 20, max_error_px=1e-6) as ctl:
            ctl.settle(timeout=60)
            z = _depth(r)
            # Hidden like VtkLabels hides: only the ball is drawn.
            assert (ref_z < 1).mean() > 0.02
            assert np.mean((ref_z < 1) != (z < 1)) < 0.01
            # Picking names the object under the pixel (the ball's centre, analytically).
            col, row = r.project([BALL[0]])[0]
            hit = r.pick(col, row)
            assert hit.layer == "cells" and hit.label == 70000
            # The outline of a selected object holds exactly its triangles: as many as
            # the whole-volume marching cubes of the ball has.
            scene.selection.update({"layer": "cells", "label_ids": [70000]})
            r.render()
            adapter = r.adapter(lay)
            out = adapter.outline.GetInput()
            ids = vtk_to_numpy(out.GetCellData().GetArray("label"))
            assert set(ids.tolist()) == {70000}
            assert out.GetNumberOfCells() == len(_reference(lab)[70000][1])


def test_an_edit_is_pending_until_its_bricks_new_meshes_are_drawn() -> None:
    """``edits_pending`` (what the headset keeps drawing its brush stamps by): after a
    ball is painted into the label array and announced, it stays True while the touched
    bricks' meshes are held back (a gate in the mesher), and turns False once the new
    meshes are drawn, which then hold the new id where scikit-image's marching cubes of
    the edited array puts it."""
    from viewer.render import SceneRenderer
    from viewer.render._streaming import StreamingController

    lab = _labels()
    lay = Labels(_source(lab), name="cells")
    scene = Scene([lay])
    scene.reset_camera()
    with SceneRenderer(scene, size=(160, 120)) as r:
        with StreamingController(r, cache_bytes=64 << 20, max_error_px=1e-6) as ctl:
            adapter = r.adapter(lay)
            assert ctl.settle(timeout=60)["cells"].complete
            assert not adapter.edits_pending
            gate = threading.Event()
            real = adapter.mesher

            def mesher(pb, *args):
                gate.wait(30)
                return real(pb, *args)

            adapter.mesher = mesher
            zz, yy, xx = np.indices(SHAPE)
            ball = (zz - 10) ** 2 + (yy - 40) ** 2 + (xx - 10) ** 2 <= 6**2
            lab[ball] = 9  # the coarse levels are views of it: edited too
            boxes = [
                [
                    (
                        slice(4 // f, 17 // f + 1),
                        slice(34 // f, 47 // f + 1),
                        slice(4 // f, 17 // f + 1),
                    )
                ]
                for f in (1, 2, 4)
            ]
            lay.notify_edited([9], boxes)
            for _ in range(5):
                ctl.update()
                r.render()
                assert adapter.edits_pending  # the old meshes are drawn meanwhile
                assert all(9 not in ids for _, _, _, ids in adapter.drawn_triangles())
            gate.set()
            assert ctl.settle(timeout=60)["cells"].complete
            r.render()
            assert not adapter.edits_pending
            got = [
                verts[f[ids == 9]].reshape(-1, 3)
                for _, verts, f, ids in adapter.drawn_triangles()
                if (ids == 9).any()
            ]
            assert got
            ref = _reference(np.where(ball, 9, 0).astype(np.uint32))[9][0]
            d, _ = cKDTree(ref).query(np.concatenate(got))
            assert d.max() < 1e-3


def test_an_id_mapping_change_rereads_only_the_bricks_holding_its_ids() -> None:
    """A merge is an id mapping change: no voxel written, no region named. The streamed
    surfaces re-read exactly the resident bricks whose voxels held one of the merged ids
    (found with NumPy on the arrays as they were), and then draw the merged object
    where scikit-image's marching cubes of the merged array puts it."""
    from viewer.render import SceneRenderer
    from viewer.render._streaming import StreamingController

    lab = _labels()
    lab[2:10, 66:76, 2:10] = 5  # a cube apart from the ellipsoid (3) and the ball
    before = [lab.copy(), lab[::2, ::2, ::2].copy(), lab[::4, ::4, ::4].copy()]
    lay = Labels(_source(lab), name="cells", smoothing_iterations=0)
    scene = Scene([lay])
    scene.reset_camera()
    with SceneRenderer(scene, size=(160, 120)) as r:
        with StreamingController(r, cache_bytes=64 << 20, max_error_px=1e-6) as ctl:
            adapter = r.adapter(lay)
            assert ctl.settle(timeout=60)["cells"].complete
            streamer = adapter.streamer
            resident = list(streamer.cache)
            expect = set()
            for k in resident:
                level, reg = streamer.region(k)
                if np.isin(before[level][reg[-3:]], [5, 70000]).any():
                    expect.add(k)
            assert 0 < len(expect) < len(resident)
            read: list[int] = []
            real = streamer._load

            def load(key: int):  # type: ignore[no-untyped-def]
                read.append(key)
                return real(key)

            streamer._load = load
            lab[lab == 5] = 70000  # what the mapping shows now (coarse levels are views)
            lay.notify_edited([5, 70000], remapped=True)
            assert ctl.settle(timeout=60)["cells"].complete
            r.render()
            assert not adapter.edits_pending
            assert set(read) == expect and len(read) == len(expect)
            drawn = adapter.drawn_triangles()
            assert all(5 not in ids for _, _, _, ids in drawn)
            got = np.concatenate(
                [verts[f[ids == 70000]].reshape(-1, 3) for _, verts, f, ids in drawn]
            )
            ref = _reference(lab)[70000][0]
            d, _ = cKDTree(ref).query(got)
            assert d.max() < 1e-3
            # the cube's place is drawn: some of the merged object's vertices lie there
            assert ((got[:, 2] < 12) & (got[:, 1] > 64)).any()
