"""``train`` and ``infer`` on damaged stores (issue 21), as ``measure``/``density``/``profile``
(``test_incomplete_reads.py``): a chunk that exists but cannot be read (a folder where the
chunk file should be: zarr reads it as zeros, silently) refuses in one line naming the
store, level and chunk (exit 2, nothing written), unless ``--allow-missing``, which runs
and ends with ``INCOMPLETE: 1 chunk(s) unreadable``.

References: ``infer --allow-missing`` on the store must give the probabilities of the
same model on a .npy of the image with the damaged chunk zeroed by NumPy
(a path that never touches the store); ``train`` names the chunk it counted as empty."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.io import open_volume, write_labels, write_ngff
from tests.analysis.inference._helpers import spheres
from tests.cli.test_incomplete_reads import _assert_one_line_error, _chunk_file, _run

CHUNKS = (16, 16, 16)
DAMAGED = (1, 0, 1)  # z 16:32, y 0:16, x 16:32
SMALL = ["--width", "4", "--depth", "2", "--patch", "32", "32", "--batch-size", "2", "--quiet"]
SMALL += ["--epochs", "1", "--steps", "2"]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _store(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    img, lab = spheres(3, n=32, count=5)
    store = tmp_path / "s.zarr"
    write_ngff(img, store, scale_um=(0.1, 0.1, 0.1), chunks=CHUNKS)
    write_labels(store, "balls", lab.astype(np.uint16), chunks=CHUNKS)
    return store, img, lab


def _damage(level0: Path, coords: tuple[int, int, int]) -> str:
    chunk = _chunk_file(level0, coords)
    chunk.unlink()
    chunk.mkdir()  # zarr's own read takes this for an absent chunk: zeros
    return str(chunk.relative_to(level0.parent))


def _zeroed(a: np.ndarray, coords: tuple[int, int, int]) -> np.ndarray:
    out = a.copy()
    out[tuple(slice(c * n, (c + 1) * n) for c, n in zip(coords, CHUNKS, strict=True))] = 0
    return out


@pytest.mark.parametrize("where", ["labels", "image"])
def test_train_refuses_a_damaged_chunk_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    store, _, _ = _store(tmp_path)
    level0 = store / "labels" / "balls" / "s0" if where == "labels" else store / "s0"
    key = _damage(level0, DAMAGED)
    out = tmp_path / "model"
    argv = ["train", str(store), "--labels", "balls", "--instances", "--out", str(out), *SMALL]
    code, _, err = _run(capsys, *argv)
    _assert_one_line_error(code, err, key, "level 0", "s.zarr", "--allow-missing")
    assert not (out / "model.safetensors").exists()

    code, stdout, err = _run(capsys, *argv, "--allow-missing")
    assert code == 0, err
    assert stdout.strip().splitlines()[-1].startswith("INCOMPLETE: 1 chunk(s) unreadable")
    history = json.loads((out / "training.json").read_text())
    assert [u.split(":")[0] for u in history["unreadable_chunks"]] == [key]
    assert (out / "model.safetensors").is_file()


def test_infer_refuses_a_damaged_chunk_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, img, _ = _store(tmp_path)
    model = tmp_path / "model"
    argv = ["train", str(store), "--labels", "balls", "--instances", "--out", str(model)]
    assert _run(capsys, *argv, *SMALL)[0] == 0
    key = _damage(store / "s0", DAMAGED)
    tile = ["--tile", "24", "24", "--quiet"]
    argv = ["infer", str(store), "--model", str(model), "--out", "pred", *tile]
    code, _, err = _run(capsys, *argv)
    _assert_one_line_error(code, err, key, "level 0", "s.zarr", "--allow-missing")
    assert not (store / "labels" / "pred").exists()

    probs = tmp_path / "p.zarr"
    code, stdout, err = _run(capsys, *argv, "--allow-missing", "--probabilities", str(probs))
    assert code == 0, err
    assert stdout.strip().splitlines()[-1].startswith("INCOMPLETE: 1 chunk(s) unreadable")
    assert (store / "labels" / "pred").is_dir()
    got = np.asarray(open_volume(probs).read(0))

    # The reference: the same model on the image with the chunk zeroed by NumPy.
    np.save(tmp_path / "zeroed.npy", _zeroed(img, DAMAGED))
    ref = tmp_path / "ref.npy"
    argv = ["infer", str(tmp_path / "zeroed.npy"), "--model", str(model), "--out", str(ref)]
    assert _run(capsys, *argv, *tile)[0] == 0
    want = np.load(ref)
    assert got.shape == want.shape == (2, *img.shape)
    assert float(want.std()) > 1e-4  # the model's output varies: a real comparison
    np.testing.assert_allclose(got, want, atol=1e-6)
