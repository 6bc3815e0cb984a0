"""Outputs never destroy inputs: path checks and replace-when-complete writes.

Every command that writes a file or store calls :func:`check_output` with its inputs
before it opens anything for writing, and writes through :func:`replacing`: the new
output is built in a hidden sibling and takes the output's name only once it is
complete, so a failed or interrupted run leaves the old output (or nothing) in place,
never a half-written one, and ``--overwrite`` of an input cannot happen.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from analysis.errors import ParameterError

__all__ = ["check_output", "input_path", "replacing"]


def input_path(spec: str | os.PathLike[str]) -> Path | None:
    """The local file or folder an input spec reads, or None (a URL).

    Specs as the readers take them: a path, ``file.h5:dataset``, a glob such as
    ``'slices/*.png'`` (its folder). Symlinks are followed.
    """
    s = os.fspath(spec)
    if "://" in s:
        return None
    p = Path(s)
    if not p.exists() and ":" in s:
        head = s.rsplit(":", 1)[0]
        if Path(head).exists():
            p = Path(head)
    if any(c in p.name for c in "*?["):
        p = p.parent
    return p.resolve()


def check_output(output: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]]) -> Path:
    """``output`` resolved, after checking it is not, does not contain and does not lie
    inside any of ``inputs`` (:class:`ParameterError` naming both otherwise)."""
    out = Path(output).resolve()
    for spec in inputs:
        inp = input_path(spec)
        if inp is None:
            continue
        if out == inp:
            raise ParameterError(f"output {output} is the input {spec}: choose another output")
        if inp in out.parents:
            raise ParameterError(f"output {output} lies inside the input {spec}")
        if out in inp.parents:
            raise ParameterError(f"output {output} contains the input {spec}")
    return out


@contextlib.contextmanager
def replacing(output: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Write ``output`` (a file or a store folder) through a hidden sibling.

    Yields a path of the same name inside a hidden sibling folder (writers that derive
    names or suffixes from the path see the real ones); when the block ends without an
    exception it replaces ``output`` (an existing one is moved aside first and deleted
    only after the rename, so a crash in between leaves one of the two complete). On an
    exception the sibling is deleted and ``output`` is untouched.

    Raises
    ------
    ParameterError
        ``output`` exists and ``overwrite`` is False.
    """
    out = Path(output)
    if out.exists() and not overwrite:
        raise ParameterError(f"{out} already exists; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.vrscope-tmp-{os.getpid()}")
    _remove(tmp)
    tmp.mkdir()
    try:
        yield tmp / out.name
        new = tmp / out.name
        if not (new.exists() or new.is_symlink()):
            raise ParameterError(f"nothing was written to {out}")
        old = out.with_name(f".{out.name}.vrscope-old-{os.getpid()}")
        if out.exists() or out.is_symlink():
            _remove(old)
            os.replace(out, old)
        os.replace(new, out)
        _remove(old)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
