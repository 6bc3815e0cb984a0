"""Regenerate the headset eye snapshots of docs/xr.md on headless Monado (no GPU, no display).

    .venv/bin/python docs/img/xr_snapshots.py

Needs Monado unpacked by ``scripts/monado.sh``. Writes ``xr_labels.png`` (both eyes
of a seated user: a cell with labelled objects, the count tool, the HUD) and
``xr_panel.png`` (the wrist panel open on the left hand).
"""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import numpy as np
from PIL import Image

from analysis.io import write_labels, write_ngff
from xrmode.testing import MonadoRuntime, MonadoService, RemoteRig, XrAppRun, find_monado, press

OUT = Path(__file__).parent
IDENTITY = (0.0, 0.0, 0.0, 1.0)


def sample(folder: Path) -> Path:
    """A cell (a bright shell, a dimmer inside) holding six labelled organelles."""
    z, y, x = np.mgrid[:48, :48, :48] * 0.5
    c = np.array([12.0, 12.0, 12.0])
    r = np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2)
    image = np.where(r < 10.5, 90, 0) + np.where((r > 9.5) & (r < 10.5), 120, 0)
    path = folder / "cell.zarr"
    write_ngff(image.astype(np.uint8), path, scale_um=(0.5, 0.5, 0.5))
    labels = np.zeros(image.shape, np.uint16)
    rng = np.random.default_rng(3)
    for i in range(6):
        p = c + rng.uniform(-5, 5, 3)
        labels[(z - p[0]) ** 2 + (y - p[1]) ** 2 + (x - p[2]) ** 2 < 2.2**2] = i + 1
    write_labels(path, "organelles", labels)
    return path


def both_eyes(folder: Path, out: Path) -> None:
    eyes = [np.asarray(Image.open(folder / f"{n}.png"))[..., :3] for n in ("left", "right")]
    gap = np.full((eyes[0].shape[0], 6, 3), 255, np.uint8)
    Image.fromarray(np.concatenate([eyes[0], gap, eyes[1]], axis=1)).save(out)


def main() -> None:
    root = find_monado()
    if root is None:
        raise SystemExit("Monado is not installed: run scripts/monado.sh")
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        store = sample(tmpd)
        rt = MonadoRuntime(root, tmpd / "monado", remote_port=4480)
        with MonadoService(rt):
            rig = RemoteRig(port=4480).connect()
            rig.set(head_position=(0.0, 1.05, 0.1), head_orientation=IDENTITY)
            rig.hand("left", position=(-0.17, 0.86, -0.3), orientation=IDENTITY)
            rig.hand("right", position=(0.08, 0.86, -0.38), orientation=IDENTITY)
            snap = tmpd / "snap"
            args = [str(store), "--labels", "organelles", "--tool", "count"]
            args += ["--classes", "mito", "vesicle", "--snapshot", str(snap)]
            args += ["--project", str(tmpd / "p"), "--no-adaptive-quality"]
            app = XrAppRun(rt, args, tmpd / "run").start()
            try:
                app.wait_count(lambda e: e["event"] == "snapshot", 1, 180, "a snapshot")
                both_eyes(snap, OUT / "xr_labels.png")
                press(rig, app, "left", "system_click")
                for _ in range(40):
                    ev = app.wait_frames(lambda e: e["menu"] is not None, 2)
                    if ev["menu"] == "layers >":
                        break
                    rig.hand("left", thumbstick=(0.0, -1.0))
                    app.wait_frames(lambda e: True, 3)
                    rig.hand("left", thumbstick=(0.0, 0.0))
                    app.wait_frames(lambda e: True, 3)
                press(rig, app, "left")
                app.wait_frames(lambda e: (e["menu"] or "").startswith("layer:"), 2)
                # Lower the hand: the whole panel in view.
                rig.hand("left", position=(-0.2, 0.72, -0.3))
                app.wait_frames(lambda e: e["left"] is not None and e["left"][1] < 0.73, 2)
                assert app.proc is not None
                app.proc.send_signal(signal.SIGUSR1)
                app.wait_count(lambda e: e["event"] == "snapshot", 2, 180, "a second snapshot")
                both_eyes(snap / "1", OUT / "xr_panel.png")
            finally:
                app.stop()
                rig.close()
    print("wrote", OUT / "xr_labels.png", OUT / "xr_panel.png")


if __name__ == "__main__":
    main()
