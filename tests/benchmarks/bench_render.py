"""Frame time: 256^3 volume + 300 label surfaces + 1,000 tracks, offscreen, vs pyvista.

Script benchmark (``python tests/benchmarks/bench_render.py [--frames N] [--eye-frames N]``).
The same scene is drawn at 800x600 (a desktop view) and at 2064x2208 (one eye of a
headset), by our ``SceneRenderer`` at each volume quality preset (``still``: the
default, ``interactive``: while the camera moves, ``fine``: the former default and
the quality reference) and by pyvista's ``Plotter`` (the reference library) with the
same volume, the same transfer functions, the same surfaces and lines and the same
orbiting camera, left at pyvista's own sampling defaults (one sample per voxel,
nearest-neighbour interpolation, 4x MSAA). Frames are interleaved (each camera
position is drawn by every renderer in turn) so a changing machine load hits all
alike. Prints medians, ours / pyvista ratios, and each image's error against the
``fine`` render of the same view (mean absolute grey difference and PSNR; for the
volume alone as well, where pyvista's picture is comparable pixel for pixel).
Mesh building is compared with bare scikit-image marching cubes per object (ours
adds smoothing and decimation).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import numpy as np
from scipy import ndimage


def make_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    coarse = ndimage.gaussian_filter(rng.random((64, 64, 64)), 2)
    vol = ndimage.zoom(coarse, 4, order=1)
    vol = ((vol - vol.min()) / np.ptp(vol) * 255).astype(np.uint8)
    lab = np.zeros((256, 256, 256), np.int32)
    centres = rng.uniform(12, 244, (300, 3))
    radii = rng.uniform(3, 7, 300)
    for i, (c, r) in enumerate(zip(centres, radii, strict=True), start=1):
        lo = np.maximum(np.floor(c - r).astype(int), 0)
        hi = np.minimum(np.ceil(c + r).astype(int) + 1, 256)
        zz, yy, xx = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        ball = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= r * r
        sub = lab[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        sub[ball] = i
    n_tracks, n_t = 1000, 20
    start = rng.uniform(0, 256, (n_tracks, 3))
    steps = rng.normal(0, 2.0, (n_tracks, n_t, 3))
    pos = start[:, None, :] + np.cumsum(steps, axis=1)
    ids = np.arange(n_tracks * n_t)
    t = np.tile(np.arange(n_t), n_tracks)
    edges = np.stack(
        [ids.reshape(n_tracks, n_t)[:, :-1].ravel(), ids.reshape(n_tracks, n_t)[:, 1:].ravel()],
        axis=1,
    )
    tracks = {"ids": ids, "t": t, "zyx": pos.reshape(-1, 3), "edges": edges}
    return vol, lab, tracks


SAVE = ""  # --save-images DIR


def configs() -> dict[str, str]:
    """Our renderer configurations: the quality presets.

    XR's adaptive quality at its largest step (``coarsen_quality(still, 4)``) is the
    ``interactive`` preset; its smaller steps cast rays between 1.2 and 2 px apart.
    """
    return {q: q for q in ("still", "interactive", "fine")}


def _finish(window) -> None:
    window.GetRGBACharPixelData(0, 0, 1, 1, 0)  # wait for the frame (glFinish-like)


def build_ours(vol, lab, tracks, size, cfg, with_scene=True):
    """Our renderers (one per configuration) over one scene, overlays off like pyvista's."""
    from viewer.render import SceneRenderer
    from viewer.scene import Image, Labels, Scene, TrackData, Tracks

    layers = [Image(vol, name="volume", contrast_limits=(0, 255))]
    if with_scene:
        td = TrackData.from_arrays(tracks["ids"], tracks["t"], tracks["zyx"], tracks["edges"])
        layers += [
            Labels(lab, name="labels", smoothing_iterations=10, triangle_budget=200_000),
            Tracks(td, name="tracks", tail_length=20),
        ]
    scene = Scene(layers)
    scene.current_time = 19
    scene.reset_camera()
    renderers = {
        name: SceneRenderer(scene, size=size, quality=q, show_scale_bar=False, show_axes=False)
        for name, q in cfg.items()
    }
    return scene, renderers


