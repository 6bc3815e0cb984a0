"""Offscreen render tests with numeric checks (EGL / llvmpipe, ~1 s each)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import trimesh
from scipy import ndimage
from skimage.filters import sobel

from analysis.volume import ArrayVolumeSource
from viewer.render import (
    EyeView,
    SceneRenderer,
    VolumeBrick,
    perspective,
)
from viewer.scene import Image, Labels, Scene, TrackData, Tracks

from .conftest import project_independently

pytestmark = pytest.mark.render

SIZE = (200, 200)


def ball(shape: tuple[int, int, int], centre: tuple[float, float, float], r: float) -> np.ndarray:
    zz, yy, xx = np.indices(shape)
    c = centre
    return (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= r * r


def two_balls() -> np.ndarray:
    lab = np.zeros((40, 40, 40), np.int32)
    lab[ball(lab.shape, (20, 12, 10), 5)] = 1
    lab[ball(lab.shape, (20, 28, 30), 5)] = 2
    return lab


def fixed_labels(lab: np.ndarray, keep: int, color: tuple[float, float, float]) -> Labels:
    return Labels(
        np.where(lab == keep, keep, 0).astype(np.int32),
        name=f"obj{keep}",
        color_mode="fixed",
        fixed_color=color,
        smoothing_iterations=0,
    )


def is_red(px: np.ndarray) -> bool:
    r, g, b = (int(c) for c in px)
    return r > 80 and r > 2 * g and r > 2 * b


def is_green(px: np.ndarray) -> bool:
    r, g, b = (int(c) for c in px)
    return g > 80 and g > 2 * r and g > 2 * b


def renderer(scene: Scene, size: tuple[int, int] = SIZE) -> SceneRenderer:
    return SceneRenderer(scene, size=size, show_axes=False, show_scale_bar=False)


def test_blank_and_nonblank() -> None:
    scene = Scene()
    with renderer(scene) as r:
        assert r.screenshot().max() == 0  # nothing to draw: background only
    vol = (ball((32, 32, 32), (16, 16, 16), 10) * 200).astype(np.uint8)
    scene.add(Image(vol))
    scene.reset_camera()
    with renderer(scene) as r:
        img = r.screenshot()
    assert img.shape == (SIZE[1], SIZE[0], 3)
    assert (img.max(axis=2) > 20).mean() > 0.05


def test_object_colour_at_projected_centroid() -> None:
    lab = two_balls()
    scene = Scene([fixed_labels(lab, 1, (1, 0, 0)), fixed_labels(lab, 2, (0, 1, 0))])
    scene.reset_camera()
    scene.camera.orbit(azimuth=25, elevation=15)
    cam = scene.camera
    centroids = np.array(ndimage.center_of_mass(lab > 0, lab, [1, 2]))  # voxel = 1 µm
    px = project_independently(
        cam.position, cam.focal_point, cam.view_up, cam.view_angle, SIZE, centroids
    )
    with renderer(scene) as r:
        img = r.screenshot()
    c1, r1 = np.round(px[0]).astype(int)
    c2, r2 = np.round(px[1]).astype(int)
    assert is_red(img[r1, c1]), img[r1, c1]
    assert is_green(img[r2, c2]), img[r2, c2]
    # And the colours sit there: the red pixels' centre is near the projected centroid.
    red = np.argwhere((img[..., 0] > 80) & (img[..., 0] > 2 * img[..., 1]))
    np.testing.assert_allclose(red.mean(axis=0)[::-1], px[0], atol=3.0)


def test_clipping_plane_removes_far_side() -> None:
    lab = two_balls()
    vol = np.zeros((40, 40, 40), np.uint8)
    vol[ball(vol.shape, (20, 12, 10), 5)] = 255  # a bright blob where object 1 is
    img_layer = Image(vol, colormap="Blues", contrast_limits=(0, 255))
    scene = Scene([img_layer, fixed_labels(lab, 1, (1, 0, 0)), fixed_labels(lab, 2, (0, 1, 0))])
    scene.reset_camera()
    with renderer(scene) as r:
        before = r.screenshot()
        # Keep x >= 20 µm: object 2 (x = 30) stays, object 1 and the blob (x = 10) go.
        scene.add_clipping_plane(origin=(0, 0, 20), normal=(0, 0, 1))
        after = r.screenshot()
    red = (before[..., 0] > 80) & (before[..., 0] > 2 * before[..., 1])
    green = (before[..., 1] > 80) & (before[..., 1] > 2 * before[..., 0])
    assert red.sum() > 50 and green.sum() > 50
    red_after = (after[..., 0] > 80) & (after[..., 0] > 2 * after[..., 1])
    green_after = (after[..., 1] > 80) & (after[..., 1] > 2 * after[..., 0])
    assert red_after.sum() == 0
    assert green_after.sum() > 0.8 * green.sum()
    # The volume is clipped too: nothing left left of the plane's projection.
    cam = scene.camera
    col_plane = project_independently(
        cam.position, cam.focal_point, cam.view_up, cam.view_angle, SIZE, [[20, 20, 20]]
    )[0, 0]
    assert after[:, : int(col_plane) - 2].max() == 0
    assert before[:, : int(col_plane) - 2].max() > 0


def test_red_track_along_projected_path() -> None:
    t = np.arange(6)
    zyx = np.c_[np.full(6, 20.0), 5 + 6 * t, 5 + 5 * t]  # a diagonal walk in one z plane
    data = TrackData.from_arrays(np.arange(6) + 100, t, zyx, [(100 + i, 101 + i) for i in range(5)])
    scene = Scene(
        [
            Tracks(
                data,
                color_mode="fixed",
                fixed_color=(1, 0, 0),
                line_width=3,
                tail_length=10,
                show_heads=False,
                show_divisions=False,
            )
        ]
    )
    scene.current_time = 5
    scene.camera.frame((0, 0, 0), (40, 40, 40), direction=(1, 0, 0), view_up=(0, -1, 0))
    cam = scene.camera
    with renderer(scene) as r:
        img = r.screenshot()
    ends = project_independently(
        cam.position, cam.focal_point, cam.view_up, cam.view_angle, SIZE, zyx[[0, -1]]
    )
    red = (img[..., 0] > 100) & (img[..., 1] < 60) & (img[..., 2] < 60)
    samples = ends[0] + np.linspace(0.05, 0.95, 40)[:, None] * (ends[1] - ends[0])
    near = [
        red[int(round(rw)) - 2 : int(round(rw)) + 3, int(round(c)) - 2 : int(round(c)) + 3].any()
        for c, rw in samples
    ]
    assert np.mean(near) > 0.95
    # No red far from the segment.
    rows, cols = np.nonzero(red)
    u = (ends[1] - ends[0]) / np.linalg.norm(ends[1] - ends[0])
    rel = np.c_[cols, rows] - ends[0]
    d = np.abs(rel[:, 0] * u[1] - rel[:, 1] * u[0])  # distance to the line
    assert d.max() < 4.0


def test_track_time_window_hides_future() -> None:
    t = np.arange(6)
    zyx = np.c_[np.full(6, 20.0), 5 + 6 * t, np.full(6, 20.0)]
    data = TrackData.from_arrays(np.arange(6), t, zyx, [(i, i + 1) for i in range(5)])
    layer = Tracks(
        data,
        color_mode="fixed",
        fixed_color=(1, 0, 0),
        line_width=3,
        tail_length=10,
        show_heads=False,
        show_divisions=False,
    )
    scene = Scene([layer])
    scene.camera.frame((0, 0, 0), (40, 40, 40), direction=(1, 0, 0), view_up=(0, -1, 0))
    with renderer(scene) as r:
        scene.current_time = 2  # only nodes 0..2 drawn: y from 5 to 17 µm
        img = r.screenshot()
        cam = scene.camera
        cut = project_independently(
            cam.position,
            cam.focal_point,
            cam.view_up,
            cam.view_angle,
            SIZE,
            [[20, 17, 20], [20, 5, 20]],
        )
        red_rows = np.nonzero(img[..., 0] > 100)[0]
        assert red_rows.max() <= cut[0, 1] + 3
        assert red_rows.min() >= cut[1, 1] - 3
        scene.current_time = 5
        img2 = r.screenshot()
        assert np.nonzero(img2[..., 0] > 100)[0].max() > cut[0, 1] + 10


def test_stereo_disparity_matches_eye_separation() -> None:
    lab = np.zeros((30, 30, 30), np.int32)
    lab[ball(lab.shape, (15, 15, 15), 4)] = 1
    scene = Scene([fixed_labels(lab, 1, (1, 0, 0))])
    depth, ipd, fov = 60.0, 4.0, 40.0
    w, h = SIZE
    proj = perspective(fov, w / h, 1.0, 500.0)
    centre = np.array([15.0, 15.0, 15.0])
    eye_mid = centre - np.array([depth, 0, 0])  # looking along +z (zyx) at the ball
    views = [
        EyeView(
            tuple(eye_mid + np.array([0, 0, s * ipd / 2])), (1.0, 0.0, 0.0), (0.0, -1.0, 0.0), proj
        )
        for s in (-1, 1)
    ]
    with renderer(scene) as r:
        left, right = r.render_views(views)

    def centroid(img: np.ndarray) -> np.ndarray:
        m = img[..., 0] > 80
        assert m.sum() > 20
        return np.argwhere(m).mean(axis=0)  # (row, col)

    cl, cr = centroid(left), centroid(right)
    # Pinhole: x_ndc = P00 * X / Z; the ball is +ipd/2 right of the left eye.
    expected = proj[0, 0] * ipd / depth * w / 2
    assert cl[1] - cr[1] == pytest.approx(expected, abs=1.0)
    assert cl[0] == pytest.approx(cr[0], abs=0.5)
    assert expected > 5  # the check is not trivially satisfied


def test_pick_label_world_point_and_track_node() -> None:
    lab = two_balls()
    data = TrackData.from_arrays([7, 8], [0, 0], [[20, 30, 10], [20, 5, 35]], np.zeros((0, 2)))
    scene = Scene(
        [Labels(lab, name="cells", smoothing_iterations=0), Tracks(data, name="tr", tail_length=0)]
    )
    scene.reset_camera()
    cam = scene.camera
    px = project_independently(
        cam.position,
        cam.focal_point,
        cam.view_up,
        cam.view_angle,
        SIZE,
        [[20, 28, 30], [20, 30, 10]],
    )
    with renderer(scene) as r:
        r.render()
        hit = r.pick(*px[0])
        node = r.pick(*px[1])
    assert hit.layer == "cells" and hit.label == 2
    assert hit.world_um is not None
    # The hit is on the near surface of ball 2 (radius 5 around z=20).
    assert np.linalg.norm(np.subtract(hit.world_um, (20, 28, 30))) == pytest.approx(5, abs=1.0)
    assert node.node_id == 7 and node.node_layer == "tr"


def test_bricks_match_single_volume() -> None:
    rng = np.random.default_rng(0)
    vol = ndimage.gaussian_filter(rng.random((33, 33, 33)), 3)
    vol = ((vol - vol.min()) / np.ptp(vol) * 255).astype(np.uint8)
    layer = Image(vol, contrast_limits=(0, 255))
    scene = Scene([layer])
    scene.reset_camera()
    scene.camera.orbit(20, 10)
    with renderer(scene) as r:
        whole = r.screenshot().astype(int)
        # Two halves along x that share the boundary plane x = 16 (see RENDERING.md).
        halves = [
            VolumeBrick(0, (), vol[:, :, :17], (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
            VolumeBrick(0, (), vol[:, :, 16:], (0.0, 0.0, 16.0), (1.0, 1.0, 1.0)),
        ]
        r.adapter(layer).set_bricks(halves)  # type: ignore[attr-defined]
        split = r.screenshot().astype(int)
    assert whole.max() > 50
    assert np.abs(whole - split).mean() < 1.0
    assert np.percentile(np.abs(whole - split), 99) <= 12


def test_render_modes_differ_as_expected() -> None:
    vol = np.zeros((32, 32, 32), np.uint8)
    vol[8:24, 8:24, 8:24] = 100
    vol[14:18, 14:18, 14:18] = 250  # a bright core
    layer = Image(vol, contrast_limits=(0, 250), rendering="mip")
    scene = Scene([layer])
    scene.reset_camera()
    with renderer(scene) as r:
        mip = r.screenshot().astype(int)
        layer.rendering = "composite"
        comp = r.screenshot().astype(int)
        layer.invert = True
        inv = r.screenshot().astype(int)
    centre = (SIZE[1] // 2, SIZE[0] // 2)
    # MIP shows the bright core at full value, the shell at 100/250 of it.
    assert mip[centre].max() > 200
    shell = mip[centre[0], centre[1] - 18]
    assert 0.25 < shell.max() / mip[centre].max() < 0.6
    assert not np.array_equal(mip, comp)
    assert not np.array_equal(comp, inv)


def test_medulla_renders_with_structure(testdata: Path) -> None:
    import imageio.v3 as iio

    folder = testdata / "fibsem-medulla" / "grayscale_maps"
    files = sorted(folder.glob("iso.*.png"))[::4][:60]
    stack = np.stack([iio.imread(f)[::4, ::4] for f in files]).astype(np.uint8)
    assert stack.ndim == 3 and stack.shape[0] > 50
    lay = Image(ArrayVolumeSource(stack, scale_um=(0.04, 0.04, 0.04)), invert=True, rendering="mip")
    scene = Scene([lay])
    scene.reset_camera()
    scene.camera.orbit(30, 20)
    flat = Scene(
        [
            Image(
                np.full_like(stack, int(stack.mean())),
                invert=True,
                rendering="mip",
                contrast_limits=(float(stack.min()), float(stack.max())),
            )
        ]
    )
    flat.camera.update(scene.camera.model_dump())
    lay.contrast_limits = (float(stack.min()), float(stack.max()))
    with renderer(scene) as r:
        img = r.screenshot().mean(axis=2)
    with renderer(flat) as r:
        ref = r.screenshot().mean(axis=2)
    inside = ref > 0
    assert inside.mean() > 0.2
    # Real membranes give texture: local edge energy far above a uniform block's.
    e_img = sobel(img / 255.0)[inside].mean()
    e_ref = sobel(ref / 255.0)[inside].mean()
    assert e_img > 5 * e_ref
    assert img[inside].std() > 10


_LEAK_SCRIPT = """
import ctypes, gc, json, sys
import numpy as np, psutil
sys.path.insert(0, {root!r})
from tests.viewer.render.test_render import ball, two_balls
from viewer.render import SceneRenderer
from viewer.scene import Image, Labels, Scene

