"""``vrscope track`` on a damaged label series (issue 21): a chunk that exists but cannot
be read (corrupt bytes, a folder where the chunk file should be) refuses in one line
naming the chunk (exit 2), unless ``--allow-missing``, which tracks with the chunk
counted as empty and says ``INCOMPLETE`` in the last line. Before, ``track`` read frames
through zarr's own path, which takes a folder for an absent chunk: zeros, silently.

Reference: per frame, the labels and voxel counts of the label array with the damaged
chunk zeroed, counted with NumPy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.io import write_labels
from tests.analysis.io._support import write_with_ome_zarr
from tests.cli.test_incomplete_reads import (
    _assert_one_line_error,
    _chunk_file,
    _labels,
    _run,
)

CHUNKS = (1, 8, 16, 16)
FRAMES = 3
DAMAGED = (1, 1, 1, 0)  # frame 1 (the blobs of _labels hold objects there, checked below)


def _series(tmp_path: Path, version: str) -> tuple[Path, np.ndarray, Path]:
    """A (t, z, y, x) image with label image ``blobs``: the same blobs in every frame,
    shifted one voxel in x per frame (so that they link)."""
    lab = np.stack([np.roll(_labels(), t, axis=2) for t in range(FRAMES)])
    image = (lab > 0).astype(np.uint16) * 100
    path = write_with_ome_zarr(
        tmp_path / "s.zarr", image, version=version, axes="tzyx", chunks=CHUNKS
    )
    write_labels(path, "blobs", lab, chunks=CHUNKS)
    level0 = path / "labels" / "blobs" / "s0"
    assert level0.is_dir()
    return path, lab, level0


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("damage", ["corrupt", "folder"])
def test_track_refuses_a_damaged_chunk_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str, damage: str
) -> None:
    store, lab, level0 = _series(tmp_path, version)
    expected = lab.copy()
    expected[tuple(slice(c * n, (c + 1) * n) for c, n in zip(DAMAGED, CHUNKS, strict=True))] = 0
    assert np.count_nonzero(expected) < np.count_nonzero(lab)  # the chunk holds objects
    chunk = _chunk_file(level0, DAMAGED)
    if damage == "corrupt":
        chunk.write_bytes(b"not a chunk at all" * 4)
    else:
        chunk.unlink()
        chunk.mkdir()  # a folder where the chunk file should be: zarr reads zeros
        (chunk / "x").write_bytes(b"1")
    out = tmp_path / "t.csv"
    argv = ["track", str(store), "--labels", "blobs", "--out", str(out), "--no-progress"]
    code, _, err = _run(capsys, *argv)
    key = str(chunk.relative_to(level0.parent))
    _assert_one_line_error(code, err, key, "level 0", "s.zarr", "--allow-missing")
    assert not out.exists()

    code, stdout, err = _run(capsys, *argv, "--allow-missing")
    assert code == 0, err
    assert stdout.strip().splitlines()[-1].startswith("INCOMPLETE: 1 chunk(s) unreadable")
    spots = pd.read_csv(out)
    for t in range(FRAMES):
        frame = expected[t]
        labels, counts = np.unique(frame[frame > 0], return_counts=True)
        got = spots[spots["FRAME"] == t].sort_values("MASK_LABEL")
        assert got["MASK_LABEL"].tolist() == labels.tolist(), t
        np.testing.assert_allclose(got["volume_um3"].to_numpy(), counts, err_msg=str(t))
