"""The ``backchannel run`` command: resolve flags, env and config once, then hand over to Runner."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import anyio
import typer

from backchannel.config import client_data_dir, client_server_url, find_config_file, read_toml
from backchannel.errors import InvalidInput
from backchannel.wrapper.profiles import load_profile
from backchannel.wrapper.runner import Runner, RunOptions
from backchannel.wrapper.tmux import available


def _float_env(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a number of seconds, got {raw!r}") from None


def run(
    ctx: typer.Context,
    agent: Annotated[
        str, typer.Argument(help="The CLI to run: claude, codex, gemini, ... or an [agents.<name>] key.")
    ],
    label: Annotated[str | None, typer.Option("--label", help="Display label in the room.")] = None,
    server: Annotated[str | None, typer.Option("--server", help="Server URL (env BACKCHANNEL_URL).")] = None,
    no_tmux: Annotated[
        bool, typer.Option("--no-tmux", help="Run the CLI in this terminal, not in tmux.")
    ] = False,
    no_preapprove: Annotated[
        bool, typer.Option("--no-preapprove", help="Don't pre-approve backchannel's own MCP tools.")
    ] = False,
    config: Annotated[
        Path | None, typer.Option("--config", help="Config file (env BACKCHANNEL_CONFIG).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Data dir (env BACKCHANNEL_DATA_DIR).")
    ] = None,
) -> None:
    """Run an agent CLI in the room: register it, give it MCP through its identity proxy, wake it on mentions.

    Arguments after ``--`` go to the CLI, e.g. ``backchannel run claude -- --model opus``.
    """
    env = dict(os.environ)
    level = env.get("BACKCHANNEL_WRAPPER_LOG", "").upper()
    if level:
        logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config_path = find_config_file(config, env)
        profile = load_profile(
            agent, read_toml(config_path), env=env, config_path=config_path, cwd=Path.cwd()
        )
        use_tmux = not no_tmux
        if use_tmux and not available():
            typer.echo("backchannel: tmux is not installed; running in this terminal (--no-tmux)", err=True)
            use_tmux = False
        options = RunOptions(
            server_url=client_server_url(server, env),
            data_dir=client_data_dir(data_dir, env),
            env=env,
            label=label,
            use_tmux=use_tmux,
            preapprove=not no_preapprove,
            extra_args=tuple(ctx.args),
            tmux_socket=env.get("BACKCHANNEL_TMUX_SOCKET") or None,
            join_key=env.get("BACKCHANNEL_JOIN_KEY") or None,
            heartbeat_interval=_float_env(env, "BACKCHANNEL_HEARTBEAT_INTERVAL", 5.0),
        )
        code = anyio.run(Runner(profile, options).run)
    except InvalidInput as exc:
        typer.echo(f"backchannel: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)
