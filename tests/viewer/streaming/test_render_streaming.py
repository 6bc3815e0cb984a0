"""Streamed volumes in VTK's frame (one ray-casting pass over the bricks) against a
single full-res render: bricks of one and of mixed levels, clipping, arrival order.

Seam quality is measured, not assumed: the error next to brick borders is
compared with the error elsewhere, and with the naive way (bricks drawn at their
own extent without borders or cropping, see RENDERING.md).
"""

from __future__ import annotations

import os

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import numpy as np
import pytest
from scipy import ndimage
from skimage.transform import downscale_local_mean

from analysis.volume import FunctionVolumeSource
from viewer.scene import Image, Scene

pytestmark = pytest.mark.render

SIZE = (320, 320)


def _volume() -> np.ndarray:
    rng = np.random.default_rng(0)
    vol = ndimage.gaussian_filter(rng.random((64, 64, 64)), 3)
    return ((vol - vol.min()) / np.ptp(vol) * 255).astype(np.uint8)


def _pyramid_source(vol: np.ndarray, chunk: int) -> FunctionVolumeSource:
    levels = [vol, downscale_local_mean(vol, (2, 2, 2)).round().astype(np.uint8)]
    return FunctionVolumeSource(
        vol.shape, lambda lv, reg: levels[lv][reg], chunks=(chunk,) * 3, n_levels=2
    )


def _scene(data: object) -> tuple[Scene, Image]:
    lay = Image(data, contrast_limits=(0, 255))
    scene = Scene([lay])
    scene.reset_camera()
    scene.camera.orbit(25, 15)
    return scene, lay


def _single(vol: np.ndarray, clip: dict | None = None) -> np.ndarray:
    from viewer.render import SceneRenderer

    scene, _ = _scene(vol)
    if clip:
        scene.add_clipping_plane(**clip)
    with SceneRenderer(scene, size=SIZE, show_scale_bar=False, show_axes=False) as r:
        return r.screenshot().astype(int)


def _streamed(src: object, max_error_px: float, clip: dict | None = None):
    from viewer.render import SceneRenderer
    from viewer.render._streaming import StreamingController

    scene, lay = _scene(src)
    if clip:
        scene.add_clipping_plane(**clip)
    with SceneRenderer(scene, size=SIZE, show_scale_bar=False, show_axes=False) as r:
        with StreamingController(
            r, cache_bytes=64 << 20, max_error_px=max_error_px, brick_size=16
        ) as ctl:
            frames = ctl.settle(timeout=60)
            img = r.screenshot().astype(int)
            frame = frames[lay.name]
            border_px = _border_pixels(r, frame)
    return img, frame, border_px


def _border_pixels(r: object, frame: object) -> np.ndarray:
    """Mask of pixels within 2 px of a projected interior brick face."""
    mask = np.zeros(SIZE[::-1], bool)
    lo, hi = frame.crop_lo, frame.crop_hi
    for a in range(3):
        for face in np.unique(np.r_[lo[:, a], hi[:, a]]):
            if face <= 0.0 or face >= 63.0:
                continue  # outer faces of the volume are not seams
            t = np.linspace(0, 63, 200)
            u, w = np.meshgrid(t, t)
            pts = np.zeros((u.size, 3))
            pts[:, a] = face
            others = [b for b in range(3) if b != a]
            pts[:, others[0]], pts[:, others[1]] = u.ravel(), w.ravel()
            px = np.round(r.project(pts)).astype(int)
            ok = (px[:, 0] >= 0) & (px[:, 0] < SIZE[0]) & (px[:, 1] >= 0) & (px[:, 1] < SIZE[1])
            mask[px[ok, 1], px[ok, 0]] = True
    return ndimage.binary_dilation(mask, iterations=2)


def test_one_level_of_bricks_matches_a_single_volume() -> None:
    vol = _volume()
    ref = _single(vol)
    img, frame, border = _streamed(_pyramid_source(vol, 16), max_error_px=1e-6)
    assert frame.complete and set(frame.levels.tolist()) == {0} and len(frame) == 64
    d = np.abs(img - ref).max(axis=2)
    assert ref.max() > 50
    # Same thresholds as the renderer's own brick test (tests/viewer/render).
    assert d.mean() < 1.0
    assert np.percentile(d, 99) <= 12
    # Seams: pixels along brick borders are not worse than the rest by more than 2 grey levels.
    inside = ndimage.binary_erosion(ref.max(axis=2) > 0, iterations=4)
    assert d[border & inside].mean() < d[~border & inside].mean() + 2.0


