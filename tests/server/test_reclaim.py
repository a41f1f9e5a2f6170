"""Names can't be hijacked (issue 8, items 9 and 11), over the real server and trigger stream.

A live identity goes only to the instance that proves it is that instance (its reclaim secret); an
offline one may be taken, and then what the room gave the name moves to its new holder, out loud.
A trigger stream that stays open is not a sign of life.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest

from backchannel.server import agents_api
from tests.conftest import RunningServer, mcp_client, register, text_of

pytestmark = pytest.mark.anyio

SECRET = "s3cret-" + "a" * 40
OTHER = "other-" + "b" * 40


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def try_register(url: str, base: str, instance_id: str, **extra: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        return await client.post(
            "/api/agents/register", json={"base": base, "instance_id": instance_id, **extra}
        )


async def state_of(human: httpx.AsyncClient, name: str) -> dict[str, Any]:
    return {a["name"]: a for a in (await human.get("/api/agents")).json()}[name]


async def test_a_live_name_is_not_handed_to_whoever_knows_its_instance_id(server: RunningServer) -> None:
    me = await register(server.url, "claude", "i-1", reclaim_secret=SECRET)
    for extra in ({}, {"reclaim_secret": OTHER}):
        refused = await try_register(server.url, "claude", "i-1", **extra)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"] == "name_held" and "reclaim_secret" in refused.json()["detail"]
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        beat = await client.post("/api/agents/claude/heartbeat", headers=bearer(me["token"]), json={})
        assert beat.status_code == 200, "the live holder keeps its token"
        # Its own wrapper, restarted, proves it is this instance: same name, fresh token.
        again = await register(server.url, "claude", "i-1", reclaim_secret=SECRET)
        assert again["name"] == "claude" and again["token"] != me["token"]
        stale = await client.post("/api/agents/claude/heartbeat", headers=bearer(me["token"]), json={})
        assert stale.status_code == 401

    # An identity that never set a secret can't be taken while live either, not even by setting one.
    await register(server.url, "codex", "c-1")
    for extra in ({}, {"reclaim_secret": SECRET}):
        assert (await try_register(server.url, "codex", "c-1", **extra)).status_code == 409
    async with server.human() as human:
        assert sorted(a["name"] for a in (await human.get("/api/agents")).json()) == ["claude", "codex"]


async def test_after_a_rotation_only_the_secret_reclaims_a_recently_live_identity(
    server: RunningServer,
) -> None:
    await register(server.url, "claude", "i-1", reclaim_secret=SECRET)
    async with server.human() as human:
        assert (await human.post("/api/agents/claude/rotate")).status_code == 200
    # A racer that only knows the instance_id does not get the name the rotation just freed.
    assert (await try_register(server.url, "claude", "i-1")).status_code == 409
    back = await register(server.url, "claude", "i-1", reclaim_secret=SECRET)
    assert back["name"] == "claude"


async def test_a_reclaim_secret_must_be_32_to_128_characters(server: RunningServer) -> None:
    for bad in ("x" * 31, "x" * 129, 12345):
        response = await try_register(server.url, "claude", "i-1", reclaim_secret=bad)
        assert response.status_code == 422 and "reclaim_secret" in response.json()["detail"], bad


async def test_an_offline_identity_is_reclaimed_without_proof_but_its_secret_is_never_replaced(
    server: RunningServer,
) -> None:
    """Review #3: whoever reclaims an offline identity must not lock its owner out."""
    me = await register(server.url, "claude", "i-1", reclaim_secret=SECRET)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:  # offline: it left
        assert (await client.delete("/api/agents/claude", headers=bearer(me["token"]))).status_code == 204
    back = await register(server.url, "claude", "i-1", reclaim_secret=OTHER)
    assert back["name"] == "claude"
    # The stored proof stays the owner's: the other secret proves nothing, the owner's still does.
    assert (await try_register(server.url, "claude", "i-1", reclaim_secret=OTHER)).status_code == 409
    assert (await register(server.url, "claude", "i-1", reclaim_secret=SECRET))["name"] == "claude"
    # An identity that never had a secret takes the first one given, once it may be reclaimed.
    first = await register(server.url, "codex", "c-1")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        assert (await client.delete("/api/agents/codex", headers=bearer(first["token"]))).status_code == 204
    assert (await register(server.url, "codex", "c-1", reclaim_secret=OTHER))["name"] == "codex"
    assert (await try_register(server.url, "codex", "c-1", reclaim_secret=SECRET)).status_code == 409
    assert (await register(server.url, "codex", "c-1", reclaim_secret=OTHER))["name"] == "codex"


