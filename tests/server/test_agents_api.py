"""The agent protocol over real HTTP: registration, names, reclaim, stale tokens, presence, leave."""

from __future__ import annotations

import anyio
import httpx
import pytest

from backchannel.errors import STALE_TOKEN_TEXT
from tests.conftest import RunningServer, mcp_client, register, text_of

pytestmark = pytest.mark.anyio


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_names_are_base_then_numbered_and_never_renamed(server: RunningServer) -> None:
    first = await register(server.url, "claude", "a")
    second = await register(server.url, "claude", "b")
    third = await register(server.url, "claude", "c")
    assert [first["name"], second["name"], third["name"]] == ["claude", "claude-2", "claude-3"]
    assert (first["slot"], second["slot"]) == (1, 2)
    assert len(first["token"]) >= 43  # 256 bits, url-safe base64
    assert first["color"].startswith("#") and first["label"] == "Claude"


async def test_same_instance_gets_its_name_back_after_rotation(server: RunningServer) -> None:
    first = await register(server.url, "claude", "a")
    await register(server.url, "claude", "b")
    async with server.human() as human:
        assert (await human.post("/api/agents/claude/rotate")).status_code == 200
    async with httpx.AsyncClient(base_url=server.url) as client:
        stale = await client.post("/api/agents/claude/heartbeat", headers=bearer(first["token"]), json={})
    assert stale.status_code == 401 and stale.json()["error"] == "stale_token"
    again = await register(server.url, "claude", "a")
    assert again["name"] == "claude" and again["token"] != first["token"]


async def test_offline_name_is_taken_over_and_old_instance_moves_on(server_factory) -> None:
    # The crash timeout itself is what this test is about. It is long enough that the taker is
    # still live a moment later when the old instance returns, even on a loaded machine.
    server = server_factory(crash_timeout=1.0)
    first = await register(server.url, "gemini", "old")
    await anyio.sleep(1.2)
    taker = await register(server.url, "gemini", "new")
    assert taker["name"] == "gemini"
    back = await register(server.url, "gemini", "old")
    assert back["name"] == "gemini-2"
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (
            await client.post("/api/agents/gemini/heartbeat", headers=bearer(first["token"]))
        ).status_code == 401


async def test_presence_goes_offline_after_crash_timeout_and_mcp_activity_revives(server_factory) -> None:
    server = server_factory(crash_timeout=0.4)
    me = await register(server.url)
    async with server.human() as human:
        assert (await human.get("/api/agents")).json()[0]["state"] == "online"
        with anyio.fail_after(5):
            while (await human.get("/api/agents")).json()[0]["state"] != "offline":
                await anyio.sleep(0.05)
        async with mcp_client(server.url, me["token"]) as client:
            await client.call_tool("chat_who", {})
        assert (await human.get("/api/agents")).json()[0]["state"] == "online"


async def test_heartbeat_reports_activity_and_current_name(server: RunningServer) -> None:
    me = await register(server.url)
    async with httpx.AsyncClient(base_url=server.url) as client:
        beat = await client.post(
            "/api/agents/claude/heartbeat", headers=bearer(me["token"]), json={"activity": "busy"}
        )
        assert beat.json() == {"name": "claude"}
        bad = await client.post(
            "/api/agents/claude/heartbeat", headers=bearer(me["token"]), json={"activity": "x"}
        )
        assert bad.status_code == 422
        alt = await client.post("/api/agents/claude/heartbeat", headers={"X-Agent-Token": me["token"]})
        assert alt.status_code == 200
    async with server.human() as human:
        assert (await human.get("/api/agents")).json()[0]["state"] == "busy"


async def test_list_never_shows_tokens(server: RunningServer) -> None:
    me = await register(server.url)
    async with server.human() as human:
        body = (await human.get("/api/agents")).text
    assert me["token"] not in body and "token" not in body


async def test_join_and_leave_lines_are_for_people_not_agents(server: RunningServer) -> None:
    secret = "codex-x-secret-" + "0" * 32
    await register(server.url, "codex", "x", reclaim_secret=secret)
    # A reclaim (a restarted wrapper, proven by its secret) is the same agent: no second line.
    me = await register(server.url, "codex", "x", reclaim_secret=secret)
    other = await register(server.url, "claude", "y")
    async with httpx.AsyncClient(base_url=server.url) as client:
        await client.delete("/api/agents/codex", headers=bearer(me["token"]))
    async with server.human() as human:
        history = (await human.get("/api/channels/general/messages")).json()["messages"]
    assert [(m["type"], m["text"]) for m in history] == [
        ("join", "codex joined."),
        ("join", "claude joined."),
        ("leave", "codex left."),
    ]
    async with mcp_client(server.url, other["token"]) as client:
        assert "Stop polling" in text_of(await client.call_tool("chat_read", {}))


async def test_leave_keeps_identity_for_the_same_instance(server: RunningServer) -> None:
    me = await register(server.url, "codex", "x")
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.delete("/api/agents/codex", headers=bearer(me["token"]))).status_code == 204
    async with mcp_client(server.url, me["token"]) as mcp:
        result = await mcp.call_tool("chat_who", {})
        assert result.is_error and text_of(result) == STALE_TOKEN_TEXT
    assert (await register(server.url, "codex", "x"))["name"] == "codex"


async def test_registration_from_a_browser_is_refused(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.post(
            "/api/agents/register",
            json={"base": "claude", "instance_id": "a"},
            headers={"Origin": server.url},
        )
    assert response.status_code == 403


async def test_unknown_agent_is_404_and_missing_token_is_stale(server: RunningServer) -> None:
    async with server.human() as human:
        assert (await human.post("/api/agents/nobody/rotate")).status_code == 404
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.post("/api/agents/claude/heartbeat")
    assert response.status_code == 401 and response.json()["error"] == "stale_token"


async def test_data_dir_is_private(server: RunningServer) -> None:
    import os
    import stat

    assert stat.S_IMODE(os.stat(server.settings.data_dir).st_mode) == 0o700


async def test_a_long_silent_agents_token_expires_and_it_comes_back_by_name(server_factory) -> None:
    server = server_factory(token_idle_expiry=0.3, crash_timeout=0.1)
    first = await register(server.url, "kimi", "k")
    await anyio.sleep(0.8)  # silence past the expiry plus a couple of sweeps: time is what is tested
    async with httpx.AsyncClient(base_url=server.url) as client:
        expired = await client.post("/api/agents/kimi/heartbeat", headers=bearer(first["token"]))
    assert expired.status_code == 401 and expired.json()["error"] == "stale_token"
    again = await register(server.url, "kimi", "k")
    assert again["name"] == "kimi"
