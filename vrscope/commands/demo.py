"""``vrscope demo``: the main job on the bundled sample, in one command.

Generates the synthetic FIB-SEM sample if it is absent, then opens it in the
desktop viewer when a display and the Qt viewer are available; otherwise
renders it offscreen to a PNG and says where.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from vrscope.commands._options import int_range

ORDER = 1

DEFAULT_SAMPLE = Path("assets/sample/fibsem.zarr")
DEFAULT_OUT = Path("out/demo.png")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="generate the bundled FIB-SEM sample (if absent) and show or render it",
        description=(
            "Generate the synthetic FIB-SEM sample if it is absent, then open it in the viewer "
            "when a display exists, otherwise render it to a PNG."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE, help="sample store")
    p.add_argument(
        "--size", type=int_range(16, 1024), default=192, help="sample edge length when generating"
    )
    p.add_argument("--seed", type=int, default=0, help="sample seed when generating")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="PNG written without a display")
    p.add_argument(
        "--no-window", action="store_true", help="always render to PNG, even with a display"
    )
    p.set_defaults(func=run)


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _viewer_available() -> bool:
    return (
        importlib.util.find_spec("PySide6") is not None
        and importlib.util.find_spec("viewer.qt._app") is not None
    )


def ensure_sample(path: Path, size: int, seed: int) -> Path:
    """Generate the FIB-SEM sample at ``path`` unless a store is already there."""
    from analysis.io import write_fibsem_sample
    from analysis.synthetic import fibsem_cell

    if (path / "zarr.json").exists() or (path / ".zattrs").exists():
        return path
    print(f"vrscope demo: generating the FIB-SEM sample ({size}^3) at {path}", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    sample = fibsem_cell(size=size, seed=seed)
    write_fibsem_sample(sample, path, overwrite=True, progress=True)
    return path


def run(args: argparse.Namespace) -> int:
    sample = ensure_sample(args.sample, args.size, args.seed)
    if _has_display() and not args.no_window and _viewer_available():
        from vrscope.cli import main as cli_main

        return cli_main(["view", str(sample), "--labels", "mitochondria", "nucleus"])

    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    from vrscope.cli import require_extra

    require_extra("vtk", "viewer")
    from viewer.render import render_store_to_png

    args.out.parent.mkdir(parents=True, exist_ok=True)
    out = render_store_to_png(
        sample,
        args.out,
        size=(1024, 768),
        labels=["mitochondria", "nucleus"],
        clips=["x=0.5"],
    )
    why = "no display" if not _has_display() else "viewer not available or --no-window"
    print(f"vrscope demo: {why}; rendered {sample} to {out.resolve()}")
    return 0
