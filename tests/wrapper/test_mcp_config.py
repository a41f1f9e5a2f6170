"""Every injection mode's writer: proxy URL in, token out, project servers kept, files private."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from backchannel.errors import InvalidInput
from backchannel.wrapper.mcp_config import McpSetup, prepare
from backchannel.wrapper.profiles import OUR_TOOLS, AgentProfile, load_profile

PROXY = "http://127.0.0.1:41234"
TOKEN = "secret-token-abc"


def make(agent: str, repo: Path, table: dict[str, Any] | None = None) -> AgentProfile:
    config = {"agents": {agent: table}} if table else {}
    return load_profile(agent, config, env={}, config_path=None, cwd=repo)


def run(profile: AgentProfile, tmp: Path, *, proxy: str | None = PROXY, preapprove: bool = True) -> McpSetup:
    return prepare(
        profile, run_dir=tmp / "run", proxy_url=proxy, server_url="http://127.0.0.1:8300", token=TOKEN,
        preapprove=preapprove, state_dir=tmp / "state",
    )  # fmt: skip


# The old way of wiring Qwen, still available to a config that asks for it: a settings file.
QWEN_SETTINGS = {"mcp_inject": "settings_file", "mcp_settings_path": ".qwen/settings.json"}


def tree_text(*roots: Path) -> str:
    return "".join(p.read_text() for root in roots if root.exists() for p in root.rglob("*") if p.is_file())


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    project = {
        "mcpServers": {
            "unity": {"type": "http", "url": "http://localhost:9000/mcp"},
            "files": {"command": "npx", "args": ["files-mcp"]},
            "backchannel": {
                "type": "http",
                "url": "http://old/mcp",
                "headers": {"Authorization": "Bearer old"},
            },
        }
    }
    (repo / ".mcp.json").write_text(json.dumps(project))
    return repo


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_proxy_file_points_at_proxy_keeps_project_servers_and_has_no_token(
    repo: Path, tmp_path: Path
) -> None:
    setup = run(make("claude", repo), tmp_path)
    flag, path = setup.args[:2]
    doc = json.loads(Path(path).read_text())
    assert flag == "--mcp-config"
    assert doc["mcpServers"]["backchannel"] == {"type": "http", "url": f"{PROXY}/mcp"}
    assert doc["mcpServers"]["unity"] == {"type": "http", "url": "http://localhost:9000/mcp"}
    assert doc["mcpServers"]["files"] == {"command": "npx", "args": ["files-mcp"]}
    assert list(doc["mcpServers"]).count("backchannel") == 1
    assert TOKEN not in Path(path).read_text() and "Bearer old" not in Path(path).read_text()
    assert mode_of(Path(path)) == 0o600
    assert setup.args[2:] == ["--allowedTools", "mcp__backchannel"]
    setup.close()
    assert not Path(path).exists()


def test_legacy_flag_mode_bakes_the_token_and_rewrites_it_on_rotation(repo: Path, tmp_path: Path) -> None:
    setup = run(
        make("kimi", repo, {"mcp_inject": "flag", "mcp_flag": "--mcp-config-file"}), tmp_path, proxy=None
    )
    path = Path(setup.args[1])
    entry = json.loads(path.read_text())["mcpServers"]["backchannel"]
    assert entry["url"] == "http://127.0.0.1:8300/mcp"
    assert entry["headers"] == {"Authorization": f"Bearer {TOKEN}"}
    setup.rewrite_token("fresh")
    assert (
        json.loads(path.read_text())["mcpServers"]["backchannel"]["headers"]["Authorization"]
        == "Bearer fresh"
    )
    assert mode_of(path) == 0o600


def test_proxy_flag_expands_template_and_approves_only_our_tools(repo: Path, tmp_path: Path) -> None:
    setup = run(make("codex", repo), tmp_path)
    assert setup.args[:2] == ["-c", f'mcp_servers.backchannel.url="{PROXY}/mcp"']
    approvals = setup.args[2:]
    assert approvals[1::2] == [
        f'mcp_servers.backchannel.tools.{t}.approval_mode="approve"' for t in OUR_TOOLS
    ]
    assert run(make("codex", repo), tmp_path, preapprove=False).args == setup.args[:2]


def test_codex_flags_survive_exec_without_a_shell(repo: Path, tmp_path: Path) -> None:
    """The TOML quotes must reach the CLI: we exec argv directly, never through a shell."""
    setup = run(make("codex", repo), tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", "import sys; print(sys.argv[2])", *setup.args], capture_output=True, text=True
    )
    assert out.stdout.strip() == f'mcp_servers.backchannel.url="{PROXY}/mcp"', shlex.join(setup.args)


def test_settings_file_merges_restores_and_trusts_only_our_entry(repo: Path, tmp_path: Path) -> None:
    settings = repo / ".gemini" / "settings.json"
    settings.parent.mkdir()
    original = json.dumps({"theme": "dark", "mcpServers": {"mine": {"httpUrl": "http://x"}}}, indent=4)
    settings.write_text(original)
    os.chmod(settings, 0o644)
    setup = run(make("gemini", repo), tmp_path)
    setup.release_start()
    doc = json.loads(settings.read_text())
    assert doc["theme"] == "dark"
    assert doc["mcpServers"]["backchannel"] == {"type": "http", "httpUrl": f"{PROXY}/mcp", "trust": True}
    assert doc["mcpServers"]["mine"] == {"httpUrl": "http://x"}
    assert doc["mcpServers"]["unity"] == {
        "type": "http",
        "httpUrl": "http://localhost:9000/mcp",
    }  # renamed key
    assert "trust" not in doc["mcpServers"]["unity"] and "trust" not in doc["mcpServers"]["mine"]
    assert TOKEN not in settings.read_text()
    assert mode_of(settings) == 0o600
    setup.close()
    assert settings.read_text() == original
    assert mode_of(settings) == 0o644


def test_settings_file_that_did_not_exist_is_removed_again(repo: Path, tmp_path: Path) -> None:
    setup = run(make("qwen", repo, QWEN_SETTINGS), tmp_path)
    setup.release_start()
    settings = repo / ".qwen" / "settings.json"
    assert json.loads(settings.read_text())["mcpServers"]["backchannel"]["httpUrl"] == f"{PROXY}/mcp"
    setup.close()
    assert not settings.exists()


def test_qwen_gets_an_ungated_mcp_config_file_and_no_settings_file(repo: Path, tmp_path: Path) -> None:
    """Qwen asks "Untrusted MCP server ... Approve?" for .qwen/settings.json entries, not for --mcp-config."""
    setup = run(make("qwen", repo), tmp_path)
    assert setup.args[0] == "--mcp-config"
    doc = json.loads(Path(setup.args[1]).read_text())
    # httpUrl: in Qwen `url` means the SSE transport. trust: our tools run without a question.
    assert doc == {"mcpServers": {"backchannel": {"type": "http", "httpUrl": f"{PROXY}/mcp", "trust": True}}}
    assert mode_of(Path(setup.args[1])) == 0o600
    assert not (repo / ".qwen").exists()
    setup.close()
    assert not Path(setup.args[1]).exists() and not (repo / ".qwen").exists()
    no_trust = run(make("qwen", repo), tmp_path, preapprove=False)
    assert "trust" not in json.loads(Path(no_trust.args[1]).read_text())["mcpServers"]["backchannel"]
    no_trust.close()


def test_concurrent_instances_share_a_settings_file_without_clobbering(repo: Path, tmp_path: Path) -> None:
    settings = tmp_path / "home" / ".copilot" / "mcp-config.json"
    settings.parent.mkdir(parents=True)
    settings.write_text('{"mcpServers": {}}')
    profile = make("copilot", repo, {"mcp_settings_path": str(settings)})
    first = run(profile, tmp_path, proxy="http://127.0.0.1:1111")
    first.release_start()
    second = run(profile, tmp_path, proxy="http://127.0.0.1:2222")
    second.release_start()
    assert json.loads(settings.read_text())["mcpServers"]["backchannel"]["url"] == "http://127.0.0.1:2222/mcp"
    second.close()  # the survivor's proxy goes back in, not the original
    assert json.loads(settings.read_text())["mcpServers"]["backchannel"]["url"] == "http://127.0.0.1:1111/mcp"
    first.close()
    assert settings.read_text() == '{"mcpServers": {}}'


def test_user_edits_made_while_running_survive_the_restore(repo: Path, tmp_path: Path) -> None:
    settings = repo / ".qwen" / "settings.json"
    settings.parent.mkdir()
    settings.write_text('{"a": 1}')
    setup = run(make("qwen", repo, QWEN_SETTINGS), tmp_path)
    setup.release_start()
    doc = json.loads(settings.read_text())
    doc["b"] = 2
    settings.write_text(json.dumps(doc))
    setup.close()
    assert json.loads(settings.read_text()) == {"a": 1, "b": 2, "mcpServers": {}}


def test_broken_user_settings_file_is_a_clear_error_and_left_alone(repo: Path, tmp_path: Path) -> None:
    settings = repo / ".qwen" / "settings.json"
    settings.parent.mkdir()
    settings.write_text("{not json")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        run(make("qwen", repo, QWEN_SETTINGS), tmp_path)
    assert settings.read_text() == "{not json"


def test_env_mode_writes_a_private_file_named_by_the_env_var(repo: Path, tmp_path: Path) -> None:
    setup = run(make("gemini", repo, {"mcp_inject": "env", "mcp_env_var": "MY_SETTINGS"}), tmp_path)
    path = Path(setup.env["MY_SETTINGS"])
    assert json.loads(path.read_text())["mcpServers"]["backchannel"]["httpUrl"] == f"{PROXY}/mcp"
    assert mode_of(path) == 0o600 and TOKEN not in path.read_text()


def test_env_content_mode_puts_the_proxy_in_the_env_var(repo: Path, tmp_path: Path) -> None:
    setup = run(make("kilo", repo), tmp_path)
    content = json.loads(setup.env["KILO_CONFIG_CONTENT"])
    assert content == {"mcp": {"backchannel": {"type": "remote", "url": f"{PROXY}/mcp", "enabled": True}}}


def test_sse_transport_uses_the_sse_endpoint(repo: Path, tmp_path: Path) -> None:
    setup = run(make("claude", repo, {"mcp_transport": "sse"}), tmp_path)
    entry = json.loads(Path(setup.args[1]).read_text())["mcpServers"]["backchannel"]
    assert entry == {"type": "sse", "url": f"{PROXY}/sse"}


@pytest.mark.parametrize("agent", ["claude", "codex", "gemini", "qwen", "kilo", "copilot"])
def test_proxy_modes_without_a_proxy_url_are_errors(agent: str, repo: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="needs the identity proxy"):
        run(make(agent, repo), tmp_path, proxy=None)


def test_broken_project_mcp_json_is_a_warning_not_a_crash(repo: Path, tmp_path: Path) -> None:
    (repo / ".mcp.json").write_text("{oops")
    setup = run(make("claude", repo), tmp_path)
    assert any("not valid JSON" in w for w in setup.warnings)
    assert list(json.loads(Path(setup.args[1]).read_text())["mcpServers"]) == ["backchannel"]


def test_no_token_anywhere_in_proxy_modes(repo: Path, tmp_path: Path) -> None:
    for agent in ("claude", "codex", "gemini", "qwen", "kimi", "kilo"):
        setup = run(make(agent, repo), tmp_path)
        assert TOKEN not in " ".join(setup.args) + json.dumps(setup.env)
        assert TOKEN not in tree_text(tmp_path / "run", repo)
        setup.close()


def test_gemini_trusts_the_project_for_this_process_only(repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".gemini").mkdir(parents=True)
    user_trust = home / ".gemini" / "trustedFolders.json"
    user_trust.write_text(json.dumps({"/elsewhere": "TRUST_FOLDER"}))
    setup = prepare(
        make("gemini", repo), run_dir=tmp_path / "run", proxy_url=PROXY, server_url="http://x", token=TOKEN,
        state_dir=tmp_path / "state", env={"HOME": str(home)},
    )  # fmt: skip
    setup.release_start()
    ours = Path(setup.env["GEMINI_CLI_TRUSTED_FOLDERS_PATH"])
    assert json.loads(ours.read_text()) == {"/elsewhere": "TRUST_FOLDER", str(repo.resolve()): "TRUST_FOLDER"}
    assert json.loads(user_trust.read_text()) == {"/elsewhere": "TRUST_FOLDER"}, (
        "the user's file is untouched"
    )
    setup.close()
    assert not ours.exists()


def test_copilot_pre_approves_our_server_only(repo: Path, tmp_path: Path) -> None:
    settings = tmp_path / "home" / ".copilot" / "mcp-config.json"
    profile = make("copilot", repo, {"mcp_settings_path": str(settings)})
    setup = run(profile, tmp_path)
    assert setup.args == ["--allow-tool", "backchannel"]  # "backchannel" = every tool of that server
    setup.close()
    asked = run(profile, tmp_path, preapprove=False)
    assert asked.args == []
    asked.close()
