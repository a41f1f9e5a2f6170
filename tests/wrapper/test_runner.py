"""The Runner in process against a real server in a thread: identity, env, settings, backoff."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import typer
from tests.conftest import RunningServer
from typer.testing import CliRunner
from wrapper_harness import wait_log

from backchannel.config import Settings
from backchannel.wrapper import command
from backchannel.wrapper.agent_client import instance_id
from backchannel.wrapper.profiles import load_profile
from backchannel.wrapper.runner import Runner, RunOptions

pytestmark = pytest.mark.anyio

# A one-shot "CLI": reports its argv, env and the settings file it was given, then exits 3.
REPORT = """
import json, os, sys, pathlib
settings = pathlib.Path(os.environ["REPORT_SETTINGS"])
out = {"argv": sys.argv[1:], "env": {k: v for k, v in os.environ.items() if k.startswith("BCTEST_")},
       "settings": json.loads(settings.read_text()) if settings.exists() else None}
pathlib.Path(os.environ["REPORT_TO"]).write_text(json.dumps(out))
sys.exit(3)
"""


def options(server: RunningServer, tmp_path: Path, env: dict[str, str], **kw: Any) -> RunOptions:
    return RunOptions(
        server_url=server.url, data_dir=tmp_path / "data", env=env, use_tmux=False, say=lambda _: None, **kw
    )


async def agents(server: RunningServer) -> list[dict[str, Any]]:
    async with server.human() as human:
        data = (await human.get("/api/agents")).json()
    return data["agents"] if isinstance(data, dict) else data


def test_instance_id_is_stable_per_agent_and_directory(tmp_path: Path) -> None:
    first = instance_id(tmp_path, "claude", tmp_path / "repo-a")
    assert instance_id(tmp_path, "claude", tmp_path / "repo-a") == first
    assert instance_id(tmp_path, "claude", tmp_path / "repo-b") != first
    assert instance_id(tmp_path, "codex", tmp_path / "repo-a") != first
    assert len(first) <= 64


async def test_foreground_cli_gets_its_env_settings_and_exit_code(
    server: RunningServer, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    (repo / ".qwen").mkdir(parents=True)
    original = '{"theme": "dark"}'
    (repo / ".qwen" / "settings.json").write_text(original)
    report = tmp_path / "report.json"
    table = {
        "command": sys.executable,
        "args": ["-c", REPORT],
        "strip_env": ["BCTEST_SECRET"],
        "mcp_inject": "settings_file",  # explicit: a shared settings file, restored on exit
        "mcp_settings_path": ".qwen/settings.json",
        "mcp_http_key": "httpUrl",
    }
    profile = load_profile("qwen", {"agents": {"qwen": table}}, env={}, config_path=None, cwd=repo)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),  # the runtime dir (settings leases) goes under it
        "BCTEST_KEEP": "yes",
        "BCTEST_SECRET": "strip me",
        "REPORT_SETTINGS": str(repo / ".qwen" / "settings.json"),
        "REPORT_TO": str(report),
    }
    runner = Runner(profile, options(server, tmp_path, env, extra_args=("--extra",)))
    with anyio.fail_after(20):
        code = await runner.run()
    assert code == 3
    seen = json.loads(report.read_text())
    assert seen["argv"] == ["--extra"]
    assert seen["env"] == {"BCTEST_KEEP": "yes"}
    entry = seen["settings"]["mcpServers"]["backchannel"]
    assert entry["httpUrl"].startswith("http://127.0.0.1:") and entry["httpUrl"].endswith("/mcp")
    assert server.url not in entry["httpUrl"], "the CLI talks to its proxy, not to the server"
    assert (repo / ".qwen" / "settings.json").read_text() == original, "settings restored on exit"
    assert [(a["name"], a["state"]) for a in await agents(server)] == [("qwen", "offline")]  # it left


# A CLI that reads the shared settings file at each start and reports which proxy it was given.
# "crash-once": its first run waits on the FIFO ``go`` and exits 3 (a crash); the second exits 0.
SETTINGS_READER = """
import json, os, pathlib, sys
me, report, go = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
url = json.loads(pathlib.Path(".shared/settings.json").read_text())["mcpServers"]["backchannel"]["httpUrl"]
runs = [line for line in (report.read_text().splitlines() if report.exists() else []) if f'"{me}"' in line]
with report.open("a") as fh:
    fh.write(json.dumps({"event": me, "run": len(runs) + 1, "url": url}) + "\\n")
