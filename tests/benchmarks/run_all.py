"""Run every benchmark in this folder (``make bench``) and print their figures.

A benchmark is a file ``bench_*.py``: either a script (run with the project's
Python; it prints its own table with ratios against the reference measured in
the same run) or a pytest-benchmark module (any ``def test_``), run with
``pytest --benchmark-only``. Pass names to run a subset:
``python tests/benchmarks/run_all.py tracks morphology``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    files = sorted(HERE.glob("bench_*.py"))
    if argv:
        files = [f for f in files if any(a in f.stem for a in argv)]
    failed = []
    for path in files:
        text = path.read_text()
        if "def test_" in text:
            cmd = [
                sys.executable,
                "-m",
                "pytest",
                str(path),
                "--benchmark-only",
                "-q",
                "-p",
                "no:cacheprovider",
                "-o",
                "addopts=",
                "-s",
            ]
        else:
            cmd = [sys.executable, str(path)]
        print(f"\n=== {path.name}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, cwd=HERE.parents[1])
        print(f"=== {path.name}: exit {rc} in {time.perf_counter() - t0:.1f} s", flush=True)
        if rc:
            failed.append(path.name)
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
