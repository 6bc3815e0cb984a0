"""Undoable, journaled edits: ``Command``, ``History`` and the track commands.

Every change to data (track cut/merge, markers, label merge/split/paint/fill) is a
:class:`Command` applied through a :class:`History`: undoable, grouped with
``with history.group(name):``, and recorded in an fsync'd JSON-lines
:class:`Journal` before ``apply`` returns. Desktop tools, XR tools and
collaboration all build the same commands; none changes data directly.

Extending: subclass :class:`Command`, give it a unique ``kind`` (which
registers it for journal replay) and a ``version``, validate everything in
``apply`` before changing the target, keep the minimal diff for ``revert``, and
make ``to_json``/``from_json`` round-trip. Add it to the state-machine test.

Example
-------
>>> from analysis.tracks import TrackGraph
>>> from analysis.edits import History, Cut
>>> g = TrackGraph.from_arrays([0, 1], [0, 1], [[0, 0, 0], [0, 0, 1]], [[0, 1]])
>>> h = History(g)
>>> _ = h.apply(Cut(1))
>>> g.n_edges
0
>>> _ = h.undo()
>>> g.n_edges
1
"""

from analysis.edits._command import (
    Command,
    command_from_json,
    command_to_json,
    registered_commands,
)
from analysis.edits._history import History, Step
from analysis.edits._journal import JOURNAL_NAME, JOURNAL_VERSION, Journal, JournalCorruptError
from analysis.edits._labels import (
    ApplyTable,
    CommitLabels,
    DeleteLabels,
    EditableLabels,
    FillLabel,
    InterpolateLabel,
    LabelAtom,
    LabelChange,
    LabelIds,
    LabelPiece,
    LockLabels,
    MergeLabels,
    PaintBall,
    RelabelLabel,
    SplitLabel,
    UnlockLabels,
    ball_mask,
    brush_region,
    constant_value,
    id_state,
    labels_of,
    locked_ids,
    object_sections,
    shown_at,
)
from analysis.edits._lock import JournalLock, ProjectLockedError
from analysis.edits._track import AddDivision, Cut, Delete, MarkReviewed, Merge, Prolong, Swap

__all__ = [
    "JOURNAL_NAME",
    "ApplyTable",
    "CommitLabels",
    "DeleteLabels",
    "EditableLabels",
    "FillLabel",
    "InterpolateLabel",
    "LabelAtom",
    "LabelChange",
    "LabelIds",
    "LabelPiece",
    "LockLabels",
    "MergeLabels",
    "PaintBall",
    "RelabelLabel",
    "SplitLabel",
    "UnlockLabels",
    "ball_mask",
    "brush_region",
    "constant_value",
    "id_state",
    "labels_of",
    "locked_ids",
    "object_sections",
    "shown_at",
    "AddDivision",
    "Command",
    "Cut",
    "Delete",
    "History",
    "JOURNAL_VERSION",
    "Journal",
    "JournalCorruptError",
    "JournalLock",
    "ProjectLockedError",
    "MarkReviewed",
    "Merge",
    "Prolong",
    "Step",
    "Swap",
    "command_from_json",
    "command_to_json",
    "registered_commands",
]
