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


def test_bad_values_and_unknown_keys_are_clear_errors(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("[server]\nprot = 1\n")
    with pytest.raises(InvalidInput, match="unknown setting \\[server\\].prot"):
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
