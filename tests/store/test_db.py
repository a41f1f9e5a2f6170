"""The SQLite plumbing under concurrent use: closing never pulls a connection from under a read."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from backchannel.store._db import Database

# A read that keeps SQLite stepping for a while (tens of milliseconds) without touching a table.
SLOW = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000) SELECT sum(i) FROM n"


def test_close_waits_for_reads_in_flight_then_refuses_new_ones(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.sqlite")
    started = threading.Barrier(5)
    results: list[object] = []

    def reader() -> None:
        def slow(conn: sqlite3.Connection) -> int:
            started.wait()
            return int(conn.execute(SLOW).fetchone()[0])

        try:
            results.append(db.read_sync(slow))
        except RuntimeError as exc:  # pragma: no cover - only if close() won the race to a read
            results.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    started.wait()  # all four reads are inside SQLite now
    db.close()
    for thread in threads:
        thread.join(10)
    # Every read that had started finished with its real answer: close() waited for them.
    assert results == [300000 * 300001 // 2] * 4
    with pytest.raises(RuntimeError, match="closed"):
        db.read_sync(lambda conn: conn.execute("SELECT 1").fetchone())


def test_a_read_outlasting_the_grace_is_interrupted_not_left_on_a_closed_handle(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.sqlite")
    inside = threading.Event()
    outcome: list[BaseException | int] = []
    endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"

    def reader() -> None:
        def forever(conn: sqlite3.Connection) -> int:
            inside.set()
            return int(conn.execute(endless).fetchone()[0])

        try:
            outcome.append(db.read_sync(forever))
        except sqlite3.OperationalError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    assert inside.wait(10)
    db.close(read_grace=0.05)
    thread.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], sqlite3.OperationalError)
    assert "interrupt" in str(outcome[0])


@pytest.mark.anyio
async def test_a_write_answers_once_committed_raises_its_error_and_skips_a_cancelled_turn(
    tmp_path: Path,
) -> None:
    db = Database(tmp_path / "db.sqlite")
    try:
        await db.write(lambda c: c.execute("CREATE TABLE t(x)"))
        assert await db.write(lambda c: c.execute("INSERT INTO t VALUES (1)").lastrowid) == 1
        assert db.read_sync(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 1  # committed

        def fails(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO t VALUES (9)")
            raise ValueError("no")

        with pytest.raises(ValueError, match="no"):
            await db.write(fails)
        # A write whose caller was cancelled before its turn came never runs.
        gate = threading.Event()
        busy = db.on_writer(lambda c: gate.wait(10))
        task = asyncio.ensure_future(db.write(lambda c: c.execute("INSERT INTO t VALUES (2)")))
        await asyncio.sleep(0)  # submitted, queued behind the busy writer
        task.cancel()
        gate.set()
        busy.result()
        assert await db.write(lambda c: c.execute("SELECT group_concat(x) FROM t").fetchone()[0]) == "1"
    finally:
        db.close()
