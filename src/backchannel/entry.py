"""The ``backchannel`` executable: ``serve`` starts without loading the interactive CLI.

Typer, click, rich, httpx and the agent wrapper make up about a fifth of a cold start and the server
never uses them. A plain ``backchannel serve`` with only the options parsed here goes straight to
the server; anything else (``--help``, another command, an option or value this parser does not
know) goes to the full typer CLI in ``backchannel.cli``, which owns every message and error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

_VALUE_OPTIONS = {"--host": "host", "--port": "port", "--data-dir": "data_dir", "--config": "config"}


def parse_serve(argv: list[str]) -> dict[str, Any] | None:
    """The options of a plain ``serve`` command line, or None when the full CLI must handle it."""
    if not argv or argv[0] != "serve":
        return None
    found: dict[str, Any] = {}
    args = iter(argv[1:])
    for arg in args:
        option, eq, value = arg.partition("=")
        if option == "--allow-network" and not eq:
            found["allow_network"] = True
            continue
        key = _VALUE_OPTIONS.get(option)
        if key is None or key in found:
            return None  # --help, an unknown option, or a repeated one: typer decides
        if not eq:
            value = next(args, None)
            if value is None:
                return None
        if key == "port":
            if not (value.isascii() and value.isdigit()) or int(value) > 65535:
                return None
            found[key] = int(value)
        elif key in ("data_dir", "config"):
            if not value:
                return None
            found[key] = Path(value)
        else:
            found[key] = value
    return found


def serve(options: dict[str, Any]) -> None:
    """What ``cli.serve`` does, with plain-text warnings and errors instead of rich's."""
    from backchannel.config import load_settings
    from backchannel.errors import BackchannelError

    def warn(message: str) -> None:
        print(f"warning: {message}", file=sys.stderr, flush=True)

    config = options.pop("config", None)
    try:
        settings = load_settings(options, config_file=config, warn=warn)
        from backchannel.serve import serve as run_server  # after the settings: a bad one fails fast

        run_server(settings)
    except BackchannelError as exc:
        print(f"error: {exc.detail}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown
        raise SystemExit(130) from None


def main() -> None:
    options = parse_serve(sys.argv[1:])
    if options is not None:
        serve(options)
        return
    from backchannel.cli import main as cli_main

    cli_main()
