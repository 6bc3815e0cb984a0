"""Label edit actions (``labels.*``) on a project, through a minimal front end (no GUI).

References: NumPy edits of the same array (merge, delete, fill by scipy.ndimage.label),
skimage.draw.disk / an analytic ball for the brush, the level-0 image read with zarr.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.draw import disk

from analysis.edits import LabelChange
from analysis.io import open_labels
from analysis.project import Project
from tests.analysis.edits._labels_support import (
    SCALE,
    assert_pyramid,
    blobs,
    label_state,
    levels_of,
    make_store,
)
from viewer.actions import LabelBrush, Measuring, Pick, label_voxel, run
from viewer.scene import Labels, Scene


class Front:
    """The smallest front end that edits labels: a scene, a project, a brush."""

    def __init__(self, tmp: Path, lab: np.ndarray) -> None:
        store = make_store(tmp / "img.zarr", lab)
        self.project = Project.create(tmp / "p", image=store, labels=["cells"], fsync=False)
        self.scene = Scene([Labels(open_labels(store, "cells"), name="cells")])
        self.measuring = Measuring()
        self.label_brush = LabelBrush()
        self.messages: list[str] = []
        self.changes: list[LabelChange] = []
        self._watched: set[str] = set()

    # ActionContext
    tracks = None
    class_name = "default"

    @property
    def annotations(self) -> Any:
        return self.project.annotations

    def execute(self, cmd: Any) -> Any:
        return self.project.history.apply(cmd)

    def group(self, name: str) -> Any:
        return self.project.history.group(name)

    def undo(self) -> Any:
        return self.project.history.undo()

    def redo(self) -> Any:
        return self.project.history.redo()

    def notify(self, text: str) -> None:
        self.messages.append(text)

    def reset_view(self) -> None:
        pass

    def measuring_changed(self) -> None:
        pass

    def label_image(self, name: str) -> Any:
        img = self.project.edit_labels(name)
        if name not in self._watched:
            self._watched.add(name)
            img.changed.connect(self.changes.append)  # type: ignore[attr-defined]
        return img

    def level0(self) -> np.ndarray:
        """Level 0 as shown: the stored voxels with NumPy's lookup of the id mapping."""
        return label_state(self.project)[0]


def world(v: tuple[int, int, int]) -> tuple[float, float, float]:
    return (v[0] * SCALE[0], v[1] * SCALE[1], v[2] * SCALE[2])


@pytest.fixture
def front(tmp_path: Path) -> Iterator[Front]:
    f = Front(tmp_path, blobs())
    yield f
    f.project.close()


def test_a_world_point_is_the_voxel_whose_centre_is_nearest(front: Front) -> None:
    lay = front.scene.layers.get("cells")
    assert label_voxel(lay, (0.104, 0.196, 0.2)) == (10, 20, 20)
    assert label_voxel(lay, (-0.01, 0, 0)) is None
    assert label_voxel(lay, (0.4, 0, 0)) is None  # shape z = 40: the last index is 39


def test_select_ctrl_select_then_merge(front: Front) -> None:
    lab = blobs()
    run("labels.select", front, Pick(layer="cells", label=1, point_um=world((10, 10, 10))))
    run("labels.select", front, Pick(layer="cells", label=2, add=True))
    assert front.scene.selection.label_ids == [1, 2]
    cmd = run("labels.merge", front)
    assert cmd is not None and cmd.into == 1
    expect = np.where(lab == 2, 1, lab)
    np.testing.assert_array_equal(front.level0(), expect)
    assert_pyramid(levels_of(front.project.path / "labels" / "cells.zarr"))
    assert front.scene.selection.label_ids == [1]
    # the change event names the ids: a change of the id mapping (object 2 now shows as
    # 1), no voxel written, so no chunk region
    ch = front.changes[-1]
    assert ch.ids == {1, 2} and ch.forward
    assert ch.remapped == {2} and all(not b for b in ch.boxes)
    np.testing.assert_array_equal(levels_of(front.project.path / "labels" / "cells.zarr")[0], lab)
    front.undo()
    np.testing.assert_array_equal(front.level0(), lab)
    assert front.changes[-1].forward is False and front.changes[-1].remapped == {1}


def test_merge_needs_two_objects(front: Front) -> None:
    run("labels.select", front, Pick(layer="cells", label=1))
    assert run("labels.merge", front) is None
    assert "two objects" in front.messages[-1]
    assert not front.changes  # nothing was written


