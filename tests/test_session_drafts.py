"""Session drafts over real MCP (an agent answers with a ```session block) and the template routes.

One server for the module: every test makes its own agents and channels and checks only those.
The restart test has its own data directory and starts a second server on it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from backchannel.store import Store, session_templates
from tests.conftest import RunningServer, mcp_client, module_server, ok, pending, refused, register, text_of

pytestmark = pytest.mark.anyio

DESIGN: dict[str, Any] = {
    "name": "Spike and judge",
    "description": "One agent tries an idea, another judges it.",
    "roles": ["builder", "judge"],
    "phases": [
        {"name": "Spike", "participants": ["builder"], "prompt": "Try the idea quickly and report."},
        {
            "name": "Judge",
            "participants": ["judge"],
            "prompt": "Keep it or drop it, and why.",
            "is_output": True,
        },
    ],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "drafts") as running:
        yield running


def block(obj: Any) -> str:
    body = obj if isinstance(obj, str) else json.dumps(obj, indent=2)
    return f"Here is my design.\n\n```session\n{body}\n```\n\nTell me what to change."


async def send(server: RunningServer, token: str, text: str, **extra: Any) -> dict[str, Any]:
    """The agent's chat_send over MCP; returns the stored message (as people see it)."""
    async with mcp_client(server.url, token) as client:
        sent = await client.call_tool("chat_send", {"message": text, **extra})
    assert not sent.is_error, text_of(sent)
    assert sent.structured_content is not None
    async with server.human() as human:
        return ok(await human.get(f"/api/messages/{sent.structured_content['id']}"))


async def channel(human: httpx.AsyncClient, name: str) -> str:
    ok(await human.post("/api/channels", json={"name": name}), 201)
    return name


async def last_seq(human: httpx.AsyncClient) -> int:
    return int(ok(await human.get("/api/events", params={"since": 0, "limit": 1}))["last_seq"])


async def events_since(human: httpx.AsyncClient, seq: int) -> list[dict[str, Any]]:
    return ok(await human.get("/api/events", params={"since": seq, "limit": 1000}))["events"]


async def test_an_agents_session_block_becomes_a_valid_draft_card(server: RunningServer) -> None:
    agent = await register(server.url, "claude", "draft-valid")
    async with server.human() as human:
        where = await channel(human, "drafts-valid")
        since = await last_seq(human)
    text = block(DESIGN)
    card = await send(server, agent["token"], text, channel=where)
    meta = card["metadata"]
    assert (card["type"], card["sender"], card["text"], card["channel"]) == (
        "session_draft",
        agent["name"],
        text,
        where,
    )
    assert len(meta["draft_id"]) == 8 and int(meta["draft_id"], 16) >= 0
    assert {k: meta[k] for k in ("revision", "proposed_by", "valid", "errors", "status")} == {
        "revision": 1,
        "proposed_by": agent["name"],
        "valid": True,
        "errors": [],
        "status": "open",
    }
    # The card shows the template normalized (is_output filled in); its id is chosen on save.
    assert meta["template"] == {
        **DESIGN,
        "phases": [{**DESIGN["phases"][0], "is_output": False}, DESIGN["phases"][1]],
    }
    async with server.human() as human:
        live = [e for e in await events_since(human, since) if e["kind"] == "message"]
    assert [e["message"]["type"] for e in live] == ["session_draft"]  # published live as the card
    # The same block in a person's message, or in a job thread, is just a message.
    async with server.human() as human:
        mine = ok(await human.post(f"/api/channels/{where}/messages", json={"text": text}), 201)
        job = ok(await human.post("/api/jobs", json={"title": "Design work", "channel": where}), 201)
    assert mine["type"] == "chat"
    in_thread = await send(server, agent["token"], text, job_id=job["id"])
    assert (in_thread["type"], in_thread["job_id"], in_thread["metadata"]) == ("chat", job["id"], {})


