"""``backchannel export`` and ``backchannel import`` (issue 12).

Both talk to the running server when there is one (so open pages see an import at once) and work
on the data dir directly when none answers (moving a room to a new machine before its first start).
Heavy modules are imported inside the commands: ``backchannel --help`` stays quick.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

ServerOpt = Annotated[str | None, typer.Option("--server", help="Server URL (env BACKCHANNEL_URL).")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Data dir (env BACKCHANNEL_DATA_DIR).")]


def _fail(message: str) -> typer.Exit:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(1)


def _server_error(response: Any) -> typer.Exit:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    return _fail(f"{response.status_code}: {detail}")


def _archives(data_dir: Path | None) -> Any:
    """An archive service over the data dir itself (no server has it open)."""
    from backchannel.archive import Archives, Limits
    from backchannel.config import load_settings
    from backchannel.store import Store

    settings = load_settings({"data_dir": data_dir})
    store = Store(settings.db_path)
    limits = Limits(
        settings.max_message_chars,
        settings.job_body_max,
        settings.max_schedules,
        settings.max_session_templates,
    )
    archives = Archives(
        store, settings.uploads_dir, settings.max_channels, settings.max_upload_bytes, limits=limits
    )
    return store, archives


def _client(server: str | None, data_dir: Path | None) -> Any:
    import httpx

    from backchannel.config import client_data_dir, client_server_url
    from backchannel.server.security import SESSION_HEADER, read_or_create_secret

    secret = read_or_create_secret(client_data_dir(data_dir))
    return httpx.Client(base_url=client_server_url(server), headers={SESSION_HEADER: secret}, timeout=120.0)


def print_report(report: dict[str, Any]) -> None:
    """Counts per section, channels made or remapped, then every warning."""
    for name, c in report["sections"].items():
        typer.echo(f"{name}: {c['created']} created, {c['duplicates']} already here, {c['skipped']} skipped")
    channels = report["channels"]
    if channels["created"]:
        typer.echo("channels created: " + ", ".join(f"#{c}" for c in channels["created"]))
    for old, new in channels["remapped"].items():
        typer.echo(f"channel #{old} -> #{new}")
    for warning in report["warnings"]:
        typer.echo(f"warning: {warning}", err=True)


def export_command(
    file: Annotated[Path, typer.Argument(help="Zip file to write ('-' = standard output).")],
    channel: Annotated[str | None, typer.Option("--channel", "-c", help="Export only this channel.")] = None,
    server: ServerOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Write the room (or one channel) to a zip archive: messages, jobs, rules, summaries, schedules,
    templates and images."""
    import sys

    import httpx

    out = sys.stdout.buffer if str(file) == "-" else None
    try:
        with (
            _client(server, data_dir) as client,
            client.stream("GET", "/api/export", params={"channel": channel} if channel else None) as response,
        ):
            if response.status_code >= 400:
                response.read()
                raise _server_error(response)
            with out or file.open("wb") as fh:
                for chunk in response.iter_bytes():
                    fh.write(chunk)
            return
    except httpx.ConnectError:
        pass  # no server: read the data dir itself
    from backchannel.errors import BackchannelError

    store, archives = _archives(data_dir)
    try:
        with out or file.open("wb") as fh:
            counts = archives.export_to(fh, channel)
    except BackchannelError as exc:
        raise _fail(exc.detail) from None
    finally:
        store.close()
    if out is None:
        typer.echo(", ".join(f"{n} {k}" for k, n in counts.items()), err=True)


def import_command(
    source: Annotated[str, typer.Argument(help="Archive zip, or the word 'agentchattr'.")],
    directory: Annotated[Path | None, typer.Argument(help="With 'agentchattr': its data directory.")] = None,
    server: ServerOpt = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Merge an archive into the room; importing the same archive again creates nothing."""
    import io

    import httpx

    from backchannel.archive import MAX_ARCHIVE_BYTES, MAX_LOCAL_BYTES
    from backchannel.archive_agentchattr import with_images
    from backchannel.errors import BackchannelError

    warnings: list[str] = []
    images: dict[str, Path] = {}  # an agentchattr data dir's images, still on disk
    local = source == "agentchattr" and directory is not None  # a trusted directory, no upload
    if local and directory is not None:
        from backchannel.archive_agentchattr import from_data_dir

        try:
            data, warnings, images = from_data_dir(directory)
        except BackchannelError as exc:
            raise _fail(exc.detail) from None
        name = "agentchattr.zip"
    else:
        path = Path(source)
        if directory is not None:
            raise _fail("give one archive file (or: import agentchattr DATA_DIR)")
        if not path.is_file():
            raise _fail(f"no such file: {source}")
        size = path.stat().st_size  # the limit holds before anything is read
        if size > MAX_ARCHIVE_BYTES:
            raise _fail(f"{source} is {size} bytes, larger than the {MAX_ARCHIVE_BYTES}-byte archive limit")
        data, name = path.read_bytes(), path.name
    report: dict[str, Any] | None = None
    packed = len(data) + sum(p.stat().st_size for p in images.values())
    try:
        with _client(server, data_dir) as client:
            if packed > MAX_ARCHIVE_BYTES:  # too big to upload: only the data dir itself will do
                client.get("/api/settings")  # is a server running? (ConnectError when not)
                raise _fail(
                    f"this room is {packed} bytes, more than a server accepts in one upload"
                    f" ({MAX_ARCHIVE_BYTES}): stop the server, then run the same command again"
                    " (it then imports straight into the data dir)"
                )
            body = with_images(data, images) if images else data
            response = client.post("/api/import", files={"file": (name, body, "application/zip")})
        if response.status_code >= 400:
            raise _server_error(response)
        report = response.json()
    except httpx.ConnectError:
        pass  # no server: write into the data dir itself
    if report is None:
        store, archives = _archives(data_dir)
        try:
            report = archives.import_sync(
                io.BytesIO(data),
                max_bytes=MAX_LOCAL_BYTES if local else MAX_ARCHIVE_BYTES,
                files=images,
            )
        except BackchannelError as exc:
            raise _fail(exc.detail) from None
        finally:
            store.close()
    assert report is not None
    report["warnings"] = [*warnings, *report["warnings"]]
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        print_report(report)


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)
    app.command("import")(import_command)
