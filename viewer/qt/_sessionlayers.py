"""``SessionLayers``: the workspace (tracks, markers, measurements) mirrored into scene layers.

Part of the desktop session: the model emits events (``Annotations.events``,
``TrackGraph.events`` through :class:`TrackLayerState`), handlers only mark dirty,
and :meth:`SessionLayers.refresh` (after every history change) copies or patches
what changed. It also keeps the scene's extent between changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from viewer.scene import Measurement, Measurements, Points, Scene, Tracks

from ._tracklayer import TrackLayerState

__all__ = [
    "MARKERS_LAYER",
    "MEASUREMENTS_LAYER",
    "TRACKS_LAYER",
    "SessionLayers",
    "track_table",
]

MARKERS_LAYER = "markers"
MEASUREMENTS_LAYER = "measurements"
TRACKS_LAYER = "tracks"

Extent = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]


def track_table(g: Any) -> list[dict[str, Any]]:
    """One row per tracklet: ``track``, ``start``, ``end`` (t), ``nodes``, ``reviewed``, ``first``."""
    if g is None or not g.n_nodes:
        return []
    ids, t, rev, tid = g.node_ids, g.t, g.reviewed, g.tracklet_ids()
    order = np.lexsort((t, tid))
    rows = []
    bounds = np.flatnonzero(np.diff(tid[order])) + 1
    for chunk in np.split(order, bounds):
        rows.append(
            {
                "track": int(tid[chunk[0]]),
                "start": int(t[chunk[0]]),
                "end": int(t[chunk[-1]]),
                "nodes": len(chunk),
                "reviewed": bool(rev[chunk].all()),
                "first": int(ids[chunk[0]]),
            }
        )
    return rows


class SessionLayers:
    """The ``tracks``, ``markers`` and ``measurements`` layers of a session's scene.

    Parameters
    ----------
    scene : Scene
    workspace : callable() -> Workspace
        The workspace now edited (it changes when an in-memory session is saved).
    lock : callable() -> context manager
        Taken while marker and measurement data are replaced (the render lock).

    Attributes
    ----------
    track_state : TrackLayerState or None
        The tracks layer's columns and tracklet table, patched per edit.
    """

    def __init__(self, scene: Scene, workspace: Callable[[], Any], lock: Callable[[], Any]) -> None:
        self.scene = scene
        self._workspace = workspace
        self._lock = lock
        self.track_state: TrackLayerState | None = None
        self._ann_dirty = True
        self._watched_ann: Any = None
        self._extent: Extent | None = None
        scene.layers.events.inserted.connect(self._on_layers_changed)
        scene.layers.events.removed.connect(self._on_layers_changed)
        for lay in scene.layers:
            self._watch_extent(lay)

    @property
    def tracks(self) -> Any:
        return self._workspace().tracks

    @property
    def annotations(self) -> Any:
        return self._workspace().annotations

    # ------------------------------------------------------------------ extent
    def extent_world(self) -> Extent:
        """``scene.extent_world()``, kept between changes.

        Cursor moves and clicks ask for it; over a million track nodes the scene's own
        min/max costs ~10 ms a call. It is recomputed when layers come, go or change
        data, except the session's tracks layer, whose edits only widen it.
        """
        if self._extent is None:
            lo, hi = self.scene.extent_world()
            self._extent = (np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64))
        return self._extent

    def _watch_extent(self, layer: Any) -> None:
        layer.events.visible.connect(self._on_layers_changed)
        if layer.name != TRACKS_LAYER:
            layer.data_changed.connect(self._on_layers_changed)

    def _on_layers_changed(self, *args: object) -> None:
        self._extent = None
        if len(args) == 2 and hasattr(args[1], "data_changed"):  # inserted(index, layer)
            self._watch_extent(args[1])

    # ------------------------------------------------------------------ layers
    def ensure(self) -> None:
        """Add the layers the session fills, where missing."""
        names = self.scene.layers.names
        if MARKERS_LAYER not in names:
            lo, hi = self.extent_world()
            size = float(np.linalg.norm(hi - lo)) / 120 or 1.0
            self.scene.add(Points(name=MARKERS_LAYER, size_um=size))  # type: ignore[call-arg]
        if MEASUREMENTS_LAYER not in names:
            self.scene.add(Measurements(name=MEASUREMENTS_LAYER))  # type: ignore[call-arg]
        if self.tracks is not None and TRACKS_LAYER not in names:
            self.scene.add(Tracks.from_track_graph(self.tracks, name=TRACKS_LAYER))

    def refresh(self) -> None:
        """Copy tracks, markers and measurements from the workspace into the scene layers.

        Markers and measurements are copied (under the scene lock) only when the
        annotations changed; the tracks layer is patched for what the edit touched
        (:class:`TrackLayerState`) and swapped in without the lock, so a track edit
        never waits for a frame the render thread is syncing.
        """
        self._watch_annotations()
        if self._ann_dirty:
            with self._lock():
                self._refresh_annotations()
        self._refresh_tracks()

    def _watch_annotations(self) -> None:
        ann = self.annotations
        if ann is self._watched_ann:
            return
        if self._watched_ann is not None:
            ev = self._watched_ann.events
            for sig in (ev.classes, ev.markers, ev.measurements):
                sig.disconnect(self._on_annotations)
        for sig in (ann.events.classes, ann.events.markers, ann.events.measurements):
            sig.connect(self._on_annotations)
        self._watched_ann = ann
        self._ann_dirty = True

    def _on_annotations(self, *_: object) -> None:
        self._ann_dirty = True

    def _refresh_annotations(self) -> None:
        self._ann_dirty = False
        ann = self.annotations
        pts: Any = self.scene.layers.get(MARKERS_LAYER)
        markers = ann.markers
        pts.update(
            {
                "positions_um": [m.position_um for m in markers],
                "classes": [m.class_name for m in markers],
                "class_colors": {c.name: c.color for c in ann.classes},
            }
        )
        meas: Any = self.scene.layers.get(MEASUREMENTS_LAYER)
        meas.items = [
            Measurement(kind=m.kind, points_um=list(m.points_um), label=f"#{m.id}")
            for m in ann.measurements
        ]

    def _refresh_tracks(self) -> None:
        g = self.tracks
        if g is None or TRACKS_LAYER not in self.scene.layers.names:
            return
        st = self.track_state
        lay: Any = self.scene.layers.get(TRACKS_LAYER)
        if st is None or st.graph is not g:
            if st is not None:
                st.detach()
            st = self.track_state = TrackLayerState(g)
            lay.data = st.data
        elif st.update():
            lay.data = st.data
        if self._extent is not None and st.lo is not None and st.hi is not None:
            lo, hi = self._extent
            self._extent = (np.minimum(lo, st.lo), np.maximum(hi, st.hi))

    def track_rows(self) -> list[dict[str, Any]]:
        """The tracklet table (as :func:`track_table`), kept up to date per edit."""
        st = self.track_state
        if st is None or st.graph is not self.tracks:
            return track_table(self.tracks)
        return st.rows()

    def close(self) -> None:
        if self.track_state is not None:
            self.track_state.detach()
