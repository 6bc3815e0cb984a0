"""Feature tables on disk: CSV and Parquet (pandas), chosen by the file suffix."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from analysis.errors import FormatError, ParameterError

__all__ = ["TABLE_SUFFIXES", "read_table", "write_table"]

TABLE_SUFFIXES = (".csv", ".parquet")


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ParameterError(f"table file {str(path)!r} must end in .csv or .parquet")
    return suffix


def write_table(table: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``table`` without its index as CSV or Parquet (by ``path``'s suffix)."""
    out = Path(path).expanduser()
    suffix = _suffix(out)
    if not out.parent.is_dir():
        raise FormatError(f"output folder {out.parent} does not exist")
    if suffix == ".parquet":
        table.to_parquet(out, index=False)
    else:
        table.to_csv(out, index=False)
    return out


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV or Parquet table; unreadable content raises :class:`FormatError`."""
    p = Path(path).expanduser()
    suffix = _suffix(p)
    try:
        if suffix == ".parquet":
            return pd.read_parquet(p)
        return pd.read_csv(p)
    except (ValueError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise FormatError(f"cannot read table {p}: {exc}".splitlines()[0]) from exc
