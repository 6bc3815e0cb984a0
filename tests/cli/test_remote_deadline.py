"""``--remote-timeout`` of ``vrscope info`` and ``vrscope render`` (issue 21: a total
deadline for a command's remote reads). A loopback server answers every request right
but late (well within each request's own timeouts): the command ends with one line
naming the deadline and the URL, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.analysis.io.test_remote_caps import SLOW_S, _store, fault_server
from vrscope.cli import main


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("command", ["info", "render"])
def test_slow_answers_end_the_command_at_its_remote_timeout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    _store(tmp_path)
    out = tmp_path / "out.png"
    extra = ["--out", str(out), "--size", "64", "48"] if command == "render" else []
    with fault_server(tmp_path, "", "slow") as server:
        # Opening the store reads several documents, each SLOW_S late.
        args = [command, f"{server.url}/s.zarr", *extra, "--remote-timeout", str(1.5 * SLOW_S)]
        code = main(args)
    line = _one_error_line(capsys)
    assert code == 2
    assert f"vrscope {command}: error:" in line and "(--remote-timeout)" in line, line
    assert f"{server.url}/s.zarr" in line, line
    assert not out.exists()


def test_info_within_its_remote_timeout_reads_the_slow_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _store(tmp_path)
    with fault_server(tmp_path, "", "slow") as server:
        assert main(["info", f"{server.url}/s.zarr", "--json", "--remote-timeout", "600"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["levels"][0]["shape"] == [32, 32, 48]


@pytest.mark.parametrize("command", ["info", "render"])
@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_a_bad_remote_timeout_is_a_usage_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, value: str
) -> None:
    extra = ["--out", str(tmp_path / "o.png")] if command == "render" else []
    with pytest.raises(SystemExit) as info:
        main([command, str(tmp_path / "s.zarr"), *extra, f"--remote-timeout={value}"])
    assert info.value.code == 2
    line = _one_error_line(capsys)
    assert "--remote-timeout" in line and value in line, line
    assert "unrecognized" not in line, line
