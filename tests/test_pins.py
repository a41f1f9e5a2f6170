"""Pins and /clear over REST, against one real server shared by the module.

Every test makes its own channel (or messages) and checks only those. What a deleted or cleared
message leaves behind is looked for everywhere the server hands text out: the event log, history,
search, the pins list, the uploads directory and pending wake-ups.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer, mcp_client, module_server, ok, pending, refused, register

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "pins") as running:
        yield running


async def say(human: httpx.AsyncClient, text: str, channel: str = "general", **extra: Any) -> dict[str, Any]:
    return ok(await human.post(f"/api/channels/{channel}/messages", json={"text": text, **extra}), 201)


async def last_seq(human: httpx.AsyncClient) -> int:
    return int(ok(await human.get("/api/events", params={"since": 0, "limit": 1}))["last_seq"])


async def logged(human: httpx.AsyncClient, since: int) -> list[dict[str, Any]]:
    return ok(await human.get("/api/events", params={"since": since, "limit": 1000}))["events"]


async def test_pin_done_unpin_each_once_validated_and_logged(server: RunningServer) -> None:
    async with server.human() as human:
        me = ok(await human.get("/api/me"))["name"]
        first = await say(human, "remember the **release** notes")
        second = await say(human, "and the changelog")
        since = await last_seq(human)

        pinned = ok(await human.post(f"/api/messages/{first['id']}/pin"))
        assert pinned["id"] == first["id"] and pinned["text"] == first["text"]
        assert pinned["pin"]["pinned_by"] == me and pinned["pin"]["done"] is False
        # Idempotent: the same pin comes back, nothing new is logged.
        again = ok(await human.post(f"/api/messages/{first['id']}/pin"))
        assert again == pinned
        ok(await human.post(f"/api/messages/{second['id']}/pin"))
        listed = ok(await human.get("/api/pins", params={"channel": "general"}))
        assert [m["id"] for m in listed][:2] == [second["id"], first["id"]]  # newest pin first
        assert listed[1]["pin"] == pinned["pin"]

        done = ok(await human.patch(f"/api/messages/{first['id']}/pin", json={"done": True}))
        assert done["pin"]["done"] is True and done["pin"]["pinned_at"] == pinned["pin"]["pinned_at"]
        assert ok(await human.patch(f"/api/messages/{first['id']}/pin", json={"done": True})) == done
        undone = ok(await human.patch(f"/api/messages/{first['id']}/pin", json={"done": False}))
        assert undone["pin"]["done"] is False
        refused(await human.patch(f"/api/messages/{first['id']}/pin", json={"done": "yes"}), 422, "done")
        refused(await human.patch(f"/api/messages/{first['id']}/pin", json={}), 422, "done")

        unpinned = await human.delete(f"/api/messages/{first['id']}/pin")
        assert unpinned.status_code == 204, unpinned.text
        refused(await human.delete(f"/api/messages/{first['id']}/pin"), 404, "not pinned")
        refused(await human.patch(f"/api/messages/{first['id']}/pin", json={"done": True}), 404, "not pinned")
        listed = ok(await human.get("/api/pins", params={"channel": "general"}))
        assert first["id"] not in [m["id"] for m in listed] and second["id"] in [m["id"] for m in listed]

        events = [e for e in await logged(human, since) if e["kind"] == "pin"]
        assert [(e["action"], e["message"]["id"]) for e in events] == [
            ("pinned", first["id"]),
            ("pinned", second["id"]),
            ("updated", first["id"]),
            ("updated", first["id"]),
            ("unpinned", first["id"]),
        ]
        assert events[2]["pin"]["done"] is True and events[3]["pin"]["done"] is False
        assert events[-1]["pin"] is None

        # Bad input: a clear error, never a traceback.
        refused(await human.post("/api/messages/999999/pin"), 404, "999999")
        refused(await human.delete("/api/messages/999999/pin"), 404, "999999")
        refused(await human.post("/api/messages/0/pin"), 422, "message_id")
        refused(await human.get("/api/pins"), 422, "channel")
        refused(await human.get("/api/pins", params={"channel": "nowhere"}), 404, "nowhere")
        refused(await human.get("/api/pins", params={"channel": "Not A Name!"}), 400, "invalid channel")
        gone = await say(human, "soon deleted")
        ok(await human.delete(f"/api/messages/{gone['id']}"))
        refused(await human.post(f"/api/messages/{gone['id']}/pin"), 400, "deleted")


async def test_agents_and_strangers_cannot_pin_or_clear(server: RunningServer) -> None:
    agent = await register(server.url, "claude", "pin-agent")
    async with server.human() as human:
        target = await say(human, "agents may not pin this")
    bearer = {"Authorization": f"Bearer {agent['token']}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as stranger:
        for method, path in [
            ("POST", f"/api/messages/{target['id']}/pin"),
            ("PATCH", f"/api/messages/{target['id']}/pin"),
            ("DELETE", f"/api/messages/{target['id']}/pin"),
            ("GET", "/api/pins?channel=general"),
            ("DELETE", "/api/channels/general/messages"),
            ("GET", "/api/channels/general/messages/count"),
        ]:
            for headers in (bearer, {}):
                response = await stranger.request(method, path, headers=headers, json={"done": True})
                assert response.status_code in (401, 403), (method, path, response.text)
    async with server.human() as human:
        assert ok(await human.get(f"/api/messages/{target['id']}"))["text"] == "agents may not pin this"
        assert target["id"] not in [m["id"] for m in ok(await human.get("/api/pins?channel=general"))]


async def test_a_deleted_message_loses_its_pin_and_every_logged_copy(server: RunningServer) -> None:
    async with server.human() as human:
        ok(await human.post("/api/channels", json={"name": "pin-del"}), 201)
        msg = await say(human, "first draft zebracorn", channel="pin-del")
        kept = await say(human, "this pin stays", channel="pin-del")
        ok(await human.post(f"/api/messages/{msg['id']}/pin"))
        ok(await human.post(f"/api/messages/{kept['id']}/pin"))
        # An edit reaches the pin's logged copy too.
        ok(await human.patch(f"/api/messages/{msg['id']}", json={"text": "second draft okapiword"}))
        log = json.dumps(await logged(human, 0))
        assert "zebracorn" not in log and "okapiword" in log
        assert ok(await human.get("/api/pins?channel=pin-del"))[1]["text"] == "second draft okapiword"

        ok(await human.delete(f"/api/messages/{msg['id']}"))
        assert [m["id"] for m in ok(await human.get("/api/pins?channel=pin-del"))] == [kept["id"]]
        refused(await human.delete(f"/api/messages/{msg['id']}/pin"), 404, "not pinned")
        log = await logged(human, 0)
        assert "okapiword" not in json.dumps(log)
        pin_copies = [e["message"] for e in log if e["kind"] == "pin" and e["message"]["id"] == msg["id"]]
        assert pin_copies and all(m["deleted"] and m["text"] == "" for m in pin_copies)

        # A deleted channel takes its pins (and their logged events) along.
        response = await human.delete("/api/channels/pin-del")
        assert response.status_code == 204, response.text
        log = await logged(human, 0)
        assert not [e for e in log if e["kind"] == "pin" and e["message"]["id"] == kept["id"]]
    rows = await server.app.state.services.store.db.read(
        lambda c: c.execute("SELECT count(*) FROM pins WHERE message_id = ?", (kept["id"],)).fetchone()[0]
    )
    assert rows == 0


async def test_renaming_a_channel_keeps_its_pins(server: RunningServer) -> None:
    async with server.human() as human:
        ok(await human.post("/api/channels", json={"name": "pin-old"}), 201)
        msg = await say(human, "pinned before the rename", channel="pin-old")
        pinned = ok(await human.post(f"/api/messages/{msg['id']}/pin"))
        ok(await human.patch("/api/channels/pin-old", json={"name": "pin-new"}))
        [moved] = ok(await human.get("/api/pins", params={"channel": "pin-new"}))
        assert (moved["id"], moved["channel"], moved["pin"]) == (msg["id"], "pin-new", pinned["pin"])
        refused(await human.get("/api/pins", params={"channel": "pin-old"}), 404, "pin-old")


async def upload(human: httpx.AsyncClient) -> dict[str, Any]:
    return ok(await human.post("/api/uploads", content=PNG, headers={"Content-Type": "image/png"}), 201)


async def test_clear_removes_the_timeline_everywhere_and_leaves_job_threads(server: RunningServer) -> None:
    agent = await register(server.url, "codex", "clear-agent")
    uploads_dir = server.settings.uploads_dir
    async with server.human() as human:
        ok(await human.post("/api/channels", json={"name": "clr"}), 201)
        own, shared = await upload(human), await upload(human)
        first = await say(human, "alpha quokkaword", channel="clr", attachments=[own, shared])
        await say(human, "a reply quokkaword", channel="clr", reply_to=first["id"])
        await say(human, "shared image stays", attachments=[shared])  # in #general
        mention = await say(human, f"@{agent['name']} please read quokkaword", channel="clr")
        assert [t.message_id for t in await pending(server, agent["name"])] == [mention["id"]]
        deleted = await say(human, "tombstone quokkaword", channel="clr")
        ok(await human.delete(f"/api/messages/{deleted['id']}"))
        ok(await human.post(f"/api/messages/{first['id']}/pin"))
        # A job anchored on a timeline message, with a thread message that is pinned too.
        job = ok(
            await human.post(
                "/api/jobs", json={"title": "Thread stays", "channel": "clr", "anchor_msg_id": first["id"]}
            ),
            201,
        )
        thread = ok(
            await human.post(f"/api/jobs/{job['id']}/messages", json={"text": "thread quokkaword"}), 201
        )
        ok(await human.post(f"/api/messages/{thread['id']}/pin"))
        timeline = ok(await human.get("/api/channels/clr/messages", params={"limit": 200}))["messages"]
        assert {m["type"] for m in timeline} >= {"chat", "job_created"} and len(timeline) >= 5
        since = await last_seq(human)

        assert ok(await human.get("/api/channels/clr/messages/count")) == {"count": len(timeline)}
        assert ok(await human.delete("/api/channels/clr/messages")) == {"deleted": len(timeline)}

        assert ok(await human.get("/api/channels/clr/messages"))["messages"] == []
        assert ok(await human.get("/api/channels/clr/messages/count")) == {"count": 0}
        for gone in timeline:
            refused(await human.get(f"/api/messages/{gone['id']}"), 404, str(gone["id"]))
        found = ok(await human.get("/api/search", params={"q": "quokkaword"}))["messages"]
        assert found == []
        # The whole log: no copy of a cleared message (message, edit, delete or pin events).
        log = await logged(human, 0)
        cleared_ids = {m["id"] for m in timeline}
        assert not [e for e in log if e.get("message", {}).get("id") in cleared_ids]
        assert "alpha quokkaword" not in json.dumps(log)
        new = await logged(human, since)
        assert [e["kind"] for e in new].count("channel_cleared") == 1
        assert {"kind": "channel_cleared", "channel": "clr"}.items() <= new[-1].items()
        updated = [e["job"] for e in new if e["kind"] == "job"]
        assert [(j["id"], j["anchor_msg_id"]) for j in updated] == [(job["id"], None)]
        # Pins: the timeline's went, the thread's stayed.
        assert [m["id"] for m in ok(await human.get("/api/pins", params={"channel": "clr"}))] == [
            thread["id"]
        ]
        # The upload only the cleared messages used is gone from disk; the shared one stays.
        assert not (uploads_dir / own["url"].removeprefix("/uploads/")).exists()
        assert (uploads_dir / shared["url"].removeprefix("/uploads/")).exists()
        # The wake-up the cleared mention caused is not delivered any more.
        assert await pending(server, agent["name"]) == []
        # The job and its thread are untouched.
        kept = ok(await human.get(f"/api/jobs/{job['id']}/messages"))
        assert [m["text"] for m in kept] == ["thread quokkaword"]
        assert ok(await human.get(f"/api/jobs/{job['id']}"))["message_count"] == 1
        # A job deleted for good takes its thread's pins along.
        ok(await human.delete(f"/api/jobs/{job['id']}", params={"permanent": "true"}))
        assert ok(await human.get("/api/pins", params={"channel": "clr"})) == []
        # The channel works on: a new message, and a second clear of an empty channel.
        await say(human, "fresh start", channel="clr")
        assert ok(await human.delete("/api/channels/clr/messages")) == {"deleted": 1}
        assert ok(await human.delete("/api/channels/clr/messages")) == {"deleted": 0}
        refused(await human.delete("/api/channels/nowhere/messages"), 404, "nowhere")
        refused(await human.delete("/api/channels/Bad%20Name/messages"), 400, "invalid channel")


async def test_clear_removes_a_rule_card_and_the_rule_can_still_be_decided(server: RunningServer) -> None:
    """The rule is not the card: after /clear takes a proposal card, deciding it still works and
    nothing points at the cleared message any more."""
    agent = await register(server.url, "claude", "clear-rule")
    async with server.human() as human:
        ok(await human.post("/api/channels", json={"name": "rulesclear"}), 201)
        async with mcp_client(server.url, agent["token"]) as client:
            proposals = [
                (
                    await client.call_tool(
                        "chat_rules",
                        {"action": "propose", "rule": f"Cleared card {n}", "channel": "rulesclear"},
                    )
                ).structured_content
                for n in range(2)
            ]
        assert ok(await human.delete("/api/channels/rulesclear/messages"))["deleted"] == 2
        store = server.app.state.services.store
        ids = [p["id"] for p in proposals]
        left = await store.db.read(
            lambda c: c.execute(f"SELECT message_id FROM rules WHERE id IN ({ids[0]}, {ids[1]})").fetchall()
        )
        assert [r[0] for r in left] == [None, None]
        active = ok(await human.post(f"/api/rules/{ids[0]}/decide", json={"decision": "activate"}))
        assert active["status"] == "active"
        ok(await human.post(f"/api/rules/{ids[1]}/decide", json={"decision": "dismiss"}))
        assert [r["id"] for r in ok(await human.get("/api/rules"))] == [ids[0]]
        assert (await human.delete(f"/api/rules/{ids[0]}")).status_code == 204
