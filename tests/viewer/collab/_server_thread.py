"""A collaboration server on its own asyncio loop thread (for synchronous and Qt tests)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from viewer.collab import CollabServer, Session


class ServerThread:
    """Serve the session ``make_session()`` builds; :meth:`restart` stops the server and
    starts a new one (a new ``Session`` from the same journals) on the same port."""

    def __init__(self, make_session: Callable[[], Session], port: int = 0) -> None:
        self.make_session = make_session
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: CollabServer | None = None
        self.session: Session | None = None
        self._start(port)

    def _call(self, coro: object, timeout: float = 20.0) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def _start(self, port: int) -> None:
        async def start() -> None:
            self.server = CollabServer("127.0.0.1", port)
            self.session = self.server.add_session(self.make_session())
            await self.server.start()

        self._call(start())

    def url(self, role: str = "edit") -> str:
        assert self.server is not None and self.session is not None
        return self.server.join_url(self.session.name, role)

    def stop(self) -> None:
        if self.server is not None:
            self._call(self.server.stop())
            self.server = None

    def restart(self) -> None:
        assert self.server is not None
        port = self.server.port
        self.stop()
        self._start(port)

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
