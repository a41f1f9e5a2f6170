"""The live feed for people: one WebSocket, resumable from an event sequence number.

On connect the client says the last ``seq`` it saw; the server replays the event log after it and
then streams live events, so a reconnect loses and duplicates nothing. Presence and delivery
updates are live-only (the client refetches the roster after a reconnect).
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected
from uvicorn.protocols.utils import ClientDisconnected

from backchannel.bus import ROOM
from backchannel.errors import BackchannelError
from backchannel.server.deps import Services

REPLAY_LIMIT = 5000
PING_SECONDS = 20.0
# What a client leaving mid-stream looks like from here, depending on where the send was: Starlette's
# disconnect (a send or receive that found the socket closed), its "already disconnected" error,
# uvicorn's ClientDisconnected (an OSError a send can raise before Starlette wraps it), and anyio's
# closed-stream errors. Any other RuntimeError or OSError is a bug and must be logged, not hidden.
_GONE = (
    WebSocketDisconnect,
    WebSocketDisconnected,
    ClientDisconnected,
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
)


def parse_since(raw: str) -> int | None:
    """``?since=`` is a non-negative event seq in ASCII digits (``str.isdigit`` also accepts ``²``)."""
    if raw == "":
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) < 19):
        raise ValueError(raw)
    return int(raw)


async def _refuse_bad_since(ws: WebSocket, raw: str) -> None:
    detail = f"since must be an event number (ASCII digits), got {raw[:40]!r}"
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(JSONResponse({"error": "invalid_input", "detail": detail}, 400))
    else:
        await ws.close(code=4400, reason="invalid since")


async def websocket_endpoint(ws: WebSocket) -> None:
    svc: Services = ws.app.state.services
    try:
        svc.guard.check_origin(ws)
        if not svc.guard.human_credential(ws, header_only=False):
            raise BackchannelError("missing session")
    except BackchannelError:
        await ws.close(code=4403)
        return
    raw_since = ws.query_params.get("since", "")
    try:
        since = parse_since(raw_since)
    except ValueError:
        await _refuse_bad_since(ws, raw_since)
        return
    try:
        await _stream(ws, svc, since)
    except* _GONE:
        pass  # the client went away (during the replay or later); nothing to clean up


async def _stream(ws: WebSocket, svc: Services, since: int | None) -> None:
    await ws.accept()
    async with svc.bus.subscribe(ROOM) as sub:
        last = await svc.store.last_event_seq()
        await ws.send_json({"kind": "hello", "seq": last})
        if since is not None and since < last:
            backlog = await svc.store.events_since(since, REPLAY_LIMIT + 1)
            if len(backlog) > REPLAY_LIMIT:
                await ws.send_json({"kind": "reset", "seq": last})
            else:
                for event in backlog:
                    await ws.send_json(event.public())
                last = max(last, backlog[-1].seq if backlog else last)

        async def pump() -> None:
            nonlocal last
            while True:
                item: dict[str, Any] | None = None
                with anyio.move_on_after(PING_SECONDS):
                    item = await sub.get()
                if item is None:
                    await ws.send_json({"kind": "ping"})
                    continue
                if sub.overflowed:  # we fell behind the bus: let the client reload from the store
                    sub.overflowed = False
                    await ws.send_json({"kind": "reset", "seq": await svc.store.last_event_seq()})
                seq = item.get("seq")
                if isinstance(seq, int):
                    if seq <= last:
                        continue  # already replayed
                    last = seq
                await ws.send_text(json.dumps(item, ensure_ascii=False))

        async def drain() -> None:
            # We only read to notice the close; clients send nothing we act on.
            while True:
                await ws.receive_text()

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            await drain()
