"""The life of a job, end to end: the real ``backchannel serve`` process, the real MCP SDK client for
the agents and REST for the person, with a ``kill -9`` and a restart in the middle.

One story, told in order: an agent proposes, a person accepts (once, though two accepts race), the
person and two agents talk in the job's thread with @mentions, a suggestion is accepted, the server
is killed and started again, jobs are reordered and moved by a person and by an agent, closed, and
deleted for good.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client

from tests.conftest import ServerProcess, mcp_client, register, text_of
from tests.e2e.test_routing import ack, triggers

pytestmark = pytest.mark.anyio

TITLE = "Add a jobs board"


async def wakeups(url: str, agent: dict[str, Any]) -> list[dict[str, Any]]:
    """The wake-ups an agent's wrapper would get now; acknowledged, so each is seen once."""
    async with triggers(url, agent) as stream:
        got = await stream.replay()
    for trigger in got:
        await ack(url, agent, trigger["id"])
    return got


class Sessions:
    """One real MCP session per agent and server process, opened on first use."""

    def __init__(self) -> None:
        self._stack = AsyncExitStack()
        self._clients: dict[tuple[str, str], Client] = {}

    async def call(self, url: str, agent: dict[str, Any], tool: str, **args: Any) -> Any:
        key = (url, agent["name"])
        if key not in self._clients:
            self._clients[key] = await self._stack.enter_async_context(mcp_client(url, agent["token"]))
        return await self._clients[key].call_tool(tool, args)

    async def ok(self, url: str, agent: dict[str, Any], tool: str, **args: Any) -> dict[str, Any]:
        result = await self.call(url, agent, tool, **args)
        assert not result.is_error and result.structured_content is not None, (tool, text_of(result))
        return result.structured_content

    async def close(self) -> None:
        await self._stack.aclose()
        self._clients.clear()


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["text"] for m in messages]


async def every_event(human: httpx.AsyncClient) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = (await human.get("/api/events", params={"since": found[-1]["seq"] if found else 0})).json()
        if not page["events"]:
            return found
        found += page["events"]


