"""The live feed over a real WebSocket: origin and session checks, live events, resume without loss."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.conftest import RunningServer

pytestmark = pytest.mark.anyio


async def session_cookie(server: RunningServer) -> str:
    async with server.human() as human:
        return (await human.get("/")).cookies["bc_session"]


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
    headers = {"Cookie": f"bc_session={cookie}", "Origin": server.url}
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
        {"Cookie": f"bc_session={cookie}", "Origin": "http://evil.example"}
        if case == "foreign-origin"
        else {"Origin": server.url}
    )
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url(server), additional_headers=headers) as ws:
            await ws.recv()
    assert refused.value.response.status_code == 403
