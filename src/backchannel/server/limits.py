"""Staying up when clients misbehave: open-file limit, connection cap, request timeouts, safe logging.

Every open connection costs a file descriptor. Without limits, idle or half-sent connections from any
local process (or any peer in network mode) used them all up; the failed ``accept()`` was then
logged by a handler that itself needed a descriptor, and that error stopped the event loop. So:

* the soft ``RLIMIT_NOFILE`` is raised to the hard limit at start;
* connections beyond a cap (kept below the limit, leaving room for the database, uploads and
  static files) are answered ``503`` and closed at once, so they never hold a descriptor;
* a connection must send its request headers within ``request_timeout`` and may not pause longer
  than that inside a body; with no request in progress it is closed after ``idle_timeout``;
* logging never raises, and running out of descriptors in ``accept()`` is one line, not a crash.

Requests are parsed by httptools (llhttp, in C): uvicorn's pure-Python h11 parser cost 0.15-0.2 ms
of server CPU per request, a third of the per-call budget (issue 14, ``bench/README.md``). The h11
protocol stays for the A/B benchmark and as a fallback.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import resource
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, cast

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from backchannel.config import Settings

if TYPE_CHECKING:
    from uvicorn.server import Protocols

    from backchannel.server.limits_h11 import GuardedH11Protocol

logger = logging.getLogger("backchannel.server")

_FD_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_AUTO_CAP_CEILING = 10_000  # more than any room needs; each connection also costs memory


def _json_response(status: str, code: str, detail: str) -> bytes:
    """A whole HTTP/1.1 answer in the app's error shape, for moments when no request was parsed
    (h11 cannot write one then, and no ASGI ``send`` exists yet)."""
    body = json.dumps({"error": code, "detail": detail}).encode()
    head = f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
    return f"{head}content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode() + body


# The two answers for moments before a request exists (shared with backchannel.server.limits_h11).
OVER_CAP = _json_response(
    "503 Service Unavailable", "too_many_connections", "too many connections; retry shortly"
)
TIMED_OUT = _json_response("408 Request Timeout", "request_timeout", "the request was sent too slowly")


def raise_fd_limit() -> int:
    """Raise the soft open-file limit to the hard one where allowed; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65_536)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass  # not allowed here (containers, macOS caps): live with the soft limit
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_cap(settings: Settings, fd_limit: int) -> int:
    """``max_connections`` if set, else the descriptor limit minus a reserve for everything else."""
    # Accepted sockets exist for a few loop turns before a refused one is closed: keep room for them.
    reserve = max(128, fd_limit // 4)
    auto = max(16, min(_AUTO_CAP_CEILING, fd_limit - reserve))
    if settings.max_connections > 0:
        return min(settings.max_connections, auto)
    return auto


def accept_backlog(cap: int) -> int:
    """asyncio accepts up to ``backlog`` sockets per wake-up before any is closed: keep bursts small."""
    return max(8, min(2048, cap // 16))


class GuardMixin(asyncio.Protocol):
    """The cap and the timeouts both parsers share; a subclass says only when a request head is
    arriving (``_head_pending``) and arms the deadlines from its own ``data_received``.

    Listed before uvicorn's protocol class in the bases, so ``super()`` reaches uvicorn's methods.
    """

    max_connections: ClassVar[int] = 1000
    request_timeout: ClassVar[float] = 30.0

    _request_timer: asyncio.TimerHandle | None = None

    # Set by uvicorn's protocol class, the partner of this mixin in every subclass.
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    flow: FlowControl
    connections: set[Protocols]
    timeout_keep_alive: int
    timeout_keep_alive_task: asyncio.TimerHandle | None
    timeout_keep_alive_handler: Callable[[], None]

    def _head_pending(self) -> bool:
        """True while a request head is arriving and no response is under way: a 408 may be written."""
        raise NotImplementedError

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.write(OVER_CAP)
            transport.close()  # frees the descriptor as soon as the short answer is out
            return
        # uvicorn arms its idle timer only after a first response: a silent connection would stay.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_request_timer()
        super().connection_lost(exc)

    def _gone(self) -> bool:
        """Closed, or upgraded to a WebSocket (the transport then talks to another protocol)."""
        return self.transport.is_closing() or self.transport.get_protocol() is not self

    def _head_deadline(self) -> None:
        """Part of a request line or headers: one deadline for all of them (slowloris)."""
        if self._request_timer is None:
            self._request_timer = self.loop.call_later(self.request_timeout, self._on_request_timeout)

    def _chunk_deadline(self) -> None:
        """Inside a body: the deadline is for the next chunk, so big uploads on slow links pass."""
        self._cancel_request_timer()
        self._request_timer = self.loop.call_later(self.request_timeout, self._on_request_timeout)

    def _cancel_request_timer(self) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None

    def _on_request_timeout(self) -> None:
        self._request_timer = None
        if self._gone():
            return
        if self.flow.read_paused:
            # We stopped reading (the app has not taken the body yet): the client is not slow.
            self._request_timer = self.loop.call_later(self.request_timeout, self._on_request_timeout)
            return
        if self._head_pending():
            self.transport.write(TIMED_OUT)
        self.transport.close()  # a body in progress: the app sees http.disconnect


class GuardedHttpToolsProtocol(GuardMixin, HttpToolsProtocol):
    """uvicorn's httptools protocol plus the same cap and timeouts as ``limits_h11.GuardedH11Protocol``,
    and a bound on a request head still arriving (h11 had one built in; llhttp keeps no limit)."""

    max_head_bytes: ClassVar[int] = 64 * 1024

    _phase: int = 0  # _IDLE, _HEAD (request started, headers incomplete) or _BODY
    _head_bytes: int = 0

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = _HEAD

    def on_headers_complete(self) -> None:
        self._phase = _BODY
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = _IDLE
        self._head_bytes = 0
        super().on_message_complete()

    def _head_pending(self) -> bool:
        cycle = cast("RequestResponseCycle | None", self.cycle)  # None before the first request
        return self._phase == _HEAD and (cycle is None or cycle.response_complete)

    def data_received(self, data: bytes) -> None:
        if self._phase != _BODY:
            self._head_bytes += len(data)  # counted per read, not per header: no call per header
        super().data_received(data)
        if self._gone():
            self._cancel_request_timer()
        elif self._phase == _HEAD:
            if self._head_bytes > self.max_head_bytes:
                # Still no end of headers after this many bytes (as h11's own bound): refuse.
                self.send_400_response("Request head too large.")
                self._cancel_request_timer()
                return
            self._head_deadline()
        elif self._phase == _BODY:
            self._chunk_deadline()
        elif self._request_timer is not None:
            self._cancel_request_timer()  # the request is complete: the app decides from here


_IDLE, _HEAD, _BODY = 0, 1, 2


def protocol_for(
    cap: int, request_timeout: float, *, parser: str = "httptools"
) -> type[GuardedHttpToolsProtocol] | type[GuardedH11Protocol]:
    """A protocol class carrying this server's limits (uvicorn builds protocols from a class).

    ``parser="h11"`` gives the pure-Python parser (the A/B benchmark's "before"); only then is h11
    imported (about 20 ms of start-up).
    """
    limits = {"max_connections": cap, "request_timeout": request_timeout}
    if parser == "h11":
        from backchannel.server.limits_h11 import GuardedH11Protocol

        return type("BackchannelH11Protocol", (GuardedH11Protocol,), limits)
    return type("BackchannelHttpToolsProtocol", (GuardedHttpToolsProtocol,), limits)


class SafeStreamHandler(logging.StreamHandler[Any]):
    """Plain one-record-per-line logging to stderr that never raises, whatever state the process is in.

    A handler that imports modules lazily while logging an error (the MCP SDK's rich one did, when the
    server still used it) fails with no descriptors left, and that failure escaped the event loop and
    ended the server; this one opens nothing and swallows its own errors.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def handle(self, record: logging.LogRecord) -> bool:
        try:
            return super().handle(record)
        except Exception:  # nowhere left to report it
            return False

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def install_safe_logging(level: int = logging.WARNING) -> None:
    """Replace any root handlers (a library's, a test runner's) with :class:`SafeStreamHandler`."""
    logging.raiseExceptions = False
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(SafeStreamHandler())
    root.setLevel(level)


class LoopErrorHandler:
    """asyncio's exception handler: out-of-descriptor accepts are one line a few seconds; never raises."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self._last = 0.0
        self._skipped = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        try:
            exc = context.get("exception")
            if isinstance(exc, OSError) and exc.errno in _FD_ERRNOS:
                now = time.monotonic()
                if now - self._last < self.every:
                    self._skipped += 1
                    return
                self._last = now
                more = f" ({self._skipped} more since the last report)" if self._skipped else ""
                self._skipped = 0
                logger.warning("out of file descriptors (%s): new connections wait%s", exc.strerror, more)
                return
            loop.default_exception_handler(context)
        except Exception:  # an error while reporting an error must not end the loop
            pass
