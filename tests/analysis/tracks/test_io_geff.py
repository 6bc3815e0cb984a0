"""GEFF I/O against direct zarr reads of the real mouse lineage and the geff package itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from geff.core_io import read_to_memory
from geff.validate.tracks import validate_lineages, validate_tracklets

from analysis.errors import FormatError
from analysis.io import read_geff, write_geff
from analysis.tracks import TrackGraph, random_lineages


@pytest.fixture(scope="module")
def mouse_path(testdata: Path) -> Path:
    return testdata / "geff" / "mouse-20250719.zarr"


@pytest.fixture(scope="module")
def mouse(mouse_path: Path) -> TrackGraph:
    return read_geff(mouse_path)


def test_mouse_geff_loads_all_props_and_edges(mouse_path: Path, mouse: TrackGraph) -> None:
    # Reference: the raw arrays read with zarr directly, no geff or vrscope code.
    root = zarr.open_group(str(mouse_path / "tracks"), mode="r")
    ids = np.asarray(root["nodes/ids"][:])
    edges = np.asarray(root["edges/ids"][:])
    assert ids.shape == (37009,) and edges.shape == (36916, 2)
    assert mouse.n_nodes == 37009 and mouse.n_edges == 36916
    order = np.argsort(mouse.node_ids)
    ref_order = np.argsort(ids)
    np.testing.assert_array_equal(mouse.node_ids[order], ids[ref_order].astype(np.int64))
    for k, axis in enumerate("zyx"):
        ref = np.asarray(root[f"nodes/props/{axis}/values"][:])[ref_order]
        np.testing.assert_array_equal(mouse.zyx[order, k], ref)  # unit null: already µm
    ref_t = np.asarray(root["nodes/props/t/values"][:])[ref_order]
    np.testing.assert_array_equal(mouse.t[order], ref_t.astype(np.int64))
    assert mouse.t.max() == 531 and np.unique(mouse.t).size == 532
    values, missing = mouse.feature("track_id")
    ref_tid = np.asarray(root["nodes/props/track_id/values"][:])[ref_order]
    ref_miss = np.asarray(root["nodes/props/track_id/missing"][:])[ref_order]
    np.testing.assert_array_equal(values[order], ref_tid)
    np.testing.assert_array_equal(missing[order], ref_miss)
    got = {tuple(e) for e in mouse.edges.tolist()}
    assert got == {tuple(e) for e in edges.astype(np.int64).tolist()}
    mouse.validate()


def test_mouse_graph_ids_agree_with_geff_validators(mouse: TrackGraph) -> None:
    ok, errs = validate_tracklets(mouse.node_ids, mouse.edges, mouse.tracklet_ids())
    assert ok, errs[:3]
    ok, errs = validate_lineages(mouse.node_ids, mouse.edges, mouse.lineage_ids())
    assert ok, errs[:3]


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_roundtrip_and_geff_reads_ours(tmp_path: Path, zarr_format: int) -> None:
    g = random_lineages(600, track_length=10, seed=4)
    g.set_reviewed([int(g.node_ids[3])], True)
    g.add_node(500, (1.0, 2.0, 3.0), label=7, features={"area": 12.5})
    g.attrs["frame_interval_s"] = 30.0
    out = tmp_path / "t.geff"
    write_geff(g, out, zarr_format=zarr_format)
    meta = zarr.open_group(str(out), mode="r")
    assert meta.metadata.zarr_format == zarr_format
    # The geff package's own reader (with structure validation) sees the same graph.
    mem = read_to_memory(str(out))
    np.testing.assert_array_equal(np.sort(mem["node_ids"]), np.sort(g.node_ids))
    props = mem["node_props"]
    assert props["area"]["missing"] is not None and props["area"]["missing"].sum() == g.n_nodes - 1
    ok, errs = validate_tracklets(mem["node_ids"], mem["edge_ids"], props["tracklet_id"]["values"])
    assert ok, errs[:3]
    back = read_geff(out)
    assert back.equals(g)
    assert back.attrs["frame_interval_s"] == 30.0


def test_reads_geff_written_by_geff_package(tmp_path: Path) -> None:
    """A GEFF written by geff's networkx backend (2D, nanometre units) maps to µm and z = 0."""
    import geff
    import networkx as nx

    G = nx.DiGraph()
    G.add_node(1, t=0, y=1000.0, x=2000.0, seg_id=5)
    G.add_node(2, t=1, y=1500.0, x=2500.0, seg_id=6)
    G.add_edge(1, 2)
    geff.write(G, str(tmp_path / "nx.geff"), axis_names=["t", "y", "x"],
               axis_types=["time", "space", "space"],
               axis_units=["second", "nanometer", "nanometer"])  # fmt: skip
    g = read_geff(tmp_path / "nx.geff")
    assert g.position(2) == pytest.approx((0.0, 1.5, 2.5))
    assert dict(zip(g.node_ids.tolist(), g.label.tolist(), strict=True)) == {1: 5, 2: 6}
    assert g.edges.tolist() == [[1, 2]]


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_geff(tmp_path / "missing.geff")
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    with pytest.raises(FormatError, match="holds no GEFF"):
        read_geff(tmp_path / "plain.zarr")
    g = random_lineages(60, track_length=5)
    write_geff(g, tmp_path / "a.geff")
    with pytest.raises(FormatError, match="already exists"):
        write_geff(g, tmp_path / "a.geff")
    write_geff(g, tmp_path / "a.geff", overwrite=True)
