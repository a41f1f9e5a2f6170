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
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import resource
import sys
import time
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from backchannel.config import Settings

logger = logging.getLogger("backchannel.server")

_FD_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_AUTO_CAP_CEILING = 10_000  # more than any room needs; each connection also costs memory


def _json_response(status: str, code: str, detail: str) -> bytes:
    """A whole HTTP/1.1 answer in the app's error shape, for moments when no request was parsed
    (h11 cannot write one then, and no ASGI ``send`` exists yet)."""
    body = json.dumps({"error": code, "detail": detail}).encode()
    head = f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
    return f"{head}content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode() + body


_OVER_CAP = _json_response(
    "503 Service Unavailable", "too_many_connections", "too many connections; retry shortly"
)
_TIMED_OUT = _json_response("408 Request Timeout", "request_timeout", "the request was sent too slowly")


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


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol plus a connection cap and header/body/idle timeouts."""

    max_connections: ClassVar[int] = 1000
    request_timeout: ClassVar[float] = 30.0

    _request_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.write(_OVER_CAP)
            transport.close()  # frees the descriptor as soon as the short answer is out
            return
        # uvicorn arms its idle timer only after a first response: a silent connection would stay.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_request_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            self._cancel_request_timer()  # closed, or upgraded to a WebSocket
            return
        their = self.conn.their_state
        if their is h11.IDLE and self.conn.trailing_data[0]:
            # Part of a request line or headers: one deadline for all of them (slowloris).
            if self._request_timer is None:
                self._request_timer = self.loop.call_later(self.request_timeout, self._on_request_timeout)
        elif their is h11.SEND_BODY:
            # Inside a body: the deadline is for the next chunk, so big uploads on slow links pass.
            self._cancel_request_timer()
            self._request_timer = self.loop.call_later(self.request_timeout, self._on_request_timeout)
        else:
            self._cancel_request_timer()  # the request is complete: the app decides from here

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._cancel_request_timer()
        self._unset_keepalive_if_required()
        super().handle_websocket_upgrade(event)

    def _cancel_request_timer(self) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None

    def _on_request_timeout(self) -> None:
        self._request_timer = None
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return
        if self.flow.read_paused:
            # We stopped reading (the app has not taken the body yet): the client is not slow.
            self._request_timer = self.loop.call_later(self.request_timeout, self._on_request_timeout)
            return
        if self.conn.their_state is h11.IDLE and self.conn.our_state is h11.IDLE:
            self.transport.write(_TIMED_OUT)
        self.transport.close()  # a body in progress: the app sees http.disconnect


def protocol_for(cap: int, request_timeout: float) -> type[GuardedH11Protocol]:
    """A protocol class carrying this server's limits (uvicorn builds protocols from a class)."""
    return type(
        "BackchannelH11Protocol",
        (GuardedH11Protocol,),
        {"max_connections": cap, "request_timeout": request_timeout},
    )


class SafeStreamHandler(logging.StreamHandler[Any]):
    """Plain one-record-per-line logging to stderr that never raises, whatever state the process is in.

    The MCP SDK installs a rich handler that imports modules lazily while logging an error; with no
    descriptors left that import failed, the failure escaped the event loop and the server exited.
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
    """Replace root handlers (the SDK's rich one) with :class:`SafeStreamHandler`."""
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
