"""The session server: tokens, one op order per session, journal before ack, presence fan-out.

One :class:`CollabServer` (an asyncio ``websockets`` server) hosts any number of
:class:`Session` objects, each reachable at ``ws://HOST:PORT/<session>?token=...``.
Per session:

- Two tokens: the *edit* token (roles presenter/editor/observer) and the *view*
  token (observer only). A wrong or missing token is refused at the HTTP handshake
  (401) before any websocket frame is read.
- Every frame is size-limited (``max_message_bytes``; larger ones close the
  connection with 1009), counted against a per-connection token bucket (frames over
  the budget are dropped unparsed; a sustained flood closes the connection with
  1008), then validated against :data:`viewer.collab.ClientMessage`.
- Ops are applied one at a time under a lock to the authoritative state
  (:class:`~viewer.collab._oplog.OrderedLog`); an op invalid in server order is
  rejected, an accepted one is written to the :class:`SessionJournal` (fsync'd)
  and only then broadcast (the broadcast is the author's acknowledgement). Op ids
  already applied are answered with ``duplicate``: resends apply exactly once.
- Presence and view messages are fanned out latest-wins: each connection has one
  slot per (participant, message type) that a newer message overwrites if the
  previous one has not been written yet, so a slow reader gets fresh poses rather
  than a backlog. Ops travel on a separate reliable queue, written first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import logging
import secrets
import ssl as _ssl
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from pydantic import ValidationError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from analysis.edits import JournalLock, command_to_json
from analysis.errors import FormatError, InvalidEditError, ParameterError, VrscopeError
from viewer.collab._journal import SessionJournal
from viewer.collab._labels import client_atoms, server_computed
from viewer.collab._mirror import ProjectMirror, records_for
from viewer.collab._oplog import Entry, OrderedLog, command_of
from viewer.collab._protocol import (
    PROTOCOL_VERSION,
    Duplicate,
    ErrorMsg,
    Follow,
    FollowMsg,
    FollowState,
    Hello,
    Joined,
    Left,
    OpMsg,
    Participant,
    Presence,
    Rejected,
    UndoMsg,
    View,
    Welcome,
    parse_client,
)
from viewer.collab._state import decode_state, encode_state, state_digest

__all__ = ["SESSION_FILE", "CollabServer", "ServerLimits", "Session", "session_name"]

log = logging.getLogger(__name__)

SESSION_FILE = "collab-{}.sqlite"
"""The session journal's name in the project folder (``collab-SESSION.sqlite``)."""


def session_name(folder: str | Path) -> str:
    """The default session name of a project folder: its name, URL-safe."""
    import re

    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(folder).resolve().name).strip("-.")
    return name or "session"


PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45")


@dataclass(frozen=True)
class ServerLimits:
    """Per-connection limits.

    Attributes
    ----------
    max_message_bytes : int, default: 1 MiB
        Larger frames close the connection (code 1009).
    rate_hz : float, default: 400
        Sustained frames per second per connection (enough for 90 Hz presence,
        view updates and edits); frames over the budget are dropped unparsed.
    burst : int, default: 400
    flood_drops : int, default: 2000
        Dropped frames within any ``flood_window_s`` seconds (a sliding window) after
        which the connection is closed (1008).
    flood_window_s : float, default: 2.0
    max_strikes : int, default: 20
        Malformed or refused messages before the connection is closed (1008).
    max_backlog : int, default: 10000
        Reliable messages queued for a reader that does not keep up before it is dropped.
    hello_timeout_s : float, default: 10
    close_timeout_s : float, default: 2
        How long a closing handshake may take before the TCP connection is dropped.
    max_connections : int, default: 256
        Participants of one session; more are refused after ``hello`` (error ``full``,
        close 1013: try again later).
    max_group_commands : int, default: 10000
        Commands in one group op; a larger group is rejected unapplied (the cost of one
        message is bounded).
    """

    max_message_bytes: int = 1 << 20
    rate_hz: float = 400.0
    burst: int = 400
    flood_drops: int = 2000
    flood_window_s: float = 2.0
    max_strikes: int = 20
    max_backlog: int = 10_000
    hello_timeout_s: float = 10.0
    close_timeout_s: float = 2.0
    max_connections: int = 256
    max_group_commands: int = 10_000


