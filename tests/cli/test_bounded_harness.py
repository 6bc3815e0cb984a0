"""The bounded CLI runner (``tests/cli/_bounded.py``) measures the command's own peak
resident memory, not the test process's: a worker that holds a lot of memory when it
starts a case must not make a small command look big."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.cli._bounded import run_cli


def test_the_peak_memory_of_a_case_is_the_commands_own(tmp_path: Path) -> None:
    held = np.ones(700 * 2**20, np.uint8)  # 700 MB resident in this process (touched)
    assert held.sum() == held.size
    o = run_cli(["--version"], tmp_path)
    assert o.code == 0, o.err
    # ``vrscope --version`` imports little: well under the 700 MB this process holds
    # (the child's peak used to start at the resident size of the process it came from).
    assert 5 < o.max_rss_mb < 300, o.max_rss_mb
