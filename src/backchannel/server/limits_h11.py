"""uvicorn's pure-Python h11 protocol with the server's limits: the A/B benchmark's "before" and a
fallback. ``backchannel.server.limits`` serves with httptools and imports this only on request."""

from __future__ import annotations

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from backchannel.server.limits import GuardMixin


class GuardedH11Protocol(GuardMixin, H11Protocol):
    """uvicorn's HTTP/1.1 protocol plus a connection cap and header/body/idle timeouts."""

    def _head_pending(self) -> bool:
        return self.conn.their_state is h11.IDLE and self.conn.our_state is h11.IDLE

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._gone():
            self._cancel_request_timer()
            return
        their = self.conn.their_state
        if their is h11.IDLE and self.conn.trailing_data[0]:
            self._head_deadline()
        elif their is h11.SEND_BODY:
            self._chunk_deadline()
        else:
            self._cancel_request_timer()  # the request is complete: the app decides from here

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._cancel_request_timer()
        self._unset_keepalive_if_required()
        super().handle_websocket_upgrade(event)
