"""``backchannel run`` at the edge: what reaches the CLI (item 20), the join key (7), attach (21)."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from backchannel.cli import app
from backchannel.wrapper import command
from backchannel.wrapper.runner import RunOptions


class Captured:
    options: RunOptions | None = None


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Captured:
    """Stand in for the Runner: record the options ``run`` resolved, start nothing."""
    seen = Captured()

    class FakeRunner:
        def __init__(self, profile: Any, options: RunOptions) -> None:
            seen.options = options

        async def run(self) -> int:
            return 0

    monkeypatch.setattr(command, "Runner", FakeRunner)
    monkeypatch.delenv("BACKCHANNEL_JOIN_KEY", raising=False)
    monkeypatch.delenv("BACKCHANNEL_URL", raising=False)
    monkeypatch.setenv("BACKCHANNEL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BACKCHANNEL_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("")
    return seen


def plain(output: str) -> str:
    """Rich draws errors in a wrapped box: drop the frame and join the lines."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["run", *args])


def test_only_what_follows_the_double_dash_reaches_the_cli(captured: Captured) -> None:
    result = invoke("claude", "--label", "L", "--", "--model", "opus", "--port", "1")
    assert result.exit_code == 0, result.output
    assert captured.options is not None
    assert captured.options.extra_args == ("--model", "opus", "--port", "1")
    assert captured.options.label == "L"


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["--dangerously-skip-permissions"], "backchannel run claude -- --dangerously-skip-permissions"),
        (["stray"], "Arguments for the agent CLI go after --"),
        (["--mcp-http-port", "8201"], "--mcp-http-port is an agentchattr option"),
        (["--mcp-sse-port=8202"], "--mcp-sse-port is an agentchattr option"),
        (["--upload-dir", "x"], "uploads live in the server's data dir"),
        (["--port", "99999"], "--port must be a port number"),
        (["--port", "8310", "--server", "http://127.0.0.1:1"], "not both"),
    ],
)
def test_unknown_options_before_the_double_dash_are_refused_with_a_hint(
    captured: Captured, args: list[str], hint: str
) -> None:
    result = invoke("claude", *args)
    assert result.exit_code == 2
    assert hint in plain(result.output), result.output
    assert captured.options is None, "nothing started"


def test_agentchattr_wrapper_flags_are_understood(captured: Captured) -> None:
    result = invoke("claude", "--port", "8310", "--no-restart", "--label", "Rev")
    assert result.exit_code == 0, result.output
    assert captured.options is not None
    assert captured.options.server_url == "http://127.0.0.1:8310"
    assert captured.options.restart is False
    assert captured.options.extra_args == ()
    invoke("claude", "--port=8311")
    assert captured.options.server_url == "http://127.0.0.1:8311"
    assert captured.options.restart is True  # restarting is the default


def test_the_join_key_comes_from_the_env_else_the_data_dir(
    captured: Captured, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert invoke("claude").exit_code == 0
    assert captured.options is not None and captured.options.join_key is None
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "join_key").write_text("from-the-server\n")
    (tmp_path / "data" / "join_key").chmod(0o600)
    assert invoke("claude").exit_code == 0
    assert captured.options.join_key == "from-the-server"
    monkeypatch.setenv("BACKCHANNEL_JOIN_KEY", "from-env")
    assert invoke("claude").exit_code == 0
    assert captured.options.join_key == "from-env"


@pytest.mark.parametrize(
    ("server", "sent"),
    [
        ("http://127.0.0.1:8300", True),
        ("http://localhost:8300", True),
        ("http://[::1]:8300", True),
        ("http://127.8.0.1:8300", True),
        ("https://chat.example.com", False),
        ("http://192.0.2.7:8300", False),
        ("http://127.0.0.1.example.com:8300", False),
    ],
)
def test_the_local_join_key_goes_only_to_a_loopback_server(
    captured: Captured, tmp_path: Path, server: str, sent: bool
) -> None:
    """Review 10: the key in our data dir opens *our* server; another --server must never get it."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "join_key").write_text("local-key\n")
    (tmp_path / "data" / "join_key").chmod(0o600)
    assert invoke("claude", "--server", server).exit_code == 0
    assert captured.options is not None
    assert captured.options.join_key == ("local-key" if sent else None)


class Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("use_tmux", "detach", "stdin", "stdout", "env", "expected"),
    [
        (True, False, True, True, {}, True),  # a person at a terminal: show them the agent
        (True, True, True, True, {}, False),  # --detach
        (False, False, True, True, {}, False),  # --no-tmux: the CLI is already in this terminal
        (True, False, False, True, {}, False),  # piped input: a script, not a person
        (True, False, True, False, {}, False),  # output to a file or pipe
        (True, False, True, True, {"TMUX": "/tmp/tmux-0/default,1,0"}, False),  # never nest tmux
    ],
)
def test_attach_only_from_an_interactive_terminal(
    use_tmux: bool, detach: bool, stdin: bool, stdout: bool, env: dict[str, str], expected: bool
) -> None:
    decided = command.should_attach(
        use_tmux=use_tmux, detach=detach, stdin=Stream(stdin), stdout=Stream(stdout), env=env
    )
    assert decided is expected


def test_a_local_wrapper_joins_a_network_mode_server_with_the_key_from_its_data_dir(
    server_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 7, wrapper side, against the real server: no BACKCHANNEL_JOIN_KEY set, still let in."""
    server = server_factory(allow_network=True)
    config = tmp_path / "backchannel.toml"
    config.write_text(f'[agents.once]\ncommand = {json.dumps(sys.executable)}\nargs = ["-c", "pass"]\n')
    monkeypatch.delenv("BACKCHANNEL_JOIN_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    args = ["once", "--no-tmux", "--no-restart", "--server", server.url, "--config", str(config)]
    result = invoke(*args, "--data-dir", str(tmp_path / "elsewhere"))  # no key there: refused
    assert result.exit_code == 1 and "refused to register" in plain(result.output), result.output
    result = invoke(*args, "--data-dir", str(server.settings.data_dir))
    assert result.exit_code == 0, result.output
    assert "joined as once" in result.output
