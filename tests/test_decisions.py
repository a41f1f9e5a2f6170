"""Decision cards over real MCP (the agent asks) and REST (a person answers, once), on one server.

The server is shared by the module: every test makes its own agents and cards and checks only
those. Wake-ups are read from the server's own store (what the wrapper would stream).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from tests.conftest import RunningServer, mcp_client, module_server, ok, pending, refused, register, text_of

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "decisions") as running:
        yield running


async def ask(server: RunningServer, token: str, question: str, choices: list[str], **extra: Any) -> int:
    """The agent posts a decision card over MCP; returns its message id."""
    async with mcp_client(server.url, token) as client:
        sent = await client.call_tool("chat_send", {"message": question, "choices": choices, **extra})
    assert not sent.is_error, text_of(sent)
    assert sent.structured_content is not None
    return int(sent.structured_content["id"])


async def test_a_person_decides_once_the_card_and_log_change_and_the_agent_wakes(
    server: RunningServer,
) -> None:
    agent = await register(server.url, "claude", "dec-1")
    card_id = await ask(server, agent["token"], "Ship it today?", ["ship", "wait"])
    async with server.human() as human:
        since = ok(await human.get("/api/events", params={"since": 0, "limit": 1}))["last_seq"]
        me = ok(await human.get("/api/me"))["name"]
        card = ok(await human.post(f"/api/messages/{card_id}/decide", json={"choice": "wait"}))
        expected = {"choices": ["ship", "wait"], "resolved": True, "chosen": "wait", "chosen_by": me}
        assert (card["id"], card["type"], card["metadata"]) == (card_id, "decision", expected)
        assert ok(await human.get(f"/api/messages/{card_id}"))["metadata"] == expected
        # Live: one message_edited with the new metadata; the logged copies are rewritten too.
        live = ok(await human.get("/api/events", params={"since": since}))["events"]
        edits = [e["message"] for e in live if e["kind"] == "message_edited"]
        assert [(m["id"], m["metadata"]) for m in edits] == [(card_id, expected)]
        log = ok(await human.get("/api/events", params={"since": 0, "limit": 1000}))["events"]
        copies = [e["message"]["metadata"] for e in log if e.get("message", {}).get("id") == card_id]
        assert copies and all(m == expected for m in copies)
        # A second answer (even the same one) is refused; the first stands.
        refused(await human.post(f"/api/messages/{card_id}/decide", json={"choice": "ship"}), 409, "already")
        refused(await human.post(f"/api/messages/{card_id}/decide", json={"choice": "wait"}), 409, "already")
        assert ok(await human.get(f"/api/messages/{card_id}"))["metadata"] == expected
    (wake,) = await pending(server, agent["name"])
    assert (wake.message_id, wake.job_id, wake.channel) == (card_id, 0, "general")
    assert wake.prompt.startswith(f'@{me} chose "wait" on your decision (message #{card_id}) in #general.')
    # The agent reads the outcome.
    async with mcp_client(server.url, agent["token"]) as client:
        read = await client.call_tool("chat_read", {"channel": "general", "since_id": card_id - 1})
    assert read.structured_content is not None
    (seen,) = [m for m in read.structured_content["messages"] if m["id"] == card_id]
    assert (seen["choices"], seen["resolved"], seen["chosen"], seen["chosen_by"]) == (
        ["ship", "wait"],
        True,
        "wait",
        me,
    )


async def test_two_people_deciding_at_once_give_one_answer(server: RunningServer) -> None:
    agent = await register(server.url, "codex", "dec-race")
    card_id = await ask(server, agent["token"], "Which port?", ["8300", "8400"])
    out: list[httpx.Response] = []
    async with server.human() as one, server.human() as two:

        async def decide(client: httpx.AsyncClient, choice: str) -> None:
            out.append(await client.post(f"/api/messages/{card_id}/decide", json={"choice": choice}))

        async with anyio.create_task_group() as group:
            group.start_soon(decide, one, "8300")
            group.start_soon(decide, two, "8400")
        assert sorted(r.status_code for r in out) == [200, 409], [r.text for r in out]
        won = next(r.json() for r in out if r.status_code == 200)
        assert ok(await one.get(f"/api/messages/{card_id}"))["metadata"] == won["metadata"]
    (wake,) = await pending(server, agent["name"])
    assert f'chose "{won["metadata"]["chosen"]}"' in wake.prompt


async def test_bad_decisions_are_clear_4xx(server: RunningServer) -> None:
    agent = await register(server.url, "gemini", "dec-bad")
    card_id = await ask(server, agent["token"], "Tabs or spaces?", ["tabs", "spaces"])
    gone_id = await ask(server, agent["token"], "Delete me?", ["yes", "no"])
    async with server.human() as human:
        plain = ok(await human.post("/api/channels/general/messages", json={"text": "just talk"}), 201)
        refused(await human.post(f"/api/messages/{card_id}/decide", json={"choice": "both"}), 400, "one of")
        refused(
            await human.post(f"/api/messages/{plain['id']}/decide", json={"choice": "tabs"}),
            400,
            "not a decision card",
        )
        refused(await human.post("/api/messages/999999/decide", json={"choice": "tabs"}), 404, "999999")
        assert (await human.post(f"/api/messages/{card_id}/decide", json={})).status_code == 422
        assert (await human.post(f"/api/messages/{card_id}/decide", json={"choice": ""})).status_code == 422
    # Deleted (the room deletes it as its author would): nothing is left to decide.
    await server.app.state.services.room.delete(
        gone_id, by_agent=await server.app.state.services.store.agent(agent["name"])
    )
    async with server.human() as human:
        refused(
            await human.post(f"/api/messages/{gone_id}/decide", json={"choice": "yes"}),
            400,
            "not a decision card",
        )
        # Nothing was resolved by the refusals.
        assert "resolved" not in ok(await human.get(f"/api/messages/{card_id}"))["metadata"]
    # An agent's token on the people-only route is refused.
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        r = await client.post(
            f"/api/messages/{card_id}/decide",
            json={"choice": "tabs"},
            headers={"Authorization": f"Bearer {agent['token']}"},
        )
        assert r.status_code in (401, 403), r.text
    assert await pending(server, agent["name"]) == []


async def test_a_card_in_a_job_thread_wakes_the_agent_with_the_job(server: RunningServer) -> None:
    agent = await register(server.url, "qwen", "dec-job")
    async with server.human() as human:
        job = ok(await human.post("/api/jobs", json={"title": "Pick a logger"}), 201)
    card_id = await ask(server, agent["token"], "Which logger?", ["structlog", "logging"], job_id=job["id"])
    async with server.human() as human:
        card = ok(await human.post(f"/api/messages/{card_id}/decide", json={"choice": "logging"}))
        assert card["job_id"] == job["id"] and card["metadata"]["chosen"] == "logging"
        thread = ok(await human.get(f"/api/jobs/{job['id']}/messages"))
        assert [m["metadata"].get("chosen") for m in thread if m["id"] == card_id] == ["logging"]
    (wake,) = await pending(server, agent["name"])
    assert wake.job_id == job["id"]
    assert f'in job #{job["id"]} "Pick a logger"' in wake.prompt
    assert f"chat_read(job_id={job['id']})" in wake.prompt
    async with mcp_client(server.url, agent["token"]) as client:
        read = await client.call_tool("chat_read", {"job_id": job["id"]})
    assert read.structured_content is not None
    (seen,) = [m for m in read.structured_content["messages"] if m["id"] == card_id]
    assert (seen["resolved"], seen["chosen"]) == (True, "logging")
