"""The collaboration wire protocol: versioned pydantic v2 models, one per message type.

Every websocket text frame is one JSON object with a ``type`` field; the server
validates each incoming frame against :data:`ClientMessage` (and clients against
:data:`ServerMessage`) before looking at it. Models forbid extra fields and
non-finite numbers. Edits travel as :class:`CommandBody` (the output of
:func:`analysis.edits.command_to_json`); its ``kind`` must be a registered command
kind and its ``args`` are only ever handed to that command's ``from_json``. Nothing
from a message is evaluated or unpickled.

``docs/collab-protocol.md`` embeds :func:`protocol_schema` (a test keeps it in sync);
regenerate it with ``python -m viewer.collab``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

__all__ = [
    "PROTOCOL_VERSION",
    "Applied",
    "ClientMessage",
    "ClipPlane",
    "CommandBody",
    "Duplicate",
    "ErrorMsg",
    "Follow",
    "FollowMsg",
    "FollowState",
    "Hello",
    "Joined",
    "Laser",
    "Left",
    "OpMsg",
    "Participant",
    "PeerPresence",
    "PeerView",
    "Pose",
    "Presence",
    "Rejected",
    "ServerMessage",
    "UndoMsg",
    "View",
    "Welcome",
    "parse_client",
    "parse_server",
    "protocol_schema",
    "protocol_schema_json",
]

PROTOCOL_VERSION = 2
"""Bumped on any incompatible change; ``hello.v`` must equal it (2: the server gives the
client id, resumed with a key; dotted command kinds such as ``labels.merge``)."""

Finite = Annotated[float, Field(allow_inf_nan=False)]
Vec3 = tuple[Finite, Finite, Finite]
Quat = tuple[Finite, Finite, Finite, Finite]
Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Colour = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")]
Role = Literal["presenter", "editor", "observer"]
Seq = Annotated[int, Field(ge=0)]
ResumeKey = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------- shared parts
class CommandBody(_Msg):
    """One edit: ``analysis.edits.command_to_json`` output."""

    # A registered kind: ``cut``, ``add_marker``, or dotted by family (``labels.merge``).
    kind: Annotated[
        str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}(\.[a-z][a-z0-9_]{0,31})?$")
    ]
    v: Annotated[int, Field(ge=1, le=1000)] = 1
    args: dict[str, Any]


class Pose(_Msg):
    """A rigid pose in world space: position in µm, orientation quaternion (w, x, y, z)."""

    position_um: Vec3
    orientation: Quat = (1.0, 0.0, 0.0, 0.0)


class Laser(_Msg):
    """A laser pointer: a ray (world µm, unit direction) and where it hits, if anywhere."""

    origin_um: Vec3
    direction: Vec3
    hit_um: Vec3 | None = None
    active: bool = True


class ClipPlane(_Msg):
    """A clipping plane through ``origin_um`` keeping the side ``normal`` points to."""

    origin_um: Vec3
    normal: Vec3
    enabled: bool = True


class Participant(_Msg):
    """Someone in the session. ``id`` is unique within one server run."""

    id: Annotated[int, Field(ge=1)]
    name: Name
    role: Role
    colour: Colour


class FollowState(_Msg):
    """Whether the presenter asks everyone to follow their view (free roaming otherwise)."""

    presenter: int | None = None
    enabled: bool = False


# ---------------------------------------------------------------------- client -> server
class Hello(_Msg):
    """First message of every connection.

    ``client_id`` is who one is in the session (whose ops one may undo). It is given by
    the server: leave it out on a first join and the ``welcome`` names it, with a
    ``resume`` key. To get it back after a dropped connection (or a server restart),
    send both again; a ``client_id`` claimed without its key is refused (``identity``)
    when it belongs to someone (connected, or author of an op in the undo window), and
    ignored otherwise (the ``welcome`` names a new id: a client never picks its id).
    The key is bound to the session token:
    it does not work with the other token. ``last_seq`` is the last sequence number the
    client has applied (-1: none, send a snapshot).
    """

    type: Literal["hello"] = "hello"
    v: int = PROTOCOL_VERSION
    client_id: Id | None = None
    resume: ResumeKey | None = None
    name: Name
    role: Role = "editor"
    colour: Colour | None = None
    last_seq: Annotated[int, Field(ge=-1)] = -1


class OpMsg(_Msg):
    """Submit an edit. ``op_id`` is globally unique; resubmitting it is a no-op."""

    type: Literal["op"] = "op"
    op_id: Id
    cmd: CommandBody


class UndoMsg(_Msg):
    """Undo one's own earlier op ``target`` (itself an op with id ``op_id``)."""

    type: Literal["undo"] = "undo"
    op_id: Id
    target: Id


class Presence(_Msg):
    """Avatar state, latest-wins, up to 90 Hz. ``ts`` is the sender's wall clock (s)."""

    type: Literal["presence"] = "presence"
    ts: Finite
    head: Pose | None = None
    left_hand: Pose | None = None
    right_hand: Pose | None = None
    laser: Laser | None = None


