"""Test helpers for OME-Zarr I/O: a loopback HTTP server and a key-recording zarr store."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import zarr
import zarr.storage
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.writer import write_image
from ome_zarr.writer import write_labels as omz_write_labels


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_directory(root: Path) -> Iterator[tuple[str, list[str]]]:
    """Serve ``root`` over http on a loopback port; yield (base URL, requested paths)."""
    requests: list[str] = []

    class Handler(_QuietHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

        def do_HEAD(self) -> None:
            requests.append(self.path)
            super().do_HEAD()

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class RecordingStore(zarr.storage.WrapperStore[zarr.storage.LocalStore]):
    """A zarr store that records every key read, to prove what a reader touches."""

    def __init__(self, store: zarr.storage.LocalStore) -> None:
        super().__init__(store)
        self.keys: list[str] = []

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        self.keys.append(key)
        return await super().get(key, prototype, byte_range)

    def chunk_keys(self) -> list[str]:
        meta = (".zarray", ".zattrs", ".zgroup", "zarr.json", ".zmetadata")
        return [k for k in self.keys if not k.endswith(meta)]


def write_with_ome_zarr(
    path: Path,
    data: np.ndarray,
    *,
    version: str,
    axes: str = "zyx",
    scale: dict[str, float] | None = None,
    units: dict[str, str] | None = None,
    labels: dict[str, np.ndarray] | None = None,
    chunks: tuple[int, ...] | None = None,
) -> Path:
    """Write ``data`` (and labels) with ome-zarr-py's own writer: the independent reference."""
    fmt = FormatV04() if version == "0.4" else FormatV05()
    group = zarr.open_group(str(path), mode="w", zarr_format=fmt.zarr_format)
    options = {"chunks": chunks} if chunks else None
    write_image(
        data,
        group,
        fmt=fmt,
        axes=axes,
        scale=scale,
        axes_units=units,
        scale_factors=(2, 4),
        storage_options=options,
    )
    for name, lab in (labels or {}).items():
        omz_write_labels(
            lab, group, name=name, fmt=fmt, axes=axes, scaler=None, scale_factors=(2, 4)
        )
    return path
