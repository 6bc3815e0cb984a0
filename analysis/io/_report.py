"""Writing a report folder: tables (CSV), ``summary.json``, PNGs and an HTML page.

:mod:`analysis.report` renders everything in memory (:class:`ReportFiles`-like plain
data); this module only puts it on disk, so the report package never touches files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from analysis.errors import FormatError, ParameterError

__all__ = ["write_report_folder"]

log = logging.getLogger(__name__)


def _safe_name(name: str) -> str:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ParameterError(f"report file name {name!r} must be a plain file name")
    return name


def write_report_folder(
    out_dir: str | os.PathLike[str],
    *,
    tables: Mapping[str, pd.DataFrame],
    texts: Mapping[str, str],
    images: Mapping[str, bytes],
) -> Path:
    """Create ``out_dir`` (its parent must exist) and write the report's files into it.

    Parameters
    ----------
    out_dir : path-like
    tables : mapping name -> DataFrame
        Written as ``<name>.csv`` without the index.
    texts : mapping file name -> str
        Written as UTF-8 (``summary.json``, ``report.html``).
    images : mapping name -> PNG bytes
        Written as ``<name>.png``.

    Returns
    -------
    The folder.
    """
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise FormatError(f"report output {out} exists and is not a folder")
    if not out.parent.is_dir():
        raise FormatError(f"report output folder {out.parent} does not exist")
    out.mkdir(exist_ok=True)
    for name, table in tables.items():
        table.to_csv(out / f"{_safe_name(name)}.csv", index=False)
    for name, png in images.items():
        (out / f"{_safe_name(name)}.png").write_bytes(png)
    for name, text in texts.items():
        (out / _safe_name(name)).write_text(text, encoding="utf-8")
    log.info("report folder written to %s", out)
    return out
