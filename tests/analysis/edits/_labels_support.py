"""Small label stores and projects for the label-edit tests, with independent checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import zarr

from analysis.io import LabelEditStore, write_labels, write_ngff
from analysis.project import Project

SCALE = (0.01, 0.01, 0.01)


def blobs(shape: tuple[int, int, int] = (40, 50, 60)) -> np.ndarray:
    """Three boxes (ids 1, 2, 3) and a closed shell of id 5 around an empty hole."""
    lab = np.zeros(shape, np.uint32)
    lab[5:20, 5:30, 5:40] = 1
    lab[20:35, 5:30, 5:40] = 2
    lab[5:35, 30:45, 10:50] = 3
    lab[1:5, 2:8, 44:58] = 5
    lab[2:4, 4:6, 46:56] = 0
    return lab


def make_store(
    path: Path, labels: np.ndarray, version: str = "0.5", chunks: int = 16, name: str = "cells"
) -> Path:
    write_ngff(
        np.zeros(labels.shape, np.uint8),
        path,
        scale_um=SCALE,
        chunks=(chunks,) * 3,
        version=version,  # type: ignore[arg-type]
    )
    write_labels(path, name, labels)
    return path


def make_project(tmp: Path, labels: np.ndarray, version: str = "0.5", chunks: int = 16) -> Project:
    store = make_store(tmp / "img.zarr", labels, version, chunks)
    return Project.create(tmp / "p", image=store, labels=["cells"], fsync=False)


def levels_of(copy: Path) -> list[np.ndarray]:
    """Every level of a label multiscale, read with zarr-python (not vrscope's reader),
    once this process's write-behind writers have put the chunks they hold there."""
    LabelEditStore.flush_open(copy)
    group = zarr.open_group(str(copy), mode="r")
    attrs = dict(group.attrs)
    ms = (attrs.get("ome", attrs))["multiscales"][0]
    return [np.asarray(group[d["path"]][...]) for d in ms["datasets"]]


def assert_pyramid(levels: list[np.ndarray]) -> None:
    """Each coarser level is the writer's label rule applied to the level above:
    ``level[k] = level[k-1][::2]`` along every axis that halves."""
    for k in range(1, len(levels)):
        prev, cur = levels[k - 1], levels[k]
        step = tuple(2 if p != c else 1 for p, c in zip(prev.shape, cur.shape, strict=True))
        expect = prev[tuple(slice(None, None, s) for s in step)]
        np.testing.assert_array_equal(cur, expect, err_msg=f"level {k}")


def lookup(raw: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """``mapping.get(v, v)`` for every voxel, in NumPy (``np.unique``'s inverse: an
    independent reference for the id mapping the working copy applies on read)."""
    if not mapping:
        return raw
    u, inv = np.unique(raw, return_inverse=True)
    shown = np.array([mapping.get(int(v), int(v)) for v in u], dtype=raw.dtype)
    return shown[inv].reshape(raw.shape)


def raw_state(pr: Project, name: str = "cells") -> list[np.ndarray]:
    """Every level of the working copy as stored (raw ids), checked as a pyramid."""
    from analysis.io import label_copy_path

    levels = levels_of(label_copy_path(pr.path, name))
    assert_pyramid(levels)
    return levels


def id_mapping(pr: Project, name: str = "cells") -> dict[int, int]:
    """The working copy's id mapping (merges and tables; empty when not open)."""
    img = pr.workspace.labels.get(name)
    ids = getattr(img, "ids", None)
    return ids.mapping if ids is not None else {}


def label_state(pr: Project, name: str = "cells") -> list[np.ndarray]:
    """Every level of the project's working copy of ``name`` as it is shown: the stored
    levels (zarr-python, checked as a pyramid) with the id mapping looked up in NumPy."""
    mapping = id_mapping(pr, name)
    return [lookup(lv, mapping) for lv in raw_state(pr, name)]


def ball_reference(
    shape: tuple[int, ...], center: tuple[float, ...] | list[int], radius_um: float
) -> np.ndarray:
    """Voxels whose centres lie within ``radius_um`` of ``center`` (NumPy, at SCALE)."""
    zz, yy, xx = np.indices(shape)
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip((zz, yy, xx), center, SCALE, strict=True))
    return d2 <= radius_um**2 * (1 + 1e-9)


#: A writer process: opens the project ``argv[1]`` and paints :func:`stamp` ``i`` with
#: radius ``argv[2]`` µm for i = 0, 1, ..., printing ``i`` once each is acknowledged.
_STAMP_WRITER = """
import sys
from analysis.edits import PaintBall
from analysis.project import Project
from tests.analysis.edits._labels_support import stamp
pr = Project.open(sys.argv[1])
pr.edit_labels("cells")
for i in range(1000):
    centre, value = stamp(i)
    pr.history.apply(PaintBall("cells", centre, float(sys.argv[2]), value))
    print(i, flush=True)
"""


def stamp(i: int) -> tuple[tuple[int, int, int], int]:
    """The centre (inside :func:`blobs`) and the id of stamp ``i`` of a writer process."""
    return (2 + (i * 7) % 36, 2 + (i * 11) % 46, 2 + (i * 13) % 56), 10 + i % 50


def stamps_until_killed(project: Path, acked: int, radius_um: float) -> int:
    """Run a writer process stamping into ``project``, SIGKILL it once it acknowledged
    ``acked`` stamps (or after 60 s); how many it acknowledged."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[3]
    proc = subprocess.Popen(
        [sys.executable, "-c", _STAMP_WRITER, str(project), str(radius_um)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert proc.stdout is not None
    n = 0
    deadline = time.monotonic() + 60
    while n < acked and time.monotonic() < deadline and proc.stdout.readline():
        n += 1
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return n


def stamped(n: int, radius_um: float) -> np.ndarray:
    """:func:`blobs` with a writer's first ``n`` stamps painted (NumPy)."""
    out = blobs()
    for i in range(n):
        centre, value = stamp(i)
        out[ball_reference(out.shape, centre, radius_um)] = value
    return out


def prefetches(monkeypatch: Any) -> list[Any]:
    """The events of every ``LabelEditStore.prefetch`` asked for from now on (each set
    once its region is decoded): what a test waits on before the stamp."""
    events: list[Any] = []
    prefetch = LabelEditStore.prefetch

    def spy(self: LabelEditStore, region: Any) -> Any:
        events.append(prefetch(self, region))
        return events[-1]

    monkeypatch.setattr(LabelEditStore, "prefetch", spy)
    return events


def decodes_on_this_thread(monkeypatch: Any) -> list[int]:
    """Levels of the chunk files decoded on the calling thread from now on."""
    import threading

    me = threading.current_thread()
    got: list[int] = []
    decode = LabelEditStore._get_chunk

    def spy(self: LabelEditStore, k: int, *a: Any) -> Any:
        if threading.current_thread() is me:
            got.append(k)
        return decode(self, k, *a)

    monkeypatch.setattr(LabelEditStore, "_get_chunk", spy)
    return got


def assert_files_hold(copy: Path, model: np.ndarray) -> None:
    """The working copy's files (zarr-python), level 0, are ``model``; every level is its
    stride downsampling."""
    levels = levels_of(copy)
    np.testing.assert_array_equal(levels[0], model)
    assert_pyramid(levels)
