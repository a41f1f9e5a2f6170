"""``create_app(settings)``: builds one isolated server; nothing global, so tests can run many.

One port serves the web UI, the REST API, the WebSocket, MCP streamable HTTP at ``/mcp`` and MCP
SSE at ``/sse`` (+ ``/messages/``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator

import swagger_ui_bundle  # type: ignore[import-untyped]  # ships no type hints
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from mcp.server.transport_security import TransportSecuritySettings
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import WebSocketRoute

from backchannel import __version__
from backchannel.bus import InMemoryEventBus
from backchannel.config import Settings
from backchannel.errors import BackchannelError
from backchannel.mcp_tools import build_mcp_server
from backchannel.registry import Registry
from backchannel.room import Room
from backchannel.room_settings import RoomSettings
from backchannel.server import (
    agent_reads_api,
    agents_api,
    agents_people_api,
    api,
    archive_api,
    clear_api,
    jobs_api,
    pins_api,
    rules_api,
    schedules_api,
    sessions_api,
    settings_api,
    web,
)
from backchannel.server.deps import Services
from backchannel.server.security import (
    BodyLimitMiddleware,
    Guard,
    HostCheckMiddleware,
    McpGateMiddleware,
    Secrets,
)
from backchannel.server.websocket import websocket_endpoint
from backchannel.store import Store

logger = logging.getLogger("backchannel.server")


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def _transport_security(settings: Settings) -> TransportSecuritySettings:
    if settings.allow_network:
        # Host checks for network mode are ours (HostCheckMiddleware); agents send no Origin.
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )


def create_app(settings: Settings) -> FastAPI:
    store = Store(settings.db_path)
    bus = InMemoryEventBus()
    registry = Registry(store, bus, settings)
    room = Room(store, bus, registry, settings, RoomSettings(store, bus, settings))
    secrets_ = Secrets.create(settings)
    services = Services(settings, store, bus, registry, room, Guard(settings, secrets_))

    mcp_server = build_mcp_server(room, registry, services.jobs, services.rules, services.schedules)
    security = _transport_security(settings)
    mcp_http = mcp_server.streamable_http_app(
        streamable_http_path="/mcp",
        transport_security=security,
        session_idle_timeout=settings.mcp_session_idle_timeout,
        # A tool call answers with one JSON body, not an SSE stream (every client accepts both; no
        # tool sends notifications mid-call): 10-25% less server CPU per call (bench_server.py).
        json_response=True,
    )
    mcp_sse = mcp_server.sse_app(sse_path="/sse", message_path="/messages/", transport_security=security)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncGenerator[None, None]:
        sweeper = asyncio.create_task(registry.run_sweeper())
        scheduler = asyncio.create_task(services.scheduler.run())  # schedules (issue 11)
        try:
            async with mcp_server.session_manager.run():
                yield
        finally:
            sweeper.cancel()
            scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            with contextlib.suppress(asyncio.CancelledError):
                await scheduler
            store.close()

    app = FastAPI(
        title="backchannel",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # served below from packaged assets: no CDN
        redoc_url=None,
        description="Chat server where people and AI coding agents meet. Agent protocol: see README.",
    )
    app.state.services = services
    app.state.mcp_server = mcp_server
    app.include_router(jobs_api.router)  # the jobs board (issue 9)
    app.include_router(rules_api.router)  # room rules (issue 10)
    app.include_router(pins_api.router)  # pins (issue 10)
    app.include_router(clear_api.router)  # /clear (issue 10)
    app.include_router(settings_api.router)  # room settings (issue 10)
    app.include_router(schedules_api.router)  # schedules (issue 11)
    app.include_router(sessions_api.router)  # sessions, templates and drafts (issue 11)
    app.include_router(archive_api.router)  # export / import (issue 12)
    app.include_router(agents_people_api.router)  # people's agent settings: role, colour, hat, forget
    app.include_router(api.router)
    app.include_router(agents_api.router)
    app.include_router(agent_reads_api.router)  # agents' context reads and images (issue 13)
    app.include_router(web.router)
    app.router.routes.append(WebSocketRoute("/ws", websocket_endpoint))
    # MCP first: every agent call is an /mcp request, and matching it against each included
    # router's routes first cost about a tenth of the server's CPU per call (bench_server.py).
    app.router.routes[0:0] = [*mcp_http.routes, *mcp_sse.routes]
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="backchannel API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    async def authenticate_agent(token: str | None) -> object:
        return await registry.authenticate(token, touch=False)

    app.add_middleware(
        McpGateMiddleware, guard=services.guard, transport_security=security, authenticate=authenticate_agent
    )
    # Generous for any JSON we accept (a maximal message is at most 4 bytes a character).
    app.add_middleware(BodyLimitMiddleware, max_bytes=max(256 * 1024, settings.max_message_chars * 8))
    app.add_middleware(HostCheckMiddleware, guard=services.guard)

    @app.exception_handler(BackchannelError)
    async def on_domain_error(_: Request, exc: BackchannelError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()) if p != 'body') or 'body'}: {err.get('msg')}"
            for err in exc.errors()
        )
        return _error(422, "invalid_input", problems or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(Exception)
    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return _error(500, "internal", "internal server error; see the server log")

    return app