def test_delete_the_selection(front: Front) -> None:
    run("labels.select", front, Pick(layer="cells", label=3))
    run("labels.delete", front)
    np.testing.assert_array_equal(front.level0(), np.where(blobs() == 3, 0, blobs()))
    assert front.scene.selection.label_ids == []


def test_paint_a_disc_on_a_slice_and_a_ball_in_3d(front: Front) -> None:
    lab = blobs()
    front.label_brush.value = 7
    front.label_brush.radius_um = 0.045  # 4.5 voxels: no voxel centre lies on the rim
    c = (12, 20, 30)
    run("labels.paint", front, Pick(layer="cells", point_um=world(c), axis=0))
    expect = lab.copy()
    rr, cc = disk((c[1], c[2]), 4.5, shape=lab.shape[1:])
    expect[c[0], rr, cc] = 7
    np.testing.assert_array_equal(front.level0(), expect)
    c2 = (30, 40, 20)
    run("labels.paint", front, Pick(layer="cells", point_um=world(c2)))  # no axis: a ball
    zz, yy, xx = np.indices(lab.shape)
    ball = (zz - c2[0]) ** 2 + (yy - c2[1]) ** 2 + (xx - c2[2]) ** 2 < 4.5**2
    expect[ball] = 7
    np.testing.assert_array_equal(front.level0(), expect)
    run("labels.erase", front, Pick(layer="cells", point_um=world(c2)))
    expect[ball] = 0
    np.testing.assert_array_equal(front.level0(), expect)


def test_fill_within_the_slice(front: Front) -> None:
    lab = blobs()
    front.label_brush.value = 9
    seed = (3, 5, 50)  # the hole inside the shell of id 5 (z 2..3), background
    run("labels.fill", front, Pick(layer="cells", point_um=world(seed), axis=0))
    expect = lab.copy()
    comp, _ = ndi.label(lab[seed[0]] == 0)
    expect[seed[0]][comp == comp[seed[1], seed[2]]] = 9
    np.testing.assert_array_equal(front.level0(), expect)
    assert (front.level0()[seed[0]] == 9).sum() == 2 * 10


def test_split_with_two_seeds_previews_then_applies(front: Front) -> None:
    lab = blobs()
    a, b = (10, 15, 10), (10, 15, 35)
    run("labels.split_seed", front, Pick(layer="cells", point_um=world(a)))
    assert front.label_brush.preview is None and front.label_brush.split_id == 1
    run("labels.split_seed", front, Pick(layer="cells", point_um=world(b)))
    prev = front.label_brush.preview
    assert prev is not None
    np.testing.assert_array_equal(front.level0(), lab)  # a preview writes nothing
    assert run("labels.split", front) is not None
    got = front.level0()
    obj = lab == 1
    np.testing.assert_array_equal(got[~obj], lab[~obj])  # nothing outside changes
    assert (got[obj] != 0).all()  # no voxel of the object becomes background
    assert got[a] == 1 and got[b] == 6  # new id: above the largest (5)
    # the preview showed exactly what was applied
    shown = np.zeros_like(lab)
    for p in prev.pieces:
        shown[p.region][p.mask] = p.new
    np.testing.assert_array_equal(got[shown != 0], shown[shown != 0])
    assert front.label_brush.seeds == [] and front.scene.selection.label_ids == [1, 6]


def test_a_seed_on_another_object_or_background_is_refused(front: Front) -> None:
    run("labels.split_seed", front, Pick(layer="cells", point_um=world((10, 15, 10))))
    assert (
        run("labels.split_seed", front, Pick(layer="cells", point_um=world((25, 15, 10)))) is None
    )
    assert "not in object 1" in front.messages[-1]
    assert run("labels.split_seed", front, Pick(layer="cells", point_um=world((0, 0, 0)))) is None
    assert "background" in front.messages[-1]
    assert run("labels.split", front) is None  # one seed only


def test_new_id_and_pick_id_set_the_brush(front: Front) -> None:
    assert run("labels.new_id", front) == 6
    assert run("labels.pick_id", front, Pick(layer="cells", label=3)) == 3
    r = front.label_brush.radius_um
    run("labels.brush_larger", front)
    assert front.label_brush.radius_um == pytest.approx(r * 1.25)


def test_a_front_end_without_label_editing_refuses(front: Front) -> None:
    class Bare:
        scene = front.scene
        messages: list[str] = []

        def notify(self, text: str) -> None:
            self.messages.append(text)

    bare = Bare()
    assert run("labels.merge", bare, Pick(layer="cells", label=1)) is None  # type: ignore[arg-type]
    assert "cannot edit labels" in bare.messages[-1]
