"""The per-agent identity proxy: the CLI talks MCP to it, it talks to the server as the agent.

Why a proxy: a CLI reads its MCP config once, so any token in that config goes stale on rotation,
crash timeout or server restart. Here the CLI's config names only the proxy; the proxy strips any
credential the client sent and adds the agent's *current* token, which the wrapper swaps live with
:meth:`IdentityProxy.set_token`. Three things the CLI would otherwise see are hidden from it:

* an upstream ``401`` or a ``stale ... Re-register`` tool error: the proxy asks the wrapper for a
  fresh token (``refresh``) and replays the request;
* ``404`` for a streamable-HTTP session the server no longer knows (it restarted; older servers
  only: this server serves any session id): the proxy replays the client's ``initialize`` +
  ``notifications/initialized`` to open a new session and maps the client's session id onto it for
  good;
* the end of a legacy SSE stream (``GET /sse``) when the server restarts: the proxy keeps the
  client's stream open, connects a new upstream stream, replays the client's ``initialize`` (its
  answer swallowed) + ``notifications/initialized`` on the new session, and maps the client's
  ``session_id`` onto it for later ``POST /messages/``; a ``404`` for that session triggers the same;
* SSE ``endpoint`` events with absolute upstream URLs: rewritten so the client posts back here.

Responses stream through as they arrive. Request bodies up to ``replay_limit`` (1 MiB: every MCP
message in practice) are buffered so they can be replayed; larger ones stream through unbuffered
(and are not replayed), and a body over ``max_body`` is refused with ``413`` before it is read.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import anyio
import httpx
from starlette.types import Message, Receive, Scope, Send

from backchannel.errors import STALE_TOKEN_TEXT
from backchannel.wrapper._sse import EventParser, SSEEvent
from backchannel.wrapper.agent_client import CLIENT_LIMITS

logger = logging.getLogger(__name__)

RefreshFn = Callable[[str], Awaitable[str | None]]
"""Given the token that went stale, return a fresh one (or None if none could be had)."""

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
     "transfer-encoding", "upgrade", "host", "content-length"}
)  # fmt: skip
# Never forwarded upstream: credentials are ours to set, and identity encoding keeps streams raw.
_STRIP_REQUEST = _HOP_BY_HOP | {"authorization", "x-agent-token", "accept-encoding", "cookie"}
_SESSION = "mcp-session-id"
_MCP_PATHS = ("/mcp", "/mcp/")
_ACCEPT_BOTH = "application/json, text/event-stream"
MAX_BODY = 16 * 1024 * 1024  # far above any MCP message; the cap keeps a runaway client bounded
REPLAY_LIMIT = 1024 * 1024


class _BodyAborted(Exception):
    """A streamed request body stopped: past ``max_body`` (``too_large``) or the client left."""

    def __init__(self, too_large: bool) -> None:
        super().__init__("request body over the limit" if too_large else "the client left mid-body")
        self.too_large = too_large


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class _Request:
    method: str
    target: str  # path + query, as sent by the client
    headers: list[tuple[str, str]]
    body: bytes
    client_sid: str | None
    rpc_method: str | None
    rpc_id: Any
    token_used: str = ""
    sse_sid: str | None = None  # the ``session_id`` of a legacy SSE ``POST /messages/``
    stream: AsyncIterator[bytes] | None = None  # a body too large to buffer: sent once, never replayed


@dataclass
class _Session:
    upstream_id: str
    init_body: bytes
    protocol_version: str | None = None


@dataclass
class _SSESession:
    """A client's legacy SSE session: its id is the first upstream one, ``upstream_id`` the current."""

    upstream_id: str
    init_body: bytes | None = None
    ended: bool = False
    changed: anyio.Event = field(default_factory=anyio.Event)  # set when upstream_id or ended changes
    interrupt: anyio.CancelScope | None = None  # cancels the read of the current upstream stream

    def notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()


