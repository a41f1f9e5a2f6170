from __future__ import annotations

import json

import pytest

from tests.conftest import RunningServer, mcp_client, register, text_of

pytestmark = pytest.mark.anyio


async def test_claim_renames_and_keeps_history_and_cursor(server: RunningServer) -> None:
    me = await register(server.url)
    async with mcp_client(server.url, me["token"]) as client:
        await client.call_tool("chat_read", {})
        await client.call_tool("chat_send", {"message": "before rename"})
        claimed = await client.call_tool("chat_claim", {"name": "reviewer"})
        assert json.loads(text_of(claimed)) == {
            "confirmed_name": "reviewer",
            "label": "Claude",
            "base": "claude",
        }
        await client.call_tool("chat_send", {"message": "after rename"})
        assert "Stop polling" in text_of(await client.call_tool("chat_read", {}))
        for bad in ("../../x", "Has Caps", "all", "x" * 41):
            result = await client.call_tool("chat_claim", {"name": bad})
            assert result.is_error and "invalid agent name" in text_of(result), bad
    async with server.human() as human:
        history = (await human.get("/api/channels/general/messages")).json()["messages"]
    assert [m["sender"] for m in history if m["kind"] != "system"] == ["reviewer", "reviewer"]


async def test_claim_cannot_take_a_live_name(server: RunningServer) -> None:
    me = await register(server.url)
    await register(server.url, "codex", "c-1")
    async with mcp_client(server.url, me["token"]) as client:
        result = await client.call_tool("chat_claim", {"name": "codex"})
    assert result.is_error and "taken" in text_of(result)


async def test_set_hat_sanitises_svg(server: RunningServer) -> None:
    me = await register(server.url)
    evil = (
        '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script>'
        '<a href="javascript:alert(3)"><circle r="4" fill="red"/></a>'
        '<rect width="4" height="4" fill="url(https://evil.example/x)" style="x"/>'
        '<foreignObject><div>hi</div></foreignObject><circle r="2" fill="url(#g)"/></svg>'
    )
    async with mcp_client(server.url, me["token"]) as client:
        assert not (await client.call_tool("chat_set_hat", {"svg": evil})).is_error
        too_big = await client.call_tool("chat_set_hat", {"svg": "<svg>" + " " * 5200 + "</svg>"})
        assert too_big.is_error and "5120" in text_of(too_big)
        doctype = await client.call_tool("chat_set_hat", {"svg": '<!DOCTYPE x [<!ENTITY a "b">]><svg/>'})
        assert doctype.is_error
    async with server.human() as human:
        (agent,) = (await human.get("/api/agents")).json()
    hat = agent["hat"]
    for needle in ("script", "onload", "javascript", "foreignObject", "evil.example", "style", "<a"):
        assert needle not in hat, needle
    assert 'fill="url(#g)"' in hat and hat.startswith("<svg")


async def test_claim_cannot_take_a_persons_name(server: RunningServer) -> None:
    async with server.human() as human:
        await human.post("/api/channels/general/messages", json={"text": "hi", "sender": "ben"})
    me = await register(server.url)
    async with mcp_client(server.url, me["token"]) as client:
        for taken in ("you", "ben"):
            result = await client.call_tool("chat_claim", {"name": taken})
            assert result.is_error, taken
    async with server.human() as human:
        ok = await human.post("/api/channels/general/messages", json={"text": "still me", "sender": "you"})
    assert ok.status_code == 201
