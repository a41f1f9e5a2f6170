"""Item 21 with real tmux and the fake CLI: restart after exit, the crash-loop limit, attach/detach."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from tests.conftest import RunningServer
from wrapper_harness import FAKE_CLI, Feed, Wrapper, wait_log, write_fake_agent

from backchannel.wrapper.agent_client import instance_stem
from backchannel.wrapper.profiles import load_profile
from backchannel.wrapper.runner import Runner, RunOptions
from backchannel.wrapper.state import WrapperState
from backchannel.wrapper.tmux import Tmux

pytestmark = pytest.mark.anyio


@pytest.fixture
def tmux_socket() -> Iterator[str]:
    name = f"bc-term-{uuid.uuid4().hex[:10]}"
    yield name
    anyio.run(Tmux(name).kill_server)


def events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


async def screen(tmux: Tmux, session: str) -> str:
    """The pane's text with line wraps undone."""
    return " ".join(" ".join(await tmux.capture(session)).split())


def fake_runner(
    server: RunningServer, tmp_path: Path, socket: str, said: list[str], *args: str, **kw: Any
) -> Runner:
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    table = {
        "command": sys.executable,
        "args": [str(FAKE_CLI), "--log", str(tmp_path / "fake.jsonl"), *args],
        "mcp_inject": "proxy_file",
        "idle_pattern": r"ready>\s*$",
        "inject_delay": 0.05,
    }
    profile = load_profile("fake", {"agents": {"fake": table}}, env={}, config_path=None, cwd=repo)
    opts = RunOptions(
        server_url=server.url, data_dir=tmp_path / "data", env=dict(os.environ), tmux_socket=socket,
        say=said.append, restart=True, restart_delay=0.05, **kw,
    )  # fmt: skip
    return Runner(profile, opts)


async def test_the_cli_is_restarted_after_it_exits_and_answers_again(
    server: RunningServer, tmp_path: Path, tmux_socket: str
) -> None:
    said: list[str] = []
    runner = fake_runner(server, tmp_path, tmux_socket, said)
    log = tmp_path / "fake.jsonl"
    feed = Feed(server.url, server.settings.data_dir)
    with anyio.fail_after(40):
        async with anyio.create_task_group() as tg:
            await tg.start(feed.run)
            tg.start_soon(runner.run)
            first = await wait_log(log, "the CLI to connect", lambda e: e["event"] == "connected")
            os.kill(first["pid"], signal.SIGKILL)  # the CLI dies
            second = await wait_log(
                log, "the restarted CLI", lambda e: e["event"] == "connected" and e["pid"] != first["pid"]
            )
            async with server.human() as human:
                sent = await human.post("/api/channels/general/messages", json={"text": "@fake back?"})
                assert sent.status_code == 201, sent.text
            reply = await feed.reply_to("@fake back?")
            assert reply["sender"] == "fake"  # the same identity, through the same proxy
            tg.cancel_scope.cancel()
    assert runner.restarts == 1
    assert any("fake exited (status 137); restarting in 0.05 s" in s for s in said), said
    assert [e["pid"] for e in events(log) if e["event"] == "connected"] == [first["pid"], second["pid"]]


async def test_a_crash_loop_stops_with_a_clear_message(
    server: RunningServer, tmp_path: Path, tmux_socket: str
) -> None:
    said: list[str] = []
    runner = fake_runner(server, tmp_path, tmux_socket, said, "--exit", "7", crash_loop_max=3)
    with anyio.fail_after(40):
        code = await runner.run()
    assert code == 7, (said, events(tmp_path / "fake.jsonl"))
    assert len([e for e in events(tmp_path / "fake.jsonl") if e["event"] == "connected"]) == 3
    assert runner.restarts == 2
    assert "fake exited 3 times within 60 s (last status 7); not restarting it again" in said[-1], said
    assert "backchannel-fake" not in await Tmux(tmux_socket).run("list-sessions", check=False)
    assert not list((tmp_path / "data" / "wrapper" / "run").iterdir()), "per-run files removed"


async def test_no_restart_leaves_with_the_cli_exit_code(
    server: RunningServer, tmp_path: Path, tmux_socket: str
) -> None:
    said: list[str] = []
    runner = fake_runner(server, tmp_path, tmux_socket, said, "--exit", "5")
    runner.opts.restart = False
    with anyio.fail_after(30):
        assert await runner.run() == 5
    assert runner.restarts == 0 and "fake exited (status 5); leaving" in said[-1]


async def test_quitting_the_cli_in_tmux_leaves_instead_of_restarting(
    server: RunningServer, tmp_path: Path, tmux_socket: str
) -> None:
    """Review 9: exit status 0 is the user quitting (/exit), in tmux too; only a crash restarts."""
    said: list[str] = []
    runner = fake_runner(server, tmp_path, tmux_socket, said, "--exit", "0", crash_loop_max=2)
    with anyio.fail_after(30):
        assert await runner.run() == 0
    assert runner.restarts == 0 and "fake exited (status 0); leaving" in said[-1], said
    assert len([e for e in events(tmp_path / "fake.jsonl") if e["event"] == "connected"]) == 1


