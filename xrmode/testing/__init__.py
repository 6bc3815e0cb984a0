"""Test helpers for the XR mode: a headless Monado runtime and scripted controllers.

- :class:`MonadoRuntime` / :class:`MonadoService`: find the Monado sysroot made by
  ``scripts/monado.sh``, build the environment, start and stop ``monado-service``.
- :class:`RemoteRig`: drive Monado's remote driver (head and controller poses,
  buttons) over TCP, as the runtime tests do.
"""

from ._driver import XrAppRun, move, near, press
from ._monado import MonadoRuntime, MonadoService, find_monado, install_monado
from ._remote import PACKET_SIZE, RemoteController, RemoteRig, RigState, pack_state, unpack_state

__all__ = [
    "PACKET_SIZE",
    "MonadoRuntime",
    "MonadoService",
    "RemoteController",
    "RemoteRig",
    "RigState",
    "XrAppRun",
    "find_monado",
    "install_monado",
    "move",
    "near",
    "pack_state",
    "press",
    "unpack_state",
]
