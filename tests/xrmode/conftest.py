"""Fixtures of the XR tests: a small sample store and track graph, and headless Monado."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from analysis.io import write_geff
from xrmode.testing import MonadoRuntime, MonadoService, find_monado, install_monado

#: Sample geometry: a ball of radius 5 µm in a 16 µm cube (32^3 voxels of 0.5 µm).
BALL_CENTRE_UM = (8.0, 8.0, 8.0)
BALL_RADIUS_UM = 5.0


@pytest.fixture(scope="session")
def ball_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from analysis.io import write_ngff

    z, y, x = np.mgrid[:32, :32, :32] * 0.5 + 0.0
    c = np.asarray(BALL_CENTRE_UM)
    inside = (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 < BALL_RADIUS_UM**2
    path = tmp_path_factory.mktemp("xr") / "ball.zarr"
    write_ngff((inside * 200).astype(np.uint8), path, scale_um=(0.5, 0.5, 0.5))
    return path


@pytest.fixture(scope="session")
def line_track(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One track of five nodes (ids 0..4, t 0..4) along x at z = y = 8 µm."""
    from analysis.tracks import TrackGraph

    ids = np.arange(5)
    zyx = np.c_[np.full(5, 8.0), np.full(5, 8.0), 2.0 + 3.0 * ids]
    g = TrackGraph.from_arrays(ids, ids, zyx, [[0, 1], [1, 2], [2, 3], [3, 4]])
    path = tmp_path_factory.mktemp("xr") / "line.geff"
    write_geff(g, path)
    return path


def free_port() -> int:
    """A TCP port nobody listens on now. Each service gets its own remote-driver port:
    pytest-xdist workers, and other test runs on the same machine, run their own
    services (a fixed port let one run's rig drive another run's service)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def monado(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonadoRuntime]:
    """A running headless ``monado-service`` with the remote driver (installed if needed)."""
    root = find_monado()
    if root is None:
        try:
            root = install_monado()
        except Exception as exc:  # the install needs the Debian mirror
            pytest.fail(f"Monado is not installed and scripts/monado.sh failed: {exc}")
    rt = MonadoRuntime(root, tmp_path_factory.mktemp("monado"), remote_port=free_port())
    with MonadoService(rt) as svc:
        yield rt
        assert svc.alive, f"monado-service died during the tests:\n{svc.tail()}"