async def test_two_wrappers_in_one_directory_both_run(
    server: RunningServer, tmp_path: Path, tmux_socket: str
) -> None:
    """Review 2: the second `run fake` in the same directory is fake-2; the first keeps its CLI and token."""
    said_a: list[str] = []
    said_b: list[str] = []
    first = fake_runner(server, tmp_path, tmux_socket, said_a)
    second = fake_runner(server, tmp_path, tmux_socket, said_b)
    tmux = Tmux(tmux_socket)
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(first.run)
            await first.ready.wait()
            tg.start_soon(second.run)
            await second.ready.wait()
            assert (first.me.name, second.me.name) == ("fake", "fake-2"), (said_a, said_b)
            assert first.instance != second.instance
            assert await tmux.has_session("backchannel-fake"), "the first CLI must not be killed"
            assert await tmux.has_session("backchannel-fake-2")
            await first.client.heartbeat(first.me, None)  # its token was not revoked
            tg.cancel_scope.cancel()
    assert not any("replacing leftover" in s for s in said_b), said_b
    # Both left: the directory's first slot is free again, so the next run is `fake` once more.
    state = WrapperState(tmp_path / "data", {})
    slot, fd = state.lock_instance(instance_stem("fake", tmp_path / "repo"))
    os.close(fd)
    assert slot == 1


async def test_attached_from_a_terminal_detach_keeps_it_running(
    server: RunningServer, tmp_path: Path, tmux_socket: str
) -> None:
    """The wrapper runs in a tmux pane of another tmux server: a real terminal, no person needed."""
    repo = tmp_path / "repo"
    repo.mkdir()
    log = tmp_path / "fake.jsonl"
    write_fake_agent(repo, log=log)
    wrapper = Wrapper(repo, server.url, server.settings.data_dir, tmux_socket=tmux_socket)
    outer = Tmux(f"{tmux_socket}-outer")
    env = ["env", "-u", "TMUX", "-u", "TMUX_PANE", f"BACKCHANNEL_TMUX_SOCKET={tmux_socket}"]
    env += ["BACKCHANNEL_RESTART_DELAY=0.1"]
    inner = Tmux(tmux_socket)
    try:
        await outer.new_session("term", [*env, *wrapper.argv()], cwd=repo, width=120, height=40)
        with anyio.fail_after(30):
            while "backchannel-fake" not in await inner.run(
                "list-clients", "-F", "#{client_session}", check=False
            ):
                await anyio.sleep(0.05)  # the wrapper attached its terminal to the CLI's session
            crashed = await wait_log(log, "the CLI to connect", lambda e: e["event"] == "connected")
            # Review 9: while attached, the wrapper's notices show on tmux's status line at once.
            os.kill(crashed["pid"], signal.SIGKILL)
            while "fake exited (status 137); restarting" not in await screen(outer, "term"):
                await anyio.sleep(0.05)
            await wait_log(
                log, "the restarted CLI", lambda e: e["event"] == "connected" and e["pid"] != crashed["pid"]
            )
            await inner.run("detach-client", "-s", "backchannel-fake")
            while "detached; fake keeps running" not in await screen(outer, "term"):
                await anyio.sleep(0.05)
        assert await inner.has_session("backchannel-fake"), "detaching must not stop the CLI"
        async with server.human() as human:
            agents = (await human.get("/api/agents")).json()
        rows = agents["agents"] if isinstance(agents, dict) else agents
        assert [(a["name"], a["state"]) for a in rows if a["name"] == "fake"][0][1] != "offline"
        subprocess.run(outer.argv("send-keys", "-t", "=term:", "C-c"), check=True)  # Ctrl-C stops it
        with anyio.fail_after(20):
            while await inner.has_session("backchannel-fake"):
                await anyio.sleep(0.05)
    finally:
        await outer.kill_server()


@pytest.mark.parametrize(("status", "runs"), [(3, 2), (0, 1)])
async def test_in_this_terminal_crashes_restart_but_quitting_leaves(
    server: RunningServer, tmp_path: Path, status: int, runs: int
) -> None:
    """--no-tmux: a crash is restarted (up to the crash-loop limit); exit 0 or Ctrl-C is the user quitting."""
    count = tmp_path / "runs"
    script = f"import sys; open({str(count)!r}, 'a').write('x'); sys.exit({status})"
    profile = load_profile(
        "once", {"agents": {"once": {"command": sys.executable, "args": ["-c", script]}}},
        env={}, config_path=None, cwd=tmp_path,
    )  # fmt: skip
    said: list[str] = []
    opts = RunOptions(
        server_url=server.url, data_dir=tmp_path / "data", env=dict(os.environ), use_tmux=False,
        say=said.append, restart=True, restart_delay=0.01, crash_loop_max=2,
    )  # fmt: skip
    with anyio.fail_after(20):
        assert await Runner(profile, opts).run() == status
    assert count.read_text() == "x" * runs, said