class View(_Msg):
    """Shared view state, latest-wins: clipping planes, time point, layer visibility, camera.

    ``ts`` is when the sender last changed the shared fields (planes, time, layers),
    on its wall clock (s): receivers apply the newest change and ignore resends.
    """

    type: Literal["view"] = "view"
    ts: Finite
    clip_planes: Annotated[list[ClipPlane], Field(max_length=6)] = []
    time: Finite | None = None
    layers: Annotated[dict[Name, bool], Field(max_length=64)] = {}
    camera: Pose | None = None


class Follow(_Msg):
    """Presenter only: ask everyone to follow the presenter's view (or release them)."""

    type: Literal["follow"] = "follow"
    enabled: bool


ClientMessage = Annotated[
    Hello | OpMsg | UndoMsg | Presence | View | Follow, Field(discriminator="type")
]


# ---------------------------------------------------------------------- server -> client
class Applied(_Msg):
    """An op in the server's order (also the acknowledgement to its author).

    ``kind`` is ``"cmd"`` (with ``cmd``) or ``"undo"`` (with ``target``).
    """

    type: Literal["applied"] = "applied"
    seq: Annotated[int, Field(ge=1)]
    op_id: Id
    client_id: Id
    author: Name
    kind: Literal["cmd", "undo"]
    cmd: CommandBody | None = None
    target: Id | None = None


class Welcome(_Msg):
    """Answer to ``hello``: who you are, who is here, and the state.

    ``snapshot`` is the state at ``base_seq`` (``None`` when resuming: then
    ``base_seq`` equals the client's ``last_seq``); ``ops`` are every op after it.
    """

    type: Literal["welcome"] = "welcome"
    v: int = PROTOCOL_VERSION
    session: Name
    you: Participant
    client_id: Id
    """Who you are in the session (your ops carry it); the server's choice."""
    resume: ResumeKey
    """Send it with ``client_id`` in a later ``hello`` to be the same participant again."""
    participants: list[Participant]
    info: dict[str, Any] = {}
    base_seq: Seq
    snapshot: dict[str, Any] | None = None
    ops: list[Applied] = []
    follow: FollowState = FollowState()
    window: Annotated[int, Field(ge=1)] = 1
    """The server keeps at most this many ops undoable (clients keep at least as many)."""


class Rejected(_Msg):
    """The op ``op_id`` was not applied: ``reason`` says why (e.g. invalid in server order)."""

    type: Literal["rejected"] = "rejected"
    op_id: Id
    reason: str


class Duplicate(_Msg):
    """The op ``op_id`` was already applied as ``seq`` (a resend after a reconnect)."""

    type: Literal["duplicate"] = "duplicate"
    op_id: Id
    seq: Annotated[int, Field(ge=1)]


class PeerPresence(_Msg):
    type: Literal["peer_presence"] = "peer_presence"
    participant: int
    presence: Presence


class PeerView(_Msg):
    type: Literal["peer_view"] = "peer_view"
    participant: int
    view: View


class Joined(_Msg):
    type: Literal["joined"] = "joined"
    participant: Participant


class Left(_Msg):
    type: Literal["left"] = "left"
    participant: int


class ErrorMsg(_Msg):
    """A message was refused (``code``: malformed, forbidden, rate_limited, version, ...)."""

    type: Literal["error"] = "error"
    code: str
    message: str


class FollowMsg(_Msg):
    type: Literal["follow_state"] = "follow_state"
    follow: FollowState


ServerMessage = Annotated[
    Welcome
    | Applied
    | Rejected
    | Duplicate
    | PeerPresence
    | PeerView
    | Joined
    | Left
    | ErrorMsg
    | FollowMsg,
    Field(discriminator="type"),
]

_CLIENT: TypeAdapter[Any] = TypeAdapter(ClientMessage)
_SERVER: TypeAdapter[Any] = TypeAdapter(ServerMessage)


def parse_client(raw: str | bytes) -> Hello | OpMsg | UndoMsg | Presence | View | Follow:
    """Validate one client frame. Raises ``pydantic.ValidationError``."""
    msg: Hello | OpMsg | UndoMsg | Presence | View | Follow = _CLIENT.validate_json(raw)
    return msg


def parse_server(raw: str | bytes) -> Any:
    """Validate one server frame (one of the :data:`ServerMessage` models)."""
    return _SERVER.validate_json(raw)


def protocol_schema() -> dict[str, Any]:
    """JSON schema of both directions, with the protocol version."""
    return {
        "protocol_version": PROTOCOL_VERSION,
        "client_to_server": _CLIENT.json_schema(),
        "server_to_client": _SERVER.json_schema(),
    }


def protocol_schema_json() -> str:
    """:func:`protocol_schema` as stable, indented JSON (what the docs embed)."""
    return json.dumps(protocol_schema(), indent=2, sort_keys=True)