class _EventReader:
    """Events of one upstream SSE response, one at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks: AsyncIterator[bytes] = response.aiter_bytes()
        self._parser = EventParser()
        self._ready: deque[SSEEvent] = deque()

    async def next(self) -> SSEEvent | None:
        while not self._ready:
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                return None
            self._ready.extend(self._parser.feed(chunk))
        return self._ready.popleft()


class IdentityProxy:
    """ASGI app forwarding MCP traffic to ``upstream`` with the agent's live token."""

    def __init__(
        self,
        upstream: str,
        token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        refresh: RefreshFn | None = None,
        refresh_timeout: float = 30.0,
        connect_grace: float = 15.0,
        max_body: int = MAX_BODY,
        replay_limit: int = REPLAY_LIMIT,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.max_body = max_body
        self.replay_limit = min(replay_limit, max_body)
        self._connect_grace = connect_grace
        self._token = token
        self._refresh_fn = refresh
        self._refresh_timeout = refresh_timeout
        self._refresh_lock = anyio.Lock()
        self._sessions: dict[str, _Session] = {}
        self._sse_sessions: dict[str, _SSESession] = {}
        self._session_locks: dict[str, anyio.Lock] = {}
        self._ids = itertools.count(1)
        timeout = httpx.Timeout(connect=10.0, read=None, write=30.0, pool=30.0)
        self._client = httpx.AsyncClient(
            transport=transport, timeout=timeout, limits=CLIENT_LIMITS, trust_env=False
        )
        self.reinitialized = 0  # how many sessions were re-opened on a client's behalf
        self.connect_retries = 0  # how many sends waited for the server to come back

    @property
    def token(self) -> str:
        return self._token

    def set_token(self, token: str) -> None:
        """Swap the token used for every request from now on; open client sessions are kept."""
        self._token = token

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- ASGI entry ------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        client = scope.get("client")
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        if not is_loopback(client[0] if client else None) or not self._local_request(headers):
            await _plain(send, 403, {"error": "forbidden", "detail": "the identity proxy is loopback-only"})
            return
        path: str = scope["path"]
        if path not in (*_MCP_PATHS, "/sse") and not path.startswith("/messages"):
            await _plain(send, 404, {"error": "not_found", "detail": f"the proxy does not serve {path}"})
            return
        declared = dict(headers).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            await self._too_large(send)
            return
        body, complete = await _read_head(receive, self.replay_limit)
        stream = None if complete else self._rest_of_body(body, receive)
        query = scope.get("query_string", b"").decode("latin-1")
        rpc_method, rpc_id = _rpc_of(body) if scope["method"] == "POST" and complete else (None, None)
        sse_sid = dict(parse_qsl(query)).get("session_id") if path.startswith("/messages") else None
        req = _Request(
            method=scope["method"],
            target=path + (f"?{query}" if query else ""),
            headers=[(k, v) for k, v in headers if k not in _STRIP_REQUEST],
            body=body,
            client_sid=dict(headers).get(_SESSION),
            rpc_method=rpc_method,
            rpc_id=rpc_id,
            sse_sid=sse_sid,
            stream=stream,
        )
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            if path == "/sse":
                await self._relay_sse_endpoint(req, tracking_send, receive)
            else:
                await self._relay(req, tracking_send)
        except _BodyAborted as exc:
            if exc.too_large and not started:
                await self._too_large(send)
        except httpx.TransportError as exc:
            logger.info("upstream unreachable for %s %s: %s", req.method, req.target, exc)
            if not started:
                await _plain(send, 502, {"error": "upstream_unavailable", "detail": str(exc)})
            else:  # the server went away mid-stream: end the stream; the client reconnects
                with contextlib.suppress(Exception):
                    await send({"type": "http.response.body", "body": b""})

    async def _too_large(self, send: Send) -> None:
        detail = f"request body over {self.max_body} bytes: the identity proxy does not forward it"
        await _plain(send, 413, {"error": "payload_too_large", "detail": detail})

    async def _rest_of_body(self, head: bytes, receive: Receive) -> AsyncIterator[bytes]:
        """Stream a large body on as it arrives (never held whole); stop past ``max_body``."""
        size = len(head)
        yield head
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                raise _BodyAborted(too_large=False)
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _BodyAborted(too_large=True)
            if chunk:
                yield chunk
            if not message.get("more_body"):
                return

    @staticmethod
    def _local_request(headers: list[tuple[str, str]]) -> bool:
        """Refuse browser-driven requests (DNS rebinding, CSRF): Host and any Origin must be loopback."""
        values = dict(headers)
        host = urlsplit(f"//{values.get('host', '')}").hostname
        origin = values.get("origin")
        if origin is not None and not is_loopback(urlsplit(origin).hostname):
            return False
        return is_loopback(host)

    # -- upstream requests -------------------------------------------------------------------------
    def _upstream_headers(self, req: _Request, session_id: str | None) -> list[tuple[str, str]]:
        headers = [(k, v) for k, v in req.headers if k != _SESSION]
        if session_id is not None:
            headers.append((_SESSION, session_id))
            if session_id != req.client_sid:
                # Event ids of the lost session mean nothing to the new one.
                headers = [(k, v) for k, v in headers if k != "last-event-id"]
        headers.append(("authorization", f"Bearer {req.token_used}"))
        return headers

    async def _open(self, req: _Request) -> httpx.Response:
        """Send ``req`` upstream, re-opening a lost session or refreshing a stale token as needed."""
        response: httpx.Response | None = None
        for _attempt in range(3):
            if response is not None:
                await response.aclose()
            req.token_used = self._token
            session = self._sessions.get(req.client_sid) if req.client_sid else None
            upstream_sid = session.upstream_id if session else req.client_sid
            sse = self._sse_sessions.get(req.sse_sid) if req.sse_sid else None
            # The upstream ids this request goes out with: a 404 means *these* are lost. Read again
            # after the answer, they may already be a re-opened session's, which must not be
            # re-opened once more (a stream that reconnected meanwhile would be cut for nothing).
            sse_upstream = sse.upstream_id if sse else None
            target = _with_session_id(req.target, sse_upstream) if sse_upstream else req.target
            request = self._client.build_request(
                req.method,
                self.upstream + target,
                headers=self._upstream_headers(req, upstream_sid),
                content=req.stream if req.stream is not None else (req.body or None),
            )
            if req.stream is not None:  # sent once: a streamed body can't be replayed
                response = await self._client.send(request, stream=True)
                break
            response = await self._send_when_up(request)
            if response.status_code == 401 and await self._refresh(req.token_used):
                continue
            if (
                response.status_code == 404
                and session is not None
                and upstream_sid is not None
                and req.method != "DELETE"
                and await self._reinitialize(req.client_sid or "", upstream_sid)
            ):
                continue
            if (
                response.status_code == 404
                and sse_upstream is not None
                and await self._sse_reopen(req.sse_sid or "", sse_upstream)
            ):
                continue
            break
        assert response is not None
        sse = self._sse_sessions.get(req.sse_sid) if req.sse_sid else None
        if sse is not None and req.rpc_method == "initialize" and response.status_code < 300:
            sse.init_body = req.body
        if req.rpc_method == "initialize" and req.client_sid is None and response.status_code == 200:
            sid = response.headers.get(_SESSION)
            if sid:
                self._sessions[sid] = _Session(sid, req.body)
        elif req.rpc_method == "notifications/initialized" and req.client_sid in self._sessions:
            self._sessions[req.client_sid].protocol_version = dict(req.headers).get("mcp-protocol-version")
        if req.method == "DELETE" and req.client_sid:
            self._sessions.pop(req.client_sid, None)
        return response

    async def _send_when_up(self, request: httpx.Request) -> httpx.Response:
        """Send, riding out a server restart: a refused connection never reached the server, so
        retrying it is safe for any request. Gives up (502 to the client) after ``connect_grace``."""
        deadline = anyio.current_time() + self._connect_grace
        delay = 0.05
        while True:
            try:
                return await self._client.send(request, stream=True)
            except httpx.ConnectError:
                if anyio.current_time() + delay > deadline:
                    raise
                self.connect_retries += 1
                logger.info("server unreachable; retrying %s %s", request.method, request.url.path)
            await anyio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _refresh(self, stale: str) -> bool:
        """Get a token newer than ``stale``; concurrent callers share one refresh."""
        async with self._refresh_lock:
            if self._token != stale:
                return True
            if self._refresh_fn is None:
                return False
            with anyio.move_on_after(self._refresh_timeout):
                fresh = await self._refresh_fn(stale)
                if fresh:
                    self._token = fresh
            return self._token != stale

    async def _reinitialize(self, client_sid: str, lost_upstream_id: str) -> bool:
        """Open a new upstream session for ``client_sid`` by replaying its handshake."""
        lock = self._session_locks.setdefault(client_sid, anyio.Lock())
        async with lock:
            session = self._sessions.get(client_sid)
            if session is None:
                return False
            if session.upstream_id != lost_upstream_id:
                return True  # another request already re-opened it
            init = json.loads(session.init_body)
            init["id"] = f"backchannel-proxy-{next(self._ids)}"
            base_headers = [
                ("content-type", "application/json"),
                ("accept", "application/json, text/event-stream"),
            ]
            for _attempt in range(2):
                token = self._token
                headers = [*base_headers, ("authorization", f"Bearer {token}")]
                async with self._client.stream(
                    "POST", self.upstream + "/mcp", headers=headers, content=json.dumps(init)
                ) as response:
                    if response.status_code == 401 and await self._refresh(token):
                        continue
                    new_sid = response.headers.get(_SESSION)
                    if response.status_code != 200 or not new_sid:
                        logger.warning("could not re-open the MCP session: HTTP %s", response.status_code)
                        return False
                    await _drain_until_reply(response)
                break
            else:
                return False
            note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            headers = [*base_headers, (_SESSION, new_sid), ("authorization", f"Bearer {self._token}")]
            if session.protocol_version:
                headers.append(("mcp-protocol-version", session.protocol_version))
            reply = await self._client.post(self.upstream + "/mcp", headers=headers, content=json.dumps(note))
            if reply.status_code >= 400:
                return False
            session.upstream_id = new_sid
            self.reinitialized += 1
            logger.info("re-opened MCP session for the client (server had forgotten it)")
            return True

    # -- response relays ------------------------------------------------------------------------
    async def _relay(self, req: _Request, send: Send) -> None:
        """Stream the upstream answer; for tool calls, hide a stale-token error behind a retry."""
        response = await self._open(req)
        started = False
        checks = 2 if req.rpc_method == "tools/call" and req.rpc_id is not None else 0
        try:
            while checks and response.status_code == 200:
                ctype = response.headers.get("content-type", "")
                if ctype.startswith("application/json"):
                    data = await response.aread()
                    if _is_stale_reply(data, req.rpc_id) and await self._refresh(req.token_used):
                        checks -= 1
                        await response.aclose()
                        response = await self._open(req)
                        continue
                    if started:
                        # Earlier events already went out as SSE: send the reply as one more event.
                        event = SSEEvent([f"data: {data.decode()}"])
                        await send({"type": "http.response.body", "body": event.encode()})
                    else:
                        await self._start(req, response, send, drop_length=False)
                        await send({"type": "http.response.body", "body": data})
                    return
                if not ctype.startswith("text/event-stream"):
                    break
                retry = False
                parser = EventParser()
                async for chunk in response.aiter_bytes():
                    for event in parser.feed(chunk):
                        if (
                            not retry
                            and _is_stale_reply((event.data or "").encode(), req.rpc_id)
                            and await self._refresh(req.token_used)
                        ):
                            retry = True
                            break
                        if not started:
                            await self._start(req, response, send, drop_length=True)
                            started = True
                        await send({"type": "http.response.body", "body": event.encode(), "more_body": True})
                    if retry:
                        break
                if not retry:
                    if not started:
                        await self._start(req, response, send, drop_length=True)
                    await send({"type": "http.response.body", "body": b""})
                    return
                checks -= 1
                await response.aclose()
                response = await self._open(req)
            if started:
                # A retried call came back in an unexpected shape: pass its bytes on as they are.
                await _pass_body(response.aiter_bytes(), send)
                return
            await self._start(req, response, send, drop_length=False)
            await _pass_body(response.aiter_raw(), send)
        finally:
            await response.aclose()

    async def _relay_sse_endpoint(self, req: _Request, send: Send, receive: Receive) -> None:
        """Relay the legacy SSE stream, making the ``endpoint`` URL point back at the proxy.

        Once the client has initialized, the end of the upstream stream (a server restart) does not
        end the client's: a new upstream session is opened for it (:meth:`_sse_reconnect`).
        """
        response = await self._open(req)
        if response.status_code != 200:
            try:
                await self._start(req, response, send, drop_length=False)
                await _pass_body(response.aiter_raw(), send)
            finally:
                await response.aclose()
            return
        session: _SSESession | None = None
        client_sid: str | None = None

        async def forward(event: SSEEvent) -> None:
            with anyio.CancelScope(shield=True):  # an interrupt never cuts an event in half
                await send({"type": "http.response.body", "body": event.encode(), "more_body": True})

        try:
            await self._start(req, response, send, drop_length=True)
            async with anyio.create_task_group() as tg:

                async def watch_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(watch_disconnect)
                reader = _EventReader(response)
                while True:
                    with anyio.CancelScope() as interrupt:
                        if session is not None:
                            session.interrupt = interrupt
                        try:
                            while (event := await reader.next()) is not None:
                                if event.field("event") == "endpoint":
                                    endpoint = _relative(event.data or "")
                                    event = SSEEvent(
                                        [f"data: {endpoint}" if line.startswith("data") else line
                                         for line in event.lines]
                                    )  # fmt: skip
                                    sid = _session_id_of(endpoint)
                                    if session is None and sid:
                                        client_sid, session = sid, _SSESession(sid, interrupt=interrupt)
                                        self._sse_sessions[sid] = session
                                await forward(event)
                        except httpx.TransportError as exc:
                            logger.info("the server's SSE stream broke: %s", exc)
                    if session is not None:
                        session.interrupt = None
                    await response.aclose()
                    if session is None or session.init_body is None:
                        break  # nothing to re-open: end the client's stream as the server did
                    reopened = await self._sse_reconnect(req, session, forward)
                    if reopened is None:
                        break
                    response, reader = reopened
                tg.cancel_scope.cancel()
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()
            if session is not None:
                session.ended = True
                session.notify()
                self._sse_sessions.pop(client_sid or "", None)

    async def _sse_reconnect(
        self, req: _Request, session: _SSESession, forward: Callable[[SSEEvent], Awaitable[None]]
    ) -> tuple[httpx.Response, _EventReader] | None:
        """Open a new upstream SSE session for ``session``, retrying with backoff for ``connect_grace``."""
        deadline = anyio.current_time() + self._connect_grace
        delay = 0.05
        while True:
            try:
                reopened = await self._sse_handshake(req, session, forward)
                if reopened is not None:
                    return reopened
            except (httpx.TransportError, TimeoutError, ValueError) as exc:
                logger.info("re-opening the SSE session failed: %r", exc)
            if anyio.current_time() + delay > deadline:
                logger.warning("could not re-open the SSE session; ending the client's stream")
                return None
            self.connect_retries += 1
            await anyio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _sse_handshake(
        self, req: _Request, session: _SSESession, forward: Callable[[SSEEvent], Awaitable[None]]
    ) -> tuple[httpx.Response, _EventReader] | None:
        """One attempt: new stream, its ``endpoint``, the client's handshake replayed on it."""
        req.token_used = self._token
        request = self._client.build_request(
            "GET", self.upstream + req.target, headers=self._upstream_headers(req, None)
        )
        response = await self._client.send(request, stream=True)
        reader = _EventReader(response)
        ok = False
        try:
            if response.status_code == 401:
                await self._refresh(req.token_used)
                return None
            if response.status_code != 200:
                return None
            with anyio.fail_after(10):
                event = await reader.next()
            if event is None or event.field("event") != "endpoint":
                return None
            endpoint = _relative(event.data or "")
            new_sid = _session_id_of(endpoint)
            if not new_sid or session.init_body is None:
                return None
            init = json.loads(session.init_body)
            init["id"] = own_id = f"backchannel-proxy-{next(self._ids)}"
            if not await self._sse_post(endpoint, init):
                return None
            with anyio.fail_after(10):
                while (event := await reader.next()) is not None:
                    if _rpc_of((event.data or "").encode())[1] == own_id:
                        break  # the answer to our replayed initialize: the client already has one
                    await forward(event)
                else:
                    return None
            if not await self._sse_post(endpoint, {"jsonrpc": "2.0", "method": "notifications/initialized"}):
                return None
            session.upstream_id = new_sid
            session.notify()
            self.reinitialized += 1
            logger.info("re-opened the SSE session for the client (the server had dropped it)")
            ok = True
            return response, reader
        finally:
            if not ok:
                await response.aclose()

    async def _sse_post(self, endpoint: str, doc: dict[str, Any]) -> bool:
        for _attempt in range(2):
            token = self._token
            headers = [("content-type", "application/json"), ("authorization", f"Bearer {token}")]
            url = self.upstream + endpoint
            reply = await self._client.post(url, headers=headers, content=json.dumps(doc))
            if reply.status_code == 401 and await self._refresh(token):
                continue
            return reply.status_code < 300
        return False

    async def _sse_reopen(self, client_sid: str, lost_upstream_id: str) -> bool:
        """The server does not know ``lost_upstream_id``: have the stream re-open it, wait for that."""
        session = self._sse_sessions.get(client_sid)
        if session is None or session.ended or session.init_body is None:
            return False
        if session.upstream_id != lost_upstream_id:
            return True  # already re-opened
        changed = session.changed
        if session.interrupt is not None:
            session.interrupt.cancel()  # the upstream stream is still open but its session is gone
        with anyio.move_on_after(self._connect_grace + 10):
            await changed.wait()
        return session.upstream_id != lost_upstream_id and not session.ended

    async def _start(self, req: _Request, response: httpx.Response, send: Send, *, drop_length: bool) -> None:
        headers: list[tuple[bytes, bytes]] = []
        for key, value in response.headers.multi_items():
            lower = key.lower()
            if lower in _HOP_BY_HOP and not (lower == "content-length" and not drop_length):
                continue
            if drop_length and lower == "content-encoding":
                continue
            if lower == _SESSION and req.client_sid is not None:
                value = req.client_sid  # the client keeps its own session id across re-opens
            headers.append((lower.encode("latin-1"), value.encode("latin-1")))
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})


