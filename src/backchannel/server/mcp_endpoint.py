"""MCP (tools only), spoken directly: streamable HTTP at ``/mcp`` and the 2024-11-05 SSE transport.

Why not the SDK's server: it spent about a third of the server's CPU per tool call (session tasks,
memory streams, pydantic envelopes, telemetry) and most of a second of start-up on imports, for a
protocol that, for tools alone, is a handful of JSON-RPC methods. This is a plain ASGI app that
the outer layers (``server/boot.py`` for ``serve``, ``server/app.py`` for ``create_app``) call
after the ``Host`` check and before FastAPI's router and middleware would ever see the request.

What clients rely on, and why it is shaped so:

* Sessions hold nothing we need (the caller's identity is the token on each request), so any
  ``Mcp-Session-Id`` is served, also one from before a restart: agents never see a ``404``.
  ``initialize`` still hands out an id, since clients expect one.
* One JSON body answers each request (a tool sends no progress), or one SSE event when a client
  accepts only ``text/event-stream``. ``GET`` and ``DELETE`` are ``405`` (the spec allows both).
* ``server/discover`` (the 2026 probe) is "method not found", so the SDK's auto mode falls back to
  ``initialize``; ``resources/*`` and ``prompts/list`` answer empty lists because some CLIs ask.
* Every answer is JSON (or an SSE event): malformed input is a JSON-RPC error, a failure inside a
  method is logged and answered ``-32603``, never a traceback.
* A legacy ``/sse`` stream holds at most :data:`SSE_BUDGET_BYTES` of answers its client has not
  read (one answer of any size always fits): past that the stream is ended, not an answer dropped,
  so the client (or the wrapper's identity proxy) sees the end and reconnects instead of waiting
  forever for a lost answer, and a client that stops reading cannot make the server hold gigabytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final, cast
from urllib.parse import parse_qsl

import orjson
from starlette.types import Receive, Scope, Send

from backchannel.config import Settings
from backchannel.errors import Unauthorized
from backchannel.mcp_tools._toolkit import ToolContext, Toolset
from backchannel.server.security import Guard, agent_token, send_json_error

logger = logging.getLogger("backchannel.server")

PROTOCOL_VERSIONS: Final = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_VERSION: Final = PROTOCOL_VERSIONS[-1]
STREAMABLE_PATHS: Final = frozenset({"/mcp", "/mcp/"})
SSE_PATHS: Final = frozenset({"/sse", "/sse/"})
MESSAGE_PATHS: Final = frozenset({"/messages", "/messages/"})
PATHS: Final = STREAMABLE_PATHS | SSE_PATHS | MESSAGE_PATHS
KEEP_ALIVE_SECONDS: Final = 15.0
SSE_BUDGET_BYTES = 16 * 1024 * 1024  # unread answers per /sse stream before it is ended

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603

_JSON = b"application/json"
_EVENT_STREAM = b"text/event-stream"
_PING: Final = b": ping\r\n\r\n"

_LONG_NUMBER = re.compile(rb"[0-9]{19}")
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_encode_ascii = json.JSONEncoder(separators=(",", ":")).encode


def dumps(value: object) -> bytes:
    """Compact UTF-8 JSON; a lone surrogate (valid in a JSON string, not in UTF-8) is escaped.

    orjson first (about a tenth of the endpoint's CPU per call with the stdlib encoder); what it
    refuses (lone surrogates, ints beyond 64 bits, non-string keys) goes to the stdlib. Unlike the
    stdlib alone, a NaN is written as ``null`` (valid JSON), and a dataclass or datetime is written
    instead of refused; no tool returns either.
    """
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        pass
    try:
        return _encode(value).encode()
    except UnicodeEncodeError:
        return _encode_ascii(value).encode()


def loads(body: bytes) -> object:
    """JSON from a request body: orjson, and the stdlib for what orjson refuses that the stdlib
    takes (lone surrogates, UTF-16 bodies, NaN), so no request is read differently. orjson reads an
    integer beyond 64 bits as a float: a body with a run of 19 digits (-2**63 - 1 has 19) goes to
    the stdlib whole."""
    if _LONG_NUMBER.search(body) is None:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


def _error(request_id: object, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _valid_id(value: object) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


class _Invalid(Exception):
    """Not a JSON-RPC message at all: HTTP 400 on its own, an error entry inside a batch."""

    def __init__(self, message: str, request_id: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id if _valid_id(request_id) else None


class _MethodError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _invalid_answer(exc: _Invalid) -> dict[str, Any]:
    return _error(exc.request_id, INVALID_REQUEST, f"Invalid Request: {exc.message}")


def _encode_answer(answer: dict[str, Any]) -> bytes:
    """One answer as JSON; one that will not encode (a bug in a tool's result) becomes ``-32603``."""
    try:
        return dumps(answer)
    except (TypeError, ValueError):
        logger.exception("an MCP answer could not be written as JSON")
        return dumps(_error(answer.get("id"), INTERNAL_ERROR, "Internal error"))


def _encode_answers(answers: list[dict[str, Any]], batch: bool) -> bytes:
    """The body for a request's answers: a JSON array for a batch, else the one answer."""
    if not batch:
        return _encode_answer(answers[0])
    return b"[" + b",".join(map(_encode_answer, answers)) + b"]"


class _SseStream:
    """The answers waiting to go out on one ``/sse`` stream, counted in bytes.

    ``size`` counts an answer until its ``send`` has returned, so a client that stops reading (its
    ``send`` blocks) cannot make us hold more than the budget plus one answer.
    """

    __slots__ = ("pending", "ready", "size", "overflow")

    def __init__(self) -> None:
        self.pending: deque[bytes] = deque()
        self.size = 0
        self.ready = asyncio.Event()  # something was queued
        self.overflow = asyncio.Event()  # over budget: the stream ends

    def put(self, data: bytes) -> bool:
        """Queue ``data``; False (and the stream marked to end) when it would exceed the budget."""
        if self.overflow.is_set():
            return False
        if self.size and self.size + len(data) > SSE_BUDGET_BYTES:
            self.pending.clear()  # free them now: nobody will read them
            self.size = 0
            self.overflow.set()
            return False
        self.pending.append(data)
        self.size += len(data)
        self.ready.set()
        return True

    def sent(self) -> None:
        """The oldest answer is out (after ``send`` returned)."""
        if self.pending:  # empty if the stream overflowed meanwhile
            self.size -= len(self.pending.popleft())


class McpEndpoint:
    """The ASGI app for ``/mcp``, ``/sse`` and ``/messages/``; see the module docstring."""

    def __init__(
        self,
        toolset: Toolset,
        settings: Settings,
        guard: Guard,
        authenticate: Callable[[str | None], Awaitable[object]],
    ) -> None:
        self.toolset = toolset
        self.guard = guard
        self.authenticate = authenticate
        self.allow_network = settings.allow_network
        # Room for a maximal message with every character escaped, and far above any other call.
        self.max_body = max(1024 * 1024, settings.max_message_chars * 16)
        self.sse_sessions: dict[str, _SseStream] = {}
        self._closing = asyncio.Event()

    def close_streams(self) -> None:
        """End every open ``/sse`` stream (and any opened later): called when shutdown begins, since
        the server would otherwise wait out its graceful timeout on streams that never end."""
        self._closing.set()

    # -- the ASGI entry -------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._serve(scope, receive, send)
        except Exception:  # a bug of ours: outside FastAPI nothing else would turn it into JSON
            logger.exception("MCP request to %s failed", scope.get("path"))
            with contextlib.suppress(Exception):  # fails if the answer had already begun
                await send_json_error(send, 500, "internal", "internal server error; see the server log")

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: dict[bytes, bytes] = dict(scope["headers"])
        if self.allow_network and not await self._token_ok(headers, send):
            return
        origin = headers.get(b"origin")
        if origin is not None and not self.guard.mcp_origin_allowed(text := origin.decode("latin-1")):
            logger.warning("Invalid Origin header: %s", text[:200])
            await send_json_error(send, 403, "forbidden", "Invalid Origin header")
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if path in STREAMABLE_PATHS:
            if method == "POST":
                await self._post(scope, headers, receive, send)
            else:  # GET: we never send unprompted messages; DELETE: nothing to end
                await _method_not_allowed(send)
        elif path in SSE_PATHS:
            if method == "GET":
                await self._sse_stream(receive, send)
            else:
                await _method_not_allowed(send, b"GET")
        elif method == "POST":
            await self._sse_post(scope, headers, receive, send)
        else:
            await _method_not_allowed(send)

    async def _token_ok(self, headers: dict[bytes, bytes], send: Send) -> bool:
        """Network mode: no valid agent token, no MCP at all (anonymous peers cannot hold streams)."""
        text = {"authorization": headers.get(b"authorization", b"").decode("latin-1")}
        text["x-agent-token"] = headers.get(b"x-agent-token", b"").decode("latin-1")
        try:
            await self.authenticate(agent_token(text))
        except Unauthorized as exc:
            detail = f"network mode: MCP needs an agent token. {exc.detail}"
            await send_json_error(send, exc.status, exc.code, detail)
            return False
        return True

    # -- streamable HTTP ------------------------------------------------------------------------

    async def _post(self, scope: Scope, headers: dict[bytes, bytes], receive: Receive, send: Send) -> None:
        body = await self._body(headers, receive, send)
        if body is None:
            return
        status, answer, session = await self._answer_body(body, headers)
        extra: list[tuple[bytes, bytes]] = []
        if session is not None:
            extra.append((b"mcp-session-id", session.encode()))
        if answer is None:
            await _respond(send, 202, b"", extra)
            return
        accept = headers.get(b"accept")
        if accept and _EVENT_STREAM in accept and not _accepts_json(accept):
            # A client that takes only a stream gets the one answer as one event.
            extra.append((b"cache-control", b"no-cache"))
            await _respond(
                send, status, b"event: message\r\ndata: " + answer + b"\r\n\r\n", extra, _EVENT_STREAM
            )
            return
        await _respond(send, status, answer, extra)

    async def _body(self, headers: dict[bytes, bytes], receive: Receive, send: Send) -> bytes | None:
        """The request body, or ``None`` once a refusal went out (or the client left)."""
        content_type = headers.get(b"content-type", b"")
        if not content_type.lower().startswith(_JSON):
            await send_json_error(
                send, 415, "unsupported_media_type", "Content-Type must be application/json"
            )
            return None
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body:
            await self._too_large(send)
            return None
        message = await receive()
        if message["type"] != "http.request":
            return None
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > self.max_body:
                await self._too_large(send)
                return None
            return body
        chunks = [body]
        size = len(body)
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._too_large(send)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _too_large(self, send: Send) -> None:
        await send_json_error(send, 413, "payload_too_large", f"request body over {self.max_body} bytes")

    async def _answer_body(
        self, body: bytes, headers: dict[bytes, bytes]
    ) -> tuple[int, bytes | None, str | None]:
        """(HTTP status, the JSON answer or ``None`` for 202, a new session id after ``initialize``)."""
        try:
            parsed: object = loads(body)
        except (ValueError, RecursionError):
            return 400, dumps(_error(None, PARSE_ERROR, "Parse error: the body is not valid JSON")), None
        try:
            answers, initialized = await self._answer_items(parsed, headers)
        except _Invalid as exc:  # a lone message that is not JSON-RPC at all
            return 400, dumps(_invalid_answer(exc)), None
        session = uuid.uuid4().hex if initialized else None
        if not answers:
            return 202, None, session
        return 200, _encode_answers(answers, isinstance(parsed, list)), session

    # -- JSON-RPC -------------------------------------------------------------------------------

    async def _answer_items(
        self, parsed: object, headers: dict[bytes, bytes]
    ) -> tuple[list[dict[str, Any]], bool]:
        """The answers to a parsed body, one message or a batch (2025-03-26), for both transports,
        and whether an ``initialize`` in it succeeded. A lone message that is not JSON-RPC (or an
        empty batch) raises :class:`_Invalid`; inside a batch each such item is an error entry."""
        if not isinstance(parsed, list):
            answer = await self.answer(parsed, headers)
            if answer is None:
                return [], False
            return [answer], "result" in answer and _is_initialize(parsed)
        items = cast("list[object]", parsed)
        if not items:
            raise _Invalid("empty batch")
        answers: list[dict[str, Any]] = []
        initialized = False
        for item in items:
            try:
                answer = await self.answer(item, headers)
            except _Invalid as exc:
                answer = _invalid_answer(exc)
            if answer is not None:
                answers.append(answer)
                initialized = initialized or ("result" in answer and _is_initialize(item))
        return answers, initialized

    async def answer(self, message: object, headers: dict[bytes, bytes]) -> dict[str, Any] | None:
        """One JSON-RPC message's response object; ``None`` for notifications and client responses."""
        if not isinstance(message, dict):
            raise _Invalid("expected a JSON-RPC object")
        msg = cast("dict[str, Any]", message)
        request_id = msg.get("id")
        if msg.get("jsonrpc") != "2.0":
            raise _Invalid('"jsonrpc" must be "2.0"', request_id)
        method = msg.get("method")
        if method is None:
            if "id" in msg and ("result" in msg or "error" in msg):
                return None  # the client answering a request we never send: nothing to do
            raise _Invalid('"method" is missing', request_id)
        if not isinstance(method, str):
            raise _Invalid('"method" must be a string', request_id)
        if "id" not in msg:
            return None  # a notification (initialized, cancelled, ...): nothing to answer
        if not _valid_id(request_id):
            raise _Invalid('"id" must be a string or an integer')
        raw = msg.get("params")
        if raw is None:
            params: dict[str, Any] = {}
        elif isinstance(raw, dict):
            params = cast("dict[str, Any]", raw)
        elif isinstance(raw, list):  # JSON-RPC allows only structured params
            return _error(request_id, INVALID_PARAMS, f"{method}: params must be an object")
        else:
            raise _Invalid('"params" must be an object', request_id)
        try:
            result = await self._call(method, params, headers)
        except _MethodError as exc:
            return _error(request_id, exc.code, exc.message)
        except Exception:
            logger.exception("MCP %s failed", method[:100])
            return _error(request_id, INTERNAL_ERROR, "Internal error; the server log has details")
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

    async def _call(self, method: str, params: dict[str, Any], headers: dict[bytes, bytes]) -> dict[str, Any]:
        tools = self.toolset
        if method == "tools/call":
            name = params.get("name")
            if not isinstance(name, str):
                raise _MethodError(INVALID_PARAMS, "tools/call: params.name must be the tool's name")
            ctx = ToolContext({k.decode("latin-1"): v.decode("latin-1") for k, v in headers.items()})
            result = await tools.call(name, params.get("arguments"), ctx)
            return result.wire()
        if method == "tools/list":
            return {"tools": tools.list_wire()}
        if method == "initialize":
            asked = params.get("protocolVersion")
            return {
                "protocolVersion": asked if asked in PROTOCOL_VERSIONS else LATEST_VERSION,
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": {"name": tools.name, "version": tools.version},
                "instructions": tools.instructions,
            }
        if method == "ping":
            return {}
        if method == "resources/list":
            return {"resources": []}
        if method == "resources/templates/list":
            return {"resourceTemplates": []}
        if method == "prompts/list":
            return {"prompts": []}
        raise _MethodError(METHOD_NOT_FOUND, f"Method not found: {method[:100]}")

    # -- the legacy SSE transport (2024-11-05) --------------------------------------------------

    async def _sse_stream(self, receive: Receive, send: Send) -> None:
        """``GET /sse``: the ``endpoint`` event, then each answer as a ``message`` event, until the
        client goes, the server stops or the client falls :data:`SSE_BUDGET_BYTES` behind; a comment
        every 15 s keeps proxies and idle timers from closing it."""
        session = uuid.uuid4().hex
        stream = _SseStream()
        self.sse_sessions[session] = stream
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"no"),
        ]
        left = asyncio.ensure_future(_until_disconnect(receive))
        closing = asyncio.ensure_future(self._closing.wait())
        overflow = asyncio.ensure_future(stream.overflow.wait())
        ends = (left, closing, overflow)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            first = f"event: endpoint\r\ndata: /messages/?session_id={session}\r\n\r\n".encode()
            await send({"type": "http.response.body", "body": first, "more_body": True})
            while True:
                if not stream.pending:
                    stream.ready.clear()
                    ready = asyncio.ensure_future(stream.ready.wait())
                    await asyncio.wait(
                        {ready, *ends}, timeout=KEEP_ALIVE_SECONDS, return_when="FIRST_COMPLETED"
                    )
                    ready.cancel()
                if left.done():
                    break
                if overflow.done():
                    # Leave with the response unfinished: uvicorn then closes the connection, which
                    # also frees a client that reads nothing (a clean end would wait on its reading).
                    logger.warning(
                        "MCP SSE session %s fell over %d bytes behind on its stream; ending the stream",
                        session[:8],
                        SSE_BUDGET_BYTES,
                    )
                    break
                if closing.done():  # the server is stopping: end the response properly
                    await _end_unless_stuck(send, left)
                    break
                message = bool(stream.pending)
                chunk = b"event: message\r\ndata: " + stream.pending[0] + b"\r\n\r\n" if message else _PING
                if await _sent_unless_ended(send, chunk, ends) and message:
                    stream.sent()
        finally:
            self.sse_sessions.pop(session, None)
            for task in ends:
                task.cancel()

    async def _sse_post(
        self, scope: Scope, headers: dict[bytes, bytes], receive: Receive, send: Send
    ) -> None:
        """``POST /messages/?session_id=...``: 202 at once, the answer on that session's stream."""
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        session = query.get("session_id")
        if not session:
            await send_json_error(send, 400, "invalid_input", "session_id is required")
            return
        if session not in self.sse_sessions:
            await send_json_error(send, 404, "not_found", "Could not find session")
            return
        body = await self._body(headers, receive, send)
        if body is None:
            return
        try:
            parsed: object = loads(body)
        except (ValueError, RecursionError):
            await _respond(
                send, 400, dumps(_error(None, PARSE_ERROR, "Parse error: the body is not valid JSON"))
            )
            return
        if not isinstance(parsed, dict | list) or parsed == []:
            problem = _error(None, INVALID_REQUEST, "Invalid Request: expected a JSON-RPC object")
            await _respond(send, 400, dumps(problem))
            return
        await _respond(send, 202, b"")
        try:
            answers, _ = await self._answer_items(cast("object", parsed), headers)
        except _Invalid as exc:
            answers = [_invalid_answer(exc)]
        stream = self.sse_sessions.get(session)
        if not answers or stream is None:
            return  # nothing to say, or the stream closed while the tool ran: nobody to tell
        if not stream.put(_encode_answers(answers, isinstance(parsed, list))):
            self.sse_sessions.pop(session, None)  # ending: later posts get 404, the client reconnects


