"""Docs that cannot rot: every MCP tool and CLI command is in the README, the public API is pinned."""

from __future__ import annotations

from pathlib import Path

import typer.main

import backchannel
from backchannel.cli import app
from backchannel.config import Settings
from backchannel.server.app import create_app

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_every_mcp_tool_is_documented(tmp_path: Path) -> None:
    tools = create_app(Settings(data_dir=tmp_path)).state.toolset.list_wire()
    assert len(tools) >= 12
    for tool in tools:
        assert f"`{tool['name']}`" in README, f"MCP tool {tool['name']} is not in README.md"
        assert tool["description"], tool["name"]


def test_every_cli_command_is_documented() -> None:
    group = typer.main.get_group(app)
    names = []
    for name, command in group.commands.items():
        sub = getattr(command, "commands", None)
        names += [f"{name} {s}" for s in sub] if sub else [name]
    assert "serve" in names and "agents rotate" in names
    for name in names:
        assert f"`backchannel {name}" in README, f"`backchannel {name}` is not in README.md"


def test_public_api_is_pinned() -> None:
    assert backchannel.__all__ == ["__version__"]
