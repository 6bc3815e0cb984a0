"""An append-only, fsync'd JSON-lines journal of edits, with sequence numbers and checksums.

Each line is one JSON object ending in ``\\n``; ``seq`` is the line's number (1 for
the first line) and ``crc`` the CRC-32 of the line's bytes without the ``crc``
field (it is always the last field)::

    {"v":2,"seq":1,"op":"open","target":{...fingerprint...},"crc":"1c291ca3"}
    {"v":2,"seq":2,"op":"apply","cmd":{"kind":"cut","v":1,"args":{...}},"crc":"..."}
    {"v":2,"seq":3,"op":"undo","crc":"..."}  /  "redo"  /  "begin" (+ "name")  /  "end"

A line is durable, and its edit acknowledged, once :meth:`Journal.append` returns
(``os.fsync`` after the write). A failed append is cut back off the file before the
error is raised, so the file always ends with a whole line. Reading checks every line:

- a last piece without its newline is a *torn tail*, an append a crash interrupted
  (never acknowledged): it is dropped with a warning saying how many bytes, and cut
  off the file when the journal is opened for writing;
- any complete line that is not JSON, fails its checksum, or has another sequence
  number than its line number (lines lost, or two processes writing) is corruption:
  :class:`JournalCorruptError` names the line, and :meth:`rollback` can cut the
  journal back to the last good line, keeping a copy of the damaged file.

Journals written before sequence numbers and checksums (``"v": 1`` lines) still
open; new lines appended to them are checksummed (their ``seq`` is still their line
number). A ``v: 1`` line after a checksummed one is corruption.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.errors import FormatError

if TYPE_CHECKING:
    from analysis.edits._lock import JournalLock

__all__ = [
    "JOURNAL_NAME",
    "JOURNAL_VERSION",
    "Journal",
    "JournalCorruptError",
    "JournalScan",
]

log = logging.getLogger(__name__)

JOURNAL_VERSION = 2
JOURNAL_NAME = "journal.jsonl"
_CRC_KEY = b',"crc":"'


class JournalCorruptError(FormatError):
    """A complete journal line is damaged. ``line`` is its number (1-based); the
    ``line - 1`` lines before it are intact (:meth:`Journal.rollback` keeps them)."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(
            f"journal {path} line {line} is corrupt: {reason}; the {line - 1} line(s) before "
            "it are intact (repair: `vrscope project repair` keeps them and saves a copy of "
            "the journal)"
        )
        self.path = path
        self.line = line
        self.reason = reason


