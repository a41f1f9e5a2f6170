"""The real server, the real wrapper, real tmux and a file-config test CLI that never reconnects.

One story per test: the CLI is woken by a mention and answers as itself; then its token is revoked,
the wrapper is frozen past the crash timeout, and the server restarts, and after each the same
unchanged CLI process keeps working under the same name with every mention delivered exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import ServerProcess
from tests.wrapper.wrapper_harness import Feed, Wrapper, wait_log, write_fake_agent

pytestmark = pytest.mark.anyio

TRICKY = "quote \" single ' dollar $HOME backtick `id` semi ; amp && pipe | done\nsecond line\n\tthird"


def fake_events(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    return path


async def send(server: ServerProcess, text: str, channel: str = "general") -> int:
    async with server.human() as human:
        response = await human.post(f"/api/channels/{channel}/messages", json={"text": text})
        assert response.status_code == 201, response.text
        return int(response.json()["id"])


async def agent_state(server: ServerProcess, name: str) -> str:
    async with server.human() as human:
        agents = (await human.get("/api/agents")).json()
    rows = agents["agents"] if isinstance(agents, dict) else agents
    return next(a["state"] for a in rows if a["name"] == name)


def injected(event: dict[str, object]) -> bool:
    return (
        event.get("kind") == "delivery" and event.get("agent") == "fake" and event.get("state") == "injected"
    )


def offline(event: dict[str, Any]) -> bool:
    return (
        event.get("kind") == "presence"
        and event["agent"]["name"] == "fake"
        and event["agent"]["state"] == "offline"
    )


async def test_identity_survives_rotation_freeze_and_restart(
    server_process: Callable[..., ServerProcess], repo: Path, wrappers: list[Wrapper]
) -> None:
    server = server_process(BACKCHANNEL_CRASH_TIMEOUT="2", BACKCHANNEL_PRESENCE_SWEEP_INTERVAL="0.2")
    log = repo / "fake.jsonl"
    write_fake_agent(repo, log=log, strip_env=["BCTEST_STRIPPED"])
    env = {"BCTEST_KEY": "from-wrapper", "BCTEST_STRIPPED": "x"}
    wrapper = Wrapper(repo, server.url, server.data_dir, env)
    # A tmux server already running with an older environment must not leak into the CLI.
    wrapper.tmux("new-session", "-d", "-s", "older", "-e", "BCTEST_KEY=stale-tmux-env", "sleep", "60")
    wrappers.append(wrapper.start())
    feed = Feed(server.url, server.data_dir)

    async with anyio.create_task_group() as tg:
        await tg.start(feed.run)
        await feed.joined("fake")

        # 1. A mention wakes the CLI; text with shell and tmux metacharacters arrives intact.
        await send(server, f"@fake {TRICKY}")
        reply = await feed.reply_to(f"@fake {TRICKY}")
        assert reply["sender"] == "fake"
        assert "Use chat_read" in reply["text"]  # the wake prompt reached the CLI, flattened to one line

        # 2. Token revoked: the wrapper re-registers, the proxy swaps the token, the CLI notices nothing.
        async with server.human() as human:
            assert (await human.post("/api/agents/fake/rotate")).status_code in (200, 204)
        await send(server, "@fake after rotation")
        assert (await feed.reply_to("@fake after rotation"))["sender"] == "fake"
        # Acked before we freeze (until the ack, the server folds a new mention into this trigger).
        await feed.wait("delivery reported", injected, start=len(feed.events) - 3)

        # 3. Wrapper frozen past the crash timeout; a mention sent meanwhile is delivered once on return.
        wrapper.signal(signal.SIGSTOP)
        await feed.wait("fake to go offline", offline)
        await send(server, "@fake while you were frozen")
        wrapper.signal(signal.SIGCONT)
        assert (await feed.reply_to("@fake while you were frozen"))["sender"] == "fake"
        # The message event can beat the tool call's HTTP answer: let the turn finish before the crash.
        await wait_log(log, "the frozen turn to end", lambda e: "frozen" in str(e.get("newest")))

        # 4. Server killed and restarted: its MCP sessions are gone; the proxy re-opens the CLI's.
        server.kill()
        server.start()
        await send(server, "@fake after restart")
        assert (await feed.reply_to("@fake after restart"))["sender"] == "fake"

        # Sync point, then: every mention answered exactly once, by the one CLI process we started.
        await send(server, "@fake last one")
        await feed.reply_to("@fake last one")
        tg.cancel_scope.cancel()

    mentions = [
        f"@fake {TRICKY}",
        "@fake after rotation",
        "@fake while you were frozen",
        "@fake after restart",
    ]
    for text in mentions:
        echoes = [m for m in feed.messages("fake") if f"read={json.dumps(text)}" in m["text"]]
        assert len(echoes) == 1, (text, echoes)
    events = fake_events(log)
    connected = [e for e in events if e["event"] == "connected"]
    assert len(connected) == 1, "the CLI must never reconnect or restart"
    assert connected[0]["env"] == {"BCTEST_KEY": "from-wrapper"}  # wrapper's env, minus strip_env
    assert not [e for e in events if e["event"] == "error"], events
    assert await agent_state(server, "fake") != "offline"

    # Ctrl-C / SIGTERM: the CLI is stopped, the identity leaves, nothing is left behind.
    pid = int(connected[0]["pid"])  # type: ignore[call-overload]
    wrapper.signal(signal.SIGTERM)
    assert wrapper.wait() in (0, 128 + signal.SIGTERM)
    assert "backchannel-fake" not in wrapper.tmux("list-sessions")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert await agent_state(server, "fake") == "offline"
    assert not list((server.data_dir / "wrapper" / "run").glob("*")), "config and launch files are removed"


async def test_mention_while_busy_is_queued_then_delivered(
    server_process: Callable[..., ServerProcess], repo: Path, wrappers: list[Wrapper]
) -> None:
    server = server_process()
    gate = repo / "gate"
    os.mkfifo(gate)
    write_fake_agent(repo, log=repo / "fake.jsonl", gate=gate)
    wrappers.append(Wrapper(repo, server.url, server.data_dir).start())
    feed = Feed(server.url, server.data_dir)

    def delivered(state: str) -> Callable[[dict[str, object]], bool]:
        return lambda e: e.get("kind") == "delivery" and e.get("agent") == "fake" and e.get("state") == state

    async with anyio.create_task_group() as tg:
        await tg.start(feed.run)
        await feed.joined("fake")
        await send(server, "@fake first")
        await feed.wait("first prompt injected", delivered("injected"))
        await feed.wait("fake busy", lambda e: e.get("kind") == "presence" and e["agent"]["state"] == "busy")
        # The second mention must come after the CLI's chat_read, or that read would see it first.
        await wait_log(repo / "fake.jsonl", "the first chat_read", lambda e: e["event"] == "read")
        mark = len(feed.events)
        await send(server, "@fake second")
        # While the CLI is held busy, the second wake-up must wait in the wrapper's queue.
        with anyio.move_on_after(1.0):
            await feed.wait("no injection while busy", delivered("injected"), start=mark, timeout=2)
            raise AssertionError("the second prompt was typed while the CLI was busy")
        await anyio.to_thread.run_sync(gate.write_text, "go\n")
        await feed.reply_to("@fake first")
        await feed.wait("second prompt injected once idle", delivered("injected"), start=mark)
        await anyio.to_thread.run_sync(gate.write_text, "go\n")
        assert (await feed.reply_to("@fake second"))["sender"] == "fake"
        tg.cancel_scope.cancel()


async def test_no_tmux_mode_leaves_ctrl_c_to_the_cli_and_stops_on_sigterm(
    server_process: Callable[..., ServerProcess], repo: Path
) -> None:
    server = server_process()
    log = repo / "fake.jsonl"
    write_fake_agent(repo, log=log)
    argv = [sys.executable, "-m", "backchannel", "run", "fake", "--no-tmux", "--server", server.url]
    argv += ["--data-dir", str(server.data_dir), "--config", str(repo / "backchannel.toml")]
    proc = await anyio.open_process(argv, cwd=repo, stdin=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        output = ""

        async def until(text: str) -> None:
            nonlocal output
            with anyio.fail_after(20):
                async for chunk in proc.stdout:  # type: ignore[union-attr]
                    output += chunk.decode(errors="replace")
                    if text in output:
                        return
            raise AssertionError(f"wrapper ended before printing {text!r}:\n{output}")

        await until("joined as fake")
        await wait_log(log, "the CLI to connect", lambda e: e["event"] == "connected")
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the wrapper in the foreground
        await send(server, "@fake are you still there")
        await until("mentioned you")  # no tmux: the wake-up is shown, and the wrapper is alive
        proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(15):
            assert await proc.wait() == 128 + signal.SIGTERM
        pid = int(next(e for e in fake_events(log) if e["event"] == "connected")["pid"])  # type: ignore[call-overload]
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
