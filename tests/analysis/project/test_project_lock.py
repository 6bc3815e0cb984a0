"""One writer per project: a second opener is refused naming the holder; a dead holder's
lock is stale; read-only opens work beside a writer; the collaboration server holds it."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from analysis.edits import Cut, History, ProjectLockedError
from analysis.errors import InvalidEditError
from analysis.project import Project
from analysis.tracks import TrackGraph
from vrscope.cli import main

ROOT = Path(__file__).resolve().parents[3]


def two_tracks() -> TrackGraph:
    ids = [0, 1, 2, 3, 4, 10, 11, 12]
    t = [0, 1, 2, 3, 4, 6, 7, 8]
    zyx = [[1.0, 2.0, float(i)] for i in range(5)] + [[1.0, 2.0, 6.0 + i] for i in range(3)]
    return TrackGraph.from_arrays(ids, t, zyx, [[0, 1], [1, 2], [2, 3], [3, 4], [10, 11], [11, 12]])


HOLDER = textwrap.dedent(
    """
    import sys
    from analysis.edits import Cut
    from analysis.project import Project

    pr = Project.open(sys.argv[1], what="vrscope view")
    pr.history.apply(Cut(2))
    print("ready", flush=True)
    sys.stdin.readline()  # hold the project until told (or killed)
    pr.history.apply(Cut(4))
    pr.close()
    print("closed", flush=True)
    """
)


def _holder(folder: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read() if proc.stderr else ""
    return proc


def test_second_writer_in_another_process_is_refused_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "proj"
    Project.create(folder, tracks=two_tracks()).close()
    proc = _holder(folder)
    try:
        with pytest.raises(ProjectLockedError) as info:
            Project.open(folder)
        msg = str(info.value)
        assert f"pid {proc.pid} on {socket.gethostname()}" in msg and "vrscope view" in msg
        assert "\n" not in msg and info.value.holder["pid"] == proc.pid
        # The CLI: one line, exit 2, the journal untouched.
        before = (folder / "journal.jsonl").read_bytes()
        code = main(["project", "repair", str(folder)])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and f"pid {proc.pid}" in err
        assert "Traceback" not in err
        # Overwriting the project is refused too (before anything is deleted).
        with pytest.raises(ProjectLockedError):
            Project.create(folder, overwrite=True)
        assert (folder / "journal.jsonl").read_bytes() == before
        assert (folder / "tracks.geff").is_dir()
        # Read-only opens are fine beside the writer, and see its acknowledged edit.
        with Project.open(folder, read_only=True) as ro:
            assert ro.tracks is not None and ro.tracks.parent(2) is None
            with pytest.raises(InvalidEditError, match="read-only"):
                ro.history.apply(Cut(11))
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout is not None and proc.stdout.readline().strip() == "closed"
    finally:
        proc.kill()
        proc.wait()
    # Released: the next writer gets it and sees both edits.
    with Project.open(folder) as pr:
        assert pr.tracks is not None and pr.tracks.parent(2) is None and pr.tracks.parent(4) is None


def test_a_killed_holder_leaves_a_stale_lock_that_is_taken_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "proj"
    Project.create(folder, tracks=two_tracks()).close()
    proc = _holder(folder)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    holder = json.loads((folder / "journal.jsonl.lock").read_text())
    assert holder["pid"] == proc.pid  # what the dead process left
    with caplog.at_level(logging.WARNING), Project.open(folder) as pr:
        assert pr.tracks is not None and pr.tracks.parent(2) is None
        assert json.loads((folder / "journal.jsonl.lock").read_text())["pid"] == os.getpid()
    assert "stale lock" in caplog.text and f"pid {proc.pid}" in caplog.text
    assert (folder / "journal.jsonl.lock").read_text() == ""  # released cleanly


def test_two_opens_in_one_process_are_refused(tmp_path: Path) -> None:
    """Two windows of one process: two Histories appending to one journal would make it
    unreplayable exactly like two processes."""
    g = two_tracks()
    h = History.open(tmp_path, g)
    with pytest.raises(ProjectLockedError, match=f"pid {os.getpid()}"):
        History.open(tmp_path, two_tracks())
    h.apply(Cut(2))
    h.close()
    g2 = two_tracks()
    History.open(tmp_path, g2).close()
    assert g2.parent(2) is None


def test_two_processes_editing_at_once_leave_a_replayable_journal(tmp_path: Path) -> None:
    """The campaign's bricking: two writers interleaved their lines. Now the second writer
    is refused, and the journal replays."""
    folder = tmp_path / "proj"
    Project.create(folder, tracks=two_tracks()).close()
    proc = _holder(folder)
    try:
        code = subprocess.run(
            [sys.executable, "-c", HOLDER, str(folder)],
            input="\n",
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=120,
        )
        assert code.returncode != 0 and "ProjectLockedError" in code.stderr
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    with Project.open(folder) as pr:
        assert pr.tracks is not None and pr.tracks.parent(2) is None and pr.tracks.parent(4) is None
        assert len(pr.history.undo_steps) == 2


def test_serve_and_export_beside_a_writer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`vrscope serve` on a project a window holds: one line, exit 2; `vrscope export` only
    reads, so it works beside the writer."""
    folder = tmp_path / "proj"
    with Project.create(folder, tracks=two_tracks(), what="vrscope view") as pr:
        pr.history.apply(Cut(2))
        code = main(["serve", str(folder), "--port", "0", "--duration", "0"])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert f"vrscope view (pid {os.getpid()}" in err
        out = tmp_path / "t.csv"
        assert main(["export", str(folder), "--tracks", str(out)]) == 0, capsys.readouterr().err
        import pandas as pd

        assert len(pd.read_csv(out)) == 8  # the base's 8 spots, read by pandas
