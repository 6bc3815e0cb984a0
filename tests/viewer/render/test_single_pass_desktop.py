"""The desktop's single-pass streamed volumes: picking and progressive GPU upload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="module")
def fib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from analysis.io import write_fibsem_sample
    from analysis.synthetic import fibsem_cell

    out = tmp_path_factory.mktemp("fib") / "cell.zarr"
    write_fibsem_sample(fibsem_cell(size=96, seed=3), out)
    return out


def _scene(store: Path) -> Any:
    from viewer.render import build_store_scene, use_coarse_contrast
    from viewer.scene import Image

    scene = build_store_scene(str(store), azimuth=30.0, elevation=20.0)
    for lay in [lay for lay in scene.layers if not isinstance(lay, Image)]:
        scene.layers.remove(lay)
    use_coarse_contrast(scene)
    return scene


def _picks(store: Path, streamed: bool, pixels: list[tuple[int, int]]) -> list[Any]:
    from viewer.render import SceneRenderer, StreamingController

    scene = _scene(store)
    with SceneRenderer(
        scene, size=(160, 120), show_scale_bar=False, show_axes=False, voxel_budget=2**30
    ) as r:
        if not streamed:  # the whole level 0 as one vtkVolume
            r.render()
            return [r.pick(x, y) for x, y in pixels]
        with StreamingController(r, brick_size=16, one_shot=True) as ctl:
            ctl.settle(60)
            r.render()
            assert ctl.host is not None and ctl.host.stats.volume_passes == 1
            return [r.pick(x, y) for x, y in pixels]


def test_picking_a_single_pass_volume_agrees_with_vtk_volume_picker(fib: Path) -> None:
    # The whole level as one vtkVolume is picked by vtkVolumePicker (opacity isovalue
    # 0.1); the single pass has no VTK prop and samples the resident bricks on the CPU.
    pixels = [(x, y) for x in range(8, 160, 16) for y in range(6, 120, 12)]
    from analysis.io import open_volume

    spacing = float(min(open_volume(str(fib)).levels[0].scale_um))
    ref = _picks(fib, False, pixels)
    got = _picks(fib, True, pixels)
    dists = []
    for a, b in zip(ref, got, strict=True):
        assert (a.world_um is None) == (b.world_um is None)
        if a.world_um is None:
            continue
        assert b.layer == a.layer
        dists.append(float(np.linalg.norm(np.subtract(b.world_um, a.world_um))) / spacing)
    # VTK's picker steps through the voxels of the volume, the CPU pick
    # samples trilinearly a quarter voxel apart and interpolates the crossing: most
    # hits agree within a voxel; where a ray grazes a thin feature one of them can see
    # it a couple of voxels earlier.
    d = np.asarray(dists)
    assert len(d) >= 8
    assert np.mean(d <= 1.0) >= 0.75 and d.max() <= 3.0, d


def test_desktop_host_keeps_drawing_until_the_atlas_holds_the_view(fib: Path) -> None:
    from viewer.render import SceneRenderer, StreamingController

    scene = _scene(fib)
    name = scene.layers[0].name
    with (
        SceneRenderer(scene, size=(320, 240)) as r,
        StreamingController(r, brick_size=16) as ctl,
    ):
        host = ctl.host
        assert host is not None
        ctl.render()  # the atlas is sized for this first (coarse, partial) frame
        adapter: Any = ctl.adapters[name]
        first_slots = adapter.volume.atlas.n_slots
        # Every brick of the view in RAM (not settle(): it lets the next frame upload
        # everything); the atlas then takes 64 a frame.
        for _ in range(1200):
            if ctl.update(show=False)[name].complete:
                break
            ctl.streamers[name].wait(0.05)
        behind = []
        for _ in range(100):
            ctl.render()
            behind.append(host.behind)
            if not host.behind:
                break
        leaves = ctl.stats()[name].leaves
        assert host.errors == 0 and not host.behind
        assert host.stats.volume_passes == 1 and host.stats.bricks_drawn == leaves
        # Outgrown: a bigger atlas was made for the full view.
        assert adapter.volume.atlas.n_slots >= leaves
        if leaves > first_slots:
            assert adapter.volume.atlas.n_slots > first_slots
        if leaves > 64:
            assert behind[0]  # more than one frame's uploads: it said so


def test_interactive_quality_casts_fewer_rays(fib: Path) -> None:
    from viewer.render import SceneRenderer, StreamingController

    scene = _scene(fib)
    with (
        SceneRenderer(scene, size=(160, 120), show_scale_bar=False, show_axes=False) as r,
        StreamingController(r, brick_size=16, one_shot=True) as ctl,
    ):
        ctl.settle(60)
        still = r.screenshot().astype(float)
        host = ctl.host
        assert host is not None
        calls: list[tuple[float, float]] = []
        draw = host._raycaster.draw

        def record(*args: Any, **kw: Any) -> Any:
            calls.append((kw["step_factor"], kw["render_scale"]))
            return draw(*args, **kw)

        host._raycaster.draw = record
        r.set_quality("interactive")
        fast = r.screenshot().astype(float)
        r.set_quality("still")
        again = r.screenshot().astype(float)
        # Rays 2 px apart (a quarter of them), the same samples along each.
        assert calls == [(1.0, 0.5), (1.0, 1.0)]
        assert np.array_equal(again, still)
        # The same picture at half the resolution, upsampled.
        assert 0 < np.abs(fast - still).mean() < 3.0


def test_a_second_eye_draws_the_same_bricks_without_uploading_again(fib: Path) -> None:
    """Both XR eyes (or any redraw without a streaming step) draw one frame's bricks:
    the atlas is filled once per streaming frame, not once per eye."""
    from viewer.render import SceneRenderer, StreamingController

    scene = _scene(fib)
    name = scene.layers[0].name
    with (
        SceneRenderer(scene, size=(160, 120), show_scale_bar=False, show_axes=False) as r,
        StreamingController(r, brick_size=16) as ctl,
    ):
        ctl.settle(60)
        adapter: Any = ctl.adapters[name]
        for _ in range(3):
            ctl.update()
            left = r.screenshot().astype(int)
            uploads = adapter.volume.atlas.uploads
            right = r.screenshot().astype(int)  # same frame, "the other eye"
            assert adapter.volume.atlas.uploads == uploads
            np.testing.assert_array_equal(left, right)
        assert uploads > 0
        # The opaque geometry's depth reached the ray caster by a GPU copy, not a readback
        # (the picture's correctness with depth: test_render_single_pass's intermix test).
        host = ctl.host
        assert host is not None and host.depth_copies_gpu > 0 and host.depth_copies_cpu == 0


def test_layers_added_or_removed_after_the_window_opened_stream(fib: Path) -> None:
    """A layer added to an open window is streamed from the next frame on (never read
    as a whole level); a removed one stops streaming; a label layer switched to volume
    mode is drawn in its own pass."""
    from analysis.volume import ArrayVolumeSource
    from viewer.render import SceneRenderer, StreamingController, VtkRaycastImage, VtkRaycastLabels
    from viewer.scene import Image, Labels

    class Counting(ArrayVolumeSource):
        biggest = 0

        def read(self, level: int, region: Any = None) -> Any:
            out = super().read(level, region)
            Counting.biggest = max(Counting.biggest, int(np.asarray(out).size))
            return out

    zz, yy, xx = np.indices((64, 64, 64))
    ball = ((zz - 32) ** 2 + (yy - 32) ** 2 + (xx - 32) ** 2 < 400).astype(np.uint8) * 200
    lab = (ball > 0).astype(np.uint32) * 5
    scene = _scene(fib)
    with (
        SceneRenderer(scene, size=(160, 120), show_scale_bar=False, show_axes=False) as r,
        StreamingController(r, brick_size=16, one_shot=True) as ctl,
    ):
        ctl.settle(60)
        r.render()
        host = ctl.host
        assert host is not None and host.stats.volume_passes == 1
        before = r.screenshot().astype(int)
        added = Image(Counting(ball), name="ball", contrast_limits=(0, 255), opacity=1.0)
        scene.add(added)
        ctl.settle(60)
        with_ball = r.screenshot().astype(int)
        assert isinstance(r.adapter(added), VtkRaycastImage)
        assert host.stats.volume_passes == 2
        assert Counting.biggest <= 16**3  # bricks only, never the whole level
        assert np.abs(with_ball - before).max() > 50  # the new volume is drawn
        streamer = ctl.adapters["ball"].streamer
        scene.layers.remove(added)
        ctl.settle(60)
        r.render()
        assert "ball" not in ctl.adapters and host.stats.volume_passes == 1
        assert not any(t.is_alive() for t in streamer.scheduler._threads)  # loaders stopped
        np.testing.assert_allclose(r.screenshot().astype(int), before, atol=2)
        labels = Labels(lab, name="cells", mode="surface", level=0)
        scene.add(labels)
        ctl.settle(60)
        assert "cells" not in ctl.adapters  # surfaces of an explicit level: whole level
        labels.mode = "volume"
        ctl.settle(60)
        r.render()
        assert isinstance(r.adapter(labels), VtkRaycastLabels)
        assert host.stats.volume_passes == 2