async def test_a_draft_with_errors_lists_every_one(server: RunningServer) -> None:
    agent = await register(server.url, "codex", "draft-bad")
    async with server.human() as human:
        where = await channel(human, "drafts-bad")
    bad = {
        **DESIGN,
        "name": "",
        "roles": ["builder", "Judge"],
        "phases": [{"name": "Only", "participants": ["critic"], "prompt": "x" * 250}],
    }
    card = await send(server, agent["token"], block(bad), channel=where)
    meta = card["metadata"]
    assert (card["type"], meta["valid"], meta["status"], meta["revision"]) == (
        "session_draft",
        False,
        "open",
        1,
    )
    assert meta["template"] == bad  # what the agent wrote, for the card to show next to the errors
    assert [e.split(":")[0] for e in meta["errors"]] == [
        "name",
        "roles[1]",
        "phases[0].participants",
        "phases[0].prompt",
        "phases",
    ], meta["errors"]
    # Not JSON at all: one error saying where it broke; no template.
    broken = await send(server, agent["token"], block('{"name": "x",'), channel=where)
    assert broken["metadata"]["template"] is None and broken["metadata"]["valid"] is False
    (error,) = broken["metadata"]["errors"]
    assert error.startswith("session block: not valid JSON (") and "line" in error
    # What Python reads but JSON (and SQLite) cannot hold is an error on the card, not a crash.
    for odd, words in (('{"name": NaN}', "NaN is not a JSON value"), ('{"a": 1e999}', "too large")):
        odd_card = await send(server, agent["token"], block(odd), channel=where)
        assert words in odd_card["metadata"]["errors"][0]
    deep = await send(server, agent["token"], block('{"a": ' + "[" * 500 + "]" * 500 + "}"), channel=where)
    assert deep["metadata"]["errors"] == ["session block: nested deeper than 20 levels"]
    # An invalid draft cannot be saved: 400 with the problems.
    async with server.human() as human:
        answer = await human.post(f"/api/sessions/drafts/{card['id']}/save")
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_template"
    assert answer.json()["problems"] == meta["errors"]


async def test_a_revision_supersedes_the_older_card(server: RunningServer) -> None:
    agent = await register(server.url, "gemini", "draft-rev")
    other = await register(server.url, "qwen", "draft-rev-other")
    async with server.human() as human:
        where = await channel(human, "drafts-rev")
    first = await send(server, agent["token"], block(DESIGN), channel=where)
    draft_id = first["metadata"]["draft_id"]
    # Another agent's unrelated draft in the same channel is a draft of its own.
    theirs = await send(server, other["token"], block(DESIGN), channel=where)
    assert theirs["metadata"]["draft_id"] != draft_id
    async with server.human() as human:
        ask = f"@{agent['name']} Please revise session draft {draft_id}: call the judge a reviewer."
        ok(await human.post(f"/api/channels/{where}/messages", json={"text": ask}), 201)
        since = await last_seq(human)
    renamed = {**DESIGN, "roles": ["builder", "reviewer"]}
    renamed["phases"] = [DESIGN["phases"][0], {**DESIGN["phases"][1], "participants": ["reviewer"]}]
    second = await send(server, agent["token"], block(renamed), channel=where)
    assert (second["metadata"]["draft_id"], second["metadata"]["revision"]) == (draft_id, 2)
    assert second["metadata"]["status"] == "open"
    # The revise request names gemini: another agent's next block is a new draft, not a revision.
    another = await send(server, other["token"], block(DESIGN), channel=where)
    assert another["metadata"]["draft_id"] not in (draft_id, theirs["metadata"]["draft_id"])
    async with server.human() as human:
        older = ok(await human.get(f"/api/messages/{first['id']}"))
        untouched = ok(await human.get(f"/api/messages/{theirs['id']}"))
        live = await events_since(human, since)
    assert older["metadata"] == {**first["metadata"], "status": "superseded"}
    assert untouched["metadata"]["status"] == "open"
    # The older card's change is published live, before the new card.
    assert [(e["kind"], e["message"]["id"]) for e in live if e["kind"].startswith("message")] == [
        ("message_edited", first["id"]),
        ("message", second["id"]),
        ("message", another["id"]),
    ]
    # The block may name its draft itself: revision 3 supersedes revision 2.
    third = await send(server, agent["token"], block({**DESIGN, "draft_id": draft_id}), channel=where)
    assert (third["metadata"]["draft_id"], third["metadata"]["revision"]) == (draft_id, 3)
    assert "draft_id" not in third["metadata"]["template"]
    async with server.human() as human:
        assert ok(await human.get(f"/api/messages/{second['id']}"))["metadata"]["status"] == "superseded"
    # A draft_id naming no draft of this channel starts a new draft.
    fresh = await send(server, agent["token"], block({**DESIGN, "draft_id": "0badc0de"}), channel="general")
    assert fresh["metadata"]["draft_id"] != "0badc0de" and fresh["metadata"]["revision"] == 1


