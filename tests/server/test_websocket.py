"""The live feed over a real WebSocket: origin and session checks, live events, resume without loss."""

from __future__ import annotations

import json
import logging
import socket
import struct
from typing import Any

import anyio
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from backchannel.bus import ROOM
from tests.conftest import RunningServer

pytestmark = pytest.mark.anyio


async def session_cookie(server: RunningServer) -> str:
    async with server.human() as human:
        return (await human.get("/")).cookies[server.session_cookie]


def ws_url(server: RunningServer, since: int | None = None) -> str:
    base = server.url.replace("http://", "ws://") + "/ws"
    return base if since is None else f"{base}?since={since}"


async def next_kind(ws: ClientConnection, kind: str) -> dict[str, Any]:
    with anyio.fail_after(5):
        while True:
            frame = json.loads(await ws.recv())
            if frame["kind"] == kind:
                return frame


async def post(server: RunningServer, text: str) -> None:
    async with server.human() as human:
        response = await human.post("/api/channels/general/messages", json={"text": text, "sender": "ben"})
        assert response.status_code == 201


async def test_live_events_then_resume_from_last_seq_without_loss(server: RunningServer) -> None:
    cookie = await session_cookie(server)
    headers = {"Cookie": f"{server.session_cookie}={cookie}", "Origin": server.url}
    async with connect(ws_url(server), additional_headers=headers) as ws:
        hello = await next_kind(ws, "hello")
        await post(server, "one")
        first = await next_kind(ws, "message")
        assert first["message"]["text"] == "one" and first["seq"] > hello["seq"]
    await post(server, "two")  # while disconnected
    await post(server, "three")
    async with connect(ws_url(server, first["seq"]), additional_headers=headers) as ws:
        await next_kind(ws, "hello")
        got = [(await next_kind(ws, "message"))["message"]["text"] for _ in range(2)]
        await post(server, "four")
        got.append((await next_kind(ws, "message"))["message"]["text"])
    assert got == ["two", "three", "four"]


@pytest.mark.parametrize("case", ["foreign-origin", "no-session"])
async def test_upgrade_is_refused_cross_site_or_without_session(server: RunningServer, case: str) -> None:
    cookie = await session_cookie(server)
    headers = (
        {"Cookie": f"{server.session_cookie}={cookie}", "Origin": "http://evil.example"}
        if case == "foreign-origin"
        else {"Origin": server.url}
    )
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url(server), additional_headers=headers) as ws:
            await ws.recv()
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("since", ["%C2%B2", "-1", "abc", "9" * 30])
async def test_since_that_is_not_an_event_number_is_a_clear_400(server: RunningServer, since: str) -> None:
    cookie = await session_cookie(server)
    headers = {"Cookie": f"{server.session_cookie}={cookie}", "Origin": server.url}
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{ws_url(server)}?since={since}", additional_headers=headers) as ws:
            await ws.recv()
    response = refused.value.response
    assert response.status_code == 400
    assert json.loads(response.body or b"{}")["error"] == "invalid_input"


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_a_client_leaving_during_the_replay_leaves_no_traceback(server: RunningServer) -> None:
    async with server.human() as human:
        for i in range(30):
            response = await human.post(
                "/api/channels/general/messages", json={"text": f"{i} " + "x" * 4000, "sender": "ben"}
            )
            assert response.status_code == 201
    cookie = await session_cookie(server)
    records = Records()
    watched = [logging.getLogger(name) for name in ("uvicorn.error", "uvicorn.asgi", "backchannel")]
    for logger in watched:
        logger.addHandler(records)
    try:
        # A raw upgrade with since=0, then a reset as soon as the 101 arrives: the server is replaying.
        port = int(server.url.rsplit(":", 1)[1])
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(
            b"GET /ws?since=0 HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            + f"Host: 127.0.0.1:{port}\r\nOrigin: {server.url}\r\n".encode()
            + f"Cookie: {server.session_cookie}={cookie}\r\n\r\n".encode()
        )
        assert sock.recv(12) == b"HTTP/1.1 101"
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        bus = server.app.state.services.bus
        with anyio.fail_after(5):
            while ROOM in bus._subs:  # the endpoint has let go of its subscription
                await anyio.sleep(0.01)
        async with server.human() as human:  # one more round trip: any error log is written by now
            assert (await human.get("/api/health")).status_code == 200
    finally:
        for logger in watched:
            logger.removeHandler(records)
    assert [r.getMessage() for r in records.records if r.exc_info or r.levelno >= logging.ERROR] == []


async def test_a_server_bug_during_the_stream_is_logged_not_taken_for_a_client_leaving(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(seq: int, limit: int) -> list[Any]:
        raise RuntimeError("replay bug 4711")

    await post(server, "something to replay")
    monkeypatch.setattr(server.app.state.services.store, "events_since", broken)
    cookie = await session_cookie(server)
    records = Records()
    logging.getLogger("uvicorn.error").addHandler(records)
    try:
        headers = {"Cookie": f"{server.session_cookie}={cookie}", "Origin": server.url}
        async with connect(ws_url(server, 0), additional_headers=headers) as ws:
            await next_kind(ws, "hello")
            with anyio.fail_after(5):
                while not any(r.exc_info for r in records.records):
                    await anyio.sleep(0.01)
    finally:
        logging.getLogger("uvicorn.error").removeHandler(records)
    logged = [logging.Formatter().formatException(r.exc_info) for r in records.records if r.exc_info]
    assert "replay bug 4711" in logged[0], logged
