"""The SQLite plumbing under concurrent use: closing never pulls a connection from under a read,
and writes that queue up are committed in groups without losing or misreporting any of them."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from backchannel.store import _db
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


# -- writes committed in groups -------------------------------------------------------------------
Write = Callable[[sqlite3.Connection], Any]


def queued_together(db: Database) -> threading.Event:
    """Hold the writer until the returned gate is set, so the writes submitted meanwhile queue up
    and are committed as one group."""
    gate = threading.Event()
    db.on_writer(lambda c: gate.wait(10))
    return gate


async def in_one_group(
    db: Database, *fns: Write, alone: tuple[int, ...] = (), seconds: float = 60.0
) -> list[Any]:
    """Each fn's answer (or error) when all were queued together; ``alone`` indexes write alone.
    The group's time limit is ``seconds``, long by default: a stall of a loaded machine must not
    split a group a test counts the COMMITs of."""
    gate = queued_together(db)
    tasks = [asyncio.ensure_future(db.write(fn, alone=i in alone)) for i, fn in enumerate(fns)]
    await asyncio.sleep(0.05)  # all queued behind the held writer
    limit, _db.GROUP_SECONDS = _db.GROUP_SECONDS, seconds
    try:
        gate.set()
        with anyio.fail_after(10):  # an answer that never comes fails here, not by hanging the suite
            return list(await asyncio.gather(*tasks, return_exceptions=True))
    finally:
        _db.GROUP_SECONDS = limit


def arm_full_disk(db: Database) -> Write:
    """A write that fails the way SQLITE_FULL or IOERR does: SQLite has already rolled the whole
    transaction back when the error reaches the caller (a TEMP trigger's RAISE(ROLLBACK))."""

    def arm(c: sqlite3.Connection) -> None:
        c.execute("CREATE TEMP TABLE full_disk(x)")
        c.execute(
            "CREATE TEMP TRIGGER full_disk_t AFTER INSERT ON full_disk"
            " BEGIN SELECT RAISE(ROLLBACK, 'database or disk is full'); END"
        )

    db.on_writer(arm).result()
    return lambda c: c.execute("INSERT INTO full_disk VALUES (1)")


def insert(x: int) -> Write:
    return lambda c: c.execute("INSERT INTO t VALUES (?)", (x,)).lastrowid


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(tmp_path / "db.sqlite")
    try:
        await db.write(lambda c: c.execute("CREATE TABLE t(x)"))
        yield db
    finally:
        db.close()


def rows(db: Database) -> list[int]:
    return db.read_sync(lambda c: [r[0] for r in c.execute("SELECT x FROM t ORDER BY rowid")])


def statements(db: Database) -> list[str]:
    seen: list[str] = []
    db.on_writer(lambda c: c.set_trace_callback(seen.append)).result()
    return seen


@pytest.mark.anyio
async def test_writes_queued_together_share_one_commit_and_one_that_raises_is_undone_alone(
    db: Database,
) -> None:
    def fails(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t VALUES (99)")
        raise ValueError("this one only")

    seen = statements(db)
    results = await in_one_group(db, insert(1), insert(2), fails, insert(3))
    assert results[:2] == [1, 2] and results[3] == 3 and isinstance(results[2], ValueError)
    assert rows(db) == [1, 2, 3]
    assert seen.count("BEGIN IMMEDIATE") == 1 and seen.count("COMMIT") == 1


@pytest.mark.anyio
async def test_when_sqlite_ends_the_transaction_the_culprit_fails_and_the_rest_run_again(
    db: Database,
) -> None:
    """The writes before the one SQLite's rollback came under were rolled back with it, so they
    run again (never answered as committed, never given its error)."""
    doomed = arm_full_disk(db)

    def own_error(c: sqlite3.Connection) -> None:
        raise ValueError("its own")

    results = await in_one_group(db, insert(1), own_error, doomed, insert(2))
    assert results[0] == 1 and results[3] == 2
    assert isinstance(results[1], ValueError) and isinstance(results[2], sqlite3.IntegrityError)
    assert rows(db) == [1, 2]


@pytest.mark.anyio
async def test_a_failed_commit_answers_every_write_in_its_group_with_the_error(db: Database) -> None:
    """A COMMIT that fails may have landed for all we know: nothing in it is run again."""

    def violates(c: sqlite3.Connection) -> None:  # checked only at COMMIT
        c.execute("CREATE TABLE IF NOT EXISTS parent(id INTEGER PRIMARY KEY)")
        c.execute("CREATE TABLE IF NOT EXISTS child(p REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
        c.execute("INSERT INTO child VALUES (7)")

    results = await in_one_group(db, insert(1), violates, insert(2))
    assert all(isinstance(r, sqlite3.IntegrityError) for r in results), results
    assert rows(db) == []
    assert await db.write(insert(3)) == 1  # the writer goes on


@pytest.mark.anyio
async def test_no_answer_in_a_group_is_lost(db: Database) -> None:
    """A write raising StopIteration (a Future refuses one), or a write connection that cannot be
    opened, still answers every caller."""

    def stops(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t VALUES (5)")
        next(iter([]))

    results = await in_one_group(db, insert(1), stops, insert(2))
    assert results[0] == 1 and results[2] == 2 and isinstance(results[1], RuntimeError)

    real = db._write_conn  # pyright: ignore[reportPrivateUsage]
    opened: list[int] = []

    def fails_once() -> sqlite3.Connection:
        opened.append(1)
        if len(opened) == 2:  # the first is the gate's (queued_together), the second the group's
            raise sqlite3.OperationalError("unable to open database file")
        return real()

    db._write_conn = fails_once  # pyright: ignore[reportPrivateUsage]
    try:
        results = await in_one_group(db, insert(3), insert(4))
    finally:
        db._write_conn = real  # pyright: ignore[reportPrivateUsage]
    assert all(isinstance(r, sqlite3.OperationalError) for r in results), results
    assert rows(db) == [1, 2]


@pytest.mark.anyio
async def test_a_long_write_runs_alone_and_a_group_stops_growing_when_it_has_run_long(db: Database) -> None:
    """``alone`` keeps a write out of every group; a group past GROUP_SECONDS commits what it ran
    and the writes after go next, so they do not wait for a slow one ahead of them."""
    seen = statements(db)
    assert await in_one_group(db, insert(1), insert(2), insert(3), alone=(1,)) == [1, 2, 3]
    assert seen.count("COMMIT") == 3  # write 1 on its own, then 2 alone, then 3 on its own
    seen.clear()

    def slow(c: sqlite3.Connection) -> int:
        time.sleep(_db.GROUP_SECONDS * 2)
        return insert(4)(c)

    assert await in_one_group(db, slow, insert(5), insert(6), seconds=_db.GROUP_SECONDS) == [4, 5, 6]
    assert seen.count("COMMIT") == 2  # [slow] then [5, 6]


@pytest.mark.anyio
async def test_a_caller_that_left_before_its_group_ran_is_skipped(db: Database) -> None:
    gate = queued_together(db)
    kept = asyncio.ensure_future(db.write(insert(1)))
    left = asyncio.ensure_future(db.write(insert(2)))
    await asyncio.sleep(0.05)
    left.cancel()
    gate.set()
    assert await kept == 1
    assert rows(db) == [1]


@pytest.mark.anyio
async def test_a_caller_that_leaves_while_its_group_runs_is_not_run_again(db: Database) -> None:
    doomed = arm_full_disk(db)
    running, go_on = threading.Event(), threading.Event()

    def first(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t VALUES (1)")
        running.set()
        go_on.wait(10)

    gate = queued_together(db)
    leaving = asyncio.ensure_future(db.write(first))
    failing = asyncio.ensure_future(db.write(doomed))
    await asyncio.sleep(0.05)
    gate.set()
    assert await anyio.to_thread.run_sync(running.wait, 10)
    leaving.cancel()  # while its write runs; SQLite then rolls the group back for the next one
    go_on.set()
    with pytest.raises(sqlite3.IntegrityError):
        await failing
    await db.write(lambda c: None)  # everything queued before this has run
    assert rows(db) == []


@pytest.mark.anyio
async def test_a_transaction_maintenance_left_open_is_rolled_back_not_left_to_fail_writes(
    db: Database,
) -> None:
    def leaves_one_open(c: sqlite3.Connection) -> None:
        c.execute("BEGIN IMMEDIATE")
        c.execute("INSERT INTO t VALUES (9)")
        raise sqlite3.OperationalError("COMMIT failed: disk I/O error")

    with pytest.raises(sqlite3.OperationalError):
        db.on_writer(leaves_one_open).result()
    assert await db.write(insert(1)) == 1
    assert rows(db) == [1]
