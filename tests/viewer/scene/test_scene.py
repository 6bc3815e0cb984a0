"""Scene model: events, camera maths, clipping, measurements, tracks, JSON state."""

from __future__ import annotations

import json
import math

import jsonschema
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from analysis.errors import FormatError, ParameterError
from analysis.volume import ArrayVolumeSource
from viewer.scene import (
    SCHEMA_PATH,
    Camera,
    ClippingPlane,
    Image,
    Labels,
    Measurement,
    Measurements,
    Points,
    Scene,
    TrackData,
    Tracks,
    scene_from_json,
    scene_json_schema,
    scene_to_json,
)


def test_one_signal_per_property() -> None:
    img = Image(np.zeros((4, 4, 4), np.uint8), name="em")
    seen: list[tuple[str, object]] = []
    img.events.opacity.connect(lambda v: seen.append(("opacity", v)))
    img.events.colormap.connect(lambda v: seen.append(("colormap", v)))
    img.events.gamma.connect(lambda v: seen.append(("gamma", v)))
    img.opacity = 0.25
    img.colormap = "magma"
    assert seen == [("opacity", 0.25), ("colormap", "magma")]
    with pytest.raises(ValueError):
        img.opacity = 2.0  # out of 0..1: rejected, no event
    assert len(seen) == 2


def test_layer_list_events_and_unique_names() -> None:
    scene = Scene()
    events: list[str] = []
    scene.layers.events.inserted.connect(lambda i, v: events.append(f"ins {i} {v.name}"))
    scene.layers.events.removed.connect(lambda i, v: events.append(f"rm {i} {v.name}"))
    scene.layers.events.moved.connect(lambda a, b: events.append("moved"))
    scene.add(Image(np.zeros((2, 2, 2)), name="a"))
    scene.add(Points(name="b"))
    scene.layers.move(0, 2)
    del scene.layers[0]
    assert events == ["ins 0 a", "ins 1 b", "moved", "rm 0 b"]
    with pytest.raises(ParameterError, match="already"):
        scene.add(Points(name="a"))
    assert scene.layers.get("a").kind == "image"


def test_labels_edit_signal_and_dtype() -> None:
    lab = Labels(np.zeros((3, 3, 3), np.int32))
    got: list[list[int]] = []
    lab.labels_update.connect(got.append)
    lab.notify_edited([4, 7])
    assert got == [[4, 7]]
    with pytest.raises(ParameterError, match="integer"):
        Labels(np.zeros((3, 3, 3), np.float32))


def test_current_time_event() -> None:
    scene = Scene()
    times: list[float] = []
    scene.events.current_time.connect(times.append)
    scene.current_time = 3
    scene.current_time = 3  # unchanged: no event
    assert times == [3.0]


def test_orbit_matches_scipy_rotation() -> None:
    cam = Camera(position=(0.0, 0.0, -10.0), focal_point=(0.0, 0.0, 0.0), view_up=(0.0, 1.0, 0.0))
    cam.orbit(azimuth=30.0)
    # Reference: rotate the offset (in x,y,z) about the up vector (y) by 30 degrees.
    ref = Rotation.from_rotvec(np.radians(30.0) * np.array([0.0, 1.0, 0.0])).apply([-10.0, 0, 0])
    np.testing.assert_allclose(np.asarray(cam.position)[::-1], ref, atol=1e-9)
    cam.orbit(elevation=90.0)
    # After 90 degrees of elevation the camera looks straight down the up axis.
    np.testing.assert_allclose(abs(cam.direction[1]), 1.0, atol=1e-9)
    assert math.isclose(cam.distance, 10.0)


def test_frame_fits_bounding_sphere() -> None:
    cam = Camera(view_angle=40.0)
    cam.frame((0, 0, 0), (10, 20, 30), direction=(1, 0, 0), margin=1.0)
    radius = np.linalg.norm([10, 20, 30]) / 2
    # The sphere touches the view cone: sin(half angle) = r / d.
    assert math.isclose(math.sin(math.radians(20.0)), radius / cam.distance, rel_tol=1e-9)
    np.testing.assert_allclose(cam.focal_point, (5, 10, 15))


def test_clipping_plane_keeps_normal_side() -> None:
    plane = ClippingPlane(origin=(5, 0, 0), normal=(2, 0, 0))
    assert plane.normal == (1.0, 0.0, 0.0)
    np.testing.assert_array_equal(plane.keeps([[4, 0, 0], [6, 9, 9]]), [False, True])
    plane.enabled = False
    assert plane.keeps([[4, 0, 0]]).all()
    with pytest.raises(ValueError):
        ClippingPlane(normal=(0, 0, 0))