class _Bucket:
    """Token bucket (frames per second) that also tells a flood from a burst.

    A flood is ``flood_drops`` dropped frames within any ``window_s`` seconds: the
    drop times are kept (the last ``flood_drops`` of them), so the window slides. A
    fixed window that restarts every ``window_s`` could split a flood between two
    windows and never see it when the server reads slowly (a loaded machine).
    """

    def __init__(self, rate: float, burst: int, flood_drops: int = 2000) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens = float(burst)
        self.t = time.monotonic()
        self._drop_times: deque[float] = deque(maxlen=max(int(flood_drops), 1))

    @property
    def drops(self) -> int:
        """Dropped frames remembered (at most ``flood_drops``)."""
        return len(self._drop_times)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        self._drop_times.append(now)
        return False

    def flooding(self, window_s: float) -> bool:
        """Whether the last ``flood_drops`` drops all fell within ``window_s`` seconds."""
        d = self._drop_times
        return len(d) == d.maxlen and d[-1] - d[0] <= window_s


@dataclass(eq=False)
class _Conn:
    ws: ServerConnection
    participant: Participant
    client_id: str
    bucket: _Bucket
    resume: str = ""
    out: deque[str] = field(default_factory=deque)
    latest: dict[str, str] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    strikes: int = 0

    def push(self, text: str) -> None:
        self.out.append(text)
        self.wake.set()

    def push_latest(self, key: str, text: str) -> None:
        self.latest[key] = text
        self.wake.set()


