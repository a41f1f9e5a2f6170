"""The ``backchannel run`` command: resolve flags, env and config once, then hand over to Runner.

Only what follows ``--`` goes to the agent CLI. Anything else we don't know is an error with a hint,
never silently passed on; agentchattr's wrapper flags are translated where they mean something here
(``--port N``) and refused with the backchannel way where they don't.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TextIO
from urllib.parse import urlsplit

import anyio
import typer
from typer._click.core import Context as ClickContext  # typer vendors click
from typer._click.exceptions import NoSuchOption, UsageError
from typer.core import TyperCommand

from backchannel.config import client_data_dir, client_server_url, find_config_file, read_toml
from backchannel.errors import InvalidInput
from backchannel.server.security import JOIN_KEY_FILE  # 0600, written by a server in network mode
from backchannel.wrapper.api_config import api_table, load_api_config
from backchannel.wrapper.profiles import load_profile
from backchannel.wrapper.proxy import is_loopback
from backchannel.wrapper.runner import Runner, RunOptions
from backchannel.wrapper.tmux import available

CLI_ARGS = "backchannel.cli_args"  # ctx.meta key: the arguments after ``--``

# agentchattr's wrapper flags that have no meaning here, with what to do instead.
_REFUSED = {
    "--mcp-http-port": "backchannel serves MCP on the server's own port (/mcp); use --server URL",
    "--mcp-sse-port": "backchannel serves MCP on the server's own port (/sse); use --server URL",
    "--upload-dir": "uploads live in the server's data dir: set it with `backchannel serve --data-dir`",
}


def _translate_agentchattr(args: list[str]) -> list[str]:
    """Map agentchattr's wrapper flags onto ours (``--port N`` means a local server on port N)."""
    out: list[str] = []
    i = 0
    port: str | None = None
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if name in _REFUSED:
            raise UsageError(f"{name} is an agentchattr option: {_REFUSED[name]}")
        if name == "--port":
            if not eq:
                if i + 1 >= len(args):
                    raise UsageError("--port needs a port number")
                value = args[i + 1]
                i += 1
            port = value
        else:
            out.append(arg)
        i += 1
    if port is not None:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"--port must be a port number, got {port!r}")
        if any(a == "--server" or a.startswith("--server=") for a in out):
            raise UsageError("give --server URL or --port N, not both")
        out += ["--server", f"http://127.0.0.1:{int(port)}"]
    return out


class RunCommand(TyperCommand):
    """``run``: split the CLI's arguments off at ``--``; refuse unknown options with a hint."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        cut = args.index("--") if "--" in args else len(args)
        before, after = args[:cut], args[cut + 1 :]
        ctx.meta[CLI_ARGS] = list(after)
        agent = next((a for a in before if not a.startswith("-")), "claude")
        try:
            return super().parse_args(ctx, _translate_agentchattr(before))
        except NoSuchOption as exc:
            raise UsageError(
                f"{exc.option_name} is not a `backchannel run` option. Arguments for the agent CLI go "
                f"after --, e.g.: backchannel run {agent} -- {exc.option_name}"
            ) from None
        except UsageError as exc:
            if "unexpected extra argument" in exc.message:
                raise UsageError(
                    f"{exc.message}. Arguments for the agent CLI go after --, "
                    f"e.g.: backchannel run {agent} -- ARGS"
                ) from None
            raise


def _float_env(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a number of seconds, got {raw!r}") from None


def read_join_key(data_dir: Path) -> str | None:
    """The join key a local server in network mode left in its data dir, if we may read it."""
    try:
        key = (data_dir / JOIN_KEY_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return key or None


def is_loopback_url(url: str) -> bool:
    """True if ``url`` names this machine by a loopback address (or ``localhost``)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    return is_loopback(host.rstrip("."))


