"""Room rules over REST against one real server shared by the module (issue 10, rules).

Every route, its limits and clear 4xx, proposal cards decided once (also by two people at the
same moment), order, reminders, version bumps, people-only access, and channel-scoped rules
following a channel's rename.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from backchannel.store import Store
from backchannel.store.schema import MIGRATIONS
from tests.conftest import RunningServer, mcp_client, module_server, ok, refused, register, text_of

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "rules") as running:
        yield running


@pytest.fixture
async def human(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    """A person's client; every rule a test made is deleted after it (the active limit is room-wide)."""
    async with server.human() as client:
        yield client
        for rule in ok(await client.get("/api/rules")):
            assert (await client.delete(f"/api/rules/{rule['id']}")).status_code == 204


def version(server: RunningServer) -> int:
    return server.app.state.services.registry.rules_version


async def events_since(human: httpx.AsyncClient, seq: int) -> list[dict[str, Any]]:
    return [
        e for e in ok(await human.get("/api/events", params={"since": seq}))["events"] if e["kind"] == "rule"
    ]


async def last_seq(human: httpx.AsyncClient) -> int:
    return ok(await human.get("/api/events", params={"since": 0, "limit": 1}))["last_seq"]


_instances = itertools.count()


async def propose(server: RunningServer, instance: str, text: str, reason: str = "") -> dict[str, Any]:
    agent = await register(server.url, "claude", f"{instance}-{next(_instances)}")
    async with mcp_client(server.url, agent["token"]) as client:
        result = await client.call_tool("chat_rules", {"action": "propose", "rule": text, "reason": reason})
    assert not result.is_error, text_of(result)
    return result.structured_content


async def test_create_list_edit_delete_with_limits_events_and_versions(
    server: RunningServer, human: httpx.AsyncClient
) -> None:
    seq, before = await last_seq(human), version(server)
    draft = ok(await human.post("/api/rules", json={"text": "  Keep   PRs small ", "reason": "review"}), 201)
    assert draft["status"] == "draft" and draft["text"] == "Keep PRs small" and draft["channel"] == ""
    assert set(draft) == set(
        "id uid text reason status author channel sort_order created_at updated_at".split()
    )
    assert draft["author"] and draft["created_at"] == draft["updated_at"]
    assert version(server) == before, "a draft is nothing an agent must hear about"
    active = ok(await human.post("/api/rules", json={"text": "Run the tests", "status": "active"}), 201)
    assert version(server) == before + 1
    assert [r["id"] for r in ok(await human.get("/api/rules"))] == [active["id"], draft["id"]]

    refused(await human.post("/api/rules", json={"text": "   "}), 400, "text is empty")
    refused(await human.post("/api/rules", json={"text": "x" * 161}), 400, "the limit is 160")
    ok(await human.post("/api/rules", json={"text": "y" * 160, "reason": "r" * 240}), 201)
    refused(await human.post("/api/rules", json={"text": "t", "reason": "r" * 241}), 400, "the limit is 240")
    refused(await human.post("/api/rules", json={"text": "t", "status": "proposed"}), 400, "draft, active")
    refused(
        await human.post("/api/rules", json={"text": "t", "channel": "nowhere"}), 404, "no channel #nowhere"
    )
    refused(await human.post("/api/rules", json={"reason": "no text"}), 422, "text")
    refused(await human.patch(f"/api/rules/{draft['id']}", json={"status": "done"}), 400, "archived")
    refused(await human.patch("/api/rules/999999", json={"text": "t"}), 404, "no rule 999999")

    edited = ok(await human.patch(f"/api/rules/{active['id']}", json={"reason": "slow CI"}))
    assert edited["reason"] == "slow CI" and version(server) == before + 1, "a reason is not delivered"
    edited = ok(await human.patch(f"/api/rules/{active['id']}", json={"text": "Run all tests"}))
    assert edited["text"] == "Run all tests" and edited["updated_at"] >= active["updated_at"]
    assert version(server) == before + 2
    archived = ok(await human.patch(f"/api/rules/{active['id']}", json={"status": "archived"}))
    assert archived["status"] == "archived" and version(server) == before + 3
    assert ok(await human.get("/api/rules"))[-1]["id"] == active["id"], "archived rules come last"

    assert (await human.delete(f"/api/rules/{draft['id']}")).status_code == 204
    refused(await human.delete(f"/api/rules/{draft['id']}"), 404, f"no rule {draft['id']}")
    assert version(server) == before + 3
    logged = [(e["action"], e["rule"]["id"]) for e in await events_since(human, seq)]
    # The deleted draft's own events left the log; only its id-only ``deleted`` stays.
    assert logged[0] == ("created", active["id"]) and draft["id"] not in [i for _, i in logged[:-1]]
    assert logged[-1] == ("deleted", draft["id"])
    assert logged.count(("updated", active["id"])) == 3