async def test_request_draft_posts_a_visible_message_that_wakes_the_agent(server: RunningServer) -> None:
    agent = await register(server.url, "kimi", "draft-ask")
    async with server.human() as human:
        where = await channel(human, "drafts-ask")
        me = ok(await human.get("/api/me"))["name"]
        body = {
            "agent": agent["name"],
            "channel": where,
            "description": "a  security\nreview of the login flow",
        }
        message = ok(await human.post("/api/sessions/request-draft", json=body), 201)
        assert (message["sender"], message["kind"], message["type"], message["channel"]) == (
            me,
            "human",
            "chat",
            where,
        )
        assert message["text"].startswith(
            f"@{agent['name']} Please design a session for: a security review of the login flow. "
            "Answer with one ```session block holding JSON"
        )
        for limit in (
            "1-60",
            "up to 300",
            "1-6 distinct roles",
            "1-4 participants",
            "up to 200",
            "is_output",
        ):
            assert limit in message["text"], limit
        history = ok(await human.get(f"/api/channels/{where}/messages"))["messages"]
        assert message["id"] in [m["id"] for m in history]  # everyone sees what was asked
        # Bad input is a clear 400.
        refused(
            await human.post("/api/sessions/request-draft", json={**body, "agent": "nobody"}),
            400,
            'no agent named "nobody"',
        )
        refused(
            await human.post("/api/sessions/request-draft", json={**body, "description": "  "}), 400, "empty"
        )
        refused(
            await human.post("/api/sessions/request-draft", json={**body, "description": "d" * 501}),
            400,
            "the limit is 500",
        )
    (wake,) = await pending(server, agent["name"])
    assert (wake.message_id, wake.channel) == (message["id"], where)


async def test_save_and_dismiss_a_draft(server: RunningServer) -> None:
    agent = await register(server.url, "copilot", "draft-save")
    async with server.human() as human:
        where = await channel(human, "drafts-save")
    saved_card = await send(server, agent["token"], block(DESIGN), channel=where)
    other_card = await send(server, agent["token"], block({**DESIGN, "name": "Other"}), channel=where)
    async with server.human() as human:
        since = await last_seq(human)
        template = ok(await human.post(f"/api/sessions/drafts/{saved_card['id']}/save"), 201)
        assert template["id"].startswith("custom-") and template["builtin"] is False
        assert {k: template[k] for k in ("name", "roles")} == {
            "name": DESIGN["name"],
            "roles": DESIGN["roles"],
        }
        listed = ok(await human.get("/api/sessions/templates"))
        assert template in listed
        card = ok(await human.get(f"/api/messages/{saved_card['id']}"))
        assert card["metadata"]["status"] == "saved" and card["metadata"]["template_id"] == template["id"]
        live = await events_since(human, since)
        assert [(e["kind"], e.get("action")) for e in live] == [
            ("message_edited", None),
            ("session_template", "saved"),
        ]
        assert live[1]["template"] == template
        # Saving twice is refused; the first save stands.
        refused(await human.post(f"/api/sessions/drafts/{saved_card['id']}/save"), 409, "is saved")
        # Dismiss: the card says so; again is harmless; a dismissed card cannot be saved.
        dismissed = ok(await human.post(f"/api/sessions/drafts/{other_card['id']}/dismiss"))
        assert dismissed["metadata"]["status"] == "dismissed"
        assert (
            ok(await human.post(f"/api/sessions/drafts/{other_card['id']}/dismiss"))["id"] == other_card["id"]
        )
        refused(await human.post(f"/api/sessions/drafts/{other_card['id']}/save"), 409, "is dismissed")
        refused(await human.post(f"/api/sessions/drafts/{saved_card['id']}/dismiss"), 409, "is saved")
        # Not a draft card: 404.
        plain = ok(await human.post(f"/api/channels/{where}/messages", json={"text": "hello"}), 201)
        refused(await human.post(f"/api/sessions/drafts/{plain['id']}/save"), 404, "no session draft")
        refused(await human.post("/api/sessions/drafts/999999/dismiss"), 404, "no session draft")


