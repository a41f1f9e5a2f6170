"""A small real MCP server standing in for backchannel in proxy tests: tokens, restarts, SSE."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from backchannel.errors import STALE_TOKEN_TEXT
from backchannel.wrapper.proxy import IdentityProxy
from backchannel.wrapper.serving import serve


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
        self._tg: anyio.abc.TaskGroup | None = None
        self._stop = anyio.Event()
        self._done = anyio.Event()
        self._mcp: Starlette | None = None
        self._sse: Starlette | None = None
        self._streams: set[anyio.CancelScope] = set()  # live GET /sse handlers

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

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Upstream]:
        """Serve generations from a task of our own, so a restart never unwinds someone else's scope."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            await tg.start(self._generation)
            try:
                yield self
            finally:
                self._stop.set()

    async def _generation(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        server = self._build()
        mcp_app = server.streamable_http_app()
        self._stop = anyio.Event()
        self._done = anyio.Event()
        try:
            async with mcp_app.router.lifespan_context(mcp_app):
                self._mcp, self._sse = mcp_app, server.sse_app()
                task_status.started()
                await self._stop.wait()
        finally:
            self._done.set()

    async def restart(self, *, drop_streams: bool = False) -> None:
        """Like a server restart: all MCP sessions are gone, tokens survive.

        ``drop_streams`` also cuts every open ``GET /sse`` stream mid-response, as a dying process does.
        """
        if drop_streams:
            for scope in self._streams:
                scope.cancel()
        done = self._done
        self._stop.set()
        await done.wait()
        self.generation += 1
        assert self._tg is not None
        await self._tg.start(self._generation)

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
        if scope["path"] != "/sse":
            await app(scope, receive, send)
            return
        with anyio.CancelScope() as stream:
            self._streams.add(stream)
            try:
                await app(scope, receive, send)
            finally:
                self._streams.discard(stream)


class Late404:
    """In front of an :class:`Upstream`: the first POST after :meth:`arm` is answered 404 (the
    session is unknown), and only once ``release`` is set; ``held`` is set when it arrived."""

    def __init__(self, upstream: Upstream, body: bytes) -> None:
        self.upstream, self.body = upstream, body
        self.armed = False
        self.held, self.release = anyio.Event(), anyio.Event()

    def arm(self) -> None:
        self.armed = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (self.armed and scope["type"] == "http" and scope["method"] == "POST"):
            await self.upstream(scope, receive, send)
            return
        self.armed = False
        while (await receive()).get("more_body"):
            pass
        self.held.set()
        await self.release.wait()
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": self.body})


@contextlib.asynccontextmanager
async def running(
    upstream: Upstream, proxy_token: str = "t1", *, front: Any = None, **kw: Any
) -> AsyncIterator[tuple[IdentityProxy, str]]:
    """``upstream`` served (behind ``front``, an ASGI app in front of it, if given) and an identity
    proxy to it: (the proxy, its URL)."""
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(upstream.running())
        upstream_url = await stack.enter_async_context(serve(upstream if front is None else front))
        proxy = IdentityProxy(upstream_url, proxy_token, **kw)
        stack.push_async_callback(proxy.aclose)
        proxy_url = await stack.enter_async_context(serve(proxy))
        yield proxy, proxy_url
