"""The jobs board over real REST (and the real MCP client where an agent acts), against one server.

The server is shared by the module: every test makes its own jobs, channels and agents, and
checks only those. Wake-ups are read from the server's own store (what the wrapper would stream).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from backchannel.config import Settings
from tests.conftest import RunningServer, mcp_client, module_server, ok, pending, refused, register, text_of

pytestmark = pytest.mark.anyio
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "jobs-core", loop_guard_hops=2) as running:
        yield running


async def last_seq(human: httpx.AsyncClient) -> int:
    return ok(await human.get("/api/events", params={"since": 0, "limit": 1}))["last_seq"]


async def events_since(human: httpx.AsyncClient, seq: int) -> list[dict[str, Any]]:
    return ok(await human.get("/api/events", params={"since": seq}))["events"]


async def timeline(human: httpx.AsyncClient, channel: str = "general") -> list[dict[str, Any]]:
    return ok(await human.get(f"/api/channels/{channel}/messages", params={"limit": 200}))["messages"]


async def propose(server: RunningServer, token: str, title: str, channel: str = "general") -> int:
    async with mcp_client(server.url, token) as client:
        made = await client.call_tool("chat_propose_job", {"title": title, "body": "why", "channel": channel})
    assert not made.is_error, text_of(made)
    return int(made.structured_content["message_id"])


async def test_board_create_update_reorder_aliases_limits_and_events(server: RunningServer) -> None:
    async with server.human() as human:
        ok(await human.post("/api/channels", json={"name": "board"}), 201)
        since = await last_seq(human)
        a, b, c = [
            ok(await human.post("/api/jobs", json={"title": t, "channel": "board"}), 201) for t in "abc"
        ]
        me = ok(await human.get("/api/me"))["name"]
        assert (a["status"], a["created_by"], a["channel"], a["message_count"]) == ("todo", me, "board", 0)
        assert set(a) == {
            "id", "uid", "title", "body", "status", "channel", "created_by", "assignee",
            "anchor_msg_id", "sort_order", "message_count", "last_message_id", "paused",
            "created_at", "updated_at",
        }  # fmt: skip
        assert (a["last_message_id"], a["paused"]) == (0, False)
        assert ok(await human.get("/api/limits")) == {
            "max_message_chars": 16000, "job_title_max": 120, "job_body_max": 1000, "read_limit_max": 200,
        }  # fmt: skip
        assert a["sort_order"] < b["sort_order"] < c["sort_order"]
        cards = [m for m in await timeline(human, "board") if m["type"] == "job_created"]
        assert [(m["metadata"], m["text"]) for m in cards] == [
            ({"job_id": j["id"]}, f"Job #{j['id']} created: {j['title']}") for j in (a, b, c)
        ]
        # Aliases on input; a new status puts the job at the end of its group.
        moved = ok(await human.patch(f"/api/jobs/{a['id']}", json={"status": "done", "assignee": "ben"}))
        assert (moved["status"], moved["assignee"]) == ("active", "ben")
        ok(await human.patch(f"/api/jobs/{b['id']}", json={"status": "active"}))
        board = ok(await human.get("/api/jobs", params={"channel": "board"}))
        assert [(j["title"], j["status"]) for j in board] == [("c", "todo"), ("a", "active"), ("b", "active")]
        assert [
            j["title"]
            for j in ok(await human.get("/api/jobs", params={"status": "done", "channel": "board"}))
        ] == [
            "a",
            "b",
        ]
        # Reorder: the listed ones first, the rest of the status keep their order after them.
        ordered = ok(
            await human.post("/api/jobs/reorder", json={"status": "active", "ordered_ids": [b["id"]]})
        )
        assert [j["title"] for j in ordered if j["channel"] == "board"] == ["b", "a"]
        # Reorder moves a listed job of another status into this one, at its place, said in its thread.
        ordered = ok(
            await human.post("/api/jobs/reorder", json={"status": "todo", "ordered_ids": [a["id"], c["id"]]})
        )
        assert [(j["title"], j["status"]) for j in ordered if j["channel"] == "board"] == [
            ("a", "todo"),
            ("c", "todo"),
        ]
        lines = [m["text"] for m in ok(await human.get(f"/api/jobs/{a['id']}/messages"))]
        assert lines == [
            f"{me} assigned job #{a['id']} to ben and moved it to active",
            f"{me} moved it to todo",
        ]
        refused(
            await human.post("/api/jobs/reorder", json={"status": "todo", "ordered_ids": [999999]}),
            400,
            "no job 999999",
        )
        refused(
            await human.post("/api/jobs/reorder", json={"status": "active", "ordered_ids": [b["id"]] * 2}),
            400,
            "twice",
        )
        archived = ok(await human.patch(f"/api/jobs/{c['id']}", json={"status": "archived", "title": "c2"}))
        assert (archived["status"], archived["title"]) == ("closed", "c2")
        assert ok(await human.patch(f"/api/jobs/{c['id']}", json={})) == archived  # nothing to change
        # Limits and bad input: clear 4xx errors, nothing written.
        refused(await human.post("/api/jobs", json={"title": "x" * 121}), 400, "limit is 120")
        refused(await human.post("/api/jobs", json={"title": "ok", "body": "x" * 1001}), 400, "limit is 1000")
        refused(await human.post("/api/jobs", json={"title": "  "}), 400, "title is empty")
        refused(await human.post("/api/jobs", json={"title": "t", "status": "someday"}), 400, "status")
        refused(await human.post("/api/jobs", json={"title": "t", "channel": "nowhere"}), 404, "#nowhere")
        refused(
            await human.post("/api/jobs", json={"title": "t", "anchor_msg_id": 2**40}), 400, "anchor_msg_id"
        )
        refused(await human.patch(f"/api/jobs/{a['id']}", json={"title": "x" * 121}), 400, "limit is 120")
        refused(await human.get("/api/jobs/999999"), 404, "no job 999999")
        refused(await human.patch("/api/jobs/999999", json={"status": "todo"}), 404, "no job")
        refused(await human.get("/api/jobs", params={"status": "nope"}), 400, "status")
        assert ok(await human.get(f"/api/jobs/{a['id']}"))["title"] == "a"
        # Every change is in the event log (what WebSocket clients resume from).
        log = [e for e in await events_since(human, since) if e["kind"] == "job"]
    assert [e["action"] for e in log] == ["created"] * 3 + ["updated"] * 2 + ["reordered"] + [
        "updated",
        "reordered",
        "updated",
    ]
    assert log[5]["ordered_ids"][:2] == [b["id"], a["id"]] and log[5]["status"] == "active"
    assert (log[6]["job"]["id"], log[6]["job"]["status"], log[7]["ordered_ids"][:2]) == (
        a["id"],
        "todo",
        [a["id"], c["id"]],
    )
    assert log[-1]["job"]["title"] == "c2"


async def test_thread_mentions_wake_with_the_job_and_stay_out_of_the_channel(server: RunningServer) -> None:
    agent = await register(server.url, "claude", "thread-1")
    name = agent["name"]
    async with server.human() as human:
        job = ok(await human.post("/api/jobs", json={"title": "Fix the build"}), 201)
        before = await timeline(human)
        posted = ok(
            await human.post(f"/api/jobs/{job['id']}/messages", json={"text": f"@{name} please look"}), 201
        )
        assert (posted["job_id"], posted["channel"], posted["kind"]) == (job["id"], "general", "human")
        ok(await human.post(f"/api/jobs/{job['id']}/messages", json={"text": f"@{name} and this"}), 201)
        (wake,) = await pending(server, name)  # the second mention folds into the unsent wake-up
        assert wake.job_id == job["id"] and wake.message_id == posted["id"]
        assert (
            f'job #{job["id"]} "Fix the build"' in wake.prompt
            and f"chat_read(job_id={job['id']})" in wake.prompt
        )
        # A mention in the channel is its own wake-up: it never folds into the job's.
        ok(await human.post("/api/channels/general/messages", json={"text": f"@{name} channel"}), 201)
        assert [t.job_id for t in await pending(server, name)] == [job["id"], 0]
        after = await timeline(human)
        assert [m["id"] for m in after if m["job_id"] is not None] == []
        assert len(after) == len(before) + 1
        thread = ok(await human.get(f"/api/jobs/{job['id']}/messages"))
        assert [m["text"] for m in thread] == [f"@{name} please look", f"@{name} and this"]
        now = ok(await human.get(f"/api/jobs/{job['id']}"))
        assert (now["message_count"], now["last_message_id"]) == (2, thread[-1]["id"])
        refused(
            await human.get(f"/api/jobs/{job['id']}/messages", params={"before": 9, "after": 1}),
            400,
            "not both",
        )
        assert ok(await human.get(f"/api/jobs/{job['id']}/messages", params={"after": posted["id"]}))[0][
            "text"
        ].endswith("this")
        assert ok(await human.get(f"/api/jobs/{job['id']}/messages", params={"limit": 1}))[0][
            "text"
        ].endswith("this")
        # An agent's name as assignee is the agent's own spelling, whatever the case or "@".
        taken = ok(await human.patch(f"/api/jobs/{job['id']}", json={"assignee": "@" + name.upper()}))
        assert taken["assignee"] == name
        found = ok(await human.get("/api/search", params={"q": "please look"}))["messages"]
        assert [m for m in found if m["job_id"] is not None] == []  # search covers the timeline
        # Limits and places: thread text uses max_message_chars; replies stay in their place.
        refused(
            await human.post(f"/api/jobs/{job['id']}/messages", json={"text": "x" * 16001}),
            400,
            "limit is 16000",
        )
        refused(await human.post(f"/api/jobs/{job['id']}/messages", json={"text": " "}), 400, "empty")
        refused(
            await human.post(
                f"/api/jobs/{job['id']}/messages", json={"text": "hi", "reply_to": before[-1]["id"]}
            ),
            400,
            "channel timeline",
        )
        refused(await human.post("/api/jobs/999999/messages", json={"text": "hi"}), 404, "no job")
    # The agent's channel read never shows thread messages; its thread read does, with its own cursor.
    async with mcp_client(server.url, agent["token"]) as client:
        channel = await client.call_tool("chat_read", {"channel": "general", "limit": 200})
        assert "please look" not in text_of(channel) and "@" + name + " channel" in text_of(channel)
        first = await client.call_tool("chat_read", {"job_id": job["id"]})
        texts = [m["text"] for m in first.structured_content["messages"]]
        assert texts[:2] == [m["text"] for m in thread] and texts[2].endswith(
            f"assigned job #{job['id']} to {name}"
        )
        again = await client.call_tool("chat_read", {"job_id": job["id"]})
        assert again.structured_content["messages"] == []


async def test_loop_guard_counts_hops_per_job_and_continue_in_the_thread_resets_it(
    server: RunningServer,
) -> None:
    one = await register(server.url, "gemini", "loop-1")
    two = await register(server.url, "gemini", "loop-2")
    async with server.human() as human:
        job = ok(await human.post("/api/jobs", json={"title": "Ping pong"}), 201)
        start = await last_seq(human)
    async with mcp_client(server.url, one["token"]) as client:
        for n in range(3):  # loop_guard_hops=2 on this server
            sent = await client.call_tool(
                "chat_send", {"message": f"@{two['name']} {n}", "job_id": job["id"]}
            )
            assert not sent.is_error, text_of(sent)
        # The channel's own guard is untouched: a hop there still routes.
        assert not (
            await client.call_tool("chat_send", {"message": f"@{two['name']} ch", "channel": "general"})
        ).is_error
    async with server.human() as human:
        texts = [m["text"] for m in ok(await human.get(f"/api/jobs/{job['id']}/messages"))]
        assert texts[-1].startswith(f"Loop guard: 2 agent-to-agent hops in job #{job['id']} without")
        assert not [m for m in await timeline(human) if m["text"].startswith("Loop guard")]
        assert [t.job_id for t in await pending(server, two["name"])] == [job["id"], 0]
        assert ok(await human.get(f"/api/jobs/{job['id']}"))["paused"] is True
        paused = [e["job"] for e in await events_since(human, start) if e["kind"] == "job"]
        assert [(j["id"], j["paused"]) for j in paused] == [(job["id"], True)]  # the board sees the pause
        since = await last_seq(human)
        resumed = ok(await human.post(f"/api/jobs/{job['id']}/messages", json={"text": "/continue"}), 201)
        log = [(e["kind"], e.get("job", {}).get("paused")) for e in await events_since(human, since)]
        assert log == [("message", None), ("job", False)]
        assert (resumed["kind"], resumed["job_id"]) == ("system", job["id"])
        assert f"resumed agent routing in job #{job['id']}" in resumed["text"]
    store = server.app.state.services.store
    assert ((await store.job(job["id"])).hops, (await store.job(job["id"])).paused) == (0, False)


async def test_suggestions_resolve_once_and_accepting_wakes_the_agent(server: RunningServer) -> None:
    agent = await register(server.url, "qwen", "sugg-1")
    async with server.human() as human:
        job = ok(await human.post("/api/jobs", json={"title": "Pick a database"}), 201)
    async with mcp_client(server.url, agent["token"]) as client:
        ids = []
        for text in ("[suggestion] use SQLite", "[Suggestion] use files", "just a note"):
            sent = await client.call_tool("chat_send", {"message": text, "job_id": job["id"]})
            ids.append(sent.structured_content["id"])
        bare = await client.call_tool("chat_send", {"message": " [suggestion]  ", "job_id": job["id"]})
        assert bare.is_error and "needs the suggestion after it" in text_of(bare)
    base = f"/api/jobs/{job['id']}/messages"
    async with server.human() as human:
        thread = ok(await human.get(base))
        assert [(m["type"], m["metadata"]) for m in thread] == [
            ("suggestion", {"resolution": None}),
            ("suggestion", {"resolution": None}),
            ("chat", {}),
        ]
        since = await last_seq(human)
        me = ok(await human.get("/api/me"))["name"]
        accepted = ok(await human.post(f"{base}/{ids[0]}/resolve", json={"resolution": "accepted"}))
        assert accepted["metadata"] == {"resolution": "accepted", "resolved_by": me}
        refused(
            await human.post(f"{base}/{ids[0]}/resolve", json={"resolution": "dismissed"}),
            409,
            "already accepted",
        )
        ok(await human.post(f"{base}/{ids[1]}/resolve", json={"resolution": "dismissed"}))
        refused(
            await human.post(f"{base}/{ids[2]}/resolve", json={"resolution": "accepted"}),
            400,
            "not a suggestion",
        )
        refused(
            await human.post(f"/api/jobs/999999/messages/{ids[0]}/resolve", json={"resolution": "accepted"}),
            404,
            "no job",
        )
        refused(await human.post(f"{base}/{ids[0]}/resolve", json={"resolution": "maybe"}), 422, "resolution")
        edited = [
            e["message"]["id"] for e in await events_since(human, since) if e["kind"] == "message_edited"
        ]
        assert edited == [ids[0], ids[1]]
    (wake,) = await pending(server, agent["name"])  # only the accepted one wakes the agent
    assert wake.job_id == job["id"] and f"suggestion (message #{ids[0]})" in wake.prompt


async def test_accepting_a_proposal_is_once_under_a_race(server: RunningServer) -> None:
    agent = await register(server.url, "codex", "race-1")
    card_id = await propose(server, agent["token"], "Race me")
    body = {"anchor_msg_id": card_id}  # accepting as it stands: the card's title and brief
    async with server.human() as one, server.human() as two:
        since = await last_seq(one)
        results = await _both(one.post("/api/jobs", json=body), two.post("/api/jobs", json=body))
        assert sorted(r.status_code for r in results) == [201, 409], [r.text for r in results]
        job = next(r.json() for r in results if r.status_code == 201)
        assert (job["status"], job["anchor_msg_id"], job["channel"]) == ("active", card_id, "general")
        assert (job["title"], job["body"]) == ("Race me", "why")
        assert [j["id"] for j in ok(await one.get("/api/jobs")) if j["anchor_msg_id"] == card_id] == [
            job["id"]
        ]
        card = ok(await one.get(f"/api/messages/{card_id}"))
        assert (card["metadata"]["status"], card["metadata"]["job_id"]) == ("accepted", job["id"])
        refused(
            await one.post(f"/api/jobs/proposals/{card_id}", json={"decision": "dismiss"}),
            409,
            "already accepted",
        )
        log = await events_since(one, since)
        assert ("message_edited", card_id) in [(e["kind"], e.get("message", {}).get("id")) for e in log]
        assert ("job", "created") in [(e["kind"], e.get("action")) for e in log]
    (wake,) = await pending(server, agent["name"])
    assert wake.job_id == job["id"] and f"accepted your job proposal: job #{job['id']}" in wake.prompt
    # Woken, the agent reads the empty thread: the job's header is there, and no "Stop polling".
    async with mcp_client(server.url, agent["token"]) as client:
        first = await client.call_tool("chat_read", {"job_id": job["id"]})
        again = await client.call_tool("chat_read", {"job_id": job["id"]})
    assert f'Job #{job["id"]} "Race me"' in text_of(first) and "Brief: why" in text_of(first)
    assert "Stop polling" not in text_of(first) and "Stop polling" in text_of(again)
    assert first.structured_content["job"]["body"] == "why" and "Race me" in text_of(again)
    # Deleted for good: the card it accepted says so, live and in the log.
    async with server.human() as human:
        since = await last_seq(human)
        ok(await human.delete(f"/api/jobs/{job['id']}", params={"permanent": "true"}))
        card = ok(await human.get(f"/api/messages/{card_id}"))
        assert card["metadata"]["job_deleted"] is True
        log = await events_since(human, 0)
        edited = [e for e in log if e["kind"] == "message_edited" and e["message"]["id"] == card_id]
        assert edited[-1]["seq"] > since and all(e["message"]["metadata"]["job_deleted"] for e in edited)


async def _both(*calls: Any) -> list[httpx.Response]:
    out: list[httpx.Response] = []

    async def run(call: Any) -> None:
        out.append(await call)

    async with anyio.create_task_group() as group:
        for call in calls:
            group.start_soon(run, call)
    return out


async def test_dismiss_and_request_changes_and_convert_to_job(server: RunningServer) -> None:
    agent = await register(server.url, "kimi", "prop-1")
    name = agent["name"]
    first = await propose(server, agent["token"], "Redo the docs")
    second = await propose(server, agent["token"], "Drop the cache")
    async with server.human() as human:
        me = ok(await human.get("/api/me"))["name"]
        asked = ok(
            await human.post(
                f"/api/jobs/proposals/{first}", json={"decision": "changes", "note": "split\nit up"}
            )
        )
        assert (asked["metadata"]["status"], asked["metadata"]["changes_requested_by"]) == ("proposed", me)
        (wake,) = await pending(server, name)
        assert "asked for changes" in wake.prompt and "split it up" in wake.prompt and "\n" not in wake.prompt
        dismissed = ok(await human.post(f"/api/jobs/proposals/{second}", json={"decision": "dismiss"}))
        assert (dismissed["metadata"]["status"], dismissed["metadata"]["decided_by"]) == ("dismissed", me)
        refused(
            await human.post(f"/api/jobs/proposals/{second}", json={"decision": "dismiss"}),
            409,
            "already dismissed",
        )
        refused(
            await human.post("/api/jobs", json={"title": "t", "anchor_msg_id": second}),
            409,
            "already dismissed",
        )
        plain = ok(
            await human.post("/api/channels/general/messages", json={"text": "we should cache less"}), 201
        )
        refused(
            await human.post(f"/api/jobs/proposals/{plain['id']}", json={"decision": "dismiss"}),
            400,
            "not a job proposal",
        )
        refused(
            await human.post(
                f"/api/jobs/proposals/{first}", json={"decision": "changes", "note": "x" * 1001}
            ),
            400,
            "limit",
        )
        # Convert to job: asks the agent (default: the message's author) to propose one; posts nothing.
        refused(await human.post(f"/api/messages/{plain['id']}/job", json={}), 400, "name the agent")
        count = len(await timeline(human))
        asked_agent = ok(await human.post(f"/api/messages/{plain['id']}/job", json={"agent": name}))
        assert asked_agent["agent"] == name
        by_author = ok(await human.post(f"/api/messages/{first}/job"))
        assert by_author["agent"] == name
        refused(await human.post(f"/api/messages/{plain['id']}/job", json={"agent": "nobody"}), 404, "nobody")
        assert len(await timeline(human)) == count
    wakes = [t for t in await pending(server, name) if t.id == asked_agent["trigger"]]
    assert wakes and f"message #{plain['id']}" in wakes[0].prompt and "chat_propose_job" in wakes[0].prompt


async def test_close_keeps_the_thread_and_permanent_delete_removes_everything(server: RunningServer) -> None:
    async with server.human() as human:
        job = ok(await human.post("/api/jobs", json={"title": "Secret plan"}), 201)
        base = f"/api/jobs/{job['id']}/messages"
        image = ok(await human.post("/api/uploads", content=PNG, headers={"Content-Type": "image/png"}), 201)
        kept = ok(await human.post(base, json={"text": "tell nobody: zebra", "attachments": [image]}), 201)
        gone = ok(await human.post(base, json={"text": "to delete"}), 201)
        other = ok(await human.post("/api/jobs", json={"title": "Other", "anchor_msg_id": kept["id"]}), 201)
        refused(await human.delete(f"/api/jobs/{other['id']}/messages/{gone['id']}"), 404, "no message")
        assert ok(await human.delete(f"{base}/{gone['id']}"))["deleted"] is True
        closed = ok(await human.delete(f"/api/jobs/{job['id']}"))
        me = ok(await human.get("/api/me"))["name"]
        assert [m["text"] for m in ok(await human.get(base))][2:] == [f"{me} moved it to closed"]
        assert (closed["status"], closed["message_count"]) == ("closed", 2)
        assert (await human.get(image["url"])).status_code == 200
        since = await last_seq(human)
        ok(await human.delete(f"/api/jobs/{job['id']}", params={"permanent": "true"}))
        refused(await human.get(f"/api/jobs/{job['id']}"), 404, "no job")
        refused(await human.get(base), 404, "no job")
        refused(await human.get(f"/api/messages/{gone['id']}"), 404, "no message")
        assert (await human.get(image["url"])).status_code == 404
        log = json.dumps(await events_since(human, 0))
        assert "zebra" not in log and "to delete" not in log
        # The title goes too: from the board's logged events and the "Job #N created" card.
        assert "Secret plan" not in log
        assert "Secret plan" not in json.dumps(await timeline(human))
        unanchored, deleted = [e for e in await events_since(human, since) if e["kind"] == "job"]
        assert (deleted["action"], deleted["job"]["id"]) == ("deleted", job["id"])
        assert (unanchored["job"]["id"], unanchored["job"]["anchor_msg_id"]) == (other["id"], None)
        assert ok(await human.get(f"/api/jobs/{other['id']}"))["anchor_msg_id"] is None
        refused(await human.delete(f"/api/jobs/{job['id']}", params={"permanent": "true"}), 404, "no job")


async def test_channel_rename_carries_jobs_and_delete_takes_them(server: RunningServer) -> None:
    agent = await register(server.url, "claude", "chan-del")
    async with server.human() as human:
        ok(await human.post("/api/channels", json={"name": "movable"}), 201)
        job = ok(await human.post("/api/jobs", json={"title": "Travels", "channel": "movable"}), 201)
        ok(await human.post(f"/api/jobs/{job['id']}/messages", json={"text": f"@{agent['name']} along"}), 201)
        assert [t.job_id for t in await pending(server, agent["name"])] == [job["id"]]
        ok(await human.patch("/api/channels/movable", json={"name": "moved"}))
        assert ok(await human.get(f"/api/jobs/{job['id']}"))["channel"] == "moved"
        assert [m["channel"] for m in ok(await human.get(f"/api/jobs/{job['id']}/messages"))] == ["moved"]
        assert [j["id"] for j in ok(await human.get("/api/jobs", params={"channel": "moved"}))] == [job["id"]]
        since = await last_seq(human)
        assert (await human.delete("/api/channels/moved")).status_code == 204
        refused(await human.get(f"/api/jobs/{job['id']}"), 404, "no job")
        # Deleted as a job deleted for good: an event for the board, no title left, no wake-up due.
        log = await events_since(human, 0)
        assert "Travels" not in json.dumps(log)
        assert [(e["kind"], e.get("action")) for e in log if e["seq"] > since] == [
            ("job", "deleted"),
            ("channel_deleted", None),
        ]
    assert await pending(server, agent["name"]) == []


async def test_restart_keeps_jobs_order_threads_and_cards(tmp_path: Path) -> None:
    settings = Settings(host="127.0.0.1", port=0, data_dir=tmp_path / "data")
    first = RunningServer(settings).start()
    try:
        async with first.human() as human:
            a = ok(await human.post("/api/jobs", json={"title": "a", "body": "brief"}), 201)
            b = ok(await human.post("/api/jobs", json={"title": "b"}), 201)
            ok(await human.post("/api/jobs/reorder", json={"status": "todo", "ordered_ids": [b["id"]]}))
            ok(await human.post(f"/api/jobs/{a['id']}/messages", json={"text": "kept"}), 201)
            board = ok(await human.get("/api/jobs"))
    finally:
        first.stop()
    second = RunningServer(replace(settings, port=0)).start()
    try:
        async with second.human() as human:
            assert ok(await human.get("/api/jobs")) == board
            assert [m["text"] for m in ok(await human.get(f"/api/jobs/{a['id']}/messages"))] == ["kept"]
            assert [m["type"] for m in await timeline(human)].count("job_created") == 2
    finally:
        second.stop()