def _is_initialize(message: object) -> bool:
    return isinstance(message, dict) and cast("dict[str, object]", message).get("method") == "initialize"


def _accepts_json(accept: bytes) -> bool:
    lowered = accept.lower()
    return _JSON in lowered or b"*/*" in lowered or b"application/*" in lowered


async def _sent_unless_ended(send: Send, body: bytes, ends: Iterable[asyncio.Future[Any]]) -> bool:
    """Send one chunk of a stream; False if the stream ended first. ``send`` waits while the client
    is not reading, and such a client must not keep the stream from ending."""
    step = asyncio.ensure_future(send({"type": "http.response.body", "body": body, "more_body": True}))
    await asyncio.wait({step, *ends}, return_when="FIRST_COMPLETED")
    if not step.done():
        step.cancel()
        return False
    step.result()  # a failed send is the stream's failure
    return True


async def _end_unless_stuck(send: Send, left: asyncio.Future[Any]) -> None:
    """End a stream cleanly; a client that reads nothing would hold that forever (and the server's
    shutdown with it), so after a second the response is left unfinished and uvicorn closes it."""
    step = asyncio.ensure_future(send({"type": "http.response.body", "body": b"", "more_body": False}))
    await asyncio.wait({step, left}, timeout=1.0)
    if not step.done():
        step.cancel()


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    extra: Iterable[tuple[bytes, bytes]] = (),
    content_type: bytes = _JSON,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _method_not_allowed(send: Send, allow: bytes = b"POST") -> None:
    body = dumps({"error": "method_not_allowed", "detail": f"use {allow.decode()}"})
    await _respond(send, 405, body, [(b"allow", allow)])
