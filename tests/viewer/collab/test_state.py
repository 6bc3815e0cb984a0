"""Snapshots: exact round trips (checked with TrackGraph.equals and Annotations.equals) and
refusal of anything but plain numeric columns."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from analysis.annotations import AddMarker, Annotations
from analysis.errors import FormatError
from analysis.project import Workspace
from analysis.tracks import TrackGraph, random_lineages
from viewer.collab import decode_state, encode_state


def test_trackgraph_round_trip_is_exact_and_keeps_next_id() -> None:
    g = random_lineages(n_nodes=600, track_length=10, seed=3)
    g.set_reviewed([1, 5, 9], True)
    g.remove_edge(4, 5)
    snap = json.loads(json.dumps(encode_state(g)))  # through JSON text, as on the wire
    h = decode_state(snap)
    assert isinstance(h, TrackGraph)
    assert h.equals(g)
    assert h.next_id == g.next_id
    h.validate()


def test_workspace_round_trip() -> None:
    ws = Workspace(random_lineages(n_nodes=60, track_length=5), Annotations())
    AddMarker("mito", (1.0, 2.0, 3.0), t=2.0).apply(ws)
    back = decode_state(json.loads(json.dumps(encode_state(ws))))
    assert back.tracks.equals(ws.tracks)
    assert back.annotations.equals(ws.annotations)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["columns"]["id"].update(dtype="|O"),  # object dtype: would need pickle
        lambda d: d["columns"]["t"].update(shape=[10**9]),
        lambda d: d["columns"]["zyx"].update(data="!!notbase64"),
        lambda d: d["columns"]["edges"].update(shape=[2, 2]),  # byte count mismatch
        lambda d: d["columns"].pop("id"),
        lambda d: d.update(kind="pickle"),
    ],
)
def test_bad_snapshots_are_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    good = encode_state(TrackGraph.from_arrays([0, 1], [0, 1], np.zeros((2, 3)), [[0, 1]]))
    bad = copy.deepcopy(good)
    mutate(bad)
    with pytest.raises(FormatError):
        decode_state(bad)