def build_pyvista(vol, adapter, size, lab_pd=None, track_pd=None):
    """pyvista Plotter with our volume's transfer functions; its own sampling defaults."""
    import pyvista as pv

    grid = pv.ImageData(dimensions=vol.shape[::-1])
    grid.point_data["values"] = vol.ravel()
    pl = pv.Plotter(off_screen=True, window_size=list(size))
    pl.set_background("black")
    actor = pl.add_volume(
        grid, scalars="values", mapper="gpu", cmap="gray", clim=(0, 255), show_scalar_bar=False
    )
    prop = actor.GetProperty()
    prop.SetColor(adapter.property.GetRGBTransferFunction())
    prop.SetScalarOpacity(adapter.property.GetScalarOpacity())
    prop.SetScalarOpacityUnitDistance(adapter.property.GetScalarOpacityUnitDistance())
    if lab_pd is not None:
        pl.add_mesh(pv.wrap(lab_pd), rgb=True, scalars="colors")
    if track_pd is not None:
        pl.add_mesh(pv.wrap(track_pd), rgb=True, scalars="colors")
    pl.show(auto_close=False)
    return pl, actor


def copy_camera(src, pl) -> None:
    cam = pl.renderer.GetActiveCamera()
    cam.SetPosition(src.GetPosition())
    cam.SetFocalPoint(src.GetFocalPoint())
    cam.SetViewUp(src.GetViewUp())
    cam.SetViewAngle(src.GetViewAngle())
    pl.renderer.camera_set = True  # else pyvista resets the camera on its next render
    pl.renderer.ResetCameraClippingRange()


def grab_pyvista(pl) -> np.ndarray:
    """Render and read back like ours (pyvista's ``screenshot`` may return a cached image)."""
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkRenderingCore import vtkWindowToImageFilter

    pl.ren_win.Render()
    f = vtkWindowToImageFilter()
    f.SetInput(pl.ren_win)
    f.SetInputBufferTypeToRGB()
    f.ReadFrontBufferOff()
    f.ShouldRerenderOff()
    f.Update()
    w, h, _ = f.GetOutput().GetDimensions()
    arr = vtk_to_numpy(f.GetOutput().GetPointData().GetScalars()).reshape(h, w, 3)
    return np.ascontiguousarray(arr[::-1])


