"""Outputs never destroy inputs (issue 21): onto itself, inside, around, through a symlink,
and a failed ``--overwrite`` leaves the old output whole. Read back with zarr-python."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import zarr

from tests.cli.test_convert import _assert_user_error, _convert


def _digest(folder: Path) -> str:
    """A fingerprint of every file (names and bytes) under ``folder``."""
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(folder)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


@pytest.fixture()
def npy(tmp_path: Path) -> Path:
    path = tmp_path / "vol.npy"
    np.save(path, np.arange(24 * 20 * 16, dtype=np.uint16).reshape(24, 20, 16))
    return path


@pytest.fixture()
def store(tmp_path: Path, npy: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "a.zarr"
    code, _, err = _convert(capsys, npy, out, "--voxel-size", "1", "1", "1")
    assert code == 0, err
    return out


def test_convert_onto_itself_is_refused_and_the_store_is_untouched(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _digest(store)
    code, _, err = _convert(capsys, store, store, "--overwrite")
    _assert_user_error(code, err, "is the input")
    assert _digest(store) == before


@pytest.mark.parametrize("where", ["inside", "contains", "symlink"])
def test_outputs_inside_around_or_aliasing_an_input_are_refused(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    before = _digest(store)
    if where == "inside":
        out, needle = store / "copy.zarr", "lies inside the input"
    elif where == "contains":
        out, needle = tmp_path, "contains the input"
    else:
        out = tmp_path / "alias.zarr"
        out.symlink_to(store, target_is_directory=True)
        needle = "is the input"
    code, _, err = _convert(capsys, store, out, "--overwrite")
    _assert_user_error(code, err, needle)
    assert _digest(store) == before


def test_a_failed_overwrite_leaves_the_old_output_whole(
    store: Path,
    npy: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import analysis.io

    out = tmp_path / "b.zarr"
    code, _, err = _convert(capsys, npy, out, "--voxel-size", "1", "1", "1")
    assert code == 0, err
    before = _digest(out)

    def broken(*_a: object, **_k: object) -> None:
        raise OSError(28, "No space left on device")

    labels = tmp_path / "labels.npy"
    np.save(labels, np.ones((24, 20, 16), np.uint16))
    monkeypatch.setattr(analysis.io, "write_labels", broken)
    with pytest.raises(OSError):
        main_args = [npy, out, "--voxel-size", "2", "2", "2", "--labels-from", labels]
        _convert(capsys, *main_args, "--overwrite")
    assert _digest(out) == before  # the old store, not half of the new one
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["a.zarr", "b.zarr", "vol.npy", "labels.npy"]
    )  # no temporary sibling left behind


def test_overwrite_replaces_the_output_when_complete(
    npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c.zarr"
    for voxel in ("1", "3"):
        code, _, err = _convert(capsys, npy, out, "--voxel-size", voxel, "1", "1", "--overwrite")
        assert code == 0, err
    root = zarr.open_group(str(out), mode="r")
    ms = root.attrs.asdict()
    ms = ms.get("ome", ms)["multiscales"][0]
    scale = ms["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale[0] == pytest.approx(3.0)  # the second run's store
    np.testing.assert_array_equal(root[ms["datasets"][0]["path"]][...], np.load(npy))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_infer_refuses_to_write_over_its_inputs(
    npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vrscope.cli import main

    before = npy.read_bytes()
    model = tmp_path / "model.npy"  # a .npy output for a .npy input: only the path is wrong
    model.write_bytes(b"not read: the output is checked first")
    code = main(["infer", str(npy), "--model", str(model), "--out", str(npy), "--overwrite"])
    _assert_user_error(code, capsys.readouterr().err, "is the input")
    assert npy.read_bytes() == before
    code = main(["infer", str(npy), "--model", str(model), "--out", str(model), "--overwrite"])
    _assert_user_error(code, capsys.readouterr().err, "is the input")
    assert model.read_bytes().startswith(b"not read")


def test_every_writing_command_refuses_an_output_inside_its_input(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """measure, density, render, movie, track, tracks and train: the output path is
    checked against the inputs before any work (one line, exit 2, nothing written)."""
    from vrscope.cli import main

    before = _digest(store)
    cases = [
        ["measure", str(store), "--labels", "x", "--out", str(store / "t.csv")],
        ["density", str(store), "--labels", "x", "--out", str(store / "t.csv")],
        ["render", str(store), "--out", str(store / "a.png")],
        ["movie", str(store), "--out", str(store / "a.mp4")],
        ["track", str(store), "--labels", "x", "--out", str(store / "t.geff")],
        ["tracks", "convert", str(store), str(store / "t.csv")],
        ["train", str(store), "--labels", "x", "--out", str(store)],
        ["batch", "measure", str(store), "--labels", "x", "--out", str(store / "t.csv")],
        ["batch", "profile", str(store), "--out", str(store / "report")],
    ]
    for argv in cases:
        code = main(argv)
        err = capsys.readouterr().err
        if argv[0] == "train" and "extra" in err:
            continue  # torch missing: refused before (a core-only install)
        _assert_user_error(code, err, "input")
    assert _digest(store) == before


def test_render_with_unreadable_chunks_refuses_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A corrupt chunk leaves a hole in a streamed picture: refused by default (one line,
    exit 2, no file), written with --allow-missing and said in the last line."""
    from tests.analysis.io._support import write_with_ome_zarr
    from vrscope.cli import main

    z, y, x = np.indices((32, 32, 32))
    data = ((z + y + x) * 3 % 200 + 40).astype(np.uint8)
    store = write_with_ome_zarr(tmp_path / "c.zarr", data, version="0.4", chunks=(16, 16, 16))
    (store / "s0" / "1" / "0" / "1").write_bytes(b"not a chunk")
    out = tmp_path / "a.png"
    argv = ["render", str(store), "--out", str(out), "--size", "64", "48", "--no-progress"]
    code = main([*argv, "--brick-size", "16"])
    _assert_user_error(code, capsys.readouterr().err, "--allow-missing")
    assert not out.exists()
    assert main([*argv, "--brick-size", "16", "--allow-missing"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert out.exists() and lines[-1].startswith("INCOMPLETE: 1 brick(s)")
    # The same for a movie; a refused one leaves no (half-written) file.
    mp4 = tmp_path / "a.mp4"
    margv = ["movie", str(store), "--out", str(mp4), "--size", "64", "48", "--frames", "2"]
    margv += ["--no-progress"]
    _assert_user_error(main(margv), capsys.readouterr().err, "--allow-missing")
    assert not mp4.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert main([*margv, "--allow-missing"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert mp4.exists() and lines[-1].startswith("INCOMPLETE: 1 brick(s)")


@pytest.mark.parametrize("command", ["render", "movie"])
def test_a_refused_streamed_picture_is_one_line_naming_the_chunk(
    tmp_path: Path, command: str
) -> None:
    """In a fresh process (as from a log or a pipe): the refusal is the only line on
    stderr (no line per unreadable brick before it, no progress bar) and names the chunk."""
    from tests.analysis.io._support import write_with_ome_zarr
    from tests.cli._bounded import check_clean, run_cli

    z, y, x = np.indices((32, 32, 32))
    data = ((z + y + x) * 3 % 200 + 40).astype(np.uint8)
    store = write_with_ome_zarr(tmp_path / "c.zarr", data, version="0.4", chunks=(16, 16, 16))
    (store / "s0" / "1" / "0" / "1").write_bytes(b"not a chunk")
    out = tmp_path / ("a.png" if command == "render" else "a.mp4")
    argv = [command, str(store), "--out", str(out), "--size", "64", "48"]
    if command == "movie":
        argv += ["--frames", "2"]
    got = run_cli(argv, tmp_path)
    assert check_clean(got) is None, check_clean(got)
    assert "s0/1/0/1" in got.err[0] and "--allow-missing" in got.err[0]
    assert not out.exists()
