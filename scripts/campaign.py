#!/usr/bin/env python
"""Re-run the issue-21 attack campaign at campaign sizes and print cases tried / clean.

Loopback only, bounded loops. Every part is a script of the test suite run larger (or
as is, where the suite already runs the campaign's size):

- bad files given to every command that reads one (``tests/cli/test_bad_files.py``);
- model files with planted code (``tests/cli/test_planted_models.py``);
- bad numbers and absurd values for every numeric option (``tests/cli/test_cli_fuzz.py``);
- 20,000 generated track and annotation commands through the command fuzzer's generator
  (``tests/analysis/edits/test_command_fuzz.py``, run with more examples; counted per
  command);
- 60 SIGKILLs at seeded random moments during edits (``tests/cli/_sigkill.py``);
- idle, silent and slow connections against ``vrscope serve``
  (``tests/viewer/collab/test_idle_connections.py``);
- the HTTP fault-server cases (``tests/analysis/io/test_remote_*.py``, ``test_read_level.py``,
  ``tests/cli/test_remote_deadline.py``) and the journal damage cases.

A case is one pytest item (one generated input or scripted misbehaviour), one generated
command, or one kill; *clean* means the outcome the issue asks for (what each test
asserts). Usage::

    .venv/bin/python scripts/campaign.py [--commands 20000] [--kills 60] [--workers 2]

Takes about 20-30 minutes on two cores. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PYTEST_PARTS: list[tuple[str, list[str], bool]] = [
    # (part, test paths, run on several workers)
    ("CLI: bad files (stores, TIFF/PNG/npy/HDF5, tables, tracks, models, links)",
     ["tests/cli/test_bad_files.py"], True),
    ("Model files with planted code (infer, batch infer, export-model)",
     ["tests/cli/test_planted_models.py"], True),
    ("CLI: bad numbers and absurd values for every numeric option",
     ["tests/cli/test_cli_fuzz.py"], True),
    ("Collab: silent TCP, slowloris, no hello; 200 idle websockets during edits",
     ["tests/viewer/collab/test_idle_connections.py"], False),
    ("HTTP fault server (stalls, lying lengths, bombs, 5xx, late answers)",
     ["tests/analysis/io/test_remote_bounds.py", "tests/analysis/io/test_remote_caps.py",
      "tests/analysis/io/test_remote_deadline.py", "tests/analysis/io/test_read_level.py",
      "tests/cli/test_remote_deadline.py"], True),
    ("Journal: bit flips, torn tails, disk full, repairs",
     ["tests/analysis/edits/test_journal_integrity.py"], True),
]  # fmt: skip


def run_pytest(paths: list[str], workers: int) -> tuple[int, int, list[str]]:
    """(cases, clean, names of the unclean) of one pytest run, from its JUnit XML."""
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "r.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths]
        cmd += [f"--junitxml={xml}", "-o", "addopts=--strict-markers -p no:cacheprovider"]
        if workers > 1:
            cmd += ["-n", str(workers)]
        subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cases = clean = 0
        bad = []
        for case in ET.parse(xml).getroot().iter("testcase"):
            if case.find("skipped") is not None:
                continue
            cases += 1
            if case.find("failure") is None and case.find("error") is None:
                clean += 1
            else:
                bad.append(case.get("name", "?"))
        return cases, clean, bad


def run_commands(n_commands: int) -> tuple[int, int, list[str]]:
    """The command fuzzer's generator and checks, until ``n_commands`` commands ran."""
    sys.path.insert(0, str(ROOT))
    from hypothesis import HealthCheck, settings

    import tests.analysis.edits.test_command_fuzz as fuzz

    count = [0]
    real = fuzz.command_from_json

    def counting(data: object) -> object:
        count[0] += 1
        return real(data)  # type: ignore[arg-type]

    fuzz.command_from_json = counting  # type: ignore[assignment]
    test = fuzz.test_generated_commands_are_refused_cleanly_or_undone_exactly_and_replayable
    failures: list[str] = []
    while count[0] < n_commands:
        # sequences average ~7 commands; run in rounds so the count is met, not guessed
        rounds = max(50, (n_commands - count[0]) // 7)
        # what @settings sets (it refuses to decorate a test twice): more examples
        test._hypothesis_internal_use_settings = settings(  # type: ignore[attr-defined]
            max_examples=rounds,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        try:
            test()
        except Exception as exc:  # a failing example: the fuzzer's own assertion
            failures.append(str(exc).splitlines()[0][:200])
            break
    return count[0], count[0] - len(failures), failures


def run_kills(n: int, seed: int) -> tuple[int, int, list[str], int]:
    sys.path.insert(0, str(ROOT))
    from tests.cli._sigkill import kill_rounds, make_project

    with tempfile.TemporaryDirectory() as tmp:
        make_project(Path(tmp) / "p")
        r = kill_rounds(Path(tmp) / "p", n=n, seed=seed)
    return r.kills, r.clean, r.failures, r.acknowledged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--kills", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    os.environ.setdefault("MPLBACKEND", "Agg")
    rows: list[tuple[str, str, int, int, list[str]]] = []
    t_all = time.monotonic()
    print(f"load at start: {os.getloadavg()}", flush=True)
    for part, paths, parallel in PYTEST_PARTS:
        t0 = time.monotonic()
        cases, clean, bad = run_pytest(paths, args.workers if parallel else 1)
        rows.append((part, ", ".join(paths), cases, clean, bad))
        print(f"{part}: {clean}/{cases} clean ({time.monotonic() - t0:.0f} s)", flush=True)
    t0 = time.monotonic()
    cases, clean, bad = run_commands(args.commands)
    rows.append(("Journal: generated track and annotation commands (each refused cleanly or "
                 "undone exactly, replayable)", "test_command_fuzz.py generator", cases, clean,
                 bad))  # fmt: skip
    print(f"commands: {clean}/{cases} clean ({time.monotonic() - t0:.0f} s)", flush=True)
    t0 = time.monotonic()
    kills, clean, bad, acked = run_kills(args.kills, args.seed)
    rows.append((f"SIGKILL at random moments during marker, measurement, cut and undo edits "
                 f"({acked} acknowledged edits)", "tests/cli/_sigkill.py", kills, clean, bad))  # fmt: skip
    print(f"kills: {clean}/{kills} clean ({time.monotonic() - t0:.0f} s)", flush=True)
    print(f"\nload at end: {os.getloadavg()}; {time.monotonic() - t_all:.0f} s in all\n")
    print("| Part | Script | Cases tried | Clean |")
    print("|---|---|---|---|")
    for part, where, cases, clean, _ in rows:
        print(f"| {part} | `{where}` | {cases:,} | {clean:,} |")
    unclean = [(part, b) for part, _, _, _, bad in rows for b in bad]
    if unclean:
        print("\nNot clean:")
        for part, b in unclean:
            print(f"- {part}: {b}")
    return 1 if unclean else 0


if __name__ == "__main__":
    sys.exit(main())
