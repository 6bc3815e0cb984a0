"""One writer per journal: an OS file lock next to it, naming who holds it.

``JournalLock.acquire(journal_path)`` takes an exclusive, non-blocking
``flock`` on ``<journal>.lock`` (e.g. ``project/journal.jsonl.lock``) and writes
into it who holds it (host, pid, since, what). The operating system releases a
``flock`` when its process dies, however it dies (SIGKILL included), so a lock
of a dead process never blocks: the file's old contents then name a dead pid on
this host and are reported as a stale lock taken over. The file is never deleted
(deleting a lock file races with a process that has it open but not yet locked).

Why ``fcntl.flock`` and not the ``filelock`` package: the standard library does
it in a few lines, and vrscope declares no dependency on ``filelock`` (it is only
a transitive one). ``flock`` locks belong to an open file, not to a process, so a
second open of the same journal *in the same process* (two windows) is refused
too. Where ``flock`` is not available (Windows) or not supported by the file
system (some network mounts), the lock falls back to the file's contents: a
holder that is alive, or on another host, blocks; a dead pid on this host is stale.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from analysis.errors import VrscopeError

__all__ = ["JournalLock", "ProjectLockedError", "lock_path"]

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"


class ProjectLockedError(VrscopeError):
    """Another process (or another window of this one) has the project open for writing.

    ``holder`` is what the lock file says: ``host``, ``pid``, ``since`` (UTC, ISO) and
    ``what`` (e.g. ``vrscope view``); empty when it could not be read.
    """

    def __init__(self, message: str, holder: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.holder = dict(holder or {})


def lock_path(journal_path: str | os.PathLike[str]) -> Path:
    """The lock file of a journal: ``<journal>.lock`` next to it."""
    p = Path(journal_path)
    return p.with_name(p.name + LOCK_SUFFIX)


def _what() -> str:
    """The program and its first argument, e.g. ``vrscope view`` (``python -m vrscope`` too)."""
    if not sys.argv or not sys.argv[0]:
        return "python"
    prog = Path(sys.argv[0])
    name = prog.parent.name if prog.name == "__main__.py" else prog.name
    return " ".join(a for a in [name, *sys.argv[1:2]] if a)[:80]


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return True
    return True


def describe(holder: dict[str, Any]) -> str:
    """``vrscope view (pid 123 on host, since 2026-12-05 18:20:03 UTC)`` or ``another process``."""
    if not holder:
        return "another process"
    what = str(holder.get("what") or "a process")
    return f"{what} (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, since {holder.get('since', '?')})"


class JournalLock:
    """An exclusive lock on one journal, held until :meth:`release`. Use :meth:`acquire`."""

    def __init__(self, path: Path, fd: int, flocked: bool) -> None:
        self.path = path
        self._fd: int | None = fd
        self._flocked = flocked

    @classmethod
    def acquire(cls, journal_path: str | os.PathLike[str], what: str | None = None) -> JournalLock:
        """Lock ``journal_path`` for writing, or raise :class:`ProjectLockedError` at once.

        ``what`` names the holder in the message others get (default: the program and
        its first argument, e.g. ``vrscope view``).
        """
        path = lock_path(journal_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            flocked = _try_flock(fd)
            previous = _read_holder(fd)
            if flocked is False:
                raise ProjectLockedError(_locked_message(journal_path, previous), previous)
            me = {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "since": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                "what": what or _what(),
            }
            if flocked is None and previous and not _is_stale(previous):
                # No OS lock here: the contents are the lock.
                raise ProjectLockedError(_locked_message(journal_path, previous), previous)
            if previous and previous.get("pid") is not None:
                # Released by the OS (the holder died without closing) or left by a crash.
                log.warning(
                    "taking over the stale lock %s of %s (that process is gone)",
                    path,
                    describe(previous),
                )
            _write_holder(fd, me)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, flocked is True)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Clear the holder and unlock (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:  # pragma: no cover - a read-only remount; the OS lock goes anyway
            pass
        finally:
            os.close(fd)  # releases the flock

    def __enter__(self) -> JournalLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:  # pragma: no cover - a lock never released explicitly
        if self._fd is not None:
            os.close(self._fd)


def _try_flock(fd: int) -> bool | None:
    """True: locked; False: someone else holds it; None: no OS lock on this system."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:  # pragma: no cover - file systems without flock
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return None
        raise
    return True


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        raw = os.pread(fd, 4096, 0)
        data = json.loads(raw) if raw.strip() else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_holder(fd: int, holder: dict[str, Any]) -> None:
    data = (json.dumps(holder) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _is_stale(holder: dict[str, Any]) -> bool:
    """A holder on this host whose process is gone (only hosts can be compared, not pids)."""
    if holder.get("host") != socket.gethostname():
        return False
    try:
        pid = int(holder.get("pid", -1))
    except (TypeError, ValueError):
        return True
    return pid == os.getpid() or not _pid_alive(pid)


def _locked_message(journal_path: str | os.PathLike[str], holder: dict[str, Any]) -> str:
    folder = Path(journal_path).parent
    return (
        f"project {folder} is open for writing in {describe(holder)}; close it there first "
        "(or open the project read-only)"
    )
