"""``vrscope project new`` and ``vrscope labels``, in-process, on the real medulla volume.

References: h5py + gzip + NumPy (the supervoxel -> body lookup), zarr-python (every
level of the project's copy and of the export) and ome-zarr-py's Reader (the export).
Merges and tables change the copy's id mapping, not its voxels: what a user sees is read
through the project's mapped source and through the export (the mapping made permanent).
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import h5py
import numpy as np
import pytest
from ome_zarr.io import parse_url
from ome_zarr.reader import Label, Reader

from tests.analysis.edits._labels_support import (
    assert_pyramid,
    ball_reference,
    blobs,
    levels_of,
    make_store,
    stamped,
    stamps_until_killed,
)
from vrscope.cli import main

MEDULLA = "fibsem-medulla"


def _run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse: a bad value is a usage error
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _ok(capsys: pytest.CaptureFixture[str], *args: object) -> str:
    code, out, err = _run(capsys, *args)
    assert code == 0, err
    return out


def _copy(project: Path, name: str = "cells") -> Path:
    return project / "labels" / f"{name}.zarr"


def _mapped(project: Path, name: str = "cells") -> list[np.ndarray]:
    """Every level as the views read it (the project reopened: the journal replays the
    id mapping; the working copy's mapped source)."""
    from analysis.project import Project

    with Project.open(project, fsync=False) as pr:
        img = pr.edit_labels(name)
        return [np.asarray(img.source.read(k)) for k in range(len(img.source.levels))]


def _exported(capsys: pytest.CaptureFixture[str], project: Path, out: Path) -> list[np.ndarray]:
    """Every level of ``vrscope labels export`` (read with zarr-python)."""
    _ok(capsys, "labels", "export", project, "--labels", "cells", "--out", out, "--overwrite")
    return levels_of(out)


@pytest.fixture(scope="module")
def medulla(
    testdata: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, np.ndarray, np.ndarray]:
    gt = testdata / MEDULLA / "groundtruth.h5.gz"
    with gzip.open(gt, "rb") as fh, h5py.File(io.BytesIO(fh.read()), "r") as f:
        stack, transforms = f["stack"][...], f["transforms"][...]
    store = make_store(
        tmp_path_factory.mktemp("medulla") / "medulla.zarr", stack, version="0.4", chunks=64,
        name="cells",
    )  # fmt: skip
    return store, stack, transforms


def test_medulla_apply_table_equals_numpy_lookup_then_undo_all(
    medulla: tuple[Path, np.ndarray, np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store, stack, transforms = medulla
    assert len(np.unique(stack)) == 21317
    p = tmp_path / "p"
    _ok(capsys, "project", "new", p, "--image", store, "--labels", "cells")
    table = tmp_path / "agglo.csv"
    np.savetxt(table, transforms, fmt="%d", delimiter=",", header="old,new", comments="")
    out = _ok(capsys, "labels", "apply-table", p, "--labels", "cells", table)
    assert "voxels changed" in out

    bodies = transforms[:, 1][stack]  # the reference lookup, in NumPy
    assert len(np.unique(bodies)) == 526
    # The working copy keeps the supervoxels (no voxel rewritten: an id mapping) ...
    stored = levels_of(_copy(p))
    assert len(stored) >= 3
    np.testing.assert_array_equal(stored[0], stack)
    assert_pyramid(stored)
    # ... and every reader sees the bodies, at every level (the writer's sampling of them)
    shown = _mapped(p)
    assert len(shown) == len(stored)
    for k, lv in enumerate(shown):
        f = 2**k
        np.testing.assert_array_equal(lv, bodies[::f, ::f, ::f], err_msg=f"level {k}")

    # the export: the mapping made permanent, all levels, NGFF 0.4 like the source, read
    # by zarr-python and by ome-zarr-py
    out_zarr = tmp_path / "bodies.zarr"
    levels = _exported(capsys, p, out_zarr)
    assert (out_zarr / ".zattrs").is_file()
    assert len(levels) == len(stored)
    assert_pyramid(levels)
    for k, lv in enumerate(levels):
        f = 2**k
        np.testing.assert_array_equal(lv, bodies[::f, ::f, ::f], err_msg=f"export level {k}")
    node = next(
        n for n in Reader(parse_url(str(out_zarr)))() if any(isinstance(s, Label) for s in n.specs)
    )
    assert len(node.data) == len(levels)
    for a, b in zip(node.data, levels, strict=True):
        np.testing.assert_array_equal(np.asarray(a), b)

    out = _ok(capsys, "labels", "undo", p, "--all")
    assert "undid 1 step" in out
    levels = levels_of(_copy(p))
    np.testing.assert_array_equal(levels[0], stack)
    assert_pyramid(levels)
    for k, lv in enumerate(_mapped(p)):  # the supervoxels again, exactly
        f = 2**k
        np.testing.assert_array_equal(lv, stack[::f, ::f, ::f])
    np.testing.assert_array_equal(_exported(capsys, p, out_zarr)[0], stack)
    # the image store itself was never changed
    np.testing.assert_array_equal(levels_of(store / "labels" / "cells")[0], stack)


def test_medulla_split_of_a_body_by_two_seeds(
    medulla: tuple[Path, np.ndarray, np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store, stack, _ = medulla
    p = tmp_path / "p"
    _ok(capsys, "project", "new", p, "--image", store, "--labels", "cells")
    ids, counts = np.unique(stack[stack > 0], return_counts=True)
    oid = int(ids[np.argsort(counts)[-40]])  # a mid-sized supervoxel
    where = np.argwhere(stack == oid)
    a, b = where[0], where[-1]  # its first and last voxel in C order: far apart
    out = _ok(
        capsys, "labels", "split", p, "--labels", "cells", oid,
        "--seeds", ",".join(map(str, a)), ",".join(map(str, b)),
    )  # fmt: skip
    got_ids = [int(t) for t in out.split("into ids ")[1].split(" (")[0].split()]
    assert got_ids[0] == oid and got_ids[1] == int(stack.max()) + 1
    lv = levels_of(_copy(p))
    got = lv[0]
    body = stack == oid
    np.testing.assert_array_equal(got[~body], stack[~body])
    assert (got[body] != 0).all()
    assert got[tuple(a)] == got_ids[0] and got[tuple(b)] == got_ids[1]
    assert set(np.unique(got[body]).tolist()) == set(got_ids)
    assert_pyramid(lv)


def test_paint_undo_redo_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = make_store(tmp_path / "img.zarr", blobs(), version="0.5")
    p = tmp_path / "p"
    _ok(capsys, "project", "new", p, "--image", store, "--labels", "cells", "--classes", "mito")
    start = levels_of(_copy(p)) if _copy(p).exists() else None
    assert start is None  # copied on the first edit only
    _ok(capsys, "labels", "paint", p, "--labels", "cells", "--id", 9, "--ball", "20,20,20,0.05")
    _ok(capsys, "labels", "merge", p, "--labels", "cells", 1, 2, "--into", 2)
    out = tmp_path / "out.zarr"
    lv = _exported(capsys, p, out)
    assert (lv[0][20, 20, 20] == 9) and not (lv[0] == 1).any()
    ref = blobs()
    ref[ball_reference(ref.shape, (20, 20, 20), 0.05)] = 9
    ref[ref == 1] = 2
    np.testing.assert_array_equal(lv[0], ref)
    np.testing.assert_array_equal(_mapped(p)[0], ref)
    _ok(capsys, "labels", "undo", p, "--steps", "2")
    np.testing.assert_array_equal(levels_of(_copy(p))[0], blobs())
    np.testing.assert_array_equal(_mapped(p)[0], blobs())
    _ok(capsys, "labels", "redo", p, "--all")
    np.testing.assert_array_equal(_exported(capsys, p, out)[0], lv[0])


def test_commit_writes_the_merges_into_the_working_copy_and_undoes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = make_store(tmp_path / "img.zarr", blobs(), version="0.4")
    p = tmp_path / "p"
    _ok(capsys, "project", "new", p, "--image", store, "--labels", "cells")
    code, _, err = _run(capsys, "labels", "commit", p, "--labels", "cells")
    assert code == 2 and "no merges" in err and err.count("\n") == 1
    _ok(capsys, "labels", "merge", p, "--labels", "cells", 1, 2, 3)
    merged = np.where(np.isin(blobs(), [2, 3]), 1, blobs())
    np.testing.assert_array_equal(levels_of(_copy(p))[0], blobs())  # mapped, not written
    out = _ok(capsys, "labels", "commit", p, "--labels", "cells")
    n = int((np.isin(blobs(), [2, 3])).sum())
    assert f"committed 2 remapped ids: {n} voxels rewritten" in out
    stored = levels_of(_copy(p))
    assert_pyramid(stored)
    for k, lv in enumerate(stored):  # the voxels hold the merge now, every level
        f = 2**k
        np.testing.assert_array_equal(lv, merged[::f, ::f, ::f])
    np.testing.assert_array_equal(_mapped(p)[0], merged)
    _ok(capsys, "labels", "undo", p)  # the commit: fragments and mapping are back
    np.testing.assert_array_equal(levels_of(_copy(p))[0], blobs())
    np.testing.assert_array_equal(_mapped(p)[0], merged)
    _ok(capsys, "labels", "undo", p)
    np.testing.assert_array_equal(_mapped(p)[0], blobs())
    _ok(capsys, "labels", "redo", p, "--all")
    np.testing.assert_array_equal(levels_of(_copy(p))[0], merged)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["merge", "{p}", "--labels", "cells", "1", "77"], "unknown"),
        (["merge", "{p}", "--labels", "cells", "0", "1"], "background"),
        (["delete", "{p}", "--labels", "cells", "42"], "unknown"),
        (["split", "{p}", "--labels", "cells", "1", "--seeds", "10,10,10", "10,10,10"], "coincide"),
        (
            ["split", "{p}", "--labels", "cells", "1", "--seeds", "10,10,10", "0,0,0"],
            "outside object",
        ),
        (["split", "{p}", "--labels", "cells", "1", "--seeds", "10,10"], "Z,Y,X"),
        (["paint", "{p}", "--labels", "cells", "--id", "3", "--ball", "1,1,1,0"], "radius"),
        (["paint", "{p}", "--labels", "cells", "--id", "0", "--ball", "1,1,1,0.1"], "background"),
        (["paint", "{p}", "--labels", "cells", "--id", "3", "--ball", "99,1,1,0.1"], "outside"),
        (
            ["paint", "{p}", "--labels", "nope", "--id", "3", "--ball", "1,1,1,0.1"],
            "no label image",
        ),
        (["apply-table", "{p}", "--labels", "cells", "{bad_csv}"], "old"),
        (["undo", "{p}", "--steps", "3"], "cannot undo"),
        (["export", "{p}", "--labels", "cells", "--out", "{p}/inside.zarr"], "inside"),
        (["merge", "{tmp}/nowhere", "--labels", "cells", "1", "2"], "does not exist"),
    ],
)
def test_bad_inputs_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    store = make_store(tmp_path / "img.zarr", blobs(), version="0.5")
    p = tmp_path / "p"
    _ok(capsys, "project", "new", p, "--image", store, "--labels", "cells")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    argv = [a.format(p=p, bad_csv=bad, tmp=tmp_path) for a in args]
    code, _, err = _run(capsys, "labels", *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert needle in lines[0], lines[0]


def test_project_new_refuses_unknown_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = make_store(tmp_path / "img.zarr", blobs(), version="0.5")
    code, _, err = _run(capsys, "project", "new", tmp_path / "p", "--image", store, "--labels", "x")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "'x'" in err
    code, _, err = _run(capsys, "project", "new", store / "p", "--image", store)
    assert code == 2 and "inside" in err


def test_sigkill_during_a_stream_of_edits_loses_no_acknowledged_edit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = make_store(tmp_path / "img.zarr", blobs(), version="0.5")
    p = tmp_path / "p"
    _ok(capsys, "project", "new", p, "--image", store, "--labels", "cells")
    acked = stamps_until_killed(p, 25, 0.02)
    assert acked >= 25, "the writer did not get going"
    from analysis.project import Project

    with Project.open(p) as pr:
        n = len(pr.history.undo_steps)
        assert n >= acked  # every acknowledged edit is in the journal
        # every level of the copy equals the journaled stamps painted with NumPy (the
        # stamps' chunks are written behind: the reopen rewrote those the kill left out)
        lv = levels_of(_copy(p))
        np.testing.assert_array_equal(lv[0], stamped(n, 0.02))
        assert_pyramid(lv)
        for _ in range(n):
            pr.history.undo()
        np.testing.assert_array_equal(levels_of(_copy(p))[0], blobs())
