"""chat_jobs, and chat_send / chat_read with job_id, over the real MCP client against one real server.

The server is shared by the module: every test registers its own agents and makes its own jobs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from backchannel.mcp_tools import jobs as mcp_jobs
from tests.conftest import RunningServer, mcp_client, module_server, register, text_of

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "jobs") as running:
        yield running


async def new_job(server: RunningServer, title: str, **fields: Any) -> dict[str, Any]:
    async with server.human() as human:
        made = await human.post("/api/jobs", json={"title": title, **fields})
    assert made.status_code in (200, 201), made.text
    return made.json()


async def get_job(server: RunningServer, job_id: int) -> dict[str, Any]:
    async with server.human() as human:
        got = await human.get(f"/api/jobs/{job_id}")
    assert got.status_code == 200, got.text
    return got.json()


async def thread(server: RunningServer, job_id: int) -> list[dict[str, Any]]:
    async with server.human() as human:
        got = await human.get(f"/api/jobs/{job_id}/messages", params={"limit": 200})
    assert got.status_code == 200, got.text
    return got.json()


async def person_says(server: RunningServer, job_id: int, text: str) -> int:
    async with server.human() as human:
        posted = await human.post(f"/api/jobs/{job_id}/messages", json={"text": text})
    assert posted.status_code in (200, 201), posted.text
    return int(posted.json()["id"])


async def timeline(server: RunningServer, channel: str = "general") -> list[str]:
    async with server.human() as human:
        got = (await human.get(f"/api/channels/{channel}/messages", params={"limit": 200})).json()
    return [m["text"] for m in got["messages"]]


async def test_list_shows_the_board_and_filters_by_status(server: RunningServer) -> None:
    me = await register(server.url, "claude", "list-1")
    todo = await new_job(server, "List: write docs", body="the API page")
    active = await new_job(server, "List: fix CI", status="active")
    async with mcp_client(server.url, me["token"]) as client:
        everything = await client.call_tool("chat_jobs", {})
        listed = {j["id"]: j for j in json.loads(text_of(everything))}
        assert everything.structured_content is not None
        assert listed == {j["id"]: j for j in everything.structured_content["jobs"]}
        assert listed[todo["id"]] == {
            "id": todo["id"],
            "title": "List: write docs",
            "body": "the API page",
            "status": "todo",
            "channel": "general",
            "assignee": "",
            "created_by": todo["created_by"],
            "messages": 0,
        }
        # agentchattr's status names are accepted: "done" is our "active".
        done = await client.call_tool("chat_jobs", {"action": "list", "status": "done"})
        ids = [j["id"] for j in done.structured_content["jobs"]]
        assert active["id"] in ids and todo["id"] not in ids
        bad = await client.call_tool("chat_jobs", {"status": "someday"})
        assert bad.is_error and "one of todo, active, closed" in text_of(bad)
        wrong = await client.call_tool("chat_jobs", {"action": "delete", "job_id": todo["id"]})
        assert wrong.is_error and "'list' or 'update'" in text_of(wrong)


async def test_a_long_board_is_cut_and_says_so(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    me = await register(server.url, "claude", "long-1")
    for title in ("Long: one", "Long: two"):
        await new_job(server, title)
    monkeypatch.setattr(mcp_jobs, "LIST_MAX", 1)
    async with mcp_client(server.url, me["token"]) as client:
        cut = await client.call_tool("chat_jobs", {})
    assert len(cut.structured_content["jobs"]) == 1
    assert text_of(cut).endswith("more jobs not shown: pass status to list one group.)")


async def test_agent_takes_moves_and_closes_a_job_and_the_thread_records_it(server: RunningServer) -> None:
    me = await register(server.url, "codex", "move-1")
    job = await new_job(server, "Move: ship the board")
    async with mcp_client(server.url, me["token"]) as client:
        took = await client.call_tool(
            "chat_jobs", {"action": "update", "job_id": job["id"], "assignee": "me", "status": "active"}
        )
        assert not took.is_error, text_of(took)
        assert text_of(took) == f"Job #{job['id']} is active, assigned to {me['name']}."
        assert took.structured_content["job"]["assignee"] == me["name"]
        back = await client.call_tool(
            "chat_jobs", {"action": "update", "job_id": job["id"], "status": "open"}
        )
        assert back.structured_content["job"]["status"] == "todo"
        closed = await client.call_tool(
            "chat_jobs", {"action": "update", "job_id": job["id"], "status": "closed"}
        )
        assert closed.structured_content["job"]["status"] == "closed"
    stored = await get_job(server, job["id"])
    assert (stored["status"], stored["assignee"]) == ("closed", me["name"])
    records = [m["text"] for m in await thread(server, job["id"])]
    assert len(records) == 3 and all(me["name"] in r for r in records), records
    assert "closed" in records[-1]
    assert not any(f"#{job['id']}" in t and me["name"] in t for t in await timeline(server)), (
        "the moves are recorded in the job's thread, not the channel"
    )


async def test_agents_cannot_make_changes_that_are_for_people(server: RunningServer) -> None:
    me = await register(server.url, "claude", "refuse-1")
    other = await register(server.url, "gemini", "refuse-2")
    held = await new_job(server, "Refuse: held by gemini", assignee=other["name"])
    closed = await new_job(server, "Refuse: closed one")
    async with server.human() as human:
        assert (await human.patch(f"/api/jobs/{closed['id']}", json={"status": "closed"})).status_code == 200

    async with mcp_client(server.url, me["token"]) as client:

        async def refused(args: dict[str, Any], reason: str) -> None:
            result = await client.call_tool("chat_jobs", {"action": "update", **args})
            assert result.is_error and reason in text_of(result), (args, text_of(result))

        await refused({"job_id": held["id"], "assignee": "codex"}, 'only take a job itself (assignee="me")')
        await refused({"job_id": held["id"], "assignee": "me"}, f"assigned to {other['name']}")
        await refused({"job_id": closed["id"], "status": "active"}, "only a person can reopen it")
        await refused({"job_id": closed["id"], "assignee": "me"}, "only a person can reopen it")
        await refused({"job_id": held["id"]}, "update needs status")
        await refused({"job_id": held["id"], "status": "later"}, "one of todo, active, closed")
        await refused({}, "update needs job_id")
        await refused({"job_id": 987_654, "status": "closed"}, "job_id=987654: there is no job 987654")
    # Nothing changed, and nothing was recorded.
    assert (await get_job(server, held["id"]))["assignee"] == other["name"]
    assert (await get_job(server, closed["id"]))["status"] == "closed"
    assert await thread(server, held["id"]) == []


async def test_send_and_read_a_job_thread_with_its_own_cursor(server: RunningServer) -> None:
    me = await register(server.url, "claude", "thread-1")
    job = await new_job(server, "Thread: talk here", status="active")
    jid = job["id"]
    async with mcp_client(server.url, me["token"]) as client:
        await client.call_tool("chat_read", {})  # the channel cursor: nothing unread there from now on
        first = [await person_says(server, jid, f"t{i}") for i in range(5)]
        page = await client.call_tool("chat_read", {"job_id": jid, "limit": 3})
        assert [m["text"] for m in page.structured_content["messages"]] == ["t2", "t3", "t4"]
        assert all(m["job_id"] == jid for m in page.structured_content["messages"])
        assert page.structured_content["job_id"] == jid and page.structured_content["remaining"] == 0
        nothing = await client.call_tool("chat_read", {"job_id": jid})
        assert text_of(nothing).endswith(
            f"\n\nNo new messages in job #{jid}. Stop polling: wait for your next prompt."
        )

        sent = await client.call_tool(
            "chat_send", {"message": "on it", "job_id": jid, "reply_to": first[0], "sender": "ben"}
        )
        assert text_of(sent) == f"Sent (id={sent.structured_content['id']}) in job #{jid}"
        for i in range(3):
            await person_says(server, jid, f"u{i}")
        more = await client.call_tool("chat_read", {"job_id": jid, "limit": 2})
        assert [m["text"] for m in more.structured_content["messages"]] == ["u0", "u1"]
        assert f"(1 more unread in job #{jid}: call chat_read(job_id={jid}) again" in text_of(more)
        last = await client.call_tool("chat_read", {"job_id": jid})
        assert [m["text"] for m in last.structured_content["messages"]] == ["u2"]
        peek = await client.call_tool("chat_read", {"job_id": jid, "since_id": 0, "limit": 1})
        assert [m["text"] for m in peek.structured_content["messages"]] == ["t0"]

        # The channel cursor did not move, and the thread never shows in the channel.
        channel = await client.call_tool("chat_read", {})
        assert "Stop polling" in text_of(channel), text_of(channel)
        asked = await client.call_tool(
            "chat_send", {"message": "a or b?", "job_id": jid, "choices": ["a", "b"]}
        )
        assert not asked.is_error, text_of(asked)
    posted = await thread(server, jid)
    assert [m["text"] for m in posted] == ["t0", "t1", "t2", "t3", "t4", "on it", "u0", "u1", "u2", "a or b?"]
    reply, decision = posted[5], posted[-1]
    assert (reply["sender"], reply["reply_to"], reply["job_id"]) == (me["name"], first[0], jid)
    assert (decision["type"], decision["metadata"]["choices"]) == ("decision", ["a", "b"])
    assert not {"on it", "t0", "u2", "a or b?"} & set(await timeline(server))
    assert (await get_job(server, jid))["message_count"] == 10
