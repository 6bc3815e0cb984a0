"""Install smoke test: ``pip install .`` with no extras gives a working analysis core.

The core promise of the layering: ``analysis`` and the command line's analysis commands run
without Qt, VTK, OpenXR or torch. A throw-away venv gets vrscope with its core dependencies
only (their versions constrained to the lock, so the test does not drift with the package
index; pip still resolves them from ``[project.dependencies]``, so a missing core dependency
fails here), then runs ``vrscope --help``, ``vrscope sample fibsem`` and ``vrscope measure``
there. The measured voxel counts are checked against ``np.bincount`` of the label image read
with zarr-python in this process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _constraints_from_lock(out: Path) -> Path:
    """The lock's pins without hashes (pip's hash-checking mode would need every build
    dependency of the project's own build hashed too)."""
    text = (ROOT / "requirements-lock.txt").read_text()
    pins = re.findall(r"^([A-Za-z0-9._-]+==[^\s\\]+)", text, flags=re.M)
    assert len(pins) > 50, "requirements-lock.txt holds too few pins"
    out.write_text("\n".join(pins) + "\n")
    return out


def test_core_install_runs_analysis_without_gui_packages(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    # This environment's pip installs into the new venv (``--python``): no pip bootstrap
    # there, no byte-compiling, wheels from pip's cache where the lock's install left them.
    subprocess.run(
        [
            sys.executable, "-m", "pip", "--python", str(py), "install", "--quiet",
            "--no-compile", "-c", str(_constraints_from_lock(tmp_path / "c.txt")), str(ROOT),
        ],
        check=True,
        cwd=tmp_path,
    )  # fmt: skip
    # None of the GUI, XR or ML packages came with the core install.
    probe = (
        "import importlib.util as u, sys; import analysis, analysis.io, analysis.morphology; "
        "print(*[m for m in ('vtk', 'PySide6', 'xr', 'torch', 'pyvista', 'onnxruntime') "
        "if u.find_spec(m)], 'loaded:', *[m for m in ('vtk', 'PySide6', 'torch') "
        "if m in sys.modules])"
    )
    got = subprocess.run([str(py), "-c", probe], check=True, capture_output=True, text=True)
    assert got.stdout.split() == ["loaded:"], got.stdout

    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    vrscope = str(venv / "bin" / "vrscope")

    def run(*args: str) -> str:
        res = subprocess.run(
            [vrscope, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
        )
        assert res.returncode == 0, f"vrscope {' '.join(args)}: {res.stderr[-2000:]}"
        return res.stdout

    assert "measure" in run("--help") and "sample" in run("--help")
    store = tmp_path / "cell.zarr"
    run("sample", "fibsem", str(store), "--size", "96")
    table = tmp_path / "mito.csv"
    run("measure", str(store), "--labels", "mitochondria", "--out", str(table))

    group = zarr.open_group(str(store), mode="r")["labels/mitochondria"]
    attrs = group.attrs.asdict()
    level0 = attrs.get("ome", attrs)["multiscales"][0]["datasets"][0]["path"]  # NGFF 0.5 / 0.4
    lab = np.asarray(group[level0])
    counts = np.bincount(lab.ravel())
    ids = np.flatnonzero(counts)
    ids = ids[ids > 0]
    got_table = pd.read_csv(table).set_index("label").sort_index()
    assert list(got_table.index) == list(ids)
    np.testing.assert_array_equal(got_table["voxel_count"].to_numpy(), counts[ids])