class Session:
    """One shared editing session: the authoritative state, its op log and its journal.

    Parameters
    ----------
    name : str
        The URL path segment (letters, digits, ``-``, ``_``, ``.``).
    target : TrackGraph or Workspace
        The base state (e.g. the project's workspace). When the journal already
        holds the session, the state is rebuilt from it instead, and ``target``
        must be the same base it started from.
    journal_path : path-like
        The session's SQLite journal (created if absent).
    info : dict, optional
        Sent to every client on join: e.g. ``{"image": url, "labels": [...]}`` so
        clients open the data themselves (it is never sent through the session).
    checkpoint_every : int, default: 500
        Snapshot the state into the journal after this many ops; ops before the
        newest snapshot can no longer be undone, and late joiners start from it.
    project_journal : path-like, optional
        The project's ``journal.jsonl`` (or its folder): every accepted op is also
        written there, in server order and before it is acknowledged
        (:mod:`viewer.collab._mirror`), so the project reopens with the session's
        edits without the server. ``target`` is then the project's workspace as
        opened now; on a restart it must equal the session's state where the
        project journal left off (ops journaled in SQLite but not yet in the project
        journal are written there first). At most 1000 ``checkpoint_every`` (the
        desktop History's undo depth, which the undo records rely on).
    """

    def __init__(
        self,
        name: str,
        target: Any,
        journal_path: str | Path,
        info: Mapping[str, Any] | None = None,
        checkpoint_every: int = 500,
        project_journal: str | Path | None = None,
    ) -> None:
        if not name or not all(c.isalnum() or c in "-_." for c in name):
            raise ParameterError(f"session name {name!r} must be letters, digits, '-', '_', '.'")
        if checkpoint_every < 1:
            raise ParameterError(f"checkpoint_every must be at least 1, got {checkpoint_every}")
        if project_journal is not None and checkpoint_every > 1000:
            raise ParameterError(
                f"checkpoint_every must be at most 1000 for a project session, got {checkpoint_every}"
            )
        self.name = name
        self.info = dict(info or {})
        self.checkpoint_every = checkpoint_every
        self.journal = SessionJournal(journal_path)
        self.edit_token = self._token("edit_token")
        self.view_token = self._token("view_token")
        self._identity_secret = self._token("identity_secret")
        self.mirror: ProjectMirror | None = None
        self._project_lock: JournalLock | None = None  # set by for_project
        if project_journal is not None:
            self.mirror = ProjectMirror(project_journal, self._token("uid"))
        mirrored = self.mirror.last_seq if self.mirror is not None else 0
        base_digest = state_digest(target)
        stored = self.journal.get_meta("base_digest")
        ckpt = self.journal.latest_checkpoint()
        if stored is None or ckpt is None:
            self.journal.set_meta("base_digest", base_digest)
            text = json.dumps(encode_state(target), separators=(",", ":"))
            self.journal.checkpoint(0, text)
            ckpt = (0, text)
        elif mirrored == 0 and stored != base_digest:
            raise FormatError(
                f"session journal {self.journal.path} was started from a different base state "
                "(the project changed since); start a new session (vrscope serve --new-session)"
            )
        seq0, text = ckpt
        if self.mirror is not None and mirrored < seq0:
            raise FormatError(
                f"project journal {self.mirror.path} stops at session op {mirrored}, before the "
                f"session's checkpoint {seq0}; start a new session (vrscope serve --new-session)"
            )
        self._checkpoint_text = text
        self.log = OrderedLog(decode_state(json.loads(text)), base_seq=seq0)
        # Label images are not in snapshots: they are the target's working copies, edited
        # in place (``viewer.collab._labels``); the restored state edits the same ones.
        labels = getattr(target, "labels", None)
        if isinstance(labels, Mapping) and hasattr(self.log.target, "annotations"):
            self.log.target.labels = labels
        self._op_seq: dict[str, int] = {}
        if self.mirror is not None and mirrored == seq0 and mirrored > 0:
            self._check_project(target, mirrored)
        caught_up = 0
        for row in self.journal.ops_after(seq0):
            entry = _entry_from_row(row)
            try:
                # The project's copies already hold the mirrored ops (Project.open replayed
                # and recovered them): only their bookkeeping is replayed, no voxel written.
                with _replaying(labels if entry.seq <= mirrored else None):
                    self.log.apply(entry)
            except InvalidEditError as exc:
                raise FormatError(
                    f"session journal {self.journal.path}: op {entry.seq} cannot be replayed: {exc}"
                ) from exc
            self._op_seq[entry.op_id] = entry.seq
            if self.mirror is not None:
                if entry.seq == mirrored:
                    self._check_project(target, mirrored)
                elif entry.seq > mirrored:
                    # Journaled and maybe acknowledged, but the server stopped before the
                    # project journal had it: write it there now, once.
                    self.mirror.append(entry.seq, entry.op_id, records_for(entry, self.log))
                    caught_up += 1
        if self.mirror is not None and mirrored > self.log.last_seq:
            raise FormatError(
                f"project journal {self.mirror.path} has session op {mirrored}, newer than the "
                f"session journal's {self.log.last_seq}; start a new session "
                "(vrscope serve --new-session)"
            )
        if caught_up:
            log.warning(
                "session %s: wrote %d op(s) missing from the project journal", name, caught_up
            )
        self.conns: set[_Conn] = set()
        self.follow = FollowState()
        self.lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self._last_presence: dict[int, str] = {}
        self._last_view: dict[int, str] = {}
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"collab-{name}")
        log.info(
            "session %s at seq %d (%d ops replayed)", name, self.log.last_seq, len(self.log.entries)
        )

    @classmethod
    def for_project(
        cls,
        folder: str | Path,
        name: str | None = None,
        checkpoint_every: int = 500,
        new_session: bool = False,
    ) -> Session:
        """The session of a project folder (what ``vrscope serve PROJECT_DIR`` hosts).

        Its SQLite journal is ``PROJECT_DIR/collab-NAME.sqlite`` (``new_session``
        deletes it first: new tokens, the session's undo window forgotten; the
        project keeps every edit). Accepted ops also go to the project's journal.
        ``info`` tells clients the image (path or URL) and label names to open.
        """
        from analysis.edits import Journal
        from analysis.project import Project

        # The session is the project's one writer until it closes (another `serve`,
        # `view` or `labels` edit is refused, naming this server).
        lock = JournalLock.acquire(Journal.resolve(folder), what="vrscope serve")
        try:
            project = Project.open(folder, lock=lock)
        except BaseException:
            lock.release()
            raise
        try:
            sname = name or session_name(folder)
            journal = Path(project.path) / SESSION_FILE.format(sname)
            if new_session:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{journal}{suffix}").unlink(missing_ok=True)
            info = {
                "project": Path(project.path).name,
                "image": project.info.image,
                "labels": list(project.info.labels),
                # The working copies the server edits and every participant draws from.
                "label_copies": _label_copies(project),
            }
            journal_file = project.history.journal.path if project.history.journal else None
            session = cls(
                sname,
                project.workspace,
                journal,
                info,
                checkpoint_every=checkpoint_every,
                project_journal=journal_file or Path(project.path),
            )
        except BaseException:
            lock.release()
            raise
        finally:
            project.close()
        session._project_lock = lock
        return session

    def _check_project(self, target: Any, seq: int) -> None:
        if state_digest(target) != state_digest(self.log.target):
            raise FormatError(
                f"the project {self.mirror.project_dir if self.mirror else ''} was edited "
                f"outside the session after its op {seq} (its journal no longer matches the "
                "session); start a new session (vrscope serve --new-session)"
            )

    def _token(self, key: str) -> str:
        tok = self.journal.get_meta(key)
        if tok is None:
            tok = secrets.token_urlsafe(24)
            self.journal.set_meta(key, tok)
        return tok

    @property
    def target(self) -> Any:
        """The authoritative state (read it on the server's loop only)."""
        return self.log.target

    @property
    def last_seq(self) -> int:
        return self.log.last_seq

    def role_for(self, token: str) -> str | None:
        """``"edit"`` or ``"view"`` for a valid token, else None (constant-time compare)."""
        ok_edit = hmac.compare_digest(token.encode(), self.edit_token.encode())
        ok_view = hmac.compare_digest(token.encode(), self.view_token.encode())
        return "edit" if ok_edit else "view" if ok_view else None

    def close(self) -> None:
        self._io.shutdown(wait=True)
        settle = getattr(self.log.target, "settle_labels", None)
        if settle is not None:
            settle()  # label chunks still in memory go to the files (before the lock goes)
        self.journal.close()
        if self.mirror is not None:
            self.mirror.close()
        if self._project_lock is not None:
            self._project_lock.release()

    # ------------------------------------------------------------------ ops
    async def submit(self, conn: _Conn, msg: OpMsg | UndoMsg) -> None:
        if conn.participant.role == "observer":
            conn.push(Rejected(op_id=msg.op_id, reason="observers cannot edit").model_dump_json())
            conn.strikes += 1
            return
        async with self.lock:
            seq = self._op_seq.get(msg.op_id)
            if seq is not None:
                conn.push(Duplicate(op_id=msg.op_id, seq=seq).model_dump_json())
                return
            entry = Entry(
                self.log.last_seq + 1,
                msg.op_id,
                conn.client_id,
                conn.participant.name,
                "cmd" if isinstance(msg, OpMsg) else "undo",
            )
            try:
                if isinstance(msg, OpMsg):
                    entry.cmd = command_of(msg.cmd)
                    if client_atoms(entry.cmd):
                        # A label edit's atom is the server's to compute: one named by a
                        # client could write any stored edit's voxels (or name a path).
                        conn.strikes += 1
                        raise InvalidEditError(
                            "label edits are computed by the server: send them without an atom id"
                        )
                else:
                    entry.target = msg.target
                if entry.kind == "undo" or server_computed(entry.cmd):
                    # Voxels are read and written (a label edit, or an undo that may revert
                    # some): off the loop, so presence and the other sessions keep flowing
                    # (the session lock keeps the op order).
                    await asyncio.get_running_loop().run_in_executor(
                        self._io, _apply_and_write, self.log, entry
                    )
                else:
                    self.log.apply(entry)
            except (FormatError, InvalidEditError) as exc:
                conn.push(Rejected(op_id=msg.op_id, reason=str(exc)).model_dump_json())
                return
            except OSError as exc:
                # A label copy could not be written (disk full, permissions): no traceback
                # for a client's op; a single label edit is taken back (masked writes of
                # absolute values: exact whatever part was written).
                log.error("op %s could not be applied: %s", msg.op_id, exc)
                if entry.kind == "cmd" and server_computed(entry.cmd):
                    cmd = entry.cmd
                    if getattr(cmd, "atom_id", None) is not None:
                        with contextlib.suppress(OSError, VrscopeError):
                            cmd.revert(self.log.target)  # type: ignore[union-attr]
                why = f"the server could not write the edit ({type(exc).__name__})"
                conn.push(Rejected(op_id=msg.op_id, reason=why).model_dump_json())
                return
            body = _row_body(entry)
            row = (entry.seq, entry.op_id, entry.client_id, entry.author, entry.kind, body)
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(self._io, self.journal.append, row)
            except Exception as exc:
                # Not durable -> not acknowledged: take it back out of the state.
                log.error("journal write failed for op %s: %s", entry.op_id, exc)
                _rollback_last(self.log)
                conn.push(
                    Rejected(op_id=msg.op_id, reason="server journal failed").model_dump_json()
                )
                return
            if self.mirror is not None:
                records = records_for(entry, self.log)
                try:
                    await loop.run_in_executor(
                        self._io, self.mirror.append, entry.seq, entry.op_id, records
                    )
                except Exception as exc:
                    # Not in the project -> not acknowledged: take it back everywhere.
                    log.error("project journal write failed for op %s: %s", entry.op_id, exc)
                    await loop.run_in_executor(self._io, self.journal.remove, entry.seq)
                    _rollback_last(self.log)
                    conn.push(
                        Rejected(
                            op_id=msg.op_id, reason="server project journal failed"
                        ).model_dump_json()
                    )
                    return
            self._op_seq[entry.op_id] = entry.seq
            text = entry.to_message().model_dump_json()
            for c in self.conns:
                c.push(text)
            if len(self.log.entries) >= self.checkpoint_every:
                await self._checkpoint()

    async def _checkpoint(self) -> None:
        text = json.dumps(encode_state(self.log.target), separators=(",", ":"))
        seq = self.log.last_seq
        await asyncio.get_running_loop().run_in_executor(
            self._io, self.journal.checkpoint, seq, text
        )
        self._checkpoint_text = text
        self.log.trim(0)
        log.info("session %s: checkpoint at seq %d", self.name, seq)

    def welcome(self, conn: _Conn, last_seq: int) -> Welcome:
        """The join answer; call with :attr:`lock` held so no op is in flight."""
        if self.log.base_seq <= last_seq <= self.log.last_seq:
            base, snapshot = last_seq, None
        else:
            base, snapshot = self.log.base_seq, json.loads(self._checkpoint_text)
        ops = [e.to_message() for e in self.log.entries if e.seq > base]
        return Welcome(
            session=self.name,
            you=conn.participant,
            client_id=conn.client_id,
            resume=conn.resume,
            participants=[c.participant for c in self.conns],
            info=self.info,
            base_seq=base,
            snapshot=snapshot,
            ops=ops,
            follow=self.follow,
            window=self.checkpoint_every,
        )

    # ------------------------------------------------------------------ presence
    def fan_out(self, conn: _Conn, msg: Presence | View) -> None:
        pid = conn.participant.id
        if isinstance(msg, Presence):
            text = (
                f'{{"type":"peer_presence","participant":{pid},"presence":{msg.model_dump_json()}}}'
            )
            self._last_presence[pid] = text
            key = f"p{pid}"
        else:
            text = f'{{"type":"peer_view","participant":{pid},"view":{msg.model_dump_json()}}}'
            self._last_view[pid] = text
            key = f"v{pid}"
        for c in self.conns:
            if c is not conn:
                c.push_latest(key, text)

    def set_follow(self, conn: _Conn, msg: Follow) -> None:
        if conn.participant.role != "presenter":
            conn.strikes += 1
            conn.push(
                ErrorMsg(
                    code="forbidden", message="only the presenter sets follow mode"
                ).model_dump_json()
            )
            return
        self.follow = FollowState(presenter=conn.participant.id, enabled=msg.enabled)
        text = FollowMsg(follow=self.follow).model_dump_json()
        for c in self.conns:
            c.push(text)

    def join(self, conn: _Conn) -> None:
        text = Joined(participant=conn.participant).model_dump_json()
        for c in self.conns:
            c.push(text)
        self.conns.add(conn)
        for pid, t in self._last_presence.items():
            conn.push_latest(f"p{pid}", t)
        for pid, t in self._last_view.items():
            conn.push_latest(f"v{pid}", t)

    def leave(self, conn: _Conn) -> None:
        if conn not in self.conns:
            return  # already replaced by a newer connection of the same participant
        self.conns.discard(conn)
        pid = conn.participant.id
        self._last_presence.pop(pid, None)
        self._last_view.pop(pid, None)
        if self.follow.presenter == pid:
            self.follow = FollowState()
            ftext = FollowMsg(follow=self.follow).model_dump_json()
            for c in self.conns:
                c.push(ftext)
        text = Left(participant=pid).model_dump_json()
        for c in self.conns:
            c.push(text)

    # ------------------------------------------------------------------ identity
    def resume_key(self, client_id: str, token: str) -> str:
        """The key that gives ``client_id`` back to whoever joined with ``token``
        (HMAC-SHA256 under the session's secret, kept in its journal: it survives
        restarts, and ``--new-session`` makes a new one)."""
        msg = f"{token}\n{client_id}".encode()
        return hmac.new(self._identity_secret.encode(), msg, "sha256").hexdigest()

    def _bound(self, client_id: str) -> bool:
        """Whether ``client_id`` belongs to someone: connected, or the author of an op that
        can still be undone."""
        return any(c.client_id == client_id for c in self.conns) or any(
            e.client_id == client_id for e in self.log.entries
        )

    def identify(self, hello: Hello, token: str) -> tuple[str | None, bool, _Conn | None]:
        """The client id of a joining connection: ``(client_id, refused, replaced)``.

        An id with its valid key: that participant again (an older connection of theirs is
        ``replaced``). An id without it (no key, a wrong one, one over the other token):
        refused when it belongs to someone (:meth:`_bound`), else ignored. Otherwise a new
        id chosen here: a client never picks its id (issue 21), so an id that is not
        bound yet cannot be taken ahead of the participant the server will give it to.
        """
        cid = hello.client_id
        if cid is not None:
            if hello.resume is not None and hmac.compare_digest(
                hello.resume, self.resume_key(cid, token)
            ):
                old = next((c for c in self.conns if c.client_id == cid), None)
                return cid, False, old
            if self._bound(cid):
                return None, True, None
        while True:
            cid = secrets.token_hex(8)
            if not self._bound(cid):
                return cid, False, None

    def next_participant(self, hello: Hello) -> Participant:
        pid = next(self._ids)
        colour = hello.colour or PALETTE[(pid - 1) % len(PALETTE)]
        return Participant(id=pid, name=hello.name, role=hello.role, colour=colour)


