"""A damaged project journal from the command line: one line naming the line, then
`vrscope project repair` opens it at the last good edit and keeps a copy."""

from __future__ import annotations

from pathlib import Path

import pytest
from geff.core_io import read_to_memory

from analysis.edits import Cut
from analysis.project import Project
from analysis.tracks import TrackGraph
from vrscope.cli import main


def _run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_repair_a_journal_with_a_damaged_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "proj"
    g = TrackGraph.from_arrays([0, 1, 2, 3], [0, 1, 2, 3], [[0.0, 0.0, float(i)] for i in range(4)],
                               [[0, 1], [1, 2], [2, 3]])  # fmt: skip
    with Project.create(folder, tracks=g) as pr:
        for n in (1, 2, 3):
            pr.history.apply(Cut(n))
    path = folder / "journal.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b'"node":2', b'"node":7')  # a changed byte in the 2nd cut
    damaged = b"\n".join(lines)
    path.write_bytes(damaged)

    code, out, err = _run(capsys, "export", folder, "--tracks", tmp_path / "t.geff")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "line 3 is corrupt: checksum mismatch" in err and "vrscope project repair" in err
    assert path.read_bytes() == damaged and not (tmp_path / "t.geff").exists()

    code, out, err = _run(capsys, "project", "repair", folder)
    assert code == 0, err
    copies = list(folder.glob("journal.jsonl.damaged-*"))
    assert len(copies) == 1 and copies[0].read_bytes() == damaged
    assert "first 2 line(s)" in out and copies[0].name in out

    code, out, err = _run(capsys, "export", folder, "--tracks", tmp_path / "t.geff")
    assert code == 0, err
    # geff's own reader: only the first cut (1) survived the repair.
    edges = {tuple(int(v) for v in e) for e in read_to_memory(str(tmp_path / "t.geff"))["edge_ids"]}
    assert edges == {(1, 2), (2, 3)}

    code, out, err = _run(capsys, "project", "repair", folder)
    assert code == 0 and "nothing to repair" in out
