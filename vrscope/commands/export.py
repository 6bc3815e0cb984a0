"""``vrscope export``: markers, measurements and edited tracks of a project, without a window.

Given a model (``.pt``, ``.onnx``, ``.safetensors`` or a checkpoint folder)
instead of a project, it forwards to ``vrscope export-model``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ORDER = 22

_MODEL_SUFFIXES = {".pt", ".pth", ".onnx", ".safetensors", ".ckpt"}

_EPILOG = """\
outputs:
  --markers FILE.csv        one row per marker: id, class, z_um, y_um, x_um, t
  --measurements FILE.csv   id, kind, value, unit (µm or deg), t, n_points, points_um (JSON)
  --tracks FILE.geff|.csv   the edited track graph (GEFF, or CSV spots + edges)

examples:
  vrscope export review1 --markers markers.csv --measurements measurements.csv
  vrscope export review1 --tracks proofread.geff
  vrscope export runs/unet --format onnx     (a model: same as vrscope export-model)
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a project's markers, measurements and edited tracks (no window)",
        description=(
            "Write the markers, measurements and edited tracks of a project folder (as saved "
            "by 'vrscope view --project' or the XR mode), with every journaled edit applied."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("project", metavar="PROJECT_DIR", help="project folder (or a model file)")
    p.add_argument("--markers", type=Path, metavar="FILE.csv", help="markers CSV to write")
    p.add_argument("--measurements", type=Path, metavar="FILE.csv", help="measurements CSV")
    p.add_argument("--tracks", type=Path, metavar="FILE", help="tracks (.geff or .csv) to write")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    m = p.add_argument_group("model export (forwarded to 'vrscope export-model')")
    m.add_argument("--format", dest="fmt", choices=("onnx", "torchscript"), help="model format")
    m.add_argument("--out", metavar="FILE", help="model output file")
    m.add_argument("--opset", type=int, help="ONNX opset")
    p.set_defaults(func=run)


def _is_model(path: Path) -> bool:
    if path.suffix.lower() in _MODEL_SUFFIXES:
        return True
    return (
        path.is_dir()
        and not (path / "project.json").exists()
        and (any(path.glob("*.safetensors")) or any(path.glob("*.pt")))
    )


def run(args: argparse.Namespace) -> int:
    import importlib.util

    from analysis.errors import FormatError, ParameterError

    path = Path(args.project).expanduser()
    if _is_model(path):
        if importlib.util.find_spec("vrscope.commands.export_model") is None:
            raise ParameterError(f"{path} is a model; model export is not available here")
        from vrscope.cli import main

        argv = ["export-model", str(path)]
        if args.fmt:
            argv += ["--format", args.fmt]
        if args.out:
            argv += ["--out", args.out]
        if args.opset is not None:
            argv += ["--opset", str(args.opset)]
        if args.overwrite:
            argv.append("--overwrite")
        return main(argv)
    if args.fmt or args.out or args.opset is not None:
        raise ParameterError(
            "--format/--out/--opset are for models; a project takes --markers etc."
        )
    from analysis.io import read_project_info

    read_project_info(path)  # a missing or foreign folder is the first thing to report
    outs = [o for o in (args.markers, args.measurements, args.tracks) if o is not None]
    if not outs:
        raise ParameterError("nothing to export: give --markers, --measurements and/or --tracks")
    for o in outs:
        if o.exists() and not args.overwrite:
            raise FormatError(f"{o} already exists (pass --overwrite to replace it)")
    from analysis.project import Project

    # Read-only: exports work while the project is open elsewhere (view, serve).
    with Project.open(path, read_only=True) as pr:
        if args.markers is not None:
            pr.export_markers(args.markers)
            print(f"{args.markers}: {len(pr.annotations.markers)} markers")
        if args.measurements is not None:
            pr.export_measurements(args.measurements)
            print(f"{args.measurements}: {len(pr.annotations.measurements)} measurements")
        if args.tracks is not None:
            out = pr.export_tracks(args.tracks, overwrite=args.overwrite)
            g = pr.tracks
            assert g is not None
            print(f"{out}: {g.n_nodes} nodes, {g.n_edges} edges")
    sys.stdout.flush()
    return 0
