"""Every chat tool against the real server over the real MCP client (streamable HTTP and SSE)."""

from __future__ import annotations

import json

import pytest

from backchannel.errors import STALE_TOKEN_TEXT
from tests.conftest import RunningServer, mcp_client, register, text_of
from tests.e2e.test_routing import triggers

pytestmark = pytest.mark.anyio


async def human_post(server: RunningServer, text: str, channel: str = "general", sender: str = "ben") -> int:
    async with server.human() as human:
        response = await human.post(
            f"/api/channels/{channel}/messages", json={"text": text, "sender": sender}
        )
        assert response.status_code == 201, response.text
        return int(response.json()["id"])


async def messages(server: RunningServer, channel: str = "general") -> list[dict]:
    async with server.human() as human:
        got = (await human.get(f"/api/channels/{channel}/messages", params={"limit": 200})).json()
    return [m for m in got["messages"] if m["type"] not in ("join", "leave")]


@pytest.mark.parametrize("transport", ["http", "sse"])
@pytest.mark.parametrize("header", ["authorization", "x-agent-token"])
async def test_sender_argument_cannot_impersonate(server: RunningServer, transport: str, header: str) -> None:
    me = await register(server.url, "codex", "c-1")
    await register(server.url, "claude", "k-1")
    async with mcp_client(server.url, me["token"], transport=transport, header=header) as client:
        result = await client.call_tool("chat_send", {"message": "I am codex", "sender": "claude"})
    assert not result.is_error, text_of(result)
    assert [(m["sender"], m["kind"]) for m in await messages(server)] == [("codex", "agent")]


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_without_or_with_a_stale_token_tools_refuse(server: RunningServer, transport: str) -> None:
    async with mcp_client(server.url, None, transport=transport) as client:
        result = await client.call_tool("chat_send", {"message": "hi", "sender": "claude"})
        assert result.is_error and text_of(result) == STALE_TOKEN_TEXT
    async with mcp_client(server.url, "not-a-real-token", transport=transport) as client:
        result = await client.call_tool("chat_read", {})
        assert result.is_error and text_of(result) == STALE_TOKEN_TEXT
    assert await messages(server) == []


async def test_cursor_first_read_recent_then_only_new_oldest_first(server: RunningServer) -> None:
    for i in range(5):
        await human_post(server, f"old {i}")
    me = await register(server.url)
    async with mcp_client(server.url, me["token"]) as client:
        first = json.loads(text_of(await client.call_tool("chat_read", {"limit": 3})))
        assert [m["text"] for m in first] == ["old 2", "old 3", "old 4"]
        empty = await client.call_tool("chat_read", {})
        assert "Stop polling" in text_of(empty)
        for i in range(7):
            await human_post(server, f"new {i}")
        page = await client.call_tool("chat_read", {"limit": 4})
        assert [m["text"] for m in page.structured_content["messages"]] == [f"new {i}" for i in range(4)]
        assert page.structured_content["remaining"] == 3 and "3 more unread" in text_of(page)
        rest = await client.call_tool("chat_read", {"limit": 4})
        assert [m["text"] for m in rest.structured_content["messages"]] == ["new 4", "new 5", "new 6"]


async def test_sending_never_skips_unread_messages(server: RunningServer) -> None:
    me = await register(server.url)
    async with mcp_client(server.url, me["token"]) as client:
        await client.call_tool("chat_read", {})
        await human_post(server, "unread question")
        await client.call_tool("chat_send", {"message": "my reply"})
        got = await client.call_tool("chat_read", {})
        assert [m["text"] for m in got.structured_content["messages"]] == ["unread question", "my reply"]
        # Nothing unread before sending: the agent's own message does not come back.
        await client.call_tool("chat_send", {"message": "another"})
        assert "Stop polling" in text_of(await client.call_tool("chat_read", {}))


async def test_since_id_zero_is_honoured_and_limit_is_bounded(server: RunningServer) -> None:
    for i in range(3):
        await human_post(server, f"m{i}")
    me = await register(server.url)
    async with mcp_client(server.url, me["token"]) as client:
        everything = await client.call_tool("chat_read", {"since_id": 0, "limit": 10_000})
        assert [m["text"] for m in everything.structured_content["messages"]] == ["m0", "m1", "m2"]
        bad = await client.call_tool("chat_read", {"limit": 0})
        assert bad.is_error and "limit" in text_of(bad)


