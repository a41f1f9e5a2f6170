from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect

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
        for bad in ("../../x", "Has Caps", "x" * 41):
            result = await client.call_tool("chat_claim", {"name": bad})
            assert result.is_error and "invalid agent name" in text_of(result), bad
    async with server.human() as human:
        history = (await human.get("/api/channels/general/messages")).json()["messages"]
    assert [m["sender"] for m in history if m["kind"] != "system"] == ["reviewer", "reviewer"]


async def test_claim_cannot_take_a_live_name(server: RunningServer) -> None:
    me = await register(server.url, "claude", "c-1")
    await register(server.url, "claude", "c-2")
    async with mcp_client(server.url, me["token"]) as client:
        result = await client.call_tool("chat_claim", {"name": "claude-2"})
    assert result.is_error and "taken" in text_of(result)
    # Review #15: a held name is 409 conflict for agents, as it is for people.
    async with server.human() as human:
        refused = await human.patch("/api/agents/claude", json={"name": "claude-2"})
    assert (refused.status_code, refused.json()["error"]) == (409, "conflict"), refused.text


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
        assert (await human.put("/api/me", json={"name": "ben"})).status_code == 200
    me = await register(server.url)
    async with mcp_client(server.url, me["token"]) as client:
        for taken in ("you", "ben"):
            result = await client.call_tool("chat_claim", {"name": taken})
            assert result.is_error, taken
    async with server.human() as human:
        ok = await human.post("/api/channels/general/messages", json={"text": "still me", "sender": "you"})
    assert ok.status_code == 201


async def test_no_agent_may_register_or_claim_a_reserved_name(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        for base in ("you", "system", "all", "both"):
            refused = await client.post("/api/agents/register", json={"base": base, "instance_id": "x"})
            assert refused.status_code == 400 and "reserved" in refused.json()["detail"], base
    me = await register(server.url)
    async with mcp_client(server.url, me["token"]) as client:
        for reserved in ("both", "you", "system", "all"):
            result = await client.call_tool("chat_claim", {"name": reserved})
            assert result.is_error and "reserved" in text_of(result), reserved
    async with server.human() as human:
        assert (await human.patch("/api/agents/claude", json={"name": "both"})).status_code == 400
        assert [a["name"] for a in (await human.get("/api/agents")).json()] == ["claude"]


async def test_an_agent_may_not_claim_a_name_that_reads_as_another_kind_of_agent(
    server: RunningServer,
) -> None:
    me = await register(server.url, "codex", "c-1")
    async with mcp_client(server.url, me["token"]) as client:
        for misleading in ("claude", "claude-2", "gemini-helper"):
            result = await client.call_tool("chat_claim", {"name": misleading})
            assert result.is_error and "codex agent" in text_of(result), misleading
        assert not (await client.call_tool("chat_claim", {"name": "codex-reviewer"})).is_error
    async with server.human() as human:
        refused = await human.patch("/api/agents/codex-reviewer", json={"name": "copilot"})
        assert refused.status_code == 400 and "copilot agent" in refused.json()["detail"]


async def test_a_renamed_agents_old_messages_show_its_new_name_everywhere(server: RunningServer) -> None:
    me = await register(server.url)
    other = await register(server.url, "codex", "c-1")
    async with server.human() as human:
        cookie = (await human.get("/")).cookies[server.session_cookie]
        start = (await human.get("/api/events")).json()["last_seq"]
    ws_url = server.url.replace("http://", "ws://") + "/ws"
    headers = {"Cookie": f"{server.session_cookie}={cookie}", "Origin": server.url}
    async with connect(ws_url, additional_headers=headers) as ws:
        async with mcp_client(server.url, me["token"]) as client:
            await client.call_tool("chat_send", {"message": "findme before the rename"})
            assert not (await client.call_tool("chat_claim", {"name": "reviewer"})).is_error
        with anyio.fail_after(5):  # an open page hears about it and can re-render
            live: dict[str, Any] = {}
            while live.get("kind") != "agent_renamed":
                live = json.loads(await ws.recv())
        assert (live["old"], live["new"], live["agent"]["name"]) == ("claude", "reviewer", "reviewer")
    async with server.human() as human:  # a person renames it too (PATCH)
        assert (await human.patch("/api/agents/reviewer", json={"name": "architect"})).status_code == 200
        logged = (await human.get("/api/events", params={"since": start})).json()["events"]
        found = (await human.get("/api/search", params={"q": "findme"})).json()["messages"]
        history = (await human.get("/api/channels/general/messages")).json()["messages"]
    mine = [m for m in history if m["text"] == "findme before the rename"]
    assert [m["sender"] for m in mine] == [m["sender"] for m in found] == ["architect"]
    # A page resuming from the log sees the new name, and the renames, in order.
    posted = [
        e["message"]["sender"] for e in logged if e["kind"] == "message" and "findme" in e["message"]["text"]
    ]
    assert posted == ["architect"]
    renames = [e for e in logged if e["kind"] == "agent_renamed"]
    assert [(e["old"], e["new"]) for e in renames] == [("claude", "reviewer"), ("reviewer", "architect")]
    assert renames[0]["agent_id"] == renames[1]["agent_id"] == live["agent_id"]
    async with mcp_client(server.url, other["token"]) as client:  # and so do other agents' reads
        read = await client.call_tool("chat_read", {})
    assert read.structured_content is not None, text_of(read)
    shown = [m["sender"] for m in read.structured_content["messages"] if "findme" in m["text"]]
    assert shown == ["architect"]


async def test_a_renamed_agent_keeps_its_jobs_rules_and_schedules(server: RunningServer) -> None:
    """What names an agent follows its rename: it can still take the job it holds, the rule it
    proposed and the schedule that wakes it show its new name, and open pages are told."""
    me = await register(server.url)
    async with server.human() as human:
        job = (await human.post("/api/jobs", json={"title": "fix CI", "assignee": me["name"]})).json()
        schedule = (
            await human.post(
                "/api/schedules", json={"prompt": "triage", "targets": [me["name"]], "spec": "every 2h"}
            )
        ).json()
        start = (await human.get("/api/events")).json()["last_seq"]
    async with mcp_client(server.url, me["token"]) as client:
        proposed = await client.call_tool("chat_rules", {"action": "propose", "rule": "Run the tests first"})
        assert not proposed.is_error, text_of(proposed)
        assert not (await client.call_tool("chat_claim", {"name": "reviewer"})).is_error
        took = await client.call_tool(
            "chat_jobs", {"action": "update", "job_id": job["id"], "status": "active", "assignee": "me"}
        )
        assert not took.is_error, text_of(took)
    async with server.human() as human:
        assert (await human.get(f"/api/jobs/{job['id']}")).json()["assignee"] == "reviewer"
        rules = (await human.get("/api/rules")).json()
        assert [r["author"] for r in rules if r["text"] == "Run the tests first"] == ["reviewer"]
        (found,) = [s for s in (await human.get("/api/schedules")).json() if s["id"] == schedule["id"]]
        assert found["targets"] == ["reviewer"]
        logged = (await human.get("/api/events", params={"since": start})).json()["events"]
    kinds = [e["kind"] for e in logged]
    renamed_at = kinds.index("agent_renamed")
    assert {"job", "rule", "schedule"} <= set(kinds[renamed_at + 1 :]), kinds
