from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import anyio

from backchannel.store import Store
from backchannel.store.schema import MIGRATIONS, migrate


def test_migrations_run_once_in_order_and_upgrade_an_old_database(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # a database made by the first release
        conn.executescript(MIGRATIONS[0])
        conn.execute("PRAGMA user_version = 1")
    store = Store(path)  # upgrades in place
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert "sent_at" in {row[1] for row in conn.execute("PRAGMA table_info(triggers)")}
        assert "job_id" in {row[1] for row in conn.execute("PRAGMA table_info(messages)")}
        assert migrate(conn) == len(MIGRATIONS)  # idempotent: nothing left to run


def test_wal_mode_and_general_exists_and_data_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "data" / "bc.db"
    store = Store(path)

    async def post() -> int:
        posted = await store.post(channel="general", sender="ben", kind="human", text="kept")
        return posted.message.id

    message_id = anyio.run(post)
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reopened = Store(path)
    try:
        message = anyio.run(reopened.message, message_id)
        assert message.text == "kept" and message.channel == "general"
    finally:
        reopened.close()


def test_latest_messages_use_the_channel_index(tmp_path: Path) -> None:
    store = Store(tmp_path / "bc.db")
    store.close()
    with sqlite3.connect(tmp_path / "bc.db") as conn:
        plan = " ".join(
            row[3]
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT * FROM messages WHERE channel_id = 1 ORDER BY id DESC LIMIT 20"
            )
        )
    # A search on (channel_id, id), newest first: no sort step, no scan, at any table size.
    assert plan == "SEARCH messages USING INDEX messages_channel (channel_id=?)"


def test_database_wal_and_shm_are_created_0600_and_old_ones_tightened(tmp_path: Path) -> None:
    """Issue 8 item 11: chat history is private even under a permissive umask."""
    path = tmp_path / "bc.db"
    old_umask = os.umask(0o022)
    try:
        store = Store(path)
        anyio.run(lambda: store.post(channel="general", sender="ben", kind="human", text="private"))
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: 0o600 for p in files}
        store.close()
        os.chmod(path, 0o644)  # a database an older release created
        Store(path).close()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(old_umask)


def _version_before_jobs() -> int:
    """The schema version just before the jobs-board migration (issue 9)."""
    return next(n for n, sql in enumerate(MIGRATIONS) if "CREATE TABLE jobs_board" in sql)


def test_jobs_migration_keeps_proposals_and_their_decisions(tmp_path: Path) -> None:
    """Issue 9: accepted proposals become active jobs with the same id; every proposal card carries
    its decision; thread-free messages stay on the timeline, which uses its partial index."""
    path = tmp_path / "old.db"
    previous = _version_before_jobs()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA foreign_keys=ON")
        for sql in MIGRATIONS[:previous]:
            conn.executescript(sql)
        conn.execute(f"PRAGMA user_version = {previous}")
        conn.execute("INSERT INTO channels(id, name, created_at) VALUES (1, 'general', 0), (2, 'dev', 0)")
        conn.execute(
            "INSERT INTO agents(id, name, base, instance_id, slot, label, color, last_seen, created_at)"
            " VALUES (7, 'claude', 'claude', 'i', 1, 'claude', '#000', 0, 0)"
        )
        for job_id, status, channel in (
            (3, "accepted", "dev"),
            (4, "proposed", "general"),
            (5, "declined", "dev"),
        ):
            cur = conn.execute(
                "INSERT INTO messages(channel_id, sender, agent_id, kind, type, text, metadata, created_at)"
                " VALUES ((SELECT id FROM channels WHERE name = ?), 'claude', 7, 'agent', 'job_proposal',"
                " ?, ?, 1)",
                (channel, f"Job proposal: t{job_id}", json.dumps({"job_id": job_id, "title": f"t{job_id}"})),
            )
            conn.execute(
                "INSERT INTO events(kind, payload, created_at, message_id) VALUES ('message', ?, 1, ?)",
                (
                    json.dumps({"message": {"id": cur.lastrowid, "metadata": {"job_id": job_id}}}),
                    cur.lastrowid,
                ),
            )
            conn.execute(
                "INSERT INTO jobs(id, channel, title, body, status, proposed_by, message_id, created_at,"
                " proposer_id) VALUES (?, ?, ?, 'b', ?, 'claude', ?, 1, 7)",
                (job_id, channel, f"t{job_id}", status, cur.lastrowid),
            )
        conn.execute(
            "INSERT INTO messages(channel_id, sender, kind, text, created_at)"
            " VALUES (1, 'ben', 'human', 'hi', 2)"
        )
        # the old accept woke the proposer in the channel, naming the proposal's id
        conn.execute(
            "INSERT INTO triggers(agent_id, channel, message_id, job_id, sender, prompt, created_at,"
            " updated_at) VALUES (7, 'dev', 1, 3, 'ben', 'p', 1, 1)"
        )
    Store(path).close()
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        jobs = [
            dict(r) for r in conn.execute("SELECT id, status, channel_id, anchor_msg_id, title FROM jobs")
        ]
        assert jobs == [{"id": 3, "status": "active", "channel_id": 2, "anchor_msg_id": 1, "title": "t3"}]
        cards = {
            r["id"]: json.loads(r["metadata"])
            for r in conn.execute("SELECT id, metadata FROM messages WHERE type = 'job_proposal'")
        }
        assert cards == {
            1: {"title": "t3", "body": "b", "status": "accepted", "proposer_id": 7, "job_id": 3},
            2: {"title": "t4", "body": "b", "status": "proposed", "proposer_id": 7},
            3: {"title": "t5", "body": "b", "status": "dismissed", "proposer_id": 7},
        }
        logged = json.loads(conn.execute("SELECT payload FROM events WHERE message_id = 3").fetchone()[0])
        assert logged["message"]["metadata"]["status"] == "dismissed"  # a resuming page sees the decision
        assert conn.execute("SELECT count(*) FROM messages WHERE job_id IS NULL").fetchone()[0] == 4
        plan = " ".join(
            row[3]
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT * FROM messages WHERE channel_id = 1 AND job_id IS NULL"
                " ORDER BY id DESC LIMIT 20"
            )
        )
        assert plan == "SEARCH messages USING INDEX messages_timeline (channel_id=?)"
        # Ids of proposals that became no job are not handed out again; old wake-ups are channel ones.
        conn.execute(
            "INSERT INTO jobs(uid, channel_id, title, created_at, updated_at) VALUES ('u', 1, 'new', 1, 1)"
        )
        assert conn.execute("SELECT max(id) FROM jobs").fetchone()[0] == 6
        assert [r[0] for r in conn.execute("SELECT job_id FROM triggers")] == [0]
        # message_count is a column the database keeps exact: insert, soft delete, delete.
        count = "SELECT message_count FROM jobs WHERE id = 3"
        for text in ("a", "b"):
            conn.execute(
                "INSERT INTO messages(channel_id, sender, kind, text, created_at, job_id)"
                " VALUES (2, 'ben', 'human', ?, 3, 3)",
                (text,),
            )
        assert conn.execute(count).fetchone()[0] == 2
        conn.execute("UPDATE messages SET deleted = 1 WHERE text = 'a'")
        conn.execute("DELETE FROM messages WHERE text = 'b'")
        assert conn.execute(count).fetchone()[0] == 0
        conn.execute("DELETE FROM messages WHERE text = 'a'")  # already deleted: counted once
        assert conn.execute(count).fetchone()[0] == 0
