"""SIGKILL during track and annotation edits loses no acknowledged edit (issue 21).

The label-stamp case is ``tests/cli/test_labels.py``; this one kills a process applying
markers, measurements, track cuts and undos through ``Project.history`` 10 times at
seeded random moments (``tests/cli/_sigkill.py``; the campaign runs 60) and reopens
the project after each kill: it opens, and holds every edit acknowledged before the
kill, checked against the writer's own log of what it acknowledged.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli._sigkill import kill_rounds, make_project


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_sigkills_during_track_and_annotation_edits_lose_nothing(tmp_path: Path, seed: int) -> None:
    make_project(tmp_path / "p")
    result = kill_rounds(tmp_path / "p", n=5, seed=seed)
    assert result.failures == []
    assert result.kills == result.clean == 5
    assert result.acknowledged >= 5
