from __future__ import annotations

from pathlib import Path

import pytest

from backchannel.config import SETTING_HELP, Settings, client_server_url, load_settings
from backchannel.errors import InvalidInput


def test_precedence_is_cli_then_env_then_toml_then_default(tmp_path: Path) -> None:
    toml = tmp_path / "backchannel.toml"
    toml.write_text("[server]\nport = 9001\ncrash_timeout = 90\nloop_guard_hops = 7\n")
    env = {"BACKCHANNEL_PORT": "9002", "BACKCHANNEL_CRASH_TIMEOUT": "120"}
    settings = load_settings({"port": 9003, "data_dir": tmp_path}, env=env, config_file=toml)
    assert (settings.port, settings.crash_timeout, settings.loop_guard_hops) == (9003, 120.0, 7)
    assert settings.max_channels == Settings().max_channels


def test_bad_values_are_clear_errors(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    for bad in (
        "[server]\nport = 'eighty'\n",
        "[server]\nmax_channels = true\n",
        "[routing]\nmax_agent_hops = 2.5\n",
    ):
        toml.write_text(bad)
        with pytest.raises(InvalidInput, match="invalid value"):
            load_settings({}, env={}, config_file=toml)
    toml.write_text("[images]\nmax_size_mb = 'big'\n")
    with pytest.raises(InvalidInput, match="max_size_mb must be a positive number"):
        load_settings({}, env={}, config_file=toml)
    toml.write_text("[agents.claude]\ncolor = 'red; background: url(x)'\n")
    with pytest.raises(InvalidInput, match=r"\[agents.claude\].color must be a hex colour"):
        load_settings({}, env={}, config_file=toml)
    with pytest.raises(InvalidInput, match="crash_timeout"):
        load_settings({}, env={"BACKCHANNEL_CRASH_TIMEOUT": "soon"}, config_file=None)
    toml.write_text("[server\n")
    with pytest.raises(InvalidInput, match="not valid TOML"):
        load_settings({}, env={}, config_file=toml)


def test_every_setting_has_help_and_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for name, text in SETTING_HELP.items():
        assert text, name
        assert f"`{name}`" in readme, f"setting {name} is not documented in README.md"


def test_client_url_resolution() -> None:
    assert client_server_url(None, {}) == "http://127.0.0.1:8300"
    assert client_server_url(None, {"BACKCHANNEL_URL": "http://127.0.0.1:9/"}) == "http://127.0.0.1:9"
    assert client_server_url("http://x:1", {"BACKCHANNEL_URL": "http://y:2"}) == "http://x:1"


def test_agentchattr_config_maps_what_it_can_and_warns_once_about_the_rest(tmp_path: Path) -> None:
    toml = tmp_path / "config.toml"
    toml.write_text(
        "title = 'x'\n[server]\nport = 8300\nprot = 1\n"
        "[routing]\ndefault = 'none'\nmax_agent_hops = 9\n"
        "[images]\nupload_dir = './uploads'\nmax_size_mb = 2\n"
        "[mcp]\nhttp_port = 8200\nsse_port = 8201\n"
        "[agents.claude]\ncolor = '#123456'\nlabel = 'C'\n"
        "[agents.Code-Review]\ncolor = '#ABC'\n"
    )
    warnings: list[str] = []
    settings = load_settings({}, env={}, config_file=toml, warn=warnings.append)
    assert (settings.loop_guard_hops, settings.max_upload_bytes) == (9, 2 * 1024 * 1024)
    assert settings.agent_colors == (("claude", "#123456"), ("code-review", "#abc"))
    # One warning per thing ignored, the same way for [server] as for every other table.
    assert len(warnings) == 5, warnings
    for needle in ("[server].prot", "[routing].default", "[images].upload_dir", "[mcp]", "'title'"):
        assert sum(needle in w for w in warnings) == 1, (needle, warnings)


@pytest.mark.anyio
async def test_a_configured_agent_colour_is_what_the_room_shows(server_factory) -> None:
    from tests.conftest import register

    server = server_factory(agent_colors=(("claude", "#123456"),))
    assert (await register(server.url, "claude", "i-1"))["name"] == "claude"
    async with server.human() as human:
        colors = {a["name"]: a["color"] for a in (await human.get("/api/agents")).json()}
    assert colors["claude"] == "#123456" and colors.get("codex") is None