async def test_send_without_channel_goes_where_the_agent_last_read(server: RunningServer) -> None:
    async with server.human() as human:
        await human.post("/api/channels", json={"name": "ops"})
    me = await register(server.url)
    async with mcp_client(server.url, me["token"]) as client:
        await client.call_tool("chat_read", {"channel": "ops"})
        await client.call_tool("chat_send", {"message": "in ops"})
    assert [m["text"] for m in await messages(server, "ops")] == ["in ops"]


async def test_reply_choices_and_resync(server: RunningServer) -> None:
    question = await human_post(server, "tabs or spaces?")
    me = await register(server.url)
    async with mcp_client(server.url, me["token"]) as client:
        sent = await client.call_tool(
            "chat_send", {"message": "pick one", "reply_to": question, "choices": ["tabs", "spaces"]}
        )
        assert not sent.is_error
        bad = await client.call_tool("chat_send", {"message": "x", "reply_to": 999_999})
        assert bad.is_error and "reply_to" in text_of(bad)
        synced = await client.call_tool("chat_resync", {"limit": 1})
        (latest,) = synced.structured_content["messages"]
        assert latest["reply_to"] == question and latest["choices"] == ["tabs", "spaces"]
        assert latest["type"] == "decision"
        assert "Stop polling" in text_of(await client.call_tool("chat_read", {}))


async def test_join_who_and_channels(server: RunningServer) -> None:
    me = await register(server.url)
    await register(server.url, "codex", "c-1")
    async with mcp_client(server.url, me["token"]) as client:
        joined = text_of(await client.call_tool("chat_join", {"channel": "review"}))
        assert joined.startswith("Joined #review.") and "claude" in joined and "codex" in joined
        assert text_of(await client.call_tool("chat_who", {})) == "Online: claude, codex"
        channels = await client.call_tool("chat_channels", {})
        assert json.loads(text_of(channels)) == ["general", "review"]
        assert channels.structured_content == {"channels": ["general", "review"]}
        bad = await client.call_tool("chat_join", {"channel": "../etc"})
        assert bad.is_error and "invalid channel name" in text_of(bad)
        await client.call_tool("chat_send", {"message": "joined here"})
    assert [m["text"] for m in await messages(server, "review")] == ["joined here"]


async def test_rules_summary_and_job_proposals(server: RunningServer) -> None:
    me = await register(server.url)
    async with mcp_client(server.url, me["token"]) as client:
        assert text_of(await client.call_tool("chat_rules", {})) == "No active rules."
        proposed = await client.call_tool("chat_rules", {"action": "propose", "rule": "Run tests first"})
        assert "Rule proposed" in text_of(proposed)
        rule_id = proposed.structured_content["id"]
        async with server.human() as human:
            decided = await human.post(f"/api/rules/{rule_id}/decide", json={"decision": "activate"})
            assert decided.status_code == 200, decided.text
        listed = await client.call_tool("chat_decision", {"action": "list"})
        assert listed.structured_content["rules"][0]["rule"] == "Run tests first"
        too_long = await client.call_tool("chat_summary", {"action": "write", "text": "x" * 1001})
        assert too_long.is_error
        await client.call_tool("chat_summary", {"action": "write", "text": "We ship on Friday."})
        assert text_of(await client.call_tool("chat_summary", {})) == "We ship on Friday."
        job = await client.call_tool("chat_propose_job", {"title": "Fix flaky test", "body": "tests/e2e"})
        assert "Job proposed" in text_of(job)
        too_long = await client.call_tool("chat_propose_job", {"title": "x" * 121})
        assert too_long.is_error and "title is 121 characters; the limit is 120" in text_of(too_long)
        assert not (await client.call_tool("chat_propose_job", {"title": "x" * 120})).is_error
    kinds = [m["type"] for m in await messages(server)]
    assert kinds == ["rule_proposal", "summary", "job_proposal", "job_proposal"]
    card = (await messages(server))[2]
    assert card["id"] == job.structured_content["message_id"]
    assert (card["sender"], card["text"]) == ("claude", "Job proposal: Fix flaky test\n\ntests/e2e")
    assert isinstance(card["metadata"].pop("proposer_id"), int)  # the agent's identity, not its name
    assert card["metadata"] == {"title": "Fix flaky test", "body": "tests/e2e", "status": "proposed"}
    async with server.human() as human:
        assert (await human.get("/api/jobs")).json() == [], "a proposal is a card, not a job"


