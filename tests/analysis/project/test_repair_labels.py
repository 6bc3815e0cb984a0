"""Repairing a journal that drops label edits also takes their voxels out of the working
copy (every level), so the copy agrees with the repaired journal."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.edits import PaintBall
from analysis.project import Project
from tests.analysis.edits._labels_support import assert_pyramid, blobs, levels_of, make_project


def test_repair_reverts_the_dropped_label_edits(tmp_path: Path) -> None:
    pr = make_project(tmp_path, blobs())
    folder = pr.path
    copy = folder / "labels" / "cells.zarr"
    pr.edit_labels("cells")
    pr.history.apply(PaintBall("cells", (18, 28, 20), 0.07, 9))  # line 2: kept
    kept = levels_of(copy)  # the copy as it was (zarr-python's reading)
    pr.history.apply(PaintBall("cells", (20, 30, 25), 0.08, 7))  # line 3: damaged below
    pr.history.apply(PaintBall("cells", (22, 30, 28), 0.05, 4))  # line 4
    pr.history.undo()  # line 5
    pr.history.apply(PaintBall("cells", (19, 29, 22), 0.06, 0))  # line 6: over all of them
    assert not np.array_equal(levels_of(copy)[0], kept[0])
    pr.close()

    journal = folder / "journal.jsonl"
    lines = journal.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"labels.paint", b"labels.pain!", 1)
    journal.write_bytes(b"\n".join(lines))

    with Project.open(folder, repair=True) as pr2:
        assert len(pr2.history.undo_steps) == 1
        now = levels_of(copy)
        assert len(now) == len(kept)
        for a, b in zip(now, kept, strict=True):
            np.testing.assert_array_equal(a, b)
        assert_pyramid(now)
        atoms = sorted(p.parent.name for p in (folder / "labels").glob("cells.atoms*/*.npz"))
        assert atoms.count("cells.atoms") == 1 and len(atoms) == 4  # 3 moved aside
        pr2.history.undo()  # the kept edit still undoes exactly
        np.testing.assert_array_equal(levels_of(copy)[0], blobs())
    with Project.open(folder) as pr3:  # and the repaired project reopens as it was left
        assert len(pr3.history.redo_steps) == 1
        np.testing.assert_array_equal(levels_of(copy)[0], blobs())
