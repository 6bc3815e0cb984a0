"""No data loss on GEFF round trips: edge properties, non-frame time axes, the file's track ids.

References: graphs built with networkx and written by the ``geff`` package itself, and
``geff.core_io.read_to_memory`` reading back what we write.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest
from geff.core_io import read_to_memory, write_arrays
from geff.validate.tracks import validate_tracklets
from geff_spec import Axis, GeffMetadata

from analysis.edits import Cut, Delete, History, Merge, Prolong, Swap
from analysis.errors import InvalidEditError
from analysis.io import read_geff, write_geff
from analysis.tracks import TrackGraph


def _write_nx(G: nx.DiGraph, path: Path, t_unit: str | None = "second") -> None:
    import geff

    geff.write(G, str(path), axis_names=["t", "y", "x"], axis_types=["time", "space", "space"],
               axis_units=[t_unit, "micrometer", "micrometer"])  # fmt: skip


def _edge_table(mem: Any, name: str) -> dict[tuple[int, int], Any]:
    """(src, dst) -> value, or None where geff marks it missing."""
    prop = mem["edge_props"][name]
    miss = prop["missing"] if prop["missing"] is not None else np.zeros(len(prop["values"]), bool)
    return {
        (int(a), int(b)): (None if m else v.item())
        for (a, b), v, m in zip(mem["edge_ids"], prop["values"], miss, strict=True)
    }


def _node_table(mem: Any, name: str) -> dict[int, Any]:
    prop = mem["node_props"][name]
    miss = prop["missing"] if prop["missing"] is not None else np.zeros(len(prop["values"]), bool)
    return {
        int(i): (None if m else v.item())
        for i, v, m in zip(mem["node_ids"], prop["values"], miss, strict=True)
    }


def _lineage_graph() -> nx.DiGraph:
    """Two tracks of 5 nodes (ids 1-5 and 11-15) at t = 0..4, edge props iou (some missing)."""
    G = nx.DiGraph()
    for base, y in ((0, 0.0), (10, 20.0)):
        for k in range(5):
            G.add_node(base + k + 1, t=k, y=y + k, x=2.0 * k)
        for k in range(4):
            attrs = {"score": 0.5 + 0.1 * k + base}
            if not (base == 10 and k == 2):
                attrs["iou"] = 0.25 + 0.05 * k + base / 100
            G.add_edge(base + k + 1, base + k + 2, **attrs)
    return G


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_edge_props_roundtrip_with_geff_package(tmp_path: Path, zarr_format: int) -> None:
    G = _lineage_graph()
    _write_nx(G, tmp_path / "in.geff")
    g = read_geff(tmp_path / "in.geff")
    assert set(g.edge_feature_names) == {"iou", "score"}
    iou, iou_miss = g.edge_feature("iou")
    for (a, b), v, m in zip(g.edges.tolist(), iou, iou_miss, strict=True):
        ref = G.edges[a, b].get("iou")  # the networkx graph is the reference
        assert m == (ref is None)
        if ref is not None:
            assert v == ref
    write_geff(g, tmp_path / "out.geff", zarr_format=zarr_format)
    theirs = read_to_memory(str(tmp_path / "in.geff"))
    ours = read_to_memory(str(tmp_path / "out.geff"))
    for name in ("iou", "score"):
        assert _edge_table(ours, name) == _edge_table(theirs, name)
    assert read_geff(tmp_path / "out.geff").equals(g)


def test_edge_props_follow_edits_and_undo(tmp_path: Path) -> None:
    G = _lineage_graph()
    _write_nx(G, tmp_path / "in.geff")
    g = read_geff(tmp_path / "in.geff")
    original = g.copy()
    h = History(g)

    h.apply(Cut(3))  # the edge 2 -> 3 goes, with its props
    assert not g.has_edge(2, 3) and g.edge_props(3, 4)["score"] == pytest.approx(0.7)
    h.undo()
    assert g.edge_props(2, 3) == G.edges[2, 3]
    assert g.equals(original)

    h.apply(Delete.track(12))  # the whole tracklet 11..15 and its edges
    h.apply(Prolong(5, [[5, 0.0, 5.0, 10.0], [6, 0.0, 6.0, 12.0]]))
    end = g.tracklet(5)[-1]
    assert g.edge_props(int(g.parent(int(end))), int(end)) == {}  # created edges: missing
    h.undo()
    h.undo()
    assert g.equals(original)

    h.apply(Cut(3))
    h.apply(Cut(13))
    h.apply(Merge(2, 13))  # a new link 2 -> 13: missing props, 12 -> 13 props kept aside
    assert g.edge_props(2, 13) == {}
    for _ in range(3):
        h.undo()
    assert g.edge_props(12, 13) == G.edges[12, 13]

    h.apply(Swap(2, 12))  # new links 2 -> 13 and 12 -> 3 carry no props
    assert g.edge_props(2, 13) == {} and g.edge_props(12, 3) == {}
    h.undo()
    assert g.equals(original)
    h.redo()
    write_geff(g, tmp_path / "edited.geff")
    ours = read_to_memory(str(tmp_path / "edited.geff"))
    table = _edge_table(ours, "score")
    assert table[(2, 13)] is None and table[(3, 4)] == pytest.approx(G.edges[3, 4]["score"])


def test_edge_props_survive_random_edits_and_undo_all() -> None:
    """Random cut/delete/swap sequences: undo-all restores every edge value exactly."""
    from analysis.tracks import random_lineages

    rng = np.random.default_rng(7)
    base = random_lineages(300, track_length=10, seed=3)
    e = base.edges
    g = TrackGraph.from_arrays(
        base.node_ids, base.t, base.zyx, e,
        edge_features={"w": rng.random(len(e))},
        edge_feature_missing={"w": rng.random(len(e)) < 0.2},
    )  # fmt: skip
    original = g.copy()
    ref = {(int(a), int(b)): g.edge_props(int(a), int(b)) for a, b in e}
    h = History(g)
    for _ in range(60):
        ids = g.node_ids
        n = int(rng.choice(ids))
        k = rng.integers(3)
        try:
            if k == 0:
                h.apply(Cut(n))
            elif k == 1:
                h.apply(Delete.track(n))
            else:
                h.apply(Swap(n, int(rng.choice(ids))))
        except InvalidEditError:  # invalid picks are rejected; the graph stays unchanged
            continue
        for a, b in g.edges.tolist():  # surviving original edges keep their values
            if (a, b) in ref and g.edge_props(a, b):
                assert g.edge_props(a, b) == ref[(a, b)]
    while h.can_undo:
        h.undo()
    assert g.equals(original)


def _time_geff(path: Path, times: np.ndarray, unit: str) -> nx.DiGraph:
    """One track per distinct position; node i at time times[i] (sorted), chained."""
    G = nx.DiGraph()
    for i, tv in enumerate(times.tolist()):
        G.add_node(i + 1, t=tv, y=float(i), x=1.0)
    G.add_edges_from((i + 1, i + 2) for i in range(len(times) - 1))
    _write_nx(G, path, t_unit=unit)
    return G


@pytest.mark.parametrize(
    ("times", "unit", "frames", "column", "dt"),
    [
        (np.arange(6) * 0.5 + 1.0, "second", np.arange(6) + 2, "time_s", 0.5),  # regular grid
        (np.arange(6) * 0.5 + 0.25, "minute", np.arange(6), "time_min", 30.0),  # offset grid
        (np.array([0.0, 0.7, 1.9, 5.3, 5.4, 8.05]), "second", np.arange(6), "time_s", None),
    ],
)
def test_time_axis_in_physical_units(
    tmp_path: Path,
    times: np.ndarray,
    unit: str,
    frames: np.ndarray,
    column: str,
    dt: float | None,
) -> None:
    _time_geff(tmp_path / "in.geff", times, unit)
    g = read_geff(tmp_path / "in.geff")
    order = np.argsort(g.node_ids)
    np.testing.assert_array_equal(g.t[order], frames)
    values, missing = g.feature(column)
    np.testing.assert_array_equal(values[order], times)  # the file's values, unchanged
    assert not missing.any()
    assert g.attrs.get("frame_interval_s") == (pytest.approx(dt) if dt else None)
    assert g.nearest(int(frames[2]), (0.0, 2.0, 1.0)) == 3  # picking uses frames

    write_geff(g, tmp_path / "out.geff")
    theirs = read_to_memory(str(tmp_path / "in.geff"))
    ours = read_to_memory(str(tmp_path / "out.geff"))
    assert _node_table(ours, "t") == _node_table(theirs, "t")  # written back unchanged
    assert [a.unit for a in ours["metadata"].axes if a.name == "t"] == [unit]
    back = read_geff(tmp_path / "out.geff")
    assert back.equals(g)

    # Deleting a whole time point does not shift later frames (our frame property).
    h = History(g)
    h.apply(Cut(2))
    h.apply(Cut(3))
    h.apply(Delete.node(2))
    write_geff(g, tmp_path / "edited.geff")
    again = read_geff(tmp_path / "edited.geff")
    assert again.equals(g)


def test_prolonged_nodes_get_interpolated_times(tmp_path: Path) -> None:
    times = np.arange(4) * 0.5 + 0.5  # frames 1..4 at 0.5 s
    _time_geff(tmp_path / "in.geff", times, "second")
    g = read_geff(tmp_path / "in.geff")
    History(g).apply(Prolong(4, [[6, 0.0, 9.0, 1.0]]))
    new = int(g.tracklet(4)[-1])
    write_geff(g, tmp_path / "out.geff")
    t_of = _node_table(read_to_memory(str(tmp_path / "out.geff")), "t")
    assert t_of[new] == pytest.approx(3.0)  # frame 6 * 0.5 s
    assert [t_of[i] for i in range(1, 5)] == times.tolist()


def _write_with_track_props(path: Path, tracklet_name: str, tracklet_values: np.ndarray) -> None:
    ids = np.arange(1, 7, dtype=np.int64)
    props = {
        "t": {"values": np.array([0, 1, 2, 0, 1, 2]), "missing": None},
        "y": {"values": np.arange(6.0), "missing": None},
        "x": {"values": np.zeros(6), "missing": None},
        tracklet_name: {"values": tracklet_values, "missing": None},
    }
    edges = np.array([[1, 2], [2, 3], [4, 5], [5, 6]], dtype=np.int64)
    meta = GeffMetadata(
        directed=True,
        axes=[Axis(name="t", type="time"), Axis(name="y", type="space"),
              Axis(name="x", type="space")],
        node_props_metadata={}, edge_props_metadata={},
        track_node_props={"tracklet": tracklet_name},
    )  # fmt: skip
    write_arrays(str(path), ids, props, edges, None, meta)


def test_file_track_ids_are_kept_and_written_back(tmp_path: Path) -> None:
    file_ids = np.array([7, 7, 7, 9, 9, 9])
    _write_with_track_props(tmp_path / "in.geff", "track_id", file_ids)
    g = read_geff(tmp_path / "in.geff")
    values, missing = g.feature("track_id")
    assert dict(zip(g.node_ids.tolist(), values.tolist(), strict=True)) == dict(
        zip(range(1, 7), file_ids.tolist(), strict=True)
    )
    assert not missing.any()
    assert g.attrs["geff_track_node_props"] == {"tracklet": "track_id"}
    write_geff(g, tmp_path / "out.geff")
    ours = read_to_memory(str(tmp_path / "out.geff"))
    theirs = read_to_memory(str(tmp_path / "in.geff"))
    assert _node_table(ours, "track_id") == _node_table(theirs, "track_id")
    # The tracklet ids we name in track_node_props are valid by geff's own validator.
    name = ours["metadata"].track_node_props["tracklet"]
    ok, errs = validate_tracklets(ours["node_ids"], ours["edge_ids"],
                                  ours["node_props"][name]["values"])  # fmt: skip
    assert ok, errs


def test_file_ids_named_like_ours_are_kept_when_they_differ(tmp_path: Path) -> None:
    file_ids = np.array([7, 7, 7, 9, 9, 9])  # not the first-node ids we derive
    _write_with_track_props(tmp_path / "in.geff", "tracklet_id", file_ids)
    g = read_geff(tmp_path / "in.geff")
    values, _ = g.feature("tracklet_id_file")
    np.testing.assert_array_equal(values[np.argsort(g.node_ids)], file_ids)
    # Ids equal to the derived ones (1 and 4: the first node of each track) are dropped.
    _write_with_track_props(tmp_path / "same.geff", "tracklet_id", np.array([1, 1, 1, 4, 4, 4]))
    assert "tracklet_id_file" not in read_geff(tmp_path / "same.geff").feature_names