async def test_image_path_attaches_an_image_and_refuses_other_files(server: RunningServer, tmp_path) -> None:
    png = tmp_path / "shot.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    me = await register(server.url)
    async with mcp_client(server.url, me["token"]) as client:
        assert not (await client.call_tool("chat_send", {"message": "see", "image_path": str(png)})).is_error
        refused = await client.call_tool("chat_send", {"message": "steal", "image_path": str(secret)})
        assert refused.is_error and "only PNG" in text_of(refused)
    (msg,) = await messages(server)
    async with server.human() as human:
        image = await human.get(msg["attachments"][0]["url"])
    assert image.status_code == 200 and image.content == png.read_bytes()
    assert "sandbox" in image.headers["content-security-policy"]


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_every_tool_answers_over_both_transports(server: RunningServer, transport: str) -> None:
    me = await register(server.url)
    calls = {
        "chat_send": {"message": "hi"},
        "chat_read": {},
        "chat_resync": {"limit": 5},
        "chat_join": {"channel": "general"},
        "chat_who": {},
        "chat_channels": {},
        "chat_rules": {"action": "list"},
        "chat_decision": {"action": "list"},
        "chat_set_hat": {"svg": '<svg viewBox="0 0 4 4"><rect width="4" height="2" fill="#f00"/></svg>'},
        "chat_claim": {},
        "chat_summary": {"action": "read"},
        "chat_propose_job": {"title": "Write docs"},
        "chat_jobs": {"action": "list"},
        "chat_schedule": {"action": "list"},
        "chat_image": {},  # no image in the channel yet: says so, not an error
    }
    async with mcp_client(server.url, me["token"], transport=transport) as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}
        assert listed == set(calls)
        for name, args in calls.items():
            result = await client.call_tool(name, args)
            assert not result.is_error, (name, text_of(result))


async def test_job_is_decided_once_and_wakes_its_proposer_by_current_name(server: RunningServer) -> None:
    me = await register(server.url)
    async with mcp_client(server.url, me["token"]) as client:
        refused = await client.call_tool("chat_propose_job", {"title": "Nowhere", "channel": "nope"})
        assert refused.is_error and "no channel" in text_of(refused)
        proposed = await client.call_tool("chat_propose_job", {"title": "Fix the flaky test"})
        await client.call_tool("chat_claim", {"name": "fixer"})
    card_id = proposed.structured_content["message_id"]
    accept = {"title": "Fix the flaky test", "channel": "general", "anchor_msg_id": card_id}
    async with server.human() as human:
        accepted = await human.post("/api/jobs", json=accept)
        assert accepted.status_code in (200, 201), accepted.text
        job = accepted.json()
        assert (job["status"], job["anchor_msg_id"]) == ("active", card_id)
        again = await human.post("/api/jobs", json=accept)
        assert again.status_code == 409, again.text
        assert [j["id"] for j in (await human.get("/api/jobs")).json()] == [job["id"]]
    card = next(m for m in await messages(server) if m["id"] == card_id)
    assert (card["metadata"]["status"], card["metadata"]["job_id"]) == ("accepted", job["id"])
    async with triggers(server.url, {**me, "name": "fixer"}) as stream:
        (wake,) = await stream.replay()
    assert wake["job_id"] == job["id"] and f"#{job['id']}" in wake["prompt"]


async def test_since_id_past_unread_messages_does_not_skip_them(server: RunningServer) -> None:
    me = await register(server.url)
    async with mcp_client(server.url, me["token"]) as client:
        await client.call_tool("chat_read", {})
        ids = [await human_post(server, f"u{i}") for i in range(4)]
        peek = await client.call_tool("chat_read", {"since_id": ids[2]})
        assert [m["text"] for m in peek.structured_content["messages"]] == ["u3"]
        unread = await client.call_tool("chat_read", {})
        assert [m["text"] for m in unread.structured_content["messages"]] == ["u0", "u1", "u2", "u3"]


