"""Lock ids, relabel and interpolate against NumPy references and analytic shapes.

Level 0 is read back with zarr-python and checked against NumPy (a ball of voxel centres
within the radius, ``np.where`` relabels) or against an analytic disc area; every coarser
level against the writer's stride rule; undo must restore the exact arrays and the locks.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from analysis.edits import (
    ApplyTable,
    DeleteLabels,
    FillLabel,
    InterpolateLabel,
    LockLabels,
    MergeLabels,
    PaintBall,
    RelabelLabel,
    SplitLabel,
    UnlockLabels,
    locked_ids,
)
from analysis.errors import InvalidEditError
from analysis.project import Project
from tests.analysis.edits._labels_support import (
    ball_reference as _ball,
)
from tests.analysis.edits._labels_support import (
    blobs,
    make_project,
)
from tests.analysis.edits._labels_support import (
    label_state as _state,
)


@pytest.fixture
def project(tmp_path: Path):
    pr = make_project(tmp_path, blobs())
    pr.edit_labels("cells")
    yield pr
    pr.close()


def _locked(pr: Project) -> set[int]:
    return set(locked_ids(pr.workspace.labels["cells"]))


def test_a_stamp_over_a_locked_object_leaves_it_whole(project: Project) -> None:
    lab = blobs()
    start = _state(project)
    project.history.apply(LockLabels("cells", [2]))
    assert _locked(project) == {2}
    # A ball over objects 1, 2 and 3 and background: everything but object 2 becomes 7.
    center, r = (20, 28, 22), 0.12
    ball = _ball(lab.shape, center, r)
    assert (ball & (lab == 2)).sum() > 1000 and (ball & (lab == 1)).any()
    project.history.apply(PaintBall("cells", center, r, 7))
    expect = np.where(ball & (lab != 2), 7, lab)
    np.testing.assert_array_equal(_state(project)[0], expect)
    # Erase too goes around it; a 2D disc (slice brush) as well.
    project.history.apply(PaintBall("cells", center, r, 0, axis=0))
    disc = ball & (np.arange(lab.shape[0]) == center[0])[:, None, None]
    expect2 = np.where(disc & (expect != 2), 0, expect)
    np.testing.assert_array_equal(_state(project)[0], expect2)
    np.testing.assert_array_equal(_state(project)[0] == 2, lab == 2)
    # Undo the two stamps, then the lock: the lock state is undone too.
    project.history.undo()
    project.history.undo()
    project.history.undo()
    assert _locked(project) == set()
    for a, b in zip(_state(project), start, strict=True):
        np.testing.assert_array_equal(a, b)
    project.history.redo()
    assert _locked(project) == {2}


def test_locks_are_journaled_and_unlock_undoes(tmp_path: Path) -> None:
    pr = make_project(tmp_path, blobs())
    pr.edit_labels("cells")
    pr.history.apply(LockLabels("cells", [1, 3]))
    pr.history.apply(UnlockLabels("cells", [3]))
    pr.close()
    with Project.open(tmp_path / "p", fsync=False) as pr2:  # replayed from the journal
        assert _locked(pr2) == {1}
        pr2.history.undo()  # the unlock
        assert _locked(pr2) == {1, 3}
        pr2.history.undo()  # the lock
        assert _locked(pr2) == set()


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda: PaintBall("cells", (10, 10, 10), 0.05, 2), "locked"),
        (lambda: PaintBall("cells", (10, 10, 10), 0.05, 0, erase_id=2), "locked"),
        (lambda: FillLabel("cells", (25, 10, 10), 4, (20, 5, 5, 30, 20, 20)), "locked"),
        (lambda: MergeLabels("cells", [1, 2]), "locked"),
        (lambda: MergeLabels("cells", [1, 3], into=2), "locked"),
        (lambda: ApplyTable("cells", [[1, 4], [2, 5]]), "locked"),
        (lambda: ApplyTable("cells", [[1, 2]]), "locked"),
        (lambda: InterpolateLabel("cells", 2, 0, 21, 30), "locked"),
        (lambda: DeleteLabels("cells", [2]), "locked"),
        (lambda: SplitLabel("cells", 2, [[21, 6, 6], [33, 28, 38]]), "locked"),
        (lambda: RelabelLabel("cells", 2), "locked"),
        (lambda: LockLabels("cells", [2]), "already locked"),
        (lambda: UnlockLabels("cells", [1]), "not locked"),
        (lambda: LockLabels("cells", [9]), "not in label image"),
        (lambda: LockLabels("cells", [0]), "background"),
    ],
)
def test_locked_objects_refuse_edits(project: Project, make, needle: str) -> None:
    project.history.apply(LockLabels("cells", [2]))
    before = _state(project)
    with pytest.raises(InvalidEditError, match=needle):
        project.history.apply(make())
    for a, b in zip(_state(project), before, strict=True):
        np.testing.assert_array_equal(a, b)
    assert _locked(project) == {2}


def test_fill_goes_around_locked_objects(project: Project) -> None:
    lab = blobs()
    project.history.apply(LockLabels("cells", [3]))
    # Filling the background of one z slice: object 3 (locked) is not background, so it
    # stays; the reference is the background of the slice connected to the seed.
    from skimage.segmentation import flood

    box = (10, 0, 0, 11, 50, 60)
    project.history.apply(FillLabel("cells", (10, 0, 0), 4, box))
    ref = lab.copy()
    sl = lab[10:11]
    ref[10:11][flood(sl, (0, 0, 0), connectivity=1)] = 4
    np.testing.assert_array_equal(_state(project)[0], ref)
    np.testing.assert_array_equal(_state(project)[0] == 3, lab == 3)


def test_relabel_matches_numpy(project: Project) -> None:
    lab = blobs()
    start = _state(project)
    cmd = RelabelLabel("cells", 3)
    project.history.apply(cmd)
    assert cmd.to == int(lab.max()) + 1
    np.testing.assert_array_equal(_state(project)[0], np.where(lab == 3, lab.max() + 1, lab))
    project.history.apply(RelabelLabel("cells", 1, to=40))
    expect = np.where(lab == 3, lab.max() + 1, np.where(lab == 1, 40, lab))
    np.testing.assert_array_equal(_state(project)[0], expect)
    project.history.undo()
    project.history.undo()
    for a, b in zip(_state(project), start, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "to, needle",
    [(2, "in use"), (0, "background"), (1, "already has"), (70000, "does not fit")],
)
def test_relabel_refuses(tmp_path: Path, to: int, needle: str) -> None:
    pr = make_project(tmp_path, blobs().astype(np.uint16))
    pr.edit_labels("cells")
    before = _state(pr)
    with pytest.raises(InvalidEditError, match=needle):
        pr.history.apply(RelabelLabel("cells", 1, to=to))
    with pytest.raises(InvalidEditError, match="not in label image"):
        pr.history.apply(RelabelLabel("cells", 8))
    pr.history.apply(LockLabels("cells", [5]))
    with pytest.raises(InvalidEditError, match="locked"):
        pr.history.apply(RelabelLabel("cells", 1, to=5))  # 5 is in use and locked
    for a, b in zip(_state(pr), before, strict=True):
        np.testing.assert_array_equal(a, b)
    pr.close()


def _disc(shape2d, center, r) -> np.ndarray:
    yy, xx = np.indices(shape2d)
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= r * r


@pytest.mark.parametrize("axis", [0, 2])
def test_interpolate_two_discs_gives_linear_radius(tmp_path: Path, axis: int) -> None:
    shape = [72, 72, 72]
    k1, k2, r1, r2 = 12, 52, 10.0, 28.0
    lab = np.zeros(shape, np.uint32)
    c = (35, 36)
    # Another object across the slab (it keeps its voxels; the sections cut through it)
    # and one outside the slab.
    other = [slice(30, 40)] * 3
    other[axis] = slice(k1 - 5, k2 + 5)
    lab[tuple(other)] = 9
    plane: list[slice | int] = [slice(None)] * 3
    for k, r in ((k1, r1), (k2, r2)):
        plane[axis] = k
        lab[tuple(plane)] = np.where(_disc((72, 72), c, r), 6, 0)
    outside = [slice(0, 72)] * 3
    outside[axis] = slice(k2 + 3, k2 + 6)
    lab[tuple(outside)] = np.where(lab[tuple(outside)] == 0, 4, lab[tuple(outside)])
    pr = make_project(tmp_path, lab)
    pr.edit_labels("cells")
    start = _state(pr)
    pr.history.apply(InterpolateLabel("cells", 6, axis, k2, k1))  # either order
    got = _state(pr)[0]
    changed = got != lab
    # Only background voxels strictly between the sections, and only to 6.
    assert (lab[changed] == 0).all() and (got[changed] == 6).all()
    ks = np.nonzero(changed.any(axis=tuple(a for a in range(3) if a != axis)))[0]
    assert ks.min() == k1 + 1 and ks.max() == k2 - 1
    np.testing.assert_array_equal(got == 9, lab == 9)
    errors = []
    for k in range(k1 + 1, k2):
        plane[axis] = k
        sl = got[tuple(plane)]
        r = r1 + (r2 - r1) * (k - k1) / (k2 - k1)
        # The object (with the other object's square, which it could not fill) is the
        # analytic disc of radius r(k), linear in k: its area-equivalent radius is within
        # the lattice's quantisation (0.6 voxel) of r(k), its area on average within 1.5 %.
        obj = (sl == 6) | ((sl == 9) & _disc((72, 72), c, r + 1))
        assert abs(math.sqrt(obj.sum() / math.pi) - r) < 0.6, (k, obj.sum(), math.pi * r * r)
        errors.append(abs(obj.sum() / (math.pi * r * r) - 1))
        yx = np.argwhere(obj).mean(axis=0)
        np.testing.assert_allclose(yx, c, atol=0.6)
        # Nothing beyond the disc of radius r + 1 voxel.
        assert not ((sl == 6) & ~_disc((72, 72), c, r + 1)).any()
    assert np.mean(errors) < 0.015, errors
    pr.history.undo()
    for a, b in zip(_state(pr), start, strict=True):
        np.testing.assert_array_equal(a, b)
    pr.close()


@pytest.mark.parametrize(
    "args, needle",
    [
        ((1, 0, 6, 20), "no voxels on section z=20"),
        ((1, 0, 6, 7), "no slice between"),
        ((1, 0, 6, 99), "outside the label image"),
        ((0, 0, 6, 20), "background"),
        ((1, 3, 6, 20), "axis must be"),
    ],
)
def test_interpolate_refuses(project: Project, args, needle: str) -> None:
    before = _state(project)
    with pytest.raises(InvalidEditError, match=needle):
        project.history.apply(InterpolateLabel("cells", *args))
    for a, b in zip(_state(project), before, strict=True):
        np.testing.assert_array_equal(a, b)
