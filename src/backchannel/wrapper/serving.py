"""Run an ASGI app with uvicorn inside the caller's event loop, on loopback and an ephemeral port."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncGenerator
from typing import Any, Literal

import anyio
import uvicorn

# The client must always be the side that closes an idle keep-alive connection. Node's agents and
# httpx let one idle 4-5 s; with uvicorn's default of 5 s the two race, and a request sent on a
# socket the server is closing fails ("connection failed") even though nothing was wrong.
KEEP_ALIVE = 75.0


class _NoSignalServer(uvicorn.Server):
    """uvicorn would take over SIGINT/SIGTERM; the wrapper owns those, so leave them alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


@contextlib.asynccontextmanager
async def serve(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    lifespan: Literal["on", "off"] = "off",
    keep_alive: float = KEEP_ALIVE,
) -> AsyncGenerator[str, None]:
    """Run ``app`` with uvicorn in this event loop on ``host`` (ephemeral port); yield its base URL."""
    # IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted sockets (else ~40 ms Nagle stalls per call).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(False)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, lifespan=lifespan, log_level="warning", access_log=False, timeout_keep_alive=round(keep_alive)
    )
    server = _NoSignalServer(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        try:
            with anyio.fail_after(10):
                while not server.started:
                    await anyio.sleep(0.005)  # uvicorn exposes no started event; this ends in ms
            yield f"http://{host}:{bound_port}"
        finally:
            server.should_exit = True
            server.force_exit = True  # don't wait for CLIs' long-lived streams to end
    sock.close()