async def drain(client) -> list[str]:  # noqa: ANN001 - the MCP SDK client
    """Texts the following plain reads return until nothing is left (bounded)."""
    got: list[str] = []
    for _ in range(10):
        page = await client.call_tool("chat_read", {"limit": 2})
        got += [m["text"] for m in page.structured_content["messages"]]
        if not page.structured_content["remaining"]:
            break
    return got


async def test_remaining_count_is_what_the_following_reads_return(server: RunningServer) -> None:
    """Issue 8 item 2: "N more unread" after a since_id read behind or ahead of the cursor."""
    me = await register(server.url)
    async with mcp_client(server.url, me["token"]) as client:
        first = [await human_post(server, f"a{i}") for i in range(5)]
        await client.call_tool("chat_read", {})  # cursor at a4: nothing unread
        behind = await client.call_tool("chat_read", {"since_id": 0, "limit": 2})
        assert [m["text"] for m in behind.structured_content["messages"]] == ["a0", "a1"]
        assert behind.structured_content["remaining"] == 0 and "unread" not in text_of(behind)
        assert "Stop polling" in text_of(await client.call_tool("chat_read", {}))

        for i in range(5):
            await human_post(server, f"b{i}")
        peek = await client.call_tool("chat_read", {"since_id": first[-1], "limit": 2})  # b0, b1
        assert peek.structured_content["remaining"] == 3 and "3 unread in #general" in text_of(peek)
        assert await drain(client) == ["b2", "b3", "b4"]

        ids = [await human_post(server, f"c{i}") for i in range(3)]
        ahead = await client.call_tool("chat_read", {"since_id": ids[-1]})  # past every unread message
        assert ahead.structured_content["messages"] == []
        assert ahead.structured_content["remaining"] == 3 and "Stop polling" not in text_of(ahead)
        assert await drain(client) == ["c0", "c1", "c2"]


@pytest.mark.parametrize("tool", ["chat_send", "chat_read"])
async def test_job_id_is_a_clear_error_never_the_channel(server: RunningServer, tool: str) -> None:
    """Issue 8 item 3 / issue 9: a job_id that names no job is refused; nothing is posted or read."""
    me = await register(server.url)
    await human_post(server, "in the channel")
    async with mcp_client(server.url, me["token"]) as client:
        proposed = await client.call_tool("chat_propose_job", {"title": "Only a proposal"})
        card_id = proposed.structured_content["message_id"]
        args = {"message": "for the job"} if tool == "chat_send" else {}
        action = "post in" if tool == "chat_send" else "read"
        for job_id in (4242, -1, card_id):  # a proposal card's id is not a job id
            unknown = await client.call_tool(tool, {**args, "job_id": job_id})
            assert unknown.is_error and text_of(unknown) == (
                f"job_id={job_id}: there is no job {job_id}. Call chat_jobs() to list the jobs,"
                f" or leave job_id out to {action} #general."
            )
        # Nothing was posted, and the refused reads did not move the cursor.
        assert "for the job" not in [m["text"] for m in await messages(server)]
        read = await client.call_tool("chat_read", {})
        assert "in the channel" in [m["text"] for m in read.structured_content["messages"]]


async def test_agents_see_an_edit_and_a_delete_of_a_message_they_read_before(server: RunningServer) -> None:
    """Reads reuse a message's agent shape while it is unchanged; a change is seen at once."""
    edited = await human_post(server, "the plan: ship friday")
    gone = await human_post(server, "a secret pasted by mistake")
    readers = [await register(server.url, "codex"), await register(server.url, "claude")]
    for reader in readers:
        async with mcp_client(server.url, reader["token"]) as client:
            assert "ship friday" in text_of(await client.call_tool("chat_resync", {"limit": 5}))
    async with server.human() as human:
        assert (
            await human.patch(f"/api/messages/{edited}", json={"text": "the plan: ship monday"})
        ).is_success
        assert (await human.delete(f"/api/messages/{gone}")).is_success
    for reader in readers:
        async with mcp_client(server.url, reader["token"]) as client:
            synced = await client.call_tool("chat_resync", {"limit": 5})
            assert synced.structured_content is not None
            shapes = {m["id"]: m for m in synced.structured_content["messages"]}
            assert shapes[edited]["text"] == "the plan: ship monday" and shapes[edited]["edited"] is True
            assert shapes[gone]["text"] == "(deleted)"
            assert "secret" not in text_of(synced)