def _label_copies(project: Any) -> dict[str, str]:
    """Make (if needed) the working copy of each of the project's label images; their paths.

    A label image that cannot be edited (not integer, not (z, y, x)) or whose source is
    unreadable is left out (label edits of it are refused in the session), with a warning.
    """
    from analysis.io import label_copy_path

    out: dict[str, str] = {}
    for name in project.info.labels:
        if not label_copy_path(project.path, name).is_dir():
            log.info("making the project's working copy of label image %s (once)", name)
        try:
            store = project.edit_labels(name)
        except (OSError, VrscopeError) as exc:
            log.warning("label image %s cannot be edited in the session: %s", name, exc)
            continue
        root = getattr(store, "root", None)
        if root is not None:
            out[str(name)] = str(Path(root).resolve())
    return out


@contextlib.contextmanager
def _replaying(labels: Mapping[str, Any] | None) -> Any:
    stores = [s for s in (labels or {}).values() if hasattr(s, "replaying")]
    for s in stores:
        s.replaying = True
    try:
        yield
    finally:
        for s in stores:
            s.replaying = False


def _row_body(entry: Entry) -> dict[str, Any]:
    if entry.kind == "cmd":
        assert entry.cmd is not None
        return {"cmd": command_to_json(entry.cmd)}
    return {"target": entry.target}


