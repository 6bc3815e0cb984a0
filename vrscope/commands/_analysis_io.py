"""Helpers shared by ``measure``, ``density`` and ``profile``: read spatial arrays from a
store and write feature tables. Private (underscore): not a sub-command."""

from __future__ import annotations

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


def check_table_output(path: str) -> Path:
    """Validate an output table path (.csv or .parquet, existing folder) before any work."""
    from analysis.errors import FormatError, ParameterError

    out = Path(path).expanduser()
    if out.suffix.lower() not in TABLE_SUFFIXES:
        raise ParameterError(f"output {path!r} must end in .csv or .parquet")
    if not out.parent.is_dir():
        raise FormatError(f"output folder {out.parent} does not exist")
    return out


def write_table(table: pd.DataFrame, out: Path) -> None:
    if out.suffix.lower() == ".parquet":
        table.to_parquet(out, index=False)
    else:
        table.to_csv(out, index=False)


def read_table(path: Path) -> pd.DataFrame:
    import pandas as pd

    from analysis.errors import FormatError

    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (ValueError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise FormatError(f"cannot read table {path}: {exc}".splitlines()[0]) from exc


def progress_enabled() -> bool:
    """Progress bars only on an interactive terminal (never in logs or pipes)."""
    import sys

    return sys.stderr.isatty()