async def test_an_eleventh_active_rule_is_refused_everywhere(
    server: RunningServer, human: httpx.AsyncClient
) -> None:
    for n in range(10):
        ok(await human.post("/api/rules", json={"text": f"rule {n}", "status": "active"}), 201)
    full = "10 rules are active; archive one first"
    response = await human.post("/api/rules", json={"text": "eleventh", "status": "active"})
    refused(response, 409, full)
    assert response.json()["error"] == "conflict"
    draft = ok(await human.post("/api/rules", json={"text": "eleventh"}), 201)
    refused(await human.patch(f"/api/rules/{draft['id']}", json={"status": "active"}), 409, full)
    proposal = await propose(server, "limit", "also eleventh")
    refused(await human.post(f"/api/rules/{proposal['id']}/decide", json={"decision": "activate"}), 409, full)
    card = ok(await human.get(f"/api/messages/{proposal['message_id']}"))
    assert card["metadata"]["status"] == "proposed", "a refused activation leaves the card open"
    one = ok(await human.get("/api/rules"))[0]
    ok(await human.patch(f"/api/rules/{one['id']}", json={"status": "archived"}))
    assert ok(await human.patch(f"/api/rules/{draft['id']}", json={"status": "active"}))["status"] == "active"


async def test_a_proposal_is_decided_once_even_by_two_people_at_the_same_moment(
    server: RunningServer, human: httpx.AsyncClient
) -> None:
    proposal = await propose(server, "decide", "Say which tests you ran", "people ask")
    rule_id, card_id = proposal["id"], proposal["message_id"]
    (listed,) = ok(await human.get("/api/rules"))
    assert (listed["id"], listed["status"], listed["reason"]) == (rule_id, "proposed", "people ask")
    before = version(server)
    answers: list[httpx.Response] = []

    async def decide() -> None:
        answers.append(await human.post(f"/api/rules/{rule_id}/decide", json={"decision": "activate"}))

    async with anyio.create_task_group() as tg:
        tg.start_soon(decide)
        tg.start_soon(decide)
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    won = next(a for a in answers if a.status_code == 200).json()
    assert (won["id"], won["status"]) == (rule_id, "active") and version(server) == before + 1
    refused(next(a for a in answers if a.status_code == 409), 409, "already decided: active")
    card = ok(await human.get(f"/api/messages/{card_id}"))
    assert card["metadata"]["status"] == "active" and card["metadata"]["decided_by"]
    refused(
        await human.post(f"/api/rules/{rule_id}/decide", json={"decision": "dismiss"}), 409, "already decided"
    )

    drafted = await propose(server, "decide", "Draft me")
    assert (
        ok(await human.post(f"/api/rules/{drafted['id']}/decide", json={"decision": "draft"}))["status"]
        == "draft"
    )
    assert version(server) == before + 1

    seq = await last_seq(human)
    dismissed = await propose(server, "decide", "Dismiss me")
    response = await human.post(f"/api/rules/{dismissed['id']}/decide", json={"decision": "dismiss"})
    card = ok(response)
    assert (card["id"], card["type"], card["metadata"]["status"]) == (
        dismissed["message_id"],
        "rule_proposal",
        "dismissed",
    )
    assert dismissed["id"] not in [r["id"] for r in ok(await human.get("/api/rules"))]
    refused(
        await human.post(f"/api/rules/{dismissed['id']}/decide", json={"decision": "draft"}), 409, "dismissed"
    )
    refused(
        await human.post(f"/api/rules/{rule_id}/decide", json={"decision": "maybe"}), 400, "activate, draft"
    )
    refused(await human.post("/api/rules/999999/decide", json={"decision": "draft"}), 404, "no rule 999999")
    people_rule = ok(await human.post("/api/rules", json={"text": "not a proposal"}), 201)
    refused(
        await human.post(f"/api/rules/{people_rule['id']}/decide", json={"decision": "draft"}),
        409,
        "not waiting",
    )
    logged = ok(await human.get("/api/events", params={"since": seq}))["events"]
    edited = [
        e for e in logged if e["kind"] == "message_edited" and e["message"]["id"] == dismissed["message_id"]
    ]
    assert len(edited) == 1 and edited[0]["message"]["metadata"]["status"] == "dismissed"
    assert {"kind": "rule", "action": "deleted"}.items() <= next(
        e for e in logged if e["kind"] == "rule" and e["action"] == "deleted"
    ).items()


