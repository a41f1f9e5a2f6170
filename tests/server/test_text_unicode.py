"""A lone surrogate in sent text (``"\\ud800"``: valid JSON, not storable UTF-8) is bad input, not a
server failure: MCP answers a tool error and REST a 400, both naming the field, and nothing is stored.

Models cut emoji in half now and then. Over a real server; MCP calls are raw JSON-RPC on ``/mcp``
because the SDK client itself cannot send such a string (it encodes its JSON as UTF-8 first).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backchannel.errors import InvalidInput
from backchannel.text import check_unicode, not_unicode
from tests.conftest import RunningServer, module_server, ok, register

pytestmark = pytest.mark.anyio

HALF = "\ud83d"  # the first half of U+1F600, without its second
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
SVG = "<svg xmlns='http://www.w3.org/2000/svg'><title>hat {}</title><circle r='4'/></svg>"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "text-unicode") as running:
        yield running


@pytest.fixture
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The old failure logged "tool ... failed" with a traceback: bad input must log no error."""
    with caplog.at_level(logging.ERROR):
        yield
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def escaped(value: Any) -> bytes:
    """JSON with ``\\uXXXX`` escapes (ASCII): how a client sends a lone surrogate."""
    return json.dumps(value, ensure_ascii=True).encode()


@pytest.mark.parametrize("text", ["caf\u00e9", "grin \U0001f600", "plain", "\u200d"])
def test_valid_text_passes_unchanged(text: str) -> None:
    assert check_unicode(text, "text") is text


@pytest.mark.parametrize("text", [HALF, "\ude00 tail", f"a{HALF}b", "\udc80"])
def test_a_lone_surrogate_is_invalid_input_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        check_unicode(text, "title")
    assert (
        raised.value.detail
        == "title must be valid Unicode: it contains an unpaired surrogate (half an emoji?)"
    )


async def general(server: RunningServer) -> list[str]:
    async with server.human() as human:
        page = ok(await human.get("/api/channels/general/messages", params={"limit": 1000}))
    return [m["text"] for m in page["messages"]]


MCP_CASES = [
    ("chat_send", {"message": f"hi {HALF} there"}, "text"),
    ("chat_send", {"message": "pick one", "choices": ["yes", f"no {HALF}"]}, "choices"),
    ("chat_propose_job", {"title": f"fix {HALF}", "body": "soon"}, "title"),
    ("chat_propose_job", {"title": "fix it", "body": f"the {HALF} bug"}, "body"),
    ("chat_summary", {"action": "write", "text": f"we talked {HALF}"}, "text"),
    (
        "chat_schedule",
        {"action": "create", "prompt": f"ping {HALF}", "targets": ["claude"], "spec": "every 1h"},
        "prompt",
    ),
    ("chat_set_hat", {"svg": SVG.format(HALF)}, "svg"),
]


@pytest.mark.parametrize(("tool", "arguments", "field"), MCP_CASES, ids=[f"{t}-{f}" for t, _, f in MCP_CASES])
async def test_mcp_tools_refuse_a_lone_surrogate_and_store_nothing(
    server: RunningServer, no_tracebacks: None, tool: str, arguments: dict[str, Any], field: str
) -> None:
    agent = await register(server.url, instance_id=f"unicode-{tool}-{field}")
    before = await general(server)
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }
    headers = {**MCP_HEADERS, "authorization": f"Bearer {agent['token']}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        response = await client.post("/mcp", content=escaped(call), headers=headers)
    result = ok(response)["result"]
    assert result["isError"] is True
    assert [block["text"] for block in result["content"]] == [not_unicode(field)]
    assert await general(server) == before
    async with server.human() as human:
        assert [s for s in ok(await human.get("/api/schedules")) if "ping" in s["prompt"]] == []


async def test_rest_refuses_a_lone_surrogate_with_a_400_naming_the_field(
    server: RunningServer, no_tracebacks: None
) -> None:
    async with server.human() as human:
        posted = ok(await human.post("/api/channels/general/messages", json={"text": "to edit"}), 201)
        job = ok(await human.post("/api/jobs", json={"title": "unicode job", "channel": "general"}), 201)
        cases = [
            ("POST", "/api/channels/general/messages", {"text": f"hi {HALF} there"}, "text"),
            ("PATCH", f"/api/messages/{posted['id']}", {"text": f"edited {HALF}"}, "text"),
            ("POST", "/api/jobs", {"title": f"job {HALF}", "channel": "general"}, "title"),
            ("POST", f"/api/jobs/{job['id']}/messages", {"text": f"thread {HALF}"}, "text"),
            ("POST", "/api/rules", {"text": f"rule {HALF}"}, "text"),
            (
                "POST",
                "/api/schedules",
                {"prompt": f"p {HALF}", "targets": ["claude"], "spec": "every 1h"},
                "prompt",
            ),
            ("POST", "/api/channels", {"name": f"c{HALF}"}, "name"),
        ]
        for method, path, body, field in cases:
            response = await human.request(
                method, path, content=escaped(body), headers={"content-type": "application/json"}
            )
            assert response.status_code == 400, (path, response.text)
            assert response.json() == {"error": "invalid_input", "detail": not_unicode(field)}, path
        assert [m for m in await general(server) if "edited" in m or "hi " in m] == []
        assert [j["title"] for j in ok(await human.get("/api/jobs")) if "job" in j["title"]] == [
            "unicode job"
        ]
        thread = ok(await human.get(f"/api/jobs/{job['id']}/messages"))
        assert [m for m in thread if "thread" in m["text"]] == []
