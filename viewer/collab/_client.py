"""Session clients: an asyncio one (headless, simulated XR) and a threaded one for Qt.

Both share :class:`ClientCore`, a synchronous object that owns the
:class:`~viewer.collab._oplog.Replica` (the local copy of the shared state), the
peers' latest presence and view, and turns server messages into :class:`Event`
records. The network side (:class:`_Link`) only moves text frames: it connects,
says hello with the last applied sequence number, reconnects with backoff, and
writes outgoing frames (ops on a reliable queue, presence latest-wins).

- :class:`AsyncCollabClient` applies server messages on its event loop as they
  arrive (``inline``). Use it from asyncio code, tests and simulated XR clients.
- :class:`CollabClient` runs the link on a background thread and hands received
  frames to a queue; the GUI (or XR frame loop) calls :meth:`CollabClient.process`
  once per frame, which applies them to the state on *that* thread and returns the
  events, so the scene is only ever changed by the thread that draws it.

Reconnects resume: the hello carries the last applied ``seq``; the server sends
only the ops after it, then the client resends its unacknowledged ops once per
connection (their ids make the server apply each exactly once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import ssl as _ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from psygnal import Signal
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

from analysis.edits import Command, Step
from analysis.errors import FormatError, InvalidEditError, ParameterError
from viewer.collab._labels import server_computed
from viewer.collab._oplog import Replica
from viewer.collab._protocol import (
    Applied,
    ClipPlane,
    Duplicate,
    ErrorMsg,
    Follow,
    FollowMsg,
    FollowState,
    Hello,
    Joined,
    Laser,
    Left,
    Participant,
    PeerPresence,
    PeerView,
    Pose,
    Presence,
    Rejected,
    View,
    Welcome,
    parse_server,
)
from viewer.collab._state import decode_state

__all__ = ["AsyncCollabClient", "ClientCore", "CollabClient", "CollabHistory", "Event", "Peer"]

log = logging.getLogger(__name__)


@dataclass
class Event:
    """Something the app may want to react to (mark the scene dirty, show a toast).

    ``kind`` is one of ``welcome``, ``applied`` (an op in server order; ``local`` says
    whether it was ours), ``rejected`` (our op refused: ``reason``), ``dropped`` (our
    pending op became invalid after someone else's edit), ``presence``, ``view``,
    ``joined``, ``left``, ``follow``, ``error``.
    """

    kind: str
    received: float = field(default_factory=time.time)
    participant: int | None = None
    op_id: str | None = None
    seq: int | None = None
    local: bool = False
    reason: str | None = None
    message: Any = None


@dataclass
class Peer:
    """Another participant and their latest presence and view (latest-wins)."""

    participant: Participant
    presence: Presence | None = None
    view: View | None = None


class ClientCore:
    """Synchronous client state: the replica, the peers, follow mode. Not thread-safe:
    call every method from one thread (the loop for the async client, the GUI thread
    for :class:`CollabClient`).

    Parameters
    ----------
    client_id : str or None
        None: the server gives one at the first join. Else the id to resume, with its
        ``resume`` key (a participant's identity again, e.g. after a crash of this
        program); without a valid key the server gives a new id instead (or refuses an
        id that belongs to someone).
    name : str
    role : {"presenter", "editor", "observer"}
    send : callable(epoch, text, slot)
        Hands an outgoing frame to the link: ``slot`` None for reliable frames (ops),
        else the latest-wins slot name (``"presence"``, ``"view"``).
    resume : str, optional
        The key the server gave with ``client_id`` (:attr:`resume` after a welcome).

    Attributes
    ----------
    client_id, resume : str or None
        Who this client is in the session (the server's ``welcome`` says) and the key
        that gets it back on every reconnect (ops it made stay its own to undo).
    """

    def __init__(
        self,
        client_id: str | None,
        name: str,
        role: str,
        send: Callable[[int, str, str | None], None],
        colour: str | None = None,
        resume: str | None = None,
    ) -> None:
        self.client_id = client_id
        self.resume = resume
        self.name = name
        self.role = role
        self.colour = colour
        self._send = send
        self.replica: Replica | None = None
        self.me: Participant | None = None
        self.peers: dict[int, Peer] = {}
        self.follow = FollowState()
        self.info: dict[str, Any] = {}
        self.epoch = -1
        self.session = ""
        self.need_snapshot = False
        self._dropped: list[Event] = []
        #: The session's label images (``viewer.collab._labels.SharedLabels``: the server's
        #: working copies, read-only here), made from the session info on joining.
        self.label_images: dict[str, Any] = {}
        self._label_info: Any = None

    # ------------------------------------------------------------------ state
    @property
    def target(self) -> Any:
        """The local state (server order + own pending ops), or None before joining."""
        return None if self.replica is None else self.replica.target

    @property
    def last_seq(self) -> int:
        if self.replica is None or self.need_snapshot:
            return -1
        return self.replica.last_seq

    @property
    def synced(self) -> bool:
        """Joined and nothing of ours pending."""
        return self.replica is not None and not self.replica.pending

    def hello(self) -> str:
        return Hello(
            client_id=self.client_id,
            resume=self.resume if self.client_id is not None else None,
            name=self.name,
            role=self.role,  # type: ignore[arg-type]
            colour=self.colour,
            last_seq=self.last_seq,
        ).model_dump_json()

    # ------------------------------------------------------------------ local actions
    def _require_editor(self) -> Replica:
        if self.replica is None:
            raise InvalidEditError("not joined to a session yet")
        if self.role == "observer":
            raise InvalidEditError("observers cannot edit")
        return self.replica

    def _flush(self) -> None:
        if self.replica is not None and self.epoch >= 0:
            for m in self.replica.to_send(self.epoch):
                self._send(self.epoch, m.model_dump_json(), None)

    def submit(self, cmd: Command, applied: bool = False) -> str:
        """Apply ``cmd`` now (optimistically) and send it; returns its op id.

        Raises :class:`InvalidEditError` (nothing changed, nothing sent) when it is
        invalid on the local state. ``applied``: it is already applied to
        :attr:`target` (only queue and send it).
        """
        p = self._require_editor().submit(cmd, applied=applied)
        self._flush()
        return p.op_id

    def undo(self) -> str:
        """Ask the server to undo this client's newest op; returns the undo's op id."""
        p = self._require_editor().request_undo()
        self._flush()
        return p.op_id

    def redo(self) -> str:
        """Submit again the command of this client's last undone op."""
        p = self._require_editor().request_redo()
        self._flush()
        return p.op_id

    def presence(
        self,
        head: Pose | None = None,
        left_hand: Pose | None = None,
        right_hand: Pose | None = None,
        laser: Laser | None = None,
        ts: float | None = None,
    ) -> None:
        """Send avatar state (latest-wins; dropped while disconnected)."""
        msg = Presence(
            ts=time.time() if ts is None else ts,
            head=head,
            left_hand=left_hand,
            right_hand=right_hand,
            laser=laser,
        )
        self._send(self.epoch, msg.model_dump_json(), "presence")

    def view(
        self,
        clip_planes: Sequence[ClipPlane] = (),
        time_point: float | None = None,
        layers: dict[str, bool] | None = None,
        camera: Pose | None = None,
        ts: float | None = None,
    ) -> None:
        """Send the shared view state (latest-wins).

        ``ts`` (default: now) should be when the shared fields (planes, time, layers)
        last changed, so receivers can order concurrent changes (latest change wins)
        and ignore resends; a camera-only update keeps the old ``ts``.
        """
        msg = View(
            ts=time.time() if ts is None else ts,
            clip_planes=list(clip_planes),
            time=time_point,
            layers=layers or {},
            camera=camera,
        )
        self._send(self.epoch, msg.model_dump_json(), "view")

    def set_follow(self, enabled: bool) -> None:
        """Presenter only: ask everyone to follow this client's view."""
        self._send(self.epoch, Follow(enabled=enabled).model_dump_json(), None)

    @property
    def presenter_view(self) -> View | None:
        """The view to follow when the presenter asked for it (None: roam freely)."""
        if not self.follow.enabled or self.follow.presenter is None:
            return None
        peer = self.peers.get(self.follow.presenter)
        return None if peer is None else peer.view

    # ------------------------------------------------------------------ server messages
    def handle(self, epoch: int, text: str | bytes) -> list[Event]:
        """Apply one server frame; returns the events it caused."""
        try:
            msg = parse_server(text)
        except ValidationError as exc:
            log.error("invalid server message dropped: %s", exc.errors()[:1])
            return [Event("error", reason="invalid server message")]
        out: list[Event] = []
        if isinstance(msg, Welcome):
            self._welcome(epoch, msg, out)
        elif isinstance(msg, Applied):
            self._applied(msg, out)
        elif isinstance(msg, Rejected):
            if self.replica is not None and self.replica.on_rejected(msg.op_id):
                out.append(Event("rejected", op_id=msg.op_id, reason=msg.reason, local=True))
        elif isinstance(msg, Duplicate):
            pass  # a resend of an op already in the order; its "applied" reached us before
        elif isinstance(msg, PeerPresence):
            peer = self.peers.get(msg.participant)
            if peer is not None:
                peer.presence = msg.presence
            out.append(Event("presence", participant=msg.participant, message=msg.presence))
        elif isinstance(msg, PeerView):
            peer = self.peers.get(msg.participant)
            if peer is not None:
                peer.view = msg.view
            out.append(Event("view", participant=msg.participant, message=msg.view))
        elif isinstance(msg, Joined):
            self.peers[msg.participant.id] = Peer(msg.participant)
            out.append(Event("joined", participant=msg.participant.id, message=msg.participant))
        elif isinstance(msg, Left):
            self.peers.pop(msg.participant, None)
            out.append(Event("left", participant=msg.participant))
        elif isinstance(msg, FollowMsg):
            self.follow = msg.follow
            out.append(Event("follow", participant=msg.follow.presenter, message=msg.follow))
        elif isinstance(msg, ErrorMsg):
            log.warning("server: %s: %s", msg.code, msg.message)
            if msg.code == "identity":
                # The id asked for is someone else's (or its key no longer holds): join
                # as whom the server gives on the next connection.
                self.client_id = self.resume = None
            out.append(Event("error", reason=f"{msg.code}: {msg.message}"))
        out.extend(self._dropped)
        self._dropped.clear()
        return out

    def _on_dropped(self, op_id: str, reason: str) -> None:
        self._dropped.append(Event("dropped", op_id=op_id, reason=reason, local=True))

    def _welcome(self, epoch: int, msg: Welcome, out: list[Event]) -> None:
        self.me = msg.you
        # The server says who we are (the same participant again on a resume).
        self.client_id, self.resume = msg.client_id, msg.resume
        if self.replica is not None and self.replica.client_id != msg.client_id:
            log.warning("session: joined as a new participant; earlier edits are not undoable")
            self.replica.client_id = msg.client_id
        self.session = msg.session
        self.info = dict(msg.info)
        self.follow = msg.follow
        self.peers = {p.id: Peer(p) for p in msg.participants if p.id != msg.you.id}
        self._open_labels()
        if msg.snapshot is not None:
            target = decode_state(msg.snapshot)
            self._attach_labels(target)
            if self.replica is None:
                self.replica = Replica(target, msg.client_id, msg.base_seq, self._on_dropped)
            else:
                self.replica.reset(target, msg.base_seq)
            self.need_snapshot = False
        elif self.replica is None or msg.base_seq > self.replica.last_seq:
            # Cannot resume from what we have: ask for a snapshot on the next connection.
            self.need_snapshot = True
            out.append(Event("error", reason="resume impossible; resyncing"))
            return
        self.replica.window = msg.window
        for op in msg.ops:
            self._applied(op, out)
        self.epoch = epoch
        out.append(Event("welcome", seq=self.replica.last_seq, message=msg.you))
        self._flush()

    def _open_labels(self) -> None:
        key = (self.info.get("labels"), self.info.get("label_copies"))
        if key == self._label_info:
            return
        from viewer.collab._labels import label_images_of

        self._label_info = key
        self.label_images = label_images_of(self.info)

    def _attach_labels(self, target: Any) -> None:
        # Label ops in server order "apply" to these: they announce what the server wrote.
        if hasattr(target, "labels") and hasattr(target, "annotations"):
            target.labels = dict(self.label_images)

    def _applied(self, msg: Applied, out: list[Event]) -> None:
        rep = self.replica
        if rep is None or msg.seq <= rep.last_seq:
            return  # already have it (a resume overlapping frames received earlier)
        if msg.seq != rep.last_seq + 1:
            log.error("op seq gap: have %d, got %d; resyncing", rep.last_seq, msg.seq)
            self.need_snapshot = True
            out.append(Event("error", reason="op sequence gap; resyncing"))
            return
        try:
            rep.on_applied(msg)
        except (FormatError, InvalidEditError) as exc:
            # Cannot happen while replicas follow the server order; recover by snapshot.
            log.error("cannot apply op %d (%s): resyncing", msg.seq, exc)
            self.need_snapshot = True
            out.append(Event("error", reason=f"op {msg.seq} not applicable; resyncing"))
            return
        out.append(
            Event(
                "applied",
                op_id=msg.op_id,
                seq=msg.seq,
                local=msg.client_id == self.client_id,
                message=msg,
            )
        )


class _Link:
    """The websocket connection with reconnects; delivers frames to ``deliver(epoch, text)``."""

    def __init__(
        self,
        url: str,
        hello: Callable[[], str],
        deliver: Callable[[int, str | bytes], None],
        ssl: Any = None,
        reconnect: bool = True,
        max_message_bytes: int = 64 << 20,
    ) -> None:
        self.url = url
        self._hello = hello
        self._deliver = deliver
        self._ssl = ssl
        self.reconnect = reconnect
        self.max_message_bytes = max_message_bytes
        self.epoch = -1
        self.ws: ClientConnection | None = None
        self._out: list[str] = []
        self._latest: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.fatal: BaseException | None = None
        self._closing = False

    def push(self, epoch: int, text: str, slot: str | None) -> None:
        if epoch != self.epoch or self.ws is None:
            return  # stale: reliable ones are resent after the next welcome
        if slot is None:
            self._out.append(text)
        else:
            self._latest[slot] = text
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        self._closing = True
        if self.ws is not None:
            await self.ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def abort(self) -> None:
        """Drop the TCP connection without a closing handshake (tests: a crash)."""
        if self.ws is not None:
            self.ws.transport.abort()

    async def _run(self) -> None:
        delay = 0.05
        while not self._closing:
            try:
                kwargs: dict[str, Any] = {} if self._ssl is None else {"ssl": self._ssl}
                async with connect(
                    self.url,
                    max_size=self.max_message_bytes,
                    compression=None,
                    open_timeout=5,
                    **kwargs,
                ) as ws:
                    delay = 0.05
                    self.epoch += 1
                    self._out.clear()
                    self._latest.clear()
                    await ws.send(self._hello())
                    self.ws = ws
                    self.connected.set()
                    writer = asyncio.create_task(self._writer(ws))
                    try:
                        async for text in ws:
                            self._deliver(self.epoch, text)
                    finally:
                        self.ws = None
                        self.connected.clear()
                        writer.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await writer
                    if ws.close_code == 1008:
                        log.warning("server closed the connection: %s", ws.close_reason)
            except (InvalidStatus, InvalidURI, _ssl.SSLError) as exc:
                # Refused, malformed or untrusted: retrying cannot help.
                self.fatal = exc
                self.connected.set()
                return
            except (OSError, ConnectionClosed, TimeoutError) as exc:
                log.info("collab connection lost (%s); retrying in %.2f s", exc, delay)
            if not self.reconnect or self._closing:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _writer(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._out or self._latest:
                    if self._out:
                        text = self._out.pop(0)
                    else:
                        key = next(iter(self._latest))
                        text = self._latest.pop(key)
                    await ws.send(text)


def check_url(url: str) -> None:
    if not url.startswith(("ws://", "wss://")) or "token=" not in url:
        raise ParameterError(
            f"join URL must look like ws://HOST:PORT/SESSION?token=..., got {url!r}"
        )


def _fatal_error(url: str, exc: BaseException) -> ParameterError:
    safe = url.split("?")[0]
    if isinstance(exc, InvalidStatus):
        code = exc.response.status_code
        why = {401: "the session token was refused", 404: "no such session"}.get(code, "refused")
        return ParameterError(f"cannot join {safe}: {why} (HTTP {code})")
    return ParameterError(f"cannot join {safe}: {exc}")


class _CoreCalls:
    """What both clients forward to their :class:`ClientCore` (edits, presence, view)."""

    core: ClientCore

    def submit(self, cmd: Command, applied: bool = False) -> str:
        return self.core.submit(cmd, applied=applied)

    def undo(self) -> str:
        return self.core.undo()

    def redo(self) -> str:
        return self.core.redo()

    def presence(self, **kwargs: Any) -> None:
        self.core.presence(**kwargs)

    def view(self, **kwargs: Any) -> None:
        self.core.view(**kwargs)

    def set_follow(self, enabled: bool) -> None:
        self.core.set_follow(enabled)


class AsyncCollabClient(_CoreCalls):
    """A session client on the running asyncio loop (headless viewers, simulated XR).

    Parameters
    ----------
    url : str
        ``ws://HOST:PORT/SESSION?token=...`` as printed by ``vrscope serve``.
    name : str, default: "anonymous"
    role : {"presenter", "editor", "observer"}, default: "editor"
    client_id, resume : str, optional
        The identity to ask for (default: the server gives one; see :class:`ClientCore`);
        ``core.client_id`` and ``core.resume`` after joining get it back after a crash.
    colour : str, optional
        ``#rrggbb`` for the avatar; the server picks one by default.
    reconnect : bool, default: True
    on_event : callable(Event), optional
        Called for every event on the loop; otherwise events collect in :attr:`events`.
    ssl : ssl.SSLContext, optional
        For ``wss://`` with a private CA.

    Examples
    --------
    >>> async def review(url):                                  # doctest: +SKIP
    ...     async with AsyncCollabClient(url, name="PI") as c:
    ...         c.submit(Cut(42))
    ...         await c.wait_synced()
    """

    def __init__(
        self,
        url: str,
        name: str = "anonymous",
        role: str = "editor",
        client_id: str | None = None,
        colour: str | None = None,
        reconnect: bool = True,
        on_event: Callable[[Event], None] | None = None,
        ssl: Any = None,
        resume: str | None = None,
    ) -> None:
        check_url(url)
        self.url = url
        self.core = ClientCore(client_id, name, role, self._send, colour, resume=resume)
        self.on_event = on_event
        self.events: list[Event] = []
        self._link = _Link(url, self.core.hello, self._deliver, ssl=ssl, reconnect=reconnect)
        self._joined = asyncio.Event()

    def _send(self, epoch: int, text: str, slot: str | None) -> None:
        self._link.push(epoch, text, slot)

    def _deliver(self, epoch: int, text: str | bytes) -> None:
        for ev in self.core.handle(epoch, text):
            if ev.kind == "welcome":
                self._joined.set()
            if self.on_event is not None:
                self.on_event(ev)
            else:
                self.events.append(ev)
        if self.core.need_snapshot:
            self._link.abort()  # reconnect; the next hello asks for a snapshot

    async def start(self, timeout: float = 10.0) -> AsyncCollabClient:
        """Connect and wait for the first welcome (raises ParameterError if refused)."""
        self._link.start()
        deadline = time.monotonic() + timeout
        while not self._joined.is_set() and self._link.fatal is None:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        if self._link.fatal is not None:
            await self._link.close()
            raise _fatal_error(self.url, self._link.fatal)
        if not self._joined.is_set():
            await self._link.close()
            raise ParameterError(f"cannot join {self.url.split('?')[0]}: no answer in {timeout} s")
        return self

    async def close(self) -> None:
        await self._link.close()

    async def __aenter__(self) -> AsyncCollabClient:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def abort(self) -> None:
        """Drop the connection abruptly (it reconnects and resumes when ``reconnect``)."""
        self._link.abort()

    # Delegates -------------------------------------------------------------------
    @property
    def target(self) -> Any:
        return self.core.target

    @property
    def connected(self) -> bool:
        return self._link.ws is not None

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Poll ``predicate`` on the loop until true (raises TimeoutError)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not reached in time")
            await asyncio.sleep(0.005)

    async def wait_synced(self, seq: int | None = None, timeout: float = 10.0) -> None:
        """Wait until nothing of ours is pending (and, if given, ``seq`` is applied)."""
        await self.wait_for(
            lambda: self.core.synced and (seq is None or self.core.last_seq >= seq), timeout
        )


class CollabClient(_CoreCalls):
    """A session client for a GUI or XR frame loop: network on a background thread.

    Call :meth:`process` once per frame on the thread that owns the scene: it
    applies what arrived and returns the :class:`Event` list (handlers should only
    mark things dirty). :meth:`submit`, :meth:`undo`, :meth:`presence` ... are called
    on that same thread.

    Parameters are those of :class:`AsyncCollabClient`.

    Examples
    --------
    >>> client = CollabClient(url, name="student")             # doctest: +SKIP
    >>> client.start()            # connects, waits for the snapshot
    >>> graph = client.target     # the shared TrackGraph / Workspace
    >>> client.submit(Cut(42))    # applied now, reconciled with the server order later
    >>> for ev in client.process(): ...   # every frame
    >>> client.close()
    """

    def __init__(
        self,
        url: str,
        name: str = "anonymous",
        role: str = "editor",
        client_id: str | None = None,
        colour: str | None = None,
        reconnect: bool = True,
        ssl: Any = None,
        resume: str | None = None,
    ) -> None:
        check_url(url)
        self.url = url
        self.core = ClientCore(client_id, name, role, self._send, colour, resume=resume)
        self._inbox: queue.SimpleQueue[tuple[int, str | bytes]] = queue.SimpleQueue()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="collab", daemon=True)
        self._link: _Link | None = None
        self._reconnect = reconnect
        self._ssl = ssl

    def _send(self, epoch: int, text: str, slot: str | None) -> None:
        link = self._link
        if link is not None:
            self._loop.call_soon_threadsafe(link.push, epoch, text, slot)

    def start(self, timeout: float = 10.0) -> CollabClient:
        """Connect and block until the session state has arrived (or raise ParameterError)."""
        self._thread.start()

        async def make() -> _Link:
            link = _Link(
                self.url,
                self.core.hello,
                lambda e, t: self._inbox.put((e, t)),
                ssl=self._ssl,
                reconnect=self._reconnect,
            )
            link.start()
            return link

        self._link = asyncio.run_coroutine_threadsafe(make(), self._loop).result()
        deadline = time.monotonic() + timeout
        while self.core.replica is None:
            if self._link.fatal is not None:
                self.close()
                raise _fatal_error(self.url, self._link.fatal)
            if time.monotonic() > deadline:
                self.close()
                raise ParameterError(
                    f"cannot join {self.url.split('?')[0]}: no answer in {timeout} s"
                )
            self.process(timeout=0.05)
        return self

    def process(self, timeout: float = 0.0) -> list[Event]:
        """Apply every frame received so far; returns their events (call once per frame)."""
        out: list[Event] = []
        try:
            item = self._inbox.get(timeout=timeout) if timeout > 0 else self._inbox.get_nowait()
        except queue.Empty:
            return out
        while True:
            out.extend(self.core.handle(*item))
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
        if self.core.need_snapshot and self._link is not None:
            self._loop.call_soon_threadsafe(self._link.abort)
        return out

    def close(self) -> None:
        """Disconnect and stop the background thread."""
        if self._link is not None and self._loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._link.close(), self._loop).result(5)
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        self._loop.close()

    # Delegates -------------------------------------------------------------------
    @property
    def target(self) -> Any:
        """The shared state (TrackGraph or Workspace); changed only inside :meth:`process`."""
        return self.core.target

    @property
    def peers(self) -> dict[int, Peer]:
        return self.core.peers

    @property
    def info(self) -> dict[str, Any]:
        """Session info from the server, e.g. ``{"image": url, "labels": [...]}``."""
        return self.core.info


class CollabHistory:
    """A :class:`analysis.edits.History` look-alike over a :class:`CollabClient`.

    Lets an app that edits through ``history.apply / undo / redo / group`` and listens
    to ``history.changed`` join a session unchanged: use ``CollabHistory(client)`` as
    its history and ``history.target`` (the client's Workspace or TrackGraph) as its
    edit target, and call :meth:`process` once per frame on the thread that draws.

    Differences from ``History``:

    - undo/redo act on this participant's own ops (selective undo: someone else's
      later edits stay) and take effect when the server has ordered them, one round
      trip later (``changed`` fires then); they return the :class:`Step` being undone
      or redone;
    - ``group`` folds the commands applied inside it into one op (a
      :class:`~viewer.collab._compound.Compound`, sent when the outermost group
      closes), so it is one undo step for everyone; others see the group's edits when
      it closes, and :meth:`process` waits while a group is open;
    - a ``"reset"`` change means the whole state was replaced by a snapshot: re-read
      :attr:`target`.

    Events
    ------
    changed : Signal(str, object)
        ``("apply", command)`` for a local edit (at once; for a group also once with
        the compound when it closes), ``("remote", Event)`` for someone else's op,
        ``("undo", Event)`` for an undo in server order, ``("rejected", Event)`` when
        an own op was refused or dropped, ``("reset", target)`` after a snapshot.
    """

    changed = Signal(str, object)

    def __init__(self, client: CollabClient) -> None:
        self.client = client
        self._group: tuple[str, list[Command]] | None = None
        self._depth = 0

    @property
    def target(self) -> Any:
        return self.client.target

    @property
    def label_images(self) -> dict[str, Any]:
        """The session's label images this machine can draw from (name -> the server's
        working copy, read-only here: ``viewer.collab._labels.SharedLabels``)."""
        return {n: img for n, img in self.client.core.label_images.items() if img.available}

    def edit_labels(self, name: str) -> Any:
        """The label image label commands of layer ``name`` edit (what a front end's
        ``LabelEditing`` asks for); InvalidEditError, with the reason, where it cannot."""
        img = self.client.core.label_images.get(name)
        if img is None or not img.available:
            raise InvalidEditError(
                getattr(img, "why", "")
                or f"label image {name!r} is not one of the session's label images"
            )
        return img

    def apply(self, cmd: Command) -> Command:
        """Apply ``cmd`` locally at once and send it (raises InvalidEditError, unchanged).

        Inside :meth:`group` it is applied now and sent with the group when it closes.
        """
        if server_computed(cmd):
            # Validated here (the same checks, on the shared copy's voxels: a refusal
            # shows at once), applied by the server; the views change when it has.
            self.client.core._require_editor()
            cmd.preview(self.client.target)  # type: ignore[attr-defined]
        if self._group is not None:
            self.client.core._require_editor()
            if not server_computed(cmd):
                cmd.apply(self.client.target)
            self._group[1].append(cmd)
        else:
            self.client.submit(cmd)
        self.changed.emit("apply", cmd)
        return cmd

    @contextlib.contextmanager
    def group(self, name: str = "group") -> Iterator[CollabHistory]:
        """Fold every command applied inside the block into one op (one undo step).

        Groups nest (only the outermost makes the op). Like ``History.group``, the
        commands applied before an exception leaves the block are kept (and sent).
        """
        self._depth += 1
        if self._depth == 1:
            self._group = (name, [])
        try:
            yield self
        finally:
            self._depth -= 1
            if self._depth == 0 and self._group is not None:
                gname, cmds = self._group
                self._group = None
                if cmds:
                    from viewer.collab._compound import Compound

                    folded = cmds[0] if len(cmds) == 1 else Compound(cmds, gname)
                    remote = server_computed(folded)
                    if remote:
                        # Label edits are computed by the server: the whole group goes
                        # there unapplied (take back what was applied here, newest first).
                        for c in reversed(cmds):
                            if not server_computed(c):
                                c.revert(self.client.target)
                    self.client.submit(folded, applied=not remote)
                    if len(cmds) > 1:
                        self.changed.emit("apply", folded)

    def _step(self, op_id: str | None) -> Step:
        rep = self.client.core.replica
        cmd: Command | None = None
        if rep is not None and op_id is not None:
            e = rep.log.get(op_id)
            cmd = e.cmd if e is not None else None
            if cmd is None:
                cmd = next((p.cmd for p in rep.pending if p.op_id == op_id), None)
        return Step(cmd.description if cmd is not None else "edit", [cmd] if cmd else [])

    def undo(self) -> Step:
        """Request an undo of this participant's newest op (InvalidEditError if none).

        Returns the step being undone; the state changes when the server has ordered it.
        """
        if self._group is not None:
            raise InvalidEditError("cannot undo inside an open group")
        op_id = self.client.undo()
        rep = self.client.core.replica
        target = None
        if rep is not None:
            target = next((p.target for p in rep.pending if p.op_id == op_id), None)
        return self._step(target)

    def redo(self) -> Step:
        """Submit again this participant's last undone command (applied at once)."""
        if self._group is not None:
            raise InvalidEditError("cannot redo inside an open group")
        return self._step(self.client.redo())

    @property
    def can_undo(self) -> bool:
        rep = self.client.core.replica
        if rep is None or self._group is not None:
            return False
        targeted = {p.target for p in rep.pending if p.kind == "undo"}
        return any(p.kind == "cmd" and p.op_id not in targeted for p in rep.pending) or any(
            e.kind == "cmd"
            and e.client_id == rep.client_id
            and not e.undone
            and e.op_id not in targeted
            for e in rep.log.entries
        )

    @property
    def can_redo(self) -> bool:
        rep = self.client.core.replica
        return rep is not None and bool(rep.redo_stack) and self._group is None

    def process(self, timeout: float = 0.0) -> list[Event]:
        """Apply what arrived (call once per frame); emits :attr:`changed` per state change.

        ``timeout`` waits up to that long for the first frame (0: never block). Does
        nothing while a :meth:`group` is open (its commands are not yet ops, so the
        state cannot be rewound under them); the frames wait for the next call.
        """
        if self._group is not None:
            return []
        before = self.client.target
        events = self.client.process(timeout)
        if self.client.target is not before:
            self.changed.emit("reset", self.client.target)
        for ev in events:
            if ev.kind == "applied":
                msg = ev.message
                if isinstance(msg, Applied) and msg.kind == "undo":
                    self.changed.emit("undo", ev)
                elif not ev.local:
                    self.changed.emit("remote", ev)
            elif ev.kind in ("rejected", "dropped"):
                self.changed.emit("rejected", ev)
        return events

    def close(self) -> None:
        self.client.close()
