"""Channel summaries over real MCP and REST, against one server shared by the module.

An agent's ``chat_summary`` write posts a ``summary`` card and updates the channel (and its live
event) in one transaction; ``/summary @agent`` (``POST /api/channels/{name}/summary-request``) wakes
the agent without posting anything but a short system line.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import RunningServer, mcp_client, module_server, ok, pending, register, text_of

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "summaries") as running:
        yield running


async def test_a_written_summary_posts_a_card_and_updates_the_channel_live(server: RunningServer) -> None:
    agent = await register(server.url, "claude", "sum-write")
    async with server.human() as human:
        ok(await human.post("/api/channels", json={"name": "plans"}), 201)
        fresh = ok(await human.get("/api/channels/plans"))
        assert (fresh["summary"], fresh["summary_by"], fresh["summary_at"]) == ("", "", None)
        since = ok(await human.get("/api/events", params={"since": 0, "limit": 1}))["last_seq"]
        async with mcp_client(server.url, agent["token"]) as client:
            wrote = await client.call_tool(
                "chat_summary", {"action": "write", "channel": "plans", "text": "  We ship on Friday.  "}
            )
            assert not wrote.is_error, text_of(wrote)
            read = await client.call_tool("chat_summary", {"channel": "plans"})
            assert text_of(read) == "We ship on Friday."
            too_long = await client.call_tool(
                "chat_summary", {"action": "write", "channel": "plans", "text": "x" * 1001}
            )
            assert too_long.is_error and "1000" in text_of(too_long)
        channel = ok(await human.get("/api/channels/plans"))
        assert channel["summary"] == "We ship on Friday." and channel["summary_by"] == agent["name"]
        assert channel["summary_at"] > fresh["created_at"]
        listed = {c["name"]: c for c in ok(await human.get("/api/channels"))}
        assert listed["plans"]["summary"] == "We ship on Friday."
        messages = ok(await human.get("/api/channels/plans/messages"))["messages"]
        cards = [m for m in messages if m["type"] == "summary"]
        assert len(cards) == 1  # the refused write posted nothing
        card = cards[0]
        assert (card["sender"], card["kind"], card["text"]) == (agent["name"], "agent", "We ship on Friday.")
        logged = ok(await human.get("/api/events", params={"since": since}))["events"]
        kinds = [(e["kind"], e.get("message", {}).get("id")) for e in logged]
        assert ("message", card["id"]) in kinds
        updated = [e for e in logged if e["kind"] == "channel_updated"]
        assert len(updated) == 1 and updated[0]["channel"] == channel
        # The card and the channel change are one transaction: adjacent in the log.
        seqs = [
            e["seq"]
            for e in logged
            if e["kind"] == "channel_updated" or e.get("message", {}).get("id") == card["id"]
        ]
        assert seqs[1] - seqs[0] == 1
        ok(await human.get("/api/channels/nowhere"), 404)


async def test_summary_request_wakes_the_named_agent(server: RunningServer) -> None:
    agent = await register(server.url, "codex", "sum-ask")
    async with server.human() as human:
        me = ok(await human.get("/api/me"))["name"]
        ok(await human.post("/api/channels", json={"name": "retro"}), 201)
        before = ok(await human.get("/api/channels/retro/messages"))["messages"]
        asked = ok(
            await human.post("/api/channels/retro/summary-request", json={"agent": f"@{agent['name']}"})
        )
        assert asked["agent"] == agent["name"]
        [trigger] = await pending(server, agent["name"])
        assert trigger.id == asked["trigger"] and trigger.channel == "retro" and trigger.sender == me
        assert 'chat_read(channel="retro")' in trigger.prompt and "chat_summary" in trigger.prompt
        after = ok(await human.get("/api/channels/retro/messages"))["messages"]
        [line] = after[len(before) :]
        assert (line["kind"], line["text"]) == ("system", f"{me} asked @{agent['name']} for a summary")
        assert trigger.message_id == line["id"]
        # An unknown agent is a clear 404, an unknown channel too; nothing is posted or queued.
        missing = await human.post("/api/channels/retro/summary-request", json={"agent": "nobody-here"})
        assert missing.status_code == 404 and "nobody-here" in missing.json()["detail"], missing.text
        gone = await human.post("/api/channels/nowhere/summary-request", json={"agent": agent["name"]})
        assert gone.status_code == 404, gone.text
        assert len(ok(await human.get("/api/channels/retro/messages"))["messages"]) == len(after)
        assert len(await pending(server, agent["name"])) == 1
    # An agent's token on the people-only route is refused.
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        r = await client.post(
            "/api/channels/retro/summary-request",
            json={"agent": agent["name"]},
            headers={"Authorization": f"Bearer {agent['token']}"},
        )
        assert r.status_code in (401, 403), r.text
    assert len(await pending(server, agent["name"])) == 1
