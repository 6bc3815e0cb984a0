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
