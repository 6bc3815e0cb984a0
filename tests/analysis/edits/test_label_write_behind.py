"""Write-behind label chunks: a stamp is acknowledged once its undo data and journal line
are durable, before its chunks reach zarr; yet a SIGKILL loses no acknowledged stamp,
and every reader (the store, a layer's source, an export) sees the edit at once.

References are independent: the balls come from a distance test over the whole grid
(NumPy, from the stamp's centre and radius), the coarser levels from the writer's stride
rule, and the files are read with zarr-python.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from analysis.edits import Journal, PaintBall
from analysis.project import Project
from tests.analysis.edits._labels_support import (
    assert_pyramid,
    ball_reference,
    blobs,
    levels_of,
    make_project,
)

ROOT = Path(__file__).resolve().parents[3]
SHAPE = (40, 50, 60)
RADIUS_UM = 0.04  # 4 voxels


def stamp(i: int) -> tuple[tuple[int, int, int], int]:
    """The i-th stamp of the stream: its centre and id."""
    return (3 + (i * 7) % 34, 3 + (i * 11) % 44, 3 + (i * 13) % 54), 10 + i % 50


def model_of(journal: Path, start: np.ndarray) -> tuple[np.ndarray, int]:
    """The label image the journal's stamps and undos make, with NumPy; and how many
    stamps it holds."""
    states = [start]
    redo: list[np.ndarray] = []
    n = 0
    for rec in Journal(journal).read():
        if rec["op"] == "apply":
            centre, value = stamp(n)
            n += 1
            nxt = states[-1].copy()
            nxt[ball_reference(SHAPE, centre, RADIUS_UM)] = value
            states.append(nxt)
            redo.clear()
        elif rec["op"] == "undo":
            redo.append(states.pop())
    return states[-1], n


_CHILD = """
import json, sys
import analysis.io._label_edits as le
le.FLUSH_DELAY_S = le.QUIET_S = float(sys.argv[2])
le.MAX_AGE_S = 10 * le.QUIET_S
from analysis.edits import PaintBall
from analysis.project import Project
from tests.analysis.edits.test_label_write_behind import RADIUS_UM, stamp
pr = Project.open(sys.argv[1])
store = pr.edit_labels("cells")
for i in range(100000):
    centre, value = stamp(i)
    pr.history.apply(PaintBall("cells", centre, RADIUS_UM, value))
    if i % 7 == 6:
        pr.history.undo()
    print(json.dumps({"i": i, "unwritten": store.n_unwritten, "written": store._n_written}),
          flush=True)
