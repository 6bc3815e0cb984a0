"""Streaming on real data: the FIB-SEM medulla (external test data), converted with the CLI.

The reference for the voxels is the PNG stack itself (read with imageio), and for the
picture a whole-level render of the same store; the remote case goes through the
loopback HTTP server with 100 ms per request that the other remote tests use.
"""

from __future__ import annotations

import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from analysis.io import open_volume
from tests.viewer.streaming._support import slow_http_server
from vrscope.cli import main

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


@pytest.fixture(scope="module")
def medulla(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    folder = testdata / "fibsem-medulla" / "grayscale_maps"
    stack = np.stack([iio.imread(f) for f in sorted(folder.glob("iso.*.png"))])
    out = tmp_path_factory.mktemp("medulla") / "medulla.zarr"
    argv = ["convert", str(folder), str(out), "--voxel-size", "10", "10", "10", "--unit"]
    argv += ["nanometer", "--chunks", "32", "32", "32", "--no-progress"]
    assert main(argv) == 0
    return out, stack


def test_streamed_bricks_over_http_are_the_png_voxels(medulla: tuple[Path, np.ndarray]) -> None:
    from viewer.scene import Camera
    from viewer.streaming import View, VolumeStreamer

    path, stack = medulla
    with slow_http_server(path.parent, latency_s=0.1) as (url, info):
        src = open_volume(f"{url}/{path.name}")
        assert src.levels[0].shape == stack.shape == (250, 250, 250)
        # A close view of one corner: level 0 there, coarser levels elsewhere.
        cam = Camera(position=(-0.6, 0.4, 0.4), focal_point=(0.3, 0.4, 0.4))
        view = View.from_camera(cam, (640, 480))
        with VolumeStreamer(src, cache_bytes=256 << 20) as st:
            frame = st.settle(view, timeout=120)
            assert frame.complete and 0 in frame.levels.tolist()
            assert info["max_concurrent"] > 8  # chunk requests overlapped their latency
            fine = [k for k, lv in zip(frame.keys, frame.levels, strict=True) if lv == 0]
            assert len(fine) > 10
            for key in fine:
                level, reg = st.region(int(key))
                brick = st.cache.peek(int(key))
                assert brick is not None
                np.testing.assert_array_equal(brick, stack[reg])


@pytest.mark.render
def test_streamed_render_of_the_medulla_matches_the_png_stack_as_one_volume(
    medulla: tuple[Path, np.ndarray],
) -> None:
    """Level 0 everywhere (a tiny screen-space error), in 32^3 bricks from the store,
    against the PNG stack drawn as one volume with the same voxel size and contrast."""
    from analysis.volume import ArrayVolumeSource
    from viewer.render import SceneRenderer
    from viewer.render._streaming import StreamingController
    from viewer.scene import Image, Scene

    path, stack = medulla

    def scene_of(data: object) -> tuple[Scene, Image]:
        lay = Image(data, contrast_limits=(0, 255), invert=True)
        scene = Scene([lay])
        scene.reset_camera()
        scene.camera.orbit(30, 20)
        return scene, lay

    size = (240, 200)
    ref_scene, _ = scene_of(ArrayVolumeSource(stack, scale_um=(0.01, 0.01, 0.01)))
    with SceneRenderer(ref_scene, size=size, show_scale_bar=False, show_axes=False) as r:
        ref = r.screenshot().astype(int)
    scene, lay = scene_of(open_volume(path))
    with SceneRenderer(scene, size=size, show_scale_bar=False, show_axes=False) as r:
        with StreamingController(r, cache_bytes=256 << 20, max_error_px=1e-6, brick_size=32) as ctl:
            frame = ctl.settle(timeout=120)[lay.name]
            img = r.screenshot().astype(int)
    assert frame.complete and set(frame.levels.tolist()) == {0}
    assert len(frame) == (250 // 32 + 1) ** 3  # every brick of level 0
    assert ref.std() > 10  # real EM texture, not a blank frame
    d = np.abs(img - ref).max(axis=2)
    # The seam tolerance of the synthetic tests (test_render_streaming.py, test_stream.py).
    assert d.mean() < 1.0 and np.percentile(d, 99) <= 12


@pytest.fixture(scope="module")
def medulla_bodies(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The medulla with its supervoxels mapped to neuron bodies (525 ids), as the
    ``vrscope convert`` example writes it."""
    data = testdata / "fibsem-medulla"
    gt = data / "groundtruth.h5.gz"
    out = tmp_path_factory.mktemp("medulla-bodies") / "medulla.zarr"
    argv = ["convert", str(data / "grayscale_maps"), str(out), "--voxel-size", "10", "10", "10"]
    argv += ["--unit", "nanometer", "--labels-from", f"{gt}:stack", "--labels-lookup"]
    argv += [f"{gt}:transforms", "--labels-name", "bodies", "--no-progress"]
    assert main(argv) == 0
    return out


@pytest.mark.render
def test_medulla_with_body_labels_finishes_streaming(medulla_bodies: Path) -> None:
    """Issue 18 item 6: image + body surfaces streamed as the desktop 3D view does
    (``StreamingController`` with streamed label surfaces, every frame drawn) reach
    0 pending with every leaf drawn by its own mesh, even when the view's meshes
    exceed the mesh cache budget (the medulla's dense bodies make 20-30 MB a brick).
    Before the fix each fresh mesh was evicted before it was drawn and meshed again,
    forever ("51 pending · 4 loading")."""
    from analysis.io import open_labels
    from viewer.render import SceneRenderer
    from viewer.render._streaming import StreamingController
    from viewer.scene import Image, Labels, Scene

    scene = Scene()
    scene.add(Image(open_volume(medulla_bodies), name="em", opacity=0.35))
    scene.add(Labels(open_labels(medulla_bodies, "bodies"), name="bodies"))
    scene.reset_camera()
    budget = 16 << 20
    with (
        SceneRenderer(scene, size=(240, 200)) as r,
        StreamingController(r, cache_bytes=256 << 20, mesh_cache_bytes=budget) as ctl,
    ):
        surfaces = ctl.adapters["bodies"]
        for _ in range(120):
            frames = ctl.update()
            r.render()
            if all(f.complete for f in frames.values()):
                break
            surfaces.wait(0.25)
        bodies = frames["bodies"]
        # What the status bar sums: nothing pending, full detail (a coarse mesh started
        # before the fine ones arrived may still be finishing: it is no longer wanted).
        assert bodies.complete and bodies.stats.pending == 0
        assert frames["em"].complete and frames["em"].stats.pending == 0
        sel = bodies.selection
        # Every leaf is drawn by a mesh of its own level (no coarse stand-in left) ...
        assert sorted(lv for _, lv, _, _ in surfaces.items) == sorted(sel.leaf_levels.tolist())
        assert len(sel.leaves) >= 8  # several bricks: the meshes together exceed the budget
        assert surfaces._mesh_bytes > budget
        # ... and no brick was meshed over and over (each at most once more for a
        # neighbour that arrived after it was built).
        assert surfaces.built <= 2 * len(sel.nodes)
