"""The real Gemini and Codex CLIs (npm) see backchannel through the wrapper's proxy.

These need the CLIs on PATH (``npm install -g @google/gemini-cli @openai/codex``); without them
the tests fail with that instruction rather than skip. Each CLI runs under a throwaway HOME.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.conftest import ServerProcess


def run_wrapped(cli: str, server: ServerProcess, tmp_path: Path, *cli_args: str) -> str:
    assert shutil.which(cli), f"{cli} is not installed: npm install -g @google/gemini-cli @openai/codex"
    repo = tmp_path / "repo"
    home = tmp_path / "home"
    repo.mkdir()
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "NO_COLOR": "1", "CI": "1"}
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