async def test_reorder_within_one_status_group(server: RunningServer, human: httpx.AsyncClient) -> None:
    a, b, c = [ok(await human.post("/api/rules", json={"text": t, "status": "active"}), 201) for t in "abc"]
    d = ok(await human.post("/api/rules", json={"text": "d"}), 201)
    before, seq = version(server), await last_seq(human)
    listed = ok(await human.post("/api/rules/reorder", json={"ordered_ids": [c["id"], a["id"]]}))
    assert [r["text"] for r in listed] == ["c", "a", "b", "d"]
    assert version(server) == before + 1, "the active order is part of what agents are sent"
    (event,) = await events_since(human, seq)
    assert event == {
        "seq": event["seq"], "kind": "rule", "action": "reordered", "status": "active",
        "ordered_ids": [c["id"], a["id"], b["id"]],
    }  # fmt: skip
    ok(await human.post("/api/rules/reorder", json={"ordered_ids": [c["id"]]}))
    assert version(server) == before + 1, "no change in order, nothing to resend"
    refused(
        await human.post("/api/rules/reorder", json={"ordered_ids": [a["id"], d["id"]]}), 400, "one status"
    )
    refused(await human.post("/api/rules/reorder", json={"ordered_ids": [a["id"], a["id"]]}), 400, "twice")
    refused(await human.post("/api/rules/reorder", json={"ordered_ids": []}), 400, "empty")
    refused(await human.post("/api/rules/reorder", json={"ordered_ids": [999999]}), 404, "no rule 999999")


async def test_remind_bumps_the_version_and_is_logged(
    server: RunningServer, human: httpx.AsyncClient
) -> None:
    seq, before = await last_seq(human), version(server)
    assert ok(await human.post("/api/rules/remind")) == {"version": before + 1}
    assert ok(await human.post("/api/rules/remind")) == {"version": before + 2}
    assert [(e["action"], e["version"]) for e in await events_since(human, seq)] == [
        ("remind", before + 1),
        ("remind", before + 2),
    ]


async def test_agent_tokens_and_strangers_are_refused_on_people_routes(
    server: RunningServer, human: httpx.AsyncClient
) -> None:
    rule = ok(await human.post("/api/rules", json={"text": "people only"}), 201)
    agent = await register(server.url, "codex", "people-only")
    calls = [
        ("GET", "/api/rules", None),
        ("POST", "/api/rules", {"text": "sneaky", "status": "active"}),
        ("PATCH", f"/api/rules/{rule['id']}", {"status": "active"}),
        ("DELETE", f"/api/rules/{rule['id']}", None),
        ("POST", "/api/rules/reorder", {"ordered_ids": [rule["id"]]}),
        ("POST", "/api/rules/remind", None),
        ("POST", f"/api/rules/{rule['id']}/decide", {"decision": "activate"}),
    ]
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as stranger:
        for method, path, body in calls:
            for headers in ({"Authorization": f"Bearer {agent['token']}"}, {}):
                response = await stranger.request(method, path, json=body, headers=headers)
                assert response.status_code in (401, 403), (method, path, headers, response.text)
    assert ok(await human.get("/api/rules")) == [rule]


