from __future__ import annotations

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
        assert "proposer_id" in {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
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