async def test_the_life_of_a_job(server_process: Callable[..., ServerProcess]) -> None:
    proc = server_process()
    url = proc.url
    mcp = Sessions()
    try:
        claude = await register(url, "claude", "life-claude")
        codex = await register(url, "codex", "life-codex")
        async with proc.human() as human:
            me = (await human.get("/api/me")).json()["name"]

        # 1. claude proposes: a card in the timeline, no job yet.
        card_id = (await mcp.ok(url, claude, "chat_propose_job", title=TITLE, body="To do, Active, Closed"))[
            "message_id"
        ]

        # 2. Two accepts race: one job, the card decided once, the proposer woken with the job id.
        accept = {
            "title": TITLE,
            "body": "To do, Active, Closed",
            "channel": "general",
            "anchor_msg_id": card_id,
        }
        answers: list[httpx.Response] = []

        async def accept_once() -> None:
            async with proc.human() as human:
                answers.append(await human.post("/api/jobs", json=accept))

        async with anyio.create_task_group() as tg:
            tg.start_soon(accept_once)
            tg.start_soon(accept_once)
        assert sorted(a.status_code for a in answers)[1] == 409, [a.text for a in answers]
        job = next(a.json() for a in answers if a.status_code != 409)
        jid = job["id"]
        assert (job["status"], job["anchor_msg_id"], job["title"]) == ("active", card_id, TITLE)
        async with proc.human() as human:
            assert [j["id"] for j in (await human.get("/api/jobs")).json()] == [jid]
            timeline = (await human.get("/api/channels/general/messages")).json()["messages"]
        card = next(m for m in timeline if m["id"] == card_id)
        decided = card["metadata"]
        assert (decided["status"], decided["job_id"], decided.get("decided_by")) == ("accepted", jid, me)
        created = [m for m in timeline if m["type"] == "job_created"]
        assert [(m["text"], m["metadata"]["job_id"], m["job_id"]) for m in created] == [
            (f"Job #{jid} created: {TITLE}", jid, None)
        ]
        (woken,) = await wakeups(url, claude)
        assert woken["job_id"] == jid and f"chat_read(job_id={jid})" in woken["prompt"]
        assert await wakeups(url, codex) == []

        # 3. Thread talk: a person mentions both agents; each wake-up names the job.
        async with proc.human() as human:
            asked = await human.post(
                f"/api/jobs/{jid}/messages", json={"text": "@claude @codex split this up"}
            )
            assert asked.status_code in (200, 201), asked.text
        for agent in (claude, codex):
            (wake,) = await wakeups(url, agent)
            assert wake["job_id"] == jid and f'job #{jid} "{TITLE}"' in wake["prompt"], wake
            assert f"chat_read(job_id={jid})" in wake["prompt"]
        read = await mcp.ok(url, claude, "chat_read", job_id=jid)
        assert texts(read["messages"]) == ["@claude @codex split this up"] and read["remaining"] == 0
        await mcp.ok(url, claude, "chat_send", job_id=jid, message="@codex you take the UI, I do the API")
        (wake,) = await wakeups(url, codex)  # an agent's mention in the thread routes with the job too
        assert wake["job_id"] == jid and wake["from"] == claude["name"]
        read = await mcp.ok(url, codex, "chat_read", job_id=jid)
        assert texts(read["messages"]) == [
            "@claude @codex split this up",
            "@codex you take the UI, I do the API",
        ]
        await mcp.ok(url, codex, "chat_send", job_id=jid, message="on it")
        async with proc.human() as human:
            for i in range(3):
                await human.post(f"/api/jobs/{jid}/messages", json={"text": f"note {i}"})
        page = await mcp.ok(url, claude, "chat_read", job_id=jid, limit=2)
        assert texts(page["messages"]) == ["on it", "note 0"] and page["remaining"] == 2
        page = await mcp.ok(url, claude, "chat_read", job_id=jid, limit=2)
        assert texts(page["messages"]) == ["note 1", "note 2"] and page["remaining"] == 0
        # The thread is not the channel: claude's channel read sees only the cards.
        channel = await mcp.ok(url, claude, "chat_read")
        assert {m["type"] for m in channel["messages"]} <= {"job_proposal", "job_created", "join"}

        # 4. codex suggests; a person accepts the suggestion, once; codex is woken.
        sid = (
            await mcp.ok(
                url, codex, "chat_send", job_id=jid, message="[suggestion] Drag cards between groups"
            )
        )["id"]
        async with proc.human() as human:
            thread = (await human.get(f"/api/jobs/{jid}/messages")).json()
            suggestion = next(m for m in thread if m["id"] == sid)
            assert (suggestion["type"], suggestion["metadata"]) == ("suggestion", {"resolution": None})
            resolve = f"/api/jobs/{jid}/messages/{sid}/resolve"
            assert (await human.post(resolve, json={"resolution": "accepted"})).status_code == 200
            assert (await human.post(resolve, json={"resolution": "dismissed"})).status_code == 409
        (wake,) = await wakeups(url, codex)
        assert wake["job_id"] == jid and "accepted your suggestion" in wake["prompt"]
        await mcp.ok(url, codex, "chat_read", job_id=jid)  # codex is up to date in the thread

        # 5. kill -9 and start again: every job, card, thread message and read position is still there.
        async with proc.human() as human:
            before = {
                "jobs": (await human.get("/api/jobs")).json(),
                "thread": (await human.get(f"/api/jobs/{jid}/messages")).json(),
                "card": (await human.get(f"/api/messages/{card_id}")).json(),
            }
        await mcp.close()
        proc.kill()
        proc = server_process()
        url = proc.url
        async with proc.human() as human:
            after = {
                "jobs": (await human.get("/api/jobs")).json(),
                "thread": (await human.get(f"/api/jobs/{jid}/messages")).json(),
                "card": (await human.get(f"/api/messages/{card_id}")).json(),
            }
        assert after == before
        assert (next(m for m in after["thread"] if m["id"] == sid)["metadata"]["resolution"]) == "accepted"
        # The read positions survived: claude gets only what it had not read, codex (up to date) nothing.
        unread = await mcp.ok(url, claude, "chat_read", job_id=jid)
        assert [m["id"] for m in unread["messages"]] == [sid] and unread["remaining"] == 0
        for agent in (claude, codex):
            quiet = await mcp.call(url, agent, "chat_read", job_id=jid)
            assert f"\n\nNo new messages in job #{jid}." in text_of(quiet), text_of(quiet)
            assert await wakeups(url, agent) == []

        # 6. More jobs, reordered; moved by a person and by an agent (the agent's move is in the thread).
        async with proc.human() as human:
            first = (await human.post("/api/jobs", json={"title": "Write the docs"})).json()
            second = (await human.post("/api/jobs", json={"title": "Bench 1,000 jobs"})).json()
            assert (first["status"], second["status"]) == ("todo", "todo")
            order = {"status": "todo", "ordered_ids": [second["id"], first["id"]]}
            assert (await human.post("/api/jobs/reorder", json=order)).status_code == 200
            todo = (await human.get("/api/jobs", params={"status": "todo"})).json()
            assert [j["id"] for j in todo] == [second["id"], first["id"]]
            moved = await human.patch(f"/api/jobs/{first['id']}", json={"status": "active"})
            assert moved.json()["status"] == "active"
        took = await mcp.ok(
            url, codex, "chat_jobs", action="update", job_id=first["id"], assignee="me", status="todo"
        )
        assert (took["job"]["status"], took["job"]["assignee"]) == ("todo", codex["name"])
        listed = await mcp.ok(url, claude, "chat_jobs", status="todo")
        assert [j["id"] for j in listed["jobs"]] == [second["id"], first["id"]]  # moved to the end of todo
        async with proc.human() as human:
            record = texts((await human.get(f"/api/jobs/{first['id']}/messages")).json())
        assert record[1:] == [f"{codex['name']} took job #{first['id']} and moved it to todo"]
        assert record[0].endswith(" moved it to active")  # people's changes are recorded too

        # 7. Closed by a person; an agent cannot reopen it.
        async with proc.human() as human:
            closed = await human.delete(f"/api/jobs/{jid}")
            assert closed.status_code == 200 and closed.json()["status"] == "closed", closed.text
        reopen = await mcp.call(url, claude, "chat_jobs", action="update", job_id=jid, status="active")
        assert reopen.is_error and "only a person can reopen it" in text_of(reopen)

        # 8. Deleted for good: the thread is gone from REST, from chat_read and from the event log.
        def of_thread(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [e for e in events if (e.get("message") or {}).get("job_id") == jid]

        async with proc.human() as human:
            assert len(of_thread(await every_event(human))) >= len(before["thread"])  # logged, kept
            gone = await human.delete(f"/api/jobs/{jid}", params={"permanent": "true"})
            assert gone.status_code in (200, 204), gone.text
            assert (await human.get(f"/api/jobs/{jid}")).status_code == 404
            assert (await human.get(f"/api/jobs/{jid}/messages")).status_code == 404
            assert jid not in [j["id"] for j in (await human.get("/api/jobs")).json()]
            events = await every_event(human)
        assert of_thread(events) == [], "a deleted thread leaves no copy in the event log"
        assert [e["action"] for e in events if (e.get("job") or {}).get("id") == jid][-1] == "deleted"

        # 9. A job_id that names no job (any more) is a clear error, and nothing lands in the channel.
        for tool, args in (("chat_read", {}), ("chat_send", {"message": "still there?"})):
            refused = await mcp.call(url, claude, tool, job_id=jid, **args)
            assert refused.is_error and f"there is no job {jid}" in text_of(refused), text_of(refused)
        async with proc.human() as human:
            timeline = (await human.get("/api/channels/general/messages")).json()["messages"]
        assert "still there?" not in texts(timeline)
    finally:
        await mcp.close()