def join_key_for(server_url: str, data_dir: Path, env: Mapping[str, str]) -> str | None:
    """The join key to send: ``BACKCHANNEL_JOIN_KEY``, else the local server's own, if it is local.

    The key in our data dir lets anyone into *that* server: it must never go to another one
    (``--server https://elsewhere``), which could then join ours.
    """
    explicit = env.get("BACKCHANNEL_JOIN_KEY", "").strip()
    if explicit:
        return explicit
    return read_join_key(data_dir) if is_loopback_url(server_url) else None


def should_attach(
    *, use_tmux: bool, detach: bool, stdin: TextIO, stdout: TextIO, env: Mapping[str, str]
) -> bool:
    """Attach only a person at an interactive terminal, and not from inside tmux (no nesting)."""
    if not use_tmux or detach or env.get("TMUX"):
        return False
    try:
        return stdin.isatty() and stdout.isatty()
    except (ValueError, OSError):  # closed or detached streams
        return False


def run(
    ctx: typer.Context,
    agent: Annotated[
        str,
        typer.Argument(help="The CLI to run: claude, codex, gemini, ... or an agents.<name> config table."),
    ],
    label: Annotated[str | None, typer.Option("--label", help="Display label in the room.")] = None,
    server: Annotated[str | None, typer.Option("--server", help="Server URL (env BACKCHANNEL_URL).")] = None,
    no_tmux: Annotated[
        bool, typer.Option("--no-tmux", help="Run the CLI in this terminal, not in tmux.")
    ] = False,
    detach: Annotated[
        bool, typer.Option("--detach", help="Don't attach this terminal to the CLI's tmux session.")
    ] = False,
    no_restart: Annotated[
        bool, typer.Option("--no-restart", help="Leave when the CLI exits instead of restarting it.")
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
    meta: dict[str, Any] = ctx.meta
    extra_args: list[str] = meta.get(CLI_ARGS, [])
    try:
        config_path = find_config_file(config, env)
        parsed = read_toml(config_path)
        api = api_table(agent, parsed)
        if api is not None:  # type = "api": a model endpoint, not a CLI (docs/api-agents.md)
            from backchannel.wrapper.api_agent import run_api_agent

            if extra_args:
                raise InvalidInput(f"{agent} is an API agent: it takes no CLI arguments after --")
            api_url, api_dir = client_server_url(server, env), client_data_dir(data_dir, env)
            code = run_api_agent(
                load_api_config(agent, api, config_path=config_path, cwd=Path.cwd()),
                server_url=api_url,
                data_dir=api_dir,
                env=env,
                label=label,
                join_key=join_key_for(api_url, api_dir, env),
                heartbeat_interval=_float_env(env, "BACKCHANNEL_HEARTBEAT_INTERVAL", 5.0),
            )
            raise typer.Exit(code)
        profile = load_profile(agent, parsed, env=env, config_path=config_path, cwd=Path.cwd())
        use_tmux = not no_tmux
        if use_tmux and not available():
            typer.echo("backchannel: tmux is not installed; running in this terminal (--no-tmux)", err=True)
            use_tmux = False
        resolved_data_dir = client_data_dir(data_dir, env)
        server_url = client_server_url(server, env)
        options = RunOptions(
            server_url=server_url,
            data_dir=resolved_data_dir,
            env=env,
            label=label,
            use_tmux=use_tmux,
            preapprove=not no_preapprove,
            extra_args=tuple(extra_args),
            tmux_socket=env.get("BACKCHANNEL_TMUX_SOCKET") or None,
            join_key=join_key_for(server_url, resolved_data_dir, env),
            heartbeat_interval=_float_env(env, "BACKCHANNEL_HEARTBEAT_INTERVAL", 5.0),
            restart=not no_restart,
            restart_delay=_float_env(env, "BACKCHANNEL_RESTART_DELAY", 3.0),
            attach=should_attach(
                use_tmux=use_tmux, detach=detach, stdin=sys.stdin, stdout=sys.stdout, env=env
            ),
        )
        code = anyio.run(Runner(profile, options).run)
    except InvalidInput as exc:
        typer.echo(f"backchannel: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)
