"""The shared op log: server order, selective undo of one's own ops, optimistic replicas.

Convergence scheme (the same code runs in the server and in every client):

- The server applies ops one at a time to its authoritative state and gives each
  accepted op the next sequence number; an op invalid in that order is rejected.
- :class:`OrderedLog` holds a state plus the ops applied to it in sequence order.
  Its invariant: *state = base + every active (not undone) ``cmd`` op, applied in
  sequence order*. An ``undo`` op of an earlier op ``X`` reverts the active ops
  after ``X`` (newest first), reverts ``X`` and re-applies the later ones in order,
  which keeps the invariant. If a later op depends on ``X`` (re-applying fails) the
  undo is refused and nothing changes. Both steps are deterministic, so every
  replica that applies the same sequence ends in the same state.
- :class:`Replica` (client side) is an :class:`OrderedLog` of confirmed ops plus a
  list of *pending* local ops applied optimistically on top. When a foreign op
  arrives it rolls the pending ops back, applies the server's op, and re-applies
  the pending ones, dropping those that became invalid (:class:`InvalidEditError`;
  the server will reject them too). Its own op arriving at the head of the
  pending list is just moved into the confirmed log. So once nothing is pending,
  every replica equals the server.

Undo is not optimistic: it is a request the server orders like any op, and the
state changes when the ``applied`` undo comes back (one round trip; a few ms on a
LAN). Making it optimistic would need rewinding confirmed ops locally, which the
server may still refuse (a later op of someone else depends on it).
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from analysis.edits import Command, command_from_json, command_to_json
from analysis.errors import FormatError, InvalidEditError
from viewer.collab._labels import check_label_undo, server_computed, without_atoms
from viewer.collab._protocol import Applied, CommandBody, OpMsg, UndoMsg

__all__ = ["Entry", "OrderedLog", "Pending", "Replica"]

log = logging.getLogger(__name__)


@dataclass
class Entry:
    """One op in server order. ``cmd`` is set for ``kind == "cmd"``, ``target`` for undo."""

    seq: int
    op_id: str
    client_id: str
    author: str
    kind: str
    cmd: Command | None = None
    target: str | None = None
    undone: bool = False

    def to_message(self) -> Applied:
        return Applied(
            seq=self.seq,
            op_id=self.op_id,
            client_id=self.client_id,
            author=self.author,
            kind="cmd" if self.kind == "cmd" else "undo",
            cmd=CommandBody(**command_to_json(self.cmd)) if self.cmd is not None else None,
            target=self.target,
        )


def command_of(body: CommandBody) -> Command:
    """Rebuild the command of an op (registry lookup only; unknown kinds raise FormatError)."""
    return command_from_json(body.model_dump())


class OrderedLog:
    """A state and the window of ops applied to it in sequence order.

    Parameters
    ----------
    target : object
        The edit target (a ``TrackGraph`` or a ``Workspace``), at ``base_seq``.
    base_seq : int, default: 0
        Sequence number the state corresponds to before any entry here.
    """

    def __init__(self, target: Any, base_seq: int = 0) -> None:
        self.target = target
        self.base_seq = base_seq
        self.entries: list[Entry] = []
        self._by_id: dict[str, Entry] = {}

    @property
    def last_seq(self) -> int:
        return self.entries[-1].seq if self.entries else self.base_seq

    def get(self, op_id: str) -> Entry | None:
        return self._by_id.get(op_id)

    def check_undo(self, target_id: str, client_id: str) -> Entry:
        """The entry an undo by ``client_id`` of ``target_id`` would revert, or raise."""
        t = self._by_id.get(target_id)
        if t is None:
            raise InvalidEditError(f"op {target_id} is unknown or too old to undo")
        if t.kind != "cmd":
            raise InvalidEditError(f"op {target_id} is an undo; redo by submitting it again")
        if t.client_id != client_id:
            raise InvalidEditError(f"op {target_id} is someone else's; undo applies to own ops")
        if t.undone:
            raise InvalidEditError(f"op {target_id} is already undone")
        check_label_undo(self.entries[self.entries.index(t) + 1 :], t)
        return t

    def apply(self, entry: Entry, *, already_applied: bool = False) -> None:
        """Apply ``entry`` (the next in sequence) to the state and append it.

        Raises :class:`InvalidEditError` with the state unchanged if it is not valid now.
        ``already_applied`` appends a ``cmd`` whose effect is already in the state.
        """
        if entry.seq <= self.last_seq:
            raise InvalidEditError(f"op seq {entry.seq} is not after {self.last_seq}")
        if entry.kind == "cmd":
            assert entry.cmd is not None
            if not already_applied:
                entry.cmd.apply(self.target)
        elif entry.kind == "undo":
            assert entry.target is not None
            self._undo(self.check_undo(entry.target, entry.client_id))
        else:
            raise InvalidEditError(f"unknown op kind {entry.kind!r}")
        self.entries.append(entry)
        self._by_id[entry.op_id] = entry

    def _undo(self, t: Entry) -> None:
        later = [
            e
            for e in itertools.islice(self.entries, self.entries.index(t) + 1, None)
            if e.kind == "cmd" and not e.undone
        ]
        for e in reversed(later):
            assert e.cmd is not None
            e.cmd.revert(self.target)
        assert t.cmd is not None
        t.cmd.revert(self.target)
        done: list[Entry] = []
        try:
            for e in later:
                assert e.cmd is not None
                e.cmd.apply(self.target)
                done.append(e)
        except InvalidEditError as exc:
            # Restore exactly the state before the undo: later ops in order on top of t.
            for e in reversed(done):
                assert e.cmd is not None
                e.cmd.revert(self.target)
            t.cmd.apply(self.target)
            for e in later:
                assert e.cmd is not None
                e.cmd.apply(self.target)
            raise InvalidEditError(
                f"cannot undo {t.op_id}: the later op {e.op_id} depends on it ({exc})"
            ) from exc
        t.undone = True

    def trim(self, keep: int) -> None:
        """Forget all but the newest ``keep`` entries (they can no longer be undone)."""
        if len(self.entries) > keep:
            drop = self.entries[: len(self.entries) - keep]
            self.entries = self.entries[len(drop) :]
            for e in drop:
                self._by_id.pop(e.op_id, None)
            self.base_seq = drop[-1].seq


def entry_from_message(msg: Applied) -> Entry:
    """An :class:`Entry` for a server ``applied`` message (rebuilding its command)."""
    cmd = command_of(msg.cmd) if msg.cmd is not None else None
    if msg.kind == "cmd" and cmd is None:
        raise FormatError(f"op {msg.op_id} has no command")
    if msg.kind == "undo" and msg.target is None:
        raise FormatError(f"undo op {msg.op_id} has no target")
    return Entry(msg.seq, msg.op_id, msg.client_id, msg.author, msg.kind, cmd, msg.target)


@dataclass
class Pending:
    """A local op not yet in server order. ``cmd`` ops are applied optimistically, except
    label edits (``server_side``: computed by the server, shown when it has applied them)."""

    op_id: str
    kind: str
    cmd: Command | None = None
    body: CommandBody | None = None
    target: str | None = None
    sent_epoch: int = -1
    applied: bool = field(default=False)
    server_side: bool = False

    def message(self) -> OpMsg | UndoMsg:
        if self.kind == "cmd":
            assert self.body is not None
            return OpMsg(op_id=self.op_id, cmd=self.body)
        assert self.target is not None
        return UndoMsg(op_id=self.op_id, target=self.target)


class Replica:
    """A client's copy: confirmed ops in server order plus optimistic pending ops.

    Parameters
    ----------
    target : object
        The state at ``base_seq``.
    client_id : str
        This client's stable id (its ops carry it).
    base_seq : int, default: 0
    on_dropped : callable(op_id, reason), optional
        Told when a pending op became invalid after a foreign op and was dropped.
    """

    def __init__(
        self,
        target: Any,
        client_id: str,
        base_seq: int = 0,
        on_dropped: Callable[[str, str], None] | None = None,
    ) -> None:
        self.client_id = client_id
        self.log = OrderedLog(target, base_seq)
        self.pending: list[Pending] = []
        self.on_dropped = on_dropped
        self.redo_stack: list[CommandBody] = []
        self._count = itertools.count(1)
        self._epoch_tag = uuid.uuid4().hex[:8]
        self.window = 1000

    @property
    def target(self) -> Any:
        return self.log.target

    @property
    def last_seq(self) -> int:
        return self.log.last_seq

    def new_op_id(self) -> str:
        # Unique across reconnects and restarts of this client object.
        return f"{self.client_id}.{self._epoch_tag}.{next(self._count)}"

    # ------------------------------------------------------------------ local edits
    def submit(self, cmd: Command, *, clear_redo: bool = True, applied: bool = False) -> Pending:
        """Apply ``cmd`` optimistically and queue it (raises InvalidEditError, unchanged).

        ``applied``: ``cmd`` is already applied to :attr:`target` (a group folded after
        the fact); it is only queued. A label edit (:func:`server_computed`) is only
        queued, never applied here: the server computes it (``viewer.collab._labels``).
        """
        remote = server_computed(cmd)
        if remote and applied:
            raise InvalidEditError("a label edit is computed by the session server, not here")
        if not applied and not remote:
            cmd.apply(self.target)
        body = CommandBody(**command_to_json(cmd))
        p = Pending(self.new_op_id(), "cmd", cmd, body, applied=not remote, server_side=remote)
        self.pending.append(p)
        if clear_redo:
            self.redo_stack.clear()
        return p

    def request_undo(self) -> Pending:
        """Queue an undo of this client's newest op that is neither undone nor being undone."""
        targeted = {p.target for p in self.pending if p.kind == "undo"}
        for p in reversed(self.pending):
            if p.kind == "cmd" and p.op_id not in targeted:
                return self._queue_undo(p.op_id)
        for e in reversed(self.log.entries):
            if (
                e.kind == "cmd"
                and e.client_id == self.client_id
                and not e.undone
                and e.op_id not in targeted
            ):
                return self._queue_undo(e.op_id)
        raise InvalidEditError("nothing of yours to undo")

    def _queue_undo(self, target: str) -> Pending:
        p = Pending(self.new_op_id(), "undo", target=target)
        self.pending.append(p)
        return p

    def request_redo(self) -> Pending:
        """Submit the command of this client's last undone op again (a new op)."""
        if not self.redo_stack:
            raise InvalidEditError("nothing to redo")
        # A label edit is sent without its atom: the server computes it on the voxels of now.
        body = CommandBody(**without_atoms(self.redo_stack[-1].model_dump()))
        p = self.submit(command_of(body), clear_redo=False)
        self.redo_stack.pop()
        return p

    # ------------------------------------------------------------------ server messages
    def _rewind(self) -> None:
        for p in reversed(self.pending):
            if p.applied:
                assert p.cmd is not None
                p.cmd.revert(self.target)
                p.applied = False

    def _replay(self) -> None:
        keep: list[Pending] = []
        for p in self.pending:
            if p.kind == "cmd" and not p.server_side:
                assert p.cmd is not None
                try:
                    p.cmd.apply(self.target)
                except InvalidEditError as exc:
                    log.info("pending op %s dropped: %s", p.op_id, exc)
                    if self.on_dropped is not None:
                        self.on_dropped(p.op_id, str(exc))
                    continue
                p.applied = True
            keep.append(p)
        self.pending = keep

    def on_applied(self, msg: Applied) -> Entry:
        """Take the server's next op. Raises FormatError/InvalidEditError if out of sync."""
        if msg.seq <= self.last_seq:
            raise InvalidEditError(f"op seq {msg.seq} already applied (at {self.last_seq})")
        head = self.pending[0] if self.pending else None
        if head is not None and head.op_id == msg.op_id and head.kind == "cmd" and head.applied:
            # Our own op, first in line: its effect is already in place on the confirmed state.
            assert head.cmd is not None
            entry = Entry(msg.seq, msg.op_id, msg.client_id, msg.author, "cmd", head.cmd)
            self.log.apply(entry, already_applied=True)
            self.pending.pop(0)
        else:
            entry = entry_from_message(msg)
            self._rewind()
            self.pending = [p for p in self.pending if p.op_id != msg.op_id]
            try:
                self.log.apply(entry)
            finally:
                self._replay()
            if entry.kind == "undo" and entry.client_id == self.client_id:
                t = self.log.get(entry.target or "")
                if t is not None and t.cmd is not None:
                    self.redo_stack.append(CommandBody(**command_to_json(t.cmd)))
        self.log.trim(max(self.window, 1) * 2)
        return entry

    def on_rejected(self, op_id: str) -> bool:
        """Drop a pending op the server refused; returns whether it was still pending."""
        if not any(p.op_id == op_id for p in self.pending):
            return False
        self._rewind()
        self.pending = [p for p in self.pending if p.op_id != op_id]
        self._replay()
        return True

    def reset(self, target: Any, base_seq: int) -> None:
        """Replace the confirmed state (a snapshot); pending ops are re-applied on top."""
        self._rewind()
        self.log = OrderedLog(target, base_seq)
        self._replay()

    def to_send(self, epoch: int) -> list[OpMsg | UndoMsg]:
        """Pending ops not yet sent on connection ``epoch`` (marks them sent)."""
        out: list[OpMsg | UndoMsg] = []
        for p in self.pending:
            if p.sent_epoch != epoch:
                p.sent_epoch = epoch
                out.append(p.message())
        return out
