"""CSV (TrackMate-like) I/O checked with plain pandas reads and geff's own CSV converter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from geff.convert import geff_to_csv

from analysis.errors import FormatError
from analysis.io import edges_csv_path, read_geff, read_tracks_csv, write_geff, write_tracks_csv
from analysis.tracks import TrackGraph, random_lineages


@pytest.fixture
def graph() -> TrackGraph:
    g = random_lineages(300, track_length=10, seed=5)
    g.add_node(3, (1.0, 2.0, 3.0), label=4, features={"area": 2.5})
    g.attrs["frame_interval_s"] = 60.0
    return g


def test_written_tables_read_with_pandas(graph: TrackGraph, tmp_path: Path) -> None:
    sp, ep = write_tracks_csv(graph, tmp_path / "run_spots.csv")
    assert ep == tmp_path / "run_edges.csv"
    spots = pd.read_csv(sp).set_index("ID").loc[graph.node_ids]
    np.testing.assert_array_equal(spots["FRAME"], graph.t)
    np.testing.assert_array_equal(spots["POSITION_T"], graph.t * 60.0)
    np.testing.assert_array_equal(spots[["POSITION_Z", "POSITION_Y", "POSITION_X"]], graph.zyx)
    area = spots["area"]
    assert area.notna().sum() == 1 and area.dropna().iloc[0] == 2.5
    edges = pd.read_csv(ep)
    assert {tuple(e) for e in edges[["SPOT_SOURCE_ID", "SPOT_TARGET_ID"]].to_numpy().tolist()} == {
        tuple(e) for e in graph.edges.tolist()
    }
    # TRACK_ID is TrackMate's track: the connected component.
    assert spots.groupby("TRACK_ID").ngroups == len(np.unique(graph.lineage_ids()))


def test_roundtrip(graph: TrackGraph, tmp_path: Path) -> None:
    write_tracks_csv(graph, tmp_path / "a.csv")
    back = read_tracks_csv(tmp_path / "a.csv")
    assert back.equals(graph)


def test_reads_trackmate_header_rows(graph: TrackGraph, tmp_path: Path) -> None:
    """TrackMate's CSV export repeats names, short names and units under the keys."""
    sp, ep = write_tracks_csv(graph, tmp_path / "tm_spots.csv")
    for f in (sp, ep):
        lines = f.read_text().splitlines()
        n = len(lines[0].split(","))
        extra = [",".join(["Name"] * n), ",".join(["Short"] * n), ",".join(["(unit)"] * n)]
        f.write_text("\n".join([lines[0], *extra, *lines[1:]]) + "\n")
    back = read_tracks_csv(sp)
    assert back.equals(graph)


def test_reads_geff_package_csv(graph: TrackGraph, tmp_path: Path) -> None:
    write_geff(graph, tmp_path / "g.geff")
    geff_to_csv(str(tmp_path / "g.geff"), tmp_path / "g")
    assert edges_csv_path(tmp_path / "g-nodes.csv") == tmp_path / "g-edges.csv"
    back = read_tracks_csv(tmp_path / "g-nodes.csv")
    assert back.n_nodes == graph.n_nodes and back.n_edges == graph.n_edges
    np.testing.assert_array_equal(back.snapshot()["zyx"], graph.snapshot()["zyx"])
    np.testing.assert_array_equal(back.snapshot()["edges"], graph.snapshot()["edges"])


def test_errors(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(FormatError, match="no 'ID'"):
        read_tracks_csv(tmp_path / "x.csv")
    (tmp_path / "y.csv").write_text("ID,FRAME,POSITION_X,POSITION_Y\n1,0,0,0\n2,0,1,1\n")
    (tmp_path / "y_edges.csv").write_text("SPOT_SOURCE_ID,SPOT_TARGET_ID\n1,2\n")
    with pytest.raises(FormatError, match="forward in time"):
        read_tracks_csv(tmp_path / "y.csv")
    with pytest.raises(FileNotFoundError):
        read_tracks_csv(tmp_path / "missing.csv")


def test_edge_features_roundtrip_and_geff_csv(tmp_path: Path) -> None:
    """Edge props (from a GEFF written by the geff package) go to the edges table and back."""
    import geff
    import networkx as nx

    G = nx.DiGraph()
    for i in range(1, 6):
        G.add_node(i, t=i, y=float(i), x=0.0)
    for i in range(1, 5):
        G.add_edge(i, i + 1, **({"iou": 0.1 * i} if i != 3 else {}))
    geff.write(G, str(tmp_path / "e.geff"), axis_names=["t", "y", "x"])
    g = read_geff(tmp_path / "e.geff")
    _, ep = write_tracks_csv(g, tmp_path / "e_spots.csv")
    table = pd.read_csv(ep).set_index(["SPOT_SOURCE_ID", "SPOT_TARGET_ID"])["iou"]
    for (a, b), v in table.items():
        ref = G.edges[a, b].get("iou")  # networkx is the reference
        assert (np.isnan(v) and ref is None) or v == pytest.approx(ref)
    assert read_tracks_csv(tmp_path / "e_spots.csv").equals(g)
    # geff's own CSV converter writes the edge props too; we read them as edge features.
    geff_to_csv(str(tmp_path / "e.geff"), tmp_path / "ge")
    back = read_tracks_csv(tmp_path / "ge-nodes.csv")
    v, m = back.edge_feature("iou")
    got = {
        tuple(e): (None if mm else vv) for e, vv, mm in zip(back.edges.tolist(), v, m, strict=True)
    }
    assert got == {(a, b): G.edges[a, b].get("iou") for a, b in G.edges}
