"""The session journal: SQLite in WAL mode with ``synchronous=FULL``.

One file per session holds the session's tokens (``meta``), every accepted op in
server order (``ops``, ``op_id`` unique) and periodic state snapshots
(``checkpoints``). A commit is durable when :meth:`SessionJournal.append` returns
(WAL + FULL fsyncs the log on every commit), and the server acknowledges an op
only after that. A restarted server loads the newest checkpoint and replays the
ops after it. SQLite rather than JSON lines because a restart needs "ops after
seq N" and "was op id X applied" lookups, which the indexes answer directly.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from analysis.errors import FormatError

__all__ = ["JOURNAL_SCHEMA_VERSION", "JournalRow", "SessionJournal"]

JOURNAL_SCHEMA_VERSION = 1

JournalRow = tuple[int, str, str, str, str, dict[str, Any]]
"""``(seq, op_id, client_id, author, kind, body)``; body is the op's JSON payload."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ops (
    seq INTEGER PRIMARY KEY,
    op_id TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL,
    author TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (seq INTEGER PRIMARY KEY, state TEXT NOT NULL);
"""


class SessionJournal:
    """An open session journal. Thread-safe (one lock): the server writes from a worker.

    Parameters
    ----------
    path : path-like
        The ``.sqlite`` file (created with mode 0600: it holds the session tokens).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        new = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if new:
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            version = self.get_meta("schema_version")
        except sqlite3.DatabaseError as exc:
            raise FormatError(f"session journal {self.path} is not readable: {exc}") from exc
        if version is None:
            self.set_meta("schema_version", str(JOURNAL_SCHEMA_VERSION))
        elif int(version) > JOURNAL_SCHEMA_VERSION:
            raise FormatError(
                f"session journal {self.path} has schema {version}, newer than {JOURNAL_SCHEMA_VERSION}"
            )

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO meta(key, value) VALUES(?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # ------------------------------------------------------------------ ops
    def append(self, row: JournalRow) -> None:
        """Record one accepted op; durable on return. Raises sqlite3.IntegrityError on
        a duplicate ``seq`` or ``op_id`` (the server never sends one)."""
        seq, op_id, client_id, author, kind, body = row
        with self._lock:
            self._db.execute(
                "INSERT INTO ops(seq, op_id, client_id, author, kind, body) "
                "VALUES(?, ?, ?, ?, ?, ?)",
                (seq, op_id, client_id, author, kind, json.dumps(body, separators=(",", ":"))),
            )

    def remove(self, seq: int) -> None:
        """Take back the op ``seq`` (only the newest, before it was acknowledged)."""
        with self._lock:
            self._db.execute(
                "DELETE FROM ops WHERE seq = ? AND seq = (SELECT MAX(seq) FROM ops)", (seq,)
            )

    def checkpoint(self, seq: int, state: str) -> None:
        """Store the state (JSON text) at ``seq``; older checkpoints are dropped."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO checkpoints(seq, state) VALUES(?, ?)", (seq, state)
                )
                self._db.execute("DELETE FROM checkpoints WHERE seq < ?", (seq,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def latest_checkpoint(self) -> tuple[int, str] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT seq, state FROM checkpoints ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def ops_after(self, seq: int) -> list[JournalRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, op_id, client_id, author, kind, body FROM ops "
                "WHERE seq > ? ORDER BY seq",
                (seq,),
            ).fetchall()
        return [(int(r[0]), r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def last_seq(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT MAX(seq) FROM ops").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SessionJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
