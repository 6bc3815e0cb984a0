"""``vrscope xr`` without a runtime: one line, exit 2; bad arguments likewise."""

from __future__ import annotations

import pytest

from vrscope.cli import main


@pytest.fixture
def no_runtime(monkeypatch, tmp_path):
    # The loader then looks nowhere else (and finds nothing there).
    monkeypatch.setenv("XR_RUNTIME_JSON", str(tmp_path / "missing_runtime.json"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path))


def test_no_runtime_prints_one_line_and_exits_2(no_runtime, ball_store, capsys):
    rc = main(["xr", str(ball_store), "--exit-after", "1"])
    out, err = capsys.readouterr()
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    msg = lines[0]
    assert msg.startswith("vrscope xr: error: no OpenXR runtime found")
    for word in ("SteamVR", "Meta", "Windows Mixed Reality", "Monado", "XR_RUNTIME_JSON"):
        assert word in msg


def test_bad_arguments_exit_2_in_one_line(no_runtime, capsys):
    rc = main(["xr", "--opacity", "2"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "opacity" in err
    with pytest.raises(SystemExit) as exc:
        main(["xr", "--tool", "paint"])
    assert exc.value.code == 2


def test_help_lists_the_tools(capsys):
    with pytest.raises(SystemExit):
        main(["xr", "--help"])
    out = capsys.readouterr().out
    for tool in ("grab", "measure", "count", "track", "classify", "clip", "laser"):
        assert tool in out


def test_join_with_a_project_is_refused_in_one_line(no_runtime, tmp_path, capsys):
    url = "ws://127.0.0.1:8765/p?token=abc"
    rc = main(["xr", "--join", url, "--project", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "--join" in err and "--project" in err
    assert not (tmp_path / "p").exists()


def test_help_names_join_and_the_graphics_bindings(capsys):
    with pytest.raises(SystemExit):
        main(["xr", "--help"])
    out = capsys.readouterr().out
    for word in ("--join", "--graphics", "egl", "glx", "wgl", "vrscope serve"):
        assert word in out