async def test_a_channel_rule_follows_its_channel_rename(
    server: RunningServer, human: httpx.AsyncClient
) -> None:
    ok(await human.post("/api/channels", json={"name": "infra"}), 201)
    scoped = ok(
        await human.post(
            "/api/rules", json={"text": "Ask before deploys", "status": "active", "channel": "#infra"}
        ),
        201,
    )
    room = ok(await human.post("/api/rules", json={"text": "Be kind", "status": "active"}), 201)
    assert scoped["channel"] == "infra"
    seq = await last_seq(human)
    ok(await human.patch("/api/channels/infra", json={"name": "platform"}))
    (after,) = [r for r in ok(await human.get("/api/rules")) if r["id"] == scoped["id"]]
    assert after["channel"] == "platform"
    # Every open rules panel hears of it (no reload): an ``updated`` event for the moved rule only.
    assert [(e["action"], e["rule"]["id"], e["rule"]["channel"]) for e in await events_since(human, seq)] == [
        ("updated", scoped["id"], "platform")
    ]
    agent = await register(server.url, "gemini", "rename")
    async with mcp_client(server.url, agent["token"]) as client:
        there = await client.call_tool("chat_rules", {"action": "list", "channel": "platform"})
        here = await client.call_tool("chat_rules", {"action": "list", "channel": "general"})
    assert [r["rule"] for r in there.structured_content["rules"]] == ["Ask before deploys", "Be kind"]
    assert [r["id"] for r in here.structured_content["rules"]] == [room["id"]]
    moved = ok(await human.patch(f"/api/rules/{scoped['id']}", json={"channel": ""}))
    assert moved["channel"] == ""


async def test_a_deleted_channel_takes_its_rules_with_it(
    server: RunningServer, human: httpx.AsyncClient
) -> None:
    ok(await human.post("/api/channels", json={"name": "tmpch"}), 201)
    texts = ("secret rule text ZZZ", "secret draft ZZZ")
    for text, status in zip(texts, ("active", "draft"), strict=True):
        ok(await human.post("/api/rules", json={"text": text, "status": status, "channel": "tmpch"}), 201)
    kept = ok(await human.post("/api/rules", json={"text": "Room-wide stays", "status": "active"}), 201)
    seq, before = await last_seq(human), version(server)
    assert (await human.delete("/api/channels/tmpch")).status_code == 204
    assert [r["id"] for r in ok(await human.get("/api/rules"))] == [kept["id"]]
    assert version(server) == before + 1, "an active rule left: agents must hear of it"
    deleted = [e["rule"] for e in await events_since(human, seq)]
    assert [sorted(r) for r in deleted] == [["id", "status"], ["id", "status"]]
    logged = json.dumps(ok(await human.get("/api/events", params={"since": 0}))["events"])
    assert "ZZZ" not in logged
    ok(await human.post("/api/channels", json={"name": "tmpch"}), 201)  # a new channel starts clean
    assert [r["id"] for r in ok(await human.get("/api/rules"))] == [kept["id"]]
    assert (await human.delete("/api/channels/tmpch")).status_code == 204
    assert version(server) == before + 1, "no active rule went this time"


