"""``vrscope serve`` in-process: join URLs, a cut that survives a restart, bad input."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from analysis.edits import Cut
from analysis.project import Project
from viewer.collab import CollabClient
from viewer.collab._server import is_loopback
from vrscope.cli import main

from .conftest import conflict_graph


def _serve_in_thread(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[threading.Thread, str, str]:
    rc: list[int] = []
    th = threading.Thread(target=lambda: rc.append(main(args)), daemon=True)
    th.start()
    out = ""
    deadline = time.monotonic() + 30
    while "join (view only)" not in out and time.monotonic() < deadline:
        time.sleep(0.02)
        out += capsys.readouterr().out
    edit = next(line.split()[-1] for line in out.splitlines() if "join (edit)" in line)
    view = next(line.split()[-1] for line in out.splitlines() if "join (view only)" in line)
    return th, edit, view


def test_serve_prints_urls_and_a_cut_survives_a_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "proj"
    Project.create(
        folder, image="https://example.org/img.ome.zarr", tracks=conflict_graph()
    ).close()
    args = ["serve", str(folder), "--port", "0", "--duration", "3"]
    th, edit, view = _serve_in_thread(args, capsys)
    assert edit.startswith("ws://127.0.0.1:") and "/proj?token=" in edit
    assert edit.split("token=")[1] != view.split("token=")[1]
    c = CollabClient(edit, name="desk").start()
    assert c.info["image"] == "https://example.org/img.ome.zarr"
    c.submit(Cut(9))
    deadline = time.monotonic() + 10
    while not c.core.synced and time.monotonic() < deadline:
        c.process(timeout=0.01)
    assert c.core.synced
    c.close()
    th.join(20)
    assert not th.is_alive()
    assert (folder / "collab-proj.sqlite").stat().st_mode & 0o077 == 0  # tokens: owner only

    th, edit2, _ = _serve_in_thread(args, capsys)
    assert edit2.split("/", 3)[3] == edit.split("/", 3)[3]  # same session and token
    d = CollabClient(
        view.replace(view.split("/")[2], edit2.split("/")[2]), name="v", role="observer"
    ).start()
    assert not d.target.tracks.has_edge(8, 9)
    assert d.target.tracks.has_edge(7, 8)
    d.close()
    th.join(20)
    # The project itself has the acknowledged cut (its journal.jsonl, without the server),
    # written once although the server ran twice.
    with Project.open(folder) as pr:
        assert pr.tracks is not None and not pr.tracks.has_edge(8, 9)
        assert pr.tracks.has_edge(7, 8) and pr.tracks.n_edges == conflict_graph().n_edges - 1
        assert [s.name for s in pr.history.undo_steps] == ["cut before 9"]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--certfile", "c.pem"], "--certfile and --keyfile go together"),
        (["--port", "70000"], "--port"),
        (["--certfile", "nope.pem", "--keyfile", "nope.key"], "cannot load --certfile"),
    ],
)
def test_serve_bad_options_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], needle: str
) -> None:
    folder = tmp_path / "proj"
    Project.create(folder, tracks=conflict_graph()).close()
    assert main(["serve", str(folder), "--duration", "0.1", *extra]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_serve_missing_project_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(tmp_path / "nothing"), "--port", "0", "--duration", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vrscope serve: error:") and err.count("\n") == 1
    assert "Traceback" not in err


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("")


def test_join_url_must_be_a_websocket_url_with_a_token() -> None:
    from analysis.errors import ParameterError

    with pytest.raises(ParameterError, match="join URL"):
        CollabClient("http://example.org/x")