@dataclass
class JournalScan:
    """What :meth:`Journal.scan` found.

    Attributes
    ----------
    records : the intact records, in order (each with ``v`` and, from v2, ``seq``)
    offsets : byte offset of the start of each intact line, plus the end of the last one
    torn_bytes : size of a torn last piece (no newline), 0 when none
    newline_missing : the last record is whole (checksum) but lacks its newline, or its
        newline was damaged: the file ends one byte after it or without it
    error : the first damaged line, or None
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    offsets: list[int] = field(default_factory=lambda: [0])
    torn_bytes: int = 0
    error: JournalCorruptError | None = None
    newline_missing: bool = False

    @property
    def end(self) -> int:
        return self.offsets[-1]


def encode_line(record: dict[str, Any], seq: int) -> bytes:
    """One journal line for ``record`` at sequence number ``seq`` (with its checksum)."""
    if "crc" in record or "seq" in record:
        raise ValueError("a journal record sets neither 'crc' nor 'seq'")
    body = json.dumps(
        {"v": JOURNAL_VERSION, "seq": seq, **record}, separators=(",", ":"), allow_nan=False
    ).encode()
    crc = zlib.crc32(body)
    return body[:-1] + _CRC_KEY + f"{crc:08x}".encode() + b'"}\n'


def _decode_line(line: bytes, expected_seq: int, v2_seen: bool) -> dict[str, Any]:
    """The record of one complete line (without its newline); ValueError says what is wrong."""
    cut = line.rfind(_CRC_KEY)
    if cut >= 0 and line.endswith(b'"}'):
        stated = line[cut + len(_CRC_KEY) : -2]
        body = line[:cut] + b"}"
        # Compared as written (8 lower-case hex digits), so that no changed byte passes.
        if stated != f"{zlib.crc32(body):08x}".encode():
            raise ValueError("checksum mismatch")
        rec = json.loads(body)
        if not isinstance(rec, dict) or "op" not in rec:
            raise ValueError("not a journal record")
        v = rec.get("v")
        if not isinstance(v, int) or v < 2:
            raise ValueError(f"checksummed line of version {v!r}")
        if v > JOURNAL_VERSION:
            raise ValueError(f"written by a newer vrscope (journal version {v})")
        seq = rec.get("seq")
        if seq != expected_seq:
            raise ValueError(
                f"sequence number {seq} where {expected_seq} was expected "
                "(lines lost, or two processes wrote the journal)"
            )
        return rec
    rec = json.loads(line)
    if not isinstance(rec, dict) or "op" not in rec:
        raise ValueError("not a journal record")
    if rec.get("v", 1) != 1:
        raise ValueError("no checksum")
    if v2_seen:
        raise ValueError("an unchecksummed line after checksummed ones")
    return rec


class Journal:
    """An open journal file. :class:`History.open` opens one (and replays it).

    Parameters
    ----------
    path : path to the ``.jsonl`` file
    fsync : bool, default: True
        Flush each line to the disk before :meth:`append` returns. Only tests
        that measure the in-memory edit cost turn it off.

    Attributes
    ----------
    lock : JournalLock or None
        The writer's lock (see :mod:`analysis.edits._lock`), released by :meth:`close`
        when ``owns_lock``.
    read_only : bool
        Appends are refused (the journal was opened to look, without the lock).
    damaged_copy : Path or None
        Where :meth:`rollback` kept the damaged journal (None: no rollback).
    """

    def __init__(self, path: str | os.PathLike[str], fsync: bool = True) -> None:
        self.path = Path(path)
        self._fsync = fsync
        self._fd: int | None = None
        self._end: int | None = None  # bytes of whole, checked lines (None: not read yet)
        self._next_seq = 1
        self._cut_pending = False
        self.lock: JournalLock | None = None
        self.owns_lock = False
        self.read_only = False
        self.damaged_copy: Path | None = None  # set by rollback

    @staticmethod
    def resolve(path: str | os.PathLike[str]) -> Path:
        """A project folder means ``<folder>/journal.jsonl``; a file path is used as is."""
        p = Path(path)
        if p.is_dir() or (not p.suffix and not p.exists()):
            return p / JOURNAL_NAME
        return p

    # ------------------------------------------------------------------ reading
    def scan(self) -> JournalScan:
        """Check every line; report the intact records, a torn tail and the first damage.

        Changes nothing on disk.
        """
        out = JournalScan()
        if not self.path.exists():
            return out
        raw = self.path.read_bytes()
        pos = 0
        v2_seen = False
        while pos < len(raw):
            nl = raw.find(b"\n", pos)
            if nl < 0:
                rec = self._whole_line_without_newline(raw[pos:], len(out.records) + 1)
                if rec is not None:
                    # Every byte of the line but its newline (a write cut one byte short,
                    # or the newline itself damaged): the checksum proves the line whole.
                    out.records.append(rec)
                    out.newline_missing = True
                    out.offsets.append(len(raw))
                else:
                    out.torn_bytes = len(raw) - pos
                break
            n = len(out.records) + 1
            try:
                rec = _decode_line(raw[pos:nl], n, v2_seen)
            except ValueError as exc:
                out.error = JournalCorruptError(self.path, n, str(exc))
                break
            v2_seen = v2_seen or rec.get("v", 1) >= 2
            out.records.append(rec)
            pos = nl + 1
            out.offsets.append(pos)
        return out

    @staticmethod
    def _whole_line_without_newline(piece: bytes, seq: int) -> dict[str, Any] | None:
        for line in (piece, piece[:-1]):
            if line.endswith(b'"}') and _CRC_KEY in line:
                try:
                    return _decode_line(line, seq, True)
                except ValueError:
                    pass
        return None

    def read(self, repair_tail: bool = True) -> list[dict[str, Any]]:
        """All records; drops a torn last piece (cut off the file with ``repair_tail``).

        Raises
        ------
        JournalCorruptError
            A complete line is damaged (see :meth:`rollback`).
        """
        s = self.scan()
        if s.error is not None:
            raise s.error
        self._drop_torn_tail(s, repair_tail)
        self._end = s.end
        self._next_seq = len(s.records) + 1
        return s.records

    def _drop_torn_tail(self, s: JournalScan, repair: bool) -> None:
        if s.newline_missing:
            if repair and not self.read_only:
                # Cut a damaged newline (if any) and write it anew.
                start = s.offsets[-2]
                raw = self.path.read_bytes()[start:]
                line_end = start + (len(raw) if raw.endswith(b'"}') else len(raw) - 1)
                with open(self.path, "r+b") as fh:
                    fh.truncate(line_end)
                    fh.seek(line_end)
                    fh.write(b"\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                s.offsets[-1] = line_end + 1
            log.warning(
                "journal %s: line %d lacked its newline; restored", self.path, len(s.records)
            )
            return
        if not s.torn_bytes:
            return
        log.warning(
            "journal %s: dropping a torn last line (%d bytes after line %d: one write a crash "
            "interrupted, never acknowledged); every acknowledged edit is intact",
            self.path,
            s.torn_bytes,
            len(s.records),
        )
        if repair and not self.read_only:
            self._truncate(s.end)

    def rollback(self, keep_lines: int, scan: JournalScan | None = None) -> Path:
        """Cut the journal back to its first ``keep_lines`` lines, keeping a copy first.

        The copy is ``<journal>.damaged-<UTC time>`` next to it; its path is returned.
        ``keep_lines`` must not exceed the intact lines.
        """
        self._check_writable()
        s = scan if scan is not None else self.scan()
        if not 0 < keep_lines <= len(s.records):
            raise FormatError(
                f"journal {self.path}: cannot keep {keep_lines} line(s) ({len(s.records)} intact)"
            )
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        copy = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        k = 1
        while copy.exists():
            copy = self.path.with_name(f"{self.path.name}.damaged-{stamp}-{k}")
            k += 1
        shutil.copyfile(self.path, copy)
        with open(copy, "rb") as fh:
            os.fsync(fh.fileno())
        self._truncate(s.offsets[keep_lines])
        self._end = s.offsets[keep_lines]
        self._next_seq = keep_lines + 1
        self.damaged_copy = copy
        log.warning(
            "journal %s: rolled back to line %d (%d byte(s) after it dropped); the damaged "
            "journal is kept as %s",
            self.path,
            keep_lines,
            copy.stat().st_size - s.offsets[keep_lines],
            copy,
        )
        return copy

    def drop_after(self, keep_lines: int) -> None:
        """Cut off every line after the first ``keep_lines`` (no copy kept: for lines
        known to be unacknowledged, e.g. an incomplete multi-line write)."""
        self._check_writable()
        s = self.scan()
        if not 0 <= keep_lines <= len(s.records):
            raise FormatError(
                f"journal {self.path}: cannot keep {keep_lines} line(s) ({len(s.records)} intact)"
            )
        self._truncate(s.offsets[keep_lines])
        self._end = s.offsets[keep_lines]
        self._next_seq = keep_lines + 1

    def _truncate(self, size: int) -> None:
        with open(self.path, "r+b") as fh:
            fh.truncate(size)
            fh.flush()
            os.fsync(fh.fileno())

    # ------------------------------------------------------------------ writing
    def _check_writable(self) -> None:
        if self.read_only:
            raise FormatError(f"journal {self.path} is open read-only")

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
        self.append_many([record])

    def append_many(self, records: Iterable[dict[str, Any]]) -> None:
        """Write records as consecutive lines in one write, durable before returning.

        On any failure (disk full, ...) the file is cut back to where it was and the
        error re-raised: nothing of them is in the journal.
        """
        self._check_writable()
        if self._end is None:
            self.read()
        assert self._end is not None
        lines = [encode_line(r, self._next_seq + i) for i, r in enumerate(records)]
        data = b"".join(lines)
        fd = self._open_fd()
        size = os.fstat(fd).st_size
        if size != self._end:
            if not (self._cut_pending and size > self._end):
                raise FormatError(
                    f"journal {self.path} changed under this process ({size} bytes where "
                    f"{self._end} were written): another process is writing it"
                )
            os.ftruncate(fd, self._end)
        self._cut_pending = False
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self._fsync:
                os.fsync(fd)
        except BaseException:
            # Never leave a partial line: the next append would glue onto it.
            self._cut_pending = True
            try:
                os.ftruncate(fd, self._end)
                self._cut_pending = False
            except OSError:  # pragma: no cover - retried before the next append
                pass
            raise
        self._end += len(data)
        self._next_seq += len(lines)

    @property
    def n_lines(self) -> int:
        """Lines in the journal (after :meth:`read`)."""
        return self._next_seq - 1

    def close(self) -> None:
        """Close the file and release the lock this journal owns."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.lock is not None and self.owns_lock:
            self.lock.release()
            self.lock = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
