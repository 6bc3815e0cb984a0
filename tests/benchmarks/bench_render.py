"""Frame time: 256^3 volume + 300 label surfaces + 1,000 tracks, offscreen.

Script benchmark (``python tests/benchmarks/bench_render.py [--size W H] [--frames N]``).
Reference measured in the same run: pyvista's Plotter drawing the same volume
(GPU ray cast), the same merged surfaces and the same track lines. Prints
ours / reference ratios. Mesh building is compared with bare scikit-image
marching cubes per object (ours adds smoothing and decimation).
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


def bench_ours(vol, lab, tracks, size, frames):
    from viewer.render import SceneRenderer
    from viewer.scene import Image, Labels, Scene, TrackData, Tracks

    td = TrackData.from_arrays(tracks["ids"], tracks["t"], tracks["zyx"], tracks["edges"])
    scene = Scene(
        [
            Image(vol, contrast_limits=(0, 255)),
            Labels(lab, smoothing_iterations=10, triangle_budget=200_000),
            Tracks(td, tail_length=20),
        ]
    )
    scene.current_time = 19
    scene.reset_camera()
    r = SceneRenderer(scene, size=size)
    t0 = time.perf_counter()
    r.render()
    first = time.perf_counter() - t0
    times = []
    for _ in range(frames):
        scene.camera.orbit(azimuth=360 / frames)
        t0 = time.perf_counter()
        r.render()
        r.window.GetRGBACharPixelData(0, 0, 1, 1, 0)  # wait for the frame (glFinish-like)
        times.append(time.perf_counter() - t0)
    adapter = r.adapter(scene.layers[1])
    n_tri = sum(len(m.faces) for m in adapter._decimated.values())  # type: ignore[attr-defined]
    r.close()
    return first, float(np.median(times)), n_tri, adapter


def bench_pyvista(vol, lab_mesh_pd, track_pd, size, frames):
    import pyvista as pv

    grid = pv.ImageData(dimensions=vol.shape[::-1])
    grid.point_data["values"] = vol.ravel()
    pl = pv.Plotter(off_screen=True, window_size=list(size))
    pl.add_volume(
        grid, scalars="values", mapper="gpu", cmap="gray", clim=(0, 255), show_scalar_bar=False
    )
    pl.add_mesh(pv.wrap(lab_mesh_pd), rgb=True, scalars="colors")
    pl.add_mesh(pv.wrap(track_pd), rgb=True, scalars="colors")
    pl.camera_position = "xy"
    pl.show(auto_close=False)
    times = []
    for _ in range(frames):
        pl.camera.azimuth += 360 / frames
        t0 = time.perf_counter()
        pl.render()
        pl.ren_win.GetRGBACharPixelData(0, 0, 1, 1, 0)
        times.append(time.perf_counter() - t0)
    pl.close()
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, nargs=2, default=(800, 600))
    ap.add_argument("--frames", type=int, default=10)
    args = ap.parse_args()
    size = tuple(args.size)
    t0 = time.perf_counter()
    vol, lab, tracks = make_data()
    print(
        f"data: volume {vol.shape}, {lab.max()} labels, {len(tracks['ids'])} track nodes "
        f"({time.perf_counter() - t0:.1f} s)"
    )

    # Mesh building: ours (marching cubes + Taubin + decimation) vs bare skimage per object.
    from skimage.measure import marching_cubes

    from viewer.render import LabelMeshCache, decimate_to_budget

    t0 = time.perf_counter()
    meshes = LabelMeshCache().update(lab, (1, 1, 1), (0, 0, 0), 10)
    decimate_to_budget(meshes, 200_000)
    t_ours_mesh = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        marching_cubes((lab[sl] == i).astype(np.float32), 0.5)
    t_ref_mesh = time.perf_counter() - t0

    first, frame, n_tri, adapter = bench_ours(vol, lab, tracks, size, args.frames)
    from viewer.render._base import polydata

    lab_pd = adapter._merged(sorted(adapter._decimated))  # same surfaces for the reference
    xyz = tracks["zyx"][:, ::-1]
    track_pd = polydata(xyz, lines=tracks["edges"], colors=np.tile([1.0, 0.3, 0.3], (len(xyz), 1)))
    ref = bench_pyvista(vol, lab_pd, track_pd, size, args.frames)

    print(f"\nscene: 256^3 uint8 volume + 300 label surfaces ({n_tri} triangles) + 1,000 tracks")
    print(f"{'measure':<44}{'ours':>10}{'reference':>12}{'ratio':>8}")
    print(
        f"{'mesh build, 300 objects (s)':<44}{t_ours_mesh:>10.2f}{t_ref_mesh:>12.2f}"
        f"{t_ours_mesh / t_ref_mesh:>8.2f}   (ref: skimage marching cubes only)"
    )
    print(f"{'first frame incl. upload + meshing (s)':<44}{first:>10.2f}{'':>12}{'':>8}")
    print(
        f"{f'frame {size[0]}x{size[1]}, median of {args.frames} (ms)':<44}{frame * 1e3:>10.1f}"
        f"{ref * 1e3:>12.1f}{frame / ref:>8.2f}   (ref: pyvista Plotter, same props)"
    )


if __name__ == "__main__":
    main()