def _entry_from_row(row: tuple[int, str, str, str, str, dict[str, Any]]) -> Entry:
    seq, op_id, client_id, author, kind, body = row
    if kind == "cmd":
        from viewer.collab._protocol import CommandBody

        return Entry(seq, op_id, client_id, author, kind, command_of(CommandBody(**body["cmd"])))
    return Entry(seq, op_id, client_id, author, kind, target=str(body["target"]))


def _apply_and_write(log_: OrderedLog, entry: Entry) -> None:
    """Apply ``entry`` and put the label chunks it changed into the copies' files before
    it is acknowledged: participants read the copy from the files (the project's stores
    write behind, docs/design/0003-label-edits.md). A failed write takes the op back."""
    log_.apply(entry)
    flush = getattr(log_.target, "flush_labels", None)
    if flush is None:
        return
    try:
        flush()
    except OSError:
        _rollback_last(log_)
        raise


def _rollback_last(log_: OrderedLog) -> None:
    e = log_.entries.pop()
    if e.kind == "cmd":
        assert e.cmd is not None
        e.cmd.revert(log_.target)
        return
    # Undo of an undo: rebuild "t and every later active op, in order".
    t = log_.get(e.target or "")
    assert t is not None and t.cmd is not None
    later = [
        x for x in log_.entries[log_.entries.index(t) + 1 :] if x.kind == "cmd" and not x.undone
    ]
    for x in reversed(later):
        assert x.cmd is not None
        x.cmd.revert(log_.target)
    t.cmd.apply(log_.target)
    for x in later:
        assert x.cmd is not None
        x.cmd.apply(log_.target)
    t.undone = False


