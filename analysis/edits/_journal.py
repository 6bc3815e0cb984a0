"""An append-only, fsync'd JSON-lines journal of edits.

Each line is one JSON object ending in ``\\n``::

    {"v": 1, "op": "open", "target": {...fingerprint...}}   # first line
    {"v": 1, "op": "apply", "cmd": {"kind": "cut", "v": 1, "args": {...}}}
    {"v": 1, "op": "undo"}  /  {"v": 1, "op": "redo"}
    {"v": 1, "op": "begin", "name": "drag"}  /  {"v": 1, "op": "end"}

A line is durable once :meth:`Journal.append` returns (``os.fsync`` after the
write). A crash can leave only the *last* line torn (no newline, or not JSON):
:meth:`Journal.read` drops it with a warning and truncates the file so later
appends start on a clean line. A bad line anywhere else is corruption and raises
:class:`FormatError`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from analysis.errors import FormatError

__all__ = ["JOURNAL_NAME", "JOURNAL_VERSION", "Journal"]

log = logging.getLogger(__name__)

JOURNAL_VERSION = 1
JOURNAL_NAME = "journal.jsonl"


class Journal:
    """An open journal file. Use :meth:`open` (which also reads what is there).

    Parameters
    ----------
    path : path to the ``.jsonl`` file
    fsync : bool, default: True
        Flush each line to the disk before :meth:`append` returns. Only tests
        that measure the in-memory edit cost turn it off.
    """

    def __init__(self, path: str | os.PathLike[str], fsync: bool = True) -> None:
        self.path = Path(path)
        self._fsync = fsync
        self._fd: int | None = None

    @staticmethod
    def resolve(path: str | os.PathLike[str]) -> Path:
        """A project folder means ``<folder>/journal.jsonl``; a file path is used as is."""
        p = Path(path)
        if p.is_dir() or (not p.suffix and not p.exists()):
            return p / JOURNAL_NAME
        return p

    def read(self) -> list[dict[str, Any]]:
        """All complete records; drops (and truncates away) a torn last line."""
        if not self.path.exists():
            return []
        raw = self.path.read_bytes()
        records: list[dict[str, Any]] = []
        offset = 0
        lines = raw.split(b"\n")
        # After split, the last element is b"" when the file ends in a newline.
        for i, line in enumerate(lines):
            is_last = i == len(lines) - 1
            if is_last and line == b"":
                break
            try:
                if is_last:
                    raise ValueError("no newline at end")
                rec = json.loads(line)
                if not isinstance(rec, dict) or "op" not in rec:
                    raise ValueError("not a journal record")
            except ValueError as exc:
                # A torn write can only affect the final line (each append is fsync'd
                # before the next starts), so anything before it is corruption.
                if is_last or (i == len(lines) - 2 and lines[-1] == b""):
                    log.warning(
                        "journal %s: dropping torn last line %d (%s); earlier edits are intact",
                        self.path,
                        i + 1,
                        exc,
                    )
                    with open(self.path, "r+b") as fh:
                        fh.truncate(offset)
                        fh.flush()
                        os.fsync(fh.fileno())
                    break
                raise FormatError(f"journal {self.path} line {i + 1} is corrupt: {exc}") from exc
            records.append(rec)
            offset += len(line) + 1
        return records

    def _open_fd(self) -> int:
        if self._fd is None:
            new = not self.path.exists()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if new and self._fsync:
                # Make the new directory entry durable too.
                dfd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        return self._fd

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as a line and make it durable before returning."""
        rec = {"v": JOURNAL_VERSION, **record}
        data = (json.dumps(rec, separators=(",", ":"), allow_nan=False) + "\n").encode()
        fd = self._open_fd()
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        if self._fsync:
            os.fsync(fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
