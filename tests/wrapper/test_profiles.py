"""Profiles: built-in defaults, TOML overrides (agentchattr names), env overrides and slug naming."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backchannel.errors import InvalidInput
from backchannel.wrapper.profiles import BUILTIN, DEFAULT_DIALOG, DIALOGS, load_profile, session_name


def profile(agent: str, config: dict[str, Any] | None = None, env: dict[str, str] | None = None, **kw: Any):
    cwd = kw.pop("cwd", Path("/tmp/repo"))
    return load_profile(agent, config or {}, env=env or {}, config_path=kw.pop("config_path", None), cwd=cwd)


@pytest.mark.parametrize(
    ("agent", "mode"),
    [
        ("claude", "proxy_file"),
        ("codex", "proxy_flag"),
        ("gemini", "settings_file"),
        ("qwen", "proxy_file"),
        ("kimi", "proxy_file"),
        ("kilo", "env_content"),
        ("codebuddy", "settings_file"),
        ("copilot", "settings_file"),
        ("agy", "settings_file"),
        ("antigravity", "settings_file"),
        ("mycli", "proxy_file"),
    ],
)
def test_every_builtin_cli_goes_through_the_proxy(agent: str, mode: str) -> None:
    p = profile(agent)
    assert p.mcp_inject == mode
    assert p.uses_proxy


def test_builtin_details_match_the_compat_table() -> None:
    assert profile("qwen").inject_delay == 1.0
    assert profile("claude").inject_delay == 0.3
    assert profile("kimi").mcp_flag == "--mcp-config-file"
    assert profile("kilo").mcp_env_var == "KILO_CONFIG_CONTENT"
    assert profile("copilot").mcp_settings_path == Path.home() / ".copilot/mcp-config.json"
    assert profile("codebuddy").mcp_http_key == "url"
    agy = profile("antigravity")
    assert (agy.command, agy.mcp_http_key, agy.mcp_merge_project) == ("agy", "serverURL", True)
    qwen = profile("qwen", cwd=Path("/r"))
    assert (qwen.mcp_flag, qwen.mcp_http_key, qwen.mcp_settings_path) == ("--mcp-config", "httpUrl", None)
    assert profile("gemini", cwd=Path("/r")).mcp_settings_path == Path("/r/.gemini/settings.json")


def test_explicit_mcp_inject_drops_builtin_mcp_defaults_but_keeps_the_rest() -> None:
    p = profile("gemini", {"agents": {"gemini": {"mcp_inject": "env", "mcp_env_var": "X"}}})
    assert (p.mcp_inject, p.mcp_settings_path, p.mcp_merge_project) == ("env", None, False)
    assert p.color == BUILTIN["gemini"]["color"] and p.preapprove == "gemini"


def test_mcp_keys_without_mcp_inject_merge_into_builtin_defaults() -> None:
    p = profile("claude", {"agents": {"claude": {"mcp_flag": "--mcp", "command": "claude-beta"}}})
    assert (p.mcp_inject, p.mcp_flag, p.mcp_merge_project, p.command) == (
        "proxy_file",
        "--mcp",
        True,
        "claude-beta",
    )


def test_agentchattr_style_table_is_accepted(tmp_path: Path) -> None:
    table = {
        "command": "codex",
        "cwd": "..",
        "color": "#fff",
        "label": "Reviewer",
        "strip_env": ["OPENAI_API_KEY"],
        "inject_delay": 0.5,
        "mcp_inject": "proxy_flag",
        "mcp_proxy_flag_template": '-c mcp_servers.{server}.url="{url}"',
        "mcp_transport": "streamable-http",
    }
    config_path = tmp_path / "conf" / "backchannel.toml"
    p = profile("review", {"agents": {"review": table}}, config_path=config_path, cwd=Path("/elsewhere"))
    assert p.cwd == tmp_path  # relative to the config file, not to where we run
    assert (p.label, p.strip_env, p.inject_delay, p.mcp_transport) == (
        "Reviewer",
        ("OPENAI_API_KEY",),
        0.5,
        "http",
    )
    assert p.preapprove == "codex"  # built-ins follow the command when the key is custom
    assert p.base == "review"


def test_env_overrides_whitelisted_keys_with_backchannel_winning(tmp_path: Path) -> None:
    env = {
        "AGENTCHATTR_AGENT_CWD": "/from/agentchattr",
        "BACKCHANNEL_AGENT_CWD": str(tmp_path),
        "AGENTCHATTR_AGENT_MCP_SETTINGS_PATH": "~/s.json",
    }
    p = profile("gemini", env=env)
    assert p.cwd == tmp_path
    assert p.mcp_settings_path == Path.home() / "s.json"


@pytest.mark.parametrize("var", ["BACKCHANNEL_AGENT_COMMAND", "AGENTCHATTR_AGENT_MCP_INJECT"])
def test_env_override_of_other_keys_is_refused_by_name(var: str) -> None:
    with pytest.raises(InvalidInput, match=f"{var} is not supported.*CWD.*MCP_SETTINGS_PATH"):
        profile("claude", env={var: "x"})


def test_unknown_mode_names_the_valid_ones() -> None:
    with pytest.raises(
        InvalidInput, match="valid modes: proxy_file, proxy_flag, settings_file, env, env_content, flag"
    ):
        profile("claude", {"agents": {"claude": {"mcp_inject": "telepathy"}}})


def test_api_agents_and_bad_values_are_clear_errors() -> None:
    with pytest.raises(InvalidInput, match="API agent"):
        profile("gpt", {"agents": {"gpt": {"type": "api", "model": "x"}}})
    with pytest.raises(InvalidInput, match="strip_env must be a list"):
        profile("claude", {"agents": {"claude": {"strip_env": 3}}})
    with pytest.raises(InvalidInput, match="must start with a letter"):
        profile("9lives")
    assert profile("claude", {"agents": {"claude": {"colour": "red"}}}).warnings == (
        "[agents.claude].colour is not a known key and is ignored",
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "backchannel-claude-2"),
        ({"BACKCHANNEL_REPO_SLUG": "  "}, "backchannel-claude-2"),
        ({"AGENTCHATTR_REPO_SLUG": "web"}, "backchannel-web-claude-2"),
        (
            {"BACKCHANNEL_REPO_SLUG": "my.repo:v2", "AGENTCHATTR_REPO_SLUG": "x"},
            "backchannel-my-repo-v2-claude-2",
        ),
    ],
)
def test_tmux_session_name_uses_a_sanitised_slug(env: dict[str, str], expected: str) -> None:
    assert session_name("claude-2", env) == expected


def test_each_builtin_cli_has_its_dialog_pattern_and_a_table_may_turn_it_off() -> None:
    assert profile("qwen").dialog_pattern == DIALOGS["qwen"]
    assert profile("claude").dialog_pattern == DIALOGS["claude"]
    assert profile("mycli").dialog_pattern == DEFAULT_DIALOG  # unknown CLIs get every known wording
    assert profile("claude", {"agents": {"claude": {"dialog_pattern": ""}}}).dialog_pattern is None
    with pytest.raises(InvalidInput, match="dialog_pattern is not a valid regex"):
        profile("claude", {"agents": {"claude": {"dialog_pattern": "("}}})


def test_qwen_is_idle_only_on_its_input_line_and_an_idle_pattern_alone_keeps_its_meaning() -> None:
    qwen = profile("qwen")
    assert qwen.idle_pattern and qwen.busy_pattern  # both: starting up (no input line) is busy
    fake = profile("fake", {"agents": {"fake": {"idle_pattern": "ready> $"}}})
    assert (fake.idle_pattern, fake.busy_pattern) == ("ready> $", None)
