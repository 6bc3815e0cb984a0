"""How long a CLI mistake takes to answer: ``vrscope render missing.zarr --out a.png``,
``vrscope measure missing.zarr``, ``vrscope info missing.zarr``, ``vrscope labels merge
NOPROJECT ...``, ``vrscope info`` of stores with bad metadata (issue 21: a negative scale,
a dataset path with ``..``, a truncated ``zarr.json`` or ``.zarray``) and others.

Run: ``.venv/bin/python tests/benchmarks/bench_cli_errors.py`` (``make bench``). Each case
is a fresh process (what the user waits for), best and median of 7. References, same run:
the bare interpreter (``python -c pass``, the floor) and importing what ``render`` imported
before it looked at its input (all of ``analysis.io`` and ``viewer.render``: the cost the
error used to carry, issue 18.15). Prints the load average (the machine is shared).
``PYTHONPATH=/path/to/other/checkout`` times another version's commands (before/after).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VRSCOPE = [sys.executable, "-m", "vrscope"]


def timed(cmd: list[str], cwd: str, repeat: int = 7) -> tuple[float, float, int]:
    """(best, median) seconds of ``cmd`` as a new process, and its exit code."""
    times = []
    rc = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, cwd=cwd, capture_output=True).returncode
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), rc


def bad_stores(tmp: str) -> dict[str, str]:
    """Stores whose metadata the reader refuses (issue 21): written by ``write_ngff``,
    then broken with plain JSON. Name -> path."""
    import json

    import numpy as np

    from analysis.io import write_ngff

    out = {}
    data = np.arange(32**3, dtype=np.uint16).reshape(32, 32, 32)
    for case, version in (
        ("negative scale", "0.5"),
        ("path ..", "0.5"),
        ("truncated zarr.json", "0.5"),
        ("truncated level .zarray", "0.4"),
    ):
        store = Path(tmp) / f"{case.replace(' ', '_')}.zarr"
        write_ngff(data, store, scale_um=(1.0, 1.0, 1.0), version=version, chunks=(16, 16, 16))
        meta = store / ("zarr.json" if version == "0.5" else ".zattrs")
        doc = json.loads(meta.read_text())
        ms = (doc["attributes"]["ome"] if version == "0.5" else doc)["multiscales"][0]
        if case == "negative scale":
            ms["datasets"][0]["coordinateTransformations"][0]["scale"][-1] = -1.0
            meta.write_text(json.dumps(doc))
        elif case == "path ..":
            ms["datasets"][0]["path"] = "../" + ms["datasets"][0]["path"]
            meta.write_text(json.dumps(doc))
        elif case == "truncated zarr.json":
            meta.write_text(meta.read_text()[:200])
        else:
            level = store / ms["datasets"][0]["path"] / ".zarray"
            level.write_text(level.read_text()[:50])
        out[case] = str(store)
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        floor = timed([sys.executable, "-c", "pass"], tmp)
        # (``analysis.io`` is lazy now: the star import loads all of it, as importing it did)
        heavy = timed(
            [sys.executable, "-c", "from analysis.io import *; import viewer.render"], str(ROOT)
        )
        cases = {
            "render missing.zarr": [*VRSCOPE, "render", "missing.zarr", "--out", "a.png"],
            "view missing.zarr": [*VRSCOPE, "view", "missing.zarr"],
            "render --out a.gif (bad option)": [*VRSCOPE, "render", "--out", "a.gif"],
            "measure missing.zarr": [
                *VRSCOPE,
                *("measure", "missing.zarr", "--labels", "cells", "--out", "m.csv"),
            ],
            "info missing.zarr": [*VRSCOPE, "info", "missing.zarr"],
            "density missing.zarr": [
                *VRSCOPE,
                *("density", "missing.zarr", "--labels", "cells", "--out", "d.csv"),
            ],
            "profile missing.zarr": [*VRSCOPE, "profile", "missing.zarr", "--out", "rep"],
            "labels merge NOPROJECT 1 2": [
                *VRSCOPE,
                *("labels", "merge", "NOPROJECT", "--labels", "cells", "1", "2"),
            ],
        }
        for case, store in bad_stores(tmp).items():
            cases[f"info ({case})"] = [*VRSCOPE, "info", store]
        print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(f"{'python -c pass (floor)':<38} best {floor[0] * 1e3:7.0f} ms")
        print(f"{'import all analysis.io, viewer.render':<38} best {heavy[0] * 1e3:7.0f} ms")
        for name, cmd in cases.items():
            best, med, rc = timed(cmd, tmp)
            print(
                f"{name:<38} best {best * 1e3:7.0f} ms  median {med * 1e3:7.0f} ms  exit {rc}"
                f"  ratio to the heavy imports {best / heavy[0]:5.2f}"
                f"  to the floor {best / floor[0]:5.2f}"
            )


if __name__ == "__main__":
    main()
