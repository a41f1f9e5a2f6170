"""Issue 14: MCP over streamable HTTP answers a tool call with one JSON body, and /mcp never goes
through FastAPI's router (it used to be matched against every REST route first)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import RunningServer, register

pytestmark = pytest.mark.anyio
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def test_a_tool_call_answers_with_json_not_an_event_stream(server: RunningServer) -> None:
    token = (await register(server.url))["token"]
    headers = {**HEADERS, "Authorization": f"Bearer {token}"}
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "0"},
        },
    }
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        first = await client.post("/mcp", headers=headers, json=init)
        assert first.status_code == 200 and first.headers["content-type"].startswith("application/json")
        if "mcp-session-id" in first.headers:
            headers["mcp-session-id"] = first.headers["mcp-session-id"]
        headers["mcp-protocol-version"] = "2025-06-18"
        await client.post(
            "/mcp", headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"}
        )
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "chat_send", "arguments": {"message": "json please", "channel": "general"}},
        }
        sent = await client.post("/mcp", headers=headers, json=call)
    assert sent.headers["content-type"].startswith("application/json"), sent.text
    assert sent.json()["result"]["isError"] is False, sent.text


def test_mcp_is_served_outside_the_router(server: RunningServer) -> None:
    paths = {getattr(route, "path", None) for route in server.app.router.routes}
    assert not paths & {"/mcp", "/sse", "/messages"}, paths  # test_mcp_endpoint.py proves the rest
    with httpx.Client(base_url=server.url, timeout=10) as client:
        ping = client.post("/mcp", headers=HEADERS, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert ping.json() == {"jsonrpc": "2.0", "id": 1, "result": {}}