class CollabServer:
    """An asyncio websocket server hosting :class:`Session` objects.

    Parameters
    ----------
    host : str, default: "127.0.0.1"
        Loopback by default; any other address logs a warning (use TLS there).
    port : int, default: 8765
        0 picks a free port (see :attr:`port` after :meth:`start`).
    ssl_context : ssl.SSLContext, optional
        Serve ``wss://``.
    limits : ServerLimits, optional

    Examples
    --------
    >>> async def main():                               # doctest: +SKIP
    ...     async with CollabServer(port=0) as server:
    ...         server.add_session(Session("review", graph, "review.sqlite"))
    ...         print(server.join_url("review"))
    ...         await server.serve_forever()
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8765,
        ssl_context: _ssl.SSLContext | None = None,
        limits: ServerLimits | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.limits = limits or ServerLimits()
        self.sessions: dict[str, Session] = {}
        self._server: Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def add_session(self, session: Session) -> Session:
        if session.name in self.sessions:
            raise ParameterError(f"session {session.name!r} already exists")
        self.sessions[session.name] = session
        return session

    def join_url(self, session: str, role: str = "edit", host: str | None = None) -> str:
        """``ws[s]://HOST:PORT/SESSION?token=...`` for the edit or the view token."""
        s = self.sessions[session]
        tok = s.edit_token if role == "edit" else s.view_token
        scheme = "wss" if self.ssl_context is not None else "ws"
        h = host or self.host
        if ":" in h and not h.startswith("["):
            h = f"[{h}]"
        return f"{scheme}://{h}:{self.port}/{quote(session)}?token={tok}"

    async def start(self) -> None:
        if not is_loopback(self.host):
            log.warning(
                "collab server bound to %s, reachable from other machines: keep the join URL "
                "secret%s",
                self.host,
                "" if self.ssl_context else " and use --certfile/--keyfile (TLS)",
            )
        self._server = await serve(
            self._handler,
            self.host,
            self.port,
            ssl=self.ssl_context,
            process_request=self._check_request,
            max_size=self.limits.max_message_bytes,
            compression=None,
            # A client that stops answering must not hold its handler (and shutdown) long.
            close_timeout=self.limits.close_timeout_s,
        )
        sock = next(iter(self._server.sockets))
        self.port = int(sock.getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for s in self.sessions.values():
            s.close()

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    async def __aenter__(self) -> CollabServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ handshake
    def _resolve(self, path: str) -> tuple[Session | None, str | None]:
        parts = urlsplit(path)
        name = parts.path.strip("/")
        session = self.sessions.get(name)
        token = parse_qs(parts.query).get("token", [""])[0]
        if session is None:
            return None, None
        return session, session.role_for(token)

    def _check_request(self, conn: ServerConnection, request: Request) -> Response | None:
        session, cap = self._resolve(request.path)
        if session is None:
            return _http(404, "no such session\n")
        if cap is None:
            log.warning("refused a connection to %s: bad token", session.name)
            return _http(401, "missing or wrong session token\n")
        return None

    # ------------------------------------------------------------------ connection
    async def _handler(self, ws: ServerConnection) -> None:
        session, cap = self._resolve(ws.request.path if ws.request else "")
        if session is None or cap is None:  # pragma: no cover - refused at the handshake
            return
        lim = self.limits
        try:
            raw = await asyncio.wait_for(ws.recv(), lim.hello_timeout_s)
            hello = parse_client(raw)
        except (TimeoutError, ValidationError, ConnectionClosed) as exc:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(ErrorMsg(code="hello", message=_one_line(exc)).model_dump_json())
                await ws.close(1008, "expected hello")
            return
        if not isinstance(hello, Hello) or hello.v != PROTOCOL_VERSION:
            code, why = (
                ("version", f"protocol version {PROTOCOL_VERSION} required")
                if isinstance(hello, Hello)
                else ("hello", "the first message must be hello")
            )
            await ws.send(ErrorMsg(code=code, message=why).model_dump_json())
            await ws.close(1008, why)
            return
        if cap == "view" and hello.role != "observer":
            why = "the view token only allows the observer role"
            await ws.send(ErrorMsg(code="forbidden", message=why).model_dump_json())
            await ws.close(1008, why)
            return
        token = _token_of(ws.request.path if ws.request else "")
        replaced: _Conn | None = None
        async with session.lock:
            # A client id is who may undo an op. The server gives it (bound to the token by
            # a key); a claimed one that belongs to someone needs its key.
            client_id, taken, replaced = session.identify(hello, token)
            full = len(session.conns) - (replaced is not None) >= lim.max_connections
            if not (taken or full):
                assert client_id is not None
                if replaced is not None:
                    # The same participant again (a reconnect the server has not noticed
                    # yet as a drop): the new connection takes over.
                    session.leave(replaced)
                conn = _Conn(
                    ws,
                    session.next_participant(hello),
                    client_id,
                    _Bucket(lim.rate_hz, lim.burst, lim.flood_drops),
                    resume=session.resume_key(client_id, token),
                )
                conn.push(session.welcome(conn, hello.last_seq).model_dump_json())
                session.join(conn)
        if replaced is not None and not (taken or full):
            log.info("%s in %s: resumed on a new connection", hello.name, session.name)
            with contextlib.suppress(ConnectionClosed):
                await replaced.ws.close(1008, "resumed on another connection")
        if full and not taken:
            why = f"the session is full ({lim.max_connections} participants)"
            log.warning("refused %s in %s: %s", hello.name, session.name, why)
            with contextlib.suppress(ConnectionClosed):
                await ws.send(ErrorMsg(code="full", message=why).model_dump_json())
                await ws.close(1013, "session full")
            return
        if taken:
            why = (
                f"client id {hello.client_id!r} belongs to another participant of this session "
                "(resuming it needs the key the server gave with it)"
            )
            log.warning("refused %s in %s: %s", hello.name, session.name, why)
            with contextlib.suppress(ConnectionClosed):
                await ws.send(ErrorMsg(code="identity", message=why).model_dump_json())
                await ws.close(1008, "client id in use")
            return
        writer = asyncio.create_task(self._writer(conn))
        log.info("%s joined %s as %s", hello.name, session.name, hello.role)
        try:
            async for raw in ws:
                if conn not in session.conns:
                    break  # its participant resumed on another connection
                if not conn.bucket.take():
                    if conn.bucket.flooding(lim.flood_window_s):
                        log.warning("closing %s: message flood", hello.name)
                        await ws.close(1008, "rate limit exceeded")
                        break
                    continue
                await self._dispatch(session, conn, raw)
                if conn.strikes >= lim.max_strikes:
                    await ws.close(1008, "too many invalid messages")
                    break
                if len(conn.out) > lim.max_backlog:
                    await ws.close(1013, "not reading fast enough; reconnect to resume")
                    break
        except ConnectionClosed:
            pass
        finally:
            session.leave(conn)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            log.info("%s left %s", hello.name, session.name)

    async def _dispatch(self, session: Session, conn: _Conn, raw: str | bytes) -> None:
        try:
            msg = parse_client(raw)
        except ValidationError as exc:
            conn.strikes += 1
            conn.push(ErrorMsg(code="malformed", message=_one_line(exc)).model_dump_json())
            return
        if isinstance(msg, Presence | View):
            session.fan_out(conn, msg)
        elif isinstance(msg, OpMsg | UndoMsg):
            if isinstance(msg, OpMsg) and msg.cmd.kind == "collab_group":
                cmds = msg.cmd.args.get("commands")
                n = len(cmds) if isinstance(cmds, list) else 0
                if n > self.limits.max_group_commands:
                    conn.strikes += 1
                    why = f"a group of {n} commands (at most {self.limits.max_group_commands})"
                    conn.push(Rejected(op_id=msg.op_id, reason=why).model_dump_json())
                    return
            await session.submit(conn, msg)
        elif isinstance(msg, Follow):
            session.set_follow(conn, msg)
        else:
            conn.strikes += 1
            conn.push(ErrorMsg(code="hello", message="already joined").model_dump_json())

    @staticmethod
    async def _writer(conn: _Conn) -> None:
        ws = conn.ws
        try:
            while True:
                await conn.wake.wait()
                conn.wake.clear()
                while conn.out or conn.latest:
                    if conn.out:
                        text = conn.out.popleft()
                    else:
                        key = next(iter(conn.latest))
                        text = conn.latest.pop(key)
                    await ws.send(text)
        except ConnectionClosed:
            pass


def _token_of(path: str) -> str:
    return parse_qs(urlsplit(path).query).get("token", [""])[0]


def _http(status: int, body: str) -> Response:
    reason = {401: "Unauthorized", 404: "Not Found"}.get(status, "Error")
    headers = Headers([("Content-Type", "text/plain; charset=utf-8")])
    return Response(status, reason, headers, body.encode())


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": str(exc)}
        loc = ".".join(str(p) for p in err.get("loc", ()))
        return f"invalid message ({exc.error_count()} errors): {loc}: {err.get('msg', '')}"[:300]
    if isinstance(exc, TimeoutError):
        return "no hello received in time"
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
