"""Delivery of mentions per message (issue 8, item 18): states in the API, live events, retry.

Real server, real WebSocket, the real trigger stream a wrapper reads.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import RunningServer, register

pytestmark = pytest.mark.anyio


async def next_delivery(ws: ClientConnection, state: str) -> dict[str, Any]:
    with anyio.fail_after(5):
        while True:
            frame = json.loads(await ws.recv())
            if frame["kind"] == "delivery" and frame["state"] == state:
                return frame


async def stream_ids(response: httpx.Response) -> AsyncIterator[int]:
    async for line in response.aiter_lines():
        if line.startswith("data: "):
            yield int(json.loads(line[6:])["id"])


async def deliveries(human: httpx.AsyncClient, *ids: int) -> dict[str, list[dict[str, Any]]]:
    response = await human.get("/api/deliveries", params={"ids": ",".join(map(str, ids))})
    assert response.status_code == 200, response.text
    return response.json()["deliveries"]


async def test_each_mention_shows_queued_waiting_failed_retry_delivered_live(server: RunningServer) -> None:
    agent = await register(server.url, "claude")
    auth = {"Authorization": f"Bearer {agent['token']}"}
    async with server.human() as human:
        cookie = (await human.get("/")).cookies[server.session_cookie]
        ws_headers = {"Cookie": f"{server.session_cookie}={cookie}", "Origin": server.url}
        ws_url = server.url.replace("http://", "ws://") + "/ws"
        first = (await human.post("/api/channels/general/messages", json={"text": "@claude look"})).json()
        # Not streamed yet: this mention folds into the same wake-up and must show its state too.
        second = (
            await human.post("/api/channels/general/messages", json={"text": "@claude and this"})
        ).json()
        plain = (await human.post("/api/channels/general/messages", json={"text": "no mention"})).json()

        page = (await human.get("/api/channels/general/messages")).json()
        shown = page["deliveries"]
        assert set(shown) == {str(first["id"]), str(second["id"])}
        (entry,) = shown[str(first["id"])]
        assert entry["agent"] == "claude" and entry["state"] == "queued" and "prompt" not in entry
        assert shown[str(second["id"])][0]["trigger"] == entry["trigger"]
        assert str(plain["id"]) not in shown
        trigger = entry["trigger"]

        async with (
            connect(ws_url, additional_headers=ws_headers) as ws,
            httpx.AsyncClient(
                base_url=server.url, headers=auth, timeout=httpx.Timeout(10, read=30)
            ) as agent_http,
        ):
            report = f"/api/agents/claude/triggers/{trigger}"
            # The wrapper holds the mention: a CLI shows an approval dialog; every page sees its text.
            dialog = 'Allow execution of MCP tool "chat_read"? 1. Yes  2. No'
            r = await agent_http.post(report, json={"state": "waiting", "detail": dialog})
            assert r.status_code == 200, r.text
            event = await next_delivery(ws, "waiting")
            assert event["detail"] == dialog and event["agent"] == "claude"
            assert event["message_ids"] == [first["id"], second["id"]] and event["channel"] == "general"
            assert (await deliveries(human, second["id"]))[str(second["id"])][0]["state"] == "waiting"

            assert (
                await agent_http.post(report, json={"state": "failed", "detail": "no input line"})
            ).status_code == 200
            await next_delivery(ws, "failed")
            assert (await deliveries(human, first["id"]))[str(first["id"])][0]["detail"] == "no input line"

            # Retry is a person's state-changing action: the session header (CSRF) is required.
            async with httpx.AsyncClient(base_url=server.url) as anonymous:
                refused = await anonymous.post(
                    f"/api/triggers/{trigger}/retry", headers={"Cookie": f"{server.session_cookie}={cookie}"}
                )
                assert refused.status_code in (401, 403)
            async with agent_http.stream("GET", "/api/agents/claude/triggers") as stream:
                ids = stream_ids(stream)
                with anyio.fail_after(5):
                    assert await anext(ids) == trigger  # the failed one is replayed on connect
                retried = await human.post(f"/api/triggers/{trigger}/retry")
                assert retried.status_code == 200, retried.text
                fresh = retried.json()
                assert fresh["state"] == "queued" and fresh["trigger"] != trigger
                with anyio.fail_after(5):  # the live stream wakes the agent with the retried mention
                    assert await anext(ids) == fresh["trigger"]
            event = await next_delivery(ws, "queued")
            assert event["trigger"] == fresh["trigger"] and event["message_ids"] == [
                first["id"],
                second["id"],
            ]
            again = await human.post(f"/api/triggers/{trigger}/retry")
            assert again.status_code == 400 and "superseded" in again.json()["detail"]

            done = f"/api/agents/claude/triggers/{fresh['trigger']}"
            assert (await agent_http.post(done, json={"state": "injected"})).status_code == 200
            await next_delivery(ws, "injected")
        now = await deliveries(human, first["id"], second["id"], plain["id"])
        assert [now[k][0]["state"] for k in sorted(now)] == ["injected", "injected"]

        bad = await human.get("/api/deliveries", params={"ids": "1,x"})
        assert bad.status_code == 422
        missing = await human.post("/api/triggers/999999/retry")
        assert missing.status_code == 404
        async with httpx.AsyncClient(base_url=server.url, headers=auth) as agent_http:
            unknown_state = await agent_http.post(
                f"/api/agents/claude/triggers/{trigger}", json={"state": "superseded"}
            )
        assert unknown_state.status_code == 422


async def test_a_new_mention_after_a_failure_carries_the_failed_message(server: RunningServer) -> None:
    agent = await register(server.url, "codex")
    auth = {"Authorization": f"Bearer {agent['token']}"}
    async with server.human() as human, httpx.AsyncClient(base_url=server.url, headers=auth) as agent_http:
        first = (await human.post("/api/channels/general/messages", json={"text": "@codex one"})).json()
        trigger = (await deliveries(human, first["id"]))[str(first["id"])][0]["trigger"]
        await agent_http.post(f"/api/agents/codex/triggers/{trigger}", json={"state": "failed"})
        second = (await human.post("/api/channels/general/messages", json={"text": "@codex two"})).json()
        shown = await deliveries(human, first["id"], second["id"])
        assert shown[str(first["id"])] == shown[str(second["id"])]
        assert shown[str(first["id"])][0]["state"] == "queued"
        assert shown[str(first["id"])][0]["trigger"] != trigger
