"""``vrscope export-model``: export a trained U-Net checkpoint to ONNX or TorchScript."""

from __future__ import annotations

import argparse
from typing import Any

ORDER = 42

_EPILOG = """\
MODEL is a checkpoint written by `vrscope train` (its folder, model.safetensors or a
state_dict .pt). The exported file carries the model description (classes, input
normalisation, tile size rule), so `vrscope infer --model FILE` runs it like the
checkpoint. ONNX exports are checked against torch on a random input.

examples:
  vrscope export-model mito/ --format onnx                 # -> mito/model.onnx
  vrscope export-model mito/model.safetensors --format torchscript --out mito.pt
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export-model",
        help="export a trained U-Net to ONNX or TorchScript",
        description="Export a vrscope U-Net checkpoint to ONNX (onnxruntime) or TorchScript.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="checkpoint folder, .safetensors or .pt")
    p.add_argument("--format", required=True, choices=("onnx", "torchscript"), dest="fmt")
    p.add_argument("--out", metavar="FILE", help="default: next to the checkpoint (model.onnx/.pt)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from analysis.errors import FormatError, ParameterError
    from vrscope.cli import require_extra

    require_extra("torch", "ml")
    from analysis.inference import export_onnx, export_torchscript, load_checkpoint, model_kind

    src = Path(args.model)
    kind = model_kind(src)
    if kind != "checkpoint":
        raise ParameterError(f"{src} is a {kind} model; export-model converts vrscope checkpoints")
    model, _ = load_checkpoint(src)
    suffix = ".onnx" if args.fmt == "onnx" else ".pt"
    if args.out:
        out = Path(args.out)
    else:
        out = (src / "model" if src.is_dir() else src.with_suffix("")).with_suffix(suffix)
        if out == src:
            out = out.with_name(out.stem + "-torchscript" + suffix)
    from analysis.io import check_output, checkpoint_file, replacing

    # A checkpoint folder receives its exports (the default output); only the weights
    # file itself is the input that must not be touched.
    check_output(out, [checkpoint_file(src)])
    if out.exists() and not args.overwrite:
        raise FormatError(f"{out} exists (use --overwrite)")
    with replacing(out, overwrite=args.overwrite) as tmp:
        if args.fmt == "onnx":
            diff = export_onnx(model, tmp, opset=args.opset)
        else:
            export_torchscript(model, tmp)
    if args.fmt == "onnx":
        print(f"ONNX (opset {args.opset}) -> {out} (max |onnxruntime - torch| = {diff:.1e})")
    else:
        print(f"TorchScript -> {out}")
    return 0
