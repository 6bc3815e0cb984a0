"""Files of a batch run (:mod:`analysis.batch`), written so that a unit is done or absent.

A worker may be killed at any instruction. Each unit's result is therefore written under a
temporary name beside its final place and renamed into place in one ``os.replace`` (atomic
on one file system): a reader either sees the whole result or nothing, so ``--resume`` never
takes a half-written unit as done. Leftover temporaries carry :data:`TMP_MARK` in their name
and are removed by :func:`remove_temporaries`.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.errors import FormatError

__all__ = [
    "TMP_MARK",
    "commit_folder",
    "list_done",
    "read_json",
    "read_part",
    "remove_folder",
    "remove_temporaries",
    "reset_folder",
    "write_part",
]

TMP_MARK = ".tmp-"
"""Part of every temporary name (``.<final name>.tmp-<random>``)."""


def _temporary_beside(final: Path) -> Path:
    return final.parent / f".{final.name}{TMP_MARK}{uuid.uuid4().hex[:12]}"


def commit_folder(final: str | os.PathLike[str], fill: Callable[[Path], Any]) -> Any:
    """Fill a temporary folder beside ``final`` with ``fill(folder)``, then rename it to
    ``final`` (replacing an older ``final``). Returns what ``fill`` returned."""
    out = Path(final)
    if not out.parent.is_dir():
        raise FormatError(f"output folder {out.parent} does not exist")
    tmp = _temporary_beside(out)
    try:
        result = fill(tmp)
        if out.exists():
            # os.replace cannot replace a non-empty folder: move the old one aside first.
            old = _temporary_beside(out)
            os.replace(out, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return result


def write_part(table: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write one unit's table as Parquet (floats kept bit for bit), atomically."""
    out = Path(path)
    tmp = _temporary_beside(out)
    try:
        table.to_parquet(tmp, index=False)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def read_part(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a table written by :func:`write_part`."""
    return pd.read_parquet(Path(path))


def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON content of ``path`` (None when it does not exist)."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"cannot read {p}: {exc}") from exc


def reset_folder(path: str | os.PathLike[str], *, keep: bool) -> Path:
    """Create the folder ``path``; when ``keep`` is False, empty it first."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise FormatError(f"{p} exists and is not a folder")
    if p.exists() and not keep:
        shutil.rmtree(p)
    p.mkdir(parents=False, exist_ok=True)
    return p


def remove_temporaries(folder: str | os.PathLike[str]) -> int:
    """Remove leftover temporaries (of killed workers) in ``folder``; returns how many."""
    p = Path(folder)
    if not p.is_dir():
        return 0
    n = 0
    for child in p.iterdir():
        if child.name.startswith(".") and TMP_MARK in child.name:
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
            n += 1
    return n


def remove_folder(path: str | os.PathLike[str]) -> None:
    """Remove a folder of parts once its run is complete."""
    shutil.rmtree(Path(path), ignore_errors=True)


def list_done(folder: str | os.PathLike[str]) -> set[str]:
    """Names of the finished units (files or folders, temporaries excluded) in ``folder``."""
    p = Path(folder)
    if not p.is_dir():
        return set()
    return {c.name for c in p.iterdir() if not c.name.startswith(".")}
