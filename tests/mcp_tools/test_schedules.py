"""chat_schedule over a real MCP client (issue 11): an agent sets a reminder for itself that the
server's engine fires and that wakes it, lists schedules, deletes its own and not another's."""

from __future__ import annotations

import time
from collections.abc import Iterator

import anyio
import pytest

from backchannel.scheduler import Scheduler
from tests.conftest import RunningServer, mcp_client, module_server, ok, pending, register, text_of

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "mcp-schedules") as running:
        yield running


async def test_an_agent_sets_a_reminder_for_itself_and_is_woken(server: RunningServer) -> None:
    agent = await register(server.url, "claude", "reminder")
    name = agent["name"]
    async with mcp_client(server.url, agent["token"]) as client:
        made = await client.call_tool(
            "chat_schedule", {"action": "create", "prompt": "check CI", "spec": "every 10m"}
        )
        assert not made.is_error, text_of(made)
        schedule = made.structured_content["schedule"]
        assert (schedule["targets"], schedule["created_by"], schedule["channel"], schedule["mine"]) == (
            [name],
            name,
            "general",
            True,
        )
        assert f"Schedule #{schedule['id']} set in #general (every 10 minutes)" in text_of(made)
        soon = await client.call_tool(
            "chat_schedule", {"action": "create", "prompt": "look again", "send_at": "in 10 minutes"}
        )
        assert not soon.is_error and soon.structured_content["schedule"]["one_shot"] is True, text_of(soon)
        listed = await client.call_tool("chat_schedule", {"action": "list"})
        assert not listed.is_error and "check CI" in text_of(listed)
        assert [s["id"] for s in listed.structured_content["schedules"]] == [
            schedule["id"],
            soon.structured_content["schedule"]["id"],
        ]
    # Ten minutes pass on the served engine's clock: the reminder fires as the agent and wakes it.
    engine: Scheduler = server.app.state.services.scheduler
    engine.clock = lambda: time.time() + 601
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not await pending(server, name):
            await anyio.sleep(0.05)
    finally:
        engine.clock = time.time
    [wake] = await pending(server, name)  # both came due: one wake-up carries both messages
    assert f"Schedule #{schedule['id']} set by {name} fired in #general" in wake.prompt
    async with server.human() as human:
        message = ok(await human.get(f"/api/messages/{wake.message_id}"))
        assert (message["sender"], message["kind"], message["text"]) == (name, "agent", f"@{name} check CI")
        for made in ok(await human.get("/api/schedules")):
            assert (await human.delete(f"/api/schedules/{made['id']}")).status_code == 204


async def test_delete_own_only_and_bad_input(server: RunningServer) -> None:
    owner = await register(server.url, "codex", "owner")
    other = await register(server.url, "gemini", "other")
    async with server.human() as human:
        ok(await human.post("/api/channels", json={"name": "ci"}), 201)
        persons = ok(
            await human.post(
                "/api/schedules", json={"prompt": "people's", "targets": [owner["name"]], "spec": "every 1h"}
            ),
            201,
        )
    async with (
        mcp_client(server.url, owner["token"]) as mine,
        mcp_client(server.url, other["token"]) as theirs,
    ):
        made = await mine.call_tool(
            "chat_schedule",
            {
                "action": "create",
                "prompt": "ask for a review",
                "targets": [other["name"], owner["name"]],
                "channel": "ci",
                "send_at": "2030-01-01T09:00:00+01:00",
            },
        )
        assert not made.is_error, text_of(made)
        sid = made.structured_content["schedule"]["id"]
        assert made.structured_content["schedule"]["one_shot"] is True
        listed = await theirs.call_tool("chat_schedule", {"action": "list", "channel": "ci"})
        assert [(s["id"], s["mine"]) for s in listed.structured_content["schedules"]] == [(sid, False)]
        for target in (sid, persons["id"]):
            refused = await theirs.call_tool("chat_schedule", {"action": "delete", "schedule_id": target})
            assert refused.is_error and "an agent may delete only schedules it created" in text_of(refused)
        bad = {
            "accepted forms: 'every N minutes|hours|days'": {
                "action": "create",
                "prompt": "x",
                "spec": "soon",
            },
            "spec is required unless send_at is given": {"action": "create", "prompt": "x"},
            "prompt is empty": {"action": "create", "prompt": "", "spec": "every 1h"},
            "no agent named @nobody": {
                "action": "create",
                "prompt": "x",
                "spec": "every 1h",
                "targets": ["nobody"],
            },
            "no channel #nowhere": {
                "action": "create",
                "prompt": "x",
                "spec": "every 1h",
                "channel": "nowhere",
            },
            "schedule_id is required": {"action": "delete"},
            "no schedule 999999": {"action": "delete", "schedule_id": 999999},
            "action must be 'list', 'create' or 'delete'": {"action": "pause"},
        }
        for words, args in bad.items():
            result = await mine.call_tool("chat_schedule", args)
            assert result.is_error and words in text_of(result), (args, text_of(result))
        gone = await mine.call_tool("chat_schedule", {"action": "delete", "schedule_id": sid})
        assert not gone.is_error and f"Schedule #{sid} deleted" in text_of(gone)
    async with server.human() as human:
        left = ok(await human.get("/api/schedules"))
        assert [s["id"] for s in left] == [persons["id"]]
        assert (await human.delete(f"/api/schedules/{persons['id']}")).status_code == 204
