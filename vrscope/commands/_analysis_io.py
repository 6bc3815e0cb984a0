"""Helpers shared by ``measure``, ``density`` and ``profile``: read spatial arrays from a
store, check output paths, read and write feature tables (the files themselves are
``analysis.io``'s). Private (underscore): not a sub-command."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    from analysis.volume import VolumeSource

TABLE_SUFFIXES = (".csv", ".parquet")


def read_spatial(source: VolumeSource, level: int, what: str) -> npt.NDArray[np.generic]:
    """Read a whole level as a (z, y, x) array; singleton t/c axes are dropped."""
    import numpy as np

    from analysis.errors import ParameterError

    if not 0 <= level < len(source.levels):
        raise ParameterError(f"{what} has no level {level} (it has {len(source.levels)})")
    data = np.asarray(source.read(level))
    extra = data.shape[:-3]
    if any(n != 1 for n in extra):
        raise ParameterError(
            f"{what} has axes {''.join(source.axes)} with shape {data.shape}; "
            "only single-time-point, single-channel volumes can be measured"
        )
    return data.reshape(data.shape[-3:])


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
