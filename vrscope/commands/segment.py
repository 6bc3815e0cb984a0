"""``vrscope segment``: classic segmentation (threshold, components, clean-up), block-wise."""

from __future__ import annotations

import argparse
from typing import Any

from vrscope.commands._analysis_io import add_allow_missing_option
from vrscope.commands._options import (
    add_remote_timeout_option,
    check_store_exists,
    nonnegative_float,
    remote_run,
)

ORDER = 41

_EPILOG = """\
Steps, each block by block (memory: a block plus one entry per object): foreground =
image > threshold (default: Otsu's threshold of the whole level from a histogram
accumulated over chunks, the one skimage.filters.threshold_otsu builds, so the same value:
one bin per integer value for integer images, 256 equal bins over [min, max] for floats);
--closing R closes the mask with a ball of radius R µm; 6-connected components (the
partition of scipy.ndimage.label, joined exactly across block faces); --min-volume V
removes objects under V µm³ (their ids stay unused). OUT.zarr is a new OME-Zarr store
with the same NGFF version and chunks as the source: the image of the chosen level and
the label image labels/segmentation (uint32; ids 1..n numbered block by block).

examples:
  vrscope segment cell.zarr --out cell_seg.zarr
  vrscope segment em.zarr --out nuclei.zarr --level 2 --closing 0.5 --min-volume 20
  vrscope segment em.zarr --out bright.zarr --threshold 180
"""


def threshold_value(text: str) -> float | None:
    """``otsu`` (None) or a finite number."""
    from vrscope.commands._options import finite_float

    if text.strip().lower() == "otsu":
        return None
    try:
        return finite_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither otsu nor a finite number") from None


threshold_value.__name__ = "otsu or a number"


def add_segment_options(p: argparse.ArgumentParser) -> None:
    """The segmentation options ``vrscope segment`` and ``vrscope batch segment`` share."""
    p.add_argument("--level", type=int, default=0, help="resolution level (default: 0)")
    p.add_argument(
        "--threshold",
        type=threshold_value,
        default=None,
        metavar="otsu|VALUE",
        help="foreground is image > VALUE (default: otsu, over the whole level)",
    )
    p.add_argument(
        "--min-volume",
        type=nonnegative_float,
        default=0.0,
        metavar="UM3",
        help="remove objects smaller than this volume in µm³ (default: 0, keep all)",
    )
    p.add_argument(
        "--closing",
        type=nonnegative_float,
        default=0.0,
        metavar="UM",
        help="close the mask with a ball of this radius in µm first (default: 0, none)",
    )
    add_allow_missing_option(p)


def segment_options(args: argparse.Namespace) -> Any:
    """The :class:`analysis.batch.SegmentOptions` of parsed arguments."""
    from analysis.batch import SegmentOptions
    from analysis.errors import ParameterError

    if args.level < 0:
        raise ParameterError(f"--level must not be negative, got {args.level}")
    return SegmentOptions(
        level=args.level,
        threshold=args.threshold,
        min_volume_um3=args.min_volume,
        closing_um=args.closing,
        allow_missing=args.allow_missing,
    )


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "segment",
        help="threshold + connected components (+ clean-up) of an image, block by block",
        description=(
            "Segment the image of an OME-Zarr store: a threshold (Otsu by default), "
            "connected components and optional clean-up, block by block, written as an "
            "OME-Zarr label image."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("store", metavar="STORE", help="OME-Zarr image store (folder or URL)")
    p.add_argument("--out", required=True, metavar="OUT.zarr", help="new output store")
    add_segment_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT.zarr")
    add_remote_timeout_option(p)
    p.set_defaults(func=remote_run(run))


def run(args: argparse.Namespace) -> int:
    check_store_exists(args.store)
    from analysis.batch import SEGMENT_LABELS, segment_store
    from analysis.errors import ChunkError
    from analysis.io import check_output, replacing
    from vrscope.commands._analysis_io import progress_enabled, report_incomplete

    options = segment_options(args)
    out = check_output(args.out, [args.store])
    try:
        with replacing(out, overwrite=args.overwrite) as tmp:
            info = segment_store(args.store, tmp, options, progress=progress_enabled())
    except ChunkError as exc:
        raise ChunkError(
            f"{exc} (pass --allow-missing to count unreadable chunks as empty)", key=exc.key
        ) from exc
    print(
        f"{info['objects']} objects (threshold {info['threshold']:.6g}) "
        f"-> {out}/labels/{SEGMENT_LABELS}"
    )
    report_incomplete([ChunkError(m) for m in info["unreadable_chunks"]])
    return 0
