"""CLI fuzz (issue 21): bad numbers for every numeric option of every command.

The options are found by walking the parser (so new commands are covered); each bad
value must give exit code 2 and one line on stderr naming the option, no traceback,
within a time bound. NaN, infinities, overflow and text are wrong for any number.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import pytest

from vrscope.cli import build_parser, main

BAD = ["nan", "inf", "-inf", "1e999", "ten"]


def _numeric_options() -> list[tuple[list[str], str, int]]:
    """(command path, option string, nargs) of every option that takes numbers."""
    out: list[tuple[list[str], str, int]] = []

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, [*path, name])
            elif action.option_strings and action.type is not None:
                probe = _probe(action.type)
                if probe:
                    n = action.nargs if isinstance(action.nargs, int) else 1
                    out.append((path, action.option_strings[-1], n))

    walk(build_parser(), [])
    return out


def _probe(kind: Any) -> bool:
    """Whether an argparse type reads numbers (it takes '3')."""
    try:
        return isinstance(kind("3"), int | float)
    except Exception:
        return False


# "-inf" after a multi-value option reads as an option name (argparse): only "=" passes it.
CASES = [
    (path, opt, n, bad)
    for path, opt, n in _numeric_options()
    for bad in BAD
    if n == 1 or not bad.startswith("-")
]


def test_the_fuzz_covers_many_cases() -> None:
    assert len(CASES) >= 300
    assert len({tuple(p) for p, *_ in CASES}) >= 12  # commands with numeric options


@pytest.mark.parametrize(("path", "opt", "n", "bad"), CASES, ids=lambda v: str(v))
def test_a_bad_number_is_one_line_and_exit_2(
    path: list[str], opt: str, n: int, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    t0 = time.monotonic()
    with pytest.raises(SystemExit) as info:
        main([*path, f"{opt}={bad}"] if n == 1 else [*path, opt, *([bad] * n)])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert f"argument {opt}" in err[0] or f"argument {opt}/" in err[0] or opt in err[0], err
    assert any(w in err[0] for w in ("number", "invalid", "integer")), err  # the value
    assert time.monotonic() - t0 < 10.0


ABSURD = [
    ["render", "s.zarr", "--out", "a.png", "--size", "0", "0"],
    ["render", "s.zarr", "--out", "a.png", "--zoom=-1"],
    ["render", "s.zarr", "--out", "a.png", "--stream-timeout=-5"],
    ["render", "s.zarr", "--out", "a.png", "--tail=-1"],
    ["render", "s.zarr", "--out", "a.png", "--voxel-budget", "0"],
    ["movie", "s.zarr", "--out", "a.mp4", "--frames", "99999999"],
    ["movie", "s.zarr", "--out", "a.mp4", "--fps", "0"],
    ["movie", "s.zarr", "--out", "a.mp4", "--seconds", "0"],
    ["stream", "--procedural", "64x64x64", "--workers", "1000000"],
    ["stream", "--procedural", "64x64x64", "--timeout=-1"],
    ["stream", "--procedural", "64x64x64", "--fps", "0"],
    ["info", "s.zarr", "--stream", "--size", "0", "0"],
    ["infer", "s.zarr", "--model", "m.onnx", "--out", "o", "--batch-size", "0"],
    ["infer", "s.zarr", "--model", "m.onnx", "--out", "o", "--tile", "0", "0", "0"],
    ["train", "s.zarr", "--labels", "x", "--out", "d", "--lr=-1"],
    ["train", "s.zarr", "--labels", "x", "--out", "d", "--patch", "0", "0"],
    ["train", "s.zarr", "--labels", "x", "--out", "d", "--epochs", "0"],
    ["train", "s.zarr", "--labels", "x", "--out", "d", "--max-minutes=-3"],
    ["serve", "p", "--duration=-1"],  # (0 is allowed: stop at once)
    ["sample", "timelapse", "o.zarr", "--frames", "0"],
    ["info", "s.zarr", "--cache-mb", "0"],
]


@pytest.mark.parametrize("argv", ABSURD, ids=lambda a: " ".join(a))
def test_absurd_option_values_are_refused_at_parse_time(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Negative, zero or huge counts, durations and sizes (the campaign's hangs and
    silent accepts): refused by the option's type, before any input is opened."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "argument --" in err[0], err
    assert "outside" in err[0] or "greater than 0" in err[0] or "negative" in err[0], err
