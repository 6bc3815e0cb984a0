"""Options several commands share, so they read and behave the same everywhere."""

from __future__ import annotations

import argparse
import functools
import math
import os
from collections.abc import Callable


def add_store_layout_options(p: argparse.ArgumentParser) -> None:
    """``--ngff 0.4|0.5`` and ``--chunks Z Y X`` for commands that write OME-Zarr."""
    p.add_argument(
        "--ngff",
        choices=("0.4", "0.5"),
        default="0.5",
        help="NGFF version: 0.5 (zarr v3) or 0.4 (zarr v2) (default: %(default)s)",
    )
    p.add_argument(
        "--chunks",
        nargs=3,
        type=int,
        metavar=("Z", "Y", "X"),
        help="chunk shape of every level (default: 64 64 64)",
    )


def _looks_like_store(value: str) -> bool:
    from pathlib import Path

    return "://" in value or value.rstrip("/").endswith(".zarr") or Path(value).is_dir()


def check_inputs_exist(*paths: str | None) -> None:
    """Refuse a local input that is not there before anything heavy is imported.

    Importing the readers and the renderer costs seconds; a mistyped path should cost
    none of them (issue 18.15). URLs are left to the readers. The error is the one
    opening the path would raise (``No such file or directory: PATH``).
    """
    for p in paths:
        if p and "://" not in p and not os.path.exists(os.path.expanduser(p)):
            raise FileNotFoundError(2, "No such file or directory", p)


def check_store_exists(path: str | None) -> None:
    """Refuse a local store that is not there before anything heavy is imported, with the
    message opening it would give (``path does not exist: PATH``; issue 18.15); and one
    whose NGFF metadata the reader would refuse (absurd scales, dataset paths leaving
    the store, truncated JSON: ``analysis.io.check_local_metadata``, on the plain JSON,
    before zarr and NumPy are imported; issue 21)."""
    if not path or "://" in path.removeprefix("file://"):
        return
    if not os.path.exists(os.path.expanduser(path.removeprefix("file://"))):
        from analysis.errors import FormatError

        raise FormatError(f"path does not exist: {path}")
    from analysis.io import check_local_metadata

    check_local_metadata(path)


def check_project_exists(folder: str) -> None:
    """Refuse a project folder that is not there before anything heavy is imported
    (the message ``Project.open`` gives; issue 18.15)."""
    from analysis.errors import FormatError

    p = os.path.expanduser(folder)
    if not os.path.isdir(p):
        raise FormatError(f"project folder {p} does not exist")


def recover_store_from_labels(args: argparse.Namespace) -> None:
    """Repair ``--labels NAME STORE.zarr`` (store after the names).

    ``--labels`` takes any number of names, so argparse gives it the store path too
    when the store comes last. A name that is a URL, ends in ``.zarr`` or is an
    existing folder is the store (label image names are neither); it is moved back.
    """
    labels = getattr(args, "labels", None)
    if getattr(args, "store", None) is not None or not labels:
        return
    if _looks_like_store(labels[-1]):
        args.store = labels[-1]
        args.labels = labels[:-1]


def add_cache_option(p: argparse.ArgumentParser, when: str = "") -> None:
    """``--cache-mb MB``: RAM budget of the streamed brick cache (``when``: a help prefix)."""
    p.add_argument(
        "--cache-mb",
        type=positive_float,
        metavar="MB",
        help=f"{when}RAM budget of the brick cache (default: a quarter of RAM)",
    )


def add_remote_timeout_option(p: argparse.ArgumentParser) -> None:
    """``--remote-timeout S``: a total deadline for the command's remote (http) reads."""
    p.add_argument(
        "--remote-timeout",
        type=positive_float,
        default=300.0,
        metavar="S",
        help="longest time for all the remote (http) reads of this command together, "
        "retries included; past it the command stops with an error (default: %(default)s)",
    )


def remote_run(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``run`` with the total deadline of ``--remote-timeout`` (see
    :func:`add_remote_timeout_option`) over all its remote reads (``analysis.io.
    remote_deadline``): past it, one line naming the limit and the URL, exit 2."""

    @functools.wraps(run)
    def run_within_deadline(args: argparse.Namespace) -> int:
        from analysis.io import remote_deadline

        with remote_deadline(args.remote_timeout):
            return run(args)

    return run_within_deadline


def cache_bytes(args: argparse.Namespace) -> int | None:
    """``--cache-mb`` in bytes (None: the default budget; the option's type refuses <= 0)."""
    return None if args.cache_mb is None else int(args.cache_mb * 2**20)


# -- argparse types: a bad number is a one-line usage error before any work (issue 21) --


def finite_float(text: str) -> float:
    """A float that is neither NaN nor infinite (every ``type=float`` option gets this:
    ``vrscope.cli`` swaps it in)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return v


def positive_float(text: str) -> float:
    """A finite float > 0 (sizes, durations, budgets, zoom factors)."""
    v = finite_float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return v


def nonnegative_float(text: str) -> float:
    """A finite float >= 0 (lengths where 0 means "none" or "no limit")."""
    v = finite_float(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return v


def int_range(lo: int, hi: int) -> Callable[[str], int]:
    """An integer from ``lo`` to ``hi`` (worker, frame and batch counts)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{text} is outside {lo}..{hi}")
        return v

    parse.__name__ = f"integer {lo}..{hi}"
    return parse
