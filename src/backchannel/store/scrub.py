"""The byte-level half of removing a message's text: deferred, coalesced, run on the writer thread.

Editing or deleting a message takes effect at once, in its own transaction: the row holds the new
text, search no longer finds the old words, the event log's copies are rewritten. What can wait is
the old words' *bytes*: FTS5 before SQLite 3.42 keeps a deleted row's terms in older index segments
until they are merged, and the WAL keeps old page images until it is checkpointed and truncated.
Merging the whole index costs time linear in its size, and the old code did it inside every edit's
transaction, blocking all writes (about 0.2-0.5 s per edit at 100k messages). Here it runs ``delay``
after the first edit that asks for it, at most once per ``min_interval``, with at most one run
pending, and at clean shutdown: one merge covers every edit since the last.

(FTS5's incremental ``merge`` with a negative page count was tried to split the merge into short
steps: while posts keep adding segments it never reports done, and keeps rewriting the index.)

A row in ``scrub_owed`` (written in the edit's transaction) records that a scrub is owed, so a
crash before it runs does not forget it: the next start schedules it. With FTS5 ``secure-delete``
(SQLite >= 3.42) the index drops a row's terms as it is deleted, and only the checkpoint remains.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable

import anyio.to_thread

from backchannel.store._db import Database, truncate_wal

logger = logging.getLogger("backchannel.store")

SECURE_DELETE = sqlite3.sqlite_version_info >= (3, 42, 0)


def owe(conn: sqlite3.Connection) -> None:
    """Record, inside the transaction that removed text, that a scrub is owed."""
    conn.execute("INSERT OR IGNORE INTO scrub_owed(id, since) VALUES (1, ?)", (time.time(),))


def is_owed(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM scrub_owed").fetchone() is not None


def on_open(conn: sqlite3.Connection) -> bool:
    """At start: turn on FTS5 secure-delete where SQLite has it (a persistent index setting), and
    say whether a scrub is owed (one left by a crash, or the first after turning it on: terms
    deleted before stay in old segments)."""
    if SECURE_DELETE:
        row = conn.execute("SELECT v FROM messages_fts_config WHERE k = 'secure-delete'").fetchone()
        if row is None or not row[0]:
            conn.execute("INSERT INTO messages_fts(messages_fts, rank) VALUES ('secure-delete', 1)")
            owe(conn)
    return is_owed(conn)


def merge_index(conn: sqlite3.Connection) -> None:
    """Merge every search-index segment into one, so removed terms leave its pages too."""
    conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('optimize')")


class Scrubber:
    """Schedules and runs the owed scrub; ``request`` after a commit that called ``owe``."""

    def __init__(
        self,
        db: Database,
        *,
        delay: float = 1.0,
        min_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.delay = delay
        self.min_interval = min_interval
        self.clock = clock
        self.runs = 0  # scrubs that found work (tests and benchmarks read it)
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._last_start = float("-inf")
        self._wal_owed = False  # the index is merged but a reader kept the WAL from being emptied
        self._closed = False

    @property
    def pending(self) -> bool:
        with self._lock:
            return self._timer is not None

    def request(self) -> None:
        """Arm one run (no-op if one is armed): ``delay`` from now, ``min_interval`` after the last."""
        with self._lock:
            if self._closed or self._timer is not None:
                return
            wait = max(self.delay, self._last_start + self.min_interval - self.clock())
            self._timer = threading.Timer(wait, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None  # an edit committed from now on arms the next run
            self._last_start = self.clock()
            if self._closed:
                return
        try:
            done = self.scrub()
        except RuntimeError:  # the database closed meanwhile; close() ran the scrub itself
            return
        except sqlite3.Error:
            logger.warning("deferred scrub of removed text failed; retrying later", exc_info=True)
            done = False
        if not done:
            self.request()

    def scrub(self) -> bool:
        """Merge the index if a scrub is owed, then empty the WAL; False: try again later.

        Blocks the calling thread until the writer has done it: call it off the event loop.
        """
        return self.db.on_writer(self._scrub).result()

    def _scrub(self, conn: sqlite3.Connection) -> bool:
        conn.execute("BEGIN IMMEDIATE")
        try:
            owed = is_owed(conn)
            if owed:
                if not SECURE_DELETE:
                    merge_index(conn)
                conn.execute("DELETE FROM scrub_owed")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if owed:
            self.runs += 1
        if owed or self._wal_owed:
            self._wal_owed = not truncate_wal(conn)  # a reader's snapshot kept it: retry
        return not self._wal_owed

    async def run_now(self) -> bool:
        """Scrub now, in a worker thread (tests, benchmarks); True when nothing is owed afterwards."""
        return await anyio.to_thread.run_sync(self.scrub)

    def close(self) -> None:
        """Clean shutdown: cancel the timer and finish an owed scrub before the database closes."""
        with self._lock:
            self._closed = True
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        try:
            self.scrub()
        except (RuntimeError, sqlite3.Error):  # already closed, or the disk is gone: the row stays owed
            logger.warning("scrub of removed text at shutdown failed; it runs at the next start")
