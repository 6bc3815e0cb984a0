"""Run ``python -m vrscope`` in a fresh process under time, memory and file-size bounds.

Shared by the campaign tests (bad files, planted model code): a case is clean when the
command exits 2 with exactly one line on stderr and no traceback, within the bounds.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Bounds: generous, the machine is shared. A case over them is a hang or a blow-up.
TIME_S = 90.0
MAX_RSS_MB = 1500.0
_AS_BYTES = 8 << 30  # address space: torch maps a lot, but a GiB-sized allocation is refused
_FSIZE_BYTES = 256 << 20  # no file a case writes (temporaries included) may pass this


@dataclass
class Outcome:
    code: int | None  # None: killed at the time bound
    err: list[str]
    out: str
    seconds: float
    max_rss_mb: float


# The command runs as the child of this small launcher, which writes the command's peak
# resident memory (``wait4``'s ``ru_maxrss``) to the file named first. Measured from the
# test process itself, a child's ``ru_maxrss`` starts at the resident size of the process
# it was forked from (Linux keeps the old memory map's high-water mark across ``exec``):
# a pytest worker that once held 1.6 GB made every later case report 1.6 GB.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as fh:
    fh.write(str(usage.ru_maxrss))
if os.WIFSIGNALED(status):
    os.kill(os.getpid(), os.WTERMSIG(status))
os._exit(os.waitstatus_to_exitcode(status))
"""


def _limits() -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (_AS_BYTES, _AS_BYTES))
    resource.setrlimit(resource.RLIMIT_FSIZE, (_FSIZE_BYTES, _FSIZE_BYTES))
    os.setsid()


def run_cli(argv: list[str], cwd: Path, timeout: float = TIME_S) -> Outcome:
    """``python -m vrscope ARGV`` in ``cwd`` under the bounds; its outcome."""
    env = dict(os.environ)
    env["VRSCOPE_CACHE_DIR"] = str(cwd / "cache")
    env["PYTHONPATH"] = str(ROOT)
    env.pop("PYTHONWARNINGS", None)
    out_path, err_path = cwd / "stdout.txt", cwd / "stderr.txt"
    rss_path = cwd / "maxrss.txt"
    rss_path.unlink(missing_ok=True)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(rss_path), "-m", "vrscope", *argv],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            preexec_fn=_limits,
        )
        status: int | None = None
        rss_kb = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                rss_kb = usage.ru_maxrss
                break
            if time.monotonic() - t0 > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                rss_kb = usage.ru_maxrss
                status = None
                break
            time.sleep(0.05)
        proc.returncode = 0  # reaped by wait4 above; keep Popen from waiting again
        seconds = time.monotonic() - t0
    if rss_path.is_file():  # the command's own peak (else the launcher's, killed)
        rss_kb = int(rss_path.read_text())
    code = None if status is None else os.waitstatus_to_exitcode(status)
    text = err_path.read_text(errors="replace")
    return Outcome(
        code=code,
        err=[ln for ln in text.splitlines() if ln.strip()],
        out=out_path.read_text(errors="replace"),
        seconds=seconds,
        max_rss_mb=rss_kb / 1024,
    )


def check_clean(o: Outcome) -> str | None:
    """Why the outcome is not the clean refusal, or None when it is."""
    if o.code is None:
        return f"no answer within {TIME_S:.0f} s"
    if o.max_rss_mb > MAX_RSS_MB:
        return f"peak RSS {o.max_rss_mb:.0f} MB > {MAX_RSS_MB:.0f} MB"
    if any("Traceback" in ln for ln in o.err):
        return "traceback:\n" + "\n".join(o.err[-6:])
    if o.code != 2:
        return f"exit {o.code} (not 2); stderr: {o.err[-3:]}; stdout: {o.out[-300:]!r}"
    if len(o.err) != 1:
        return f"{len(o.err)} lines on stderr: {o.err[:6]}"
    return None