async def test_template_routes_list_every_problem_protect_built_ins_and_cap_custom(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with server.human() as human:
        templates = ok(await human.get("/api/sessions/templates"))
        assert [t["id"] for t in templates[:4]] == ["code-review", "debate", "design-critique", "planning"]
        assert all(t["builtin"] for t in templates[:4])
        # Every problem at once, in one 400.
        answer = await human.post(
            "/api/sessions/templates", json={"name": "", "roles": ["A"], "phases": [], "colour": 1}
        )
        body = answer.json()
        assert answer.status_code == 400 and set(body) == {"error", "detail", "problems"}
        assert body["error"] == "invalid_template"
        assert [p.split(":")[0] for p in body["problems"]] == ['"colour"', "name", "roles[0]", "phases"]
        assert all(p in body["detail"] for p in body["problems"])
        not_object = await human.post("/api/sessions/templates", json=[1, 2])
        assert not_object.status_code == 400
        assert not_object.json()["problems"] == ["template: must be a JSON object, not a list"]
        # Built-ins can be neither replaced nor deleted.
        refused(await human.post("/api/sessions/templates", json={**DESIGN, "id": "debate"}), 409, "built-in")
        refused(await human.delete("/api/sessions/templates/debate"), 400, "cannot be deleted")
        refused(await human.delete("/api/sessions/templates/custom-none"), 404, "no custom template")
        # Create and delete, with events.
        since = await last_seq(human)
        made = ok(await human.post("/api/sessions/templates", json={**DESIGN, "id": "spike-judge"}), 201)
        assert made == {**DESIGN, "id": "spike-judge", "builtin": False, "phases": made["phases"]}
        refused(
            await human.post("/api/sessions/templates", json={**DESIGN, "id": "spike-judge"}), 409, "exists"
        )
        assert (await human.delete("/api/sessions/templates/spike-judge")).status_code == 204
        live = [e for e in await events_since(human, since) if e["kind"] == "session_template"]
        assert [(e["action"], e["template"]) for e in live] == [
            ("saved", made),
            ("deleted", {"id": "spike-judge"}),
        ]
        # The custom-template limit (a setting, 50 by default; this server's lowered to 2 more).
        custom = [t for t in ok(await human.get("/api/sessions/templates")) if not t["builtin"]]
        cap = len(custom) + 2
        room = server.app.state.services.room
        monkeypatch.setattr(room, "settings", dataclasses.replace(room.settings, max_session_templates=cap))
        added = [
            ok(await human.post("/api/sessions/templates", json={**DESIGN, "id": f"cap-{n}"}), 201)["id"]
            for n in range(cap - len(custom))
        ]
        refused(await human.post("/api/sessions/templates", json=DESIGN), 409, f"{cap} custom templates")
        for template_id in added:
            assert (await human.delete(f"/api/sessions/templates/{template_id}")).status_code == 204
        ok(await human.post("/api/sessions/templates", json={**DESIGN, "id": "after-cap"}), 201)
        # Agents cannot use the people's routes.
    agent = await register(server.url, "claude", "draft-routes")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        headers = {"Authorization": f"Bearer {agent['token']}"}
        assert (await client.post("/api/sessions/templates", json=DESIGN, headers=headers)).status_code in (
            401,
            403,
        )


async def test_a_saved_template_survives_a_restart(server_factory: Callable[..., RunningServer]) -> None:
    first = server_factory()
    agent = await register(first.url, "claude", "draft-restart")
    card = await send(first, agent["token"], block(DESIGN))
    async with first.human() as human:
        template = ok(await human.post(f"/api/sessions/drafts/{card['id']}/save"), 201)
    first.stop()
    second = server_factory()
    async with second.human() as human:
        assert template in ok(await human.get("/api/sessions/templates"))
        assert ok(await human.get(f"/api/messages/{card['id']}"))["metadata"]["status"] == "saved"
        # It runs: a session of it starts and wakes the first participant.
        cast = {"builder": agent["name"], "judge": agent["name"]}
        started = {"template_id": template["id"], "channel": "general", "cast": cast, "goal": "try it"}
        session = ok(await human.post("/api/sessions", json=started), 201)
        assert (session["template_id"], session["current_agent"]) == (template["id"], agent["name"])
    (wake,) = await pending(second, agent["name"])
    assert DESIGN["name"] in wake.prompt and DESIGN["phases"][0]["prompt"] in wake.prompt
    # What the engine asks for when a session starts from it.
    store: Store = second.app.state.services.store
    found = await store.db.read(lambda c: session_templates.get(c, template["id"]))
    assert found is not None and found.public() == template
