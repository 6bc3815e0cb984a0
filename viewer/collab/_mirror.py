"""Writing a session's accepted ops into the project's own journal (``journal.jsonl``).

The session journal (SQLite, :mod:`viewer.collab._journal`) is the server's source
of truth: op order, op ids (idempotent resends), the undo window, tokens. So that a
project reopens after a session with every acknowledged edit (``Project.open``,
``vrscope view --project``, ``vrscope export``) without the server, the server also
appends each accepted op to the project's ``journal.jsonl`` -- in server order,
fsync'd, before it acknowledges the op -- as the records
:class:`analysis.edits.History` replays:

- a command: ``{"op": "apply", "cmd": ...}``; a group (``collab_group``):
  ``begin``, one ``apply`` per command, ``end`` (one undo step on the desktop);
- an undo of one's own op ``X`` (selective: later ops of others stay):
  ``undo`` for ``X`` and each active op after it (the desktop History's stack top
  is exactly those, in order), then ``apply`` of each later op again. The state
  after replay is the session's; the desktop's undo stack ends with the later ops.

Every record carries ``"collab": {"session": UID, "seq": N, "op": OP_ID, "part": i,
"of": n}`` (``History`` ignores unknown keys). All records of one op go in one
``write`` + ``fsync`` (:meth:`analysis.edits.Journal.append_many`, which numbers and
checksums them); on start :class:`ProjectMirror` drops an incomplete op at the
end of the file (a crash mid-write) and reports the last complete ``seq``, so the
server mirrors exactly the ops after it: no op is applied twice to the project
journal and none is missing, whichever write a crash fell between (the SQLite
append comes first). ``UID`` is random per session journal, so a ``--new-session``
starts counting afresh without confusing the old records.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from analysis.edits import Journal, command_to_json
from analysis.errors import FormatError
from viewer.collab._compound import Compound
from viewer.collab._oplog import Entry, OrderedLog

__all__ = ["ProjectMirror", "records_for"]

log = logging.getLogger(__name__)


def _cmd_records(cmd: Any) -> list[dict[str, Any]]:
    if isinstance(cmd, Compound):
        return [
            {"op": "begin", "name": cmd.name},
            *({"op": "apply", "cmd": command_to_json(c)} for c in cmd.commands),
            {"op": "end"},
        ]
    return [{"op": "apply", "cmd": command_to_json(cmd)}]


def records_for(entry: Entry, log_: OrderedLog) -> list[dict[str, Any]]:
    """History records for ``entry``, just applied to ``log_`` (so an undo target is undone).

    For an undo of ``X``: one ``undo`` per step from the top of the History's stack down
    to ``X`` (``X`` and the active ``cmd`` ops after it), then the later ones again.
    """
    if entry.kind == "cmd":
        return _cmd_records(entry.cmd)
    target = log_.get(entry.target or "")
    if target is None:  # pragma: no cover - the log accepted the undo, so it knows X
        raise FormatError(f"undo {entry.op_id}: target {entry.target} unknown")
    later = [
        e
        for e in log_.entries
        if e.seq > target.seq and e.seq < entry.seq and e.kind == "cmd" and not e.undone
    ]
    out: list[dict[str, Any]] = [{"op": "undo"} for _ in range(len(later) + 1)]
    for e in later:
        out.extend(_cmd_records(e.cmd))
    return out


class ProjectMirror:
    """Appends a session's ops to a project journal; knows which ones are already there.

    Parameters
    ----------
    path : path-like
        The project's ``journal.jsonl``; it must exist and start with History's
        ``open`` record (open the project once first, as ``vrscope serve`` does).
    session_uid : str
        The session journal's random id (tags the records of this session).

    Attributes
    ----------
    last_seq : int
        The newest session seq whose records are complete in the file (0: none).
    """

    def __init__(self, path: str | os.PathLike[str], session_uid: str) -> None:
        self.path = Journal.resolve(path)
        self.uid = session_uid
        self._journal = Journal(self.path)
        if not self.path.is_file() or self.path.stat().st_size == 0:
            raise FormatError(f"project journal {self.path} is missing: open the project first")
        self.last_seq = self._scan()

    def _scan(self) -> int:
        # Journal.read checks every line and cuts off a torn last one, like Project.open would.
        records = self._journal.read()
        if not records or records[0].get("op") != "open":
            raise FormatError(f"project journal {self.path} does not start with an 'open' record")
        last = 0
        # (seq, index of its first record, parts seen, parts expected)
        open_op: tuple[int, int, int, int] | None = None
        for index, rec in enumerate(records):
            tag = rec.get("collab")
            if not isinstance(tag, dict) or tag.get("session") != self.uid:
                if open_op is not None:
                    raise FormatError(
                        f"project journal {self.path}: session op {open_op[0]} is incomplete "
                        "and followed by other records"
                    )
                continue
            seq, part, of = int(tag["seq"]), int(tag["part"]), int(tag["of"])
            if open_op is None:
                if part != 1 or seq <= last:
                    raise FormatError(f"project journal {self.path}: session op {seq} out of order")
                open_op = (seq, index, 1, of)
            else:
                if seq != open_op[0] or part != open_op[2] + 1:
                    raise FormatError(f"project journal {self.path}: session op {seq} is torn")
                open_op = (seq, open_op[1], part, of)
            if open_op[2] == open_op[3]:
                last, open_op = open_op[0], None
        if open_op is not None:
            # A crash between the parts of one op (one write, so only a power cut can do
            # this): the op is not in the project yet; drop its first parts.
            log.warning(
                "project journal %s: dropping the incomplete session op %d at its end",
                self.path,
                open_op[0],
            )
            self._journal.drop_after(open_op[1])
        return last

    def append(self, seq: int, op_id: str, records: list[dict[str, Any]]) -> None:
        """Write the records of session op ``seq``; durable on return (no-op if already there).

        On a write error the file is cut back to where it was and the error re-raised.
        """
        if seq <= self.last_seq:
            return
        n = len(records)
        self._journal.append_many(
            {**rec, "collab": {"session": self.uid, "seq": seq, "op": op_id, "part": i, "of": n}}
            for i, rec in enumerate(records, start=1)
        )
        self.last_seq = seq

    def close(self) -> None:
        self._journal.close()

    @property
    def project_dir(self) -> Path:
        return self.path.parent
