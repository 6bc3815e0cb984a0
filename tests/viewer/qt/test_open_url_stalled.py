"""File > Open URL… on a server that stalls (issue 21: remote reads in windows). The
window must keep reacting while the URL is being opened (it says so in the status bar and
the jobs panel lists the open with a Cancel button), and a read that fails or times out
is a visible message in the window (status bar and message box), not only a log line.

The server is a loopback socket that accepts connections and answers nothing until the
test lets it go; then it hangs up on every connection (``fails``). With short read
timeouts it is never let go (``times out``)."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from PySide6 import QtCore, QtWidgets

import analysis.io._read as read_mod
from tests.viewer.qt.test_filemenu_qt import menu_click, other_windows

pytestmark = pytest.mark.qt

Qt = QtCore.Qt


@contextmanager
def stalling_server() -> Iterator[tuple[str, threading.Event]]:
    """A server that holds every connection silently until ``release`` is set, then
    closes them and every later one at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.1)
    release, stop = threading.Event(), threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            if release.is_set():
                while held:
                    held.pop().close()
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            if release.is_set():
                conn.close()
            else:
                held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/cell.zarr", release
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        sock.close()


def _menu_opens(qtbot: Any, win: Any, title: str) -> None:
    """Click ``title`` in the menu bar: its menu shows (the window handles input), then
    Escape closes it."""
    mb = win.menuBar()
    action = next(a for a in mb.actions() if a.text().replace("&", "") == title)
    menu = action.menu()
    qtbot.mouseClick(mb, Qt.MouseButton.LeftButton, pos=mb.actionGeometry(action).center())
    qtbot.waitUntil(menu.isVisible, timeout=10_000)
    qtbot.keyClick(menu, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not menu.isVisible(), timeout=10_000)


@pytest.mark.parametrize("how", ["fails", "times out"])
def test_open_url_on_a_stalled_server_keeps_the_window_responsive_and_shows_the_error(
    make_viewer: Any, fibsem_store: Path, qtbot: Any, monkeypatch: Any, how: str
) -> None:
    # Bounded either way (main froze the window for these, then showed the error).
    monkeypatch.setattr(read_mod, "HTTP_READ_S", 20.0 if how == "fails" else 1.0)
    monkeypatch.setattr(read_mod, "HTTP_TOTAL_S", 40.0 if how == "fails" else 2.0)
    win = make_viewer(str(fibsem_store), ["nucleus"])
    with stalling_server() as (url, release):
        monkeypatch.setattr(QtWidgets.QInputDialog, "getText", lambda *a, **k: (url, True))
        menu_click(qtbot, win, "File", "Open URL…")
        if how == "fails":
            # Still opening: the window says so and reacts to the mouse and keys.
            assert url in win.status.currentMessage() and "opening" in win.status.currentMessage()
            job = next(j for j in win.jobs.jobs if url in j.name)
            cancel = win.jobs.cancel_button(job)
            assert cancel is not None and cancel.isEnabled()
            _menu_opens(qtbot, win, "File")
            assert not job.done.is_set()  # (the server holds it until released)
            release.set()
        qtbot.waitUntil(lambda: win.error_box is not None, timeout=120_000)
    box = win.error_box
    assert box is not None and box.isVisible()
    assert url in box.text() and "\n" not in box.text().strip()
    assert url in win.status.currentMessage()
    if how == "times out":
        assert "time" in box.text().lower(), box.text()
    assert other_windows(win) == []
    _menu_opens(qtbot, win, "File")


@contextmanager
def failing_level0(root: Path, store: str) -> Iterator[str]:
    """Serve ``root``; every chunk of the image's level 0 answers HTTP 500 (its
    metadata, the coarser levels and the label images are served)."""
    import functools
    import http.server

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.startswith(f"/{store}/s0/") and not self.path.endswith("zarr.json"):
                self.send_error(500)
                return
            super().do_GET()

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{store}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_bricks_a_server_fails_are_said_in_the_status_bar(
    make_viewer: Any, fibsem_store: Path, qtbot: Any
) -> None:
    """The 3D view's bricks of level 0 cannot be read (HTTP 500, after the retries): the
    status bar says how many were left out (main: only a log line and a tooltip)."""
    assert (fibsem_store / "s0" / "zarr.json").is_file()
    with failing_level0(fibsem_store.parent, fibsem_store.name) as url:
        win = make_viewer(url, [])
        label = win.stream_label
        qtbot.waitUntil(lambda: "could not be read" in label.text(), timeout=120_000)
        assert label.isVisible()
        said = re.search(r"(\d+) brick\(s\) could not be read", label.text())
        assert said is not None and int(said.group(1)) > 0, label.text()
        stats = win.render_view.render_thread.streaming.stats().values()
        assert int(said.group(1)) <= sum(st.failed for st in stats)  # (more may fail since)
        _menu_opens(qtbot, win, "File")
