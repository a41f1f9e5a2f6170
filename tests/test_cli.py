"""The command line, in process with typer's CliRunner against a real server."""

from __future__ import annotations

import getpass
import os
import stat
import subprocess
import sys

import anyio
import httpx
from typer.testing import CliRunner

from backchannel.cli import app
from backchannel.names import is_agent_style, is_reserved
from backchannel.people import PERSON_NAME_RE
from backchannel.server.security import SESSION_HEADER
from tests.conftest import RunningServer, register

runner = CliRunner()


def cli(server: RunningServer, *args: str) -> str:
    result = runner.invoke(app, [*args, "--server", server.url, "--data-dir", str(server.settings.data_dir)])
    assert result.exit_code == 0, result.output
    return result.output


def test_send_and_read_act_as_the_local_human(server: RunningServer) -> None:
    cli(server, "name", "ci")
    message_id = cli(server, "send", "build is green").strip()
    assert message_id.isdigit()
    assert f"[{message_id}] ci: build is green" in cli(server, "read", "--limit", "5")


def test_the_cli_and_this_machines_browser_are_one_person_named_once(server: RunningServer) -> None:
    """Issue 8 #22: no more `root` from the CLI and `you` in the browser."""
    default = cli(server, "name").strip()
    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = ""
    expected = login if PERSON_NAME_RE.fullmatch(login) and not is_reserved(login) else "person"
    assert default == (expected if not is_agent_style(expected) else "person")
    first = cli(server, "send", "from the shell").strip()

    async def browser_renames() -> dict:
        async with httpx.AsyncClient(base_url=server.url) as page:
            await page.get("/")  # the page: cookies, as a browser gets them
            page.headers[SESSION_HEADER] = server.app.state.services.guard.secrets.session
            me = (await page.get("/api/me")).json()
            assert me["name"] == default
            return (await page.put("/api/me", json={"name": "maya"})).json() | {"first": me}

    renamed = anyio.run(browser_renames)
    assert renamed["person_id"] == renamed["first"]["person_id"]
    second = cli(server, "send", "still me").strip()
    listing = cli(server, "read")
    # One person: the earlier message follows the new name too.
    assert f"[{first}] maya: from the shell" in listing and f"[{second}] maya: still me" in listing
    refused = runner.invoke(
        app, ["name", "you", "--server", server.url, "--data-dir", str(server.settings.data_dir)]
    )
    assert refused.exit_code == 1 and "reserved" in refused.output
    # Review #15: the removed `send --as` says what replaced it, not a bare usage error.
    removed = runner.invoke(
        app,
        ["send", "hi", "--as", "bob", "--server", server.url, "--data-dir", str(server.settings.data_dir)],
    )
    assert removed.exit_code == 1 and "backchannel name NEW" in removed.output, removed.output


def test_error_text_keeps_bracketed_words(tmp_path) -> None:
    """Issue 8 #4: rich markup must not eat `[server]` in what a user or a file supplied."""
    config = tmp_path / "c.toml"
    config.write_text("[server]\nprot = 1\nport = 'eighty'\n")
    result = runner.invoke(app, ["serve", "--config", str(config), "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "unknown setting [server].prot is ignored" in result.output
    assert "(from [server].port) has an invalid value" in result.output
    config.write_text("server = 1\n")
    result = runner.invoke(app, ["serve", "--config", str(config), "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "[server] in the config file must be a table" in result.output


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
