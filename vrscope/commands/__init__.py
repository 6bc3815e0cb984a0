"""One module per ``vrscope`` sub-command.

A command module defines ``ORDER`` (position in ``--help``) and
``register(subparsers)``, which adds its parser and sets ``func=run`` where
``run(args) -> int``. Keep heavy imports inside ``run`` so ``--help`` stays fast.
Raise :class:`analysis.errors.VrscopeError` subclasses for user errors; the
entry point turns them into one line and exit code 2.
"""

from vrscope.commands._options import finite_float

__all__ = ["finite_float"]