if me == "alpha":
    if not runs:
        open(go).read()
        sys.exit(3)
    sys.exit(0)
open(go + "-never").read()  # beta keeps running until its wrapper stops it
"""


async def test_a_restarted_cli_reads_its_own_entry_in_a_shared_settings_file(
    server: RunningServer, tmp_path: Path
) -> None:
    """Review 1: another wrapper wrote the shared file meanwhile; the restart takes it back first."""
    repo = tmp_path / "repo"
    (repo / ".shared").mkdir(parents=True)
    report, go = tmp_path / "report.jsonl", tmp_path / "go"
    os.mkfifo(go)
    os.mkfifo(f"{go}-never")
    home = tmp_path / "home"
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}  # one runtime dir, so one lease state

    def runner(key: str) -> Runner:
        table = {
            "command": sys.executable,
            "args": ["-c", SETTINGS_READER, key, str(report), str(go)],
            "mcp_inject": "settings_file",
            "mcp_settings_path": ".shared/settings.json",
            "mcp_http_key": "httpUrl",
        }
        profile = load_profile(key, {"agents": {key: table}}, env={}, config_path=None, cwd=repo)
        return Runner(
            profile,
            options(server, tmp_path, env, restart=True, restart_delay=0.01, ready_timeout=0.3),
        )

    alpha, beta = runner("alpha"), runner("beta")
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(alpha.run)
            first = await wait_log(report, "alpha's first start", lambda e: e["event"] == "alpha")
            tg.start_soon(beta.run)  # writes its own proxy into the file once alpha's CLI has read it
            theirs = await wait_log(report, "beta's start", lambda e: e["event"] == "beta")
            await anyio.to_thread.run_sync(go.write_text, "crash")  # alpha's CLI crashes
            again = await wait_log(
                report, "alpha's restart", lambda e: e["event"] == "alpha" and e["run"] == 2
            )
            assert theirs["url"] != first["url"]
            assert again["url"] == first["url"], "the restarted CLI must talk through its own proxy"
            tg.cancel_scope.cancel()
    assert alpha.restarts == 1


async def test_rerun_in_the_same_directory_gets_the_same_name(server: RunningServer, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    table = {"command": sys.executable, "args": ["-c", "pass"], "mcp_inject": "proxy_flag"}
    profile = load_profile("codex", {"agents": {"codex": table}}, env={}, config_path=None, cwd=repo)
    for _ in range(2):
        runner = Runner(profile, options(server, tmp_path, {"PATH": "/usr/bin:/bin"}))
        with anyio.fail_after(20):
            assert await runner.run() == 0
        assert runner.me.name == "codex"
    assert [a["name"] for a in await agents(server)] == ["codex"]


async def test_wrapper_waits_for_a_server_that_is_not_up_yet(tmp_path: Path) -> None:
    settings = Settings(host="127.0.0.1", port=0, data_dir=tmp_path / "server")
    late = RunningServer(settings)
    # Reserve a port by starting and stopping once, then point the wrapper at it before it's back.
    late.start()
    late.stop()
    url = late.url
    repo = tmp_path / "repo"
    repo.mkdir()
    table = {"command": sys.executable, "args": ["-c", "pass"]}
    profile = load_profile("claude", {"agents": {"claude": table}}, env={}, config_path=None, cwd=repo)
    said: list[str] = []
    refused = anyio.Event()

    def say(text: str) -> None:
        said.append(text)
        refused.set()

    opts = RunOptions(server_url=url, data_dir=tmp_path / "data", env={}, use_tmux=False, say=say)
    runner = Runner(profile, opts)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(runner.run)
            await refused.wait()  # the first refused connection is reported before the retry
            port = int(url.rsplit(":", 1)[1])
            back = RunningServer(Settings(host="127.0.0.1", port=port, data_dir=tmp_path / "server")).start()
            try:
                await runner.ready.wait()
            finally:
                tg.cancel_scope.cancel()
                back.stop()
    assert "unreachable" in said[0]
    assert runner.me.name == "claude"


def test_run_command_reports_bad_config_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = typer.Typer()
    app.command("run", cls=command.RunCommand)(command.run)
    app.command("noop")(lambda: None)  # two commands, so typer keeps "run" as a subcommand
    config = tmp_path / "backchannel.toml"
    config.write_text('[agents.claude]\nmcp_inject = "carrier-pigeon"\n')
    result = CliRunner().invoke(app, ["run", "claude", "--config", str(config), "--", "--model", "x"])
    assert result.exit_code == 2, result.output
    assert "valid modes: proxy_file" in result.output
    monkeypatch.setenv("BACKCHANNEL_AGENT_COMMAND", "rm")
    result = CliRunner().invoke(app, ["run", "claude", "--config", str(config)])
    assert result.exit_code == 2
    assert "BACKCHANNEL_AGENT_COMMAND is not supported" in result.output


async def test_refused_registration_is_a_clear_message_not_a_traceback(tmp_path: Path) -> None:
    def server(request: httpx.Request) -> httpx.Response:
        assert request.headers.get("x-join-key") == "k3y"
        return httpx.Response(403, json={"error": "forbidden", "detail": "only accepted here"})

    table = {"command": sys.executable}
    profile = load_profile("claude", {"agents": {"claude": table}}, env={}, config_path=None, cwd=tmp_path)
    said: list[str] = []
    opts = RunOptions(
        server_url="http://192.0.2.1:8300", data_dir=tmp_path, env={}, use_tmux=False, say=said.append,
        join_key="k3y", transport=httpx.MockTransport(server),
    )  # fmt: skip
    with anyio.fail_after(10):
        assert await Runner(profile, opts).run() == 1
    assert said and "refused to register claude" in said[0] and "only accepted here" in said[0]


async def test_a_missing_cli_is_reported_before_anything_starts(tmp_path: Path) -> None:
    table = {"command": "no-such-cli-xyz"}
    profile = load_profile("mycli", {"agents": {"mycli": table}}, env={}, config_path=None, cwd=tmp_path)
    said: list[str] = []
    opts = RunOptions(
        server_url="http://192.0.2.1:8300", data_dir=tmp_path, env={"PATH": "/usr/bin"}, say=said.append
    )
    with anyio.fail_after(10):
        assert await Runner(profile, opts).run() == 127
    assert said == ["backchannel: 'no-such-cli-xyz' is not on PATH; is mycli installed?"]


async def test_registration_carries_the_instance_reclaim_secret(tmp_path: Path) -> None:
    """Item 9: the wrapper proves it is the same instance with a secret only it can read."""
    bodies: list[dict[str, Any]] = []

    def server(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(403, json={"error": "forbidden", "detail": "stop here"})

    table = {"command": sys.executable}
    profile = load_profile("claude", {"agents": {"claude": table}}, env={}, config_path=None, cwd=tmp_path)
    for _ in range(2):
        opts = RunOptions(
            server_url="http://192.0.2.1:8300", data_dir=tmp_path / "data", env={}, use_tmux=False,
            say=lambda _: None, transport=httpx.MockTransport(server),
        )  # fmt: skip
        with anyio.fail_after(10):
            assert await Runner(profile, opts).run() == 1
    first, second = bodies
    secret = first["reclaim_secret"]
    assert 32 <= len(secret) <= 128 and second["reclaim_secret"] == secret  # stable per instance
    stored = tmp_path / "data" / "wrapper" / "reclaim" / first["instance_id"]
    assert stored.read_text().strip() == secret and stored.stat().st_mode & 0o777 == 0o600
