"""``vrscope tracks convert|stats``: convert tracks between GEFF, CTC and CSV; motion statistics.

Formats are chosen by path: a folder holding ``res_track.txt`` / ``man_track.txt``
is CTC; ``*.csv`` is a spots table (its edges in ``*_edges.csv``); anything else
(``*.geff``, ``*.zarr``) is GEFF. For output, a path without one of those
suffixes is a CTC folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vrscope.commands._analysis_io import add_allow_missing_option

ORDER = 61

_EPILOG = """\
formats (chosen by path)
  tracks.geff, store.zarr[/tracks]   GEFF (zarr v2 or v3; GEFF 0.2 and later)
  spots.csv (+ spots_edges.csv)      TrackMate-like CSV tables
  folder/ with res_track.txt         Cell Tracking Challenge (track file + mask TIFFs);
                                     CTC output needs masks: from CTC input (carried over)
                                     or --labels STORE.zarr:NAME, the (t, [z,] y, x) label
                                     image the nodes' 'label' values refer to

examples
  vrscope tracks convert mouse.zarr mouse_spots.csv
  vrscope tracks convert ctc/res tracks.geff
  vrscope tracks convert nuclei.zarr/tracks ctc_res --labels nuclei.zarr:nuclei
  vrscope tracks stats tracks.geff --out stats.csv --msd msd.csv --frame-interval 300
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "tracks",
        help="convert tracks between GEFF, CTC and CSV, or compute track statistics",
        description="Work with cell tracks stored as GEFF, Cell Tracking Challenge or CSV.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="tracks_command", metavar="ACTION", parser_class=type(p))
    c = sub.add_parser(
        "convert",
        help="convert tracks between GEFF, CTC and CSV (by path)",
        description="Convert tracks; the formats follow from the paths (see 'vrscope tracks -h').",
    )
    c.add_argument("input", metavar="IN", help="GEFF store, CTC folder or spots CSV")
    c.add_argument(
        "output", metavar="OUT", help="GEFF store (.geff/.zarr), CSV (.csv) or CTC folder"
    )
    c.add_argument(
        "--zarr-format",
        type=int,
        choices=(2, 3),
        default=2,
        help="zarr version of a GEFF output (default: %(default)s)",
    )
    c.add_argument(
        "--voxel-size",
        nargs=3,
        type=float,
        metavar=("Z", "Y", "X"),
        default=(1.0, 1.0, 1.0),
        help="µm per voxel of CTC input masks, for node positions (default: 1 1 1)",
    )
    c.add_argument(
        "--labels",
        metavar="STORE.zarr:NAME",
        help="label image labels/NAME of an OME-Zarr store, for CTC output from GEFF or CSV "
        "input: the masks the nodes' 'label' values refer to",
    )
    c.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    add_allow_missing_option(c)
    c.set_defaults(func=run)
    s = sub.add_parser(
        "stats",
        help="per-track displacement, speed, straightness (and MSD) as CSV",
        description=(
            "Motion statistics per tracklet (a division-free chain): duration, displacement, "
            "path length, straightness, mean speed; optionally the mean squared displacement."
        ),
    )
    s.add_argument("input", metavar="IN", help="GEFF store, CTC folder or spots CSV")
    s.add_argument("--out", required=True, metavar="STATS.csv", help="table to write")
    s.add_argument("--msd", metavar="MSD.csv", help="also write MSD per tracklet and lag")
    s.add_argument(
        "--max-lag",
        type=int,
        default=20,
        metavar="N",
        help="largest MSD lag in frames (default: %(default)s)",
    )
    s.add_argument(
        "--frame-interval",
        type=float,
        metavar="S",
        help="seconds between time points (default: from the GEFF time axis, if any)",
    )
    s.add_argument("--voxel-size", nargs=3, type=float, metavar=("Z", "Y", "X"), default=(1.0, 1.0, 1.0),
                   help="µm per voxel of CTC input masks (default: 1 1 1)")  # fmt: skip
    s.add_argument("--overwrite", action="store_true", help="replace existing output files")
    s.set_defaults(func=run)
    p.set_defaults(func=lambda args: _no_action(p))


