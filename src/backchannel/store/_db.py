"""SQLite plumbing: one writer thread, per-thread readers, WAL, explicit transactions.

Writes are serialised on a single thread that owns the only write connection, so there is never
lock contention between writers and every write is a ``BEGIN IMMEDIATE`` transaction committed
before the caller's ``await`` returns: an acknowledged write survives ``kill -9`` (WAL keeps
committed transactions across a process crash even with ``synchronous=NORMAL``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import anyio.to_thread

T = TypeVar("T")


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    # Deleted content is overwritten, not left in free pages: a deleted message is gone from disk.
    conn.execute("PRAGMA secure_delete=ON")
    return conn


def _chmod_private(path: str, flags: int) -> None:
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def make_private(path: Path) -> None:
    """Create the database file 0600 before SQLite opens it (its WAL and SHM files copy that mode).

    An existing database and its side files from an older release are tightened to 0600 too.
    """
    _chmod_private(str(path), os.O_RDWR | os.O_CREAT)
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            _chmod_private(f"{path}{suffix}", os.O_RDONLY)


def truncate_wal(conn: sqlite3.Connection) -> bool:
    """Copy the WAL into the database and empty the file; False if a reader's snapshot kept it."""
    conn.execute("PRAGMA busy_timeout=200")  # a long-running reader must not stall the writer
    try:
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    finally:
        conn.execute("PRAGMA busy_timeout=30000")
    return not busy


class Database:
    """Async facade over SQLite; ``write`` and ``read`` take a function of a connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        make_private(path)
        self._writer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._writer: sqlite3.Connection | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        # Reads in flight on any thread: close() waits for them, because closing a connection
        # another thread is still stepping through is a use-after-free inside SQLite (a segfault).
        self._reads_done = threading.Condition()
        self._active_reads = 0
        self._closed = False
        # Bumped after every commit that changed the agents table (see track_agents): the token
        # cache in registry.py is valid only while this number is the one it was filled under.
        self.agents_generation = 0
        self._agents_changed = False

    def _write_conn(self) -> sqlite3.Connection:
        if self._writer is None:
            self._writer = _connect(self.path)
        return self._writer

    def _run_write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._write_conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            self._after_commit()
            raise
        conn.execute("COMMIT")
        self._after_commit()
        return result

    def _after_commit(self) -> None:
        # After COMMIT, never before: a reader that saw the new generation also sees the new rows.
        if self._agents_changed:
            self._agents_changed = False
            self.agents_generation += 1

    def track_agents(self) -> None:
        """Count changes to ``agents`` (after migrations created it) in ``agents_generation``.

        TEMP triggers on the writer connection only: every server write goes through it, nothing
        is added to the database file, and other connections (tools, tests) are unaffected.
        """

        def install(conn: sqlite3.Connection) -> None:
            def changed() -> None:
                self._agents_changed = True

            conn.create_function("backchannel_agents_changed", 0, changed)
            for op in ("INSERT", "UPDATE", "DELETE"):
                conn.execute(
                    f"CREATE TEMP TRIGGER IF NOT EXISTS track_agents_{op.lower()} AFTER {op} ON main.agents"
                    " BEGIN SELECT backchannel_agents_changed(); END"
                )

        self.on_writer(install).result()

    def write_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one write transaction from synchronous code (start-up, migrations)."""
        return self._writer_pool.submit(self._run_write, fn).result()

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise RuntimeError("database is closed")
        return await asyncio.wrap_future(self._writer_pool.submit(self._run_write, fn))

    def on_writer(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]:
        """Run ``fn`` on the writer thread outside any transaction (it manages its own); for
        maintenance such as the deferred scrub, queued behind the writes already submitted."""
        if self._closed:
            raise RuntimeError("database is closed")

        def run() -> T:
            try:
                return fn(self._write_conn())
            finally:
                self._after_commit()

        return self._writer_pool.submit(run)

    def _read_conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def read_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._reads_done:
            if self._closed:
                raise RuntimeError("database is closed")
            self._active_reads += 1
        try:
            return fn(self._read_conn())
        finally:
            with self._reads_done:
                self._active_reads -= 1
                if not self._active_reads:
                    self._reads_done.notify_all()

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise RuntimeError("database is closed")
        return await anyio.to_thread.run_sync(self.read_sync, fn)

    def close(self, read_grace: float = 30.0) -> None:
        """Close every connection once the reads already running have finished.

        New reads are refused from here on; a read still running after ``read_grace`` seconds is
        interrupted (it fails with ``OperationalError``) rather than left holding a closed handle.
        """
        with self._reads_done:
            self._closed = True
            if not self._reads_done.wait_for(lambda: not self._active_reads, read_grace):
                with self._readers_lock:
                    for conn in self._readers:
                        conn.interrupt()
                self._reads_done.wait_for(lambda: not self._active_reads)

        def _close_writer() -> None:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

        self._writer_pool.submit(_close_writer).result()
        self._writer_pool.shutdown(wait=True)
        with self._readers_lock:
            for conn in self._readers:
                try:
                    conn.close()
                except sqlite3.ProgrammingError:  # closed from another thread; harmless at shutdown
                    pass
            self._readers.clear()
