"""``vrscope train``: train a U-Net on sparse annotations stored with an OME-Zarr image."""

from __future__ import annotations

import argparse
from typing import Any

from vrscope.commands._analysis_io import add_allow_missing_option
from vrscope.commands._options import (
    add_remote_timeout_option,
    int_range,
    nonnegative_float,
    positive_float,
    remote_run,
)

ORDER = 40

_EPILOG = """\
Annotations are a label image of the store (labels/NAME): 0 = not annotated (ignored),
value v = class v-1 (so paint background as 1, the first object class as 2, ...).
With --instances the label image holds object ids instead (0 = background); use --every N
to say that only every N-th z plane is annotated, and --boundary to add a class for the
one-voxel border between touching objects.

The best model (lowest validation loss) is saved as OUT/model.safetensors (weights and
model description, no pickle) with the training history in OUT/training.json.

examples:
  vrscope train cell.zarr --labels painted --out mito-model/
  vrscope train cell.zarr --labels mitochondria --instances --every 10 --out mito/ --epochs 30
  vrscope train cell.zarr --labels pores --instances --dims 2 --rotations 30 60 90 --out pores/
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a U-Net (2D or 3D) from sparse annotations in an OME-Zarr store",
        description=(
            "Train a U-Net for semantic segmentation from a label image of partial "
            "annotations (unlabelled voxels are ignored), with augmentation, a validation "
            "split and early stopping."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("store", metavar="STORE.zarr", help="OME-Zarr image with the annotations")
    p.add_argument("--labels", required=True, metavar="NAME", help="label image under labels/")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the model")
    p.add_argument(
        "--dims", type=int, choices=(2, 3), default=2, help="2D or 3D U-Net (default: 2)"
    )
    p.add_argument(
        "--epochs",
        type=int_range(1, 100_000),
        default=40,
        help="maximum epochs (default: %(default)s)",
    )
    p.add_argument("--steps", type=int, default=40, help="batches per epoch (default: %(default)s)")
    p.add_argument(
        "--batch-size",
        type=int_range(0, 4096),
        default=0,
        help="patches per batch (default: 8 2D, 2 3D)",
    )
    p.add_argument(
        "--patch", type=int_range(4, 4096), nargs="+", metavar="N", help="patch size: Y X or Z Y X"
    )
    p.add_argument(
        "--width", type=int, default=16, help="features at the first level (default: 16)"
    )
    p.add_argument("--depth", type=int, default=3, help="resolution levels (default: 3)")
    p.add_argument(
        "--norm", choices=("batch", "instance", "group", "none"), default="batch",
        help="normalisation layers (default: batch)",
    )  # fmt: skip
    p.add_argument(
        "--lr", type=positive_float, default=2e-3, help="learning rate (default: %(default)s)"
    )
    p.add_argument(
        "--class-weights", default="none", metavar="auto|none|W,W,...",
        help="loss weight per class (default: none; auto = median-frequency balancing)",
    )  # fmt: skip
    p.add_argument("--instances", action="store_true", help="the label image holds object ids")
    p.add_argument("--boundary", action="store_true", help="with --instances: add a boundary class")
    p.add_argument(
        "--every", type=int, default=1, metavar="N", help="only every N-th z plane is annotated"
    )
    p.add_argument(
        "--rotations", type=float, nargs="*", default=(), metavar="DEG",
        help="2D only: also train on planes of the volume rotated about X and Y by these angles",
    )  # fmt: skip
    p.add_argument("--elastic", action="store_true", help="add elastic deformation to augmentation")
    p.add_argument(
        "--no-augment", action="store_true", help="no flips, rotations or intensity jitter"
    )
    p.add_argument(
        "--val-fraction", type=float, default=0.2, help="annotated planes held out (0.2)"
    )
    p.add_argument(
        "--patience", type=int, default=8, help="epochs without improvement before stopping"
    )
    p.add_argument("--class-names", nargs="+", metavar="NAME", help="names of the classes")
    p.add_argument(
        "--max-minutes",
        type=nonnegative_float,
        default=0,
        help="stop after this much training time",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, mps")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_allow_missing_option(p)
    add_remote_timeout_option(p)
    p.set_defaults(func=remote_run(run))


def _class_weights(text: str) -> str | tuple[float, ...] | None:
    from analysis.errors import ParameterError

    if text == "auto":
        return "auto"
    if text == "none":
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError as exc:
        raise ParameterError(
            f"--class-weights must be auto, none or numbers, got {text!r}"
        ) from exc


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import numpy as np

    from analysis.errors import ParameterError
    from analysis.io import check_output, open_volume
    from vrscope.cli import require_extra

    require_extra("torch", "ml")
    check_output(args.out, [args.store])  # before any work
    from analysis.inference import TrainConfig, annotations_from_instances, train
    from vrscope.commands._analysis_io import report_incomplete, unreadable_list

    store = open_volume(args.store)
    names = store.label_names
    if args.labels not in names:
        have = ", ".join(names) or "none"
        raise ParameterError(f"{args.store} has no label image {args.labels!r} (has: {have})")
    # Every chunk read is checked: a damaged one refuses (one line naming it) unless
    # --allow-missing, which counts it as empty (issue 21).
    bad = unreadable_list(args)
    labels = np.asarray(_read_checked(store.open_labels(args.labels), bad))
    image = store.checked(bad)
    if labels.ndim > 3 and int(np.prod(labels.shape[:-3])) == 1:
        labels = labels.reshape(labels.shape[-3:])
    if args.every < 1:
        raise ParameterError(f"--every must be >= 1, got {args.every}")
    annotated = (np.arange(labels.shape[-3]) % args.every == 0)[:, None, None]
    if args.instances:
        ann = annotations_from_instances(labels, boundary=args.boundary, annotated=annotated)
        names_default = ("background", "object", "boundary")[: 3 if args.boundary else 2]
    else:
        if args.boundary:
            raise ParameterError(
                "--boundary needs --instances (object ids to find borders between)"
            )
        ann = np.where(np.broadcast_to(annotated, labels.shape), labels, 0)
        names_default = ()
    augment = not args.no_augment
    cfg = TrainConfig(
        dims=args.dims,
        depth=args.depth,
        width=args.width,
        norm=args.norm,
        patch=tuple(args.patch) if args.patch else None,
        batch_size=args.batch_size,
        epochs=args.epochs,
        steps_per_epoch=args.steps,
        learning_rate=args.lr,
        class_weights=_class_weights(args.class_weights),
        flips=augment,
        rot90=augment,
        intensity=augment,
        elastic=args.elastic,
        rotations=tuple(args.rotations or ()),
        val_fraction=args.val_fraction,
        patience=args.patience,
        seed=args.seed,
        device=args.device,
        class_names=tuple(args.class_names or names_default),
        max_seconds=60.0 * args.max_minutes,
    )
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out {out} exists and is not a folder")
    from analysis.errors import ChunkError

    try:
        result = train(image, ann, cfg, checkpoint=out, progress=not args.quiet)
    except ChunkError as exc:  # a damaged image chunk (read through ``image``)
        raise ChunkError(
            f"{exc} (pass --allow-missing to count unreadable chunks as empty)", key=exc.key
        ) from exc
    history = {
        "store": str(args.store),
        "labels": args.labels,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "seconds": result.seconds,
        "class_weights": list(result.class_weights),
        "history": result.history,
        "unreadable_chunks": [f"{e.key}: {e}" for e in bad or ()],
    }
    (out / "training.json").write_text(json.dumps(history, indent=2, default=float))
    best = result.history[result.best_epoch]
    dice = best.get("val_dice", float("nan"))
    print(
        f"trained {cfg.dims}D U-Net in {result.seconds:.0f} s: best epoch {result.best_epoch} "
        f"(val loss {best.get('val_loss', best['loss']):.4f}, val Dice {dice:.3f}) -> "
        f"{out / 'model.safetensors'}"
    )
    report_incomplete(bad)
    return 0


def _read_checked(source: Any, unreadable: list[Any] | None) -> Any:
    """Level 0 of ``source``, every chunk checked; the refusal says how to run anyway."""
    from vrscope.commands._analysis_io import read_level_checked

    return read_level_checked(source, 0, unreadable)