async def test_a_deleted_or_dismissed_rule_leaves_no_text_in_the_log(
    server: RunningServer, human: httpx.AsyncClient
) -> None:
    seq = await last_seq(human)
    rule = ok(await human.post("/api/rules", json={"text": "deleted rule QQQ", "reason": "why QQQ"}), 201)
    ok(await human.patch(f"/api/rules/{rule['id']}", json={"status": "active"}))
    assert (await human.delete(f"/api/rules/{rule['id']}")).status_code == 204
    proposal = await propose(server, "purge", "dismissed rule QQQ")
    ok(await human.post(f"/api/rules/{proposal['id']}/decide", json={"decision": "dismiss"}))
    logged = await events_since(human, seq)
    assert "QQQ" not in json.dumps(logged)
    assert [e["rule"] for e in logged if e["action"] == "deleted"] == [
        {"id": rule["id"], "status": "active"},
        {"id": proposal["id"], "status": "proposed"},
    ]


async def test_editing_a_proposal_rewords_its_open_card(
    server: RunningServer, human: httpx.AsyncClient
) -> None:
    proposal = await propose(server, "reword", "Be nise", "typo")
    seq = await last_seq(human)
    ok(await human.patch(f"/api/rules/{proposal['id']}", json={"text": "Be nice", "reason": "fixed"}))
    card = ok(await human.get(f"/api/messages/{proposal['message_id']}"))
    assert card["text"] == "Proposed rule: Be nice"
    assert (card["metadata"]["text"], card["metadata"]["reason"], card["metadata"]["status"]) == (
        "Be nice",
        "fixed",
        "proposed",
    )
    logged = ok(await human.get("/api/events", params={"since": seq}))["events"]
    assert [e["message"]["metadata"]["text"] for e in logged if e["kind"] == "message_edited"] == ["Be nice"]
    decided = ok(await human.post(f"/api/rules/{proposal['id']}/decide", json={"decision": "activate"}))
    assert decided["text"] == "Be nice"
    ok(await human.patch(f"/api/rules/{proposal['id']}", json={"text": "Be very nice"}))
    card = ok(await human.get(f"/api/messages/{proposal['message_id']}"))
    assert (card["metadata"]["text"], card["metadata"]["status"]) == ("Be nice", "active"), (
        "decided: as it was"
    )


async def test_a_proposal_whose_card_was_deleted_can_still_be_decided(
    server: RunningServer, human: httpx.AsyncClient
) -> None:
    for decision, status in (("activate", "active"), ("dismiss", None)):
        proposal = await propose(server, "nocard", f"Card gone, {decision}")
        ok(await human.delete(f"/api/messages/{proposal['message_id']}"))
        decided = ok(await human.post(f"/api/rules/{proposal['id']}/decide", json={"decision": decision}))
        assert decided["id"] == proposal["id"] and decided["status"] == (status or "proposed")
        assert proposal["id"] not in [r["id"] for r in ok(await human.get("/api/rules")) if status is None]
        card = ok(await human.get(f"/api/messages/{proposal['message_id']}"))
        assert card["deleted"] and card["metadata"] == {}


async def test_rule_text_and_reason_must_be_printable(human: httpx.AsyncClient) -> None:
    for field, value in (
        ("text", "be \u001b[2J\u0007 nice"),
        ("text", "nice \u202e"),
        ("reason", "a\u0000b"),
    ):
        refused(await human.post("/api/rules", json={"text": "ok", field: value}), 400, "printable")
    emoji = ok(await human.post("/api/rules", json={"text": "Thank the \U0001f468\u200d\U0001f4bb"}), 201)
    assert emoji["text"].endswith("\u200d\U0001f4bb"), "an emoji's zero-width joiner is fine"


