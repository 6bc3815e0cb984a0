"""A standalone EGL context (moderngl) for the ray-casting tests; llvmpipe here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def ctx() -> Iterator[Any]:
    from viewer.raycast import release_standalone_context, standalone_context

    c = standalone_context()
    yield c
    release_standalone_context(c)
