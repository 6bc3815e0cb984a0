"""The time-lapse sample: non-overlapping nuclei, divisions, and a lineage consistent with labels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.measure import regionprops

from analysis.errors import ParameterError
from analysis.synthetic import NODE_COLUMNS, TRACK_COLUMNS, TimelapseSample, timelapse

FULL = np.ones((3, 3, 3), dtype=bool)
FRAMES, SIZE = 10, 64


@pytest.fixture(scope="module")
def tl() -> TimelapseSample:
    return timelapse(FRAMES, size=SIZE, seed=0)


def test_shapes_and_types(tl: TimelapseSample) -> None:
    assert tl.image.dtype == np.uint16 and tl.labels.dtype == np.uint16
    # Cubic field: 64 x 0.5 µm in y, x and the same extent in z at 1 µm.
    assert tl.image.shape == tl.labels.shape == (FRAMES, 32, SIZE, SIZE)
    assert tl.scale_um == (1.0, 0.5, 0.5)
    assert tuple(tl.nodes.columns) == NODE_COLUMNS
    assert tuple(tl.tracks.columns) == TRACK_COLUMNS
    assert tl.edges.dtype == np.int64 and tl.edges.shape[1] == 2


def test_deterministic_and_seed_dependent(tl: TimelapseSample) -> None:
    again = timelapse(FRAMES, size=SIZE, seed=0)
    np.testing.assert_array_equal(again.image, tl.image)
    np.testing.assert_array_equal(again.labels, tl.labels)
    assert again.nodes.equals(tl.nodes)
    other = timelapse(FRAMES, size=SIZE, seed=1)
    assert not np.array_equal(other.labels, tl.labels)
    assert not np.array_equal(other.image, tl.image)


def test_nuclei_never_overlap_or_touch(tl: TimelapseSample) -> None:
    for t in range(FRAMES):
        frame = tl.labels[t]
        ids = np.unique(frame[frame > 0])
        comp, count = ndi.label(frame > 0, structure=FULL)
        # As many 26-connected components as ids, and each id is exactly one component.
        assert count == len(ids)
        pairs = np.unique(np.stack([frame[frame > 0], comp[frame > 0]]), axis=1)
        assert pairs.shape[1] == count


def test_nodes_are_label_centroids(tl: TimelapseSample) -> None:
    scale = np.asarray(tl.scale_um)
    for t in range(FRAMES):
        nodes = tl.nodes[tl.nodes["t"] == t].set_index("label")
        props = {p.label: p for p in regionprops(tl.labels[t].astype(np.int32))}
        assert sorted(nodes.index) == sorted(props)  # one node per label per frame
        for label, p in props.items():
            pos = nodes.loc[label, ["z", "y", "x"]].to_numpy(float)
            np.testing.assert_allclose(pos, np.asarray(p.centroid) * scale, rtol=1e-10)
            # Each node's centroid lies inside its own label (nuclei are convex).
            voxel = tuple(np.rint(pos / scale).astype(int))
            assert tl.labels[t][voxel] == label
    assert (tl.nodes["label"] == tl.nodes["track_id"]).all()


def test_lineage_edges_follow_labels_and_divisions_have_two_children(tl: TimelapseSample) -> None:
    nodes = tl.nodes.set_index("node_id")
    assert len(tl.divisions) >= 1
    children: dict[int, list[int]] = {}
    for parent, child in tl.edges:
        children.setdefault(int(parent), []).append(int(child))
        assert nodes.loc[child, "t"] == nodes.loc[parent, "t"] + 1  # forward, no gaps
        assert nodes.loc[child, "parent_id"] == parent
    assert pd_unique(tl.edges[:, 1])  # one parent at most
    for parent, kids in children.items():
        plabel = nodes.loc[parent, "label"]
        labels = {int(nodes.loc[k, "label"]) for k in kids}
        if len(kids) == 1:
            assert labels == {plabel}  # same track continues
        else:
            assert len(kids) == 2  # a division: two daughters with new labels
            t1 = int(nodes.loc[parent, "t"]) + 1
            assert plabel not in labels and len(labels) == 2
            assert plabel not in np.unique(tl.labels[t1])
            for lab in labels:
                assert lab not in np.unique(tl.labels[:t1])
            # Daughters appear next to where the mother was.
            mother = nodes.loc[parent, ["z", "y", "x"]].to_numpy(float)
            for k in kids:
                d = np.linalg.norm(nodes.loc[k, ["z", "y", "x"]].to_numpy(float) - mother)
                assert d < 8.0
    # Nodes without a parent are exactly the first-frame nodes.
    roots = tl.nodes[tl.nodes["parent_id"] < 0]
    assert (roots["t"] == 0).all()


def pd_unique(values: np.ndarray) -> bool:
    return len(np.unique(values)) == len(values)


def test_ctc_track_table_matches_the_labels(tl: TimelapseSample) -> None:
    present = {
        int(lab): [t for t in range(FRAMES) if (tl.labels[t] == lab).any()]
        for lab in np.unique(tl.labels[tl.labels > 0])
    }
    assert sorted(present) == sorted(tl.tracks["track_id"])
    for row in tl.tracks.itertuples():
        frames = present[row.track_id]
        assert frames == list(range(row.start, row.end + 1))  # contiguous, no gaps
        if row.parent_track_id:
            parent = tl.tracks.set_index("track_id").loc[row.parent_track_id]
            assert parent["end"] == row.start - 1


def test_cells_move_trackably(tl: TimelapseSample) -> None:
    nodes = tl.nodes.set_index("node_id")
    steps = []
    for parent, child in tl.edges:
        if nodes.loc[parent, "label"] == nodes.loc[child, "label"]:
            a = nodes.loc[parent, ["z", "y", "x"]].to_numpy(float)
            b = nodes.loc[child, ["z", "y", "x"]].to_numpy(float)
            steps.append(np.linalg.norm(b - a))
    steps_arr = np.asarray(steps)
    # They move (not trivial), but by less than a nucleus radius (about 3 µm at the smallest).
    assert np.median(steps_arr) > 0.3
    assert steps_arr.max() < 3.0


def test_nuclei_are_bright_on_dark(tl: TimelapseSample) -> None:
    img = tl.image.astype(float)
    inner = np.stack([ndi.binary_erosion(f > 0, iterations=1) for f in tl.labels])
    background = np.stack([~ndi.binary_dilation(f > 0, iterations=3) for f in tl.labels])
    assert img[inner].mean() > 4 * img[background].mean()
    assert img[background].std() > 5  # noisy


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"frames": 1}, "frames"),
        ({"size": 8}, "size"),
        ({"n_cells": 0}, "n_cells"),
        ({"n_cells": 150, "size": 32}, "n_cells"),
        ({"seed": -3}, "seed"),
        ({"voxel_size_um": (1.0, 0.0, 0.5)}, "voxel_size_um"),
        ({"frame_interval_s": 0.0}, "frame_interval_s"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], word: str) -> None:
    with pytest.raises(ParameterError, match=word):
        timelapse(**kwargs)  # type: ignore[arg-type]
