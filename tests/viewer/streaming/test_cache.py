"""The brick cache never exceeds its byte budget and evicts least recently used first."""

from __future__ import annotations

import numpy as np
import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.errors import ParameterError
from viewer.streaming import BrickCache, TextureBudget, default_cache_bytes

ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 20), st.integers(1, 400)),
        st.tuples(st.just("get"), st.integers(0, 20), st.just(0)),
        st.tuples(st.just("touch"), st.integers(0, 20), st.just(0)),
    ),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(budget=st.integers(1, 1500), ops=ops)
def test_budget_is_never_exceeded_and_order_is_lru(budget: int, ops: list) -> None:
    cache = BrickCache(budget)
    model: list[tuple[int, int]] = []  # reference LRU: (key, size), oldest first
    for op, key, size in ops:
        if op == "put":
            evicted = cache.put(key, np.zeros(size, np.uint8))
            if size <= budget:
                model = [(k, s) for k, s in model if k != key]
                expect = []
                while sum(s for _, s in model) + size > budget:
                    expect.append(model.pop(0)[0])
                model.append((key, size))
                assert evicted == expect
            else:
                assert evicted == []
        elif op == "get":
            got = cache.get(key)
            idx = [i for i, (k, _) in enumerate(model) if k == key]
            assert (got is not None) == bool(idx)
            if idx:
                model.append(model.pop(idx[0]))
        else:
            cache.touch([key])
            idx = [i for i, (k, _) in enumerate(model) if k == key]
            if idx:
                model.append(model.pop(idx[0]))
        assert cache.nbytes <= budget
        assert cache.nbytes == sum(s for _, s in model)
        assert list(cache) == [k for k, _ in model]
        keys = np.arange(-2, 23, dtype=np.int64)
        assert cache.contains_array(keys).tolist() == [int(k) in dict(model) for k in keys]


def test_default_budget_is_a_fraction_of_ram() -> None:
    total = None
    with open("/proc/meminfo") as f:  # independent of psutil
        for line in f:
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * 1024
    assert total is not None
    assert default_cache_bytes(0.25) == pytest.approx(total * 0.25, rel=1e-3)
    assert BrickCache().budget_bytes == default_cache_bytes()
    assert psutil.virtual_memory().total == pytest.approx(total, rel=1e-3)
    with pytest.raises(ParameterError):
        default_cache_bytes(0.0)
    with pytest.raises(ParameterError):
        BrickCache(0)


def test_texture_budget_accounts_uploaded_bytes() -> None:
    tb = TextureBudget(1000)
    tb.set({1: 400, 2: 500})
    assert tb.used == 900 and not tb.over_budget and len(tb) == 2
    tb.set({1: 400, 2: 500, 3: 200})
    assert tb.over_budget
    with pytest.raises(ParameterError):
        TextureBudget(0)


def test_bricks_in_use_get_a_second_chance_before_eviction() -> None:
    # Reference: the CLOCK ("second chance") rule written out on a list.
    cache = BrickCache(4)
    for k in range(4):
        cache.put(k, np.zeros(1, np.uint8))
    in_use = {0, 1}
    evicted = cache.put(9, np.zeros(2, np.uint8), in_use=lambda k: k in in_use)
    # 0 and 1 (oldest) are drawn: they move to the young end; 2 and 3 go instead.
    assert evicted == [2, 3]
    assert list(cache) == [0, 1, 9]
    # When everything is in use, one pass of second chances, then the oldest goes.
    in_use = {0, 1, 9}
    assert cache.put(5, np.zeros(1, np.uint8), in_use=lambda k: k in in_use) == [0]
    assert cache.nbytes <= cache.budget_bytes


batches = st.lists(
    st.lists(st.tuples(st.integers(0, 30), st.integers(1, 300)), max_size=12), max_size=12
)


@settings(max_examples=200, deadline=None)
@given(budget=st.integers(1, 1500), batches=batches, drawn=st.sets(st.integers(0, 30)))
def test_put_many_equals_one_put_after_another(
    budget: int, batches: list[list[tuple[int, int]]], drawn: set[int]
) -> None:
    # Reference: the sequential put() with a scalar in_use (second chances included);
    # batches may repeat keys, re-put held keys and hold bricks larger than the budget.
    ref, fast = BrickCache(budget), BrickCache(budget)

    def in_use_many(keys: np.ndarray) -> np.ndarray:
        return np.isin(keys, sorted(drawn))

    for batch in batches:
        arrays = [np.zeros(size, np.uint8) for _, size in batch]
        keys = [k for k, _ in batch]
        expect = []
        for k, a in zip(keys, arrays, strict=True):
            expect += ref.put(k, a, in_use=lambda k: k in drawn)
        assert fast.put_many(keys, arrays, in_use=in_use_many) == expect
        assert list(fast) == list(ref)
        assert fast.nbytes == ref.nbytes <= budget
        assert fast.evictions == ref.evictions
        assert all(fast.peek(k) is ref.peek(k) for k in ref)
