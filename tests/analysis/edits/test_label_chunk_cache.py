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

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from analysis.edits import History, PaintBall
from analysis.io import LabelEditStore, create_label_copy
from analysis.project import Workspace
from tests.analysis.edits._labels_support import (
    SCALE,
    assert_files_hold,
    assert_pyramid,
    decodes_on_this_thread,
    levels_of,
    make_store,
)

SHAPE = (40, 44, 52)
CHUNKS = 16  # 3 x 3 x 4 = 36 level-0 chunks: a whole-image read goes through the cache


def _start() -> np.ndarray:
    lab = np.zeros(SHAPE, np.uint32)
    lab[4:20, 6:30, 8:40] = 1
    lab[20:36, 10:40, 20:50] = 2
    lab[10:30, 30:42, 2:20] = 3
    return lab


def _copy(tmp_path: Path, version: str = "0.5") -> Path:
    """A project folder's working copy of ``_start()`` (``tmp_path/p/labels/cells.zarr``)."""
    store_path = make_store(tmp_path / "img.zarr", _start(), version=version, chunks=CHUNKS)
    copy = tmp_path / "p" / "labels" / "cells.zarr"
    copy.parent.mkdir(parents=True)
    create_label_copy(str(store_path), "cells", copy)
    return copy


def _open(tmp_path: Path, copy: Path, **kw: Any) -> tuple[LabelEditStore, History]:
    """The copy's store (fsync off) and the project's history over it."""
    store = LabelEditStore(copy, "cells", fsync=False, **kw)
    return store, History.open(tmp_path / "p", Workspace(labels={"cells": store}), fsync=False)


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
    copy = _copy(tmp_path, version)
    store, history = _open(tmp_path, copy, cache_bytes=cache_chunks * CHUNKS**3 * 4)
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
    there rather than the torn files, and once the disk works again the files get it.
    (The working copy's chunk files are written by the store itself, not through zarr:
    the failure is its file write's.)"""
    from analysis.io import _label_edits

    copy = _copy(tmp_path)
    store, history = _open(tmp_path, copy)
    whole = tuple(slice(0, s) for s in SHAPE)
    history.apply(PaintBall("cells", (20, 22, 26), 0.1, 4))
    store.flush()
    model = _start()
    model[_ball((20, 22, 26), 0.1, None)] = 4

    calls = {"n": 0}
    real_put = _label_edits._put_file

    def failing_put(path: Path, blob: object, sync: bool = False) -> None:
        calls["n"] += 1
        if path.name.endswith("1"):  # the chunks of x index 1: a partly written edit, every try
            raise OSError(28, "No space left on device")
        real_put(path, blob, sync)

    monkeypatch.setattr(_label_edits, "_put_file", failing_put)
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


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_chunk_files_are_byte_for_byte_what_zarr_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    """The store writes its copy's chunk files itself (not through zarr): after paint at
    the image's edge (edge chunks, stored whole) and an erase that empties chunks, every
    level read by zarr-python equals the NumPy model, every chunk file holds the bytes zarr
    writes for the same values (zarr v2 and v3), and emptied chunks have no file."""
    from analysis.io import _label_edits

    def no_zarr(jobs: object) -> None:
        raise AssertionError("a chunk went through zarr")

    copy = _copy(tmp_path, version)
    before = {p.relative_to(copy) for p in copy.rglob("*") if p.is_file()}
    monkeypatch.setattr(_label_edits, "_gather_write", no_zarr)
    store, history = _open(tmp_path, copy)
    model = _start()
    for centre, radius, value in (
        ((38, 42, 50), 0.15, 9),
        ((2, 3, 4), 0.2, 0),
        ((20, 20, 20), 0.3, 0),
    ):
        history.apply(PaintBall("cells", centre, radius, value))
        model[_ball(centre, radius, None)] = value
    store.flush()
    disk = levels_of(copy)
    np.testing.assert_array_equal(disk[0], model)
    assert_pyramid(disk)
    group = zarr.open_group(str(copy), mode="r")
    attrs = dict(group.attrs)
    paths = [d["path"] for d in attrs.get("ome", attrs)["multiscales"][0]["datasets"]]
    fmt = 2 if version == "0.4" else 3
    emptied = 0
    for k, level in enumerate(disk):
        arr = group[paths[k]]
        assert isinstance(arr, zarr.Array)
        ref = zarr.create_array(
            zarr.storage.LocalStore(tmp_path / f"ref{k}"),
            shape=arr.shape,
            chunks=arr.chunks,
            dtype=arr.dtype,
            fill_value=0,
            zarr_format=fmt,  # type: ignore[arg-type]
            compressors=arr.compressors,  # type: ignore[arg-type]
            **({"chunk_key_encoding": {"name": "v2", "separator": "/"}} if fmt == 2 else {}),
        )
        ref[...] = level
        root = Path(copy) / arr.path
        for coords in np.ndindex(*arr.cdata_shape):
            key = arr.metadata.encode_chunk_key(coords)
            mine, theirs = root / key, tmp_path / f"ref{k}" / key
            assert mine.is_file() == theirs.is_file(), (k, coords)
            if mine.is_file():
                assert mine.read_bytes() == theirs.read_bytes(), (k, coords)
            elif (mine.relative_to(copy)) in before:
                emptied += 1
    assert emptied > 0  # the erase emptied chunks that had files: they are gone
    history.close()
    store.close()

    # Read back by a new store (its own decoder, not zarr's): every level as zarr reads it.
    monkeypatch.setattr(_label_edits, "_gather_read", no_zarr)
    again = LabelEditStore(copy, "cells", fsync=False)
    for k, level in enumerate(disk):
        whole = tuple(slice(0, n) for n in level.shape)
        np.testing.assert_array_equal(again.read(whole, level=k), level, f"level {k}")
    again.close()


def test_a_damaged_chunk_file_is_never_read_as_values(tmp_path: Path) -> None:
    """A chunk file of the copy that does not decode (garbage, a truncated write) is left
    to zarr, which refuses it: no made-up values; the other chunks read as before."""
    copy = _copy(tmp_path)
    files = sorted(p for p in (copy / "s0").rglob("*") if p.is_file() and p.name != "zarr.json")
    first = files[0]  # chunk (0, 0, 0): labels 1 in it
    assert first.relative_to(copy / "s0").parts[-3:] == ("0", "0", "0")
    first.write_bytes(first.read_bytes()[:7])
    store = LabelEditStore(copy, "cells", fsync=False)
    with pytest.raises(Exception, match="(?i)zstd|decompress|decode"):
        store.read((slice(0, CHUNKS),) * 3)
    rest = (slice(CHUNKS, SHAPE[0]), slice(0, SHAPE[1]), slice(0, SHAPE[2]))
    np.testing.assert_array_equal(store.read(rest), _start()[rest])
    store.close()


def test_a_zstd_frame_is_decoded_straight_into_the_chunk_only_at_its_declared_size() -> None:
    """The size a chunk file's zstd frame declares (what decides whether it is decoded
    straight into the chunk) is the size numcodecs compressed, for every size class of
    the frame header; bytes that are no frame declare none."""
    from numcodecs import Zstd

    from analysis.io._label_edits import _zstd_content_size

    sizes = [0, 1, 255, 256, 257, 65535, 65791, 65792, 2**20, 2**20 + 3, 5 * 2**20]
    for level in (0, 1, 9):
        for checksum in (False, True):
            codec = Zstd(level=level, checksum=checksum)
            for n in sizes:
                frame = bytes(codec.encode(np.arange(n, dtype=np.uint8)))
                assert _zstd_content_size(frame) == n, (level, checksum, n)
                assert _zstd_content_size(frame[:5]) is None
    for junk in (b"", b"\x28\xb5\x2f", b"PK\x03\x04 a zip, not zstd", bytes(64)):
        assert _zstd_content_size(junk) is None


def test_a_chunk_file_of_the_wrong_size_is_never_read_as_values(tmp_path: Path) -> None:
    """A chunk file that is a whole zstd frame of the wrong size (half a chunk; a chunk
    and a half) is left to zarr, which refuses it; one of the right size, written by
    numcodecs with other values, reads as those values."""
    from numcodecs import Zstd

    copy = _copy(tmp_path)
    path = copy / "s0" / "c" / "0" / "0" / "0"
    assert path.is_file()
    whole = CHUNKS**3
    other = np.arange(whole, dtype=np.uint32).reshape((CHUNKS,) * 3) % 7
    for n in (whole // 2, whole + whole // 2):
        path.write_bytes(bytes(Zstd(level=1).encode(np.ones(n, np.uint32))))
        store = LabelEditStore(copy, "cells", fsync=False)
        with pytest.raises(Exception, match="(?i)size|shape|bytes|expected"):
            store.read((slice(0, CHUNKS),) * 3)
        store.close()
    path.write_bytes(bytes(Zstd(level=1).encode(other)))
    store = LabelEditStore(copy, "cells", fsync=False)
    np.testing.assert_array_equal(store.read((slice(0, CHUNKS),) * 3), other)
    store.close()


def test_edits_faster_than_the_writer_keep_memory_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the writer never finding a chunk quiet (a brush that never stops), each edit
    that leaves more than the bound pinned writes the oldest chunks itself: what stays
    unwritten never exceeds the bound, and files plus memory always hold every edit."""
    from analysis.io import _label_edits

    monkeypatch.setattr(_label_edits, "QUIET_S", 1e9)
    monkeypatch.setattr(_label_edits, "MAX_AGE_S", 1e9)
    chunk_bytes = CHUNKS**3 * 4
    monkeypatch.setattr(_label_edits, "DIRTY_BYTES", 6 * chunk_bytes)
    copy = _copy(tmp_path)
    store, history = _open(tmp_path, copy)
    model = _start()
    whole = tuple(slice(0, s) for s in SHAPE)
    wrote_some = False
    for i, centre in enumerate([(8, 8, 8), (30, 8, 40), (8, 36, 40), (30, 36, 8), (20, 22, 26)]):
        history.apply(PaintBall("cells", centre, 0.08, 10 + i))
        model[_ball(centre, 0.08, None)] = 10 + i
        # bounded, and not everything written at once (the newest chunks stay in memory)
        assert 0 < store.n_unwritten * chunk_bytes <= 6 * chunk_bytes
        np.testing.assert_array_equal(store.read(whole), model)
        on_disk = next(d for d in levels_of_files(copy) if d.shape == SHAPE)
        wrote_some |= bool((on_disk >= 10).any())
    assert wrote_some  # the bound made edits write chunks although none was quiet
    store.flush()
    np.testing.assert_array_equal(levels_of(copy)[0], model)
    assert_pyramid(levels_of(copy))
    history.close()
    store.close()


def levels_of_files(copy: Path) -> list[np.ndarray]:
    """Every level as the files hold it now (no flush first)."""
    return [np.asarray(a[...]) for a in zarr.open_group(str(copy), mode="r").array_values()]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_painting_into_empty_space_of_big_chunks(tmp_path: Path, version: str) -> None:
    """Chunks of 1 MiB with no file (a sparse label image: the store makes them as fill
    value, memory mapped, the writer asks for their pages before writing them):
    strokes across empty chunks, and an erase, land in the files as the NumPy model has
    them, every level, through zarr-python; chunks never painted still have no file;
    painting those chunks again after they were written lands too."""
    from analysis.io import _label_edits

    shape = (100, 130, 140)
    start = np.zeros(shape, np.uint32)
    start[2:10, 3:12, 4:14] = 5  # one chunk with a file
    store_path = make_store(tmp_path / "img.zarr", start, version=version, chunks=64)
    copy = tmp_path / "p" / "labels" / "cells.zarr"
    copy.parent.mkdir(parents=True)
    create_label_copy(str(store_path), "cells", copy)
    level0 = copy / ("s0" if (copy / "s0").is_dir() else "0")
    files_before = {p.relative_to(level0) for p in level0.rglob("*") if p.is_file()}
    store, history = _open(tmp_path, copy)
    if _label_edits._populate_supported():  # Linux >= 5.14: fresh chunks are maps
        chunk, mapped = _label_edits._fresh_chunk((64, 64, 64), np.dtype(np.uint32), 0)
        assert mapped and isinstance(chunk.base, np.ndarray) and not chunk.any()
    model = start.copy()
    grid = np.indices(shape)

    def ball(centre: tuple[int, int, int], radius_vox: float) -> np.ndarray:
        d2 = sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True))
        return np.asarray(d2 <= radius_vox**2 * (1 + 1e-9))

    def paint(stamps: list[tuple[tuple[int, int, int], float, int]]) -> None:
        """Stamps through the history; then every reader and, once written, the files
        (every level) hold the model."""
        for centre, radius, value in stamps:
            history.apply(PaintBall("cells", centre, radius, value))
            model[ball(centre, radius / SCALE[0])] = value
            np.testing.assert_array_equal(store.read(tuple(slice(0, n) for n in shape)), model)
        store.flush()
        disk = levels_of(copy)
        np.testing.assert_array_equal(disk[0], model)
        assert_pyramid(disk)

    paint([((60, 60 + 6 * i, 70), 0.12, 7) for i in range(6)] + [((64, 90, 70), 0.05, 0)])
    files_after = {p.relative_to(level0) for p in level0.rglob("*") if p.is_file()}
    assert files_before < files_after  # painted chunks got files
    arr = zarr.open_group(str(copy), mode="r")[level0.name]
    assert isinstance(arr, zarr.Array)
    empty = 0
    for coords in np.ndindex(*arr.cdata_shape):
        region = tuple(slice(c * 64, (c + 1) * 64) for c in coords)
        key = Path(arr.metadata.encode_chunk_key(coords))
        if not model[region].any():
            empty += 1
            assert key not in files_after, coords  # never painted (or erased): no file
        else:
            assert key in files_after, coords
    assert empty > 0
    # Painted again after the writer put them into their files (a second write of the
    # same chunks, an erased-to-empty check on each): files and readers agree again.
    paint([((40, 60, 70), 0.1, 9), ((80, 100, 120), 0.08, 3)])
    history.close()
    store.close()


def test_the_ids_an_edit_announces_are_numpys_distinct_values() -> None:
    """The ids a write announces (``changed``), found by a hash table or one comparison,
    are NumPy's ``np.unique`` of the values, whatever their mix."""
    from analysis.io._label_edits import _distinct

    rng = np.random.default_rng(3)
    cases = [
        np.zeros(0, np.uint32),
        np.full(1000, 7, np.uint32),
        np.broadcast_to(np.uint64(2**40 + 3), (500,)),
        rng.integers(0, 5, 100_000).astype(np.uint32),
        rng.integers(0, 2**62, 1000).astype(np.uint64),
        rng.integers(-(2**31), 2**31 - 1, 1000).astype(np.int32),
        np.sort(rng.integers(0, 50, 10_000)).astype(np.uint32),  # long runs
        np.r_[np.zeros(9999, np.uint32), np.uint32(5)],  # one other value, last
        np.r_[np.uint32(5), np.zeros(9999, np.uint32)],  # one other value, first
    ]
    # A brush's old values: a 3-D label image (blocks, a ball) under a ball's mask, in C
    # order, and a view with strides.
    image = np.zeros((40, 40, 40), np.uint32)
    image[5:20, :, 10:30] = 3
    image[25:, 10:35, :] = 2**31 + 7
    grid = np.indices(image.shape)
    image[((grid - 20) ** 2).sum(axis=0) < 8**2] = 11
    cases += [image[((grid - 18) ** 2).sum(axis=0) < 15**2], image[::3, 1::2, ::5]]
    for values in cases:
        assert _distinct(values) == {int(v) for v in np.unique(values)}


class _EmptySpace:
    """A working copy of 2 x 2 x 4 chunks of 64³ uint32 (or ``shape``) with no file (empty
    space: the store makes each chunk as fill value, a memory map of 1 MiB), its store and history,
    a NumPy model of it, and every fresh chunk map the store makes (``maps``)."""

    def __init__(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        shape: tuple[int, int, int] = (128, 128, 256),
        **kw: Any,
    ) -> None:
        from analysis.io import _label_edits

        self.shape = shape

        if not _label_edits._populate_supported():
            pytest.skip("fresh chunks are memory maps only on Linux >= 5.14")
        store_path = make_store(tmp_path / "img.zarr", np.zeros(self.shape, np.uint32), chunks=64)
        self.copy = tmp_path / "p" / "labels" / "cells.zarr"
        self.copy.parent.mkdir(parents=True)
        create_label_copy(str(store_path), "cells", self.copy)
        self.maps: list[Any] = []
        fresh_chunk = _label_edits._fresh_chunk
        monkeypatch.setattr(
            _label_edits, "_fresh_chunk", lambda *a: self.maps.append(a) or fresh_chunk(*a)
        )
        self.store, self.history = _open(tmp_path, self.copy, **kw)
        self.model = np.zeros(self.shape, np.uint32)
        self._grid = np.indices(self.shape)

    def stamp(self, centre: tuple[int, int, int], value: int) -> None:
        """A ball of 10 voxels (0.1 µm at SCALE) through the history, and in the model."""
        self.history.apply(PaintBall("cells", centre, 0.1, value))
        d2 = sum((g - c) ** 2 for g, c in zip(self._grid, centre, strict=True))
        self.model[d2 <= 10**2 * (1 + 1e-9)] = value

    def check_and_close(self) -> None:
        """What every reader sees and, once written, the files (every level) are the model."""
        full = tuple(slice(0, n) for n in self.shape)
        np.testing.assert_array_equal(self.store.read(full), self.model)
        self.history.close()
        self.store.close()
        disk = levels_of(self.copy)
        np.testing.assert_array_equal(disk[0], self.model)
        assert_pyramid(disk)


def test_chunks_let_go_are_reused_only_when_nobody_sees_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 1 MiB chunk of empty space the cache lets go is reused for the next chunk of
    empty space (cleared), unless something still sees it: a view a reader kept of a
    painted chunk keeps its values while strokes elsewhere go through a cache of three
    chunks; the image every reader sees and the files match the NumPy model."""
    made = []
    fresh = LabelEditStore._fresh
    monkeypatch.setattr(
        LabelEditStore, "_fresh", lambda self, k, s: made.append(k) or fresh(self, k, s)
    )
    space = _EmptySpace(tmp_path, monkeypatch, cache_bytes=3 * 64**3 * 4)

    def stamp(centre: tuple[int, int, int], value: int) -> None:
        space.stamp(centre, value)
        space.store.flush()  # written: its chunks' pages are all in memory, it may be let go

    stamp((32, 32, 32), 4)
    kept = [(first, part) for first, part in space.store.read_parts((slice(0, 64),) * 3)]
    seen = [part.copy() for _, part in kept]
    assert any(part.any() for part in seen)
    for i in range(24):  # strokes through every other chunk, back and forth
        z, y = (96, 32) if i % 2 else (32, 96)
        stamp((z, y, 40 + 8 * i), 1 + i % 5)
    stamp((100, 100, 200), 0)  # an erase
    for (_, part), was in zip(kept, seen, strict=True):
        np.testing.assert_array_equal(part, was)
    assert len(space.maps) < len(made)  # chunks of empty space were made from spare maps
    space.check_and_close()


def test_an_idle_writer_makes_chunks_of_empty_space_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between strokes (the writer has nothing to write) the store makes memory for new
    chunks ready, its pages asked for: the next stroke's first stamp into empty space
    maps no new chunk memory, and what it paints is what the NumPy model has, in memory
    and, once written, in the files."""
    import time

    space = _EmptySpace(tmp_path, monkeypatch)
    space.stamp((32, 32, 32), 3)  # the first edit starts the writer
    space.store.flush()
    deadline = time.monotonic() + 10.0
    while sum(len(m) for m in space.store._spare.values()) < 8 and time.monotonic() < deadline:
        time.sleep(0.02)
    before = len(space.maps)
    space.stamp((96, 96, 200), 5)  # new chunks at level 0 (two) and at the coarser levels
    assert len(space.maps) == before  # every chunk of empty space came ready
    space.check_and_close()


def test_chunks_read_again_are_decoded_into_memory_let_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A painted chunk that the cache let go and an edit needs again is decoded from its
    file into the memory of a chunk let go before (not cleared first: the decode writes
    every voxel), except at the image's edge (a cut chunk); a view a reader kept of a
    decoded chunk keeps its values while strokes go on through a cache of three chunks;
    the image every reader sees and the files (every level) equal the NumPy model."""
    reused: list[bool] = []
    target = LabelEditStore._decode_target

    def decode_target(self: LabelEditStore, k: int) -> np.ndarray:
        out = target(self, k)
        reused.append(isinstance(getattr(out.base, "base", None), memoryview))
        return out

    monkeypatch.setattr(LabelEditStore, "_decode_target", decode_target)
    space = _EmptySpace(tmp_path, monkeypatch, shape=(128, 128, 200), cache_bytes=3 * 64**3 * 4)

    def stamp(centre: tuple[int, int, int], value: int) -> None:
        space.stamp(centre, value)
        space.store.flush()  # written: the chunk may be let go, and read again from its file

    centres = [(32, 32, 32), (96, 96, 96), (32, 96, 160), (96, 32, 190)]  # the last at the edge
    for i in range(12):
        stamp(centres[i % 4], 1 + i % 5)
        if i == 5:  # a reader keeps views of chunk (0, 0, 0), decoded again from its file
            kept = list(space.store.read_parts((slice(0, 64),) * 3))
            seen = [part.copy() for _, part in kept]
            assert any(part.any() for part in seen)
    for (_, part), was in zip(kept, seen, strict=True):
        np.testing.assert_array_equal(part, was)
    assert any(reused)  # decodes went into memory let go (its stale values overwritten)
    space.check_and_close()


def test_a_hovering_brush_finds_its_chunks_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the brush hovers (``prefetch`` of its ``brush_region``), the chunks a stamp
    there reads are decoded in the background: the stamp decodes no chunk file itself,
    at any level, and paints what the NumPy model paints (memory and files)."""

    from analysis.edits import brush_region

    copy = _copy(tmp_path)
    store, history = _open(tmp_path, copy, cache_bytes=64 * CHUNKS**3 * 4)
    model = _start()
    centre, radius = (20, 22, 26), 0.06  # 6 voxels: level-0 chunks 1 x 1..2 x 1..2
    decodes = decodes_on_this_thread(monkeypatch)
    assert store.prefetch(brush_region(centre, radius, SCALE, SHAPE)).wait(10.0)
    cmd = PaintBall("cells", centre, radius, 7)
    history.apply(cmd)
    assert decodes == []  # every chunk the stamp read or wrote was decoded before
    _paint(model, cmd, _ball(centre, radius, None))
    np.testing.assert_array_equal(store.read(tuple(slice(0, n) for n in SHAPE)), model)
    history.close()
    store.close()
    assert_files_hold(copy, model)


def test_a_prefetch_never_brings_back_a_chunk_older_than_an_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk the prefetch read from its file before an edit changed it, which the
    writer then wrote and the cache let go, is not put in the cache when the prefetch
    is done: every reader (and the next stamp) sees the edit, as the NumPy model has."""
    import threading

    copy = _copy(tmp_path)
    store, history = _open(tmp_path, copy, cache_bytes=3 * CHUNKS**3 * 4)
    model = _start()
    read, go = threading.Event(), threading.Event()
    decode = LabelEditStore._get_chunk

    def slow(self: LabelEditStore, k: int, *a: Any) -> Any:
        got = decode(self, k, *a)
        if threading.current_thread().name.endswith("prefetch") and k == 0:
            read.set()  # the file is read and decoded: now the edit comes
            go.wait(10.0)
        return got

    monkeypatch.setattr(LabelEditStore, "_get_chunk", slow)
    finished = store.prefetch((slice(0, CHUNKS),) * 3)  # chunk (0, 0, 0): labels 1
    assert read.wait(10.0)
    cmd = PaintBall("cells", (8, 8, 8), 0.05, 9)
    history.apply(cmd)
    _paint(model, cmd, _ball((8, 8, 8), 0.05, None))
    store.flush()  # written to its file
    far = (slice(CHUNKS * 2, SHAPE[0]), slice(0, SHAPE[1]), slice(0, SHAPE[2]))
    store.read(far)  # other chunks through a cache of three: (0, 0, 0) is let go
    assert store._cache.get((0, (0, 0, 0)), touch=False) is None
    go.set()
    assert finished.wait(10.0)
    first = (slice(0, CHUNKS),) * 3
    np.testing.assert_array_equal(store.read(first), model[first])
    np.testing.assert_array_equal(store.read(tuple(slice(0, n) for n in SHAPE)), model)
    history.close()
    store.close()
    np.testing.assert_array_equal(levels_of(copy)[0], model)


def test_coarse_chunks_stay_while_level_0_chunks_come_and_go() -> None:
    """The cache's order of letting go: least recently used level-0 chunks go while the
    coarser levels hold at most their share (a quarter), however long ago they were
    used; beyond the share the finest coarse level goes first; pinned chunks never go;
    the bytes kept never exceed the budget once something can go."""
    from analysis.io._label_edits import _ChunkCache

    kib = 1024
    pinned: set[Any] = set()
    gone: list[Any] = []
    cache = _ChunkCache(16 * kib, pinned.__contains__, lambda k, d: gone.append(k))

    def chunk() -> np.ndarray:
        return np.zeros(kib, np.uint8)

    cache.put((2, (0, 0, 0)), chunk())
    cache.put((1, (0, 0, 0)), chunk())
    pinned.add((0, (9, 9, 9)))
    cache.put((0, (9, 9, 9)), chunk())
    for i in range(40):  # level-0 chunks stream through: the oldest level-0 ones go
        cache.put((0, (i, 0, 0)), chunk())
        assert cache.nbytes <= 16 * kib
    kept = {k for k in [(2, (0, 0, 0)), (1, (0, 0, 0)), (0, (9, 9, 9))] if cache.get(k) is not None}
    assert kept == {(2, (0, 0, 0)), (1, (0, 0, 0)), (0, (9, 9, 9))}
    assert all(k[0] == 0 for k in gone) and (0, (9, 9, 9)) not in gone
    assert cache.get((0, (39, 0, 0))) is not None and cache.get((0, (0, 0, 0))) is None
    # coarse chunks over their share (4 KiB): level 1 goes before level 2, oldest first
    gone.clear()
    for i in range(1, 6):
        cache.put((1, (i, 0, 0)), chunk())
    assert cache.get((2, (0, 0, 0))) is not None
    assert [k for k in gone if k[0]] == [(1, (0, 0, 0)), (1, (1, 0, 0)), (1, (2, 0, 0))]
    assert cache.nbytes <= 16 * kib
    # a store that closes lets go of every chunk but the pinned ones, at once
    cache.let_go_clean()
    assert len(cache) == 1 and cache.get((0, (9, 9, 9))) is not None
    assert cache.nbytes == kib
    cache.put((0, (50, 0, 0)), chunk())
    assert cache.get((0, (50, 0, 0))) is None  # and keeps none from then on
