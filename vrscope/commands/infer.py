"""``vrscope infer``: segment a volume with a model, tile by tile, into the store or a .npy."""

from __future__ import annotations

import argparse
from typing import Any

from vrscope.commands._analysis_io import add_allow_missing_option
from vrscope.commands._options import int_range

ORDER = 41

# Probability maps up to this size are accumulated in RAM.
_IN_MEMORY_BYTES = 1 << 30

_EPILOG = """\
INPUT is an OME-Zarr image (the result goes into its labels/NAME, with a pyramid) or a
.npy array (the result is written to the .npy OUTPUT). MODEL is our checkpoint (folder,
.safetensors or .pt), an ONNX file, a TorchScript file or a bioimage.io description
(bioimageio.yaml). The volume is predicted in overlapping tiles blended with a window
that favours tile centres, so any size runs in memory bounded by the tile.

Outputs: for a store, the class labels (0 = first class) or with --objects CLASS the
objects of one class (threshold, closing, small-object removal, components or
watershed); --probabilities P.zarr also writes the probability maps (c, z, y, x).
For a .npy: the probabilities (K, Z, Y, X), or the labels with --labels; a .npy laid out
as the bioimage.io model's input (e.g. b, c, y, x) gives the output in its layout.

examples:
  vrscope infer cell.zarr --model mito/ --out mito_pred
  vrscope infer cell.zarr --model mito/ --out mito_objects --objects 1 --min-volume 0.01
  vrscope infer raw.npy --model unet2d_nuclei_broad/bioimageio.yaml --out prob.npy --runtime onnx
  vrscope infer big.zarr --model model.onnx --out pred --tile 64 128 128 --overlap 16
"""