def test_the_rules_migration_keeps_ids_maps_pending_and_drops_declined(tmp_path: Path) -> None:
    """Old rules keep their ids (room-wide now); 'pending' becomes 'proposed'; declined rows go
    and their cards say dismissed; an active rule starts the room at version 1 (agents get it)."""
    path = tmp_path / "old.db"
    before = next(n for n, sql in enumerate(MIGRATIONS) if "CREATE TABLE rules_new" in sql)
    with sqlite3.connect(path) as conn:
        for sql in MIGRATIONS[:before]:
            conn.executescript(sql)
        conn.execute(f"PRAGMA user_version = {before}")
        conn.execute("INSERT INTO channels(id, name, created_at) VALUES (1, 'general', 0)")
        for rule_id, status in ((1, "active"), (2, "pending"), (3, "proposed"), (4, "rejected")):
            conn.execute(
                "INSERT INTO rules(id, channel, text, reason, status, proposed_by, created_at)"
                " VALUES (?, 'general', ?, 'why', ?, 'claude', 5)",
                (rule_id, f"rule {rule_id}", status),
            )
            conn.execute(
                "INSERT INTO messages(channel_id, sender, kind, type, text, metadata, created_at)"
                " VALUES (1, 'claude', 'agent', 'rule_proposal', ?, ?, 5)",
                (f"Proposed rule: rule {rule_id}", json.dumps({"rule_id": rule_id})),
            )
    Store(path).close()
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT id, status, channel, author, message_id, uid FROM rules ORDER BY id"
        ).fetchall()
        assert [(r["id"], r["status"], r["channel"], r["author"]) for r in rows] == [
            (1, "active", "", "claude"),
            (2, "proposed", "", "claude"),
            (3, "proposed", "", "claude"),
        ]
        assert all(r["message_id"] and len(r["uid"]) == 32 for r in rows)
        cards = [
            json.loads(r[0])["status"] for r in conn.execute("SELECT metadata FROM messages ORDER BY id")
        ]
        assert cards == ["active", "proposed", "proposed", "dismissed"]
        assert conn.execute("SELECT value FROM room_state WHERE key = 'rules_version'").fetchone()[0] == 1
        new = conn.execute(
            "INSERT INTO rules(uid, text, created_at, updated_at) VALUES ('u', 't', 1, 1)"
        ).lastrowid
        assert new == 5, "a dropped rule's id is never handed out again"


def test_rules_over_the_limits_in_an_old_database_are_archived(tmp_path: Path) -> None:
    """An old database may hold rules longer than 160 characters and more than 10 active ones: the
    long ones are archived (never cut), and only the first 10 active in the people's order stay."""
    path = tmp_path / "old.db"
    before = next(n for n, sql in enumerate(MIGRATIONS) if "CREATE TABLE rules_new" in sql)
    long = "x" * 300
    with sqlite3.connect(path) as conn:
        for sql in MIGRATIONS[:before]:
            conn.executescript(sql)
        conn.execute(f"PRAGMA user_version = {before}")
        conn.execute("INSERT INTO channels(id, name, created_at) VALUES (1, 'general', 0)")
        rows = [
            (1, long, "active"),
            *((n, f"rule {n}", "active") for n in range(2, 14)),
            (14, long, "pending"),
        ]
        for rule_id, text, status in rows:
            conn.execute(
                "INSERT INTO rules(id, channel, text, reason, status, proposed_by, created_at)"
                " VALUES (?, 'general', ?, '', ?, 'claude', 5)",
                (rule_id, text, status),
            )
        conn.execute(
            "INSERT INTO messages(channel_id, sender, kind, type, text, metadata, created_at)"
            " VALUES (1, 'claude', 'agent', 'rule_proposal', 'Proposed rule: x', ?, 5)",
            (json.dumps({"rule_id": 14}),),
        )
    Store(path).close()
    with sqlite3.connect(path) as conn:
        status = dict(conn.execute("SELECT id, status FROM rules").fetchall())
        texts = dict(conn.execute("SELECT id, text FROM rules").fetchall())
        assert [i for i, s in sorted(status.items()) if s == "active"] == list(range(2, 12))
        assert [i for i, s in sorted(status.items()) if s == "archived"] == [1, 12, 13, 14]
        assert texts[1] == long and texts[14] == long, "archived as they were, never cut"
        (card,) = conn.execute("SELECT metadata FROM messages").fetchone()
        assert json.loads(card)["status"] == "dismissed"
        assert conn.execute("SELECT value FROM room_state WHERE key = 'rules_version'").fetchone()[0] == 2
