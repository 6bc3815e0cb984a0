"""Journal integrity: sequence numbers and checksums, torn tails at every byte, flipped
bits, failed appends (disk full), rollback to the last good edit, old journals."""

from __future__ import annotations

import errno
import json
import logging
import zlib
from pathlib import Path

import numpy as np
import pytest

from analysis.edits import Cut, History, Journal, JournalCorruptError, Merge
from analysis.edits import _journal as journal_module
from analysis.errors import FormatError, InvalidEditError
from analysis.tracks import TrackGraph, random_lineages


def small() -> TrackGraph:
    return random_lineages(120, track_length=10, division_fraction=0.5, seed=3)


def same(a: TrackGraph, b: TrackGraph) -> bool:
    sa, sb = a.snapshot(), b.snapshot()
    return sa.keys() == sb.keys() and all(np.array_equal(sa[k], sb[k]) for k in sa)


def cuttable(g: TrackGraph, k: int) -> list[int]:
    return [int(i) for i in g.node_ids if g.parent(int(i)) is not None][:k]


def three_cuts(folder: Path) -> tuple[list[int], list[TrackGraph]]:
    """A journal of open + 3 cuts; the graph after 0, 1, 2 and 3 cuts (references made
    by cutting copies directly, not through the journal)."""
    g = small()
    cuts = cuttable(g, 3)
    states = [g.copy()]
    ref = g.copy()
    for n in cuts:
        ref.remove_edge(int(ref.parent(n)), n)  # type: ignore[arg-type]
        states.append(ref.copy())
    h = History.open(folder, g)
    for n in cuts:
        h.apply(Cut(n))
    h.close()
    return cuts, states


