"""Layering: the analysis core (segment, morphology, distances, density, features,
report, batch) computes; only analysis.io opens, reads or writes files."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "analysis"
PACKAGES = ["segment", "morphology", "distances", "density", "features", "report", "batch"]
# Calls that touch the file system (by attribute or function name).
FILE_CALLS = {
    "open", "read_bytes", "write_bytes", "read_text", "write_text", "mkdir", "unlink",
    "rmtree", "to_csv", "to_parquet", "read_csv", "read_parquet", "save", "savez",
    "savez_compressed", "load", "to_json", "to_html_file", "imsave", "imwrite",
}  # fmt: skip
# (name, the only argument shapes that are in memory): savefig/np.savez/np.load into
# or from an io.BytesIO buffer are allowed.
IN_MEMORY = {"savefig", "savez_compressed", "load"}


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            yield name, node


@pytest.mark.parametrize("package", PACKAGES)
def test_no_file_access_outside_analysis_io(package):
    offenders = []
    for path in sorted((ROOT / package).glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for name, node in _calls(tree):
            if name not in FILE_CALLS and name not in IN_MEMORY:
                continue
            args = [ast.unparse(a) for a in node.args]
            if name in IN_MEMORY and args and args[0] in ("buf", "io.BytesIO(data)"):
                continue  # serialising to / from memory
            if name == "load" and isinstance(node.func, ast.Attribute):
                # ``cls.load(path)`` methods delegate to analysis.io.load_classifier.
                owner = ast.unparse(node.func.value)
                if owner != "np":
                    continue
            offenders.append(f"{path.name}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert offenders == []
