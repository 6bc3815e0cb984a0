"""The ``vrscope`` command line: one entry point for every sub-command.

Each command lives in its own module under ``vrscope.commands`` and exposes
``register(subparsers)``; heavy imports happen inside the command's handler so
that ``vrscope --help`` is fast and works without the optional extras.
"""

__version__ = "0.1.0"
