"""Mentions become triggers pushed to the agent's wrapper over SSE, durable until acknowledged."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest

from tests.conftest import RunningServer, mcp_client, register

pytestmark = pytest.mark.anyio


class TriggerStream:
    """A wrapper's view of ``GET /api/agents/{name}/triggers``."""

    def __init__(self, lines: AsyncIterator[str]) -> None:
        self._lines = lines

    async def next_event(self, timeout: float = 5.0) -> dict[str, Any] | str:
        """The next trigger's data, or the comment ``ready`` that ends the replay."""
        with anyio.fail_after(timeout):
            event_id = None
            async for line in self._lines:
                if line == ": ready":
                    return "ready"
                if line.startswith("id: "):
                    event_id = int(line[4:])
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                    assert data["id"] == event_id
                    return data
        raise AssertionError("trigger stream ended")

    async def replay(self) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        while (item := await self.next_event()) != "ready":
            assert isinstance(item, dict)
            got.append(item)
        return got


@asynccontextmanager
async def triggers(url: str, agent: dict[str, Any]) -> AsyncIterator[TriggerStream]:
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(10, read=30)) as client:
        headers = {"Authorization": f"Bearer {agent['token']}"}
        async with client.stream("GET", f"/api/agents/{agent['name']}/triggers", headers=headers) as response:
            assert response.status_code == 200
            yield TriggerStream(response.aiter_lines())


async def say(server: RunningServer, text: str, channel: str = "general") -> int:
    async with server.human() as human:
        response = await human.post(f"/api/channels/{channel}/messages", json={"text": text, "sender": "ben"})
        assert response.status_code == 201, response.text
        return int(response.json()["id"])


async def my_name(server: RunningServer) -> str:
    """The local person's name: people post under it whatever the body says."""
    async with server.human() as human:
        return (await human.get("/api/me")).json()["name"]


async def ack(url: str, agent: dict[str, Any], trigger_id: int, state: str = "injected") -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.post(
            f"/api/agents/{agent['name']}/triggers/{trigger_id}",
            json={"state": state},
            headers={"Authorization": f"Bearer {agent['token']}"},
        )
        assert response.status_code == 200, response.text


async def test_mention_is_pushed_live_to_the_hyphenated_agent(server: RunningServer) -> None:
    await register(server.url, "claude", "a")
    second = await register(server.url, "claude", "b")
    async with triggers(server.url, second) as stream:
        assert await stream.replay() == []
        message_id = await say(server, "@claude-2 can you check `@claude` usage?")
        event = await stream.next_event()
    assert isinstance(event, dict)
    assert event["message_id"] == message_id and event["channel"] == "general"
    assert event["from"] == await my_name(server)
    assert "chat_read" in event["prompt"] and "\n" not in event["prompt"]


async def test_unacknowledged_triggers_replay_once_acknowledged_never(server: RunningServer) -> None:
    agent = await register(server.url, "codex", "a")
    await say(server, "@codex first", "general")
    async with server.human() as human:
        await human.post("/api/channels", json={"name": "ops"})
    await say(server, "@codex second", "ops")
    await say(server, "@codex again in ops")  # same channel still pending: merged into one prompt
    async with triggers(server.url, agent) as stream:
        replayed = await stream.replay()
    assert [t["channel"] for t in replayed] == ["general", "ops"]
    await ack(server.url, agent, replayed[0]["id"])
    async with triggers(server.url, agent) as stream:
        assert [t["channel"] for t in await stream.replay()] == ["ops"]
    await ack(server.url, agent, replayed[1]["id"])
    async with triggers(server.url, agent) as stream:
        assert await stream.replay() == []


async def test_mention_of_offline_agent_waits_for_its_return(server_factory) -> None:
    server = server_factory(crash_timeout=0.2)
    agent = await register(server.url, "gemini", "g")
    await anyio.sleep(0.3)  # let it go offline (crash timeout under test)
    await say(server, "@gemini when you are back, review #12")
    back = await register(server.url, "gemini", "g")
    async with triggers(server.url, back) as stream:
        (trigger,) = await stream.replay()
    assert trigger["from"] == await my_name(server) and back["name"] == agent["name"]


