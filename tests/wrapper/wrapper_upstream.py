"""A small real MCP server standing in for backchannel in proxy tests: tokens, restarts, SSE."""

from __future__ import annotations

import contextlib
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from backchannel.errors import STALE_TOKEN_TEXT


class Upstream:
    """ASGI app: MCP streamable HTTP at /mcp and SSE at /sse, checking ``Bearer`` tokens.

    ``http_401`` chooses how a bad token is refused: an HTTP 401 (like REST) or, by default, the
    MCP tool error text (like the server's MCP tools). :meth:`restart` forgets every MCP session.
    """

    def __init__(self, tokens: set[str], *, http_401: bool = False) -> None:
        self.tokens = tokens
        self.http_401 = http_401
        self.seen: list[tuple[str, str | None, str | None]] = []  # (path, authorization, x-agent-token)
        self.generation = 0
        self._stack = contextlib.AsyncExitStack()
        self._mcp: Starlette | None = None
        self._sse: Starlette | None = None

    def _build(self) -> MCPServer:
        server = MCPServer("upstream")
        upstream = self

        @server.tool()
        def whoami(ctx: Context) -> str:  # pyright: ignore[reportUnusedFunction]
            token = upstream.token_of(ctx.headers or {})
            if token not in upstream.tokens:
                raise ToolError(STALE_TOKEN_TEXT)
            return f"token={token} generation={upstream.generation}"

        return server

    def token_of(self, headers: Any) -> str | None:
        auth = headers.get("authorization")
        return auth.removeprefix("Bearer ") if auth else None

    async def start(self) -> None:
        server = self._build()
        self._mcp = server.streamable_http_app()
        self._sse = server.sse_app()
        await self._stack.enter_async_context(self._mcp.router.lifespan_context(self._mcp))

    async def restart(self) -> None:
        """Like a server restart: all MCP sessions are gone, tokens survive."""
        await self._stack.aclose()
        self._stack = contextlib.AsyncExitStack()
        self.generation += 1
        await self.start()

    async def aclose(self) -> None:
        await self._stack.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.seen.append((scope["path"], headers.get("authorization"), headers.get("x-agent-token")))
        if self.http_401 and self.token_of(headers) not in self.tokens:
            body = b'{"error": "stale_token", "detail": "revoked"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        app = self._sse if scope["path"].startswith(("/sse", "/messages")) else self._mcp
        assert app is not None, "call start() first"
        await app(scope, receive, send)
