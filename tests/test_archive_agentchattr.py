"""agentchattr in (issue 12): its data directory (from the shell, no server) and its export zip
(over REST) import with every field mapped; a second import creates nothing."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from backchannel.archive import Archives, parse_archive
from backchannel.archive_agentchattr import convert, fingerprint
from backchannel.cli import app
from backchannel.config import Settings
from backchannel.store import Store, agents
from backchannel.store import room_settings as rows
from tests.conftest import RunningServer, module_server, ok
from tests.fixtures.agentchattr import PNG, T0, build_data_dir, export_zip

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "archive-agentchattr") as running:
        yield running


def exported(data_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The room's content as its own export reads it, and its stored room settings."""
    settings = Settings(data_dir=data_dir)
    store = Store(settings.db_path)
    try:
        out = io.BytesIO()
        Archives(store, settings.uploads_dir, 64, 10 * 2**20).export_to(out, None)
        room = store.db.read_sync(rows.load)
    finally:
        store.close()
    zf = zipfile.ZipFile(out)
    content = {
        "messages": {m["uid"]: m for m in map(json.loads, zf.read("messages.jsonl").splitlines())},
        "jobs": {j["uid"]: j for j in json.loads(zf.read("jobs.json"))},
        "rules": {r["uid"]: r for r in json.loads(zf.read("rules.json"))},
        "summaries": json.loads(zf.read("summaries.json")),
        "schedules": {s["uid"]: s for s in json.loads(zf.read("schedules.json"))},
        "uploads": {n: zf.read(n) for n in zf.namelist() if n.startswith("uploads/")},
    }
    return content, room


def test_a_data_dir_imports_with_every_field_mapped_and_twice_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKCHANNEL_URL", "http://127.0.0.1:9")  # no server: straight into the data dir
    source = build_data_dir(tmp_path / "agentchattr")
    target = tmp_path / "backchannel"
    result = CliRunner().invoke(app, ["import", "agentchattr", str(source), "--data-dir", str(target)])
    assert result.exit_code == 0, result.output
    assert "messages: 13 created" in result.output and "jobs: 3 created" in result.output
    assert "rules: 4 created" in result.output and "schedules: 2 created" in result.output
    assert "ignored" not in result.output  # settings.json is part of the format, and applied
    room, settings = exported(target)

    m = room["messages"]
    legacy = fingerprint("user", "legacy line without a uid", T0 + 3, "general")
    assert set(m) == {"u-1", "u-2", legacy, "u-4", "u-5", "u-6", "u-7", "u-8", "u-9", "u-noid"}
    assert [m[u]["kind"] for u in ("u-1", "u-2", "u-4", "u-6")] == ["human", "agent", "system", "agent"]
    assert m["u-2"]["reply_to_uid"] == "u-1" and m["u-2"]["created_at"] == T0 + 2
    assert m["u-1"]["pin"]["done"] is True and m["u-5"]["pin"]["done"] is False
    assert m["u-5"]["channel"] == "design"
    (image,) = m["u-5"]["attachments"]
    assert image["name"] == "shot.png" and image["type"] == "image/png"
    assert room["uploads"] == {f"uploads/{image['url'].removeprefix('/uploads/')}": PNG}
    assert m["u-7"]["job_uid"] == "job-2"  # the job_created card names the new job
    assert m["u-8"]["rule_uid"] == "r-2" and m["u-8"]["metadata"]["status"] == "proposed"
    assert m["u-6"]["metadata"]["status"] == "accepted"
    assert m["u-9"]["metadata"]["choices"] == ["a", "b"]

    j = room["jobs"]
    old = fingerprint("user", "Old chore", T0 + 10, "general", "")
    assert {k: v["status"] for k, v in j.items()} == {old: "closed", "job-2": "active", "job-3": "todo"}
    fix = j["job-2"]
    assert (fix["assignee"], fix["anchor_message_uid"], fix["created_at"]) == ("codex", "u-6", T0 + 12)
    thread = {t["uid"]: t for t in fix["messages"]}
    assert thread["jm-1"]["type"] == "suggestion" and thread["jm-1"]["metadata"] == {"resolution": "accepted"}
    assert thread["jm-2"]["deleted"] is True and thread["jm-0"]["kind"] == "agent"
    assert j["job-3"]["channel"] == "design"

    r = room["rules"]
    draft = fingerprint("user", "no force pushes", T0 + 32, "", "")
    assert {k: v["status"] for k, v in r.items()} == {
        "r-1": "active",
        "r-2": "proposed",
        draft: "draft",
        "r-4": "archived",
    }
    assert r["r-2"]["message_uid"] == "u-8" and r["r-4"]["updated_at"] == T0 + 40
    assert room["summaries"] == [
        {"channel": "general", "text": "we fixed login", "author": "claude", "updated_at": T0 + 50}
    ]
    s = room["schedules"]
    daily, ci = s["agentchattr-schedule-a1b2c3d4"], s["agentchattr-schedule-e5f6a7b8"]
    assert (daily["spec"], daily["targets"], daily["active"]) == ("daily at 09:00", ["claude"], False)
    assert (ci["spec"], ci["channel"], ci["last_run"]) == ("every 2 hours", "design", T0 - 10)
    assert settings["title"] == "Team room" and settings["loop_guard_hops"] == 6
    assert settings["custom_roles"] == ["security"]  # builder and reviewer are presets here

    again = CliRunner().invoke(
        app, ["import", "agentchattr", str(source), "--data-dir", str(target), "--json"]
    )
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert {c["created"] for c in report["sections"].values()} == {0}
    assert exported(target)[0] == room

    # roles.json: an agent gets its role back when it first joins (once; a later rejoin keeps its own)
    store = Store(Settings(data_dir=target).db_path)
    try:

        def join(conn: Any, base: str) -> Any:
            return agents.register(
                conn,
                base=base,
                instance_id="i-1",
                label=None,
                token_hash=f"h-{base}",
                reclaim_hash=None,
                crash_timeout=60.0,
                color=lambda slot: "#123456",
            ).agent

        assert store.db.write_sync(lambda c: join(c, "claude")).role == "reviewer"
        assert store.db.write_sync(lambda c: join(c, "gemini")).role == ""
    finally:
        store.close()


