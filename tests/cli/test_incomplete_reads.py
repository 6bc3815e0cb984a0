"""Commands that read whole levels (``measure``, ``density``, ``profile``) on damaged
stores (issue 21): a chunk that exists but cannot be read (corrupt bytes, a folder where
the chunk file should be) refuses in one line naming the store, level and chunk (exit 2),
unless ``--allow-missing``, which runs and says ``INCOMPLETE`` in the last line; a chunk
that was never written (a sparse store) is the fill value, not an error.

References: the voxel counts are checked against numpy counts of the label array with the
damaged or absent chunk zeroed (what zarr's fill value makes of it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from skimage import draw

from analysis.io import write_labels
from tests.analysis.io._support import write_with_ome_zarr
from vrscope.cli import main

CHUNKS = (8, 16, 16)


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("WARNING")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], lines[0]


def _labels() -> np.ndarray:
    rng = np.random.default_rng(3)
    shape = (16, 32, 32)
    lab = np.zeros(shape, np.uint32)
    for i in range(1, 16):
        e = draw.ellipsoid(*rng.integers(2, 4, 3))
        z, y, x = (int(rng.integers(0, s - d)) for s, d in zip(shape, e.shape, strict=True))
        lab[z : z + e.shape[0], y : y + e.shape[1], x : x + e.shape[2]][e] = i
    return lab


def _store(tmp_path: Path, version: str) -> tuple[Path, np.ndarray, Path]:
    """An image with label image ``blobs`` (chunks 8x16x16); returns the store, the labels
    and the folder of the labels' level 0."""
    lab = _labels()
    image = np.random.default_rng(4).integers(0, 4000, lab.shape).astype(np.uint16)
    path = write_with_ome_zarr(tmp_path / "s.zarr", image, version=version, chunks=CHUNKS)
    write_labels(path, "blobs", lab, chunks=CHUNKS)
    level0 = path / "labels" / "blobs" / "s0"
    assert level0.is_dir()
    return path, lab, level0


def _chunk_file(level0: Path, coords: tuple[int, ...]) -> Path:
    """The chunk file of ``coords`` (zarr v3 ``c/z/y/x``, v2 ``z/y/x`` or ``z.y.x``)."""
    names = (
        "c/" + "/".join(map(str, coords)),
        "/".join(map(str, coords)),
        ".".join(map(str, coords)),
    )
    found = [level0 / n for n in names if (level0 / n).is_file()]
    assert found, f"no chunk file for {coords} under {level0}"
    return found[0]


def _zeroed(lab: np.ndarray, coords: tuple[int, int, int]) -> np.ndarray:
    out = lab.copy()
    out[tuple(slice(c * n, (c + 1) * n) for c, n in zip(coords, CHUNKS, strict=True))] = 0
    return out


# a chunk holding objects in both test stores (checked below)
DAMAGED = (1, 1, 0)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("damage", ["corrupt", "folder"])
def test_measure_refuses_a_damaged_chunk_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str, damage: str
) -> None:
    store, lab, level0 = _store(tmp_path, version)
    assert _zeroed(lab, DAMAGED).sum() < lab.sum()  # the chunk holds objects
    chunk = _chunk_file(level0, DAMAGED)
    if damage == "corrupt":
        chunk.write_bytes(b"not a chunk at all" * 4)
    else:
        chunk.unlink()
        chunk.mkdir()  # a folder where the chunk file should be: zarr reads zeros
        (chunk / "x").write_bytes(b"1")
    out = tmp_path / "m.csv"
    argv = ["measure", str(store), "--labels", "blobs", "--out", str(out), "--surface", "binary"]
    code, _, err = _run(capsys, *argv)
    key = str(chunk.relative_to(level0.parent))
    _assert_one_line_error(code, err, key, "level 0", "s.zarr", "--allow-missing")
    assert not out.exists()

    code, stdout, _ = _run(capsys, *argv, "--allow-missing")
    assert code == 0
    assert stdout.strip().splitlines()[-1].startswith("INCOMPLETE: 1 chunk(s) unreadable")
    table = pd.read_csv(out)
    expected = _zeroed(lab, DAMAGED)
    assert int(table["voxel_count"].sum()) == int(np.count_nonzero(expected))
    assert set(table["label"]) == set(np.unique(expected[expected > 0]).tolist())


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_an_absent_chunk_is_the_fill_value_not_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str
) -> None:
    """A chunk key that does not exist is a sparse store (zarr leaves out chunks of fill
    values): measured as zeros, no INCOMPLETE line, also in the image (``--image``)."""
    store, lab, level0 = _store(tmp_path, version)
    _chunk_file(level0, DAMAGED).unlink()
    out = tmp_path / "m.csv"
    code, stdout, err = _run(
        capsys, "measure", str(store), "--labels", "blobs", "--image", "--out", str(out)
    )
    assert code == 0, err
    assert "INCOMPLETE" not in stdout
    table = pd.read_csv(out)
    assert int(table["voxel_count"].sum()) == int(np.count_nonzero(_zeroed(lab, DAMAGED)))