def add_object_options(p: Any) -> None:
    """``--objects CLASS`` and how objects are made of a class's probabilities (shared by
    ``infer`` and ``batch infer``)."""
    p.add_argument("--objects", metavar="CLASS", help="write objects of this class (index or name)")
    p.add_argument(
        "--closing", type=float, default=0.0, metavar="UM", help="--objects: closing radius"
    )
    p.add_argument(
        "--min-volume", type=float, default=0.0, metavar="UM3", help="--objects: drop smaller"
    )
    p.add_argument(
        "--watershed", type=float, metavar="UM",
        help="--objects: split touching objects (peaks closer than UM merge)",
    )  # fmt: skip


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "infer",
        help="segment a volume with a U-Net, ONNX, TorchScript or bioimage.io model",
        description=(
            "Run a segmentation model over an OME-Zarr image or a .npy array with smooth "
            "tiled inference (torch on CPU/CUDA/MPS, or onnxruntime)."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="INPUT", help="OME-Zarr image store or .npy file")
    p.add_argument("--model", required=True, metavar="MODEL", help="model file or folder")
    p.add_argument(
        "--out", required=True, metavar="OUTPUT",
        help="label name in the input store (NAME, labels/NAME or STORE:labels/NAME), or a .npy",
    )  # fmt: skip
    p.add_argument(
        "--tile",
        type=int_range(1, 4096),
        nargs="+",
        metavar="N",
        help="tile size: Z Y X (3D) or Y X (2D)",
    )
    p.add_argument("--overlap", type=int, metavar="N", help="overlap of tile cores (default: 1/4)")
    p.add_argument("--halo", type=int, metavar="N", help="context discarded at tile borders")
    p.add_argument(
        "--batch-size", type=int_range(1, 4096), default=4, help="tiles per model call (default: 4)"
    )
    p.add_argument("--runtime", choices=("torch", "onnx"), help="default: torch, onnx for .onnx")
    p.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, mps")
    p.add_argument(
        "--labels", action="store_true", help=".npy output: class labels, not probabilities"
    )
    p.add_argument("--threshold", type=float, default=0.5, help="--objects: probability cut (0.5)")
    add_object_options(p)
    p.add_argument(
        "--probabilities", metavar="P.zarr", help="store input: also write probabilities"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_allow_missing_option(p)
    p.set_defaults(func=run)


def label_target(input_path: str, out: str) -> str:
    """The label name for a store input: NAME, labels/NAME or INPUT:labels/NAME."""
    from pathlib import Path

    from analysis.errors import ParameterError

    if ":" in out:
        store, _, rest = out.rpartition(":")
        if Path(store).resolve() != Path(input_path).resolve():
            raise ParameterError(
                f"labels are written into the input store; {store!r} is not {input_path!r}"
            )
        out = rest
    if out.startswith("labels/"):
        out = out[len("labels/") :]
    if not out or "/" in out or out.endswith(".npy"):
        raise ParameterError(f"--out for a store input must be a label name, got {out!r}")
    return out


def class_index(spec_names: tuple[str, ...], text: str) -> int:
    from analysis.errors import ParameterError

    if text in spec_names:
        return spec_names.index(text)
    try:
        k = int(text)
    except ValueError:
        raise ParameterError(
            f"--objects {text!r} is not a class of the model {spec_names}"
        ) from None
    if not 0 <= k < len(spec_names):
        raise ParameterError(
            f"--objects {k} is out of range: the model has {len(spec_names)} classes"
        )
    return k


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from analysis.errors import FormatError, ParameterError
    from vrscope.cli import require_extra
    from vrscope.commands._analysis_io import unreadable_list

    require_extra("torch", "ml")
    from analysis.inference import (
        BioimageioModel,
        from_model_layout,
        is_bioimageio,
        load_model,
        read_bioimageio,
    )

    src_path = Path(args.input)
    if not src_path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(src_path))
    is_npy = src_path.suffix == ".npy"
    out_npy = Path(args.out) if is_npy else None
    if is_npy and (out_npy is None or out_npy.suffix != ".npy"):
        raise ParameterError(f"a .npy input writes a .npy output; --out {args.out!r} is not one")
    from analysis.io import check_output

    for out in (out_npy, args.probabilities):
        if out is not None:
            check_output(out, [args.input, args.model])
    if out_npy is not None and out_npy.exists() and not args.overwrite:
        raise FormatError(f"{out_npy} exists (use --overwrite)")
    predictor = load_model(args.model, runtime=args.runtime, device=args.device)
    spec = predictor.spec
    bio: BioimageioModel | None = read_bioimageio(args.model) if is_bioimageio(args.model) else None
    k_obj = class_index(spec.class_names, args.objects) if args.objects is not None else None
    tile = tuple(args.tile) if args.tile else None
    if tile is not None and len(tile) != spec.dims:
        raise ParameterError(f"--tile needs {spec.dims} sizes for this {spec.dims}D model")

    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    layout: str | None = None
    name = ""
    if is_npy:
        from analysis.io import read_npy

        arr = read_npy(src_path)
        if bio is not None and arr.ndim == len(bio.input_axes) and arr.ndim > 3:
            layout = bio.output_axes
            data: Any = from_model_layout(np.asarray(arr), bio.input_axes)
        else:
            data = arr
        source_name = src_path.name
    else:
        from analysis.io import open_volume

        name = label_target(args.input, args.out)
        # Every chunk a tile reads is checked: a damaged one refuses (one line naming
        # it) unless --allow-missing, which counts it as empty (issue 21).
        data = open_volume(args.input).checked(unreadable_list(args))
        scale = data.levels[0].scale_um
        source_name = args.input
        if name in data.label_names and not args.overwrite:
            raise FormatError(f"{args.input} already has labels/{name} (use --overwrite)")

    import contextlib

    from analysis.errors import ChunkError
    from analysis.inference import InputVolume
    from analysis.io import scratch_array
    from vrscope.commands._analysis_io import report_incomplete

    inp = InputVolume(data)
    shape = (spec.n_classes, *inp.spatial_shape)
    with contextlib.ExitStack() as stack:
        accumulator = None
        if 4 * int(np.prod(shape)) > _IN_MEMORY_BYTES:
            # Probabilities larger than this go to a scratch memory map, not RAM.
            accumulator = stack.enter_context(scratch_array(shape, np.float32))
        try:
            code = _predict_and_write(
                args, predictor, inp, data, accumulator, k_obj, tile, scale, layout, out_npy,
                name, source_name,
            )  # fmt: skip
        except ChunkError as exc:  # a damaged chunk, read by a tile (nothing written)
            raise ChunkError(
                f"{exc} (pass --allow-missing to count unreadable chunks as empty)", key=exc.key
            ) from exc
    report_incomplete(getattr(data, "unreadable", None))
    return code


