"""Merges and tables as an id mapping (``docs/design/0005``), against NumPy references.

A merge writes no voxel and no atom: the stored levels (zarr-python) stay the fragments,
every reader (the mapped source, the export) shows NumPy's lookup, and after a merge
paint / fill / split / delete / lock treat the merged object as one object.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from skimage.segmentation import flood

from analysis.edits import (
    ApplyTable,
    DeleteLabels,
    FillLabel,
    LabelAtom,
    LockLabels,
    MergeLabels,
    PaintBall,
    RelabelLabel,
    SplitLabel,
    command_from_json,
)
from analysis.errors import FormatError, LabelEditError
from analysis.project import Project
from tests.analysis.edits._labels_support import (
    ball_reference,
    blobs,
    id_mapping,
    label_state,
    levels_of,
    lookup,
    make_project,
    raw_state,
)


@pytest.fixture
def project(tmp_path: Path):
    pr = make_project(tmp_path, blobs())
    pr.edit_labels("cells")
    yield pr
    pr.close()


def _journal(pr: Project) -> list[dict]:
    lines = (pr.path / "journal.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines if x.strip()]


def test_merge_writes_no_voxel_and_every_reader_shows_the_lookup(
    project: Project, tmp_path: Path
) -> None:
    img = project.workspace.labels["cells"]
    raw0 = raw_state(project)
    atoms = img.atoms_dir  # type: ignore[attr-defined]
    n_atoms = len(list(atoms.glob("*.npz"))) if atoms.is_dir() else 0
    project.history.apply(MergeLabels("cells", [3, 1, 5]))
    ref = blobs()
    ref[np.isin(ref, [3, 5])] = 1
    # stored voxels: unchanged, and no undo data was written for the merge
    for a, b in zip(raw_state(project), raw0, strict=True):
        np.testing.assert_array_equal(a, b)
    assert (len(list(atoms.glob("*.npz"))) if atoms.is_dir() else 0) == n_atoms
    # the mapped source (what views draw), every level and a few sub-regions
    src = img.source  # type: ignore[attr-defined]
    for k in range(len(src.levels)):
        f = 2**k
        np.testing.assert_array_equal(src.read(k), ref[::f, ::f, ::f], err_msg=f"level {k}")
    np.testing.assert_array_equal(
        src.read(0, (slice(3, 9), slice(0, 50), slice(40, 60))), ref[3:9, :, 40:60]
    )
    many = src.read_many([(0, (slice(0, 16), slice(16, 32), slice(0, 16))), (1, None)])
    np.testing.assert_array_equal(many[0], ref[0:16, 16:32, 0:16])
    np.testing.assert_array_equal(many[1], ref[::2, ::2, ::2])
    # the export makes it permanent (zarr-python), the working copy keeps the fragments
    out = project.export_labels("cells", tmp_path / "out.zarr")
    for k, lv in enumerate(levels_of(out)):
        f = 2**k
        np.testing.assert_array_equal(lv, ref[::f, ::f, ::f])
    np.testing.assert_array_equal(raw_state(project)[0], blobs())
    # the journal line carries the mapping entries, no atom
    line = _journal(project)[-1]["cmd"]["args"]
    assert line["atom"] is None and sorted(line["map"]) == [[3, None, 1], [5, None, 1]]
    # undo: the mapping is empty again, nothing shown differs from the start
    project.history.undo()
    assert id_mapping(project) == {}
    np.testing.assert_array_equal(src.read(0), blobs())


def test_a_merged_object_is_one_object_for_every_command(project: Project) -> None:
    img = project.workspace.labels["cells"]
    project.history.apply(MergeLabels("cells", [1, 2]))  # boxes z 5:20 and 20:35 -> one
    ref = blobs()
    ref[ref == 2] = 1
    np.testing.assert_array_equal(label_state(project)[0], ref)

    # preserve painting with the merged id paints over the other fragment's voxels too
    ball = ball_reference(ref.shape, (20, 10, 10), 0.06)
    project.history.apply(PaintBall("cells", (20, 10, 10), 0.06, 1, preserve=True))
    ref[ball & ((ref == 0) | (ref == 1))] = 1
    np.testing.assert_array_equal(label_state(project)[0], ref)
    # it wrote only background voxels: both fragments kept their raw values
    raw = raw_state(project)[0]
    assert set(np.unique(raw[blobs() == 2]).tolist()) == {2}

    # a fill from a voxel of fragment 2 fills the whole merged object (within the box)
    box = (0, 0, 0, 40, 50, 40)
    project.history.apply(FillLabel("cells", (30, 10, 10), 7, box))
    sub = ref[:, :, :40]
    sub[flood(sub, (30, 10, 10), connectivity=1)] = 7
    np.testing.assert_array_equal(label_state(project)[0], ref)
    assert (ref[5:20, 5:30, 5:40] == 7).all()  # fragment 1's part of the box too
    project.history.undo()
    project.history.undo()
    ref = blobs()
    ref[ref == 2] = 1

    # lock the merged object: an erase goes around both fragments
    project.history.apply(LockLabels("cells", [1]))
    project.history.apply(PaintBall("cells", (20, 10, 10), 0.06, 0))
    ball = ball_reference(ref.shape, (20, 10, 10), 0.06)
    ref[ball & (ref != 1)] = 0
    np.testing.assert_array_equal(label_state(project)[0], ref)
    with pytest.raises(LabelEditError, match="locked"):
        project.history.apply(DeleteLabels("cells", [1]))
    project.history.undo()
    project.history.undo()
    ref = blobs()
    ref[ref == 2] = 1

    # split by a seed in each fragment: nothing else changes, the seeds end apart, and
    # the first seed's part keeps its raw fragments
    cmd = SplitLabel("cells", 1, [[6, 6, 6], [34, 28, 38]])
    project.history.apply(cmd)
    got = label_state(project)[0]
    obj = ref == 1
    np.testing.assert_array_equal(got[~obj], ref[~obj])
    assert (got[obj] != 0).all()
    assert got[6, 6, 6] == 1 and got[34, 28, 38] == cmd.result_ids[1] != 1
    assert cmd.result_ids[1] > max(5, max(id_mapping(project).values()))
    project.history.undo()

    # delete removes every fragment of the merged object
    project.history.apply(DeleteLabels("cells", [1]))
    np.testing.assert_array_equal(label_state(project)[0], np.where(ref == 1, 0, ref))
    assert not np.isin(raw_state(project)[0], [1, 2]).any()
    # relabel / merge / delete of an id merged away: it no longer exists
    project.history.undo()
    with pytest.raises(LabelEditError, match="unknown"):
        project.history.apply(DeleteLabels("cells", [2]))
    project.history.apply(RelabelLabel("cells", 1, 40))
    ref[ref == 1] = 40
    np.testing.assert_array_equal(label_state(project)[0], ref)

    while project.history.can_undo:
        project.history.undo()
    np.testing.assert_array_equal(raw_state(project)[0], blobs())
    assert id_mapping(project) == {}
    assert img.max_id() == 5


def test_a_table_can_swap_ids_and_painting_a_swapped_id_shows_it(project: Project) -> None:
    project.history.apply(ApplyTable("cells", [[1, 2], [2, 1], [5, 0]]))
    ref = lookup(blobs(), {1: 2, 2: 1, 5: 0})
    np.testing.assert_array_equal(label_state(project)[0], ref)
    project.history.apply(PaintBall("cells", (20, 40, 55), 0.03, 2))
    ref[ball_reference(ref.shape, (20, 40, 55), 0.03)] = 2
    np.testing.assert_array_equal(label_state(project)[0], ref)
    # an id merged away (3 into 4: 3 shows nowhere now) cannot be painted
    project.history.apply(ApplyTable("cells", [[3, 4]]))
    with pytest.raises(LabelEditError, match="merged into 4"):
        project.history.apply(PaintBall("cells", (20, 20, 20), 0.03, 3))
    while project.history.can_undo:
        project.history.undo()
    np.testing.assert_array_equal(raw_state(project)[0], blobs())
    assert id_mapping(project) == {}


def test_the_largest_id_follows_undo(project: Project) -> None:
    """Voxel counts, kept by every write: an undone new id is free again (the largest id
    never went down before)."""
    img = project.workspace.labels["cells"]
    assert img.max_id() == 5
    project.history.apply(PaintBall("cells", (20, 20, 20), 0.03, 6))
    assert img.max_id() == 6
    project.history.undo()
    assert img.max_id() == 5
    project.history.apply(ApplyTable("cells", [[3, 30]]))
    assert img.max_id() == 30  # a mapped value counts
    project.history.apply(DeleteLabels("cells", [30]))
    assert img.max_id() == 30  # raw id 3 is still a key of the mapping


def test_an_older_journal_with_a_merge_atom_replays_as_a_voxel_rewrite(tmp_path: Path) -> None:
    """Journals written before the mapping carry merges and tables as atoms (voxels
    rewritten): they replay, undo and redo exactly as before."""
    pr = make_project(tmp_path, blobs())
    img = pr.edit_labels("cells")
    ref = blobs()
    old = ref.copy()
    new = np.where(np.isin(ref, [1, 2]), 1, ref)
    atom = LabelAtom.from_region((0, 0, 0), old != new, old, new, img.chunks)
    atom_id = img.record(atom)  # type: ignore[attr-defined]
    pr.history.apply(MergeLabels("cells", [1, 2], 1, atom=atom_id))
    line = _journal(pr)[-1]["cmd"]["args"]
    assert line["atom"] == atom_id and "map" not in line
    np.testing.assert_array_equal(raw_state(pr)[0], new)  # written as voxels
    assert id_mapping(pr) == {}
    pr.close()
    with Project.open(tmp_path / "p", fsync=False) as pr2:
        pr2.edit_labels("cells")
        np.testing.assert_array_equal(label_state(pr2)[0], new)
        assert id_mapping(pr2) == {}
        pr2.history.undo()
        np.testing.assert_array_equal(raw_state(pr2)[0], blobs())
        pr2.history.redo()
        np.testing.assert_array_equal(raw_state(pr2)[0], new)


def test_malformed_mapping_entries_are_refused(project: Project) -> None:
    for bad in ("x", [[1, None]], [[1, 2, 2]], [[-1, None, 2]], [[1, None, 2], [1, None, 3]]):
        with pytest.raises(FormatError):
            command_from_json(
                {
                    "kind": "labels.merge",
                    "v": 1,
                    "args": {"labels": "cells", "ids": [1, 2], "map": bad},
                }
            )
    # entries that do not fit the current mapping: refused, nothing changed
    cmd = command_from_json(
        {
            "kind": "labels.merge",
            "v": 1,
            "args": {"labels": "cells", "ids": [1, 2], "map": [[2, 7, 1]]},
        }
    )
    with pytest.raises(LabelEditError):
        project.history.apply(cmd)
    assert id_mapping(project) == {}


def test_mapping_replays_after_reopening(tmp_path: Path) -> None:
    pr = make_project(tmp_path, blobs())
    pr.edit_labels("cells")
    pr.history.apply(MergeLabels("cells", [2, 3]))
    pr.history.apply(ApplyTable("cells", [[2, 9], [1, 3]]))
    ref = lookup(lookup(blobs(), {3: 2}), {2: 9, 1: 3})
    np.testing.assert_array_equal(label_state(pr)[0], ref)
    mapping = id_mapping(pr)
    pr.close()
    with Project.open(tmp_path / "p", fsync=False) as pr2:
        assert id_mapping(pr2) == mapping
        src = pr2.edit_labels("cells").source  # type: ignore[attr-defined]
        np.testing.assert_array_equal(src.read(0), ref)
        np.testing.assert_array_equal(src.read(1), ref[::2, ::2, ::2])
        pr2.history.undo()
        pr2.history.undo()
        np.testing.assert_array_equal(src.read(0), blobs())


def test_the_mapped_read_uses_a_dense_table_or_a_search_alike() -> None:
    """Large raw ids (beyond the dense table) are looked up by binary search: the same
    result as NumPy's ``np.unique`` lookup either way."""
    from analysis.edits import LabelIds

    rng = np.random.default_rng(0)
    for top in (1000, 2**40):
        raw = rng.integers(0, top, (20, 30, 40), dtype=np.uint64)
        keys = rng.choice(np.unique(raw), 300, replace=False)
        mapping = {int(k): int(rng.integers(1, top)) for k in keys}
        ids = LabelIds()
        ids.remap([(k, None, v) for k, v in mapping.items()], True)
        np.testing.assert_array_equal(ids.show(raw), lookup(raw, mapping))
