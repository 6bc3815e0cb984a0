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