def _predict_and_write(
    args: argparse.Namespace,
    predictor: Any,
    inp: Any,
    data: Any,
    accumulator: Any,
    k_obj: int | None,
    tile: tuple[int, ...] | None,
    scale: tuple[float, float, float],
    layout: str | None,
    out_npy: Any,
    name: str,
    source_name: str,
) -> int:
    import logging
    import time

    import numpy as np

    from analysis.inference import (
        labels_from_probabilities,
        objects_from_probabilities,
        predict_tiled,
        to_model_layout,
    )

    log = logging.getLogger("vrscope.infer")
    spec = predictor.spec
    t0 = time.perf_counter()
    probs = predict_tiled(
        predictor,
        inp,
        tile=tile,
        overlap=args.overlap,
        halo=args.halo,
        batch_size=args.batch_size,
        out=accumulator,
        progress=not args.quiet,
    )
    seconds = time.perf_counter() - t0
    n_vox = int(np.prod(probs.shape[1:]))
    log.info("predicted %s in %.1f s (%.3g voxels/s)", source_name, seconds, n_vox / seconds)

    if k_obj is not None:
        result: Any = objects_from_probabilities(
            probs[k_obj],
            spacing=scale,
            threshold=args.threshold,
            closing_um=args.closing,
            min_volume_um3=args.min_volume,
            method="watershed" if args.watershed else "components",
            min_distance_um=args.watershed or 1.0,
        )
        what = f"{int(result.max())} objects of class {spec.class_names[k_obj]!r}"
    elif out_npy is None or args.labels:
        result = labels_from_probabilities(probs, threshold=args.threshold)
        what = f"labels of {len(spec.class_names)} classes"
    else:
        result = to_model_layout(probs, layout) if layout else probs
        if not layout and np.asarray(data).ndim == 2:
            result = result[:, 0]
        what = f"probabilities {result.shape}"

    if out_npy is not None:
        if (args.labels or k_obj is not None) and np.asarray(data).ndim == 2:
            result = result[0]
        from analysis.io import replacing, write_npy

        with replacing(out_npy, overwrite=args.overwrite) as tmp:
            write_npy(tmp, result)
        print(f"{what} -> {out_npy} ({seconds:.1f} s, {n_vox / seconds:.3g} voxels/s)")
        return 0

    from analysis.io import replacing, write_labels, write_ngff
    from analysis.volume import ArrayVolumeSource

    write_labels(args.input, name, result, progress=not args.quiet, overwrite=args.overwrite)
    print(f"{what} -> {args.input}/labels/{name} ({seconds:.1f} s, {n_vox / seconds:.3g} voxels/s)")
    if args.probabilities:
        prob_src = ArrayVolumeSource(
            probs, scale_um=scale, axes="czyx", name=f"{name}_probabilities"
        )
        with replacing(args.probabilities, overwrite=args.overwrite) as tmp:
            write_ngff(
                prob_src,
                tmp,
                chunks=(1, *data.levels[0].chunks[-3:]),  # the image's chunks: same depth
                progress=not args.quiet,
            )
        print(f"probabilities -> {args.probabilities}")
    return 0
