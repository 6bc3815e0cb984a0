"""Label edit commands against NumPy / SciPy / scikit-image references, on a project copy.

Every test checks level 0 against an independent reference and every coarser level
against the writer's stride rule applied to the edited level above (read back with
zarr-python); undo and redo must restore the exact arrays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.segmentation import flood

from analysis.edits import (
    ApplyTable,
    DeleteLabels,
    FillLabel,
    MergeLabels,
    PaintBall,
    SplitLabel,
)
from analysis.errors import InvalidEditError, LabelEditError, ParameterError
from analysis.io import label_copy_path
from analysis.project import Project
from tests.analysis.edits._labels_support import (
    ball_reference as _ball_reference,
)
from tests.analysis.edits._labels_support import (
    blobs,
    make_project,
)
from tests.analysis.edits._labels_support import (
    label_state as _state,
)


@pytest.fixture(params=["0.4", "0.5"])
def project(request: pytest.FixtureRequest, tmp_path: Path):
    pr = make_project(tmp_path, blobs(), version=request.param)
    pr.edit_labels("cells")
    yield pr
    pr.close()


def _roundtrip(pr: Project, before: list[np.ndarray]) -> None:
    after = _state(pr)
    pr.history.undo()
    for a, b in zip(_state(pr), before, strict=True):
        np.testing.assert_array_equal(a, b)
    pr.history.redo()
    for a, b in zip(_state(pr), after, strict=True):
        np.testing.assert_array_equal(a, b)


def test_paint_erase_preserve_match_numpy(project: Project) -> None:
    ref = blobs()
    before = _state(project)
    ball = _ball_reference(ref.shape, (18, 28, 20), 0.07)
    project.history.apply(PaintBall("cells", (18, 28, 20), 0.07, 9))
    ref[ball] = 9
    np.testing.assert_array_equal(_state(project)[0], ref)
    _roundtrip(project, before)

    # preserve: only background (and 9 itself) is painted
    ball2 = _ball_reference(ref.shape, (20, 30, 45), 0.06)
    project.history.apply(PaintBall("cells", (20, 30, 45), 0.06, 7, preserve=True))
    ref[ball2 & ((ref == 0) | (ref == 7))] = 7
    np.testing.assert_array_equal(_state(project)[0], ref)
    assert (ref[ball2] == 3).any()  # the ball did cover another object, which stayed

    # erase only id 3 inside a ball
    ball3 = _ball_reference(ref.shape, (20, 35, 30), 0.08)
    project.history.apply(PaintBall("cells", (20, 35, 30), 0.08, 0, erase_id=3))
    ref[ball3 & (ref == 3)] = 0
    np.testing.assert_array_equal(_state(project)[0], ref)
    while project.history.can_undo:
        project.history.undo()
    for a, b in zip(_state(project), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_fill_matches_skimage_flood_within_box(project: Project) -> None:
    ref = blobs()
    before = _state(project)
    box = (0, 0, 40, 6, 12, 60)
    project.history.apply(FillLabel("cells", (3, 5, 50), 4, box))  # the hole inside the ring
    sub = ref[0:6, 0:12, 40:60]
    m = flood(sub, (3, 5, 10), connectivity=1)
    sub[m] = 4
    np.testing.assert_array_equal(_state(project)[0], ref)
    assert (ref == 4).sum() == m.sum() == 2 * 2 * 10  # only the hole: the shell walls it in
    _roundtrip(project, before)
    project.history.apply(FillLabel("cells", (0, 0, 0), 6, (0, 0, 0, 10, 10, 10)))
    sub = ref[:10, :10, :10]
    sub[flood(sub, (0, 0, 0), connectivity=1)] = 6
    np.testing.assert_array_equal(_state(project)[0], ref)
    assert (ref[10:] != 6).all() and (ref[:, 10:] != 6).all()  # stayed in the box


def test_merge_delete_table_match_numpy(project: Project) -> None:
    ref = blobs()
    before = _state(project)
    project.history.apply(MergeLabels("cells", [2, 3]))
    ref[ref == 3] = 2
    np.testing.assert_array_equal(_state(project)[0], ref)
    _roundtrip(project, before)
    project.history.apply(ApplyTable("cells", [[1, 10], [2, 11], [5, 5]]))
    lut = np.arange(20)
    lut[[1, 2]] = [10, 11]
    ref = lut[ref]
    np.testing.assert_array_equal(_state(project)[0], ref)
    project.history.apply(DeleteLabels("cells", [10, 5]))
    ref[np.isin(ref, [10, 5])] = 0
    np.testing.assert_array_equal(_state(project)[0], ref)
    while project.history.can_undo:
        project.history.undo()
    for a, b in zip(_state(project), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_split_by_two_seeds(project: Project) -> None:
    ref = blobs()
    cmd = SplitLabel("cells", 3, [[8, 37, 12], [30, 37, 47]])
    project.history.apply(cmd)
    got = _state(project)[0]
    body = ref == 3
    np.testing.assert_array_equal(got[~body], ref[~body])  # nothing outside changes
    assert (got[body] != 0).all()  # no voxel of the object becomes background
    a, b = cmd.result_ids
    assert a == 3 and b == 6  # above the largest id (5)
    assert got[8, 37, 12] == a and got[30, 37, 47] == b
    assert set(np.unique(got[body])) == {a, b}
    # each part is one connected piece (a watershed from one seed)
    for v in (a, b):
        assert ndi.label(got == v)[1] == 1


@pytest.mark.parametrize(
    ("cmd", "needle"),
    [
        (MergeLabels("cells", [1, 77]), "unknown"),
        (MergeLabels("cells", [0, 1]), "background"),
        (MergeLabels("cells", [1, 1]), "two different"),
        (DeleteLabels("cells", [42]), "unknown"),
        (ApplyTable("cells", [[1, 2], [1, 3]]), "more than once"),
        (ApplyTable("cells", [[0, 2]]), "background"),
        (SplitLabel("cells", 1, [[10, 10, 10], [10, 10, 10]]), "coincide"),
        (SplitLabel("cells", 1, [[10, 10, 10], [0, 0, 0]]), "outside object 1"),
        (SplitLabel("cells", 1, [[10, 10, 10]]), "two seeds"),
        (SplitLabel("cells", 0, [[0, 0, 0], [0, 0, 1]]), "background"),
        (SplitLabel("cells", 1, [[10, 10, 10], [99, 0, 0]]), "outside the label image"),
        (PaintBall("cells", (99, 0, 0), 0.05, 3), "outside"),
        (PaintBall("cells", (1, 1, 1), 0.05, 2**40), "does not fit"),
        (FillLabel("cells", (20, 20, 20), 3, (0, 0, 0, 5, 5, 5)), "outside the box"),
        (MergeLabels("other", [1, 2]), "no editable label image"),
    ],
)
def test_refused_edits_change_nothing(project: Project, cmd, needle: str) -> None:
    before = _state(project)
    journal = (project.path / "journal.jsonl").read_bytes()
    with pytest.raises(LabelEditError, match=needle) as info:
        project.history.apply(cmd)
    assert isinstance(info.value, ParameterError) and isinstance(info.value, InvalidEditError)
    for a, b in zip(_state(project), before, strict=True):
        np.testing.assert_array_equal(a, b)
    assert (project.path / "journal.jsonl").read_bytes() == journal
    assert not project.history.can_undo


def test_float_labels_are_refused(tmp_path: Path) -> None:
    from tests.analysis.io._support import write_with_ome_zarr

    store = write_with_ome_zarr(
        tmp_path / "f.zarr",
        np.zeros((8, 8, 8), np.uint8),
        version="0.5",
        labels={"cells": np.ones((8, 8, 8), np.float32)},
    )
    with Project.create(tmp_path / "p", image=store, labels=["cells"], fsync=False) as pr:
        with pytest.raises(LabelEditError, match="not integer"):
            pr.edit_labels("cells")
        assert not label_copy_path(pr.path, "cells").exists()


def test_reopen_replays_and_undo_continues(tmp_path: Path) -> None:
    pr = make_project(tmp_path, blobs())
    pr.edit_labels("cells")
    start = _state(pr)
    pr.history.apply(MergeLabels("cells", [1, 2]))
    pr.history.apply(PaintBall("cells", (20, 20, 20), 0.05, 8))
    end = _state(pr)
    pr.close()
    with Project.open(tmp_path / "p", fsync=False) as pr2:
        for a, b in zip(_state(pr2), end, strict=True):
            np.testing.assert_array_equal(a, b)
        pr2.history.undo()
        pr2.history.undo()
        for a, b in zip(_state(pr2), start, strict=True):
            np.testing.assert_array_equal(a, b)


def test_a_written_but_unjournaled_edit_is_rolled_back(tmp_path: Path) -> None:
    """The process died after writing the voxels, before the journal line: not acknowledged."""
    pr = make_project(tmp_path, blobs())
    img = pr.edit_labels("cells")
    pr.history.apply(MergeLabels("cells", [1, 2]))
    acked = _state(pr)
    cmd = DeleteLabels("cells", [3])
    cmd.apply(pr.workspace)  # writes the store, but History never journals it
    assert not (_state(pr)[0] == 3).any()
    del img
    pr.history.close()
    with Project.open(tmp_path / "p", fsync=False) as pr2:
        for a, b in zip(_state(pr2), acked, strict=True):
            np.testing.assert_array_equal(a, b)


def test_a_journaled_undo_is_completed_on_reopen(tmp_path: Path) -> None:
    """The undo was journaled, but when the process died the files held its voxels only
    half written: reopening finishes it."""
    pr = make_project(tmp_path, blobs())
    img = pr.edit_labels("cells")
    start = _state(pr)
    cmd = DeleteLabels("cells", [1, 2])  # a voxel rewrite (a merge writes no voxel)
    pr.history.apply(cmd)
    atom = img.load(cmd.atom_id)  # type: ignore[attr-defined]
    pr.history.undo()
    # a torn write: the deleted values back in the first chunk only, put into the files
    half = type(atom)(atom.pieces[:1])
    img._write(half, True)  # type: ignore[attr-defined]
    assert not np.array_equal(_state(pr)[0], start[0])  # (flushed to the files)
    pr.history.close()  # the process dies: nothing more is written, the lock goes
    with Project.open(tmp_path / "p", fsync=False) as pr2:
        for a, b in zip(_state(pr2), start, strict=True):
            np.testing.assert_array_equal(a, b)
        assert pr2.history.can_redo


def test_only_touched_chunks_are_written(tmp_path: Path) -> None:
    pr = make_project(tmp_path, np.zeros((64, 64, 64), np.uint16) + 1, chunks=16)
    pr.edit_labels("cells")
    copy = label_copy_path(pr.path, "cells")
    files = {p: p.stat().st_mtime_ns for p in copy.rglob("*") if p.is_file()}
    import time

    time.sleep(0.01)
    pr.history.apply(PaintBall("cells", (8, 8, 8), 0.03, 2))  # inside chunk (0, 0, 0)
    pr.workspace.flush_labels()  # the write-behind writer's chunk writes
    changed = sorted(
        str(p.relative_to(copy)) for p, t in files.items() if p.stat().st_mtime_ns != t
    )
    # one chunk per level: (0,0,0) of s0, s1, s2 (a 3-voxel ball around (8,8,8) holds
    # samples of every level) and nothing else
    assert len(changed) == 3, changed
    assert all(c.replace("\\", "/").split("/")[-3:] == ["0", "0", "0"] for c in changed), changed


@pytest.mark.parametrize("packed_by", ["caller", "atom thread"])
@pytest.mark.parametrize("where", ["objects", "empty space", "half painted"])
def test_the_undo_data_holds_exactly_the_voxels_that_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, packed_by: str, where: str
) -> None:
    """Whether its file is packed by the caller (a small atom: a stamp) or on the atom
    thread (a big one), and whether the ball covers objects, only chunks no edit has
    touched (whose old values are kept as one value), or space the same brush half
    painted already (so only part of the ball changes: not the ball's mask, kept once
    for a ball that changes whole), the atom read back from disk names exactly the
    voxels the edit changed (NumPy's comparison of level 0 before and after), with
    their old and new values, and reopening the project undoes it."""
    from analysis.io import _label_edits

    if packed_by == "atom thread":
        monkeypatch.setattr(_label_edits, "_INLINE_ATOM_VOXELS", 0)
    start = blobs((64, 80, 64))
    pr = make_project(tmp_path, start)
    img = pr.edit_labels("cells")
    centre = (20, 28, 30) if where == "objects" else (32, 64, 32)
    if where == "half painted":
        pr.history.apply(PaintBall("cells", (32, 60, 32), 0.12, 7))
        start = _state(pr)[0]
    ball = _ball_reference(start.shape, centre, 0.12)
    assert start[ball].any() == (where != "empty space")
    cmd = PaintBall("cells", centre, 0.12, 7)
    pr.history.apply(cmd)
    after = _state(pr)[0]
    atom = img.load(cmd.atom_id)  # type: ignore[attr-defined]
    changed = np.zeros(start.shape, bool)
    for p in atom.pieces:
        region = p.region
        assert not changed[region][p.mask].any()  # no voxel in two pieces
        changed[region][p.mask] = True
        np.testing.assert_array_equal(p.old, start[region][p.mask])
        np.testing.assert_array_equal(p.new, after[region][p.mask])
    np.testing.assert_array_equal(changed, start != after)
    assert changed.sum() > 1000
    with np.load(img.atoms_dir / f"{cmd.atom_id}.npz") as z:  # type: ignore[attr-defined]
        # Old values kept as one value exactly when they are one value.
        assert ("old_value" in z.files) == (np.unique(start[changed]).size == 1)
        assert ("old_value" in z.files) == (where != "objects")
        # The ball's mask kept once exactly when every voxel of the ball changed.
        assert ("footprint" in z.files) == bool(changed.sum() == ball.sum())
        assert ("footprint" in z.files) == (where != "half painted")
    pr.close()
    with Project.open(tmp_path / "p", fsync=False) as pr2:
        pr2.history.undo()
        np.testing.assert_array_equal(_state(pr2)[0], start)
