"""``RemoteRig``: scripted head and controller poses for Monado's remote driver.

Monado's remote driver (``P_OVERRIDE_ACTIVE_CONFIG=remote``) listens on TCP
(127.0.0.1:4242 by default) and takes ``struct r_remote_data`` packets of 376
bytes, little-endian, no framing; every packet replaces the whole state (head
pose, both controllers' poses, buttons and axes). On connect it sends two
packets (its reset state and its latest state). Poses are
``(qx, qy, qz, qw, px, py, pz)`` in the tracking origin (STAGE space, metres).

Layout (Monado 25, ``src/xrt/drivers/remote/r_interface.h``)::

    u64 header
    head: 2 x (fov l, r, u, d; pose 7 f; u32 pad), centre pose 7 f,
          bool per_view_data_valid, 3 pad                      -> 128 bytes
    left, right controller (120 bytes each):
          pose 7 f, linear velocity 3 f, angular velocity 3 f, hand_curl 5 f,
          trigger, squeeze, squeeze_force, thumbstick 2, trackpad_force,
          trackpad 2 (26 floats), then 16 bools: hand_tracking_active, active,
          system_click, system_touch, a_click, a_touch, b_click, b_touch,
          trigger_click, trigger_touch, thumbstick_click, thumbstick_touch,
          trackpad_touch, 3 pad
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field, replace
from types import TracebackType

__all__ = ["PACKET_SIZE", "RemoteController", "RemoteRig", "RigState", "pack_state", "unpack_state"]

PACKET_SIZE = 376
_HEADER = int.from_bytes(b"mndrmt3\0", "little")
_VIEW = struct.Struct("<4f7fI")
_HEAD_TAIL = struct.Struct("<7f?3x")
_CTRL = struct.Struct("<26f16?")
_HEAD_SIZE = 2 * _VIEW.size + _HEAD_TAIL.size
assert 8 + _HEAD_SIZE + 2 * _CTRL.size == PACKET_SIZE

_BOOLS = (
    "hand_tracking_active",
    "active",
    "system_click",
    "system_touch",
    "a_click",
    "a_touch",
    "b_click",
    "b_touch",
    "trigger_click",
    "trigger_touch",
    "thumbstick_click",
    "thumbstick_touch",
    "trackpad_touch",
)

Quat = tuple[float, float, float, float]
Vec = tuple[float, float, float]
IDENTITY: Quat = (0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class RemoteController:
    """One controller's scripted state (stage metres, quaternion x, y, z, w)."""

    position: Vec = (0.2, 1.3, -0.5)
    orientation: Quat = IDENTITY
    trigger: float = 0.0
    squeeze: float = 0.0
    thumbstick: tuple[float, float] = (0.0, 0.0)
    active: bool = True
    trigger_click: bool = False
    a_click: bool = False
    b_click: bool = False
    system_click: bool = False
    thumbstick_click: bool = False
    hand_curl: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)
    #: Report a tracked hand (joints from ``hand_curl``, XR_EXT_hand_tracking).
    hand_tracking_active: bool = False
    #: How hard the trackpad is pressed, 0..1 (Index: a firm press opens the menu).
    trackpad_force: float = 0.0

    def pack(self) -> bytes:
        floats = [
            *self.orientation,
            *self.position,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            *self.hand_curl,
            self.trigger,
            self.squeeze,
            self.squeeze,
            *self.thumbstick,
            self.trackpad_force,
            0.0,
            0.0,
        ]
        flags = {
            "hand_tracking_active": self.hand_tracking_active,
            "active": self.active,
            "system_click": self.system_click,
            "a_click": self.a_click,
            "a_touch": self.a_click,
            "b_click": self.b_click,
            "b_touch": self.b_click,
            "trigger_click": self.trigger_click,
            "trigger_touch": self.trigger_click or self.trigger > 0,
            "thumbstick_click": self.thumbstick_click,
            "thumbstick_touch": self.thumbstick_click or any(self.thumbstick),
        }
        bools = [bool(flags.get(name, False)) for name in _BOOLS] + [False] * 3
        return _CTRL.pack(*floats, *bools)


@dataclass(frozen=True)
class RigState:
    """The whole scripted state: head pose and both controllers."""

    head_position: Vec = (0.0, 1.6, 0.0)
    head_orientation: Quat = IDENTITY
    left: RemoteController = field(default_factory=lambda: RemoteController((-0.2, 1.3, -0.5)))
    right: RemoteController = field(default_factory=lambda: RemoteController((0.2, 1.3, -0.5)))


