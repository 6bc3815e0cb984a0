"""Shared fixtures: paths to the external test data and small synthetic cases."""

from __future__ import annotations

from pathlib import Path

import pytest

# External data that nobody on this project made (../shared/testdata/README.md).
from tests._testdata import ROOT, TESTDATA  # noqa: F401  (ROOT is re-exported)


@pytest.fixture(scope="session")
def testdata() -> Path:
    """Root of the shared external test data; fails (not skips) when absent."""
    if not TESTDATA.is_dir():
        pytest.fail(f"external test data not found at {TESTDATA} (set VRSCOPE_TESTDATA)")
    return TESTDATA
