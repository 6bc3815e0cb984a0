"""Annotation models and commands: values against SciPy/NumPy geometry, schema, undo/redo."""

from __future__ import annotations

import json
import math

import jsonschema
import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from scipy.spatial.distance import euclidean
from scipy.spatial.transform import Rotation

from analysis.annotations import (
    ANNOTATIONS_SCHEMA_PATH,
    AddMarker,
    AddMeasurement,
    Annotations,
    DefineClass,
    Measurement,
    MoveMarker,
    RemoveMarker,
    RemoveMeasurement,
    SetObjectClass,
    annotations_json_schema,
)
from analysis.edits import History, command_from_json, command_to_json
from analysis.errors import FormatError, InvalidEditError


def test_committed_schema_in_sync() -> None:
    assert json.loads(ANNOTATIONS_SCHEMA_PATH.read_text()) == annotations_json_schema(), (
        "annotations-schema.json is stale: run `python -m analysis.annotations`"
    )


def test_distance_and_path_match_scipy() -> None:
    rng = np.random.default_rng(1)
    pts = rng.uniform(-5, 5, (6, 3))
    d = Measurement(id=0, kind="distance", points_um=[tuple(pts[0]), tuple(pts[1])])
    assert d.value == pytest.approx(euclidean(pts[0], pts[1]), rel=1e-12)
    assert d.unit == "µm"
    p = Measurement(id=1, kind="path", points_um=[tuple(x) for x in pts])
    ref = sum(euclidean(a, b) for a, b in zip(pts[:-1], pts[1:], strict=True))
    assert p.value == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("deg", [0.5, 30.0, 90.0, 135.0, 179.5])
def test_angle_matches_a_known_rotation(deg: float) -> None:
    # Rotate a unit arm by a known angle about a random axis: the measured angle is that angle.
    rng = np.random.default_rng(int(deg * 10))
    axis = rng.normal(size=3)
    a = np.cross(axis, rng.normal(size=3))
    a /= np.linalg.norm(a)
    b = Rotation.from_rotvec(math.radians(deg) * axis / np.linalg.norm(axis)).apply(a)
    vertex = rng.uniform(-3, 3, 3)
    m = Measurement(
        id=0,
        kind="angle",
        points_um=[tuple(vertex + 2 * a), tuple(vertex), tuple(vertex + 3.5 * b)],
    )
    assert m.value == pytest.approx(deg, abs=1e-9)
    assert m.unit == "deg"


@pytest.mark.parametrize(
    ("kind", "n"), [("distance", 1), ("distance", 3), ("angle", 2), ("angle", 4), ("path", 1)]
)
def test_wrong_number_of_points_is_rejected(kind: str, n: int) -> None:
    ann = Annotations()
    with pytest.raises(InvalidEditError, match="points"):
        History(ann).apply(AddMeasurement(kind, [(0.0, 0.0, float(i)) for i in range(n)]))  # type: ignore[arg-type]
    assert ann.measurements == []


def test_marker_commands_counts_and_undo() -> None:
    ann = Annotations()
    seen: list[dict[str, int]] = []
    ann.events.counts.connect(seen.append)
    h = History(ann)
    h.apply(DefineClass("mito", (1.0, 0.0, 0.0)))
    a = h.apply(AddMarker("mito", (1, 2, 3)))
    h.apply(AddMarker("pore", (4, 5, 6), t=2))  # creates class "pore"
    assert ann.counts() == {"mito": 1, "pore": 1}
    assert seen[-1] == {"mito": 1, "pore": 1}
    assert ann.class_color("mito") == (1.0, 0.0, 0.0)
    assert isinstance(a, AddMarker) and a.marker_id is not None
    h.apply(MoveMarker(a.marker_id, (7, 8, 9)))
    assert ann.marker(a.marker_id).position_um == (7.0, 8.0, 9.0)
    h.apply(RemoveMarker(a.marker_id))
    assert ann.counts() == {"mito": 0, "pore": 1}
    h.undo()
    h.undo()
    assert ann.marker(a.marker_id).position_um == (1.0, 2.0, 3.0)
    h.undo()  # the pore marker and its auto-created class go
    assert ann.counts() == {"mito": 1}
    h.redo()
    assert ann.counts() == {"mito": 1, "pore": 1}


