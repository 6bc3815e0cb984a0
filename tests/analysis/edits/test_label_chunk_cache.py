"""The working copy's decoded chunk cache never serves stale data.

Random brush strokes (paint, preserve, erase, erase of one id, 2D discs), undo and
redo go through a ``History`` on a ``LabelEditStore`` whose cache is on (roomy, and
so small that chunks are evicted and read again all the time). After every step the
label image the store serves (from its cache: the whole image is fewer chunks than a
cache-bypassing read) must equal a NumPy model of the edits, whose balls come from a
distance test over the whole grid (not from ``ball_mask``), and the chunks zarr-python
reads from disk, every level, must equal it too.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import zarr

from analysis.edits import History, PaintBall
from analysis.io import LabelEditStore, create_label_copy
from analysis.project import Workspace
from tests.analysis.edits._labels_support import SCALE, assert_pyramid, levels_of, make_store

SHAPE = (40, 44, 52)
CHUNKS = 16  # 3 x 3 x 4 = 36 level-0 chunks: a whole-image read goes through the cache


def _start() -> np.ndarray:
    lab = np.zeros(SHAPE, np.uint32)
    lab[4:20, 6:30, 8:40] = 1
    lab[20:36, 10:40, 20:50] = 2
    lab[10:30, 30:42, 2:20] = 3
    return lab


def _ball(center: tuple[int, int, int], radius_um: float, axis: int | None) -> np.ndarray:
    grid = np.indices(SHAPE)
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, center, SCALE, strict=True))
    ball = d2 <= radius_um**2 * (1 + 1e-9)
    if axis is not None:
        ball &= grid[axis] == center[axis]
    return np.asarray(ball)


def _stroke(rng: np.random.Generator) -> list[tuple[PaintBall, np.ndarray]]:
    """A few overlapping stamps of one brush, with their voxels."""
    value = int(rng.choice([0, 0, 1, 2, 4, 7]))
    preserve = bool(rng.integers(2)) and value != 0
    erase_id = int(rng.choice([1, 2, 3])) if value == 0 and rng.integers(2) else None
    axis = None if rng.integers(3) else int(rng.integers(3))
    radius = float(rng.choice([0.03, 0.06, 0.1]))
    pos = rng.integers(0, SHAPE, 3).astype(float)
    step = rng.normal(size=3) * 3
    out = []
    for _ in range(int(rng.integers(1, 5))):
        c = tuple(int(v) for v in np.clip(np.rint(pos), 0, np.array(SHAPE) - 1))
        cmd = PaintBall("cells", c, radius, value, preserve=preserve, erase_id=erase_id, axis=axis)
        out.append((cmd, _ball(c, radius, axis)))  # type: ignore[arg-type]
        pos += step
    return out


def _paint(model: np.ndarray, cmd: PaintBall, ball: np.ndarray) -> None:
    if cmd.value != 0 and cmd.preserve:
        ball = ball & ((model == 0) | (model == cmd.value))
    elif cmd.value == 0 and cmd.erase_id is not None:
        ball = ball & (model == cmd.erase_id)
    model[ball] = cmd.value


@pytest.mark.parametrize("cache_chunks", [1000, 3], ids=["roomy", "evicting"])
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_cache_matches_numpy_model_through_undo_redo(
    tmp_path: Path, cache_chunks: int, version: str
) -> None:
    store_path = make_store(tmp_path / "img.zarr", _start(), version=version, chunks=CHUNKS)
    copy = tmp_path / "p" / "labels" / "cells.zarr"
    copy.parent.mkdir(parents=True)
    create_label_copy(str(store_path), "cells", copy)
    store = LabelEditStore(copy, "cells", fsync=False, cache_bytes=cache_chunks * CHUNKS**3 * 4)
    history = History.open(tmp_path / "p", Workspace(labels={"cells": store}), fsync=False)
    rng = np.random.default_rng(17)
    states = [_start()]  # model after each undo step
    done = 1  # states[:done] are applied
    whole = tuple(slice(0, s) for s in SHAPE)
    n_levels = len(levels_of(copy))
    for _ in range(40):
        action = rng.choice(["stroke", "stroke", "undo", "redo"])
        if action == "stroke":
            model = states[done - 1].copy()
            with history.group("stroke"):  # one undo step per stroke
                for cmd, ball in _stroke(rng):
                    history.apply(cmd)
                    _paint(model, cmd, ball)
                    # a stamp sees the previous stamps of its stroke (through the cache)
                    np.testing.assert_array_equal(store.read(whole), model)
            states[done:] = [model]
            done += 1
        elif action == "undo" and history.can_undo:
            history.undo()
            done -= 1
        elif action == "redo" and history.can_redo:
            history.redo()
            done += 1
        expect = states[done - 1]
        np.testing.assert_array_equal(store.read(whole), expect)  # from the cache
        region = tuple(slice(int(a), int(a) + 9) for a in rng.integers(0, np.array(SHAPE) - 9))
        np.testing.assert_array_equal(store.read(region), expect[region])
        disk = levels_of(copy)  # zarr-python, from the files
        np.testing.assert_array_equal(disk[0], expect)
        assert_pyramid(disk)
        for k in range(1, n_levels):
            full = tuple(slice(0, s) for s in disk[k].shape)
            np.testing.assert_array_equal(store.read(full, level=k), disk[k], f"level {k}")
    assert done > 3 and history.can_undo  # the sequence did paint, and kept some of it
    history.close()


def test_a_failed_chunk_write_keeps_the_edit_in_memory_and_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer's chunk writes fail half way (disk full, ...): the stamp, acknowledged
    (journal and undo data are durable), stays in memory, every reader gets it from
    there rather than the torn files, and once the disk works again the files get it."""
    import zarr.storage

    store_path = make_store(tmp_path / "img.zarr", _start(), chunks=CHUNKS)
    copy = tmp_path / "p" / "labels" / "cells.zarr"
    copy.parent.mkdir(parents=True)
    create_label_copy(str(store_path), "cells", copy)
    store = LabelEditStore(copy, "cells", fsync=False)
    history = History.open(tmp_path / "p", Workspace(labels={"cells": store}), fsync=False)
    whole = tuple(slice(0, s) for s in SHAPE)
    history.apply(PaintBall("cells", (20, 22, 26), 0.1, 4))
    store.flush()
    model = _start()
    model[_ball((20, 22, 26), 0.1, None)] = 4

    calls = {"n": 0}
    real_set = zarr.storage.LocalStore.set

    async def failing_set(self: zarr.storage.LocalStore, key: str, value: object) -> None:
        calls["n"] += 1
        if key.endswith("1"):  # the chunks of x index 1: a partly written edit, every try
            # Failing after the other writes of the same batch had their turn (they run
            # concurrently): otherwise, under load, the error could come first and stop
            # the batch before any chunk landed, which is not the case checked here.
            await asyncio.sleep(0.2)
            raise OSError(28, "No space left on device")
        await real_set(self, key, value)  # type: ignore[arg-type]

    monkeypatch.setattr(zarr.storage.LocalStore, "set", failing_set)
    history.apply(PaintBall("cells", (20, 22, 26), 0.12, 6))  # acknowledged
    model[_ball((20, 22, 26), 0.12, None)] = 6
    with pytest.raises(OSError, match="No space"):
        store.flush()
    assert calls["n"] > 2 and store.n_unwritten > 0
    disk = [np.asarray(a[...]) for a in zarr.open_group(str(copy), mode="r").array_values()]
    torn = next(d for d in disk if d.shape == SHAPE)
    assert (torn == 6).any() and not np.array_equal(torn, model)  # some chunks landed
    np.testing.assert_array_equal(store.read(whole), model)  # from memory
    np.testing.assert_array_equal(np.asarray(store.source.read(0)), model)  # a layer's view
    for k in range(1, store.n_levels):
        f = 2**k
        np.testing.assert_array_equal(
            np.asarray(store.source.read(k)), model[::f, ::f, ::f], f"level {k}"
        )
    monkeypatch.undo()
    store.flush()
    assert store.n_unwritten == 0
    disk = levels_of(copy)
    np.testing.assert_array_equal(disk[0], model)
    assert_pyramid(disk)
    history.close()
    store.close()
