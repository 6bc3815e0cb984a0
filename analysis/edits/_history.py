"""``History``: undo/redo over commands, groups, and the journal that makes it durable."""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from psygnal import Signal

from analysis.edits._command import Command, command_from_json, command_to_json
from analysis.edits._journal import Journal
from analysis.errors import FormatError, InvalidEditError, ParameterError

if TYPE_CHECKING:
    from analysis.edits._lock import JournalLock

__all__ = ["History", "Step"]

log = logging.getLogger(__name__)


class Step:
    """One undo step: a single command or a named group of commands."""

    __slots__ = ("commands", "name")

    def __init__(self, name: str, commands: list[Command]) -> None:
        self.name = name
        self.commands = commands

    def __repr__(self) -> str:
        return f"Step({self.name!r}, {len(self.commands)} commands)"


class History:
    """Apply commands to a target with bounded undo/redo, groups and a journal.

    Parameters
    ----------
    target : object
        What the commands edit (e.g. a :class:`analysis.tracks.TrackGraph`). If it
        has a ``fingerprint()`` method, the journal records it and refuses to
        replay onto a different target.
    max_steps : int, default: 1000
        Undo depth; the oldest step is forgotten (it stays applied) beyond it.
    journal : Journal, optional
        Where every applied command, undo and redo is recorded (fsync'd) before
        the call returns. Prefer :meth:`open`, which also replays it.

    Events
    ------
    changed : Signal(str, object)
        Emitted once per ``apply`` / ``undo`` / ``redo`` after the target is
        consistent, with the action name and the command or :class:`Step`.
    """

    changed = Signal(str, object)

    def __init__(self, target: Any, max_steps: int = 1000, journal: Journal | None = None) -> None:
        if max_steps < 1:
            raise ParameterError(f"max_steps must be at least 1, got {max_steps}")
        self.target = target
        self.max_steps = max_steps
        self._undo: deque[Step] = deque(maxlen=max_steps)
        self._redo: list[Step] = []
        self._group: Step | None = None
        self._depth = 0
        self.journal = journal

    # ------------------------------------------------------------------ journal
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        target: Any,
        max_steps: int = 1000,
        fsync: bool = True,
        *,
        read_only: bool = False,
        repair: bool = False,
        lock: JournalLock | None = None,
        what: str | None = None,
    ) -> History:
        """Open (or start) the journal at ``path`` for ``target`` and replay it.

        ``path`` is a project folder (the journal is ``journal.jsonl`` inside) or a
        ``.jsonl`` file. ``target`` must be the state the journal started from
        (e.g. the graph freshly loaded from its GEFF); afterwards it holds every
        confirmed edit, and undo/redo continue where the last session stopped.

        Parameters
        ----------
        read_only : bool, default: False
            Replay without taking the writer's lock or changing the file (a torn tail
            is skipped, not cut off); edits are then refused.
        repair : bool, default: False
            On a damaged line, or a record that cannot be replayed, open at the last
            good record: the journal is cut back there after a copy of it is saved as
            ``journal.jsonl.damaged-<time>`` (see :meth:`Journal.rollback`).
        lock : JournalLock, optional
            The writer's lock, already held by the caller (who releases it); by default
            it is taken here and released by :meth:`close`.
        what : str, optional
            Who holds the lock, for the message another opener gets (e.g. ``vrscope view``).

        Raises
        ------
        ProjectLockedError
            Another process (or another open History) has the journal open for writing.
        JournalCorruptError
            A line is damaged (not just a torn last line) and not ``repair``.
        FormatError
            The journal was recorded for a different target, or (without ``repair``)
            holds an edit that cannot be replayed.
        """
        from analysis.edits._lock import JournalLock

        journal = Journal(Journal.resolve(path), fsync=fsync)
        journal.read_only = read_only
        if not read_only:
            if lock is None:
                journal.lock, journal.owns_lock = JournalLock.acquire(journal.path, what), True
            else:
                journal.lock = lock
        try:
            return cls._open_journal(journal, target, max_steps, repair)
        except BaseException:
            journal.close()
            raise

    @classmethod
    def _open_journal(cls, journal: Journal, target: Any, max_steps: int, repair: bool) -> History:
        scan = journal.scan()
        if scan.error is not None and not (repair and scan.records):
            raise scan.error
        records = scan.records
        if scan.error is None:
            journal._drop_torn_tail(scan, repair=True)
        journal._end, journal._next_seq = scan.end, len(records) + 1
        hist = cls(target, max_steps=max_steps, journal=None)
        fp = _fingerprint(target)
        if not records:
            if not journal.read_only:
                journal.append({"op": "open", "target": fp})
        else:
            head = records[0]
            if head.get("op") != "open":
                raise FormatError(f"journal {journal.path} does not start with an 'open' record")
            if fp is not None and head.get("target") is not None and head["target"] != fp:
                raise FormatError(
                    f"journal {journal.path} was recorded on a different target "
                    f"({head['target']} != {fp})"
                )
            keep = len(records)
            for i, rec in enumerate(records[1:], start=2):
                try:
                    hist._replay(rec)
                except (InvalidEditError, FormatError) as exc:
                    if not repair:
                        raise FormatError(
                            f"journal {journal.path} line {i} cannot be replayed: {exc}"
                        ) from exc
                    log.warning("journal %s line %d cannot be replayed: %s", journal.path, i, exc)
                    keep = i - 1
                    break
            if keep < len(records) or scan.error is not None:
                if journal.read_only:
                    raise FormatError(f"journal {journal.path}: cannot repair a read-only journal")
                journal.rollback(keep, scan)
            if hist._group is not None:
                # The session died inside a group: its confirmed commands stay applied
                # and become one undo step, as if the group had been closed.
                log.warning(
                    "journal %s ends inside group %r; closing it", journal.path, hist._group.name
                )
                hist._depth = 1
                hist._end_group(record=False)
                if not journal.read_only:
                    journal.append({"op": "end"})
        hist.journal = journal
        return hist

    @property
    def read_only(self) -> bool:
        """True when the journal was opened read-only: every edit is refused."""
        return self.journal is not None and self.journal.read_only

    def _check_writable(self) -> None:
        if self.read_only:
            assert self.journal is not None
            raise InvalidEditError(
                f"{self.journal.path.parent} is open read-only: edits are not possible"
            )

    def _replay(self, rec: dict[str, Any]) -> None:
        op = rec.get("op")
        if op == "apply":
            self._do_apply(command_from_json(rec["cmd"]))
        elif op == "undo":
            self._do_undo()
        elif op == "redo":
            self._do_redo()
        elif op == "begin":
            self._begin_group(str(rec.get("name", "group")))
        elif op == "end":
            self._end_group(record=False)
        elif op == "open":
            pass
        else:
            raise FormatError(f"unknown journal op {op!r}")

    def _record(self, rec: dict[str, Any]) -> None:
        if self.journal is not None:
            self.journal.append(rec)

    def close(self) -> None:
        """Close the journal file (everything is already on disk)."""
        if self.journal is not None:
            self.journal.close()

    # ------------------------------------------------------------------ apply
    def apply(self, cmd: Command) -> Command:
        """Apply ``cmd``, journal it durably, and make it the newest undo step.

        Raises :class:`InvalidEditError` (target unchanged, nothing journaled) when
        the command is not allowed. A new command clears the redo stack.
        """
        self._check_writable()
        self._do_apply(cmd)
        try:
            self._record({"op": "apply", "cmd": command_to_json(cmd)})
        except BaseException:
            # Not durable -> not confirmed: roll the target back.
            self._pop_last_applied(cmd)
            raise
        self.changed.emit("apply", cmd)
        return cmd

    def _do_apply(self, cmd: Command) -> None:
        cmd.apply(self.target)
        if self._group is not None:
            self._group.commands.append(cmd)
        else:
            self._undo.append(Step(cmd.description, [cmd]))
            self._redo.clear()

    def _pop_last_applied(self, cmd: Command) -> None:
        cmd.revert(self.target)
        if self._group is not None:
            self._group.commands.pop()
        else:
            self._undo.pop()

    # ------------------------------------------------------------------ undo / redo
    @property
    def can_undo(self) -> bool:
        return bool(self._undo) and self._group is None

    @property
    def can_redo(self) -> bool:
        return bool(self._redo) and self._group is None

    @property
    def undo_steps(self) -> list[Step]:
        """Undoable steps, oldest first."""
        return list(self._undo)

    @property
    def redo_steps(self) -> list[Step]:
        """Redoable steps, next first."""
        return self._redo[::-1]

    def undo(self) -> Step:
        """Revert the newest step (journaled). Raises InvalidEditError if there is none."""
        self._check_writable()
        step = self._do_undo()
        try:
            self._record({"op": "undo"})
        except BaseException:
            self._do_redo()
            raise
        self.changed.emit("undo", step)
        return step

    def redo(self) -> Step:
        """Re-apply the last undone step (journaled). Raises InvalidEditError if none."""
        self._check_writable()
        step = self._do_redo()
        try:
            self._record({"op": "redo"})
        except BaseException:
            self._do_undo()
            raise
        self.changed.emit("redo", step)
        return step

    def _do_undo(self) -> Step:
        if self._group is not None:
            raise InvalidEditError("cannot undo inside an open group")
        if not self._undo:
            raise InvalidEditError("nothing to undo")
        step = self._undo.pop()
        for cmd in reversed(step.commands):
            cmd.revert(self.target)
        self._redo.append(step)
        return step

    def _do_redo(self) -> Step:
        if self._group is not None:
            raise InvalidEditError("cannot redo inside an open group")
        if not self._redo:
            raise InvalidEditError("nothing to redo")
        step = self._redo[-1]
        done: list[Command] = []
        try:
            for cmd in step.commands:
                cmd.apply(self.target)
                done.append(cmd)
        except InvalidEditError:
            # Cannot happen when only this History edits the target; stay consistent anyway.
            for cmd in reversed(done):
                cmd.revert(self.target)
            raise
        self._redo.pop()
        self._undo.append(step)
        return step

    # ------------------------------------------------------------------ groups
    @contextmanager
    def group(self, name: str = "group") -> Iterator[History]:
        """Fold every command applied inside the block into one undo step.

        Groups nest (only the outermost makes a step). Commands inside are applied
        and journaled one by one, so a crash mid-group loses nothing confirmed.
        """
        self._check_writable()
        self._begin_group(name)
        if self._depth == 1:
            try:
                self._record({"op": "begin", "name": name})
            except BaseException:
                self._depth, self._group = 0, None
                raise
        try:
            yield self
        finally:
            if self._depth == 1:
                self._end_group(record=True)
            else:
                self._depth -= 1

    def _begin_group(self, name: str) -> None:
        self._depth += 1
        if self._depth == 1:
            self._group = Step(name, [])

    def _end_group(self, record: bool) -> None:
        self._depth -= 1
        step, self._group = self._group, None
        if record:
            self._record({"op": "end"})
        if step is not None and step.commands:
            self._undo.append(step)
            self._redo.clear()
            if record:
                self.changed.emit("apply", step)


def _fingerprint(target: Any) -> Any:
    fp = getattr(target, "fingerprint", None)
    return fp() if callable(fp) else None