def error(img: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """Mean absolute grey difference (0-255) and PSNR (dB) of RGB images."""
    d = img.astype(np.float64) - ref.astype(np.float64)
    mse = float(np.mean(d**2))
    return float(np.mean(np.abs(d))), 10 * np.log10(255.0**2 / max(mse, 1e-12))


def bench_frames(scene, renderers, pl, frames):
    """Median frame time per renderer over ``frames`` orbiting camera positions (s)."""
    times: dict[str, list[float]] = {k: [] for k in (*renderers, "pyvista")}
    for _ in range(frames):
        scene.camera.orbit(azimuth=360 / frames)
        for q, r in renderers.items():
            t0 = time.perf_counter()
            r.render()
            _finish(r.window)
            times[q].append(time.perf_counter() - t0)
        copy_camera(renderers["still"].renderer.GetActiveCamera(), pl)
        t0 = time.perf_counter()
        pl.render()
        _finish(pl.ren_win)
        times["pyvista"].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def quality_rows(scene, renderers, pl=None, save=None):
    """Error of each render against the ``fine`` render of the same view."""
    scene.camera.orbit(azimuth=30, elevation=20)
    imgs = {q: r.screenshot() for q, r in renderers.items()}
    if pl is not None:
        copy_camera(renderers["still"].renderer.GetActiveCamera(), pl)
        imgs["pyvista"] = grab_pyvista(pl)
    if save:
        import imageio.v3 as iio

        for k, im in imgs.items():
            iio.imwrite(f"{save}_{k.replace(' ', '_')}.png", im)
    return {k: error(im, imgs["fine"]) for k, im in imgs.items() if k != "fine"}


def run_size(vol, lab, tracks, size, frames, lab_pd, track_pd):
    cfg = configs()
    tag = f"{size[0]}x{size[1]}"
    scene, ours = build_ours(vol, lab, tracks, size, cfg)
    t0 = time.perf_counter()
    ours["still"].render()
    _finish(ours["still"].window)
    first = time.perf_counter() - t0
    for r in ours.values():
        r.render()
    pl, _ = build_pyvista(vol, ours["still"].adapter("volume"), size, lab_pd, track_pd)
    times = bench_frames(scene, ours, pl, frames)
    err = quality_rows(scene, ours, save=SAVE and f"{SAVE}/scene_{tag}")
    pl.close()
    for r in ours.values():
        r.close()
    # The volume alone: pyvista's picture is then comparable pixel for pixel with ours.
    scene_v, ours_v = build_ours(vol, lab, tracks, size, cfg, with_scene=False)
    for r in ours_v.values():
        r.render()
    pl_v, actor_v = build_pyvista(vol, ours_v["still"].adapter("volume"), size)
    times_v = bench_frames(scene_v, ours_v, pl_v, max(2, frames // 2))
    err_v = quality_rows(scene_v, ours_v, pl_v, save=SAVE and f"{SAVE}/volume_{tag}")
    # Sanity: pyvista made as fine as our reference draws the same picture (same content).
    actor_v.GetMapper().SetSampleDistance(0.5)
    actor_v.GetProperty().SetInterpolationTypeToLinear()
    pl_v.ren_win.SetMultiSamples(0)
    same = error(grab_pyvista(pl_v), ours_v["fine"].screenshot())
    pl_v.close()
    for r in ours_v.values():
        r.close()
    return first, times, err, times_v, err_v, same


def _err(e: dict[str, tuple[float, float]], k: str) -> str:
    if k == "fine":
        return "reference"
    return f"{e[k][0]:.2f} / {e[k][1]:.1f} dB" if k in e else "-"


def report(size, frames, first, times, err, times_v, err_v, same) -> None:
    w, h = size
    print(f"\n{w}x{h}: median frame time over {frames} orbiting frames (volume alone: ", end="")
    print(f"{max(2, frames // 2)}), interleaved; err = mean abs grey difference / PSNR vs 'fine'")
    print(
        f"  {'renderer':<34}{'scene ms':>10}{'/ pyvista':>10}{'err':>18}"
        f"{'volume ms':>11}{'/ pyvista':>10}{'err':>18}"
    )
    for k in times:
        name = f"ours, {k}" if k != "pyvista" else "pyvista Plotter (its defaults)"
        print(
            f"  {name:<34}{times[k] * 1e3:>10.1f}{times[k] / times['pyvista']:>10.2f}"
            f"{_err(err, k):>18}{times_v[k] * 1e3:>11.1f}"
            f"{times_v[k] / times_v['pyvista']:>10.2f}{_err(err_v, k):>18}"
        )
    print(
        f"  same content check: pyvista at 0.5-voxel linear sampling, no MSAA, vs our 'fine': "
        f"{same[0]:.2f} / {same[1]:.1f} dB"
    )
    print(f"  first frame incl. volume upload and meshing: {first:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=8, help="orbiting frames at 800x600")
    ap.add_argument("--eye-frames", type=int, default=3, help="orbiting frames at 2064x2208")
    ap.add_argument("--skip-eye", action="store_true", help="only the 800x600 view")
    ap.add_argument("--save-images", default="", metavar="DIR", help="write the compared images")
    args = ap.parse_args()
    global SAVE
    SAVE = args.save_images
    t0 = time.perf_counter()
    vol, lab, tracks = make_data()
    print(
        f"data: volume {vol.shape}, {lab.max()} labels, {len(tracks['ids'])} track nodes "
        f"({time.perf_counter() - t0:.1f} s); load average {os.getloadavg()[0]:.1f}"
    )

    # Mesh building: ours (marching cubes + Taubin + decimation) vs bare skimage per object.
    from skimage.measure import marching_cubes

    from viewer.render import LabelMeshCache, decimate_to_budget
    from viewer.render._base import polydata
    from viewer.render._labels import VtkLabels

    t0 = time.perf_counter()
    meshes = LabelMeshCache().update(lab, (1, 1, 1), (0, 0, 0), 10)
    decimated = decimate_to_budget(meshes, 200_000)
    t_ours_mesh = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        marching_cubes((lab[sl] == i).astype(np.float32), 0.5)
    t_ref_mesh = time.perf_counter() - t0
    n_tri = sum(len(m.faces) for m in decimated.values())
    print(f"scene: 256^3 uint8 volume + 300 label surfaces ({n_tri} triangles) + 1,000 tracks")
    print(
        f"mesh build, 300 objects: ours {t_ours_mesh:.2f} s, skimage marching cubes only "
        f"{t_ref_mesh:.2f} s, ratio {t_ours_mesh / t_ref_mesh:.2f}"
    )
    # The same surfaces (our merged, coloured meshes) and lines for the reference.
    from viewer.scene import Labels

    labels_adapter = VtkLabels(Labels(lab))
    labels_adapter._decimated = decimated  # type: ignore[attr-defined]
    lab_pd = labels_adapter._merged(sorted(decimated))  # type: ignore[attr-defined]
    xyz = tracks["zyx"][:, ::-1]
    track_pd = polydata(xyz, lines=tracks["edges"], colors=np.tile([1.0, 0.3, 0.3], (len(xyz), 1)))

    sizes = [((800, 600), args.frames)]
    if not args.skip_eye:
        sizes.append(((2064, 2208), args.eye_frames))
    for size, frames in sizes:
        load = os.getloadavg()[0]
        res = run_size(vol, lab, tracks, size, frames, lab_pd, track_pd)
        report(size, frames, *res)
        print(f"  load average {load:.1f} -> {os.getloadavg()[0]:.1f} (2 shared cores)")


if __name__ == "__main__":
    main()