"""


@pytest.mark.parametrize("delay_s", [600.0, 0.005], ids=["writer-stalled", "writer-running"])
def test_sigkill_during_stamps_loses_no_acknowledged_stamp(tmp_path: Path, delay_s: float) -> None:
    """Stalled: the writer never runs before the kill (every acknowledged stamp is only
    in memory, the undo data and the journal). Running: the kill lands while chunks are
    written and others wait; ``pending.json`` has moved on many times."""
    lab = blobs(SHAPE)
    make_project(tmp_path, lab).close()
    p = tmp_path / "p"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(p), str(delay_s)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    acks: list[dict[str, int]] = []
    deadline = time.monotonic() + 120
    try:
        while len(acks) < 40 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acks.append(json.loads(line))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert len(acks) >= 40, proc.stderr.read() if proc.stderr else ""
    copy = p / "labels" / "cells.zarr"
    assert copy.with_name("cells.pending.json").is_file()
    if delay_s > 1:
        assert all(a["written"] == 0 for a in acks) and acks[-1]["unwritten"] > 0
    else:
        assert acks[-1]["written"] > 0  # the writer did write during the stream

    expect, n = model_of(p / "journal.jsonl", lab)
    assert len(acks) <= n <= len(acks) + 1  # every acknowledged stamp is journaled
    with Project.open(p) as pr:
        got = pr.workspace.labels["cells"].read((slice(None),) * 3)
        np.testing.assert_array_equal(got, expect)
    assert not copy.with_name("cells.pending.json").exists()
    levels = levels_of(copy)  # zarr-python, from the files
    np.testing.assert_array_equal(levels[0], expect)
    assert_pyramid(levels)


def test_readers_see_a_stamp_before_its_chunks_are_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import analysis.io._label_edits as le

    monkeypatch.setattr(le, "FLUSH_DELAY_S", 600.0)
    lab = blobs(SHAPE)
    pr = make_project(tmp_path, lab)
    store = pr.edit_labels("cells")
    centre, value = (20, 25, 30), 77
    pr.history.apply(PaintBall("cells", centre, RADIUS_UM, value))
    expect = lab.copy()
    expect[ball_reference(SHAPE, centre, RADIUS_UM)] = value
    copy = tmp_path / "p" / "labels" / "cells.zarr"
    assert store.n_unwritten > 0  # type: ignore[attr-defined]
    group = zarr.open_group(str(copy), mode="r")
    np.testing.assert_array_equal(group["s0"][...], lab)  # the files: not yet
    # The layer's source (slice views, streamed bricks) and the store read the edit.
    src = store.source  # type: ignore[attr-defined]
    np.testing.assert_array_equal(np.asarray(src.read(0)), expect)
    got = src.read_many([(1, None), (0, (slice(15, 25), slice(20, 30), slice(25, 35)))])
    np.testing.assert_array_equal(np.asarray(got[0]), expect[::2, ::2, ::2])
    np.testing.assert_array_equal(np.asarray(got[1]), expect[15:25, 20:30, 25:35])
    np.testing.assert_array_equal(
        store.read((slice(15, 25), slice(None), slice(28, 33))), expect[15:25, :, 28:33]
    )
    pr.close()  # writes them
    assert not copy.with_name("cells.pending.json").exists()
    levels = levels_of(copy)
    np.testing.assert_array_equal(levels[0], expect)
    assert_pyramid(levels)


def test_export_and_undo_right_after_a_stamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import analysis.io._label_edits as le

    monkeypatch.setattr(le, "FLUSH_DELAY_S", 600.0)
    lab = blobs(SHAPE)
    pr = make_project(tmp_path, lab)
    pr.edit_labels("cells")
    centre, value = (12, 30, 20), 55
    pr.history.apply(PaintBall("cells", centre, RADIUS_UM, value))
    out = pr.export_labels("cells", tmp_path / "out.zarr")
    expect = lab.copy()
    expect[ball_reference(SHAPE, centre, RADIUS_UM)] = value
    exported = levels_of(out)
    np.testing.assert_array_equal(exported[0], expect)
    assert_pyramid(exported)
    pr.history.undo()
    out2 = pr.export_labels("cells", tmp_path / "out2.zarr")
    np.testing.assert_array_equal(levels_of(out2)[0], lab)
    pr.close()


def test_a_reader_never_sees_a_stale_chunk_while_stamps_are_written_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A view's thread reads the whole image (the layer's source: the files, then the
    chunks not yet written from memory) and a region (the store's chunks) while stamps
    land and the writer puts chunks into the files: every read equals the NumPy model
    after some stamp made between the read's start and end, never an older one."""
    import threading

    import analysis.io._label_edits as le

    monkeypatch.setattr(le, "FLUSH_DELAY_S", 0.005)
    monkeypatch.setattr(le, "QUIET_S", 0.02)
    monkeypatch.setattr(le, "MAX_AGE_S", 0.05)
    lab = blobs(SHAPE)
    pr = make_project(tmp_path, lab)
    store = pr.edit_labels("cells")
    states = [lab]
    model = lab.copy()
    for i in range(30):
        centre, value = stamp(i)
        model[ball_reference(SHAPE, centre, RADIUS_UM)] = value
        states.append(model.copy())
    done = {"n": 0}  # stamps applied (set before a stamp starts: the newest allowed)
    bad: list[str] = []
    reads = {"n": 0}
    box = (slice(10, 30), slice(5, 45), slice(20, 50))

    def check(got: np.ndarray, lo: int, hi: int, what: str, sub: tuple[slice, ...]) -> None:
        if not any(np.array_equal(got, states[j][sub]) for j in range(lo, hi + 1)):
            bad.append(f"{what}: not a state between stamps {lo} and {hi}")

    def reader() -> None:
        whole = (slice(None),) * 3
        while done["n"] < len(states) - 1 and not bad:
            lo = done["n"]
            got = np.asarray(store.source.read(0))  # type: ignore[attr-defined]
            check(got, lo, min(done["n"] + 1, len(states) - 1), "source", whole)
            lo = done["n"]
            got = store.read(box)
            check(got, lo, min(done["n"] + 1, len(states) - 1), "store", box)
            reads["n"] += 1

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(30):
            centre, value = stamp(i)
            pr.history.apply(PaintBall("cells", centre, RADIUS_UM, value))
            done["n"] = i + 1
            time.sleep(0.005)
    finally:
        done["n"] = len(states) - 1
        t.join(timeout=60)
    assert not t.is_alive()
    assert not bad, bad[:3]
    assert reads["n"] > 3 and store._n_written > 0  # type: ignore[attr-defined]
    pr.close()
    np.testing.assert_array_equal(levels_of(tmp_path / "p" / "labels" / "cells.zarr")[0], model)
