"""Drive ``vrscope xr`` in a subprocess against headless Monado, synchronised by its trace.

The app runs through the Monado sysroot's loader (see :class:`MonadoRuntime`)
with ``--trace FILE``; :class:`XrAppRun` reads that JSON-lines trace to wait
for session states and for frames that show a scripted input, so scripts do
not depend on how fast frames come (the null compositor paces at 20 Hz, a
loaded machine slower).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from ._monado import MonadoRuntime
from ._remote import RemoteRig

__all__ = ["XrAppRun", "move", "near", "press"]

Event = dict[str, Any]


class XrAppRun:
    """``python -m vrscope xr ARGS --trace TRACE`` as a context manager.

    Parameters
    ----------
    runtime : MonadoRuntime
    args : list of str
        Arguments after ``xr``.
    folder : Path
        Where the trace and the app's log go.
    python : str, optional
        Interpreter (default: the running one).
    display : str, optional
        X display for the app (``--graphics glx``); none by default.
    """

    def __init__(
        self,
        runtime: MonadoRuntime,
        args: Sequence[str],
        folder: Path,
        python: str | None = None,
        display: str | None = None,
    ) -> None:
        self.display = display
        self.runtime = runtime
        self.folder = Path(folder)
        self.trace = self.folder / "trace.jsonl"
        self.log = self.folder / "app.log"
        self.args = [*args, "--trace", str(self.trace)]
        self.python = python
        self.proc: subprocess.Popen[bytes] | None = None
        self._pos = 0
        self._seen = 0
        self.events: list[Event] = []

    def start(self) -> XrAppRun:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.trace.unlink(missing_ok=True)
        argv = self.runtime.python_command(["-m", "vrscope", "xr", *self.args], self.python)
        with open(self.log, "wb") as logf:
            self.proc = subprocess.Popen(
                argv,
                env=self.runtime.env(display=self.display),
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
            )
        return self

    def poll(self) -> list[Event]:
        """New trace events since the last call (also appended to :attr:`events`)."""
        if not self.trace.exists():
            return []
        with open(self.trace, encoding="utf-8") as f:
            f.seek(self._pos)
            data = f.read()
        # Only whole lines: the app may be writing the last one.
        end = data.rfind("\n") + 1
        self._pos += len(data[:end].encode("utf-8"))
        new = [json.loads(line) for line in data[:end].splitlines() if line.strip()]
        self.events.extend(new)
        return new

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def wait_for(
        self, pred: Callable[[Event], bool], timeout: float = 60.0, what: str = ""
    ) -> Event:
        """The first new event satisfying ``pred``; raises TimeoutError (with the log) if none."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            # Events are consumed in order: each is looked at by one wait only.
            while self._seen < len(self.events):
                ev = self.events[self._seen]
                self._seen += 1
                if pred(ev):
                    return ev
            if self.proc is not None and self.proc.poll() is not None:
                self.poll()
                while self._seen < len(self.events):
                    ev = self.events[self._seen]
                    self._seen += 1
                    if pred(ev):
                        return ev
                raise RuntimeError(
                    f"vrscope xr exited ({self.proc.returncode}) before {what or 'the event'}:\n"
                    + self.log_tail()
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no {what or 'matching event'} in {timeout} s:\n{self.log_tail()}"
                )
            time.sleep(0.02)

    def wait_count(
        self, pred: Callable[[Event], bool], n: int = 1, timeout: float = 60.0, what: str = ""
    ) -> list[Event]:
        """Wait until ``n`` events of the whole trace so far satisfy ``pred`` (none consumed)."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            hits = [e for e in self.events if pred(e)]
            if len(hits) >= n:
                return hits
            if self.proc is not None and self.proc.poll() is not None:
                self.poll()
                hits = [e for e in self.events if pred(e)]
                if len(hits) >= n:
                    return hits
                raise RuntimeError(f"vrscope xr exited before {what}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(hits)} of {n} {what} in {timeout} s")
            time.sleep(0.02)

    def wait_state(self, state: str, timeout: float = 90.0) -> Event:
        return self.wait_for(
            lambda e: e["event"] == "state" and e["state"] == state, timeout, f"state {state}"
        )

    def wait_frames(
        self, pred: Callable[[Event], bool], n: int = 1, timeout: float = 60.0
    ) -> Event:
        """Wait for ``n`` frames in a row that satisfy ``pred``."""
        count = 0
        ev: Event = {}

        def ok(e: Event) -> bool:
            nonlocal count, ev
            if e["event"] != "frame":
                return False
            count = count + 1 if pred(e) else 0
            ev = e
            return count >= n

        self.wait_for(ok, timeout, "frames")
        return ev

    def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(
                f"vrscope xr did not exit in {timeout} s:\n{self.log_tail()}"
            ) from None
        self.poll()
        return rc

    def stop(self) -> None:
        """Terminate the app by PID if it still runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> XrAppRun:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


_ACTION = {
    "trigger_click": "select",
    "a_click": "primary",
    "b_click": "secondary",
    "system_click": "menu",
    "thumbstick_click": "thumbstick_click",
}


def near(a: Sequence[float] | None, b: Sequence[float], tol: float = 1e-3) -> bool:
    return a is not None and all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def press(rig: RemoteRig, app: XrAppRun, side: str, button: str = "trigger_click") -> None:
    """Press and release a button, each confirmed by a frame that saw it."""
    name = f"{side}.{_ACTION[button]}"
    extra: dict[str, object] = {"trigger": 1.0} if button == "trigger_click" else {}
    rig.hand(side, **{button: True}, **extra)
    app.wait_frames(lambda e: name in e["buttons"], 1, 60.0)
    extra = {"trigger": 0.0} if button == "trigger_click" else {}
    rig.hand(side, **{button: False}, **extra)
    app.wait_frames(lambda e: name not in e["buttons"], 1, 60.0)


def move(
    rig: RemoteRig, app: XrAppRun, side: str, position: Sequence[float], **changes: object
) -> None:
    """Move a controller (and set other fields); wait for a frame that saw the aim there."""
    rig.hand(side, position=tuple(position), **changes)
    app.wait_frames(lambda e: near(e[side], position), 1, 60.0)
