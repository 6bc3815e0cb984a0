"""Shared fixtures: paths to the external test data and small synthetic cases."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# External data that nobody on this project made (../shared/testdata/README.md).
TESTDATA = Path(os.environ.get("VRSCOPE_TESTDATA", ROOT.parent / "shared" / "testdata")).resolve()


@pytest.fixture(scope="session")
def testdata() -> Path:
    """Root of the shared external test data; fails (not skips) when absent."""
    if not TESTDATA.is_dir():
        pytest.fail(f"external test data not found at {TESTDATA} (set VRSCOPE_TESTDATA)")
    return TESTDATA