def test_invalid_edits_leave_annotations_untouched() -> None:
    ann = Annotations()
    h = History(ann)
    h.apply(AddMarker("a", (0, 0, 0)))
    before = ann.state()
    with pytest.raises(InvalidEditError, match="marker 99"):
        h.apply(RemoveMarker(99))
    with pytest.raises(InvalidEditError, match="finite"):
        h.apply(AddMarker("a", (0, float("nan"), 0)))
    with pytest.raises(InvalidEditError, match="already used"):
        h.apply(AddMarker("a", (1, 1, 1), marker_id=ann.markers[0].id))
    with pytest.raises(InvalidEditError, match="background"):
        h.apply(SetObjectClass(0, "x", "mito"))
    with pytest.raises(InvalidEditError, match="0..1"):
        h.apply(DefineClass("b", (2.0, 0.0, 0.0)))
    assert ann.state() == before


def test_object_classes_and_json_round_trip() -> None:
    ann = Annotations()
    h = History(ann)
    h.apply(SetObjectClass(5, "elongated", "mitochondria"))
    h.apply(SetObjectClass(5, "round", "mitochondria"))
    h.apply(AddMeasurement("path", [(0, 0, 0), (0, 3, 4), (0, 3, 10)], t=1.0))
    assert ann.object_classes == {"mitochondria": {5: "round"}}
    h.undo()
    h.undo()
    assert ann.object_classes == {"mitochondria": {5: "elongated"}}
    h.redo()
    text = ann.to_json()
    # The file validates against the committed schema with an independent validator.
    jsonschema.validate(json.loads(text), json.loads(ANNOTATIONS_SCHEMA_PATH.read_text()))
    back = Annotations.from_json(text)
    assert back.equals(ann)
    assert back.fingerprint() == ann.fingerprint()
    assert back.object_classes == {"mitochondria": {5: "round"}}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{", "not valid JSON"),
        ('{"schema_version": 7}', "schema_version 7"),
        ('{"markers": [{"id": 1, "class_name": "a", "position_um": [0, 0]}]}', "markers.0"),
    ],
)
def test_bad_annotation_files(text: str, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        Annotations.from_json(text)


def test_commands_round_trip_through_json_with_ids() -> None:
    ann = Annotations()
    h = History(ann)
    cmds = [
        DefineClass("a"),
        AddMarker("a", (1, 2, 3), t=0.0),
        AddMeasurement("distance", [(0, 0, 0), (1, 1, 1)]),
        SetObjectClass(3, "a", "lab"),
    ]
    for c in cmds:
        h.apply(c)
    replayed = Annotations()
    for c in cmds:
        command_from_json(json.loads(json.dumps(command_to_json(c)))).apply(replayed)
    assert replayed.equals(ann)


def _content_of(state: object) -> dict[str, object]:
    # Ids are never reused, so the next ids only grow; everything else must match exactly.
    return state.model_dump(exclude={"next_id", "next_measurement_id"})  # type: ignore[attr-defined, no-any-return]


def _content(ann: Annotations) -> dict[str, object]:
    return _content_of(ann.state())


class AnnotationMachine(RuleBasedStateMachine):
    """Random edits, undos and redos: undo-all restores the start, redo-all the end."""

    def __init__(self) -> None:
        super().__init__()
        self.ann = Annotations()
        self.h = History(self.ann)
        self.start = self.ann.state()
        self.states = [self.ann.state()]  # state after each undoable step

    coords = st.tuples(*[st.floats(-100, 100, allow_nan=False)] * 3)

    def _did(self) -> None:
        del self.states[len(self.h.undo_steps) :]
        self.states.append(self.ann.state())

    @rule(cls=st.sampled_from(["a", "b"]), pos=coords)
    def add(self, cls: str, pos: tuple[float, float, float]) -> None:
        self.h.apply(AddMarker(cls, pos))
        self._did()

    @rule(pos=coords, data=st.data())
    @precondition(lambda self: bool(self.ann.markers))
    def move_or_remove(self, pos: tuple[float, float, float], data: st.DataObject) -> None:
        m = data.draw(st.sampled_from(self.ann.markers))
        if data.draw(st.booleans()):
            self.h.apply(MoveMarker(m.id, pos))
        else:
            self.h.apply(RemoveMarker(m.id))
        self._did()

    @rule(a=coords, b=coords)
    def measure(self, a: tuple[float, float, float], b: tuple[float, float, float]) -> None:
        self.h.apply(AddMeasurement("distance", [a, b]))
        self._did()

    @rule()
    @precondition(lambda self: bool(self.ann.measurements))
    def remove_measurement(self) -> None:
        self.h.apply(RemoveMeasurement(self.ann.measurements[0].id))
        self._did()

    @rule()
    @precondition(lambda self: self.h.can_undo)
    def undo(self) -> None:
        self.h.undo()
        assert _content(self.ann) == _content_of(self.states[len(self.h.undo_steps)])

    @rule()
    @precondition(lambda self: self.h.can_redo)
    def redo(self) -> None:
        self.h.redo()
        assert _content(self.ann) == _content_of(self.states[len(self.h.undo_steps)])

    @invariant()
    def counts_match_markers(self) -> None:
        from collections import Counter

        got = {k: v for k, v in self.ann.counts().items() if v}
        assert got == dict(Counter(m.class_name for m in self.ann.markers))

    def teardown(self) -> None:
        while self.h.can_undo:
            self.h.undo()
        assert _content(self.ann) == _content_of(self.start)


TestAnnotationMachine = AnnotationMachine.TestCase
TestAnnotationMachine.settings = settings(max_examples=30, stateful_step_count=25, deadline=None)


def test_events_say_what_changed_through_commands_undo_and_redo():
    """Each annotation event carries the id (or class, or object) that changed."""
    from analysis.annotations import AddMarker, AddMeasurement, Annotations, SetObjectClass
    from analysis.edits import History

    ann = Annotations()
    got: list[tuple] = []
    ann.events.markers.connect(lambda i: got.append(("marker", i)))
    ann.events.measurements.connect(lambda i: got.append(("measurement", i)))
    ann.events.object_classes.connect(lambda layer, label: got.append(("object", layer, label)))
    ann.events.classes.connect(lambda name: got.append(("class", name)))
    h = History(ann)
    m = h.apply(AddMarker("mito", (1.0, 2.0, 3.0)))
    h.apply(AddMeasurement("distance", [(0.0, 0.0, 0.0), (0.0, 3.0, 4.0)]))
    h.apply(SetObjectClass(7, "big", "cells"))
    h.undo()
    mid = ann.markers[0].id
    assert ("marker", mid) in got and ("measurement", ann.measurements[0].id) in got
    assert got.count(("object", "cells", 7)) == 2  # set, then cleared by the undo
    assert m.marker_id == mid


def test_rename_and_remove_class_undo_exactly_and_round_trip_json() -> None:
    from analysis.annotations import RemoveClass, RenameClass, SetObjectClass

    ann = Annotations()
    h = History(ann)
    h.apply(DefineClass("mito", (1.0, 0.0, 0.0)))
    h.apply(DefineClass("spare"))
    h.apply(AddMarker("mito", (0, 0, 0)))
    h.apply(SetObjectClass(7, "mito", "cells"))
    before = ann.state().model_dump()
    cmd = RenameClass("mito", "mitochondrion")
    h.apply(command_from_json(json.loads(json.dumps(command_to_json(cmd)))))
    assert [m.class_name for m in ann.markers] == ["mitochondrion"]
    assert ann.object_classes == {"cells": {7: "mitochondrion"}}
    assert ann.class_color("mitochondrion") == (1.0, 0.0, 0.0)
    assert not ann.has_class("mito")
    h.undo()
    assert ann.state().model_dump() == before
    with pytest.raises(InvalidEditError, match="reclassify"):
        h.apply(RemoveClass("mito"))
    with pytest.raises(InvalidEditError, match="exists already"):
        h.apply(RenameClass("mito", "spare"))
    assert ann.state().model_dump() == before
    h.apply(RemoveClass("spare"))
    assert not ann.has_class("spare")
    h.undo()
    assert ann.state().model_dump() == before


def test_markers_and_measurements_are_numbered_from_1_each() -> None:
    """Issue 18.13: marker ids started at 2 (one counter shared with measurements)."""
    from analysis.annotations import AnnotationsState

    ann = Annotations()
    h = History(ann)
    h.apply(AddMeasurement("distance", [(0, 0, 0), (1, 1, 1)]))
    h.apply(AddMarker("a", (1, 2, 3)))
    h.apply(AddMarker("a", (2, 2, 3)))
    h.apply(AddMeasurement("distance", [(0, 0, 0), (2, 2, 2)]))
    assert [m.id for m in ann.markers] == [1, 2]
    assert [m.id for m in ann.measurements] == [1, 2]
    # Never reused, also after a removal and across a save (the state keeps both counters).
    h.apply(RemoveMarker(2))
    again = Annotations(AnnotationsState.model_validate_json(ann.to_json()))
    h2 = History(again)
    h2.apply(AddMarker("a", (3, 2, 3)))
    assert [m.id for m in again.markers] == [1, 3]
    # A file saved when both shared one counter (next_id only) goes on from it.
    old = AnnotationsState.model_validate({"schema_version": 1, "next_id": 7})
    assert Annotations(old).new_id() == 7
