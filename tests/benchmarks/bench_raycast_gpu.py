"""Per-eye GPU time of the single-pass ray caster (issue 15), for a lent GPU machine.

Needs only NumPy, moderngl (+ glcontext), psutil and this repository's ``analysis``,
``viewer.streaming`` and ``viewer.raycast``: no VTK, Qt or torch. GPU time comes from GL
timer queries (``ctx.query(time=True)``) around each eye's draw, so CPU work and
uploads are not in it.

(a) a 512³ uint8 volume fully resident (512 bricks of 64³), both eyes, orbiting; then the
    same frames with empty-space skipping;
(b) a procedural 16384 x 16384 x 8192 uint8 volume streamed through ``VolumeStreamer``
    into a 2 GB atlas, both eyes, mid-fly-through (the camera moves every frame; after
    ``--warm`` frames of loading the next ``--frames`` are measured), with empty-space
    skipping.
(c) the FIB-SEM medulla (external test data, 250³ at 10 nm) with its neuron bodies as a
    label volume: two passes per eye (image, then labels with a colour per body from
    the style's table), orbiting. Its voxels travel as one ``.npz`` made here:

    .venv/bin/python tests/benchmarks/bench_raycast_gpu.py --prepare-medulla bench-data/medulla.npz

    and ``--medulla bench-data/medulla.npz`` on the GPU machine (numpy only).

Run here (llvmpipe, proof that it works; tiny sizes):

    .venv/bin/python tests/benchmarks/bench_raycast_gpu.py --quick

On the GPU machine (no network there): make ``bench-data/`` here (git ignores it; the
device call carries it: ``carry: ["bench-data"]``, under 64 MiB) with the wheels from
``pip download --only-binary=:all: --python-version 3.X -d bench-data/wheels numpy moderngl
glcontext psutil`` and the medulla's npz (below), then run there:

    python3 -m venv /tmp/v && /tmp/v/bin/pip install -q --no-index -f bench-data/wheels numpy \
        moderngl glcontext psutil && /tmp/v/bin/python tests/benchmarks/bench_raycast_gpu.py \
        --medulla bench-data/medulla.npz --json $OUT/gpu.json

Defaults: 2064 x 2208 per eye (a Quest-class eye buffer), RGBA8 targets, step 0.5 voxel.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from analysis.volume import ArrayVolumeSource, FunctionVolumeSource  # noqa: E402
from viewer.raycast import (  # noqa: E402
    Harness,
    LabelStyle,
    ResidentVolume,
    StreamedVolume,
    TransferFunction,
    camera_matrices,
    label_colours,
)
from viewer.streaming import BrickGrid, View, VolumeStreamer  # noqa: E402

IPD_FRACTION = 0.03  # eye separation as a share of the viewing distance (a table-top view)


def _sphere_waves(n: int):
    def fn(level: int, region: tuple[slice, ...]) -> np.ndarray:
        z, y, x = (
            ((np.arange(s.start, s.stop, dtype=np.float32) + 0.5) * 2**level - 0.5) for s in region
        )
        r = np.sqrt(
            (z[:, None, None] - n / 2) ** 2
            + (y[None, :, None] - n / 2) ** 2
            + (x[None, None, :] - n / 2) ** 2
        )
        v = 250 * (1 - r / (n / 2)) + 40 * np.sin(x[None, None, :] / 9) * np.cos(
            y[None, :, None] / 13
        )
        return np.clip(v, 0, 255).astype(np.uint8)

    return fn


def _texture(level: int, region: tuple[slice, ...]) -> np.ndarray:
    # Cheap on the loader threads; structure at every scale (the bench_streaming content).
    z, y, x = (np.arange(s.start, s.stop, dtype=np.int64) << level for s in region)
    return ((z[:, None, None] * 7 + y[None, :, None] * 13 + x[None, None, :] * 29) % 251).astype(
        np.uint8
    )


def _eyes(position, focal, up, size):
    """(view, projection) of the left and right eye around a centre camera (zyx)."""
    p, f = np.asarray(position, float), np.asarray(focal, float)
    fwd = (f - p) / np.linalg.norm(f - p)
    right = np.cross(fwd[::-1], np.asarray(up, float)[::-1])[::-1]
    right /= np.linalg.norm(right)
    off = right * IPD_FRACTION * np.linalg.norm(f - p) / 2
    return [camera_matrices(p + s * off, f + s * off, up, 90.0, size) for s in (-1, 1)]


def _gpu_draw(h: Harness, raycaster_args: dict, view, proj) -> float:
    q = h.ctx.query(time=True)
    with q:
        h.raycaster.draw(h.fbo, view, proj, **raycaster_args)
    h.ctx.finish()
    return q.elapsed / 1e6


def _summary(per_eye: list[list[float]]) -> dict:
    both = [a + b for a, b in zip(per_eye[0], per_eye[1], strict=True)]
    return {
        "left_ms_median": statistics.median(per_eye[0]),
        "right_ms_median": statistics.median(per_eye[1]),
        "both_ms_median": statistics.median(both),
        "both_ms_p95": float(np.percentile(both, 95)),
        "frames": len(both),
    }


def resident(h: Harness, n: int, chunk: int, frames: int) -> dict:
    src = FunctionVolumeSource((n,) * 3, _sphere_waves(n), chunks=(chunk,) * 3, n_levels=1)
    vol = ResidentVolume(h.ctx, [src.read(0)], BrickGrid.from_source(src))
    tf = TransferFunction.ramp((20, 235), opacity=(0.0, 0.05))
    h.raycaster.set_nodes(vol.pool)
    args = dict(tree=vol.tree, atlas=vol.atlas, tf=tf)
    per_eye: list[list[float]] = [[], []]
    for i in range(frames + 2):
        a = 2 * np.pi * i / max(frames, 1)
        pos = (n / 2 + 0.9 * n * np.sin(a), n / 2 - 0.4 * n, n / 2 - 0.9 * n * np.cos(a))
        for e, (view, proj) in enumerate(_eyes(pos, (n / 2,) * 3, (0.0, -1.0, 0.0), h.size)):
            t = _gpu_draw(h, args, view, proj)
            if i >= 2:  # the first frames compile and fault in the textures
                per_eye[e].append(t)
    out = _summary(per_eye)
    out.update(bricks=vol.n_leaves, atlas_mb=vol.atlas.nbytes / 2**20, volume=f"{n}^3")
    # The same frames with empty-space skipping (bricks transparent under tf stepped over).
    out["skipped_bricks"] = vol.skip_transparent(tf)
    h.raycaster.set_nodes(vol.pool)
    skip_eye: list[list[float]] = [[], []]
    for i in range(frames):
        a = 2 * np.pi * i / max(frames, 1)
        pos = (n / 2 + 0.9 * n * np.sin(a), n / 2 - 0.4 * n, n / 2 - 0.9 * n * np.cos(a))
        for e, (view, proj) in enumerate(_eyes(pos, (n / 2,) * 3, (0.0, -1.0, 0.0), h.size)):
            skip_eye[e].append(_gpu_draw(h, args, view, proj))
    out["with_skipping"] = _summary(skip_eye)
    vol.release()
    return out


def streamed(h: Harness, shape, atlas_bytes: int, warm: int, frames: int, workers: int) -> dict:
    src = FunctionVolumeSource(shape, _texture, chunks=(64, 64, 64))
    tf = TransferFunction.ramp((0, 255), opacity=(0.0, 0.02))
    per_eye: list[list[float]] = [[], []]
    stats = []
    z0, y0, x0 = (s / 2 for s in shape)
    with VolumeStreamer(src, cache_bytes=2 * atlas_bytes, n_workers=workers) as st:
        sv = StreamedVolume(h.ctx, st, atlas_bytes, max_uploads=64)
        for i in range(warm + frames):
            # Fly towards the centre and across, looking at a point ahead.
            s = i / max(warm + frames - 1, 1)
            pos = (
                z0 - 0.6 * shape[0] + 0.5 * shape[0] * s,
                y0 - 0.1 * shape[1] * s,
                x0 * (0.8 + 0.3 * s),
            )
            focal = (z0, y0, x0 * (0.9 + 0.2 * s))
            eyes = _eyes(pos, focal, (0.0, -1.0, 0.0), h.size)
            views = [View.from_matrices(v, p, h.size) for v, p in eyes]
            frame = st.update(views)
            h.raycaster.set_nodes(sv.update(frame, skip_for=tf))
            args = dict(tree=sv.tree, atlas=sv.atlas, tf=tf)
            for e, (view, proj) in enumerate(eyes):
                t = _gpu_draw(h, args, view, proj)
                if i >= warm:
                    per_eye[e].append(t)
            if i >= warm and sv.last is not None:
                stats.append(sv.last)
            time.sleep(1 / 90)
    out = _summary(per_eye)
    out.update(
        volume="x".join(str(s) for s in shape),
        atlas_mb=sv.atlas.nbytes / 2**20,
        leaves_median=statistics.median(s.leaves for s in stats),
        drawn_median=statistics.median(s.drawn for s in stats),
        atlas_bricks_last=stats[-1].atlas_bricks,
        tree_ms_median=statistics.median(s.tree_ms for s in stats),
        upload_ms_median=statistics.median(s.upload_ms for s in stats),
        nodes_last=stats[-1].nodes,
    )
    sv.release()
    return out


def prepare_medulla(out: Path) -> None:
    """The medulla's PNG slices and neuron bodies (supervoxels mapped through the
    ``transforms`` table) as ``image`` (uint8) and ``labels`` (uint32) in one npz."""
    import gzip
    import io

    import h5py
    import imageio.v3 as iio

    root = ROOT.parent / "shared" / "testdata" / "fibsem-medulla"
    image = np.stack([iio.imread(f) for f in sorted((root / "grayscale_maps").glob("iso.*.png"))])
    with gzip.open(root / "groundtruth.h5.gz", "rb") as fh, h5py.File(io.BytesIO(fh.read())) as f:
        sv = np.asarray(f["stack"])
        tr = np.asarray(f["transforms"])
    lut = np.zeros(int(max(sv.max(), tr[:, 0].max())) + 1, np.uint32)
    lut[tr[:, 0]] = tr[:, 1]
    bodies = lut[sv]
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, image=image.astype(np.uint8), labels=bodies)
    print(
        f"{out}: image {image.shape}, {len(np.unique(bodies))} bodies, {out.stat().st_size >> 20} MiB"
    )


def medulla(h: Harness, path: Path, frames: int, chunk: int = 64) -> dict:
    data = np.load(path)
    image, labels = data["image"], data["labels"]
    n = np.asarray(image.shape, float)
    grid = BrickGrid.from_source(ArrayVolumeSource(image, chunks=(chunk,) * 3))
    img = ResidentVolume(h.ctx, [image], grid)
    lab = ResidentVolume(
        h.ctx,
        [labels],
        BrickGrid.from_source(ArrayVolumeSource(labels, chunks=(chunk,) * 3)),
        labels=True,
    )
    # EM: dark membranes opaque (the app's inverted ramp), bodies at 0.3 per voxel.
    tf = TransferFunction.ramp((40, 200), colormap=[(1, 1, 1), (0, 0, 0)], opacity=(0.06, 0.0))
    ids = np.unique(labels)
    ids = ids[ids != 0]
    style = LabelStyle(opacity=0.3, color_ids=ids, color_rgb=label_colours(ids))
    per_eye: list[list[float]] = [[], []]
    centre = tuple(n / 2)
    for i in range(frames + 2):
        a = 2 * np.pi * i / max(frames, 1)
        pos = (
            n[0] / 2 + 0.9 * n[0] * np.sin(a),
            n[1] / 2 - 0.4 * n[1],
            n[2] / 2 - 0.9 * n[2] * np.cos(a),
        )
        for e, (view, proj) in enumerate(_eyes(pos, centre, (0.0, -1.0, 0.0), h.size)):
            h.raycaster.set_nodes(img.pool)
            t = _gpu_draw(h, dict(tree=img.tree, atlas=img.atlas, tf=tf), view, proj)
            h.raycaster.set_nodes(lab.pool)
            t += _gpu_draw(h, dict(tree=lab.tree, atlas=lab.atlas, tf=style), view, proj)
            if i >= 2:
                per_eye[e].append(t)
    out = _summary(per_eye)
    out.update(volume="x".join(str(s) for s in image.shape), bodies=len(ids), passes_per_eye=2)
    out["atlas_mb"] = (img.atlas.nbytes + lab.atlas.nbytes) / 2**20
    img.release()
    lab.release()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, nargs=2, default=(2064, 2208), metavar=("W", "H"))
    ap.add_argument("--quick", action="store_true", help="llvmpipe proof: tiny sizes")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--warm", type=int, default=120, help="streamed frames before measuring")
    ap.add_argument("--atlas-gb", type=float, default=2.0)
    ap.add_argument("--workers", type=int, default=min(os.cpu_count() or 2, 8))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--medulla", type=Path, help="npz made by --prepare-medulla: case (c)")
    ap.add_argument("--prepare-medulla", type=Path, metavar="NPZ", help="write it and exit")
    args = ap.parse_args()
    if args.prepare_medulla:
        prepare_medulla(args.prepare_medulla)
        return 0
    if args.quick:
        size, n, shape, atlas, frames, warm = (96, 104), 128, (2048, 2048, 1024), 64 << 20, 4, 8
    else:
        size, n, shape = tuple(args.size), 512, (16384, 16384, 8192)
        atlas, frames, warm = int(args.atlas_gb * 2**30), args.frames, args.warm
    h = Harness(size, dtype="f1")
    info = {k: h.ctx.info[k] for k in ("GL_RENDERER", "GL_VERSION")}
    print(
        f"{info['GL_RENDERER']} | {info['GL_VERSION']} | {size[0]} x {size[1]} per eye", flush=True
    )
    a = resident(h, n, 64, frames)
    print("(a) resident:", json.dumps(a), flush=True)
    b = streamed(h, shape, atlas, warm, frames, args.workers)
    print("(b) streamed:", json.dumps(b), flush=True)
    c = None
    if args.medulla:
        c = medulla(h, args.medulla, frames)
        print("(c) medulla + labels:", json.dumps(c), flush=True)
    h.release()
    if args.json:
        out = {"gl": info, "size": size, "resident": a, "streamed": b, "medulla": c}
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
