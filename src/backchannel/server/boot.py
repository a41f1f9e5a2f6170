"""The app ``serve`` runs: MCP answers from the first moment, the web app joins when it is built.

Why: importing FastAPI and our REST routers cost most of the cold start (about 0.6 s of CPU), and
an agent's tool call needs none of it. So :class:`BootApp` owns the lifespan (the services' background
work), answers the MCP paths itself straight away, and builds the FastAPI app in a worker thread right
after start-up. Any other request waits for that build and is then passed on; if the build failed,
the failure is in the server log and such requests get a JSON ``503``, never a traceback.

Nothing here imports FastAPI (``tests/server/test_boot.py`` checks it in a fresh interpreter).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from backchannel.config import Settings
from backchannel.mcp_tools import build_toolset
from backchannel.server.mcp_endpoint import PATHS as MCP_PATHS
from backchannel.server.mcp_endpoint import McpEndpoint
from backchannel.server.security import refuse_foreign_host, send_json_error
from backchannel.services import Services, build_services

logger = logging.getLogger("backchannel.server")

WebFactory = Callable[[Settings, Services], ASGIApp]
"""Builds the web app (REST, UI, WebSocket) over the given services; runs in a worker thread."""


def mcp_for(services: Services) -> McpEndpoint:
    """The MCP endpoint over ``services``: their tools, their guard, their agents' tokens."""
    toolset = build_toolset(
        services.room, services.registry, services.jobs, services.rules, services.schedules
    )
    registry = services.registry

    async def authenticate(token: str | None) -> object:
        return await registry.authenticate(token, touch=False)

    return McpEndpoint(toolset, services.settings, services.guard, authenticate)


def build_web_app(settings: Settings, services: Services) -> ASGIApp:
    """The default factory: ``create_app`` over the running services (imported here, not above)."""
    from backchannel.server.app import create_app

    return create_app(settings, services)


class BootApp:
    """ASGI app: lifespan = ``services.running()``; MCP paths (after the ``Host`` check, as in
    ``BackchannelApp``) at once; everything else through the web app once it is built."""

    def __init__(
        self,
        settings: Settings,
        services: Services | None = None,
        factory: WebFactory = build_web_app,
    ) -> None:
        self.settings = settings
        self.services = services if services is not None else build_services(settings)
        self.mcp = mcp_for(self.services)
        self.factory = factory
        self._web: asyncio.Task[ASGIApp | None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if await refuse_foreign_host(self.services.guard, scope, send):
            return
        if kind == "http" and scope["path"] in MCP_PATHS:
            await self.mcp(scope, receive, send)
            return
        web = await self.web_app()
        if web is not None:
            await web(scope, receive, send)
        elif kind == "http":
            await send_json_error(send, 503, "unavailable", "the web API failed to start; see the server log")
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1011, "reason": "the web API failed to start"})

    def start_build(self) -> None:
        """Start building the web app in a worker thread (once); the event loop keeps serving MCP."""
        if self._web is None:
            self._web = asyncio.create_task(self._build())

    async def web_app(self) -> ASGIApp | None:
        """The web app, waiting for its build if need be; ``None`` if the build failed."""
        self.start_build()
        assert self._web is not None
        # Shielded: a request that gives up must not cancel the build every later request needs.
        return await asyncio.shield(self._web)

    def begin_shutdown(self) -> None:
        """Shutdown begins: end the open ``/sse`` streams, which would otherwise hold it up."""
        self.mcp.close_streams()

    async def _build(self) -> ASGIApp | None:
        try:
            return await asyncio.to_thread(self.factory, self.settings, self.services)
        except Exception:
            logger.exception("the web API (REST, UI, WebSocket) failed to start; MCP keeps serving")
            return None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """The ASGI lifespan protocol around ``services.running()``; the build starts after start-up.
        (The web app's own lifespan is never run: it would start the background work twice.)"""
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        stack = contextlib.AsyncExitStack()
        try:
            await stack.enter_async_context(self.services.running())
        except Exception as exc:
            logger.exception("start-up failed")
            await send({"type": "lifespan.startup.failed", "message": _short(exc)})
            return
        self.start_build()
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        try:
            await stack.aclose()
        except Exception as exc:
            logger.exception("shutdown failed")
            await send({"type": "lifespan.shutdown.failed", "message": _short(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})


def _short(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:500]
