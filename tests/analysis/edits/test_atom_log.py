"""The atom log: a label edit's undo data is durable in ``<name>.atoms/atoms.log`` before
its journal line, and its own ``<id>.npz`` is synced only when the session settles.

A writer process is killed (SIGKILL) in a stream of stamps; then its atom files are
deleted (what a power loss can do to files written but not synced) and a record cut
short is left after the last whole one. A read-only open leaves the log alone; the next
writable open writes the atom files back from the log, ignores the torn record, and
every acknowledged stamp can be undone back to the start. References: the stamps
painted with NumPy, and the start image.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from analysis.edits import PaintBall
from analysis.project import Project
from tests.analysis.edits._labels_support import (
    ball_reference,
    blobs,
    levels_of,
    make_store,
    stamped,
    stamps_until_killed,
)


def test_atom_files_lost_after_a_kill_come_back_from_the_atom_log(tmp_path: Path) -> None:
    store = make_store(tmp_path / "img.zarr", blobs(), version="0.5")
    p = tmp_path / "p"
    Project.create(p, image=store, labels=["cells"]).close()
    acked = stamps_until_killed(p, 20, 0.04)
    assert acked >= 20, "the writer did not get going"

    atoms = p / "labels" / "cells.atoms"
    log_path = atoms / "atoms.log"
    assert log_path.is_file()  # the session did not end: its log is there
    files = sorted(atoms.glob("*.npz"))
    assert len(files) >= acked
    end = sum(52 + f.stat().st_size for f in files)  # where the whole records end
    lost = files[: len(files) // 2] + files[-3:]
    for f in lost:
        f.unlink()
    with open(log_path, "r+b") as fh:  # a record a crash cut short: header, no body
        fh.seek(end)
        fh.write(struct.pack("<8sQI32s", b"VRSATOM1", 5000, 0, b"f" * 32) + b"\x01" * 100)

    with Project.open(p, read_only=True) as ro:  # a reader: the log is not its to touch
        assert ro.read_only
    assert log_path.is_file() and not any(f.is_file() for f in lost)

    copy = p / "labels" / "cells.zarr"
    with Project.open(p) as pr:
        assert not log_path.exists()  # restored, then dropped
        assert all(f.is_file() for f in lost)
        assert not (atoms / f"{'f' * 32}.npz").exists()  # the torn record is not an atom
        n = len(pr.history.undo_steps)
        assert n >= acked  # every acknowledged stamp is journaled
        np.testing.assert_array_equal(levels_of(copy)[0], stamped(n, 0.04))
        for _ in range(n):
            pr.history.undo()  # each from its atom file
        np.testing.assert_array_equal(levels_of(copy)[0], blobs())
        pr.history.redo()
        cmd = PaintBall("cells", (30, 40, 50), 0.03, 99)
        pr.history.apply(cmd)  # a new atom: in a new log until the session settles
        assert log_path.is_file()
    assert not log_path.exists()  # a clean close leaves no log, and the atom's own file
    assert (atoms / f"{cmd.atom_id}.npz").is_file()
    expect = stamped(1, 0.04)
    expect[ball_reference(expect.shape, (30, 40, 50), 0.03)] = 99
    np.testing.assert_array_equal(levels_of(copy)[0], expect)


def test_a_session_closed_right_after_its_first_edits_leaves_no_log(tmp_path: Path) -> None:
    """The log is made on the atom thread by the session's first atom; a close right after
    still finds and seals it (each time: the atom may not have been written yet)."""
    store = make_store(tmp_path / "img.zarr", blobs(), version="0.5")
    p = tmp_path / "p"
    Project.create(p, image=store, labels=["cells"]).close()
    atoms = p / "labels" / "cells.atoms"
    for i in range(5):
        with Project.open(p) as pr:
            pr.edit_labels("cells")
            cmd = PaintBall("cells", (10 + i, 20, 30), 0.03, 40 + i)
            pr.history.apply(cmd)
        assert not (atoms / "atoms.log").exists()
        assert (atoms / f"{cmd.atom_id}.npz").is_file()


_EXIT_WITHOUT_CLOSE = """
import sys
from analysis.edits import PaintBall
from analysis.project import Project
pr = Project.open(sys.argv[1])
pr.edit_labels("cells")
pr.history.apply(PaintBall("cells", (20, 25, 30), 0.05, 77))
print(pr.history.undo_steps[-1].commands[0].atom_id, flush=True)
"""


def test_a_process_that_exits_without_closing_settles_its_labels(tmp_path: Path) -> None:
    """At interpreter exit the store settles itself (the atom thread has already stopped
    then): its atom file is durable, the log and pending.json are gone, nothing is said
    on stderr, the process exits 0, and the stamp is in the files."""
    import os
    import subprocess
    import sys

    store = make_store(tmp_path / "img.zarr", blobs(), version="0.5")
    p = tmp_path / "p"
    Project.create(p, image=store, labels=["cells"]).close()
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", _EXIT_WITHOUT_CLOSE, str(p)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=120,
    )
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr
    atom_id = done.stdout.split()[-1]
    atoms = p / "labels" / "cells.atoms"
    assert (atoms / f"{atom_id}.npz").is_file()
    assert not (atoms / "atoms.log").exists()
    assert not (p / "labels" / "cells.pending.json").exists()
    expect = blobs()
    expect[ball_reference(expect.shape, (20, 25, 30), 0.05)] = 77
    np.testing.assert_array_equal(levels_of(p / "labels" / "cells.zarr")[0], expect)
