"""Frame-time cost of the headset's overlay layers, on headless Monado.

Script benchmark (``python tests/benchmarks/bench_xr_overlays.py [--frames N]``).

The XR app (``xrmode``'s frame loop, the same code ``vrscope xr`` runs) shows the
64³ test ball with 12 markers and 3 measurements inside it, the measure tool in the
right hand and the status text at the left, on a headless ``monado-service``
(remote driver: scripted head and controllers). Each frame's work (input, tools,
overlay, both eyes rendered into the swapchain images, not the runtime's pacing
wait) is timed, wall clock and process CPU time (llvmpipe's threads included: less
sensitive to a shared machine's load), while the overlay layers are switched
between configurations in blocks of 2 frames, cycling, so the load changes evenly
over all of them:

- ``all``: HUD layer (menu / status / measurement values, on its own renderer
  layer), x-ray layer (faded markers and measurement lines over the volume) and
  the room (floor, grid, walls, table) drawn, as a user sees it;
- ``no-hud``, ``no-xray``, ``no-room``: one of them skipped;
- ``none``: all three skipped: the reference, measured in the same run.

Printed: median frame work (wall, CPU) per configuration and its ratio to ``none``, the eye
size and the load average. The script starts its own ``monado-service`` on a free
port and runs the app in a child process through Monado's loader (as the tests do).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

BLOCK = 2
WARMUP = 20
CONFIGS: dict[str, dict[str, bool]] = {
    "all": {"hud": True, "xray": True, "room": True},
    "no-hud": {"hud": False, "xray": True, "room": True},
    "no-xray": {"hud": True, "xray": False, "room": True},
    "no-room": {"hud": True, "xray": True, "room": False},
    "none": {"hud": False, "xray": False, "room": False},
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def _sample(folder: Path) -> tuple[Path, Path]:
    """The 64³ ball store (0.25 µm voxels) and a project with markers and measurements
    inside the ball."""
    import numpy as np

    from analysis.annotations import AddMarker, AddMeasurement
    from analysis.io import write_ngff
    from analysis.project import Project

    z, y, x = np.mgrid[:64, :64, :64] * 0.25
    inside = (z - 8) ** 2 + (y - 8) ** 2 + (x - 8) ** 2 < 5.0**2
    store = folder / "ball.zarr"
    write_ngff((inside * 200).astype(np.uint8), store, scale_um=(0.25, 0.25, 0.25))
    proj = folder / "p"
    rng = np.random.default_rng(0)
    with Project.create(proj, image=str(store), classes={"cell": (0.1, 0.3, 1.0)}) as pr:
        for p in 8.0 + rng.uniform(-3, 3, (12, 3)):
            pr.history.apply(AddMarker("cell", tuple(p)))
        for k in range(3):
            a = np.array([8.0, 8.0, 6.0]) + [k - 1.0, 0.0, 0.0]
            pr.history.apply(AddMeasurement("distance", [a, a + [0.0, 0.0, 4.0]]))
    return store, proj


def inner(store: str, project: str, frames: int, out: str) -> None:
    """Run the app's frame loop on the runtime; time each frame's work per config."""
    from xrmode._app import Trace, XrApp, XrOptions, _FrameLoop
    from xrmode.session._session import XrSession

    opts = XrOptions(
        store=store, project=project, tool="measure", adaptive_quality=False, stream=False
    )
    trace = Trace(None)
    app = XrApp(opts, trace)
    names = list(CONFIGS)
    times: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    eye = None
    try:
        with XrSession(hand_tracking=False, graphics="auto") as session:
            loop = _FrameLoop(app, session, trace)
            k = -WARMUP
            try:
                for frame in session.frames():
                    if frame.state != "FOCUSED" or not frame.eyes:
                        loop.step(frame)
                        continue
                    name = names[(max(k, 0) // BLOCK) % len(names)]
                    loop.target.set_overlay_layers(**CONFIGS[name])
                    t0, c0 = time.perf_counter(), time.process_time()
                    loop.step(frame)
                    dt = (time.perf_counter() - t0) * 1e3
                    dc = (time.process_time() - c0) * 1e3
                    if k >= 0:
                        times[name].append(dt)
                        cpu[name].append(dc)
                    eye = (frame.eyes[0].width, frame.eyes[0].height)
                    k += 1
                    if k >= frames * len(names) and session.running:
                        session.request_exit()
            finally:
                loop.close()
    finally:
        app.close()
    Path(out).write_text(json.dumps({"times": times, "cpu": cpu, "eye": eye}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=150, help="frames per configuration")
    ap.add_argument("--inner", nargs=3, metavar=("STORE", "PROJECT", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        inner(args.inner[0], args.inner[1], args.frames, args.inner[2])
        return
    from xrmode.testing import MonadoRuntime, MonadoService, RemoteRig, find_monado, install_monado

    root = find_monado() or install_monado()
    with tempfile.TemporaryDirectory(prefix="bench-xr-overlays-") as tmp:
        folder = Path(tmp)
        store, proj = _sample(folder)
        rt = MonadoRuntime(root, folder / "monado", remote_port=_free_port())
        out = folder / "times.json"
        with MonadoService(rt):
            rig = RemoteRig(port=rt.remote_port).connect()
            try:
                rig.set(head_position=(0.0, 1.3, 0.1), head_orientation=(0.0, 0.0, 0.0, 1.0))
                # Both controllers in view: the status text at the left (menu) hand,
                # the measure tool's cursor and label at the right.
                rig.hand("left", position=(-0.12, 1.1, -0.25))
                rig.hand("right", position=(0.12, 1.1, -0.25))
                cmd = rt.python_command(
                    [
                        __file__,
                        "--frames",
                        str(args.frames),
                        "--inner",
                        str(store),
                        str(proj),
                        str(out),
                    ]
                )
                subprocess.run(cmd, env=rt.env(), check=True, timeout=1800)
            finally:
                rig.close()
        res = json.loads(out.read_text())
    times, cpu = res["times"], res["cpu"]
    ref, ref_cpu = statistics.median(times["none"]), statistics.median(cpu["none"])
    load = open("/proc/loadavg").read().split()[:3]
    w, h = res["eye"]
    print(
        f"XR overlay layers: {args.frames} frames per configuration, eye {w} x {h}, "
        f"blocks of {BLOCK} frames cycling; load average {' '.join(load)}"
    )
    print(f"{'configuration':<14} {'wall ms':>8} {'ratio':>6} {'CPU ms':>8} {'ratio':>6}")
    for name, ts in times.items():
        med, med_cpu = statistics.median(ts), statistics.median(cpu[name])
        print(f"{name:<14} {med:>8.2f} {med / ref:>6.2f} {med_cpu:>8.2f} {med_cpu / ref_cpu:>6.2f}")


if __name__ == "__main__":
    main()