def _no_action(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def kind_of(path: Path, for_output: bool = False) -> str:
    """``"ctc"``, ``"csv"`` or ``"geff"`` for a tracks path."""
    if path.suffix.lower() == ".csv":
        return "csv"
    if path.is_dir() and (any(path.glob("*_track.txt"))):
        return "ctc"
    if path.suffix.lower() in (".geff", ".zarr") or path.is_dir():
        return "geff"
    return "ctc" if for_output else "geff"


def read_tracks(path: Path, voxel_size: tuple[float, float, float]) -> tuple[Any, Any]:
    """(TrackGraph, masks or None) from any supported tracks path."""
    from analysis.io import read_ctc, read_geff, read_tracks_csv

    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    kind = kind_of(path)
    if kind == "ctc":
        return read_ctc(path, scale_um=voxel_size)
    if kind == "csv":
        return read_tracks_csv(path), None
    return read_geff(path), None


def write_tracks(graph: Any, path: Path, masks: Any, zarr_format: int, overwrite: bool) -> str:
    """Write ``graph`` to ``path`` in the format its name implies; returns the format name."""
    from analysis.errors import ParameterError
    from analysis.io import write_ctc, write_geff, write_tracks_csv

    kind = kind_of(path, for_output=True)
    if kind == "csv":
        write_tracks_csv(graph, path, overwrite=overwrite)
    elif kind == "geff":
        write_geff(graph, path, zarr_format=zarr_format, overwrite=overwrite)
    else:
        if masks is None:
            raise ParameterError(
                f"CTC output {path} needs label masks: convert from a CTC folder, "
                "give --labels STORE.zarr:NAME, or link a label image with 'vrscope track'"
            )
        write_ctc(graph, path, masks, overwrite=overwrite)
    return kind


def label_masks(spec: str, unreadable: list[Any] | None = None) -> Any:
    """The label image named by ``STORE.zarr:NAME`` as a (T, [Z,] Y, X) array.

    Every chunk is checked: a damaged one refuses (one line naming the store, level
    and chunk) unless ``unreadable`` is a list (``--allow-missing``): then it reads as
    empty and its error is appended there (issue 21).
    """
    from analysis.errors import FormatError, ParameterError
    from analysis.io import open_labels
    from vrscope.commands._analysis_io import read_level_checked

    store, sep, name = spec.rpartition(":")
    if not sep or not store or not name:
        raise ParameterError(f"--labels {spec!r}: expected STORE.zarr:NAME")
    src = open_labels(Path(store).expanduser(), name)
    arr = read_level_checked(src, 0, unreadable)
    axes = list(src.axes)
    if "c" in axes:
        k = axes.index("c")
        if arr.shape[k] != 1:
            raise FormatError(f"label image {spec} has {arr.shape[k]} channels; expected 1")
        arr = arr.take([0], axis=k).squeeze(axis=k)
        axes.pop(k)
    if "t" not in axes:
        arr = arr[None]  # one time point
    return arr


def run(args: argparse.Namespace) -> int:
    if args.tracks_command == "convert":
        return _convert(args)
    return _stats(args)


def _convert(args: argparse.Namespace) -> int:
    from analysis.io import check_output
    from vrscope.commands._analysis_io import report_incomplete, unreadable_list

    src, dst = Path(args.input).expanduser(), Path(args.output).expanduser()
    check_output(dst, [src])
    graph, masks = read_tracks(src, tuple(args.voxel_size))
    if args.labels:
        if kind_of(dst, for_output=True) != "ctc":
            from analysis.errors import ParameterError

            raise ParameterError("--labels is only used for CTC output (a folder)")
    bad = unreadable_list(args)
    if args.labels:
        masks = label_masks(args.labels, bad)
    kind = write_tracks(graph, dst, masks, args.zarr_format, args.overwrite)
    print(f"{src} -> {dst} ({kind}): {graph.n_nodes} nodes, {graph.n_edges} edges")
    report_incomplete(bad)
    return 0


def _stats(args: argparse.Namespace) -> int:
    from analysis.errors import FormatError
    from analysis.tracks import msd, track_stats

    src = Path(args.input).expanduser()
    from analysis.io import check_output

    out = Path(args.out).expanduser()
    check_output(out, [args.input])
    targets = [out] + ([Path(args.msd).expanduser()] if args.msd else [])
    for f in targets:
        if f.exists() and not args.overwrite:
            raise FormatError(f"{f} already exists (use --overwrite to replace it)")
        if not f.parent.is_dir():
            raise FileNotFoundError(2, "No such file or directory", str(f.parent))
    graph, _ = read_tracks(src, tuple(args.voxel_size))
    table = track_stats(graph, frame_interval_s=args.frame_interval)
    table.to_csv(out, index=False)
    print(f"{len(table)} tracklets of {graph.n_nodes} nodes -> {out}")
    if args.msd:
        m = msd(graph, max_lag=args.max_lag, frame_interval_s=args.frame_interval)
        m.to_csv(targets[1], index=False)
        print(f"MSD for lags 1..{args.max_lag} ({len(m)} rows) -> {targets[1]}")
    return 0
