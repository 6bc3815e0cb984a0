"""Random label edit sequences (hypothesis state machine, like the track edits).

After every step every level is the writer's stride rule applied to the level above;
a refused edit changes nothing; undo restores the exact state before the step (stored
voxels, the id mapping, what is shown, locked ids); no edit changes a voxel of a locked
object; a merge or a table shows exactly NumPy's lookup of what was shown before and
writes no voxel; at the end, undo all gives the start and redo all the end again (and
the same locks), also after reopening (the journal replays the id mapping).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from analysis.edits import (
    ApplyTable,
    Command,
    CommitLabels,
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
from analysis.io import label_copy_path
from analysis.project import Project
from tests.analysis.edits._labels_support import (
    assert_pyramid,
    id_mapping,
    levels_of,
    lookup,
    make_store,
)

SHAPE = (20, 22, 26)


def _start() -> np.ndarray:
    rng = np.random.default_rng(3)
    lab = np.zeros(SHAPE, np.uint16)
    for v in range(1, 6):
        z, y, x = rng.integers(0, 14, 3)
        lab[z : z + 7, y : y + 8, x : x + 10] = v
    return lab


_STORE_DIR = Path(tempfile.mkdtemp(prefix="vrscope-label-sm-"))
atexit.register(shutil.rmtree, _STORE_DIR, True)
_STORE = make_store(_STORE_DIR / "img.zarr", _start(), chunks=8)


class LabelEdits(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="vrscope-label-p-"))
        self.pr = Project.create(self.dir / "p", image=_STORE, labels=["cells"], fsync=False)
        self.pr.edit_labels("cells")
        self.copy = label_copy_path(self.pr.path, "cells")
        self.start = self._now()
        self.history: list[list[np.ndarray]] = [self.start]  # state after each undo step
        self.locks: list[frozenset[int]] = [frozenset()]  # locked ids after each step
        self.maps: list[dict[int, int]] = [{}]  # id mapping after each step

    def _now(self, pr: Project | None = None) -> list[np.ndarray]:
        """The stored levels (zarr-python), then the same levels as shown (NumPy's lookup
        of the id mapping): both must be restored exactly."""
        raw = levels_of(self.copy)
        mapping = id_mapping(pr or self.pr)
        return raw + [lookup(lv, mapping) for lv in raw]

    def _shown0(self) -> np.ndarray:
        return self._now()[len(self._now()) // 2]

    def _locked(self) -> frozenset[int]:
        return locked_ids(self.pr.workspace.labels["cells"])

    def _try(self, cmd: Command) -> bool:
        before = self._now()
        locked = self._locked()
        mapping = id_mapping(self.pr)
        try:
            self.pr.history.apply(cmd)
        except InvalidEditError:
            for a, b in zip(self._now(), before, strict=True):
                np.testing.assert_array_equal(a, b)
            assert self._locked() == locked
            assert id_mapping(self.pr) == mapping
            return False
        now = self._now()
        n = len(now) // 2
        for v in locked:  # a locked object keeps exactly its (shown) voxels
            np.testing.assert_array_equal(now[n] == v, before[n] == v)
        self.history.append(now)
        self.locks.append(self._locked())
        self.maps.append(id_mapping(self.pr))
        return True

    def _ids(self) -> list[int]:
        return [int(v) for v in np.unique(self._shown0()) if v]

    def _point(self, data: st.DataObject) -> tuple[int, int, int]:
        return tuple(data.draw(st.integers(0, s - 1)) for s in SHAPE)  # type: ignore[return-value]

    @rule(data=st.data(), value=st.integers(0, 8), preserve=st.booleans())
    def paint(self, data: st.DataObject, value: int, preserve: bool) -> None:
        r = data.draw(st.sampled_from([0.01, 0.025, 0.04]))
        self._try(PaintBall("cells", self._point(data), r, value, preserve=preserve))

    @rule(data=st.data(), value=st.integers(0, 8))
    def fill(self, data: st.DataObject, value: int) -> None:
        a, b = self._point(data), self._point(data)
        lo = [min(i, j) for i, j in zip(a, b, strict=True)]
        hi = [max(i, j) + 1 for i, j in zip(a, b, strict=True)]
        self._try(FillLabel("cells", a, value, (*lo, *hi)))

    @rule(data=st.data())
    def merge(self, data: st.DataObject) -> None:
        ids = self._ids() + [98, 99]  # 98 and 99 never exist: refused (and 2 to draw from)
        pick = data.draw(st.lists(st.sampled_from(ids), min_size=2, max_size=3, unique=True))
        before = self._now()
        if self._try(MergeLabels("cells", pick)):
            n = len(before) // 2
            now = self._now()
            for k in range(n):  # no voxel written; shown: NumPy's merge of what was shown
                np.testing.assert_array_equal(now[k], before[k])
                ref = np.where(np.isin(before[n + k], pick), min(pick), before[n + k])
                np.testing.assert_array_equal(now[n + k], ref)

    @rule(data=st.data())
    def table(self, data: st.DataObject) -> None:
        ids = self._ids()
        olds = data.draw(st.lists(st.sampled_from(ids + [97]), min_size=1, max_size=4, unique=True))
        news = data.draw(
            st.lists(st.sampled_from(ids + [0, 40, 41]), min_size=len(olds), max_size=len(olds))
        )
        table = [[a, b] for a, b in zip(olds, news, strict=True)]
        before = self._now()
        if self._try(ApplyTable("cells", table)):
            n = len(before) // 2
            now = self._now()
            for k in range(n):  # rows apply at once (swaps too), to what was shown
                np.testing.assert_array_equal(now[k], before[k])
                ref = lookup(before[n + k], {a: b for a, b in table})
                np.testing.assert_array_equal(now[n + k], ref)

    @precondition(lambda self: bool(id_mapping(self.pr)))  # else refused: a wasted step
    @rule()
    def commit(self) -> None:
        before = self._now()
        if self._try(CommitLabels("cells")):
            n = len(before) // 2
            now = self._now()
            assert id_mapping(self.pr) == {}
            for k in range(n):  # what was shown is now stored, and still shown
                np.testing.assert_array_equal(now[k], before[n + k])
                np.testing.assert_array_equal(now[n + k], before[n + k])

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        ids = self._ids() + [0]
        self._try(DeleteLabels("cells", [data.draw(st.sampled_from(ids))]))

    @rule(data=st.data())
    def split(self, data: st.DataObject) -> None:
        ids = self._ids()
        if not ids:
            return
        v = data.draw(st.sampled_from(ids))
        where = np.argwhere(self._shown0() == v)
        i = data.draw(st.integers(0, len(where) - 1))
        j = data.draw(st.integers(0, len(where) - 1))
        self._try(SplitLabel("cells", v, [where[i].tolist(), where[j].tolist()]))

    @rule(data=st.data(), lock=st.booleans())
    def lock(self, data: st.DataObject, lock: bool) -> None:
        ids = self._ids() + [0, 99]  # 0 and 99 (never exists) are refused
        pick = data.draw(st.lists(st.sampled_from(ids), min_size=1, max_size=2, unique=True))
        self._try((LockLabels if lock else UnlockLabels)("cells", pick))

    @rule(data=st.data())
    def relabel(self, data: st.DataObject) -> None:
        ids = self._ids() + [99]
        v = data.draw(st.sampled_from(ids))
        to = data.draw(st.one_of(st.none(), st.sampled_from([0, 1, 2, 40, 41])))
        self._try(RelabelLabel("cells", v, to))

    @rule(data=st.data())
    def interpolate(self, data: st.DataObject) -> None:
        v = data.draw(st.sampled_from(self._ids() + [7]))
        axis = data.draw(st.integers(0, 2))
        k1 = data.draw(st.integers(0, SHAPE[axis] - 1))
        k2 = data.draw(st.integers(0, SHAPE[axis] - 1))
        self._try(InterpolateLabel("cells", v, axis, k1, k2))

    @precondition(lambda self: self.pr.history.can_undo)
    @rule()
    def undo(self) -> None:
        self.pr.history.undo()
        self.history.pop()
        self.locks.pop()
        self.maps.pop()
        for a, b in zip(self._now(), self.history[-1], strict=True):
            np.testing.assert_array_equal(a, b)
        assert self._locked() == self.locks[-1]
        assert id_mapping(self.pr) == self.maps[-1]

    @invariant()
    def pyramid(self) -> None:
        now = self._now()
        assert_pyramid(now[: len(now) // 2])
        assert_pyramid(now[len(now) // 2 :])

    def teardown(self) -> None:
        end = self._now()
        h = self.pr.history
        n = len(h.undo_steps)
        for _ in range(n):
            h.undo()
        for a, b in zip(self._now(), self.start, strict=True):
            np.testing.assert_array_equal(a, b)
        assert self._locked() == frozenset()
        assert id_mapping(self.pr) == {}
        self.pr.close()
        with Project.open(self.dir / "p", fsync=False) as pr:  # across sessions too
            for _ in range(n):
                pr.history.redo()
            for a, b in zip(self._now(pr), end, strict=True):
                np.testing.assert_array_equal(a, b)
            assert locked_ids(pr.workspace.labels["cells"]) == self.locks[-1]
        shutil.rmtree(self.dir, ignore_errors=True)


LabelEdits.TestCase.settings = settings(
    max_examples=12,
    stateful_step_count=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestLabelEdits = LabelEdits.TestCase
