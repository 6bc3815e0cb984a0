"""How long a CLI mistake takes to answer: ``vrscope render missing.zarr --out a.png``.

Run: ``.venv/bin/python tests/benchmarks/bench_cli_errors.py`` (``make bench``). Each case
is a fresh process (what the user waits for), best and median of 7. References, same run:
the bare interpreter (``python -c pass``, the floor) and importing what ``render`` imported
before it looked at its input (``analysis.io`` and ``viewer.render``: the cost the error
used to carry, issue 18.15).
"""

from __future__ import annotations

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


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        floor = timed([sys.executable, "-c", "pass"], tmp)
        heavy = timed([sys.executable, "-c", "import analysis.io, viewer.render"], str(ROOT))
        cases = {
            "render missing.zarr": [*VRSCOPE, "render", "missing.zarr", "--out", "a.png"],
            "view missing.zarr": [*VRSCOPE, "view", "missing.zarr"],
            "render --out a.gif (bad option)": [*VRSCOPE, "render", "--out", "a.gif"],
        }
        print(f"{'python -c pass (floor)':<34} best {floor[0] * 1e3:7.0f} ms")
        print(f"{'import analysis.io, viewer.render':<34} best {heavy[0] * 1e3:7.0f} ms")
        for name, cmd in cases.items():
            best, med, rc = timed(cmd, tmp)
            print(
                f"{name:<34} best {best * 1e3:7.0f} ms  median {med * 1e3:7.0f} ms  exit {rc}"
                f"  ratio to the heavy imports {best / heavy[0]:5.2f}"
                f"  to the floor {best / floor[0]:5.2f}"
            )


if __name__ == "__main__":
    main()
