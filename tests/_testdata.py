"""Where the external test data lives (``../shared/testdata`` next to the checkout).

``VRSCOPE_TESTDATA`` wins when set. Otherwise the first ``shared/testdata`` found
next to the checkout or next to one of its parent folders is used, so a clean clone
placed anywhere under the workspace finds the same data. Last, the workspace's own
``/work/shared/testdata`` is tried, for a clone made outside the workspace (CI may
clone into a temporary folder).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKSPACE_TESTDATA = Path("/work/shared/testdata")


def find_testdata() -> Path:
    """The external test data folder (it may not exist; callers fail with a clear message)."""
    env = os.environ.get("VRSCOPE_TESTDATA")
    if env:
        return Path(env).resolve()
    candidates = [parent / "shared" / "testdata" for parent in ROOT.parents]
    candidates.append(WORKSPACE_TESTDATA)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    return (ROOT.parent / "shared" / "testdata").resolve()


TESTDATA = find_testdata()