lab = two_balls()
vol = (ball((32, 32, 32), (16, 16, 16), 10) * 200).astype(np.uint8)
scene = Scene([Image(vol), Labels(lab, smoothing_iterations=0)])
scene.reset_camera()
proc = psutil.Process()
libc = ctypes.CDLL("libc.so.6")
kept = []

def rss_mb():
    gc.collect()
    libc.malloc_trim(0)  # count memory still in use, not memory malloc keeps cached
    return proc.memory_info().rss / 2**20

def cycle(n, close=True):
    for _ in range(n):
        r = SceneRenderer(scene, size=(120, 120))
        r.screenshot()
        if close:
            r.close()
        else:
            kept.append(r)

cycle(5)  # warm-up: driver and VTK singletons settle over the first few
samples = []
for _ in range(5):
    samples.append(rss_mb())
    cycle(6)
samples.append(rss_mb())
closed_slope = float(np.polyfit(np.arange(len(samples)) * 6, samples, 1)[0])
handlers = len(scene.camera.events.all)
start = rss_mb()
cycle(6, close=False)  # the same renderers left open: what a leak looks like
open_per = (rss_mb() - start) / 6
print(json.dumps({{"closed_mb_per_renderer": closed_slope, "open_mb_per_renderer": open_per,
                  "handlers": handlers, "samples": samples}}))
