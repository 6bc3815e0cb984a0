"""The labels tool on headless Monado: point at two objects with the trigger, merge with A.

The app runs as ``vrscope xr`` would (``XrAppRun``) with a scripted rig; the result is
read back from the project's working copy with zarr-python (the stored fragments: a merge
is an id mapping) and through the reopened project's mapped source (what every view
shows). Reference: the label array as written, merged with NumPy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.analysis.edits._labels_support import assert_pyramid, levels_of
from xrmode.testing import move, press

from .test_runtime import IDENTITY, finish, start, world_to_stage

pytestmark = pytest.mark.xr_runtime

CENTRES_UM = [(8.0, 8.0, 8.0), (8.0, 8.0, 24.0)]  # two balls of 4 µm, 16 µm apart along x


def two_balls(tmp: Path) -> tuple[Path, np.ndarray]:
    from analysis.io import write_labels, write_ngff

    z, y, x = np.mgrid[:32, :32, :64] * 0.5
    lab = np.zeros(z.shape, np.uint16)
    for i, c in enumerate(CENTRES_UM, 1):
        lab[(z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 < 4.0**2] = i
    store = tmp / "balls.zarr"
    write_ngff((lab > 0).astype(np.uint8) * 200, store, scale_um=(0.5, 0.5, 0.5))
    write_labels(store, "cells", lab)
    return store, lab


def test_scripted_merge_of_two_pointed_objects(monado, tmp_path):
    store, lab = two_balls(tmp_path)
    proj = tmp_path / "p"
    app, rig, session = start(
        monado,
        tmp_path,
        [str(store), "--labels", "cells", "--project", str(proj), "--tool", "labels"],
    )
    try:
        tr = session["transform"]
        for c in CENTRES_UM:
            # Aim straight down -Z at the ball's centre from 30 cm in front of it.
            target = world_to_stage(tr, np.asarray(c))
            move(rig, app, "right", target + np.array([0.0, 0.0, 0.3]), orientation=IDENTITY)
            press(rig, app, "right")
        press(rig, app, "right", "a_click")
        app.wait_count(lambda e: e["event"] == "edit", 1, 60, "the merge")
        finish(app, rig)
    finally:
        app.stop()
        rig.close()
    from analysis.project import Project

    levels = levels_of(proj / "labels" / "cells.zarr")
    np.testing.assert_array_equal(levels[0], lab)  # no voxel rewritten
    assert_pyramid(levels)
    merged = np.where(lab == 2, 1, lab)
    with Project.open(proj, read_only=True) as pr:  # the journal replays the mapping
        src = pr.workspace.labels["cells"].source  # type: ignore[attr-defined]
        for k in range(len(levels)):
            f = 2**k
            np.testing.assert_array_equal(src.read(k), merged[::f, ::f, ::f])
