"""Archives (issue 12): a room with every kind of record exported and imported back, record for record.

One source server is filled once per module (people over REST, one agent over MCP); each test
imports its export somewhere else: an empty data dir (over REST and with no server at all), the
same room again, a busy room, and one channel alone.
"""

from __future__ import annotations

import io
import json
import sqlite3
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from backchannel.archive import Archives
from backchannel.config import Settings
from backchannel.session_templates import BUILTIN
from backchannel.store import Store
from tests.conftest import RunningServer, mcp_client, module_server, ok, register, text_of

pytestmark = pytest.mark.anyio
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "archive-source") as running:
        anyio.run(fill, running)
        yield running


async def fill(server: RunningServer) -> None:
    """Messages with replies, edits, deletes and an image; jobs with threads and a suggestion; a
    job proposal; rules in every status and a proposal card; a summary, pins, schedules."""
    agent = await register(server.url, "claude", "archive-1")
    await server.app.state.services.store.db.write(add_template)
    async with server.human() as human:
        ok(await human.post("/api/channels", json={"name": "dev"}), 201)
        ok(await human.post("/api/channels", json={"name": "quiet"}), 201)  # no records: kept by settings
        ok(await human.patch("/api/settings", json={"title": "Moving room"}))
        first = ok(await human.post("/api/channels/general/messages", json={"text": "hello room"}), 201)
        mention = f"@{agent['name']} please look"  # imported elsewhere, it must wake no one there
        ok(await human.post("/api/channels/general/messages", json={"text": mention}), 201)
        ok(
            await human.post(
                "/api/channels/general/messages", json={"text": "a reply", "reply_to": first["id"]}
            ),
            201,
        )
        edited = ok(await human.post("/api/channels/dev/messages", json={"text": "typo"}), 201)
        ok(await human.patch(f"/api/messages/{edited['id']}", json={"text": "fixed"}))
        gone = ok(await human.post("/api/channels/dev/messages", json={"text": "secret"}), 201)
        ok(await human.delete(f"/api/messages/{gone['id']}"))
        image = ok(
            await human.post(
                "/api/uploads", content=PNG, headers={"content-type": "image/png", "x-filename": "a.png"}
            ),
            201,
        )
        pic = ok(
            await human.post("/api/channels/dev/messages", json={"text": "look", "attachments": [image]}), 201
        )
        ok(await human.post(f"/api/messages/{pic['id']}/pin"), 200)
        ok(await human.post(f"/api/messages/{first['id']}/pin"), 200)
        ok(await human.patch(f"/api/messages/{first['id']}/pin", json={"done": True}))
        job = ok(
            await human.post(
                "/api/jobs", json={"title": "ship it", "channel": "dev", "anchor_msg_id": pic["id"]}
            ),
            201,
        )
        t1 = ok(await human.post(f"/api/jobs/{job['id']}/messages", json={"text": "on it"}), 201)
        ok(
            await human.post(f"/api/jobs/{job['id']}/messages", json={"text": "done?", "reply_to": t1["id"]}),
            201,
        )
        ok(await human.patch(f"/api/jobs/{job['id']}", json={"status": "active"}))
        ok(await human.post("/api/jobs", json={"title": "old", "status": "closed"}), 201)
        for status in ("draft", "active"):
            ok(await human.post("/api/rules", json={"text": f"a {status} rule", "status": status}), 201)
        archived = ok(await human.post("/api/rules", json={"text": "an old rule", "channel": "dev"}), 201)
        ok(await human.patch(f"/api/rules/{archived['id']}", json={"status": "archived"}))
        ok(
            await human.post(
                "/api/schedules", json={"prompt": "standup", "targets": [agent["name"]], "spec": "every 1h"}
            ),
            201,
        )
        async with mcp_client(server.url, agent["token"]) as client:
            for tool, args in (
                ("chat_rules", {"action": "propose", "rule": "be brief", "reason": "why"}),
                ("chat_propose_job", {"title": "idea", "body": "b", "channel": "general"}),
                ("chat_propose_job", {"title": "later", "body": "c", "channel": "general"}),
                ("chat_summary", {"action": "write", "channel": "dev", "text": "we ship friday"}),
                ("chat_send", {"message": "[suggestion] try this", "job_id": job["id"]}),
            ):
                made = await client.call_tool(tool, args)
                assert not made.is_error, text_of(made)
                if args.get("title") == "idea":  # accepted: a job_created card names the new job
                    card = int(made.structured_content["message_id"])  # type: ignore[index]
                    ok(await human.post("/api/jobs", json={"anchor_msg_id": card}), 201)


