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


def _bad_store(tmp_path: Path, version: str, case: str) -> Path:
    """A store written by ome-zarr-py whose metadata is then broken with plain JSON."""
    import numpy as np

    from tests.analysis.io._support import write_with_ome_zarr

    data = np.arange(16**3, dtype=np.uint8).reshape(16, 16, 16)
    store = write_with_ome_zarr(tmp_path / "s.zarr", data, version=version, chunks=(8, 8, 8))
    meta = store / ("zarr.json" if version == "0.5" else ".zattrs")
    doc = json.loads(meta.read_text())
    ms = (doc["attributes"]["ome"] if version == "0.5" else doc)["multiscales"][0]
    if case == "negative scale":
        ms["datasets"][1]["coordinateTransformations"][0]["scale"][-1] = -2.0
    elif case == "path up":
        ms["datasets"][0]["path"] = "../s0"
    elif case == "huge level 1":
        level = store / "s1" / ("zarr.json" if version == "0.5" else ".zarray")
        arr = json.loads(level.read_text())
        arr["shape"] = [64, 64, 64]
        level.write_text(json.dumps(arr))
    if case == "truncated":
        meta.write_text(meta.read_text()[:200])
    elif case == "truncated level":
        level = store / "s0" / ("zarr.json" if version == "0.5" else ".zarray")
        level.write_text(level.read_text()[:50])
    else:
        meta.write_text(json.dumps(doc))
    return store


BAD_METADATA = {
    "negative scale": "must be positive",
    "path up": "not a path inside the store",
    "huge level 1": "larger than level 0",
    "truncated": "not valid JSON",
    "truncated level": "not valid JSON",
}


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("case", sorted(BAD_METADATA))
def test_bad_metadata_is_answered_before_heavy_imports(
    tmp_path: Path, version: str, case: str
) -> None:
    """Issue 21: a local store's absurd or truncated metadata is refused from its JSON
    (one line naming the field or file, exit 2) before zarr, NumPy's users and the rest
    are imported; the reader refuses the same store too (with the same line where it
    reads the field)."""
    from analysis.errors import FormatError
    from analysis.io import open_volume

    store = _bad_store(tmp_path, version, case)
    code = (
        "import contextlib, io\n"
        "from vrscope.cli import main\n"
        "err = io.StringIO()\n"
        "with contextlib.redirect_stderr(err):\n"
        f"    code = main(['info', {str(store)!r}])\n"
        "result = [code, err.getvalue()]"
    )
    got = _loaded_after(code, tmp_path)
    rc, err = got["result"]
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and BAD_METADATA[case] in lines[0], err
    assert got["heavy"] == []
    with pytest.raises(FormatError) as exc:  # the reader agrees (zarr, in this process)
        open_volume(store)
    if not case.startswith("truncated"):
        assert BAD_METADATA[case] in str(exc.value)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_sound_store_passes_the_metadata_check(tmp_path: Path, version: str) -> None:
    """The check before the imports never refuses what the reader opens: info reads it."""
    import numpy as np

    from tests.analysis.io._support import write_with_ome_zarr

    data = np.arange(16**3, dtype=np.uint8).reshape(16, 16, 16)
    store = write_with_ome_zarr(tmp_path / "s.zarr", data, version=version, chunks=(8, 8, 8))
    got = _loaded_after(
        f"from vrscope.cli import main\nresult = main(['info', {str(store)!r}, '--json'])",
        tmp_path,
    )
    assert got["result"] == 0