def test_mixed_levels_have_no_seam_at_the_transition() -> None:
    vol = _volume()
    ref = _single(vol)
    # An error bound between the two levels' projected voxels: near bricks fine, far coarse.
    src = _pyramid_source(vol, 16)
    img, frame, border = _streamed(src, max_error_px=6.0)
    levels = set(frame.levels.tolist())
    assert levels == {0, 1}, levels
    d = np.abs(img - ref).max(axis=2)
    inside = ndimage.binary_erosion(ref.max(axis=2) > 0, iterations=4)
    # The coarse level differs from full resolution by itself; the transition must not add
    # a seam on top of that: border pixels no worse than the interior + 2 grey levels.
    assert d[inside].mean() < 6.0
    assert d[border & inside].mean() < d[~border & inside].mean() + 2.0
    # Compare with the naive way: no borders, no cropping (RENDERING.md's dark seams).
    from viewer.render import SceneRenderer, VolumeBrick

    scene, lay = _scene(vol)
    with SceneRenderer(scene, size=SIZE, show_scale_bar=False, show_axes=False) as r:
        bricks = []
        g = frame.selection
        for lv, ijk in zip(g.leaf_levels, g.leaf_ijk, strict=True):
            lev = src.levels[lv]
            start = ijk * np.asarray(lev.chunks)
            stop = np.minimum(start + lev.chunks, lev.shape)
            reg = tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))
            origin = np.asarray(lev.translation) + start * np.asarray(lev.scale)
            bricks.append(
                VolumeBrick(int(lv), reg, src.read(int(lv), reg), tuple(origin), lev.scale_um)
            )
        r.adapter(lay).set_bricks(bricks)
        naive = r.screenshot().astype(int)
    dn = np.abs(naive - ref).max(axis=2)
    assert d[border & inside].mean() < dn[border & inside].mean()


def test_clipping_plane_culls_bricks_and_clips_like_a_single_volume() -> None:
    vol = _volume()
    clip = {"origin": (32.0, 32.0, 40.0), "normal": (0.0, 0.0, 1.0)}
    ref = _single(vol, clip)
    img, frame, _ = _streamed(_pyramid_source(vol, 16), max_error_px=1e-6, clip=clip)
    # Only bricks reaching x >= 40 are drawn (x bricks 2 and 3 of 4).
    assert len(frame) == 32
    assert np.all(frame.crop_hi[:, 2] > 40.0)
    d = np.abs(img - ref).max(axis=2)
    assert d.mean() < 1.0
    assert np.percentile(d, 99) <= 12


def test_label_surfaces_are_meshed_from_the_level_the_view_needs() -> None:
    from analysis.volume import ArrayVolumeSource
    from viewer.render import SceneRenderer
    from viewer.render._streaming import StreamingController
    from viewer.scene import Labels

    from ._support import pinhole

    zz, yy, xx = np.indices((64, 64, 64))
    lab = ((zz - 32) ** 2 + (yy - 32) ** 2 + (xx - 32) ** 2 <= 20**2).astype(np.uint16)
    pyramid = [lab, lab[::2, ::2, ::2], lab[::4, ::4, ::4]]
    src = ArrayVolumeSource(pyramid, chunks=(16, 16, 16))
    size = (320, 240)

    def expected(eye: np.ndarray, focal: np.ndarray, fov: float) -> int:
        # Independent: the coarsest level whose voxel, at the volume's point nearest the
        # eye, spans <= 1 px by the pinhole definition.
        lo, hi = np.zeros(3) - 0.5, np.full(3, 63.5)
        near = np.clip(eye, lo, hi)
        fwd = (focal - eye) / np.linalg.norm(focal - eye)
        best = 0
        for lv, lev in enumerate(src.levels):
            # a voxel-long segment at `near`, perpendicular to the view direction
            side = np.cross(fwd, [0.0, 1.0, 0.0])
            side /= np.linalg.norm(side)
            p = np.stack([near, near + side * lev.scale[0]])
            px, _ = pinhole(eye, fwd, (0.0, -1.0, 0.0), fov, size, p)
            if np.linalg.norm(px[1] - px[0]) <= 1.0:
                best = lv
        return best

    seen = set()
    for distance, fov in [(1300.0, 30.0), (2500.0, 30.0), (120.0, 30.0)]:
        lay = Labels(src, name="ball")
        scene = Scene([lay])
        focal = np.array([32.0, 32.0, 32.0])
        eye = focal + np.array([0.0, 0.0, -distance])
        scene.camera.update({"position": tuple(eye), "focal_point": tuple(focal)})
        scene.camera.update({"view_up": (0.0, -1.0, 0.0), "view_angle": fov})
        with SceneRenderer(scene, size=size, voxel_budget=2**30) as r:
            with StreamingController(
                r, cache_bytes=16 << 20, surface_levels=True, stream_surfaces=False
            ) as ctl:
                ctl.settle(timeout=30)
                adapter = r.adapter(lay)
                want = expected(eye, focal, fov)
                assert adapter.level_override == want, (distance, want)
                r.render()
                assert adapter._level == want  # the meshes come from that level
                assert adapter.meshes  # and the ball was meshed
                seen.add(want)
    assert seen == {0, 1, 2}


