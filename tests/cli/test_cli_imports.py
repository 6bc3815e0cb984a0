"""The CLI imports only what a command needs (issue 18.15): building the parser and
answering a mistyped input load none of the heavy libraries (zarr, torch, VTK, SciPy...),
so the one-line error comes before seconds of imports. Checked in fresh interpreters
(``sys.modules``), no timings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("zarr", "torch", "vtk", "vtkmodules", "scipy", "skimage", "pandas", "PySide6", "numcodecs")


def _loaded_after(code: str, cwd: Path) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; it sets ``result``; returns it with the heavy
    modules then in ``sys.modules``."""
    script = (
        "import json, sys\n"
        "result = None\n"
        f"{code}\n"
        f"print(json.dumps({{'result': result, 'heavy': [m for m in {HEAVY!r} "
        "if m in sys.modules]}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_importing_the_cli_and_building_its_parser_loads_no_heavy_library(tmp_path: Path) -> None:
    got = _loaded_after("import vrscope.cli\nvrscope.cli.build_parser()", tmp_path)
    assert got["heavy"] == []


@pytest.mark.parametrize(
    "argv",
    [
        ["measure", "missing.zarr", "--labels", "cells", "--out", "m.csv"],
        ["info", "missing.zarr"],
        ["density", "missing.zarr", "--labels", "cells", "--out", "d.csv"],
        ["profile", "missing.zarr", "--out", "rep"],
        ["labels", "merge", "NOPROJECT", "--labels", "cells", "1", "2"],
        ["labels", "undo", "NOPROJECT"],
        ["render", "missing.zarr", "--out", "a.png"],
    ],
)
def test_a_missing_input_is_answered_before_heavy_imports(tmp_path: Path, argv: list[str]) -> None:
    got = _loaded_after(f"from vrscope.cli import main\nresult = main({argv!r})", tmp_path)
    assert got["result"] == 2
    assert got["heavy"] == []


def test_analysis_io_is_lazy_and_keeps_its_public_names(tmp_path: Path) -> None:
    """``from analysis.io import open_volume`` loads the reader only (not the TIFF/HDF5
    importers nor model files); every name of ``__all__`` still resolves."""
    got = _loaded_after(
        "from analysis.io import open_volume\n"
        "result = sorted(m for m in ('analysis.io._import', 'analysis.io._nn_models', "
        "'analysis.io._geff', 'tifffile', 'h5py', 'torch') if m in sys.modules)",
        tmp_path,
    )
    assert got["result"] == []
    import analysis.io

    missing = [n for n in analysis.io.__all__ if getattr(analysis.io, n, None) is None]
    assert missing == []
    assert set(analysis.io.__all__) <= set(dir(analysis.io))
    with pytest.raises(AttributeError):
        analysis.io.no_such_name  # noqa: B018
