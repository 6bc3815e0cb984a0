"""``vrscope`` entry point: builds the parser from ``vrscope.commands`` and maps errors.

User errors (bad paths, bad metadata, bad parameters, corrupt chunks) become one
line on stderr and exit code 2, never a traceback. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

import vrscope
import vrscope.commands as _commands
from analysis.errors import VrscopeError

__all__ = ["MissingExtraError", "build_parser", "main"]

log = logging.getLogger(__name__)

# Errors raised by the OS for a path the user gave: a user error, not a bug.
_USER_OS_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


class MissingExtraError(VrscopeError):
    """An optional dependency group is not installed."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments in one line (exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vrscope",
        description=(
            "vrscope: view, proofread and analyse volume microscopy (OME-Zarr) "
            "at the desktop or in an OpenXR headset."
        ),
    )
    parser.add_argument("--version", action="version", version=f"vrscope {vrscope.__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    modules = []
    for info in pkgutil.iter_modules(_commands.__path__):
        if info.name.startswith("_"):
            continue
        modules.append(importlib.import_module(f"vrscope.commands.{info.name}"))
    for module in sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.__name__)):
        module.register(sub)
    _finite_numbers(parser)
    return parser


def _finite_numbers(parser: argparse.ArgumentParser) -> None:
    """Every ``type=float`` option of every (sub)command refuses NaN and infinity at
    parse time (one usage line, exit 2), whatever the command does with it."""
    from vrscope.commands import finite_float

    for action in parser._actions:
        if action.type is float:
            action.type = finite_float
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _finite_numbers(child)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    prog = f"vrscope {args.command}"
    try:
        return int(args.func(args) or 0)
    except VrscopeError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except _USER_OS_ERRORS as exc:
        name = exc.filename if getattr(exc, "filename", None) else ""
        reason = exc.strerror or type(exc).__name__
        print(f"{prog}: error: {reason}: {name}".rstrip(": "), file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENAMETOOLONG):
            raise
        print(f"{prog}: error: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        # pathlib's resolve() (Python < 3.13) reports a symlink loop as a RuntimeError
        if not str(exc).startswith("Symlink loop from"):
            raise
        print(f"{prog}: error: {exc} (a symbolic link that points to itself)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def require_extra(module: str, extra: str) -> None:
    """Raise a one-line error naming the pip extra when ``module`` is not importable."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"this command needs the '{extra}' extra ({module} is missing): "
            f"pip install 'vrscope[{extra}]'"
        ) from exc
