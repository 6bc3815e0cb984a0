"""A command fuzzer over the label commands (commit included), through the JSON a journal or a
collaboration message carries (like ``test_command_fuzz.py`` for the track and annotation
commands).

Arguments are generated, mostly invalid: ids 0, absent, negative, beyond the dtype, 2^63,
10^30, NaN/inf/2.5/"7"; points outside the volume or of the wrong length; radii NaN, inf,
negative, 0, 1e300; unknown label names; locked ids (a lock is in the mix). For every
generated command: building it raises nothing but FormatError/InvalidEditError; a refused
command raises an analysis error (never another exception type) and leaves every level of
the label image (read with zarr-python), its id mapping (merges and tables), the journal
bytes, the largest id and the locked ids unchanged; an accepted one is undone exactly and
redone exactly (voxels and mapping); and the journal of the whole sequence replays (the
project reopened) to the same arrays, mapping and locks.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.edits import PaintBall, command_from_json, locked_ids
from analysis.errors import (
    FormatError,
    InvalidEditError,
    LabelEditError,
    ParameterError,
    VrscopeError,
)
from analysis.io import label_copy_path
from analysis.project import Project
from tests.analysis.edits._labels_support import (
    blobs,
    id_mapping,
    levels_of,
    make_project,
    make_store,
)

SHAPE = (40, 50, 60)  # ids 1, 2, 3 and 5 (blobs); uint32
_STORE_DIR = Path(tempfile.mkdtemp(prefix="vrscope-label-fuzz-"))
atexit.register(shutil.rmtree, _STORE_DIR, True)
_STORE = make_store(_STORE_DIR / "img.zarr", blobs(SHAPE))

PRESENT = [1, 2, 3, 5]
ABSURD = [0, 4, 99, -1, 2**32, 2**63, 10**30, 2.5, "7", float("nan"), float("inf")]
lid = st.one_of(st.sampled_from(PRESENT), st.sampled_from(PRESENT), st.sampled_from(ABSURD))
coord = st.one_of(
    st.integers(0, 39), st.sampled_from([-1, 40, 60, 10**9, 2**63, float("nan"), 1.5])
)
point = st.one_of(
    st.lists(coord, min_size=3, max_size=3),
    st.lists(coord, min_size=3, max_size=3),
    st.lists(st.integers(0, 39), max_size=4),
    st.just("abc"),
)
radius = st.one_of(
    st.sampled_from([0.01, 0.02, 0.05]),
    st.sampled_from([0.0, -0.02, float("nan"), float("inf"), 1e300, 1e6, 0.004]),
    st.just("x"),
)
name = st.sampled_from(["cells", "cells", "cells", "cells", "nuclei", ""])
axis = st.one_of(st.integers(0, 2), st.sampled_from([-1, 3, 2**63, None]))
section = st.one_of(st.integers(0, 39), st.sampled_from([-5, 60, 10**12]))

SANE = st.sampled_from(
    [
        ("labels.merge", {"ids": [1, 2]}),
        ("labels.delete", {"ids": [3]}),
        ("labels.lock", {"ids": [1]}),
        ("labels.commit", {}),  # merges and tables written into the voxels
        ("labels.unlock", {"ids": [1]}),
        ("labels.lock", {"ids": [2, 5]}),
        ("labels.relabel", {"id": 3}),
        ("labels.split", {"id": 1, "seeds": [[6, 6, 6], [18, 28, 38]]}),
        ("labels.interpolate", {"id": 1, "axis": 0, "start": 6, "stop": 18}),
        ("labels.apply_table", {"table": [[1, 7], [2, 0]]}),
        ("labels.apply_table", {"table": [[1, 2], [2, 1]]}),  # a swap
        # journal lines / messages carrying id mapping entries (merges are id mappings)
        ("labels.merge", {"ids": [1, 2], "map": [[2, None, 1]]}),
        ("labels.merge", {"ids": [1, 2], "map": [[2, 5, 1]]}),
        ("labels.merge", {"ids": [1, 2], "map": [[2, None, 2]]}),
        ("labels.merge", {"ids": [1, 2], "map": [[2, None, 2**40]]}),
        ("labels.merge", {"ids": [1, 2], "map": [[2**64, None, 1]]}),
        ("labels.apply_table", {"table": [[1, 2]], "map": "x"}),
        ("labels.apply_table", {"table": [[1, 2]], "map": [[1, None, 2], [1, None, 3]]}),
        ("labels.paint", {"center": [20, 20, 20], "radius_um": 0.05, "value": 9}),
        ("labels.fill", {"seed": [3, 5, 50], "value": 4, "box": [0, 0, 0, 40, 50, 60]}),
        ("labels.paint", {"center": [20, 20, 20], "radius_um": 1e6, "value": 9}),
        ("labels.paint", {"center": [20, 20, 20], "radius_um": 1e300, "value": 0}),
        ("labels.paint", {"center": [20, 20, 20], "radius_um": float("nan"), "value": 9}),
    ]
)

COMMANDS = st.one_of(
    SANE,
    st.builds(
        lambda i, into: ("labels.merge", {"ids": i, "into": into}),
        st.lists(lid, max_size=3),
        st.one_of(st.none(), lid),
    ),
    st.builds(
        lambda t: ("labels.apply_table", {"table": t}),
        st.one_of(st.lists(st.lists(lid, min_size=2, max_size=2), max_size=3), st.just([[1]])),
    ),
    st.builds(lambda i: ("labels.delete", {"ids": i}), st.lists(lid, max_size=3)),
    st.builds(
        lambda i, s: ("labels.split", {"id": i, "seeds": s}), lid, st.lists(point, max_size=3)
    ),
    st.builds(
        lambda c, r, v, p, e, a: (
            "labels.paint",
            {"center": c, "radius_um": r, "value": v, "preserve": p, "erase_id": e, "axis": a},
        ),
        point,
        radius,
        st.one_of(st.just(0), lid),
        st.booleans(),
        st.one_of(st.none(), lid),
        axis,
    ),
    st.builds(
        lambda s, v, b: ("labels.fill", {"seed": s, "value": v, "box": b}),
        point,
        st.one_of(st.just(0), lid),
        st.one_of(st.lists(coord, min_size=6, max_size=6), st.lists(coord, max_size=7)),
    ),
    st.builds(lambda i: ("labels.lock", {"ids": i}), st.lists(lid, max_size=2)),
    st.builds(lambda i: ("labels.unlock", {"ids": i}), st.lists(lid, max_size=2)),
    st.builds(lambda i, t: ("labels.relabel", {"id": i, "to": t}), lid, st.one_of(st.none(), lid)),
    st.builds(
        lambda i, a, k1, k2: (
            "labels.interpolate",
            {"id": i, "axis": a, "start": k1, "stop": k2},
        ),
        lid,
        axis,
        section,
        section,
    ),
)


def _state(pr: Project) -> tuple[list[np.ndarray], int, frozenset[int], dict[int, int]]:
    """Every level (zarr-python's reading of the working copy), the largest id, the locks,
    the id mapping."""
    img = pr.workspace.labels["cells"]
    levels = levels_of(label_copy_path(pr.path, "cells"))
    return levels, img.max_id(), locked_ids(img), id_mapping(pr)


def _same(
    a: tuple[list[np.ndarray], int, frozenset[int], dict[int, int]], b: Any, what: str
) -> None:
    assert len(a[0]) == len(b[0]), what
    for k, (x, y) in enumerate(zip(a[0], b[0], strict=True)):
        np.testing.assert_array_equal(x, y, err_msg=f"{what}: level {k}")
    assert a[2] == b[2], f"{what}: locked ids"
    assert a[3] == b[3], f"{what}: id mapping"


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(st.tuples(COMMANDS, name), min_size=1, max_size=6))
def test_generated_label_commands_are_refused_cleanly_or_undone_exactly_and_replayable(
    cmds: list[tuple[tuple[str, dict[str, Any]], str]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pr = Project.create(Path(tmp) / "p", image=_STORE, labels=["cells"], fsync=False)
        pr.edit_labels("cells")
        journal = pr.path / "journal.jsonl"
        start = _state(pr)
        for (kind, args), labels in cmds:
            # The JSON a collaboration message or a journal line carries (NaN included).
            data = json.loads(
                json.dumps({"kind": kind, "v": 1, "args": {**args, "labels": labels}})
            )
            try:
                cmd = command_from_json(data)
            except (FormatError, InvalidEditError):
                continue
            before, jbefore = _state(pr), journal.read_bytes()
            try:
                pr.history.apply(cmd)
            except (InvalidEditError, ParameterError):  # LabelEditError is both
                now = _state(pr)
                _same(now, before, f"{kind} {args}: refused but changed the state")
                # The id counter (new ids start above it) is not moved by a refusal. (Undo
                # keeps it: it is the largest id the session has used, so an id is not
                # given out twice; the levels say what the image holds.)
                assert now[1] == before[1], f"{kind} {args}: refused but moved the id counter"
                assert journal.read_bytes() == jbefore, f"{kind} {args}: refused but journaled"
                continue
            except VrscopeError as exc:  # pragma: no cover - reported by the assert
                raise AssertionError(f"{kind} {args}: refused with {exc!r}") from exc
            after = _state(pr)
            pr.history.undo()
            _same(_state(pr), before, f"{kind} {args}: undo did not restore the state")
            pr.history.redo()
            _same(_state(pr), after, f"{kind} {args}: redo did not restore the edit")
        final = _state(pr)
        n = len(pr.history.undo_steps)
        pr.close()
        with Project.open(Path(tmp) / "p", fsync=False) as pr2:  # the journal replays
            pr2.edit_labels("cells")
            _same(_state(pr2), final, "the journal does not replay to the same state")
            for _ in range(n):
                pr2.history.undo()
            _same(_state(pr2), start, "undo all after reopening does not give the start")


def test_a_brush_wider_than_the_image_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    """The fuzzer's find: radius 1e6 µm was a MemoryError (a 284 PiB brush), 1e300 a
    ValueError, not a refusal; the largest sensible brush (the image's diagonal, which
    covers every voxel) still paints."""
    pr = make_project(tmp_path, blobs(SHAPE))
    pr.edit_labels("cells")
    journal = pr.path / "journal.jsonl"
    before, jbefore = _state(pr), journal.read_bytes()
    for r in (
        1e6,
        1e300,
        0.9,
    ):  # the diagonal of 40x50x60 voxels of 0.01 µm: 0.8775 µm (the farthest voxel centres: 0.8604 µm)
        with pytest.raises(LabelEditError, match="larger than the label image"):
            pr.history.apply(PaintBall("cells", [20, 20, 20], r, 9))
        _same(_state(pr), before, f"radius {r}")
        assert journal.read_bytes() == jbefore
    pr.history.apply(PaintBall("cells", [20, 20, 20], 0.877, 9))
    np.testing.assert_array_equal(_state(pr)[0][0], np.full(SHAPE, 9, np.uint32))
    pr.close()
