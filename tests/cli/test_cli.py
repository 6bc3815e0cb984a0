"""The entry point: --help lists every command, bad arguments give one line and exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vrscope.cli import build_parser, main


def test_help_lists_every_command_module(capsys: pytest.CaptureFixture[str]) -> None:
    import pkgutil

    import vrscope.commands

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    names = set(sub.choices)  # type: ignore[arg-type]
    modules = [m.name for m in pkgutil.iter_modules(vrscope.commands.__path__)]
    assert len(names) >= len([m for m in modules if not m.startswith("_")])
    for name in names:
        assert name in out


def test_unknown_command_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no-such-command" in err


def test_console_script_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vrscope", "--version"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and proc.stdout.startswith("vrscope ")
