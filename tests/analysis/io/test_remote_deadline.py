"""A total deadline for the remote reads of a command (issue 21, "bounded remote I/O").

Each request has its own timeouts and retries; a server that answers every request
slowly, each well within those limits, kept a command reading for as long as it had
requests to make. Within :func:`analysis.io.remote_deadline` (``--remote-timeout`` of
``vrscope info`` and ``vrscope render``) all the remote reads together end at the
deadline, with one line naming it. The loopback fault server of test_remote_caps
answers correctly, each answer :data:`SLOW_S` late.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis.io import RemoteDeadlineExceeded, open_volume, remote_deadline
from tests.analysis.io.test_remote_caps import SLOW_S, _data, _one_line, _store, fault_server


def test_slow_metadata_answers_meet_the_total_deadline(tmp_path: Path) -> None:
    _store(tmp_path)
    with fault_server(tmp_path, "", "slow") as server:
        # Opening reads several documents, each SLOW_S late: more than 1.5 SLOW_S in all.
        with pytest.raises(RemoteDeadlineExceeded) as info, remote_deadline(1.5 * SLOW_S):
            open_volume(f"{server.url}/s.zarr")
        msg = str(info.value)
        _one_line(msg)
        assert f"{0.75:g} s in all (--remote-timeout)" in msg and server.url in msg, msg
        # Without a deadline (or a long one) the same slow server is read whole.
        with remote_deadline(600.0):
            src = open_volume(f"{server.url}/s.zarr")
            got, bad = src.read_level(0)
    assert bad == []
    np.testing.assert_array_equal(got, _data())


def test_a_slow_chunk_meets_the_deadline_even_when_missing_chunks_are_allowed(
    tmp_path: Path,
) -> None:
    """A chunk whose read met the deadline is not taken for a missing chunk: the
    block still ends with the deadline's error (the slow chunk alone takes twice the
    deadline)."""
    _store(tmp_path)
    with fault_server(tmp_path, "/s.zarr/s0/c/1/0/2", "slow") as server:
        src = open_volume(f"{server.url}/s.zarr")
        with pytest.raises(RemoteDeadlineExceeded) as info, remote_deadline(0.5 * SLOW_S):
            src.read_level(0, allow_missing=True)
        # Without the deadline, the slow chunk is read like the others.
        got, bad = src.read_level(0)
    _one_line(str(info.value))
    assert f"{server.url}/s.zarr/s0/c/" in str(info.value)
    assert bad == []
    np.testing.assert_array_equal(got, _data())


@pytest.mark.parametrize("seconds", [0.0, -1.0, float("nan"), float("inf")])
def test_a_deadline_must_be_finite_and_positive(seconds: float) -> None:
    with pytest.raises(ValueError, match="finite and > 0"), remote_deadline(seconds):
        pass


def test_a_read_of_an_earlier_block_does_not_speak_for_a_later_one() -> None:
    """A request left running by earlier work (its block ended) meets its deadline inside
    a later block: the later block reports its own request, or nothing when none of its
    own failed (CI once named the earlier test's server)."""
    from analysis.io._deadline import current_block, exceeded

    with remote_deadline(60.0):
        earlier = current_block()
    assert earlier is not None and current_block() is None
    with pytest.raises(RemoteDeadlineExceeded) as info, remote_deadline(60.0):
        exceeded("http://127.0.0.1:1/earlier.zarr/.zattrs", earlier)
        mine = current_block()
        assert mine is not None and mine is not earlier
        raise exceeded("http://127.0.0.1:2/mine.zarr/.zattrs", mine)
    assert "mine.zarr" in str(info.value), str(info.value)
    # The caller made something else of its own failed read: that is what it sees.
    with pytest.raises(KeyError), remote_deadline(60.0):
        exceeded("http://127.0.0.1:1/earlier.zarr/0.0.0", earlier)
        raise KeyError("a missing chunk")
    # A block whose own reads all ended well ends well.
    with remote_deadline(60.0):
        exceeded("http://127.0.0.1:1/earlier.zarr/0.0.1", earlier)