def template_body(template_id: str) -> str:
    """A valid custom template's stored body: a built-in's roles and phases under another id."""
    public = {**next(iter(BUILTIN.values())).public(), "id": template_id}
    del public["builtin"]
    return json.dumps(public)


def add_template(conn: sqlite3.Connection) -> None:
    """A custom session template row, as the sessions feature stores one."""
    conn.execute(
        "INSERT INTO session_templates(id, uid, body, created_by, created_at) VALUES (?, ?, ?, 'ann', 5.0)",
        ("tpl-a", "tpl-uid-a", template_body("tpl-a")),
    )


async def export(server: RunningServer, channel: str | None = None) -> bytes:
    async with server.human() as human:
        response = await human.get("/api/export", params={"channel": channel} if channel else None)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    return response.content


async def import_(server: RunningServer, data: bytes) -> dict[str, Any]:
    async with server.human() as human:
        return ok(await human.post("/api/import", files={"file": ("room.zip", data, "application/zip")}))


def records(data: bytes) -> dict[str, Any]:
    """An archive's content without what only means something in one room (row ids)."""
    zf = zipfile.ZipFile(io.BytesIO(data))

    def clean(message: dict[str, Any]) -> dict[str, Any]:
        meta = {k: v for k, v in message["metadata"].items() if k not in ("job_id", "rule_id")}
        return {**{k: v for k, v in message.items() if k not in ("id", "reply_to")}, "metadata": meta}

    messages = [clean(json.loads(line)) for line in zf.read("messages.jsonl").splitlines()]
    jobs = [
        {**{k: v for k, v in j.items() if k != "id"}, "messages": [clean(m) for m in j["messages"]]}
        for j in json.loads(zf.read("jobs.json"))
    ]
    rules = [{k: v for k, v in r.items() if k != "id"} for r in json.loads(zf.read("rules.json"))]
    # imported schedules arrive paused: everything else about them is kept
    schedules = [{k: v for k, v in s.items() if k != "active"} for s in json.loads(zf.read("schedules.json"))]
    return {
        "messages": messages,
        "jobs": jobs,
        "rules": rules,
        "summaries": json.loads(zf.read("summaries.json")),
        "schedules": schedules,
        "templates": json.loads(zf.read("templates.json")),
        "uploads": sorted((n, zf.read(n)) for n in zf.namelist() if n.startswith("uploads/")),
    }


def same(left: dict[str, Any], right: dict[str, Any]) -> None:
    """Record for record, naming the first field that differs."""
    for section in right:
        assert len(left[section]) == len(right[section]), section
        for a, b in zip(left[section], right[section], strict=True):
            if isinstance(b, dict):
                diff = {k: (a.get(k), b.get(k)) for k in {*a, *b} if a.get(k) != b.get(k)}  # type: ignore[union-attr]
                assert not diff, (section, diff)
            assert a == b, section


def created(report: dict[str, Any]) -> dict[str, int]:
    return {name: counts["created"] for name, counts in report["sections"].items()}


