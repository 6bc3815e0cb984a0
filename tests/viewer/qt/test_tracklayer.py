"""The incrementally patched tracks layer against a full rebuild after every random edit.

References: ``TrackGraph``'s own vectorised columns and ``tracklet_ids()`` (pointer
jumping over the whole graph), and a pandas ``groupby`` for the tracklet table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from analysis.edits import Cut, Delete, History, MarkReviewed, Merge, Prolong, Swap
from analysis.errors import InvalidEditError
from analysis.tracks import random_lineages

pytestmark = pytest.mark.qt


def reference_table(g: Any) -> dict[int, dict[str, Any]]:
    df = pd.DataFrame(
        {"id": g.node_ids, "t": g.t, "rev": g.reviewed, "tid": g.tracklet_ids()}
    ).sort_values(["tid", "t"])
    agg = df.groupby("tid").agg(
        start=("t", "first"),
        end=("t", "last"),
        nodes=("id", "size"),
        reviewed=("rev", "all"),
        first=("id", "first"),
    )
    return {
        int(tid): {
            "track": int(tid),
            "start": int(r.start),
            "end": int(r.end),
            "nodes": int(r.nodes),
            "reviewed": bool(r.reviewed),
            "first": int(r.first),
        }
        for tid, r in zip(agg.index, agg.itertuples(), strict=True)
    }


def check(st: Any, g: Any, table: bool = True) -> None:
    d = st.data
    ids = g.node_ids
    alive = ~np.isnan(d.t)
    assert sorted(d.node_ids[alive].tolist()) == sorted(ids.tolist())
    np.testing.assert_array_equal(d.t[ids], g.t)
    np.testing.assert_array_equal(d.zyx_um[ids], g.zyx)
    np.testing.assert_array_equal(d.track_ids[ids], g.tracklet_ids())
    assert sorted(map(tuple, d.edges.tolist())) == sorted(map(tuple, g.edges.tolist()))
    if table:
        assert st.table == reference_table(g)


def test_patched_layer_equals_a_full_rebuild_after_random_edits_undo_redo() -> None:
    from viewer.qt._tracklayer import TrackLayerState

    g = random_lineages(600, track_length=8, seed=2)
    st = TrackLayerState(g)
    h = History(g)
    rng = np.random.default_rng(7)
    applied = 0
    for step in range(200):
        ids = g.node_ids
        n, m = (int(v) for v in rng.choice(ids, 2))
        k = int(rng.integers(0, 9))
        try:
            if k == 0:
                h.apply(Cut(n))
            elif k == 1:
                h.apply(Merge(int(g.tracklet(n)[-1]), int(g.tracklet(m)[0])))
            elif k == 2:
                h.apply(Delete.track(n))
            elif k == 3:
                h.apply(Delete.node(n))
            elif k == 4:
                end = int(g.tracklet(n)[-1])
                h.apply(Prolong(end, [[g.time(end) + 1, *rng.random(3)]]))
            elif k == 5:
                h.apply(Swap(n, m))
            elif k == 6:
                h.apply(MarkReviewed([n], reviewed=True, whole_track=True))
            elif k == 7 and h.can_undo:
                h.undo()
            elif k == 8 and h.can_redo:
                h.redo()
            applied += 1
        except InvalidEditError:
            pass
        st.update()
        check(st, g, table=step % 4 == 0)
    check(st, g)
    assert applied > 60
    assert st.rebuilds == 1  # every edit was patched, never rebuilt


def test_compaction_or_unknown_changes_fall_back_to_a_rebuild() -> None:
    from viewer.qt._tracklayer import TrackLayerState

    g = random_lineages(300, track_length=10, seed=3)
    st = TrackLayerState(g)
    Delete.track(5).apply(g)
    g.compact()  # rows move, version jumps without a recorded mutation
    assert st.update()
    assert st.rebuilds == 2
    check(st, g)
    st.detach()
    assert "add_edge" not in g.__dict__  # the graph's own methods again


def test_session_cut_patches_the_tracks_layer_and_track_list(tmp_path: Any) -> None:
    from analysis.project import Project
    from viewer.qt import ProofreadingSession
    from viewer.scene import Scene, Tracks

    g0 = random_lineages(3000, track_length=20, seed=4)
    with Project.create(tmp_path / "p", tracks=g0) as pr:
        g = pr.tracks
        s = ProofreadingSession(Scene([Tracks.from_track_graph(g, name="tracks")]), pr)
        node = int(g.tracklet(40)[5])
        s.select_node(node)
        s.set_time(g.time(node))
        s.cut()
        st = s.track_state
        assert st is not None and st.rebuilds == 1 and st.updates == 1
        check(st, g)
        lay = s.layer("tracks")
        assert lay.data.track_ids[node] == node  # the cut-off piece is its own tracklet
        ref = reference_table(g)
        assert s.track_rows() == [ref[k] for k in sorted(ref)]
        s.undo()
        check(st, g)
        s.close()
