"""Options several commands share, so they read and behave the same everywhere."""

from __future__ import annotations

import argparse


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
        type=float,
        metavar="MB",
        help=f"{when}RAM budget of the brick cache (default: a quarter of RAM)",
    )


def cache_bytes(args: argparse.Namespace) -> int | None:
    """``--cache-mb`` in bytes (None: the default budget); a non-positive value is refused."""
    from analysis.errors import ParameterError

    if args.cache_mb is not None and args.cache_mb <= 0:
        raise ParameterError(f"--cache-mb must be positive, got {args.cache_mb}")
    return None if args.cache_mb is None else int(args.cache_mb * 2**20)
