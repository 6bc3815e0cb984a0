"""Headset brush stamps: frames until a stamp shows, and the frame loop during a stroke.

Script benchmark (``python tests/benchmarks/bench_xr_stamps.py [--stamps N]``), on
headless Monado (remote driver: scripted head and controllers) and the llvmpipe renderer.

The XR app (``vrscope xr --stream --tool labels``, the code the headset runs) shows the
scene of ``tests/xrmode/test_runtime_stamps.py`` (two labelled balls, streamed label
surfaces) from 14 cm; the right hand paints, in sessions ordered sync, async, async,
sync (``--rounds`` times) so the load's drift falls on both alike:

- ``sync`` (``VRSCOPE_XR_SYNC_STAMPS=1``): each stamp written on the frame thread, as
  before (atom, intent, chunks, journal fsync), the painted voxels drawn once the
  streamed bricks are meshed again: the reference, measured in the same run;
- ``async``: stamps written on the labels tool's own thread, drawn from memory meanwhile.

Printed per mode: frames and ms from the frame that sampled the trigger to the first
frame whose eye image shows the object's colour where the stamp projects (one stamp;
the eye images recorded with ``VRSCOPE_XR_RECORD``), then the frame thread's work before
rendering (input, tools, streaming: the trace's ``cpu_ms``, where a stamp written on the
frame thread waits for the disk), the frame work (``cpu_ms + render_ms``, both eyes
included) and the interval between frames
during a stroke of ``--stamps`` stamps (sweeps across the volume, trigger held), median
and p95, with the ratio async / sync, and the load average.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def _store(folder: Path) -> Path:
    from analysis.io import write_labels, write_ngff
    from tests.xrmode.test_runtime_stamps import VOXEL_UM, _labels

    lab = _labels()
    path = folder / "sample.zarr"
    write_ngff(
        (lab > 0).astype(np.uint8) * 120, path, scale_um=(VOXEL_UM,) * 3, chunks=(16, 16, 16)
    )
    write_labels(path, "cells", lab, chunks=(16, 16, 16))
    return path


def _run(rt, store: Path, folder: Path, sync: bool, n_stamps: int) -> dict[str, list[float]]:
    from tests.xrmode import test_runtime_stamps as t
    from xrmode.testing import RemoteRig, XrAppRun, move

    rec = folder / "rec"
    os.environ["VRSCOPE_XR_RECORD"] = str(rec)
    if sync:
        os.environ["VRSCOPE_XR_SYNC_STAMPS"] = "1"
    else:
        os.environ.pop("VRSCOPE_XR_SYNC_STAMPS", None)
    rig = RemoteRig(port=rt.remote_port).connect()
    rig.set(head_position=(0.0, 1.05, 0.1), head_orientation=(0.0, 0.0, 0.0, 1.0))
    args = [str(store), "--labels", "cells", "--project", str(folder / "p"), "--tool", "labels"]
    app = XrAppRun(rt, [*args, "--stream", "--no-adaptive-quality"], folder / "run").start()
    try:
        app.wait_state("FOCUSED", 120)
        app.wait_frames(lambda e: e["state"] == "FOCUSED" and e["right"] is not None, 1, 60)
        tr = next(e for e in app.events if e["event"] == "placed")["transform"]
        rig.hand("right", thumbstick=(1.0, 0.0))  # paint mode
        app.wait_frames(lambda e: True, 3)
        rig.hand("right", thumbstick=(0.0, 1.0))  # brush x 1.25
        app.wait_frames(lambda e: True, 3)
        rig.hand("right", thumbstick=(0.0, 0.0))
        tip = t.world_to_stage(tr, np.asarray((16, 16, 32)) * t.VOXEL_UM)
        aim = tip + np.array([0.0, 0.0, t.REACH_M])
        rig.set(
            head_position=tuple(tip + t.HEAD_FROM_M), head_orientation=t._looking_at(-t.HEAD_FROM_M)
        )
        move(rig, app, "right", aim, orientation=t.UPSIDE_DOWN)
        app.wait_frames(lambda e: all(s["undrawn"] == 0 for s in e["stream"].values()), 10, 120)
        # One stamp: frames until it shows.
        rig.hand("right", trigger_click=True, trigger=1.0)
        hit = app.wait_frames(lambda e: "right.select" in e["buttons"], 1, 60)
        app.wait_frames(lambda e: True, 2)
        rig.hand("right", trigger_click=False, trigger=0.0)
        app.wait_frames(lambda e: "right.select" not in e["buttons"], 1, 60)
        app.wait_frames(lambda e: True, 14)  # past the frames recorded
        # A stroke: sweeps across the volume along stage x (a stamp every ~0.53 radius),
        # back and forth, one radius lower each pass; the trigger held.
        r_m = t.BRUSH_UM * tr["scale_m_per_um"]
        per_pass = 18
        xs = np.linspace(-0.12, 0.12, per_pass)
        path = [
            aim + [x, -k * r_m, 0.0]
            for k in range(max(n_stamps // per_pass, 1))
            for x in (xs if k % 2 == 0 else xs[::-1])
        ]
        move(rig, app, "right", path[0], orientation=t.UPSIDE_DOWN)
        app.wait_frames(lambda e: True, 3)
        rig.hand("right", trigger_click=True, trigger=1.0)
        first = app.wait_frames(lambda e: "right.select" in e["buttons"], 1, 60)
        for pos in path[1:]:
            move(rig, app, "right", pos, orientation=t.UPSIDE_DOWN)
        rig.hand("right", trigger_click=False, trigger=0.0)
        last = app.wait_frames(lambda e: "right.select" not in e["buttons"], 1, 60)
        app.proc.terminate()  # type: ignore[union-attr]
        app.wait_exit(120)
    finally:
        app.stop()
        rig.close()
    frames = {e["i"]: e for e in app.events if e["event"] == "frame"}
    n = int(hit["i"])
    before, meta_b = t._eyes(rec / str(n - 1))
    obj = t.world_to_stage(tr, np.asarray(t.OBJ_VOX[0]) * t.VOXEL_UM)
    r_m = t.BRUSH_UM * tr["scale_m_per_um"]
    colour = np.median(
        t._disk(before[0], meta_b, 0, obj, t.OBJ_R_UM * tr["scale_m_per_um"], False), 0
    )
    was = t._like(t._disk(before[0], meta_b, 0, tip, r_m, True), colour)
    shown = None
    for i in sorted(int(p.name) for p in rec.iterdir() if int(p.name) >= n):
        imgs, meta = t._eyes(rec / str(i))
        now = t._like(t._disk(imgs[0], meta, 0, tip, r_m, True), colour)
        if (now & ~was).mean() > 0.5:
            shown = i
            break
    # The stroke's frames, after the recorded ones (saving PNGs is not frame work).
    lo = int(first["i"]) + 13
    hi = int(last["i"])
    work = [frames[i]["cpu_ms"] + frames[i]["render_ms"] for i in range(lo, hi) if i in frames]
    cpu = [frames[i]["cpu_ms"] for i in range(lo, hi) if i in frames]
    gaps = [
        (frames[i]["t"] - frames[i - 1]["t"]) * 1e3
        for i in range(lo, hi)
        if i in frames and i - 1 in frames
    ]
    out = {
        "frames": [float("nan") if shown is None else float(shown - n)],
        "ms": [float("nan") if shown is None else (frames[shown]["t"] - frames[n]["t"]) * 1e3],
        "cpu": cpu,
        "work": work,
        "gaps": gaps,
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stamps", type=int, default=54, help="stamps in the stroke (18 a pass)")
    ap.add_argument("--rounds", type=int, default=1, help="sync, async, async, sync per round")
    args = ap.parse_args()
    from xrmode.testing import MonadoRuntime, MonadoService, find_monado, install_monado

    root = find_monado() or install_monado()
    loads = [open("/proc/loadavg").read().split()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rt = MonadoRuntime(root, folder / "monado", remote_port=_free_port())
        store = _store(folder)
        res: dict[str, dict[str, list[float]]] = {"sync": {}, "async": {}}
        with MonadoService(rt):
            # ABBA: the load's drift falls on both modes alike.
            order = ["sync", "async", "async", "sync"] * args.rounds
            for k, mode in enumerate(order):
                got = _run(rt, store, folder / f"{mode}{k}", mode == "sync", args.stamps)
                for key, vals in got.items():
                    res[mode].setdefault(key, []).extend(vals)
                loads.append(open("/proc/loadavg").read().split()[0])
    print(f"headset brush stamps, llvmpipe, 320x240 eyes, load (1 min) {' '.join(loads)}")

    def pct(vals: list[float], q: float) -> float:
        return float(np.percentile(vals, q))

    for mode, r in res.items():
        print(
            f"  {mode:5s}: stamp shown {r['frames']} frames / "
            f"{[round(x) for x in r['ms']]} ms after the trigger frame; stroke "
            f"({len(r['work'])} frames): input+tools+streaming median {pct(r['cpu'], 50):.1f} ms, "
            f"p95 {pct(r['cpu'], 95):.1f} ms; frame work median {pct(r['work'], 50):.1f} ms, "
            f"p95 {pct(r['work'], 95):.1f} ms; frame interval median {pct(r['gaps'], 50):.1f} "
            f"ms, p95 {pct(r['gaps'], 95):.1f} ms"
        )
    a, b = res["async"], res["sync"]
    print(
        "  async / sync: input+tools+streaming median "
        f"x{pct(a['cpu'], 50) / pct(b['cpu'], 50):.2f}, p95 x{pct(a['cpu'], 95) / pct(b['cpu'], 95):.2f}; "
        f"frame work median x{pct(a['work'], 50) / pct(b['work'], 50):.2f}, "
        f"p95 x{pct(a['work'], 95) / pct(b['work'], 95):.2f}; "
        f"interval median x{pct(a['gaps'], 50) / pct(b['gaps'], 50):.2f}, "
        f"p95 x{pct(a['gaps'], 95) / pct(b['gaps'], 95):.2f}"
    )


if __name__ == "__main__":
    main()
