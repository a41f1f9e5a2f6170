"""Hostile and broken archives (issue 12): a clear 4xx and nothing written, or a skipped record.

One server for the module; every refused import must leave the room's row counts and its uploads
dir exactly as they were.
"""

from __future__ import annotations

import io
import json
import sqlite3
import zipfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from backchannel.archive import MAX_ARCHIVE_BYTES
from tests.conftest import RunningServer, module_server, ok, refused, register

pytestmark = pytest.mark.anyio
MANIFEST = {"schema_version": 1, "product": "backchannel", "archive_id": "x", "created_at": "", "counts": {}}
TABLES = ("messages", "jobs", "rules", "schedules", "channels", "pins")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with module_server(tmp_path_factory, "import-safety") as running:
        yield running


def message(uid: str, text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {
        "uid": uid,
        "channel": "general",
        "sender": "ann",
        "kind": "human",
        "type": "chat",
        "text": text,
        "attachments": [],
        "metadata": {},
        "created_at": 1.0,
        "edited_at": None,
        "deleted": False,
        **extra,
    }


def archive(members: dict[str, Any], *, manifest: dict[str, Any] | None = MANIFEST) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        if manifest is not None:
            zf.writestr("manifest.json", json.dumps(manifest))
        for name, value in members.items():
            zf.writestr(name, value if isinstance(value, bytes | str) else json.dumps(value))
    return out.getvalue()


def schedule(uid: str, **extra: Any) -> dict[str, Any]:
    return {
        "uid": uid,
        "channel": "general",
        "prompt": "p",
        "targets": ["claude"],
        "created_at": 1,
        "updated_at": 1,
        **extra,
    }


def counts(server: RunningServer) -> dict[str, int]:
    with sqlite3.connect(server.settings.db_path) as conn:
        found = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    uploads = server.settings.uploads_dir
    found["uploads"] = len(list(uploads.iterdir())) if uploads.exists() else 0
    return found


async def post(server: RunningServer, data: bytes, name: str = "a.zip") -> Any:
    async with server.human() as human:
        return await human.post("/api/import", files={"file": (name, data, "application/zip")})


async def test_hostile_archives_are_refused_with_nothing_written(server: RunningServer) -> None:
    before = counts(server)
    jsonl = "\n".join(json.dumps(message(f"u{i}")) for i in range(3))
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("manifest.json", json.dumps(MANIFEST))
        zf.writestr("messages.jsonl", b"\n" * (MAX_ARCHIVE_BYTES + 1))  # ~50 KB packed, 50 MB unpacked
    cases: list[tuple[bytes, int, str]] = [
        (archive({"../../evil.txt": "x", "messages.jsonl": jsonl}), 400, "unsafe path"),
        (archive({"/etc/passwd": "x"}), 400, "unsafe path"),
        (archive({"uploads\\..\\x.png": "x"}), 400, "unsafe path"),
        (bomb.getvalue(), 413, "unpacks to"),
        (b"not a zip at all", 400, "not a zip archive"),
        (archive({"messages.jsonl": jsonl}, manifest=None), 400, "manifest.json is missing"),
        (
            archive({}, manifest={**MANIFEST, "product": "slack"}),
            400,
            "not a backchannel or agentchattr archive",
        ),
        (archive({}, manifest={**MANIFEST, "schema_version": 99}), 400, "schema_version 99"),
        (
            archive({}, manifest={**MANIFEST, "product": "agentchattr", "schema_version": 99}),
            400,
            "agentchattr schema_version 99",
        ),
        # hostile JSON: a clear 400, never a 500 or a dropped connection
        (deep_manifest(), 400, "nested too deeply"),
        (archive({"messages.jsonl": deep_line()}), 400, "nested too deeply"),
        (archive({"messages.jsonl": raw_line("NaN")}), 400, "NaN is not a JSON number"),
        (archive({"messages.jsonl": raw_line("Infinity")}), 400, "Infinity is not a JSON number"),
        (archive({"rules.json": '[{"uid": "r", "created_at": -Infinity}]'}), 400, "-Infinity"),
        (archive({"jobs.json": {"not": "a list"}}), 400, "jobs.json must be a JSON list"),
        (archive({"rules.json": "{broken"}), 400, "rules.json is not valid JSON"),
        (
            archive({"messages.jsonl": "\n".join([json.dumps(message("same"))] * 2)}),
            400,
            "duplicate uid 'same'",
        ),
        (
            archive(
                {
                    "messages.jsonl": jsonl,
                    "jobs.json": [
                        {
                            "uid": "j",
                            "channel": "general",
                            "title": "t",
                            "created_at": 1,
                            "updated_at": 1,
                            "messages": [message("u1")],
                        }
                    ],
                }
            ),
            400,
            "duplicate message uid 'u1'",
        ),
    ]
    for data, status, words in cases:
        refused(await post(server, data), status, words)
        assert counts(server) == before, words


def deep_manifest() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", "[" * 50_000 + "]" * 50_000)
    return out.getvalue()


def deep_line() -> str:
    line = json.dumps(message("deep", metadata={"x": "HOLE"}))
    return line.replace('"HOLE"', "[" * 50_000 + "]" * 50_000)


def raw_line(constant: str) -> str:
    return json.dumps(message("odd")).replace('"created_at": 1.0', f'"created_at": {constant}')


async def chunks() -> AsyncIterator[bytes]:
    yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.zip"\r\n\r\n'
    for _ in range(60):
        yield b"x" * (1024 * 1024)


async def test_a_60_mb_upload_is_refused_before_it_is_read(server: RunningServer) -> None:
    before = counts(server)
    refused(await post(server, bytes(60 * 1024 * 1024)), 413, "larger than")  # a 60 MB file
    async with server.human() as human:  # no Content-Length: counted while it streams in
        response = await human.post(
            "/api/import",
            content=chunks(),
            headers={"content-type": "multipart/form-data; boundary=x"},
        )
    refused(response, 413, "larger than")
    assert counts(server) == before


async def test_malformed_records_are_skipped_with_a_warning_and_the_rest_imported(
    server: RunningServer,
) -> None:
    before = counts(server)
    lines = [
        json.dumps(message("good-1", "kept")),
        json.dumps(message("too-long", "x" * 16_001)),  # the room's own max_message_chars
        json.dumps(message("huge-time")).replace('"created_at": 1.0', '"created_at": 1e400'),
        json.dumps(message("huge-int", created_at=2**70)),
        "{not json",
        json.dumps(message("bad-kind", kind="robot")),
        json.dumps(message("bad-text", text=42)),
        json.dumps([1, 2]),
        json.dumps(message("bad-pin", pin={"pinned_at": "soon"})),
        json.dumps(message("odd-image", "kept too", attachments=[{"url": "/uploads/../../etc/passwd"}])),
    ]
    data = archive(
        {
            "messages.jsonl": "\n".join(lines),
            "rules.json": [
                {"uid": "r1", "text": "ok rule", "status": "draft", "created_at": 1, "updated_at": 1},
                {"uid": "r2", "text": "x", "status": "maybe", "created_at": 1, "updated_at": 1},
                {"uid": "r3", "text": "y" * 500, "status": "draft", "created_at": 1, "updated_at": 1},
            ],
            "schedules.json": [
                {"uid": "s1", "channel": "general", "prompt": "p", "targets": "claude"},
                schedule("s2", spec="garbage!!"),
                schedule("s3", spec="", one_shot=False),
                schedule("s4", spec="every 2h"),
            ],
            "templates.json": [
                {"uid": "t1", "id": "mine", "body": '{"name": "no phases"}'},
                {"uid": "t2", "id": "code-review", "body": "{}"},
                {"uid": "t3", "id": "later", "body": "{}", "created_at": 2**70},
            ],
        }
    )
    async with server.human() as human:
        report = ok(await human.post("/api/import", files={"file": ("a.zip", data, "application/zip")}))
        assert report["sections"]["messages"] == {"created": 2, "duplicates": 0, "skipped": 8}
        assert report["sections"]["rules"] == {"created": 1, "duplicates": 0, "skipped": 2}
        assert report["sections"]["schedules"] == {"created": 1, "duplicates": 0, "skipped": 3}
        assert report["sections"]["templates"] == {"created": 0, "duplicates": 0, "skipped": 3}
        warnings = "\n".join(report["warnings"])
        for words in (
            "text must be a string of at most 16000",
            "created_at must be a finite number",
            "created_at must be a number a timestamp can be",
            "text must be a string of at most 160",
            "schedules.json #1: skipped: spec:",
            "a recurring schedule needs a spec",
            "body: ",
            "is a built-in template here",
        ):
            assert words in warnings, (words, warnings)
        assert any("line 5" in w and "not JSON" in w for w in report["warnings"])
        assert any("unknown message kind 'robot'" in w for w in report["warnings"])
        assert any("unknown rule status 'maybe'" in w for w in report["warnings"])
        general = ok(await human.get("/api/channels/general/messages", params={"limit": 5}))["messages"]
        assert next(m for m in general if m["text"] == "kept too")["attachments"] == []  # never a path
    after = counts(server)
    assert after["messages"] == before["messages"] + 2 and after["rules"] == before["rules"] + 1


async def test_one_import_at_a_time_and_people_only(server: RunningServer) -> None:
    archives = server.app.state.archives if hasattr(server.app.state, "archives") else None
    data = archive({"messages.jsonl": json.dumps(message("lock-1"))})
    if archives is None:  # the service is made by the first import
        ok(await post(server, archive({})))
        archives = server.app.state.archives
    assert archives._busy.acquire(blocking=False)  # an import is running
    try:
        refused(await post(server, data), 409, "already running")
    finally:
        archives._busy.release()

    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        response = await anonymous.post("/api/import", files={"file": ("a.zip", data, "application/zip")})
        assert response.status_code in (401, 403)
        assert (await anonymous.get("/api/export")).status_code in (401, 403)
    agent = await register(server.url, "claude", "import-safety")
    bearer = {"Authorization": f"Bearer {agent['token']}"}
    async with httpx.AsyncClient(base_url=server.url, headers=bearer) as as_agent:  # people only
        response = await as_agent.post("/api/import", files={"file": ("a.zip", data, "application/zip")})
        assert response.status_code in (401, 403), response.text
        assert (await as_agent.get("/api/export")).status_code in (401, 403)
    refused(await post(server, b"", name="a.zip"), 400, "not a zip")


async def test_images_are_written_whole_and_only_when_a_message_uses_them(server: RunningServer) -> None:
    used, unused = "a" * 32 + ".png", "b" * 32 + ".png"
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    uploads = server.settings.uploads_dir
    uploads.mkdir(parents=True, exist_ok=True)
    (uploads / used).write_bytes(png[:100])  # a write cut short by a crash, before this import
    attachment = {"url": f"/uploads/{used}", "name": "p.png", "type": "image/png", "size": len(png)}
    data = archive(
        {
            "messages.jsonl": json.dumps(message("with-image", attachments=[attachment])),
            f"uploads/{used}": png,
            f"uploads/{unused}": png,
        }
    )
    async with server.human() as human:
        ok(await human.post("/api/import", files={"file": ("a.zip", data, "application/zip")}))
    assert (uploads / used).read_bytes() == png  # repaired
    assert not (uploads / unused).exists()  # no message points at it: never written
    assert not [p for p in uploads.iterdir() if p.name.endswith(".tmp")]
    # both upload routes serve it through one helper: same bytes, same safety headers
    agent = await register(server.url, "claude", "import-images")
    async with server.human() as human:
        page = await human.get(f"/uploads/{used}")
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {agent['token']}"}
    ) as as_agent:
        read = await as_agent.get(f"/api/uploads/{used}")
    assert page.content == read.content == png
    for header in ("x-content-type-options", "content-security-policy"):
        assert page.headers[header] == read.headers[header], header
    assert (page.headers["cache-control"], read.headers["cache-control"]) == (
        "private, max-age=86400",
        "private, no-store",
    )


def test_a_record_the_database_refuses_is_a_400_and_nothing_is_written(tmp_path: Any) -> None:
    from backchannel.archive import Parsed, merge
    from backchannel.errors import InvalidInput
    from backchannel.store import Store

    store = Store(tmp_path / "db.sqlite")
    try:
        good = {**message("fine"), "reply_to_uid": None, "pin": None, "job_uid": None, "rule_uid": None}
        broken = {**good, "uid": "broken", "created_at": None}  # past validation: NOT NULL fails
        parsed = Parsed(manifest={}, messages=[good, broken])
        with pytest.raises(InvalidInput, match="cannot store"):
            store.db.write_sync(lambda c: merge(c, parsed, max_channels=64))
        assert store.db.read_sync(lambda c: c.execute("SELECT count(*) FROM messages").fetchone()[0]) == 0
    finally:
        store.close()