async def test_a_taken_over_name_keeps_its_mentions_role_and_read_positions(server: RunningServer) -> None:
    old = await register(server.url, "gemini", "old")
    async with server.human() as human:
        assert (
            await human.patch("/api/agents/gemini", json={"role": "Review the diffs."})
        ).status_code == 200
        assert (await human.post("/api/channels", json={"name": "ops"})).status_code == 201
        for channel, text in (("general", "seen"), ("ops", "seen in ops")):
            await human.post(f"/api/channels/{channel}/messages", json={"text": text, "sender": "ben"})
        async with mcp_client(server.url, old["token"]) as client:
            await client.call_tool("chat_read", {"channel": "ops"})
            await client.call_tool("chat_read", {"channel": "general"})
        await human.post("/api/channels/general/messages", json={"text": "unseen", "sender": "ben"})
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            assert (
                await client.delete("/api/agents/gemini", headers=bearer(old["token"]))
            ).status_code == 204
        mention = await human.post(
            "/api/channels/general/messages", json={"text": "@gemini please look", "sender": "ben"}
        )
        mention_id = mention.json()["id"]

        new = await register(server.url, "gemini", "new")
        assert new["name"] == "gemini"
        history = (await human.get("/api/channels/general/messages")).json()["messages"]
        joined = [m["text"] for m in history if m["type"] == "join"][-1]
        assert "took the name over" in joined and "1 queued mention" in joined, joined
        assert "'Review the diffs.'" in joined and "2 channels" in joined, joined
        assert (await state_of(human, "gemini"))["role"] == "Review the diffs."

    # The mention made while the name was offline wakes its new holder.
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        async with client.stream(
            "GET", "/api/agents/gemini/triggers", headers=bearer(new["token"])
        ) as stream:
            with anyio.fail_after(5):
                async for line in stream.aiter_lines():
                    if line.startswith("data: "):
                        assert json.loads(line[6:])["message_id"] == mention_id
                        break
    # Read positions carried over: only what the name had not read yet.
    async with mcp_client(server.url, new["token"]) as client:
        got = await client.call_tool("chat_read", {"channel": "general"})
        assert got.structured_content is not None, text_of(got)
        texts = [m["text"] for m in got.structured_content["messages"]]
        assert "unseen" in texts and "@gemini please look" in texts and "seen" not in texts, texts
        assert "No new messages" in text_of(await client.call_tool("chat_read", {"channel": "ops"}))


async def test_a_frozen_wrappers_open_trigger_stream_does_not_keep_it_online(
    server_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agents_api, "KEEPALIVE_SECONDS", 0.05)  # the server runs in this process
    server: RunningServer = server_factory(crash_timeout=0.4)
    me = await register(server.url)
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
        client.stream("GET", "/api/agents/claude/triggers", headers=bearer(me["token"])) as stream,
        server.human() as human,
    ):
        lines = stream.aiter_lines()
        with anyio.fail_after(5):
            while await anext(lines) != ": keepalive":
                pass
            # Keepalives keep flowing, yet with no heartbeat and no MCP call the agent goes offline.
            while (await state_of(human, "claude"))["state"] != "offline":
                await anyio.sleep(0.05)
        assert (await anext(lines)) in ("", ": keepalive")  # the stream itself is still open
        beat = await client.post("/api/agents/claude/heartbeat", headers=bearer(me["token"]), json={})
        assert beat.status_code == 200
        assert (await state_of(human, "claude"))["state"] == "online"