async def test_round_trip_into_an_empty_room_is_equal_and_a_second_import_creates_nothing(
    source: RunningServer, server_factory: Callable[..., RunningServer]
) -> None:
    data = await export(source)
    zf = zipfile.ZipFile(io.BytesIO(data))
    manifest = json.loads(zf.read("manifest.json"))
    assert manifest["product"] == "backchannel" and manifest["schema_version"] == 1
    assert manifest["counts"]["messages"] >= 8 and manifest["counts"]["jobs"] == 3, manifest
    assert {
        "manifest.json",
        "messages.jsonl",
        "jobs.json",
        "rules.json",
        "summaries.json",
        "schedules.json",
        "templates.json",
    } <= set(zf.namelist())
    original = records(data)
    assert len(original["uploads"]) == 1 and {r["status"] for r in original["rules"]} == {
        "proposed",
        "draft",
        "active",
        "archived",
    }
    assert any(m.get("pin") for m in original["messages"]) and original["summaries"]
    assert [t["uid"] for t in original["templates"]] == ["tpl-uid-a"]
    thread = [m for j in original["jobs"] for m in j["messages"]]
    assert {"suggestion", "chat"} <= {m["type"] for m in thread} and any(m["reply_to_uid"] for m in thread)

    target = server_factory()
    report = await import_(target, data)
    assert report["channels"] == {"created": ["dev", "quiet"], "remapped": {}}
    assert (
        created(report)["jobs"] == 3 and created(report)["rules"] == 4 and created(report)["schedules"] == 1
    )
    same(records(await export(target)), original)
    assert created(report)["templates"] == 1
    async with target.human() as human:  # the room's settings and its empty channel came along
        assert ok(await human.get("/api/settings"))["title"] == "Moving room"
        assert "quiet" in [c["name"] for c in ok(await human.get("/api/channels"))]

    # references point at the new ids: the reply, the job's anchor, the job_created card, the rule card
    async with target.human() as human:
        general = ok(await human.get("/api/channels/general/messages", params={"limit": 50}))["messages"]
        reply = next(m for m in general if m["text"] == "a reply")
        assert next(m for m in general if m["id"] == reply["reply_to"])["text"] == "hello room"
        jobs = ok(await human.get("/api/jobs"))
        shipped = next(j for j in jobs if j["title"] == "ship it")
        dev = ok(await human.get("/api/channels/dev/messages", params={"limit": 50}))["messages"]
        assert next(m for m in dev if m["id"] == shipped["anchor_msg_id"])["text"] == "look"
        titles = {j["id"]: j["title"] for j in jobs}
        cards = [titles[m["metadata"]["job_id"]] for m in general if m["type"] == "job_created"]
        assert sorted(cards) == ["idea", "old"]
        accepted = next(
            m for m in general if m["type"] == "job_proposal" and m["metadata"]["status"] == "accepted"
        )
        assert titles[accepted["metadata"]["job_id"]] == "idea"
        rules = ok(await human.get("/api/rules"))
        proposal = next(m for m in general if m["type"] == "rule_proposal")
        assert next(r for r in rules if r["id"] == proposal["metadata"]["rule_id"])["text"] == "be brief"
        image = next(m for m in dev if m["text"] == "look")["attachments"][0]["url"]
        assert (await human.get(image)).content == PNG

    again = await import_(target, data)
    assert set(created(again).values()) == {0} and again["channels"]["created"] == []
    assert again["sections"]["messages"]["duplicates"] == report["sections"]["messages"]["created"]
    same(records(await export(target)), original)


async def test_importing_a_room_into_itself_and_into_a_busy_room(
    source: RunningServer, server_factory: Callable[..., RunningServer]
) -> None:
    data = await export(source)
    same = await import_(source, data)  # every record is already here (its derived uids)
    assert set(created(same).values()) == {0}, same

    busy = server_factory()
    async with busy.human() as human:
        ok(await human.post("/api/channels/general/messages", json={"text": "mine"}), 201)
        ok(await human.post("/api/rules", json={"text": "house rule", "status": "active"}), 201)
        report = await import_(busy, data)
        assert created(report)["messages"] == len(records(data)["messages"]) + sum(
            len(j["messages"]) for j in records(data)["jobs"]
        )
        general = ok(await human.get("/api/channels/general/messages", params={"limit": 50}))["messages"]
        assert "mine" in [m["text"] for m in general] and "hello room" in [m["text"] for m in general]
        assert {"house rule", "a active rule"} <= {r["text"] for r in ok(await human.get("/api/rules"))}


async def test_one_channel_export_and_an_import_with_no_server(source: RunningServer, tmp_path: Path) -> None:
    data = await export(source, "dev")
    one = records(data)
    assert {m["channel"] for m in one["messages"]} == {"dev"}
    assert {j["channel"] for j in one["jobs"]} == {"dev"} and [s["channel"] for s in one["summaries"]] == [
        "dev"
    ]
    async with source.human() as human:
        refused = await human.get("/api/export", params={"channel": "nowhere"})
    assert refused.status_code == 404

    settings = Settings(data_dir=tmp_path / "offline")
    store = Store(settings.db_path)
    try:
        archives = Archives(store, settings.uploads_dir, settings.max_channels, settings.max_upload_bytes)
        report = archives.import_sync(io.BytesIO(data))
        assert report["channels"]["created"] == ["dev"]
        out = io.BytesIO()
        archives.export_to(out, "dev")
    finally:
        store.close()
    same(records(out.getvalue()), one)