def pack_state(state: RigState) -> bytes:
    """The 376-byte packet for ``state`` (head centre pose; per-view data not valid)."""
    pose = (*state.head_orientation, *state.head_position)
    views = b"".join(_VIEW.pack(0.0, 0.0, 0.0, 0.0, *pose, 0) for _ in range(2))
    head = views + _HEAD_TAIL.pack(*pose, False)
    out = struct.pack("<Q", _HEADER) + head + state.left.pack() + state.right.pack()
    assert len(out) == PACKET_SIZE
    return out


def unpack_state(packet: bytes) -> RigState:
    """Decode a packet (e.g. the driver's reset state) into a :class:`RigState`."""
    if len(packet) != PACKET_SIZE:
        raise ValueError(f"remote packet must be {PACKET_SIZE} bytes, got {len(packet)}")
    off = 8 + 2 * _VIEW.size
    head = _HEAD_TAIL.unpack_from(packet, off)
    ctrls = []
    for i in range(2):
        vals = _CTRL.unpack_from(packet, 8 + _HEAD_SIZE + i * _CTRL.size)
        f, b = vals[:26], dict(zip(_BOOLS, vals[26:], strict=False))
        ctrls.append(
            RemoteController(
                position=(f[4], f[5], f[6]),
                orientation=(f[0], f[1], f[2], f[3]),
                hand_curl=(f[13], f[14], f[15], f[16], f[17]),
                trigger=f[18],
                squeeze=f[19],
                thumbstick=(f[21], f[22]),
                trackpad_force=f[23],
                active=b["active"],
                trigger_click=b["trigger_click"],
                a_click=b["a_click"],
                b_click=b["b_click"],
                system_click=b["system_click"],
                thumbstick_click=b["thumbstick_click"],
                hand_tracking_active=b["hand_tracking_active"],
            )
        )
    return RigState(
        head_position=(head[4], head[5], head[6]),
        head_orientation=(head[0], head[1], head[2], head[3]),
        left=ctrls[0],
        right=ctrls[1],
    )


class RemoteRig:
    """TCP client of Monado's remote driver: set head/controller state, press buttons.

    Parameters
    ----------
    port : int, default: 4242
    host : str, default: "127.0.0.1"
    timeout_s : float, default: 20
        How long :meth:`connect` retries while the driver is not listening yet.

    Examples
    --------
    >>> with RemoteRig() as rig:  # doctest: +SKIP
    ...     rig.set(right=replace(rig.state.right, position=(0.1, 1.2, -0.4)))
    ...     rig.click("right", "trigger_click")
    """

    def __init__(self, port: int = 4242, host: str = "127.0.0.1", timeout_s: float = 20.0) -> None:
        self.address = (host, port)
        self.timeout_s = timeout_s
        self.sock: socket.socket | None = None
        self.state = RigState()
        self.reset_state: RigState | None = None

    def connect(self) -> RemoteRig:
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                self.sock = socket.create_connection(self.address, timeout=2.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The driver greets with its reset state and its latest state.
        try:
            self.reset_state = unpack_state(self._recv_exact(PACKET_SIZE))
            self._recv_exact(PACKET_SIZE)
        except (OSError, ValueError):
            self.reset_state = None
        self.send()
        return self

    def _recv_exact(self, n: int) -> bytes:
        assert self.sock is not None
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise OSError("remote driver closed the connection")
            buf += chunk
        return buf

    def send(self) -> None:
        """Send the current :attr:`state` (replaces the driver's whole state)."""
        if self.sock is None:
            raise RuntimeError("RemoteRig is not connected")
        self.sock.sendall(pack_state(self.state))

    def set(self, **changes: object) -> RigState:
        """Change fields of :attr:`state` (``head_position``, ``left``, ``right``...) and send."""
        self.state = replace(self.state, **changes)  # type: ignore[arg-type]
        self.send()
        return self.state

    def hand(self, side: str, **changes: object) -> RemoteController:
        """Change fields of one controller (``side`` "left" or "right") and send."""
        ctrl = replace(getattr(self.state, side), **changes)
        self.set(**{side: ctrl})
        return ctrl  # type: ignore[no-any-return]

    def click(self, side: str, button: str = "trigger_click", hold_s: float = 0.3) -> None:
        """Press ``button`` (and the trigger value for the trigger) for ``hold_s``, release."""
        extra: dict[str, object] = {"trigger": 1.0} if button == "trigger_click" else {}
        self.hand(side, **{button: True}, **extra)
        time.sleep(hold_s)
        extra = {"trigger": 0.0} if button == "trigger_click" else {}
        self.hand(side, **{button: False}, **extra)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self) -> RemoteRig:
        return self.connect()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