def test_bricks_shown_as_they_arrive_patch_their_borders_like_a_fresh_build() -> None:
    """Bricks drawn before their neighbours get the neighbours' voxels into their atlas
    border when those arrive (a border re-upload); the picture then equals one where
    every brick arrived at once. A rough volume, so a stale border would show."""
    from viewer.render import SceneRenderer
    from viewer.render._streaming import StreamingController

    rng = np.random.default_rng(5)
    vol = ndimage.gaussian_filter(rng.random((64, 64, 64)), 0.7)
    vol = ((vol - vol.min()) / np.ptp(vol) * 255).astype(np.uint8)
    ref, _, _ = _streamed(_pyramid_source(vol, 16), max_error_px=1e-6)  # all at once
    scene, lay = _scene(_pyramid_source(vol, 16))
    with SceneRenderer(scene, size=SIZE, show_scale_bar=False, show_axes=False) as r:
        with StreamingController(
            r, cache_bytes=64 << 20, max_error_px=1e-6, n_workers=1, brick_size=16
        ) as ctl:
            ad = ctl.adapters[lay.name]
            st = ad.streamer
            st.scheduler.pause()
            first = ctl.update()[lay.name]  # nothing resident: requests only
            wanted = first.selection.leaves + st.key_base()
            # Let the level-0 bricks in a few at a time, drawing after each group, so
            # most bricks are uploaded before some of their neighbours exist.
            borders = 0
            for i in range(0, len(wanted), 7):
                st.scheduler.submit(wanted[i : i + 7])
                st.scheduler.pause(False)
                assert st.scheduler.wait_idle(30)
                st.scheduler.pause()
                # immediate: this frame's draw list (not the selection worker's last one).
                frame = ctl.update(immediate=True)[lay.name]
                r.render()
                assert ctl.host is not None and ctl.host.errors == 0
                borders += ad.volume.last.border_uploads
            assert frame.complete and set(frame.levels.tolist()) == {0}
            for _ in range(20):  # the last borders (at most 64 slot writes a frame)
                if not ctl.host.behind:
                    break
                ctl.update()
                r.render()
                borders += ad.volume.last.border_uploads
            assert not ctl.host.behind and borders > 20
            img = r.screenshot().astype(int)
    d = np.abs(img - ref).max(axis=2)
    assert ref.max() > 50
    assert d.max() <= 2, (d.mean(), d.max())


def test_bricks_seen_face_on_leave_no_lines_at_their_faces() -> None:
    """A constant volume seen face-on in perspective (faces edge-on, as a headset eye
    sees a volume on the table): every ray has the same samples as in one volume, so
    16³ bricks render like one volume. VTK's crop test would otherwise overlap adjacent
    bricks by most of a voxel (lines up to ~30 grey levels along the faces)."""
    from viewer.render import SceneRenderer
    from viewer.render._streaming import StreamingController
    from viewer.scene import Camera

    const = np.full((64, 64, 64), 128, np.uint8)

    def render(data: object, stream: bool) -> np.ndarray:
        lay = Image(data, contrast_limits=(0, 255))
        scene = Scene([lay])
        # Eye off-centre, looking straight down -z: the x and y faces are edge-on.
        cam = Camera(position=(150.0, 20.0, 25.0), focal_point=(0.0, 20.0, 25.0), view_angle=70.0)
        scene.camera.update(cam.model_dump())
        with SceneRenderer(scene, size=SIZE, show_scale_bar=False, show_axes=False) as r:
            if not stream:
                return r.screenshot().astype(int)
            with StreamingController(
                r, cache_bytes=64 << 20, max_error_px=1e-6, brick_size=16
            ) as ctl:
                frame = ctl.settle(timeout=60)[lay.name]
                assert set(frame.levels.tolist()) == {0} and len(frame) > 30
                return r.screenshot().astype(int)

    ref = render(const, stream=False)
    img = render(_pyramid_source(const, 16), stream=True)
    inside = ndimage.binary_erosion(ref.max(axis=2) > 8, iterations=4)  # not the silhouette
    assert inside.mean() > 0.2
    d = np.abs(img - ref).max(axis=2)[inside]
    # The per-pixel bound of the brick tests above (their p99 <= 12), here for every
    # pixel: a line along a face is a few pixels, which a percentile would let through.
    assert d.mean() < 1.0 and d.max() <= 12, (d.mean(), d.max())
