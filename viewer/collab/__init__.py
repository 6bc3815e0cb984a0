"""Collaborative review sessions: a websocket server, clients, and the shared op log.

A session shares one project between a presenter, editors and observers:

- **State and edits**: the server holds the authoritative state (a ``TrackGraph``
  or a ``Workspace``) and orders every edit (an :mod:`analysis.edits` command sent
  as an op) into one sequence, journaling each to SQLite before acknowledging it.
  Clients apply their own edits at once and reconcile with the server order
  (:mod:`viewer.collab._oplog` explains the scheme), so everyone converges. Undo
  applies to one's own ops; a group of edits is one op (:class:`Compound`).
- **Label edits** (:mod:`viewer.collab._labels`): the server alone computes and writes
  them into the project's label working copies; clients draw those copies (read-only)
  and re-read what each op changed, so no replica diverges.
- **Identities**: the server gives each participant its client id (whose ops it may
  undo) with a key bound to the session token; a reconnect resumes it with the key,
  and nobody else can claim it.
- **Persistence**: a project session (:meth:`Session.for_project`, ``vrscope serve``)
  also writes every accepted op, before acknowledging it, to the project's own
  ``journal.jsonl`` (:mod:`viewer.collab._mirror`), so the project reopens with the
  session's edits without the server.
- **Presence and view**: head/hand poses, laser pointers, clipping planes, time
  point, layer visibility and follow-the-presenter, latest-wins at up to 90 Hz;
  :class:`ViewSync` is the one shared-view model the desktop and the headset use.
- **Security**: a token per session (edit or view-only), loopback by default, TLS
  on request, every frame size-limited, rate-limited and validated against the
  pydantic models in :mod:`viewer.collab._protocol` (``docs/collab-protocol.md``).

Use :class:`CollabServer` + :class:`Session` to serve (``vrscope serve``),
:class:`CollabClient` from a GUI/XR frame loop (network on a background thread,
state changed only in :meth:`CollabClient.process`), :class:`AsyncCollabClient` from
asyncio code and simulated clients. An app written against ``analysis.edits.History``
joins a session by using :class:`CollabHistory` (same ``apply/undo/redo/changed``) and
calling its ``process()`` once per frame::

    client = CollabClient(url, name="PI", role="presenter").start()
    history = CollabHistory(client)      # instead of project.history
    workspace = history.target           # instead of project.workspace
    ...                                  # every frame:
    history.process()                    # applies remote ops, emits history.changed
    client.presence(head=Pose(position_um=head_um, orientation=head_q))

Extending: a new kind of edit is a new :class:`analysis.edits.Command` (registered
by its ``kind``); it travels without changes here. A new shared message is a new
model in ``_protocol.py`` added to ``ClientMessage``/``ServerMessage``, handled in
``CollabServer._dispatch`` and ``ClientCore.handle``; bump ``PROTOCOL_VERSION`` when
old peers cannot ignore it, and regenerate the docs (``python -m viewer.collab``).
"""

from viewer.collab._client import (
    AsyncCollabClient,
    ClientCore,
    CollabClient,
    CollabHistory,
    Event,
    Peer,
    check_url,
)
from viewer.collab._compound import Compound
from viewer.collab._journal import SessionJournal
from viewer.collab._mirror import ProjectMirror
from viewer.collab._oplog import Entry, OrderedLog, Replica
from viewer.collab._protocol import (
    PROTOCOL_VERSION,
    ClientMessage,
    ClipPlane,
    CommandBody,
    Laser,
    Pose,
    ServerMessage,
    View,
    protocol_schema,
    protocol_schema_json,
)
from viewer.collab._server import (
    SESSION_FILE,
    CollabServer,
    ServerLimits,
    Session,
    is_loopback,
    session_name,
)
from viewer.collab._state import decode_state, encode_state, state_digest
from viewer.collab._viewsync import SESSION_PREFIX, ViewSync

__all__ = [
    "PROTOCOL_VERSION",
    "SESSION_FILE",
    "SESSION_PREFIX",
    "AsyncCollabClient",
    "ClientCore",
    "ClientMessage",
    "ClipPlane",
    "check_url",
    "CollabClient",
    "CollabHistory",
    "CollabServer",
    "CommandBody",
    "Compound",
    "Entry",
    "Event",
    "Laser",
    "OrderedLog",
    "Peer",
    "Pose",
    "ProjectMirror",
    "Replica",
    "ServerLimits",
    "ServerMessage",
    "View",
    "ViewSync",
    "Session",
    "SessionJournal",
    "decode_state",
    "encode_state",
    "is_loopback",
    "protocol_schema",
    "protocol_schema_json",
    "session_name",
    "state_digest",
]
