from __future__ import annotations

import json

import pytest

from tests.conftest import RunningServer, mcp_client, register, text_of

pytestmark = pytest.mark.anyio


async def test_agent_sends_over_mcp_and_person_reads_it(server: RunningServer) -> None:
    agent = await register(server.url)
    async with mcp_client(server.url, agent["token"]) as client:
        result = await client.call_tool("chat_send", {"message": "hello from claude"})
        assert text_of(result).startswith("Sent (id=")
    async with server.human() as human:
        data = (await human.get("/api/channels/general/messages")).json()
    assert [(m["sender"], m["text"]) for m in data["messages"]] == [
        ("system", "claude joined."),
        ("claude", "hello from claude"),
    ]


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_chat_read_over_both_transports(server: RunningServer, transport: str) -> None:
    agent = await register(server.url)
    async with server.human() as human:
        await human.put("/api/me", json={"name": "ben"})
        await human.post("/api/channels/general/messages", json={"text": "hi @claude", "sender": "ben"})
    async with mcp_client(server.url, agent["token"], transport=transport) as client:
        result = await client.call_tool("chat_read", {})
    assert json.loads(text_of(result))[0]["text"] == "hi @claude"
    assert (
        result.structured_content is not None and result.structured_content["messages"][0]["sender"] == "ben"
    )