async def test_agents_are_not_woken_and_pages_are_told_to_reload(
    source: RunningServer, server_factory: Callable[..., RunningServer]
) -> None:
    target = server_factory()
    agent = await register(target.url, "claude", "archive-2")
    data = await export(source)
    async with target.human() as human, mcp_client(target.url, agent["token"]) as client:
        ok(await human.post("/api/channels/general/messages", json={"text": "today"}), 201)
        await client.call_tool("chat_read", {"channel": "general"})  # the agent is caught up
        seq = ok(await human.get("/api/events", params={"since": 0, "limit": 1}))["last_seq"]
        report = await import_(target, data)
        logged = ok(await human.get("/api/events", params={"since": seq}))["events"]
        # the imported history is old: the agent's next read has nothing new for it
        again = await client.call_tool("chat_read", {"channel": "general"})
        assert "Stop polling" in text_of(again), text_of(again)
        # display order stays by id, and the report says the old messages come after today's
        general = ok(await human.get("/api/channels/general/messages", params={"limit": 50}))["messages"]
        texts = [m["text"] for m in general]
        assert texts.index("today") < texts.index("hello room")
    assert any("older than messages already in #general" in w for w in report["warnings"]), report
    assert [e["kind"] for e in logged] == ["reset", "settings"]  # the room's title came along
    store = target.app.state.services.store
    assert await store.pending_triggers((await store.agent(agent["name"])).id) == []


def test_cli_export_and_import_without_a_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from backchannel.cli import app

    monkeypatch.setenv("BACKCHANNEL_URL", "http://127.0.0.1:9")  # nothing listens: the data dir is used
    runner = CliRunner()
    first, second = tmp_path / "a", tmp_path / "b"
    store = Store(Settings(data_dir=first).db_path)
    store.db.write_sync(
        lambda c: c.execute(
            "INSERT INTO messages(channel_id, sender, kind, type, text, created_at)"
            " SELECT id, 'ann', 'human', 'chat', 'carried over', 1.0 FROM channels WHERE name = 'general'"
        )
    )
    store.close()
    archive = tmp_path / "room.zip"
    result = runner.invoke(app, ["export", str(archive), "--data-dir", str(first)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["import", str(archive), "--data-dir", str(second)])
    assert result.exit_code == 0, result.output
    assert "messages: 1 created" in result.output
    with sqlite3.connect(Settings(data_dir=second).db_path) as conn:
        assert conn.execute("SELECT text FROM messages").fetchall() == [("carried over",)]
    result = runner.invoke(app, ["import", str(tmp_path / "missing.zip"), "--data-dir", str(second)])
    assert result.exit_code == 1 and "no such file" in result.output
    deep = tmp_path / "deep.zip"
    with zipfile.ZipFile(deep, "w") as zf:  # hostile JSON: one error line, never a traceback
        zf.writestr("manifest.json", "[" * 50_000 + "]" * 50_000)
    result = runner.invoke(app, ["import", str(deep), "--data-dir", str(second)])
    assert result.exit_code == 1 and "nested too deeply" in result.output, result.output
    assert "Traceback" not in result.output
    big = tmp_path / "big.zip"
    with big.open("wb") as fh:  # sparse: 60 MB on paper, refused before a byte is read
        fh.truncate(60 * 1024 * 1024)
    result = runner.invoke(app, ["import", str(big), "--data-dir", str(second)])
    assert result.exit_code == 1 and "larger than" in result.output, result.output


def test_a_stalled_export_gives_up_and_at_most_two_run_at_once(tmp_path: Path) -> None:
    import os
    import time

    from backchannel.errors import Conflict

    settings = Settings(data_dir=tmp_path / "room")
    store = Store(settings.db_path)
    name = "c" * 32 + ".png"
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    (settings.uploads_dir / name).write_bytes(PNG + os.urandom(3 * 2**20))  # more than the pipe holds
    attachments = json.dumps([{"url": f"/uploads/{name}", "name": "big.png", "type": "image/png", "size": 1}])
    store.db.write_sync(
        lambda c: c.execute(
            "INSERT INTO messages(channel_id, sender, kind, type, text, attachments, created_at)"
            " SELECT id, 'ann', 'human', 'chat', 'big', ?, 1.0 FROM channels WHERE name = 'general'",
            (attachments,),
        )
    )
    try:
        archives = Archives(store, settings.uploads_dir, 64, 10 * 2**20, stall_seconds=0.3)
        stalled = archives.export(None)
        next(stalled)  # a client that read one chunk and went quiet
        never = archives.export(None)  # a response that never started
        with pytest.raises(Conflict, match="2 exports are already running"):
            archives.export(None)
        deadline = time.monotonic() + 10
        while True:  # both give up after the stall time and free their places
            try:
                third = archives.export(None)
                break
            except Conflict:
                assert time.monotonic() < deadline, "a stalled export never ended"
                time.sleep(0.05)
        assert len(b"".join(third)) > 3 * 2**20  # a reader that keeps up gets the whole archive
        del stalled, never
    finally:
        store.close()