def test_measurements_against_analytic_values() -> None:
    d = Measurement(kind="distance", points_um=[(0, 0, 0), (0, 3, 4)])
    a = Measurement(kind="angle", points_um=[(0, 0, 1), (0, 0, 0), (0, 1, 0)])
    p = Measurement(kind="path", points_um=[(0, 0, 0), (0, 0, 1), (0, 1, 1)])
    assert d.value == pytest.approx(5.0)
    assert a.value == pytest.approx(90.0)
    assert p.value == pytest.approx(2.0)
    assert d.text == "5.00 µm"


def test_points_counts_per_class() -> None:
    pts = Points()
    fired: list[object] = []
    pts.events.classes.connect(fired.append)
    pts.add((1, 2, 3), "mito")
    pts.add((1, 2, 4), "mito")
    pts.add((0, 0, 0), "er")
    assert pts.counts == {"mito": 2, "er": 1}
    assert len(fired) == 3


def test_track_segments_split_at_divisions() -> None:
    # 1 -> 2 -> 3 divides into 4 -> 5 and 6: three tracklets.
    ids = [1, 2, 3, 4, 5, 6]
    edges = [(1, 2), (2, 3), (3, 4), (4, 5), (3, 6)]
    td = TrackData.from_arrays(ids, [0, 1, 2, 3, 4, 3], np.zeros((6, 3)), edges)
    tid = dict(zip(ids, td.track_ids.tolist(), strict=True))
    assert tid[1] == tid[2] == tid[3]
    assert tid[4] == tid[5]
    assert len({tid[1], tid[4], tid[6]}) == 3
    assert td.divisions().tolist() == [3]
    with pytest.raises(ParameterError, match="does not exist"):
        TrackData.from_arrays([1], [0], [[0, 0, 0]], [(1, 9)])


def test_track_graph_adapter_duck_types_columns() -> None:
    class Stand:  # stand-in for analysis.tracks.TrackGraph
        node_ids = np.array([10, 11])
        t = np.array([0, 1])
        z = np.array([0.0, 1.0])
        y = np.array([2.0, 3.0])
        x = np.array([4.0, 5.0])
        edges = np.array([[10, 11]])

    lay = Tracks.from_track_graph(Stand())
    assert lay.data is not None
    np.testing.assert_array_equal(lay.data.zyx_um[1], [1.0, 3.0, 5.0])


def test_scene_json_round_trip_and_schema() -> None:
    scene = Scene()
    img = scene.add(
        Image(ArrayVolumeSource(np.zeros((4, 5, 6), np.uint8)), name="em", source="a.zarr")
    )
    assert isinstance(img, Image)
    img.invert = True
    img.contrast_limits = (10.0, 200.0)
    scene.add(Labels(name="mito", source="a.zarr/labels/mito", hidden_ids=[3]))
    scene.add(Points(name="count", positions_um=[(1.0, 2.0, 3.0)], classes=["x"]))
    scene.add(Measurements(name="m", items=[Measurement(points_um=[(0, 0, 0), (1, 1, 1)])]))
    scene.add(Tracks(name="t", tail_length=4))
    scene.add_clipping_plane(origin=(1, 2, 3), normal=(0, 1, 0))
    scene.camera.orbit(azimuth=20)
    scene.current_time = 7
    scene.selection.update({"layer": "mito", "label_ids": [5]})
    text = scene_to_json(scene)
    # The saved text validates against the committed schema (independent validator).
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.validate(json.loads(text), schema)
    resolved: list[str] = []
    back = scene_from_json(text, resolve=lambda lay: resolved.append(lay.name))
    assert resolved == ["em", "mito", "count", "m", "t"]
    assert scene_to_json(back) == text
    assert isinstance(back.layers.get("em"), Image)
    assert back.layers.get("em").invert is True  # type: ignore[attr-defined]
    assert back.current_time == 7.0
    np.testing.assert_allclose(back.camera.position, scene.camera.position)


def test_committed_schema_in_sync() -> None:
    assert json.loads(SCHEMA_PATH.read_text()) == scene_json_schema(), (
        "scene-schema.json is stale: run `python -m viewer.scene`"
    )


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("not json", "not JSON"),
        ('{"schema_version": 99}', "schema_version 99"),
        ('{"schema_version": 1, "layers": [{"kind": "image", "opacity": 5}]}', "opacity"),
    ],
)
def test_bad_scene_json(text: str, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        scene_from_json(text)
