"""The ``backchannel`` command. Thin: parse, build settings or an HTTP client, call into the package."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from backchannel import __version__
from backchannel.config import client_data_dir, client_server_url, load_settings
from backchannel.errors import BackchannelError
from backchannel.server.security import SESSION_HEADER, read_or_create_secret

app = typer.Typer(
    help="A chat room where people and AI coding agents meet.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
agents_app = typer.Typer(help="Inspect and manage agent identities.", no_args_is_help=True)
app.add_typer(agents_app, name="agents")
err = Console(stderr=True)

ServerOpt = Annotated[str | None, typer.Option("--server", help="Server URL (env BACKCHANNEL_URL).")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Data dir (env BACKCHANNEL_DATA_DIR).")]
ChannelOpt = Annotated[str, typer.Option("--channel", "-c", help="Channel name.")]


def _fail(message: str) -> typer.Exit:
    # Everything after the label comes from a user, a file or the server: never rich markup, or
    # "[server]" in a message would vanish.
    err.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(1)


def _warn(message: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {escape(message)}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port (default 8300; 0 = free).")] = None,
    data_dir: DataDirOpt = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file.")] = None,
    allow_network: Annotated[
        bool | None, typer.Option("--allow-network", help="Permit a non-loopback --host.")
    ] = None,
) -> None:
    """Start the server: web UI, REST, WebSocket and MCP on one port."""
    from backchannel.serve import serve as run_server

    try:
        settings = load_settings(
            {"host": host, "port": port, "data_dir": data_dir, "allow_network": allow_network or None},
            config_file=config,
            warn=_warn,
        )
        run_server(settings)
    except BackchannelError as exc:
        raise _fail(exc.detail) from None


def _client(server: str | None, data_dir: Path | None) -> httpx.Client:
    secret = read_or_create_secret(client_data_dir(data_dir))
    return httpx.Client(base_url=client_server_url(server), headers={SESSION_HEADER: secret}, timeout=10.0)


def _call(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        response = client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise _fail(f"cannot reach the server at {client.base_url}: {exc}") from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        if response.status_code == 401:
            detail += " (is --data-dir the server's data dir?)"
        raise _fail(f"{response.status_code}: {detail}")
    return response


@app.command()
def send(
    text: Annotated[str, typer.Argument(help="Message text; '-' reads standard input.")],
    channel: ChannelOpt = "general",
    server: ServerOpt = None,
    data_dir: DataDirOpt = None,
    removed_as: Annotated[str | None, typer.Option("--as", hidden=True)] = None,
) -> None:
    """Post a message as the local person (the same one as this machine's browser); print its id."""
    if removed_as is not None:  # removed: scripts that still pass it learn what replaced it
        raise _fail(
            "--as was removed: the CLI posts as the local person; set the name with `backchannel name NEW`"
        )
    if text == "-":
        text = sys.stdin.read()
    with _client(server, data_dir) as client:
        message = _call(client, "POST", f"/api/channels/{channel}/messages", json={"text": text}).json()
    typer.echo(message["id"])


@app.command()
def name(
    new: Annotated[
        str | None, typer.Argument(help="New display name; omit to print the current one.")
    ] = None,
    server: ServerOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Print or change the local person's display name (shared with this machine's browser)."""
    with _client(server, data_dir) as client:
        if new is None:
            me = _call(client, "GET", "/api/me").json()
        else:
            me = _call(client, "PUT", "/api/me", json={"name": new}).json()
    typer.echo(me["name"])


@app.command()
def read(
    channel: ChannelOpt = "general",
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many messages.")] = 20,
    server: ServerOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Print the latest messages of a channel."""
    with _client(server, data_dir) as client:
        data = _call(client, "GET", f"/api/channels/{channel}/messages", params={"limit": limit}).json()
    for m in data["messages"]:
        text = "(deleted)" if m["deleted"] else m["text"]
        who = f"{m['sender']} (agent)" if m.get("kind") == "agent" else m["sender"]  # never mistaken
        typer.echo(f"[{m['id']}] {who}: {text}")


@agents_app.command("list")
def agents_list(server: ServerOpt = None, data_dir: DataDirOpt = None) -> None:
    """Name, base, state and last seen of every agent (never tokens)."""
    import datetime as dt

    with _client(server, data_dir) as client:
        agents = _call(client, "GET", "/api/agents").json()
    table = Table("name", "base", "state", "last seen")
    for a in agents:
        seen = dt.datetime.fromtimestamp(a["last_seen"]).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(*(escape(str(v)) for v in (a["name"], a["base"], a["state"], seen)))
    Console().print(table)


@agents_app.command("rotate")
def agents_rotate(
    name: Annotated[str, typer.Argument(help="Agent name.")],
    server: ServerOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Revoke an agent's token now; its wrapper re-registers under the same name."""
    with _client(server, data_dir) as client:
        _call(client, "POST", f"/api/agents/{name}/rotate")
    typer.echo(f"rotated {name}: its token is revoked; its wrapper will re-register")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def _register_wrapper() -> None:
    try:
        command = importlib.import_module("backchannel.wrapper.command")
    except ImportError:  # the wrapper package is optional while it is being built
        return
    # RunCommand: only the arguments after `--` reach the agent CLI; unknown options are errors.
    app.command("run", cls=command.RunCommand, help="Start an agent CLI wired to the room (see README).")(
        command.run
    )


_register_wrapper()

from backchannel import archive_cli  # noqa: E402  # export / import (issue 12); imports lazily

archive_cli.register(app)


def main() -> None:
    app()
