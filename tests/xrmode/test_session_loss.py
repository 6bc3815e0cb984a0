"""A runtime that goes away mid-session ends the frame loop without a traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import xr

from xrmode.session._session import XrSession


@pytest.mark.parametrize("error", [xr.InstanceLostError, xr.SessionLostError])
def test_lost_runtime_ends_the_loop_and_marks_the_session(
    monkeypatch: pytest.MonkeyPatch, error: type[Exception]
) -> None:
    session = XrSession.__new__(XrSession)  # no runtime: only the frame loop's state
    session.state, session.running, session._exit, session.lost = "FOCUSED", True, False, False
    session.session, session.on_state = None, None
    monkeypatch.setattr(session, "poll_events", lambda: None)
    monkeypatch.setattr(session, "_handle_exit_request", lambda: None)

    def wait_frame(_: object) -> None:
        raise error()

    monkeypatch.setattr(xr, "wait_frame", wait_frame)
    assert list(session.frames()) == []
    assert session.lost and not session.running and session.state == "LOST"


def test_sigterm_does_not_interrupt_blocking_calls() -> None:
    # The XR app's SIGTERM handler must restart interrupted system calls (SA_RESTART),
    # or a signal landing in the runtime client's recvmsg loses the OpenXR instance.
    code = textwrap.dedent(
        """
        import os, signal, socket, threading, time
        hits = []
        signal.signal(signal.SIGTERM, lambda *_: hits.append(1))
        signal.siginterrupt(signal.SIGTERM, False)
        a, b = socket.socketpair()
        def later():
            time.sleep(0.3); os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.3); b.send(b"x")
        threading.Thread(target=later).start()
        print(a.recv(1), len(hits))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["b'x'", "1"]