def test_density_refuses_a_folder_in_place_of_a_chunk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, lab, level0 = _store(tmp_path, "0.5")
    chunk = _chunk_file(level0, DAMAGED)
    chunk.unlink()
    chunk.mkdir()
    out = tmp_path / "d.csv"
    argv = ["density", str(store), "--labels", "blobs", "--k", "2", "--out", str(out)]
    code, _, err = _run(capsys, *argv)
    _assert_one_line_error(code, err, str(chunk.relative_to(level0.parent)), "--allow-missing")
    assert not out.exists()
    code, stdout, _ = _run(capsys, *argv, "--allow-missing")
    assert code == 0
    assert stdout.strip().splitlines()[-1].startswith("INCOMPLETE: 1 chunk(s) unreadable")
    expected = _zeroed(lab, DAMAGED)
    assert len(pd.read_csv(out)) == len(np.unique(expected[expected > 0]))


def test_measure_image_with_a_corrupt_image_chunk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``measure --image``: the grey image is checked too (the campaign's case)."""
    store, _, _ = _store(tmp_path, "0.4")
    level0 = store / "s0"
    chunk = _chunk_file(level0, (0, 0, 0))
    chunk.unlink()
    chunk.mkdir()
    out = tmp_path / "m.csv"
    argv = ["measure", str(store), "--labels", "blobs", "--image", "--out", str(out)]
    code, _, err = _run(capsys, *argv)
    _assert_one_line_error(code, err, str(chunk.relative_to(store)), "--allow-missing")
    code, stdout, _ = _run(capsys, *argv, "--allow-missing")
    assert code == 0
    assert stdout.strip().splitlines()[-1].startswith("INCOMPLETE: 1 chunk(s)")


def test_tracks_convert_refuses_a_damaged_label_chunk_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``tracks convert --labels STORE:NAME`` (CTC output from GEFF): the masks are checked
    as ``measure`` checks its labels. Two frames, two boxes each; the damaged chunk
    (t 1, y 0:16, x 0:16) cuts box 1 of frame 1, which keeps its part at x >= 16."""
    from analysis.io import read_ctc_masks, write_geff
    from analysis.tracks import TrackGraph

    chunks = (1, 8, 16, 16)
    lab = np.zeros((2, 8, 32, 32), np.uint16)
    lab[:, 2:6, 4:12, 10:22] = 1
    lab[:, 2:6, 20:28, 4:12] = 2
    image = np.random.default_rng(5).integers(0, 4000, lab.shape).astype(np.uint16)
    store = write_with_ome_zarr(
        tmp_path / "t.zarr", image, version="0.5", axes="tzyx", chunks=chunks
    )
    write_labels(store, "boxes", lab, chunks=chunks)
    graph = TrackGraph.from_arrays(
        [0, 1, 2, 3],
        [0, 0, 1, 1],
        [[4, 8, 16], [4, 24, 8], [4, 8, 16], [4, 24, 8]],
        [[0, 2], [1, 3]],
        label=[1, 2, 1, 2],
    )
    write_geff(graph, tmp_path / "g.geff")
    level0 = store / "labels" / "boxes" / "s0"
    chunk = _chunk_file(level0, (1, 0, 0, 0))
    chunk.unlink()
    chunk.mkdir()
    out = tmp_path / "ctc"
    argv = ["tracks", "convert", str(tmp_path / "g.geff"), str(out), "--labels", f"{store}:boxes"]
    code, _, err = _run(capsys, *argv)
    _assert_one_line_error(
        code, err, str(chunk.relative_to(level0.parent)), "level 0", "t.zarr", "--allow-missing"
    )
    assert not out.exists()

    code, stdout, err = _run(capsys, *argv, "--allow-missing")
    assert code == 0, err
    assert stdout.strip().splitlines()[-1].startswith("INCOMPLETE: 1 chunk(s) unreadable")
    expected = lab.copy()
    expected[1, :, 0:16, 0:16] = 0
    masks = read_ctc_masks(out)
    for t in range(2):
        assert np.count_nonzero(masks[t]) == np.count_nonzero(expected[t])
    assert np.count_nonzero(expected[1]) < np.count_nonzero(lab[1])  # the chunk held voxels
