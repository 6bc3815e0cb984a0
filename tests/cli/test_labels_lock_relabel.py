"""``vrscope labels lock / unlock / relabel / interpolate`` in-process, on small stores.

References: NumPy (a ball of voxel centres within the radius, ``np.where`` relabels), an
analytic disc for the interpolation, zarr-python for every level of the project's copy.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.analysis.edits._labels_support import SCALE, assert_pyramid, blobs, levels_of, make_store
from tests.cli.test_labels import _copy, _ok, _run


def _ball(shape, center, radius_um) -> np.ndarray:
    zz, yy, xx = np.indices(shape)
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip((zz, yy, xx), center, SCALE, strict=True))
    return d2 <= radius_um**2 * (1 + 1e-9)


@pytest.fixture
def project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    store = make_store(tmp_path / "img.zarr", blobs(), version="0.5")
    p = tmp_path / "p"
    _ok(capsys, "project", "new", p, "--image", store, "--labels", "cells")
    return p


def test_lock_then_paint_keeps_the_object_then_unlock(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = blobs()
    out = _ok(capsys, "labels", "lock", project, "--labels", "cells", 2, 3)
    assert "locked 2 3" in out
    # Every call reopens the project: the lock comes back from the journal.
    _ok(capsys, "labels", "paint", project, "--labels", "cells", "--id", 9, "--ball",
        "20,28,22,0.12")  # fmt: skip
    ball = _ball(lab.shape, (20, 28, 22), 0.12)
    expect = np.where(ball & (lab != 2) & (lab != 3), 9, lab)
    lv = levels_of(_copy(project))
    np.testing.assert_array_equal(lv[0], expect)
    assert_pyramid(lv)
    # --preserve keeps every existing non-zero id (object 1 as well).
    _ok(capsys, "labels", "paint", project, "--labels", "cells", "--id", 8, "--ball",
        "10,10,44,0.1", "--preserve")  # fmt: skip
    ball2 = _ball(lab.shape, (10, 10, 44), 0.1)
    expect2 = np.where(ball2 & (expect == 0), 8, expect)
    np.testing.assert_array_equal(levels_of(_copy(project))[0], expect2)
    out = _ok(capsys, "labels", "unlock", project, "--labels", "cells", 3)
    assert "unlocked 3" in out and "locked now: 2" in out
    _ok(capsys, "labels", "delete", project, "--labels", "cells", 3)
    np.testing.assert_array_equal(levels_of(_copy(project))[0], np.where(expect2 == 3, 0, expect2))
    _ok(capsys, "labels", "undo", project, "--all")
    np.testing.assert_array_equal(levels_of(_copy(project))[0], lab)


def test_relabel_from_the_cli(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = blobs()
    out = _ok(capsys, "labels", "relabel", project, "--labels", "cells", 3)
    assert "relabelled 3 as 6" in out
    _ok(capsys, "labels", "relabel", project, "--labels", "cells", 1, "--to", 400)
    expect = np.where(lab == 3, 6, np.where(lab == 1, 400, lab))
    lv = levels_of(_copy(project))
    np.testing.assert_array_equal(lv[0], expect)
    assert_pyramid(lv)


def test_interpolate_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = np.zeros((40, 60, 60), np.uint16)
    yy, xx = np.indices((60, 60))
    r1, r2 = 12.0, 24.0
    lab[5] = np.where((yy - 30) ** 2 + (xx - 30) ** 2 <= r1 * r1, 3, 0)
    lab[35] = np.where((yy - 30) ** 2 + (xx - 30) ** 2 <= r2 * r2, 3, 0)
    store = make_store(tmp_path / "img.zarr", lab, version="0.4")
    p = tmp_path / "p"
    _ok(capsys, "project", "new", p, "--image", store, "--labels", "cells")
    _ok(capsys, "labels", "interpolate", p, "--labels", "cells", 3, "--axis", "z",
        "--from", 5, "--to", 35)  # fmt: skip
    got = levels_of(_copy(p))[0]
    assert_pyramid(levels_of(_copy(p)))
    np.testing.assert_array_equal(got[:6], lab[:6])
    np.testing.assert_array_equal(got[35:], lab[35:])
    errors = []
    for k in range(6, 35):
        # A disc of radius r(k), linear in k (within the lattice's quantisation).
        r = r1 + (r2 - r1) * (k - 5) / 30
        area = (got[k] == 3).sum()
        assert abs(math.sqrt(area / math.pi) - r) < 0.6, (k, area, math.pi * r * r)
        errors.append(abs(area / (math.pi * r * r) - 1))
    assert np.mean(errors) < 0.02, errors


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["relabel", "{p}", "--labels", "cells", "1", "--to", "2"], "in use"),
        (["relabel", "{p}", "--labels", "cells", "1", "--to", "0"], "background"),
        (["relabel", "{p}", "--labels", "cells", "77"], "not in label image"),
        (["relabel", "{p}", "--labels", "cells", "5"], "locked"),
        (["lock", "{p}", "--labels", "cells", "5"], "already locked"),
        (["lock", "{p}", "--labels", "cells", "0"], "background"),
        (["unlock", "{p}", "--labels", "cells", "1"], "not locked"),
        (["paint", "{p}", "--labels", "cells", "--id", "5", "--ball", "3,3,3,0.05"], "locked"),
        (["delete", "{p}", "--labels", "cells", "5"], "locked"),
        (["erase", "{p}", "--labels", "cells", "--ball", "3,3,3,0.05", "--only", "5"], "locked"),
        (["merge", "{p}", "--labels", "cells", "1", "5"], "locked"),
        (
            [
                "interpolate",
                "{p}",
                "--labels",
                "cells",
                "1",
                "--axis",
                "z",
                "--from",
                "6",
                "--to",
                "30",
            ],
            "no voxels on section z=30",
        ),  # fmt: skip
        (
            [
                "interpolate",
                "{p}",
                "--labels",
                "cells",
                "1",
                "--axis",
                "q",
                "--from",
                "6",
                "--to",
                "9",
            ],
            "invalid choice",
        ),  # fmt: skip
    ],
)
def test_bad_inputs_are_one_line_and_exit_2(
    project: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    _ok(capsys, "labels", "lock", project, "--labels", "cells", 5)
    before = levels_of(_copy(project))
    code, _, err = _run(capsys, "labels", *[a.format(p=project) for a in args])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert needle in lines[0], lines[0]
    for a, b in zip(levels_of(_copy(project)), before, strict=True):
        np.testing.assert_array_equal(a, b)
