"""``vrscope track``: link the objects of a (t, z, y, x) label image into tracks.

Reads one frame at a time from an OME-Zarr label image (or the masks of a CTC
folder), takes each object's centroid in µm and links them with laptrack's
linear assignment (gap closing, divisions). Writes GEFF, CSV or CTC by path.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vrscope.commands._analysis_io import add_allow_missing_option

ORDER = 60

_EPILOG = """\
examples
  vrscope sample timelapse nuclei.zarr
  vrscope track nuclei.zarr --labels nuclei --out tracks.geff
  vrscope track ctc/res --voxel-size 1 0.5 0.5 --out tracks_spots.csv

OUT by path: *.geff / *.zarr -> GEFF, *.csv -> CSV spots + edges, other -> CTC folder
(res_track.txt + mask TIFFs relabelled per track).
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "track",
        help="track objects of a (t, z, y, x) label image (LAP linking, gaps, divisions)",
        description=(
            "Link the labelled objects of consecutive time points into tracks with linear "
            "assignment (laptrack): frame-to-frame links, gap closing and division detection."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="INPUT", help="OME-Zarr store (with --labels) or a CTC folder")
    p.add_argument("--labels", metavar="NAME", help="label image labels/NAME of an OME-Zarr store")
    p.add_argument("--out", required=True, metavar="OUT", help="tracks to write (format by path)")
    p.add_argument(
        "--max-distance",
        type=float,
        default=10.0,
        metavar="UM",
        help="largest movement between time points in µm (default: %(default)s)",
    )
    p.add_argument(
        "--gap",
        type=int,
        default=2,
        metavar="N",
        help="close gaps of up to N missed time points; 0 disables (default: %(default)s)",
    )
    p.add_argument("--no-divisions", action="store_true", help="do not detect divisions")
    p.add_argument(
        "--division-distance",
        type=float,
        metavar="UM",
        help="largest mother-daughter distance in µm (default: --max-distance)",
    )
    p.add_argument(
        "--voxel-size",
        nargs=3,
        type=float,
        metavar=("Z", "Y", "X"),
        help="µm per voxel (default: the store's scale; 1 1 1 for CTC masks)",
    )
    p.add_argument("--zarr-format", type=int, choices=(2, 3), default=2,
                   help="zarr version of a GEFF output (default: %(default)s)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_allow_missing_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from analysis.errors import ChunkError, ParameterError
    from analysis.io import check_output, open_labels, read_ctc_masks
    from analysis.tracks import link_labels
    from vrscope.commands._analysis_io import report_incomplete, unreadable_list
    from vrscope.commands.tracks import kind_of, write_tracks

    src = Path(args.input).expanduser()
    out = Path(args.out).expanduser()
    check_output(out, [src])
    if not src.exists():
        raise FileNotFoundError(2, "No such file or directory", str(src))
    if out.exists() and not args.overwrite:
        raise ParameterError(f"{out} already exists (use --overwrite to replace it)")
    masks: Any
    unreadable = unreadable_list(args)
    is_ctc = (
        src.is_dir()
        and any(src.glob("*.tif"))
        and not (src / "zarr.json").exists()
        and not (src / ".zgroup").exists()
    )
    if is_ctc:
        masks = read_ctc_masks(src)
        labels: Any = masks[:, None] if masks.ndim == 3 else masks  # 2D frames: z of size 1
        scale: tuple[float, ...] | None = (
            tuple(args.voxel_size) if args.voxel_size else (1.0, 1.0, 1.0)
        )
    else:
        if not args.labels:
            raise ParameterError(
                "give --labels NAME for an OME-Zarr input (the label image to track)"
            )
        # Every frame read checks its chunks (issue 21): a damaged chunk (corrupt, a
        # folder in its place) refuses, or with --allow-missing counts as empty. Frame by
        # frame, as link_labels reads, not the whole series at once.
        labels = open_labels(src, args.labels).checked(unreadable)
        scale = tuple(args.voxel_size) if args.voxel_size else None
        masks = None
    try:
        graph = link_labels(
            labels,
            args.max_distance,
            scale_um=scale,
            gap_frames=args.gap,
            divisions=not args.no_divisions,
            division_distance_um=args.division_distance,
            progress=not args.no_progress,
        )
        if kind_of(out, for_output=True) == "ctc" and masks is None:
            masks = np.asarray(labels.read(0))  # CTC output relabels the whole label series
    except ChunkError as exc:  # a damaged chunk (nothing written yet)
        raise ChunkError(
            f"{exc} (pass --allow-missing to count unreadable chunks as empty)", key=exc.key
        ) from exc
    kind = write_tracks(graph, out, masks, args.zarr_format, args.overwrite)
    _, n_children = np.unique(graph.edges[:, 0], return_counts=True)
    n_div = int(np.sum(n_children == 2))
    n_tracks = int(np.unique(graph.tracklet_ids()).size) if graph.n_nodes else 0
    print(f"{graph.n_nodes} objects in {n_tracks} tracks ({n_div} divisions) -> {out} ({kind})")
    report_incomplete(unreadable)
    return 0
