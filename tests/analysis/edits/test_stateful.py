"""Random edit sequences (hypothesis state machine, like zarr-python's testing/stateful.py).

Invariants after every step, checked independently of ``TrackGraph.validate``
with networkx: a forest, in-degree <= 1, out-degree <= 2, time increasing along
edges. Undo-all restores the start exactly; redo-all restores the end exactly;
a rejected edit changes nothing.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from analysis.edits import (
    AddDivision,
    Command,
    Cut,
    Delete,
    History,
    MarkReviewed,
    Merge,
    Prolong,
    Swap,
)
from analysis.errors import InvalidEditError
from analysis.tracks import TrackGraph, random_lineages


def _eq(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


class TrackEdits(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.g = random_lineages(90, track_length=5, division_fraction=0.6, seed=11)
        self.start = self.g.snapshot()
        self.h = History(self.g, max_steps=10_000)

    def _node(self, data: st.DataObject) -> int:
        ids = self.g.node_ids
        return int(data.draw(st.sampled_from(sorted(ids.tolist()))))

    def _try(self, cmd: Command) -> None:
        before = self.g.snapshot()
        try:
            self.h.apply(cmd)
        except InvalidEditError:
            assert _eq(before, self.g.snapshot()), f"{cmd} failed but changed the graph"

    @rule(data=st.data())
    def cut(self, data: st.DataObject) -> None:
        self._try(Cut(self._node(data)))

    @rule(data=st.data())
    def merge(self, data: st.DataObject) -> None:
        self._try(Merge(self._node(data), self._node(data)))

    @rule(data=st.data())
    def add_division(self, data: st.DataObject) -> None:
        self._try(AddDivision(self._node(data), self._node(data)))

    @rule(data=st.data(), k=st.integers(1, 3), forward=st.booleans())
    def prolong(self, data: st.DataObject, k: int, forward: bool) -> None:
        n = self._node(data)
        t0 = self.g.time(n)
        sign = 1 if forward else -1
        pts = [[t0 + sign * (i + 1), float(i), 1.0, 2.0] for i in range(k)]
        self._try(Prolong(n, pts))

    @rule(data=st.data(), what=st.sampled_from(["node", "edge", "track"]))
    def delete(self, data: st.DataObject, what: str) -> None:
        if len(self.g) < 5:
            return
        n = self._node(data)
        if what == "node":
            self._try(Delete.node(n))
        elif what == "track":
            self._try(Delete.track(n))
        else:
            p = self.g.parent(n)
            self._try(Delete.edge(p if p is not None else n, n))

    @rule(data=st.data())
    def swap(self, data: st.DataObject) -> None:
        self._try(Swap(self._node(data), self._node(data)))

    @rule(data=st.data(), value=st.booleans(), whole=st.booleans())
    def mark(self, data: st.DataObject, value: bool, whole: bool) -> None:
        self._try(MarkReviewed([self._node(data)], reviewed=value, whole_track=whole))

    @rule(data=st.data())
    def grouped(self, data: st.DataObject) -> None:
        with self.h.group("pair"):
            self._try(Cut(self._node(data)))
            self._try(MarkReviewed([self._node(data)]))

    @rule()
    def undo(self) -> None:
        if self.h.can_undo:
            self.h.undo()

    @rule()
    def redo(self) -> None:
        if self.h.can_redo:
            self.h.redo()

    @rule()
    def undo_all_then_redo_all(self) -> None:
        end = self.g.snapshot()
        n_redo_before = len(self.h.redo_steps)
        while self.h.can_undo:
            self.h.undo()
        assert _eq(self.g.snapshot(), self.start), "undo-all did not restore the start"
        for _ in range(len(self.h.redo_steps) - n_redo_before):
            self.h.redo()
        assert _eq(self.g.snapshot(), end), "redo-all did not restore the end state"

    @invariant()
    def graph_is_valid(self) -> None:
        self.g.validate()
        G = nx.DiGraph()
        G.add_nodes_from(int(i) for i in self.g.node_ids)
        G.add_edges_from((int(a), int(b)) for a, b in self.g.edges)
        assert G.number_of_edges() == self.g.n_edges
        assert all(d <= 1 for _, d in G.in_degree())
        assert all(d <= 2 for _, d in G.out_degree())
        assert nx.is_forest(G.to_undirected()) if len(G) else True
        times = dict(zip(self.g.node_ids.tolist(), self.g.t.tolist(), strict=True))
        assert all(times[a] < times[b] for a, b in G.edges)


TrackEdits.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_track_edits = TrackEdits.TestCase


def test_state_machine_graph_type() -> None:
    # Guard: the machine really runs on a TrackGraph with edges to edit.
    m = TrackEdits()
    assert isinstance(m.g, TrackGraph) and m.g.n_edges > 0
