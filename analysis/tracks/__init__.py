"""Cell tracks: the ``TrackGraph`` data model, statistics, automatic linking.

- :class:`TrackGraph`: columnar nodes (int64 ids never reused, ``t``, ``z``,
  ``y``, ``x`` in µm, ``label``, features) and parent -> child edges (with
  optional edge feature columns, e.g. GEFF edge properties); derived
  tracklets and lineages; queries by time and space; ``validate()``.
- Edits are :mod:`analysis.edits` commands (``Cut``, ``Merge``, ``Prolong``,
  ``Delete``, ``Swap``, ``AddDivision``, ``MarkReviewed``) applied through its
  ``History``; they import this package, never the other way round.
- ``TrackGraph.events`` (:class:`TrackGraphEvents`) say what each raw mutation
  changed (views patch themselves instead of rebuilding).
- :func:`track_stats`, :func:`msd`: per-track displacement, speed,
  straightness and mean squared displacement (pandas tables).
- :func:`link_labels`: link the objects of a (t, z, y, x) label series into a
  ``TrackGraph`` (LAP with gap closing and divisions, via ``laptrack``).

I/O lives in :mod:`analysis.io` (``read_geff``/``write_geff``, CTC, CSV); this
package never imports it.

Extending: new edit operations are commands in :mod:`analysis.edits`; new
measurements are functions taking a ``TrackGraph`` and returning a DataFrame.
"""

from analysis.tracks._graph import NodeRecord, TrackGraph, TrackGraphEvents
from analysis.tracks._linking import detect_objects, link_detections, link_labels
from analysis.tracks._stats import msd, track_stats
from analysis.tracks._testing import random_lineages

__all__ = [
    "NodeRecord",
    "TrackGraph",
    "TrackGraphEvents",
    "detect_objects",
    "link_detections",
    "link_labels",
    "msd",
    "random_lineages",
    "track_stats",
]
