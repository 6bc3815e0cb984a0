"""Project folders: create, edit through one History, reopen with the journal, export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from geff.core_io import read_to_memory
from scipy.spatial.distance import euclidean

from analysis.annotations import AddMarker, AddMeasurement, RemoveMarker
from analysis.edits import Cut, Merge, Prolong
from analysis.errors import FormatError, InvalidEditError
from analysis.io import write_geff
from analysis.project import Project, Workspace
from analysis.tracks import TrackGraph


def two_tracks() -> TrackGraph:
    """Track A: nodes 0-4 at t 0-4 moving along x; track B: nodes 10-12 at t 6-8."""
    ids = [0, 1, 2, 3, 4, 10, 11, 12]
    t = [0, 1, 2, 3, 4, 6, 7, 8]
    zyx = [[1.0, 2.0, float(i)] for i in range(5)] + [[1.0, 2.0, 6.0 + i] for i in range(3)]
    edges = [[0, 1], [1, 2], [2, 3], [3, 4], [10, 11], [11, 12]]
    return TrackGraph.from_arrays(ids, t, zyx, edges)


def _edges(path: Path) -> set[tuple[int, int]]:
    # The geff package's own reader is the judge of what was written.
    mem = read_to_memory(str(path))
    return {(int(a), int(b)) for a, b in mem["edge_ids"]}


def test_edits_of_all_kinds_survive_reopen_with_undo_history(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    with Project.create(folder, tracks=two_tracks(), classes=["mito", "pore"]) as pr:
        h = pr.history
        h.apply(Cut(2))
        h.apply(Merge(4, 10))
        prolong = h.apply(Prolong(12, [[9, 1.0, 2.0, 9.5]]))
        h.apply(AddMarker("mito", (1.0, 2.0, 3.0), t=4))
        h.apply(AddMarker("pore", (4.0, 5.0, 6.0)))
        h.apply(AddMeasurement("distance", [(0, 0, 0), (0, 3, 4)]))
        h.undo()  # the measurement: it must stay undone after reopening, and be redoable
        assert isinstance(prolong, Prolong) and prolong.new_ids is not None
        new_id = prolong.new_ids[0]
        pr.save_scene({"camera": {"azimuth": 30}, "layers": ["a"]})

    expected = {(0, 1), (2, 3), (3, 4), (4, 10), (10, 11), (11, 12), (12, new_id)}
    with Project.open(folder) as pr:
        g = pr.tracks
        assert g is not None
        assert set(map(tuple, g.edges.tolist())) == expected
        assert g.position(new_id) == (1.0, 2.0, 9.5) and g.time(new_id) == 9
        assert pr.annotations.counts() == {"mito": 1, "pore": 1}
        assert pr.annotations.measurements == []
        assert pr.load_scene() == {"camera": {"azimuth": 30}, "layers": ["a"]}
        assert pr.history.can_redo and len(pr.history.undo_steps) == 5
        pr.history.redo()
        assert [m.value for m in pr.annotations.measurements] == [pytest.approx(5.0)]
        out = pr.export_tracks(tmp_path / "edited.geff")
        assert _edges(out) == expected
        # Undo everything: back to the base graph and empty annotations.
        while pr.history.can_undo:
            pr.history.undo()
        assert g.equals(two_tracks())
        assert pr.annotations.markers == [] and pr.annotations.measurements == []

    with Project.open(folder) as pr:  # the undos were journaled too
        assert pr.tracks is not None and pr.tracks.equals(two_tracks())
        assert len(pr.history.redo_steps) == 6


def test_exported_csvs(tmp_path: Path) -> None:
    pts = [(0.5, 1.0, 2.0), (0.5, 4.0, 6.0), (3.0, 4.0, 6.0)]
    with Project.create(tmp_path / "p", classes={"nucleus": (0.0, 0.0, 1.0)}) as pr:
        for i, p in enumerate(pts):
            pr.history.apply(AddMarker("nucleus" if i else "pore", p, t=None if i else 3.0))
        pr.history.apply(RemoveMarker(2))
        pr.history.apply(AddMeasurement("path", pts))
        pr.history.apply(AddMeasurement("angle", pts))
        mk = pd.read_csv(pr.export_markers(tmp_path / "markers.csv"))
        ms = pd.read_csv(pr.export_measurements(tmp_path / "measurements.csv"))
    assert list(mk.columns) == ["id", "class", "z_um", "y_um", "x_um", "t"]
    assert mk["id"].tolist() == [1, 3]
    assert mk["class"].tolist() == ["pore", "nucleus"]
    np.testing.assert_allclose(mk[["z_um", "y_um", "x_um"]].to_numpy(), [pts[0], pts[2]])
    assert mk["t"].iloc[0] == 3.0 and np.isnan(mk["t"].iloc[1])
    path_len = euclidean(pts[0], pts[1]) + euclidean(pts[1], pts[2])
    a, b = np.subtract(pts[0], pts[1]), np.subtract(pts[2], pts[1])
    angle = np.degrees(np.arccos(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))
    assert ms["kind"].tolist() == ["path", "angle"]
    np.testing.assert_allclose(ms["value"], [path_len, angle], rtol=1e-9)
    assert ms["unit"].tolist() == ["µm", "deg"]
    assert [json.loads(s) for s in ms["points_um"]] == [[list(p) for p in pts]] * 2


def test_image_reference_and_labels_are_recorded(tmp_path: Path) -> None:
    store = tmp_path / "img.zarr"
    store.mkdir()
    with Project.create(tmp_path / "p", image=store, labels=["nucleus", "mito"]) as pr:
        assert pr.info.image == str(store.resolve())
        assert pr.tracks is None
    info = json.loads((tmp_path / "p" / "project.json").read_text())
    assert info["image"] == str(store.resolve()) and info["labels"] == ["nucleus", "mito"]
    with Project.create(tmp_path / "q", image="https://example.org/x.zarr") as pr:
        assert pr.info.image == "https://example.org/x.zarr"


def test_workspace_without_tracks_rejects_track_edits(tmp_path: Path) -> None:
    with Project.create(tmp_path / "p") as pr:
        with pytest.raises(InvalidEditError, match="no tracks"):
            pr.history.apply(Cut(1))
        assert pr.history.undo_steps == []


def test_bad_projects(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="not a vrscope project"):
        Project.open(tmp_path)
    with pytest.raises(FormatError, match="does not exist"):
        Project.open(tmp_path / "nope")
    Project.create(tmp_path / "p", tracks=two_tracks()).close()
    with pytest.raises(FormatError, match="already holds a project"):
        Project.create(tmp_path / "p")
    (tmp_path / "p" / "project.json").write_text('{"schema_version": 3}')
    with pytest.raises(FormatError, match="schema_version 3"):
        Project.open(tmp_path / "p")
    with pytest.raises(FileNotFoundError):
        Project.create(tmp_path / "r", image=tmp_path / "missing.zarr")


def test_journal_refuses_other_base_data(tmp_path: Path) -> None:
    with Project.create(tmp_path / "p", tracks=two_tracks()) as pr:
        pr.history.apply(Cut(3))
    other = two_tracks()
    other.add_node(20, (0.0, 0.0, 0.0), node_id=99)
    write_geff(other, tmp_path / "p" / "tracks.geff", overwrite=True)
    with pytest.raises(FormatError, match="different target"):
        Project.open(tmp_path / "p")


def test_workspace_fingerprint_changes_with_either_part() -> None:
    ws = Workspace(two_tracks())
    fp = ws.fingerprint()
    AddMarker("a", (0, 0, 0)).apply(ws)
    fp2 = ws.fingerprint()
    assert fp2["annotations"] != fp["annotations"] and fp2["tracks"] == fp["tracks"]
    Cut(1).apply(ws)
    assert ws.fingerprint()["tracks"] != fp["tracks"]