def _relative(url: str) -> str:
    """An absolute endpoint URL becomes origin-relative, so the client resolves it against the proxy."""
    parts = urlsplit(url)
    if not parts.scheme:
        return url
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _session_id_of(endpoint: str) -> str | None:
    return dict(parse_qsl(urlsplit(endpoint).query)).get("session_id")


def _with_session_id(target: str, session_id: str) -> str:
    parts = urlsplit(target)
    query = [(k, session_id if k == "session_id" else v) for k, v in parse_qsl(parts.query)]
    return parts.path + "?" + urlencode(query)


def _rpc_of(body: bytes) -> tuple[str | None, Any]:
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, None
    if isinstance(doc, dict):
        return doc.get("method"), doc.get("id")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    return None, None


def _is_stale_reply(data: bytes, rpc_id: Any) -> bool:
    """Is this the server's reply to ``rpc_id`` saying our token is stale?"""
    if STALE_TOKEN_TEXT.encode() not in data and b"stale_token" not in data:
        return False
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    if not isinstance(doc, dict) or doc.get("id") != rpc_id:  # pyright: ignore[reportUnknownMemberType]
        return False
    error = doc.get("error")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    if isinstance(error, dict):
        return STALE_TOKEN_TEXT in str(error.get("message", ""))  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
    result = doc.get("result")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    if not isinstance(result, dict) or not result.get("isError"):  # pyright: ignore[reportUnknownMemberType]
        return False
    content = result.get("content") or []  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    first = content[0] if isinstance(content, list) and content else {}  # pyright: ignore[reportUnknownVariableType]
    text = first.get("text", "") if isinstance(first, dict) else ""  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    # SDKs prefix tool errors ("Error executing tool x: ..."); an error result this short is ours.
    return isinstance(text, str) and STALE_TOKEN_TEXT in text and len(text) < len(STALE_TOKEN_TEXT) + 200


async def _pass_body(chunks: AsyncIterator[bytes], send: Send) -> None:
    """Stream a response body to the client as it arrives, then end it."""
    async for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _drain_until_reply(response: httpx.Response) -> None:
    """Read an initialize answer (JSON or SSE) just far enough to know it arrived."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        parser = EventParser()
        async for chunk in response.aiter_bytes():
            if any(event.data for event in parser.feed(chunk)):
                return
    else:
        await response.aread()


async def _read_head(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """Read the body up to ``limit`` bytes (or a little past it); True if that was all of it."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), True
        chunk: bytes = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body"):
            return b"".join(chunks), True
        if size > limit:
            return b"".join(chunks), False


async def _plain(send: Send, status: int, doc: dict[str, str]) -> None:
    body = json.dumps(doc).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