"""


def test_renderer_create_destroy_does_not_leak() -> None:
    # Measured in a fresh interpreter (a test worker's RSS also moves with other tests'
    # threads and heap) as the slope of RSS over 30 closed renderers: single readings
    # move by +-15 MB with malloc's arenas, far more than one renderer costs.
    import json
    import os
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[3])
    proc = subprocess.run(
        [sys.executable, "-c", _LEAK_SCRIPT.format(root=root)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # Unclosed renderers cost ~6-10 MB each here; closed ones well under 0.1 MB.
    # 2 MB per renderer = 12 MB over 6 renderers.
    assert out["closed_mb_per_renderer"] < 2, out
    # The measurement can see a leak: renderers left open grow RSS clearly more.
    assert out["open_mb_per_renderer"] > out["closed_mb_per_renderer"] + 2, out
    # The scene holds no references to closed renderers' handlers.
    assert out["handlers"] == 0


def test_label_meshes_cached_and_exported(tmp_path: Path) -> None:
    lab = two_balls()
    layer = Labels(lab, name="cells", smoothing_iterations=0)
    scene = Scene([layer])
    scene.reset_camera()
    with renderer(scene) as r:
        r.render()
        adapter = r.adapter(layer)
        assert adapter.cache.built == 2  # type: ignore[attr-defined]
        lab2 = lab.copy()
        lab2[lab2 == 2] = 0
        lab2[ball(lab.shape, (20, 28, 30), 7)] = 2  # grow object 2 only
        layer._data = ArrayVolumeSource(lab2)  # swap voxels in place, then say which changed
        layer.notify_edited([2])
        r.render()
        assert adapter.cache.built == 3  # only object 2 was meshed again
        mesh2 = adapter.meshes[2]  # type: ignore[attr-defined]
        # Watertight surface enclosing the object's voxels (marching cubes at 0.5).
        assert mesh2.is_watertight and mesh2.volume > 0
        n_vox = int((lab2 == 2).sum())
        assert mesh2.volume == pytest.approx(n_vox, rel=0.12)
        for suffix in (".glb", ".ply", ".stl"):
            path = adapter.export([1, 2], str(tmp_path / f"objs{suffix}"))  # type: ignore[attr-defined]
            loaded = trimesh.load(path, force="mesh")
            zz, yy, xx = np.nonzero(lab2 > 0)
            lo = np.array([xx.min(), yy.min(), zz.min()]) - 0.5
            hi = np.array([xx.max(), yy.max(), zz.max()]) + 0.5
            np.testing.assert_allclose(loaded.bounds[0], lo, atol=0.6)
            np.testing.assert_allclose(loaded.bounds[1], hi, atol=0.6)
    assert math.isfinite(mesh2.area)


def test_label_volume_mode_colours_by_id() -> None:
    from viewer.render import id_colors

    lab = two_balls()
    layer = Labels(lab, mode="volume")
    scene = Scene([layer])
    scene.reset_camera()
    cam = scene.camera
    centroids = np.array(ndimage.center_of_mass(lab > 0, lab, [1, 2]))
    px = np.round(
        project_independently(
            cam.position, cam.focal_point, cam.view_up, cam.view_angle, SIZE, centroids
        )
    ).astype(int)
    with renderer(scene) as r:
        img = r.screenshot().astype(int)
        layer.hidden_ids = [1]
        hidden = r.screenshot().astype(int)
    # Unshaded label volume: the pixel is the id's colour (id_colors is the documented map).
    for (c, rw), colour in zip(px, id_colors([1, 2]) * 255, strict=True):
        np.testing.assert_allclose(img[rw, c], colour, atol=12)
    assert hidden[px[0][1], px[0][0]].max() == 0
    np.testing.assert_allclose(hidden[px[1][1], px[1][0]], img[px[1][1], px[1][0]], atol=2)


def test_selected_object_is_outlined() -> None:
    lab = two_balls()
    scene = Scene([fixed_labels(lab, 1, (1, 0, 0)), fixed_labels(lab, 2, (0, 1, 0))])
    scene.reset_camera()
    with renderer(scene) as r:
        plain = r.screenshot().astype(int)
        scene.selection.update({"layer": "obj2", "label_ids": [2]})
        chosen = r.screenshot().astype(int)
    white = lambda im: im.min(axis=2) > 200  # noqa: E731 - the outline is white, unlit
    assert white(plain).sum() == 0
    rows, cols = np.nonzero(white(chosen))
    assert len(rows) > 20
    # The outline surrounds object 2 (green), not object 1 (red).
    green = np.argwhere((plain[..., 1] > 80) & (plain[..., 1] > 2 * plain[..., 0]))
    np.testing.assert_allclose([rows.mean(), cols.mean()], green.mean(axis=0), atol=4)
