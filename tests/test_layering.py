"""The layering holds at run time: analysis imports without VTK, Qt or OpenXR.

import-linter checks the static imports; this test proves it dynamically by
importing every module of ``analysis`` (and the CLI's --help) in a fresh
interpreter where those packages cannot be imported at all.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys
    BLOCKED = {"vtk", "vtkmodules", "pyvista", "pyvistaqt", "PySide6", "pyqtgraph", "xr", "OpenGL"}
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"blocked for the layering test: {name}")
            return None
    sys.meta_path.insert(0, Block())
    """
)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_blocker_really_blocks() -> None:
    proc = _run("import vtk")
    assert proc.returncode != 0 and "blocked for the layering test" in proc.stderr


def test_every_analysis_module_imports_without_vtk_qt_openxr() -> None:
    proc = _run(
        """
        import importlib, pkgutil, analysis
        names = [m.name for m in pkgutil.walk_packages(analysis.__path__, "analysis.")]
        for name in names:
            importlib.import_module(name)
        bad = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not bad, bad
        print(len(names))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.strip()) >= 1


def test_cli_help_works_without_extras() -> None:
    proc = _run(
        """
        from vrscope.cli import main
        try:
            main(["--help"])
        except SystemExit as exc:
            assert exc.code == 0
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "COMMAND" in proc.stdout


def test_raycast_core_imports_without_vtk_qt_openxr() -> None:
    """viewer.raycast runs on the bare GPU machine: numpy, moderngl and our own code."""
    proc = _run(
        """
        import viewer.raycast
        bad = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not bad, bad
        assert "viewer.render" not in sys.modules and "viewer.qt" not in sys.modules
        """
    )
    assert proc.returncode == 0, proc.stderr


def test_no_module_imports_another_packages_private_modules() -> None:
    """Cross-package imports go through public ``__init__`` exports (``from x._y`` stays
    inside package ``x``); import-linter cannot say this, so the AST does."""
    import ast
    import pathlib

    roots = ("analysis", "viewer", "xrmode", "vrscope")
    base = pathlib.Path(__file__).resolve().parents[1]
    bad = []
    for root in roots:
        for path in (base / root).rglob("*.py"):
            parts = path.relative_to(base).with_suffix("").parts
            pkg = ".".join(parts[:-1])  # a module's package; an __init__'s own package
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                    continue
                mod = node.module.split(".")
                if mod[0] not in roots:
                    continue
                names = [*mod, *(a.name for a in node.names)]
                for i, part in enumerate(names):
                    if part.startswith("_") and not part.startswith("__"):
                        owner = ".".join(names[:i])
                        if not (pkg == owner or pkg.startswith(owner + ".")):
                            bad.append(f"{path.relative_to(base)}:{node.lineno} {node.module}")
                        break
    assert not bad, "\n".join(bad)
