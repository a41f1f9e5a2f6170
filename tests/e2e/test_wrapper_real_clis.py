"""The real Claude Code, Gemini, Codex and Qwen Code CLIs (npm) reach backchannel through the proxy.

These need the CLIs on PATH (``npm install -g @anthropic-ai/claude-code @google/gemini-cli
@openai/codex @qwen-code/qwen-code``); without them the tests fail with that instruction rather than
skip. Each CLI runs under a throwaway HOME with auto-update off; Claude talks to a fake model API
(tests/wrapper/fake_anthropic.py), Qwen to a fake OpenAI-compatible one (tests/wrapper/fake_openai.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from backchannel.wrapper.serving import serve
from tests.conftest import ServerProcess
from tests.wrapper import fake_anthropic, fake_openai
from tests.wrapper.wrapper_harness import Feed, Wrapper

pytestmark = [pytest.mark.anyio]

# Two lanes (xdist groups, see pyproject.toml): each runs its CLIs one at a time, so at most two real
# CLIs run at once, one per core. One lane would be the suite's critical path (~90 s alone on an idle
# machine, far more beside the other workers); the waits below are on events with bounds made for a
# loaded machine, so two CLIs sharing the cores only slows them. Each lane is ~45 s alone on an
# idle machine (Kilo, the heaviest, shares lane A with the light ones).
LANE_A = pytest.mark.xdist_group("real_clis")
LANE_B = pytest.mark.xdist_group("real_clis_b")


async def send(server: ServerProcess, text: str) -> None:
    async with server.human() as human:
        response = await human.post("/api/channels/general/messages", json={"text": text})
        assert response.status_code == 201, response.text


# Waits are on events (a join, a delivery, a message), so a generous bound costs nothing when all is
# well. It only has to hold on a loaded 2-core CI machine: a cold start there takes Kilo ~15 s of CPU
# (tens of seconds of wall time), and the first mention is typed only once the CLI is idle.
START_TIMEOUT = 150.0
ANSWER_TIMEOUT = 60.0


async def joined(feed: Feed, agent: str) -> None:
    """The wrapper registered (a Python process starting: seconds under load, not the default 15)."""
    await feed.wait(
        f"{agent} to join",
        lambda e: e.get("kind") == "presence" and e["agent"]["name"] == agent,
        timeout=START_TIMEOUT,
    )


async def answered(feed: Feed, agent: str, text: str, mark: int) -> None:
    """``text`` (sent after event ``mark``) reached the CLI, then the CLI answered it as ``agent``.

    Two waits, so a failure says which half broke: the wrapper types a mention only once the CLI is
    idle (after its start, a rotation or a server restart), and only then does the model's turn run.
    """
    await feed.wait(
        f"{text!r} typed into {agent}",
        lambda e: e.get("kind") == "delivery" and e.get("agent") == agent and e["state"] == "injected",
        timeout=START_TIMEOUT,
        start=mark,
    )
    await feed.wait(
        f"{agent}'s answer to {text!r}",
        lambda e: (e.get("message") or {}).get("sender") == agent,
        timeout=ANSWER_TIMEOUT,
        start=mark,
    )


INSTALL = (
    "npm install -g @anthropic-ai/claude-code @google/gemini-cli @openai/codex @qwen-code/qwen-code"
    " @github/copilot @kilocode/cli"
)


def run_wrapped(
    cli: str, server: ServerProcess, tmp_path: Path, *cli_args: str, env: dict[str, str] | None = None
) -> str:
    assert shutil.which(cli), f"{cli} is not installed: {INSTALL}"
    repo = tmp_path / "repo"
    home = tmp_path / "home"
    repo.mkdir()
    home.mkdir()
    quiet = {"HOME": str(home), "NO_COLOR": "1", "CI": "1", "DISABLE_AUTOUPDATER": "1"}
    env = {**os.environ, **quiet, **(env or {})}
    argv = [sys.executable, "-m", "backchannel", "run", cli, "--no-tmux", "--server", server.url]
    argv += ["--data-dir", str(server.data_dir), "--", *cli_args]
    result = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert not (repo / ".gemini" / "settings.json").exists(), "workspace settings restored (removed)"
    return output


@LANE_A
def test_the_lanes_really_are_xdist_groups(request: pytest.FixtureRequest) -> None:
    """Under ``--dist loadgroup`` a lane's tests carry its ``@group`` suffix, which is what xdist
    schedules by (pytest 9 dropped the attribute xdist 3.8 writes it to; tests/conftest.py sets it)."""
    if getattr(request.config.option, "loadgroup", False):
        assert request.node.nodeid.endswith("@real_clis"), request.node.nodeid


@LANE_A
def test_gemini_mcp_list_shows_backchannel_connected_through_the_proxy(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = server_process()
    output = run_wrapped("gemini", server, tmp_path, "mcp", "list")
    match = re.search(r"✓ backchannel: (http://127\.0\.0\.1:\d+)/mcp \(http\) - Connected", output)
    assert match, output
    assert match.group(1) != server.url, "Gemini must talk to the proxy, not the server"


@LANE_A
def test_codex_mcp_list_shows_backchannel_at_the_proxy(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = server_process()
    output = run_wrapped("codex", server, tmp_path, "mcp", "list")
    match = re.search(r"backchannel\s+(http://127\.0\.0\.1:\d+)/mcp\s+-\s+enabled", output)
    assert match, output
    assert match.group(1) != server.url, "Codex must talk to the proxy, not the server"


@LANE_A
async def test_claude_calls_chat_send_through_the_proxy_as_itself(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = server_process()
    app, requests = fake_anthropic.build("hello from the real claude")
    async with serve(app) as model_url:
        env = {"ANTHROPIC_API_KEY": "sk-fake-key", "ANTHROPIC_BASE_URL": model_url}
        args = ("-p", "say hi", "--output-format", "stream-json", "--verbose")
        output = await anyio.to_thread.run_sync(
            lambda: run_wrapped("claude", server, tmp_path, *args, env=env)
        )
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    init = next(line for line in lines if line.get("subtype") == "init")
    servers = {(s["name"], s["status"]) for s in init["mcp_servers"]}
    assert ("backchannel", "connected") in servers, init["mcp_servers"]
    assert "mcp__backchannel__chat_send" in init["tools"]
    results = [
        block
        for line in lines
        if line.get("type") == "user"
        for block in line["message"]["content"]
        if block.get("type") == "tool_result"
    ]
    assert results and not results[0].get("is_error"), results  # pre-approved, and not stale
    assert requests, "Claude never asked the fake model"
    async with server.human() as human:
        messages = (await human.get("/api/channels/general/messages")).json()["messages"]
    chat = [(m["sender"], m["text"]) for m in messages if m["kind"] != "system"]  # skip "claude joined."
    assert chat == [("claude", "hello from the real claude")]


def claude_home(home: Path, repo: Path, key: str) -> None:
    """A fresh ~/.claude.json that skips onboarding, the folder-trust and the API-key questions."""
    state = {
        "hasCompletedOnboarding": True,
        "theme": "dark",
        "customApiKeyResponses": {"approved": [key[-20:]], "rejected": []},
        "projects": {str(repo): {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True}},
    }
    home.mkdir(parents=True)
    (home / ".claude.json").write_text(json.dumps(state))


@LANE_B
async def test_interactive_claude_keeps_its_identity_through_rotation_freeze_and_crash(
    server_process: Callable[..., ServerProcess], tmp_path: Path, wrappers: list[Wrapper]
) -> None:
    """The real Claude Code TUI in tmux, woken by mentions, never asked to /mcp reconnect."""
    assert shutil.which("claude"), f"claude is not installed: {INSTALL}"
    server = server_process(BACKCHANNEL_CRASH_TIMEOUT="2", BACKCHANNEL_PRESENCE_SWEEP_INTERVAL="0.2")
    repo, home, key = (tmp_path / "repo").resolve(), tmp_path / "home", "sk-ant-fake-0123456789abcdefghij"
    repo.mkdir()
    claude_home(home, repo, key)
    turn_done = anyio.Event()
    pane_pid = ""

    def on_request(body: dict[str, Any]) -> None:
        nonlocal turn_done
        last = (body.get("messages") or [{}])[-1].get("content")
        if isinstance(last, list) and any(
            b.get("type") == "tool_result" for b in last if isinstance(b, dict)
        ):
            turn_done.set()  # Claude reported the chat_send result back: this turn is over

    app, _ = fake_anthropic.build("hello from claude", on_request)
    feed = Feed(server.url, server.data_dir)
    env = {"HOME": str(home), "ANTHROPIC_API_KEY": key, "DISABLE_AUTOUPDATER": "1"}
    # Manual permission mode: our tools are pre-approved; auto mode would ask the model to vet them.
    manual = ("--permission-mode", "default")
    wrapper = Wrapper(repo, server.url, server.data_dir, env, agent="claude", cli_args=manual)
    pane = ("display-message", "-p", "-t", "=backchannel-claude:", "#{pane_pid}")
    async with serve(app) as model_url, anyio.create_task_group() as tg:
        env["ANTHROPIC_BASE_URL"] = model_url
        wrappers.append(wrapper.start())
        await tg.start(feed.run)
        await joined(feed, "claude")

        async def mention_is_answered(text: str) -> None:
            nonlocal turn_done
            turn_done = anyio.Event()
            mark = len(feed.events)
            await send(server, text)
            await answered(feed, "claude", text, mark)
            with anyio.fail_after(30):
                await turn_done.wait()

        await mention_is_answered("@claude hello")
        pane_pid = wrapper.tmux(*pane).strip()
        assert pane_pid.isdigit(), pane_pid

        async with server.human() as human:
            assert (await human.post("/api/agents/claude/rotate")).status_code in (200, 204)
        await mention_is_answered("@claude after rotation")

        wrapper.signal(signal.SIGSTOP)
        await feed.wait(
            "claude to go offline", lambda e: e.get("kind") == "presence" and e["agent"]["state"] == "offline"
        )
        await send(server, "@claude while you were frozen")
        mark = len(feed.events)
        wrapper.signal(signal.SIGCONT)
        await answered(feed, "claude", "@claude while you were frozen", mark)  # typed once thawed
        with anyio.fail_after(30):
            await turn_done.wait()

        server.kill()
        server.start()
        await mention_is_answered("@claude after the server crashed")
        tg.cancel_scope.cancel()

    answers = feed.messages("claude")
    assert [m["text"] for m in answers] == ["hello from claude"] * 4, answers
    assert wrapper.tmux(*pane).strip() == pane_pid, "the one Claude process we started answered every time"


async def unattended_run(
    agent: str,
    server: ServerProcess,
    repo: Path,
    wrapper_env: dict[str, str],
    cli_args: tuple[str, ...],
    wrappers: list[Wrapper],
    model_env: Callable[[str], dict[str, str]],
) -> Wrapper:
    """Mention, rotation, server kill and restart: the one CLI process answers each as ``agent``.

    The CLI talks to the fake OpenAI-compatible API (``model_env`` maps its URL to the CLI's env).
    Any approval dialog on screen would hold the mentions, so passing means none was asked.
    """
    turn_done = anyio.Event()

    def on_request(body: dict[str, Any]) -> None:
        if ((body.get("messages") or [{}])[-1]).get("role") == "tool":
            turn_done.set()  # the CLI sent the chat_send result back: this turn is over

    app, requests = fake_openai.build(f"hello from {agent}", on_request)
    feed = Feed(server.url, server.data_dir)
    wrapper = Wrapper(repo, server.url, server.data_dir, wrapper_env, agent=agent, cli_args=cli_args)
    session = f"=backchannel-{agent}:"
    async with serve(app) as model_url, anyio.create_task_group() as tg:
        wrapper_env.update(model_env(model_url))
        wrappers.append(wrapper.start())
        await tg.start(feed.run)
        await joined(feed, agent)

        async def mention_is_answered(text: str) -> None:
            nonlocal turn_done
            turn_done = anyio.Event()
            mark = len(feed.events)
            await send(server, text)
            try:
                await answered(feed, agent, text, mark)
                with anyio.fail_after(30):
                    await turn_done.wait()
            except (AssertionError, TimeoutError) as exc:
                screen = wrapper.tmux("capture-pane", "-p", "-t", session)
                log = "\n".join(line for line in wrapper.output.splitlines() if "backchannel" in line)
                raise AssertionError(f"{exc}\nscreen:\n{screen}\nwrapper:\n{log[-3000:]}") from None

        await mention_is_answered(f"@{agent} hello")
        pane = ("display-message", "-p", "-t", session, "#{pane_pid}")
        pane_pid = wrapper.tmux(*pane).strip()
        assert pane_pid.isdigit(), pane_pid
        async with server.human() as human:
            assert (await human.post(f"/api/agents/{agent}/rotate")).status_code in (200, 204)
        await mention_is_answered(f"@{agent} after rotation")
        server.kill()
        server.start()
        await mention_is_answered(f"@{agent} after the server crashed")
        assert wrapper.tmux(*pane).strip() == pane_pid, "the one CLI process we started answered every time"
        tg.cancel_scope.cancel()

    answers = feed.messages(agent)
    assert [m["text"] for m in answers] == [f"hello from {agent}"] * 3, answers
    results = [m for body in requests for m in body.get("messages") or [] if m.get("role") == "tool"]
    assert results and "error" not in json.dumps(results[0]).lower(), results[0]
    wrapper.signal(signal.SIGTERM)  # a clean exit: the wrapper stops the CLI, leaves, restores files
    assert wrapper.wait() == 128 + signal.SIGTERM, wrapper.output
    async with server.human() as human:
        agents = (await human.get("/api/agents")).json()
    listed = agents["agents"] if isinstance(agents, dict) else agents
    assert [(a["name"], a["online"]) for a in listed] == [(agent, False)], listed
    return wrapper


@LANE_B
async def test_interactive_qwen_runs_unattended_through_rotation_and_server_restart(
    server_process: Callable[..., ServerProcess], tmp_path: Path, wrappers: list[Wrapper]
) -> None:
    """Qwen Code 0.24: no "Untrusted MCP server" question, no tool approval, no .qwen/ left behind."""
    assert shutil.which("qwen"), f"qwen is not installed: {INSTALL}"
    repo, home = (tmp_path / "repo").resolve(), tmp_path / "home"
    (home / ".qwen").mkdir(parents=True)
    repo.mkdir()
    settings = {"general": {"enableAutoUpdate": False}, "privacy": {"usageStatisticsEnabled": False}}
    (home / ".qwen" / "settings.json").write_text(json.dumps(settings))
    # QWEN_CODE_NO_RELAUNCH: no second Node process (a relaunch only to raise the heap limit).
    env = {"HOME": str(home), "OPENAI_API_KEY": "sk-fake", "NO_COLOR": "1", "QWEN_CODE_NO_RELAUNCH": "true"}
    await unattended_run(
        "qwen",
        server_process(),
        repo,
        env,
        ("--auth-type", "openai", "--model", "fake"),
        wrappers,
        lambda url: {"OPENAI_BASE_URL": url + "/v1"},
    )
    assert not (repo / ".qwen").exists(), "no .qwen/settings.json is left where there was none"


@LANE_B
async def test_interactive_copilot_runs_unattended_through_rotation_and_server_restart(
    server_process: Callable[..., ServerProcess], tmp_path: Path, wrappers: list[Wrapper]
) -> None:
    """Copilot CLI 1.0 offline with a BYOK model: our tools pre-approved, its MCP file restored."""
    assert shutil.which("copilot"), f"copilot is not installed: {INSTALL}"
    repo, home = (tmp_path / "repo").resolve(), tmp_path / "home"
    (home / ".copilot").mkdir(parents=True)
    repo.mkdir()
    # The folder-trust question is the user's to answer once; a wrapper would hold mentions for it.
    (home / ".copilot" / "config.json").write_text(json.dumps({"trustedFolders": [str(repo)]}))
    env = {"HOME": str(home), "COPILOT_OFFLINE": "true", "COPILOT_MODEL": "fake", "NO_COLOR": "1"}
    # The user's own package cache (versioned): a fresh HOME would unpack 235 MB again at start.
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    env["COPILOT_PKG_CACHE_HOME"] = str(cache / "copilot")
    await unattended_run(
        "copilot",
        server_process(),
        repo,
        env,
        (),
        wrappers,
        lambda url: {"COPILOT_PROVIDER_BASE_URL": url + "/v1", "COPILOT_PROVIDER_API_KEY": "sk-fake"},
    )
    assert not (home / ".copilot" / "mcp-config.json").exists(), "the shared MCP file is restored"


@LANE_A
async def test_interactive_kilo_runs_unattended_through_rotation_and_server_restart(
    server_process: Callable[..., ServerProcess], tmp_path: Path, wrappers: list[Wrapper]
) -> None:
    """Kilo 7.7 with an OpenAI-compatible provider: our server arrives in KILO_CONFIG_CONTENT."""
    assert shutil.which("kilo"), f"kilo is not installed: {INSTALL}"
    repo, home = (tmp_path / "repo").resolve(), tmp_path / "home"
    (home / ".config" / "kilo").mkdir(parents=True)
    repo.mkdir()
    config = home / ".config" / "kilo" / "kilo.json"

    def model_env(url: str) -> dict[str, str]:
        provider = {"npm": "@ai-sdk/openai-compatible", "name": "Fake", "models": {"fake": {"name": "fake"}}}
        provider["options"] = {"baseURL": url + "/v1", "apiKey": "sk-fake"}
        doc = {"provider": {"fake": provider}, "model": "fake/fake", "autoupdate": False}
        # Only our provider: Kilo's own ("kilo", "apertis") would fetch their model lists at start,
        # over the network. No git snapshot of the work tree per step (Kilo's undo; not ours to test).
        doc |= {"enabled_providers": ["fake"], "snapshot": False}
        config.write_text(json.dumps(doc))
        return {}

    # No models.dev / Kilo model-list fetches, no update check, no telemetry: nothing waits on the network.
    offline = {"KILO_DISABLE_MODELS_FETCH": "1", "KILO_DISABLE_AUTOUPDATE": "1"}
    offline["KILO_TELEMETRY_LEVEL"] = "off"
    env = {"HOME": str(home), "NO_COLOR": "1", **offline}
    await unattended_run("kilo", server_process(), repo, env, (), wrappers, model_env)


@LANE_A
async def test_claude_permission_prompt_holds_a_mention_until_a_person_answers_it(
    server_process: Callable[..., ServerProcess], tmp_path: Path, wrappers: list[Wrapper]
) -> None:
    """Claude asks "Do you want to proceed?" for a shell command: the next mention waits (shown as
    waiting, with the question), no Enter of ours answers it, and it is delivered once answered."""
    assert shutil.which("claude"), f"claude is not installed: {INSTALL}"
    server = server_process()
    repo, home, key = (tmp_path / "repo").resolve(), tmp_path / "home", "sk-ant-fake-0123456789abcdefghij"
    repo.mkdir()
    claude_home(home, repo, key)
    # A command that changes something (Claude lets read-only ones like `echo` run without asking).
    app, _requests = fake_anthropic.build("hello from claude", bash_first="touch approved-by-a-person")
    feed = Feed(server.url, server.data_dir)
    env = {"HOME": str(home), "ANTHROPIC_API_KEY": key, "DISABLE_AUTOUPDATER": "1"}
    wrapper = Wrapper(
        repo, server.url, server.data_dir, env, agent="claude", cli_args=("--permission-mode", "default")
    )

    def delivery(state: str) -> Callable[[dict[str, Any]], bool]:
        return lambda e: e.get("kind") == "delivery" and e.get("agent") == "claude" and e["state"] == state

    async with serve(app) as model_url, anyio.create_task_group() as tg:
        env["ANTHROPIC_BASE_URL"] = model_url
        wrappers.append(wrapper.start())
        await tg.start(feed.run)
        await joined(feed, "claude")
        await send(server, "@claude please run it")
        pane = ("capture-pane", "-p", "-t", "=backchannel-claude:")
        with anyio.move_on_after(START_TIMEOUT):
            while "Do you want to proceed?" not in wrapper.tmux(*pane):
                await anyio.sleep(0.2)  # a screen gives no event to wait on
        assert "Do you want to proceed?" in wrapper.tmux(*pane), wrapper.tmux(*pane)
        mark = len(feed.events)
        await send(server, "@claude and then this")
        waiting = await feed.wait(
            "the mention held by the dialog", delivery("waiting"), timeout=30, start=mark
        )
        assert "Do you want to proceed?" in waiting["detail"] and "1. Yes" in waiting["detail"], waiting
        screen = wrapper.tmux("capture-pane", "-p", "-t", "=backchannel-claude:")
        assert "Do you want to proceed?" in screen, "nothing of ours answered the question"
        assert not (repo / "approved-by-a-person").exists(), "the command waits for the person"
        assert feed.messages("claude") == []
        # A person says yes. Claude Code ignores keys for ~0.15 s after a dialog appears (an Enter
        # sent sooner is dropped and the dialog stays), so press again while it is still shown.
        with anyio.fail_after(30):
            while "Do you want to proceed?" in wrapper.tmux(*pane):
                wrapper.tmux("send-keys", "-t", "=backchannel-claude:", "Enter")
                with anyio.move_on_after(2):
                    while "Do you want to proceed?" in wrapper.tmux(*pane):
                        await anyio.sleep(0.1)
        done = await feed.wait("the held mention delivered", delivery("injected"), timeout=60, start=mark)
        assert done["trigger"] == waiting["trigger"]
        await feed.wait("two answers", lambda _e: len(feed.messages("claude")) >= 2, timeout=60)
        tg.cancel_scope.cancel()
    assert (repo / "approved-by-a-person").exists(), "the person's Enter let the command run"
    assert [m["text"] for m in feed.messages("claude")] == ["hello from claude"] * 2
