"""The real Claude Code, Gemini and Codex CLIs (npm) reach backchannel through the wrapper's proxy.

These need the CLIs on PATH (``npm install -g @anthropic-ai/claude-code @google/gemini-cli
@openai/codex``); without them the tests fail with that instruction rather than skip. Each CLI runs
under a throwaway HOME with auto-update off; Claude talks to a fake model API
(tests/wrapper/fake_anthropic.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from backchannel.wrapper.proxy import serve
from tests.conftest import ServerProcess
from tests.wrapper import fake_anthropic

pytestmark = pytest.mark.anyio
INSTALL = "npm install -g @anthropic-ai/claude-code @google/gemini-cli @openai/codex"


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


def test_gemini_mcp_list_shows_backchannel_connected_through_the_proxy(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = server_process()
    output = run_wrapped("gemini", server, tmp_path, "mcp", "list")
    match = re.search(r"✓ backchannel: (http://127\.0\.0\.1:\d+)/mcp \(http\) - Connected", output)
    assert match, output
    assert match.group(1) != server.url, "Gemini must talk to the proxy, not the server"


def test_codex_mcp_list_shows_backchannel_at_the_proxy(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = server_process()
    output = run_wrapped("codex", server, tmp_path, "mcp", "list")
    match = re.search(r"backchannel\s+(http://127\.0\.0\.1:\d+)/mcp\s+-\s+enabled", output)
    assert match, output
    assert match.group(1) != server.url, "Codex must talk to the proxy, not the server"


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
    assert [(m["sender"], m["text"]) for m in messages] == [("claude", "hello from the real claude")]
