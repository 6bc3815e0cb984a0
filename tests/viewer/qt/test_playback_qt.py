"""Issue 18.12: during Play the image lagged the track nodes. Every state the slice
views paint while playing shows the image and the nodes of one time point.

References: the image's time point is found by comparing the pixels shown with the
store's slices at every time point (zarr-python); the nodes' time from the sample's
truth CSV (pandas), by node id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from PySide6 import QtCore

from tests.viewer.qt.conftest import truth, wait_slices
from tests.viewer.qt.test_app import click

pytestmark = pytest.mark.qt

Qt = QtCore.Qt


def store_levels(store: Path) -> list[Any]:
    grp = zarr.open_group(str(store), mode="r")
    attrs = grp.attrs.asdict()
    ms = attrs.get("ome", attrs)["multiscales"][0]
    return [grp[d["path"]] for d in ms["datasets"]]


def test_play_shows_the_image_and_the_nodes_of_one_time_point_in_every_frame(
    tl_viewer: Any, timelapse_store: Path, qtbot: Any
) -> None:
    win = tl_viewer
    s = win.session
    nodes = truth(timelapse_store)
    levels = store_levels(timelapse_store)
    n_t = levels[0].shape[0]
    # The XY slice through a cell at the first time point, set by a click in the XZ view.
    first = nodes[nodes["t"] == nodes["t"].min()].iloc[0]
    zyx = np.array([first["z"], first["y"], first["x"]], float)
    click(qtbot, win, "xz", zyx)
    wait_slices(qtbot, win)
    view = win.slices["xy"]
    name = s.image_layer.name
    volumes: dict[tuple[int, int], np.ndarray] = {}

    def image_times() -> set[int]:
        """Time points whose slice equals the pixels the XY view shows."""
        res = view.shown(name, "base")
        shown = view.image.image
        if res is None or shown is None:
            return set()
        rq = res.request
        out = set()
        for t in range(n_t):
            key = (rq.level, t)
            if key not in volumes:
                arr = levels[rq.level]
                volumes[key] = np.asarray(arr[t]).reshape(arr.shape[-3:])
            ref = volumes[key][rq.k, rq.rows[0] : rq.rows[1], rq.cols[0] : rq.cols[1]]
            if ref.shape == shown.shape and np.array_equal(ref.astype(np.float32), shown):
                out.add(t)
        return out

    seen: list[tuple[set[int], set[int]]] = []

    def sample() -> None:
        ids = view.track_nodes.data["data"]
        node_t = {int(nodes.loc[int(i), "t"]) for i in ids}
        if node_t:
            seen.append((image_times(), node_t))

    # The 3D view: each frame handed to the widget draws the tracks of the scene time
    # it was synced at and, per time-lapse image, bricks of one time point (their cache
    # keys name it: the streamer's split_key).
    shown_3d: list[tuple[float, dict[str, int]]] = []
    rt = win.render_view.render_thread

    def sample_3d(_seconds: float) -> None:
        if rt.shown_times is not None:
            shown_3d.append(rt.shown_times)

    win.render_view.frame_shown.connect(sample_3d)
    timer = QtCore.QTimer()
    timer.setInterval(0)  # between event-loop passes: what the next paint shows
    timer.timeout.connect(sample)
    timer.start()
    try:
        bar = win.time_bar
        qtbot.mouseClick(bar.play, Qt.MouseButton.LeftButton)
        assert bar.play.text() == "Pause"
        hi = s.time_range()[1]
        qtbot.waitUntil(lambda: s.time == hi, timeout=120_000)
        qtbot.mouseClick(bar.play, Qt.MouseButton.LeftButton)
        wait_slices(qtbot, win)
        sample()
    finally:
        timer.stop()
        win.render_view.frame_shown.disconnect(sample_3d)
    # The cell stays near the slice for a few time points: several were seen playing.
    assert len({min(nt) for _, nt in seen}) >= 2
    bad = [(it, nt) for it, nt in seen if len(nt) != 1 or not nt <= it]
    assert not bad, bad[:5]
    playing = [(t, img) for t, img in shown_3d if name in img]
    assert len({t for t, _ in playing}) >= 2
    bad_3d = [(t, img) for t, img in playing if img[name] != round(t)]
    assert not bad_3d, bad_3d[:5]
