"""uvicorn's pure-Python h11 protocol with the server's limits: the A/B benchmark's "before" and a
fallback. ``backchannel.server.limits`` serves with httptools and imports this only on request."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from backchannel.server.limits import OVER_CAP, TIMED_OUT


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol plus a connection cap and header/body/idle timeouts."""

    max_connections: ClassVar[int] = 1000
    request_timeout: ClassVar[float] = 30.0

    _request_timer: asyncio.TimerHandle | None = None

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
            self.transport.write(TIMED_OUT)
        self.transport.close()  # a body in progress: the app sees http.disconnect
