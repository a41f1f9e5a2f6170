"""Running the server for real: bind first (so ``--port 0`` can print its port), then uvicorn.

Nothing on the way to listening imports FastAPI: :class:`~backchannel.server.boot.BootApp` answers
MCP at once and builds the web app in the background (issue 14: cold start).
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import sys
from collections.abc import Callable

import uvicorn

from backchannel.config import Settings
from backchannel.errors import InvalidInput
from backchannel.server import limits
from backchannel.server.boot import BootApp
from backchannel.server.security import JOIN_KEY_FILE


def bind(settings: Settings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto says
    # TCP, and without it every keep-alive response waits ~40 ms on Nagle + delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        raise InvalidInput(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def event_loop() -> str:
    """uvloop where it exists (Linux, macOS): about 25 us less server CPU per request than asyncio's
    loop (bench/README.md, issue 14); asyncio's own loop elsewhere (Windows)."""
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class _Server(uvicorn.Server):
    """uvicorn's server with an event-loop error handler that cannot stop the loop, and a hook run
    as shutdown begins (uvicorn waits on open responses before it sends the lifespan shutdown)."""

    def __init__(self, config: uvicorn.Config, on_shutdown: Callable[[], None] = lambda: None) -> None:
        super().__init__(config)
        self.on_shutdown = on_shutdown

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        asyncio.get_running_loop().set_exception_handler(limits.LoopErrorHandler())
        await super().startup(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.on_shutdown()
        await super().shutdown(sockets)


def serve(settings: Settings, *, log_level: str = "warning") -> None:
    if not settings.is_loopback and not settings.allow_network:
        raise InvalidInput(
            f"--host {settings.host} would expose the server beyond this machine; "
            "add --allow-network if that is what you want"
        )
    fd_limit = limits.raise_fd_limit()
    cap = limits.connection_cap(settings, fd_limit)
    sock = bind(settings)
    port = sock.getsockname()[1]
    app = BootApp(settings)
    limits.install_safe_logging()  # after our imports, so that none can put another root handler back
    services = app.services
    print(f"backchannel serving on {base_url(settings.host, port)}", flush=True)
    print(f"  data dir: {settings.data_dir}", flush=True)
    print(f"  connections: at most {cap} (open-file limit {fd_limit})", flush=True)
    if settings.allow_network:
        print(
            f"  network mode: agents need  X-Join-Key: {services.guard.secrets.join_key}"
            f"  (also in {settings.data_dir / JOIN_KEY_FILE})",
            flush=True,
        )
        print(f"  network mode: UI login secret: {services.guard.secrets.login}", flush=True)
    config = uvicorn.Config(
        app,
        log_level=log_level,
        log_config=None,  # uvicorn's loggers go to the root handler: one line per record, never raises
        lifespan="on",
        ws="auto",
        loop=event_loop(),
        http=limits.protocol_for(cap, settings.request_timeout),
        timeout_keep_alive=max(1, round(settings.idle_timeout)),
        backlog=limits.accept_backlog(cap),
        timeout_graceful_shutdown=3,
    )
    server = _Server(config, on_shutdown=app.begin_shutdown)  # open /sse streams end at once
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    sys.stdout.flush()
