"""The slice views' level cache is keyed by the source object, not by ``id(src)``.

Reference: each source's own voxels (NumPy), whatever ids the interpreter reuses.
"""

from __future__ import annotations

import gc

import numpy as np

from analysis.volume import ArrayVolumeSource
from viewer.qt._slices import VolumeCache


def test_a_new_source_never_gets_a_collected_sources_voxels() -> None:
    cache = VolumeCache(budget_bytes=2**24)
    for i in range(5):
        a = ArrayVolumeSource(np.full((4, 4, 4), i, np.uint8))
        np.testing.assert_array_equal(cache.get(a, 0, 0), i)
        del a
        gc.collect()
        b = ArrayVolumeSource(np.full((4, 4, 4), 255 - i, np.uint8))
        # With id() as the key this returned the collected source's level.
        assert cache.peek(b, 0, 0) is None
        np.testing.assert_array_equal(cache.get(b, 0, 0), 255 - i)
        del b
    # What the cache holds belongs to live sources only.
    c = ArrayVolumeSource(np.zeros((4, 4, 4), np.uint8))
    cache.get(c, 0, 0)
    assert len(cache._arrays) == 1
