"""Helpers shared by ``measure``, ``density`` and ``profile``: read spatial arrays from a
store, check output paths, read and write feature tables (the files themselves are
``analysis.io``'s). Private (underscore): not a sub-command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    from analysis.errors import ChunkError
    from analysis.io import ZarrVolumeSource
    from analysis.volume import VolumeSource

TABLE_SUFFIXES = (".csv", ".parquet")


def read_spatial(
    source: VolumeSource,
    level: int,
    what: str,
    unreadable: list[ChunkError] | None = None,
) -> npt.NDArray[np.generic]:
    """Read a whole level as a (z, y, x) array; singleton t/c axes are dropped.

    Every chunk of an OME-Zarr level is checked (``ZarrVolumeSource.read_level``): a
    damaged one (corrupt, a folder in its place, unreadable) refuses with a
    ``ChunkError`` naming it, unless ``unreadable`` is given (``--allow-missing``): then
    it reads as the fill value and its error is appended there (see
    :func:`report_incomplete`). An absent chunk (a sparse store) is the fill value.
    """
    import numpy as np

    from analysis.errors import ParameterError
    from analysis.io import ZarrVolumeSource

    if not 0 <= level < len(source.levels):
        raise ParameterError(f"{what} has no level {level} (it has {len(source.levels)})")
    if isinstance(source, ZarrVolumeSource):
        data = read_level_checked(source, level, unreadable)
    else:
        data = np.asarray(source.read(level))
    extra = data.shape[:-3]
    if any(n != 1 for n in extra):
        raise ParameterError(
            f"{what} has axes {''.join(source.axes)} with shape {data.shape}; "
            "only single-time-point, single-channel volumes can be measured"
        )
    return data.reshape(data.shape[-3:])


def read_level_checked(
    source: ZarrVolumeSource, level: int, unreadable: list[ChunkError] | None
) -> npt.NDArray[np.generic]:
    """Level ``level`` of ``source``, every chunk checked (``ZarrVolumeSource.read_level``).

    A damaged chunk refuses with a ``ChunkError`` that says how to run anyway, unless
    ``unreadable`` is given (``--allow-missing``): then it reads as the fill value and
    its error is appended there.
    """
    from analysis.errors import ChunkError

    try:
        data, bad = source.read_level(level, allow_missing=unreadable is not None)
    except ChunkError as exc:
        raise ChunkError(
            f"{exc} (pass --allow-missing to count unreadable chunks as empty)", key=exc.key
        ) from exc
    if unreadable is not None:
        unreadable.extend(bad)
    return data


def add_allow_missing_option(p: argparse.ArgumentParser) -> None:
    """``--allow-missing``: run on a store with damaged chunks (as ``render`` has it)."""
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="run even when some chunks cannot be read (corrupt, a folder in place of a "
        "chunk file, no permission, a server error): they count as empty and the last "
        "line says how many. Default: refuse, exit 2. (Chunks never written, as in a "
        "sparse store, are empty either way.)",
    )


def unreadable_list(args: argparse.Namespace) -> list[ChunkError] | None:
    """Where :func:`read_spatial` collects damaged chunks: a list with ``--allow-missing``,
    else ``None`` (refuse at the first)."""
    return [] if getattr(args, "allow_missing", False) else None


def report_incomplete(unreadable: list[ChunkError] | None) -> None:
    """The last line of a command that ran on damaged chunks (``INCOMPLETE: ...``)."""
    if not unreadable:
        return
    import logging

    log = logging.getLogger("vrscope")
    for err in unreadable:
        log.warning("%s", err)
    print(
        f"INCOMPLETE: {len(unreadable)} chunk(s) unreadable, counted as empty "
        "(the warnings above name them)"
    )


def check_table_output(path: str, inputs: Sequence[str | None] = ()) -> Path:
    """Validate an output table path (.csv or .parquet, existing folder, not one of
    ``inputs`` nor inside one) before any work."""
    from analysis.errors import FormatError, ParameterError
    from analysis.io import check_output

    out = Path(path).expanduser()
    check_output(out, [i for i in inputs if i])
    if out.suffix.lower() not in TABLE_SUFFIXES:
        raise ParameterError(f"output {path!r} must end in .csv or .parquet")
    if not out.parent.is_dir():
        raise FormatError(f"output folder {out.parent} does not exist")
    return out


def write_table(table: pd.DataFrame, out: Path) -> None:
    """CSV or Parquet by suffix, through :func:`analysis.io.write_table`."""
    from analysis.io import write_table as io_write_table

    io_write_table(table, out)


def read_table(path: Path) -> pd.DataFrame:
    """A features table (CSV or Parquet), through :func:`analysis.io.read_table`."""
    from analysis.io import read_table as io_read_table

    return io_read_table(path)


def progress_enabled() -> bool:
    """Progress bars only on an interactive terminal (never in logs or pipes)."""
    import sys

    return sys.stderr.isatty()
