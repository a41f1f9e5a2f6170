"""``create_app(settings)``: builds one isolated server; nothing global, so tests can run many.

One port serves the web UI, the REST API, the WebSocket, MCP streamable HTTP at ``/mcp`` and MCP
SSE at ``/sse`` (+ ``/messages/``). MCP requests never enter FastAPI: :class:`BackchannelApp` checks
``Host`` and hands them to :mod:`backchannel.server.mcp_endpoint` itself, which saves the router and
middleware stack on every agent call. ``serve`` does not run this app's lifespan: it builds the
services first (:mod:`backchannel.services`), answers MCP at once and builds this app afterwards
(:mod:`backchannel.server.boot`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import Any

import swagger_ui_bundle  # type: ignore[import-untyped]  # ships no type hints
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import WebSocketRoute
from starlette.types import Receive, Scope, Send

from backchannel import __version__
from backchannel.config import Settings
from backchannel.errors import BackchannelError
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
from backchannel.server.boot import mcp_for
from backchannel.server.mcp_endpoint import PATHS as MCP_PATHS
from backchannel.server.mcp_endpoint import McpEndpoint
from backchannel.server.security import BodyLimitMiddleware, Guard, refuse_foreign_host
from backchannel.server.websocket import websocket_endpoint
from backchannel.services import Services, build_services
from backchannel.text import not_unicode

logger = logging.getLogger("backchannel.server")


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


class BackchannelApp(FastAPI):
    """FastAPI behind one outer step: ``Host`` is checked for every request (DNS rebinding), then
    MCP paths go straight to the MCP endpoint and everything else to FastAPI's own stack."""

    guard: Guard
    mcp: McpEndpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" or kind == "websocket":
            if await refuse_foreign_host(self.guard, scope, send):
                return
            if kind == "http" and scope["path"] in MCP_PATHS:
                await self.mcp(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, services: Services | None = None) -> BackchannelApp:
    """The whole app. Given ``services`` (``serve``'s boot path), it uses them and its own lifespan
    is never run; without, it builds them and its lifespan runs them (tests, embedding)."""
    if services is None:
        services = build_services(settings)
    running = services.running
    # Under serve, BootApp answers MCP with its own endpoint (same services; no state of note).
    endpoint = mcp_for(services)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncGenerator[None, None]:
        async with running():
            yield

    app = BackchannelApp(
        title="backchannel",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # served below from packaged assets: no CDN
        redoc_url=None,
        description="Chat server where people and AI coding agents meet. Agent protocol: see README.",
    )
    app.state.services = services
    app.state.toolset = endpoint.toolset
    app.guard = services.guard
    app.mcp = endpoint
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

    # Generous for any JSON we accept (a maximal message is at most 4 bytes a character).
    app.add_middleware(BodyLimitMiddleware, max_bytes=max(256 * 1024, settings.max_message_chars * 8))

    @app.exception_handler(BackchannelError)
    async def on_domain_error(_: Request, exc: BackchannelError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        def field(err: Any) -> str:
            return ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"

        for err in exc.errors():
            if err.get("type") == "string_unicode":  # a lone surrogate: the domain's answer (text.py)
                return _error(400, "invalid_input", not_unicode(field(err)))
        problems = "; ".join(f"{field(err)}: {err.get('msg')}" for err in exc.errors())
        return _error(422, "invalid_input", problems or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(Exception)
    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return _error(500, "internal", "internal server error; see the server log")

    return app
