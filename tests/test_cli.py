"""The command line, in process with typer's CliRunner against a real server."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import anyio
from typer.testing import CliRunner

from backchannel.cli import app
from tests.conftest import RunningServer, register

runner = CliRunner()


def cli(server: RunningServer, *args: str) -> str:
    result = runner.invoke(app, [*args, "--server", server.url, "--data-dir", str(server.settings.data_dir)])
    assert result.exit_code == 0, result.output
    return result.output


def test_send_and_read_act_as_the_local_human(server: RunningServer) -> None:
    message_id = cli(server, "send", "build is green", "--as", "ci").strip()
    assert message_id.isdigit()
    assert f"[{message_id}] ci: build is green" in cli(server, "read", "--limit", "5")


def test_agents_list_shows_state_never_tokens_and_rotate_revokes(server: RunningServer) -> None:
    agent = anyio.run(register, server.url)
    listing = cli(server, "agents", "list")
    assert "claude" in listing and "online" in listing and agent["token"] not in listing
    assert "rotated claude" in cli(server, "agents", "rotate", "claude")
    again = anyio.run(register, server.url, "claude", "i-1")
    assert again["name"] == "claude"


def test_wrong_data_dir_gets_a_clear_error(server: RunningServer, tmp_path) -> None:
    result = runner.invoke(app, ["send", "x", "--server", server.url, "--data-dir", str(tmp_path / "other")])
    assert result.exit_code == 1 and "401" in result.output and "data-dir" in result.output


def test_local_secret_is_private(server: RunningServer) -> None:
    mode = stat.S_IMODE(os.stat(server.settings.data_dir / "local_secret").st_mode)
    assert mode == 0o600


def test_server_unreachable_is_a_clear_error(tmp_path) -> None:
    result = runner.invoke(app, ["read", "--server", "http://127.0.0.1:9", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "cannot reach the server" in result.output


def test_serve_refuses_a_network_host_without_allow_network(tmp_path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "backchannel",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1 and "--allow-network" in proc.stderr


def test_serve_prints_its_url_and_ctrl_c_stops_it_cleanly(server_process) -> None:
    import signal

    import httpx

    proc = server_process()
    assert httpx.get(f"{proc.url}/api/health").json()["status"] == "ok"
    proc.proc.send_signal(signal.SIGINT)
    # uvicorn re-raises the signal after its graceful shutdown, so the shell sees the usual 130.
    assert proc.proc.wait(15) in (0, 130)
