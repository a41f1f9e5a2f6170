"""Issue 8 item 1 at the storage layer: removed text leaves the database file, not only the API.

Deleting or editing a message rewrites its logged copies, merges the search index and empties the
WAL; the bytes on disk are searched directly. Older databases are healed by the migration.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import anyio

from backchannel.store import Store
from backchannel.store.schema import MIGRATIONS, _split  # pyright: ignore[reportPrivateUsage]

SCRUB_MIGRATION = next(i for i, sql in enumerate(MIGRATIONS) if "events ADD COLUMN message_id" in sql)


def on_disk(path: Path) -> bytes:
    """The database and whatever side files SQLite keeps next to it."""
    return b"".join(p.read_bytes() for p in path.parent.glob(f"{path.name}*") if p.is_file())


def test_deleted_and_edited_text_is_gone_from_the_files_while_open_and_after_close(tmp_path: Path) -> None:
    path = tmp_path / "bc.db"
    store = Store(path)

    async def scenario() -> list[str]:
        for i in range(30):  # a realistic index with several segments around the secrets
            await store.post(channel="general", sender="ben", kind="human", text=f"filler message {i}")
        gone = await store.post(channel="general", sender="ben", kind="human", text="quokka7788 is the pin")
        fixed = await store.post(channel="general", sender="ben", kind="human", text="narwhal5566 typo")
        await store.delete_message(gone.message.id)
        await store.edit_message(fixed.message.id, "corrected")
        return [m.text for m in await store.search("corrected", None, 10)]

    try:
        assert anyio.run(scenario) == ["corrected"]
        data = on_disk(path)
        assert b"filler message 29" in data  # the probe does see stored text
        assert b"quokka7788" not in data and b"narwhal5566" not in data
    finally:
        store.close()
    data = on_disk(path)
    assert b"quokka7788" not in data and b"narwhal5566" not in data


def test_deleting_a_channel_drops_its_messages_from_the_log_and_frees_its_uploads(tmp_path: Path) -> None:
    store = Store(tmp_path / "bc.db")
    shared = {"url": "/uploads/" + "a" * 32 + ".png"}
    only_here = {"url": "/uploads/" + "b" * 32 + ".png"}

    async def scenario() -> list[str]:
        await store.create_channel("scratch", 10)
        await store.post(channel="general", sender="ben", kind="human", text="kept", attachments=[shared])
        await store.post(
            channel="scratch", sender="ben", kind="human", text="ibex3141", attachments=[shared, only_here]
        )
        _, orphaned = await store.delete_channel("scratch")
        log = json.dumps([e.public() for e in await store.events_since(0, 100)])
        assert "ibex3141" not in log and "kept" in log
        return orphaned

    try:
        assert anyio.run(scenario) == [only_here["url"].removeprefix("/uploads/")]
    finally:
        store.close()


def test_migration_scrubs_what_older_releases_left_in_the_log(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # a database as the release before the scrub left it
        for sql in MIGRATIONS[:SCRUB_MIGRATION]:
            for statement in _split(sql):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCRUB_MIGRATION}")
        now = time.time()
        conn.execute("INSERT INTO channels(name, created_at) VALUES ('general', ?)", (now,))
        image = {"url": "/uploads/" + "c" * 32 + ".png"}
        rows = [  # (text now, deleted, edited, text the old release logged)
            ("", 1, now, "secret gecko2718"),
            ("new words", 0, now, "old words yak1618"),
            ("untouched", 0, None, "untouched"),
        ]
        for text, deleted, edited, logged in rows:
            cur = conn.execute(
                "INSERT INTO messages(channel_id, sender, kind, text, attachments, created_at, edited_at,"
                " deleted) VALUES (1, 'ben', 'human', ?, ?, ?, ?, ?)",
                (text, json.dumps([] if deleted else [image]), now, edited, deleted),
            )
            logged_message = {"id": cur.lastrowid, "text": logged, "attachments": [image], "deleted": False}
            conn.execute(
                "INSERT INTO events(kind, payload, created_at) VALUES ('message', ?, ?)",
                (json.dumps({"message": logged_message}), now),
            )
    store = Store(path)
    try:
        events = anyio.run(store.events_since, 0, 100)
        texts = [(e.payload["message"]["text"], e.payload["message"]["deleted"]) for e in events]
        assert texts == [("", True), ("new words", False), ("untouched", False)]
        assert events[0].payload["message"]["attachments"] == []
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        referenced = conn.execute(
            "SELECT name, message_id FROM message_uploads ORDER BY message_id"
        ).fetchall()
    assert referenced == [("c" * 32 + ".png", 2), ("c" * 32 + ".png", 3)]
