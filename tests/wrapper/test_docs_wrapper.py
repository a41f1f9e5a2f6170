"""docs/wrapper.md keeps up with the code: every config key, injection mode and built-in CLI."""

from __future__ import annotations

from pathlib import Path

from backchannel.wrapper.profiles import BUILTIN, CONFIG_KEYS, INJECT_MODES

DOC = (Path(__file__).parents[2] / "docs" / "wrapper.md").read_text(encoding="utf-8")


def test_every_config_key_mode_and_cli_is_documented() -> None:
    names = sorted({*CONFIG_KEYS, *INJECT_MODES, *BUILTIN})
    missing = [f"`{name}`" for name in names if f"`{name}`" not in DOC]
    assert not missing, f"document these in docs/wrapper.md: {missing}"


def test_every_run_flag_is_documented() -> None:
    flags = ("--label", "--server", "--data-dir", "--config", "--no-tmux", "--no-preapprove", "--detach")
    for flag in (*flags, "--no-restart"):
        assert f"`{flag}" in DOC, flag