async def test_all_reaches_online_agents(server_factory) -> None:
    server = server_factory()
    sleeper = await register(server.url, "qwen", "q")
    # The sleeper goes offline by leaving: a short crash timeout would also take the others
    # offline whenever the machine is slow between their registration and the mention.
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        auth = {"Authorization": f"Bearer {sleeper['token']}"}
        left = await client.delete(f"/api/agents/{sleeper['name']}", headers=auth)
        assert left.status_code == 204, left.text
    claude = await register(server.url, "claude", "a")
    codex = await register(server.url, "codex", "b")
    await say(server, "@all standup in 5")
    for agent in (claude, codex):
        async with triggers(server.url, agent) as stream:
            assert len(await stream.replay()) == 1
    back = await register(server.url, "qwen", "q")  # @all queued nothing for it while it was away
    async with triggers(server.url, back) as stream:
        assert await stream.replay() == []


async def test_loop_guard_pauses_a_channel_and_continue_resumes_it(server_factory) -> None:
    server = server_factory(loop_guard_hops=2)
    a = await register(server.url, "claude", "a")
    b = await register(server.url, "codex", "b")
    async with server.human() as human:
        await human.post("/api/channels", json={"name": "dev"})
    await say(server, "@claude start", "dev")
    async with mcp_client(server.url, a["token"]) as ca, mcp_client(server.url, b["token"]) as cb:
        await ca.call_tool("chat_send", {"message": "@codex hop 1", "channel": "dev"})
        await cb.call_tool("chat_send", {"message": "@claude hop 2", "channel": "dev"})
        await ca.call_tool("chat_send", {"message": "@codex hop 3", "channel": "dev"})
        await cb.call_tool("chat_send", {"message": "@claude hop 4", "channel": "dev"})
    async with server.human() as human:
        dev = (await human.get("/api/channels/dev/messages")).json()["messages"]
        notices = [m["text"] for m in dev if m["kind"] == "system"]
        assert len(notices) == 1 and "Loop guard" in notices[0]
        channels = {c["name"]: c for c in (await human.get("/api/channels")).json()}
        assert channels["dev"]["paused"] and not channels["general"]["paused"]
        await human.post("/api/channels/dev/messages", json={"text": "/continue", "sender": "ben"})
        assert not {c["name"]: c for c in (await human.get("/api/channels")).json()}["dev"]["paused"]
    async with triggers(server.url, b) as stream:
        pending = await stream.replay()
    # codex was woken by hop 1 only (hop 3 came after the guard tripped).
    assert len(pending) == 1
    await ack(server.url, b, pending[0]["id"])
    async with mcp_client(server.url, a["token"]) as ca:
        await ca.call_tool("chat_send", {"message": "@codex after continue", "channel": "dev"})
    async with triggers(server.url, b) as stream:
        assert len(await stream.replay()) == 1


async def test_revoked_token_ends_the_stream_and_is_refused(server: RunningServer) -> None:
    agent = await register(server.url, "claude", "a")
    async with triggers(server.url, agent) as stream:
        await stream.replay()
        async with server.human() as human:
            await human.post("/api/agents/claude/rotate")
        with anyio.fail_after(5):
            with pytest.raises(AssertionError, match="stream ended"):
                await stream.next_event()
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.get(
            "/api/agents/claude/triggers", headers={"Authorization": f"Bearer {agent['token']}"}
        )
    assert response.status_code == 401 and response.json()["error"] == "stale_token"


async def test_mention_after_the_wrapper_received_a_trigger_is_not_folded_into_it(
    server: RunningServer,
) -> None:
    agent = await register(server.url, "codex", "a")
    async with triggers(server.url, agent) as stream:
        assert await stream.replay() == []
        await say(server, "@codex first")
        first = await stream.next_event()
        # The wrapper is typing the first prompt and has not acknowledged it yet.
        await say(server, "@codex second, while you type")
        second = await stream.next_event()
    assert isinstance(first, dict) and isinstance(second, dict) and first["id"] != second["id"]
    await say(server, "@codex third")  # no stream open: waits, and folds with nothing already sent
    await say(server, "@codex fourth")
    async with triggers(server.url, agent) as stream:
        pending = await stream.replay()
    # Both unacknowledged ones again, plus one trigger for "third" and "fourth" together.
    assert [t["id"] for t in pending][:2] == [first["id"], second["id"]] and len(pending) == 3


async def test_a_failed_delivery_is_replaced_by_the_next_mention_not_replayed_beside_it(
    server: RunningServer,
) -> None:
    agent = await register(server.url, "codex", "a")
    await say(server, "@codex one")
    async with triggers(server.url, agent) as stream:
        (first,) = await stream.replay()
    await ack(server.url, agent, first["id"], "failed")
    async with triggers(server.url, agent) as stream:
        assert [t["id"] for t in await stream.replay()] == [first["id"]]  # failed ones are retried
    await say(server, "@codex two")
    async with triggers(server.url, agent) as stream:
        (only,) = await stream.replay()
    assert only["id"] != first["id"]
