"""``python -m viewer.actions desktop|headset``: print the docs' action table."""

from __future__ import annotations

import sys

from ._registry import ACTIONS


def main(argv: list[str]) -> int:
    which = argv[0] if argv else "desktop"
    if which not in ("desktop", "headset"):
        sys.stderr.write("usage: python -m viewer.actions desktop|headset\n")
        return 2
    table = ACTIONS.desktop_table() if which == "desktop" else ACTIONS.headset_table()
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