async def test_its_export_zip_imports_over_rest(server: RunningServer) -> None:
    async with server.human() as human:
        files = {"file": ("agentchattr-export.zip", export_zip(), "application/zip")}
        report = ok(await human.post("/api/import", files=files))
        assert report["sections"]["messages"]["created"] == 13
        assert report["sections"]["jobs"]["created"] == 3 and report["sections"]["summaries"]["created"] == 1
        assert any("1a2b3c4d.png is missing" in w for w in report["warnings"])
        general = ok(await human.get("/api/channels/general/messages", params={"limit": 50}))["messages"]
        reply = next(x for x in general if x["text"] == "on it")
        assert next(x for x in general if x["id"] == reply["reply_to"])["text"] == "hello team"
        again = ok(await human.post("/api/import", files=files))
        assert {c["created"] for c in again["sections"].values()} == {0}


def test_schedules_without_an_id_or_a_usable_spec() -> None:
    """Two id-less schedules both import; 90 s is rounded with a warning; one with neither a
    daily time nor an interval is skipped, never imported as a recurring schedule without a spec."""
    base = {"prompt": "check CI", "targets": ["claude"], "channel": "general", "created_at": T0}
    schedules = [
        {**base, "interval_seconds": 90},
        {**base, "interval_seconds": 90},
        {**base, "id": "c3", "daily_at": "25:99"},
        {**base, "id": "c4"},
    ]
    data, warnings = convert({"schedules.json": json.dumps(schedules).encode()}, lambda name: None)
    parsed = parse_archive(io.BytesIO(data))
    assert [s["spec"] for s in parsed.schedules] == ["every 1 minute", "every 1 minute"]
    assert len({s["uid"] for s in parsed.schedules}) == 2
    assert any("every 90 seconds is rounded" in w for w in warnings), warnings
    assert parsed.report.sections["schedules"].skipped == 2
    assert sum("a recurring schedule needs a spec" in w for w in parsed.report.warnings) == 2


def test_a_data_dir_with_more_than_50_mb_of_images_imports_from_the_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The data-dir route reads a local, trusted directory: no 50 MB upload cap, images from disk."""
    monkeypatch.setenv("BACKCHANNEL_URL", "http://127.0.0.1:9")  # no server: straight into the data dir
    source = build_data_dir(tmp_path / "agentchattr")
    pictures = []
    for n in range(6):  # 6 x 9 MB: each within the upload limit, together past 50 MB
        name = f"big{n}.png"
        with (source.parent / "uploads" / name).open("wb") as fh:
            fh.write(PNG[:8] + bytes([n]))
            fh.truncate(9 * 2**20)  # sparse zero padding: cheap to make
        pictures.append({"name": name, "url": f"/uploads/{name}"})
    line = {
        "id": 50,
        "uid": "u-big",
        "sender": "user",
        "text": "screenshots",
        "type": "chat",
        "timestamp": T0 + 50,
        "channel": "general",
        "attachments": pictures,
    }
    with (source / "agentchattr_log.jsonl").open("a") as fh:
        fh.write(json.dumps(line) + "\n")
    target = tmp_path / "backchannel"
    result = CliRunner().invoke(app, ["import", "agentchattr", str(source), "--data-dir", str(target)])
    assert result.exit_code == 0, result.output
    stored = sorted(p.stat().st_size for p in Settings(data_dir=target).uploads_dir.iterdir())
    assert stored == [len(PNG), *[9 * 2**20] * 6], stored