def test_every_line_has_its_line_number_and_a_crc32_of_its_bytes(tmp_path: Path) -> None:
    three_cuts(tmp_path)
    lines = (tmp_path / "journal.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 5
    for n, line in enumerate(lines[:-1], start=1):
        rec = json.loads(line)
        assert rec["seq"] == n and rec["v"] == 2
        # The crc is the last field; it covers the line as if it were not there.
        body = line[: line.rindex(b',"crc":')] + b"}"
        assert rec["crc"] == f"{zlib.crc32(body):08x}"
        assert "crc" not in json.loads(body)


def test_truncated_at_every_byte_of_the_last_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cuts, states = three_cuts(tmp_path)
    path = tmp_path / "journal.jsonl"
    full = path.read_bytes()
    start = full.rindex(b"\n", 0, len(full) - 1) + 1  # first byte of the last line
    for end in range(start, len(full)):
        path.write_bytes(full[:end])
        g = states[0].copy()
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            h = History.open(tmp_path, g)
        h.close()
        if end == start:
            assert same(g, states[2]) and "torn" not in caplog.text
        elif end == len(full) - 1:
            # Every byte but the newline: the checksum proves the line whole; kept.
            assert same(g, states[3]), end
            assert "lacked its newline" in caplog.text
            assert path.read_bytes() == full
        else:
            # The unacknowledged last edit is dropped, saying how many bytes; the file is
            # cut back to whole lines, so the next append is clean.
            assert same(g, states[2]), end
            assert f"torn last line ({end - start} bytes after line 3" in caplog.text
            assert path.read_bytes() == full[:start]


@pytest.mark.parametrize("line_no", [2, 3, 4])
def test_every_flipped_bit_is_found(tmp_path: Path, line_no: int) -> None:
    """CRC-32 finds every single-bit error; a flip is never silently skipped: it is an
    error naming the line, or (the last line's newline) repaired with the line kept."""
    three_cuts(tmp_path)
    path = tmp_path / "journal.jsonl"
    full = path.read_bytes()
    bounds = [0] + [i + 1 for i, b in enumerate(full) if b == 0x0A]
    start, stop = bounds[line_no - 1], bounds[line_no]
    for pos in range(start, stop):
        for bit in range(8):
            damaged = bytearray(full)
            damaged[pos] ^= 1 << bit
            path.write_bytes(bytes(damaged))
            j = Journal(path)
            if line_no == 4 and pos == stop - 1:
                recs = j.read(repair_tail=False)
                assert len(recs) == 4 and recs[-1]["seq"] == 4
                continue
            with pytest.raises(JournalCorruptError) as info:
                j.read()
            assert info.value.line == line_no, (pos, bit)
            assert f"line {line_no} is corrupt" in str(info.value)
            assert path.read_bytes() == bytes(damaged)  # nothing was cut


def test_a_line_of_another_writer_breaks_the_sequence(tmp_path: Path) -> None:
    three_cuts(tmp_path)
    path = tmp_path / "journal.jsonl"
    lines = path.read_bytes().split(b"\n")
    # Two writers each appended "their" line 4: a whole, checksummed line, out of sequence.
    path.write_bytes(b"\n".join([*lines[:4], lines[3], b""]))
    with pytest.raises(JournalCorruptError, match="line 5 is corrupt: sequence number 4"):
        Journal(path).read()


def test_disk_full_mid_record_leaves_whole_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The campaign's disk-full: a failed append left half a line, the next one glued onto
    it and the project never opened again. Now the half line is cut off before the error."""
    g = small()
    start = g.copy()
    a, b, c = cuttable(g, 3)
    h = History.open(tmp_path, g)
    h.apply(Cut(a))
    path = tmp_path / "journal.jsonl"
    before = path.read_bytes()
    real_write = journal_module.os.write

    def half_then_enospc(fd: int, data: bytes | memoryview) -> int:
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal_module.os, "write", half_then_enospc)
    with pytest.raises(OSError, match="No space"):
        h.apply(Cut(b))
    assert path.read_bytes() == before
    assert g.parent(b) is not None  # rolled back in memory too
    monkeypatch.setattr(journal_module.os, "write", real_write)  # space again
    h.apply(Cut(c))
    h.close()
    g2 = start.copy()
    History.open(tmp_path, g2).close()
    ref = start.copy()
    for n in (a, c):
        ref.remove_edge(int(ref.parent(n)), n)  # type: ignore[arg-type]
    assert same(g2, ref)


def test_corrupt_line_rolls_back_to_the_last_good_edit_keeping_a_copy(tmp_path: Path) -> None:
    cuts, states = three_cuts(tmp_path)
    path = tmp_path / "journal.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b'"cut"', b'"cux"')  # line 3: the second cut
    damaged = b"\n".join(lines)
    path.write_bytes(damaged)
    with pytest.raises(JournalCorruptError, match="line 3 is corrupt: checksum mismatch"):
        History.open(tmp_path, states[0].copy())
    assert path.read_bytes() == damaged  # a refused open changes nothing

    g = states[0].copy()
    h = History.open(tmp_path, g, repair=True)
    assert same(g, states[1])
    copies = list(tmp_path.glob("journal.jsonl.damaged-*"))
    assert len(copies) == 1 and copies[0].read_bytes() == damaged
    assert path.read_bytes() == b"\n".join(lines[:2]) + b"\n"
    h.apply(Cut(cuts[2]))  # continues with line 3
    h.close()
    assert json.loads(path.read_bytes().split(b"\n")[2])["seq"] == 3
    g2 = states[0].copy()
    History.open(tmp_path, g2).close()
    ref = states[1].copy()
    ref.remove_edge(int(ref.parent(cuts[2])), cuts[2])  # type: ignore[arg-type]
    assert same(g2, ref)


def test_unreplayable_edit_rolls_back_with_repair(tmp_path: Path) -> None:
    g = small()
    start = g.copy()
    (a,) = cuttable(g, 1)
    h = History.open(tmp_path, g)
    h.apply(Cut(a))
    assert h.journal is not None
    # A whole, checksummed line that cannot be replayed (a node that does not exist).
    h.journal.append({"op": "apply", "cmd": {"kind": "cut", "v": 1, "args": {"node": 10**9}}})
    h.close()
    with pytest.raises(FormatError, match="line 3 cannot be replayed"):
        History.open(tmp_path, start.copy())
    g2 = start.copy()
    History.open(tmp_path, g2, repair=True).close()
    assert g2.parent(a) is None and g2.n_edges == start.n_edges - 1
    assert len(Journal(tmp_path / "journal.jsonl").read()) == 2
    assert len(list(tmp_path.glob("journal.jsonl.damaged-*"))) == 1


def test_journal_without_sequence_numbers_still_opens_and_continues(tmp_path: Path) -> None:
    """A journal written before v2 (the old format, byte for byte: no seq, no crc)."""
    g = small()
    start = g.copy()
    a, b, c = cuttable(g, 3)
    old = [
        {"v": 1, "op": "open", "target": g.fingerprint()},
        {"v": 1, "op": "apply", "cmd": {"kind": "cut", "v": 1, "args": {"node": a}}},
        {"v": 1, "op": "apply", "cmd": {"kind": "cut", "v": 1, "args": {"node": b}}},
        {"v": 1, "op": "undo"},
    ]
    path = tmp_path / "journal.jsonl"
    path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in old))
    h = History.open(tmp_path, g)
    assert g.parent(a) is None and g.parent(b) is not None and h.can_redo
    h.apply(Merge(int(start.parent(a)), a))  # type: ignore[arg-type]
    h.apply(Cut(c))
    h.close()
    recs = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r.get("seq") for r in recs] == [None, None, None, None, 5, 6]
    g2 = start.copy()
    History.open(tmp_path, g2).close()
    ref = start.copy()
    ref.remove_edge(int(ref.parent(c)), c)  # type: ignore[arg-type]
    assert same(g2, ref)
    # An unchecksummed line after checksummed ones is not the old format: corruption.
    with path.open("a") as fh:
        fh.write(json.dumps(old[3]) + "\n")
    with pytest.raises(JournalCorruptError, match="line 7 is corrupt: an unchecksummed line"):
        Journal(path).read()


def test_read_only_open_changes_nothing(tmp_path: Path) -> None:
    cuts, states = three_cuts(tmp_path)
    path = tmp_path / "journal.jsonl"
    torn = path.read_bytes()[:-5]
    path.write_bytes(torn)
    g = states[0].copy()
    h = History.open(tmp_path, g, read_only=True)
    assert same(g, states[2]) and h.read_only
    with pytest.raises(InvalidEditError, match="read-only"):
        h.undo()
    h.close()
    assert path.read_bytes() == torn
