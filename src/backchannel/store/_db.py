"""SQLite plumbing: one writer thread, per-thread readers, WAL, explicit transactions.

Writes are serialised on a single thread that owns the only write connection, so there is never
lock contention between writers, and every write is committed before the caller's ``await``
returns: an acknowledged write survives ``kill -9`` (WAL keeps committed transactions across a
process crash even with ``synchronous=NORMAL``). Writes that queue up while the writer is busy
share one ``BEGIN IMMEDIATE`` transaction, each in a savepoint of its own (``_write_group``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar, cast

import anyio.to_thread

T = TypeVar("T")
logger = logging.getLogger("backchannel.store")

# Columns of ``agents`` that tool calls and heartbeats write (liveness; the channel an agent reads):
# tracked per agent in agents_volatile, so writing them flushes no cache.
VOLATILE_COLUMNS = ("last_seen", "activity", "last_channel")
Volatile = tuple[float, str, str]  # last_seen, activity, last_channel
# Columns no cached Agent holds (a counter per wake-up delivery): writing them moves nothing.
UNCACHED_COLUMNS = ("wakes_since_rules",)


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


def _settle(answer: asyncio.Future[T], result: T | None, exc: BaseException | None) -> None:
    if answer.cancelled():
        return
    if isinstance(exc, StopIteration):  # a Future refuses one (TypeError), as asyncio's tasks do
        wrapped = RuntimeError(f"a write raised StopIteration: {exc!r}")
        wrapped.__cause__ = exc
        exc = wrapped
    if exc is not None:
        answer.set_exception(exc)
    else:
        answer.set_result(cast(T, result))


# Writes committed in one transaction at most, and how long a group may run before the writes
# still waiting go to the next one: every caller in a group is answered after its one COMMIT.
GROUP = 16
GROUP_SECONDS = 0.005
_SAVEPOINT = "backchannel_write"


class _Write:
    """A write transaction's function waiting for the writer thread, and where its answer goes.
    ``alone``: never grouped with other writes (a long one would hold their answers back)."""

    __slots__ = ("alone", "answer", "fn", "loop")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], Any],
        loop: asyncio.AbstractEventLoop,
        answer: asyncio.Future[Any],
        alone: bool,
    ) -> None:
        self.fn, self.loop, self.answer, self.alone = fn, loop, answer, alone


Outcome = tuple[_Write, Any, BaseException | None]


def _settle_all(outcomes: list[Outcome]) -> None:
    for write, result, exc in outcomes:
        try:
            _settle(write.answer, result, exc)
        except BaseException:  # one answer that cannot be settled must not strand the others
            logger.exception("a write's answer could not be delivered")


def _deliver(outcomes: list[Outcome]) -> None:
    """From the writer thread: settle every answer on its loop, one wake-up per loop (a loop that
    has closed meanwhile has nobody waiting)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle_all, settled)


class _Stop:
    """Queued last by ``_WriterThread.stop``."""


class _WriterThread:
    """The one thread that writes: a queue of jobs run in order.

    Not a ThreadPoolExecutor: every tool call writes, and the pool's concurrent Future (with its
    Condition), work item and idle-worker bookkeeping cost about as much main-thread CPU as the
    write's own Python work; ``Database.write`` answers its caller with a loop future instead. A
    daemon thread, so a Database never closed cannot hold the interpreter open at exit (a write
    cut off there was never acknowledged, and SQLite rolls it back).
    """

    def __init__(self, write_group: Callable[[list[_Write]], None]) -> None:
        self._jobs: queue.SimpleQueue[_Write | Callable[[], object] | _Stop] = queue.SimpleQueue()
        self._write_group = write_group
        self._stopping = False
        self._lock = threading.Lock()  # no job is queued behind the stop, where it would never run
        self._thread = threading.Thread(target=self._work, name="sqlite-writer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        """Jobs in order; writes waiting one after another go to ``write_group`` together."""
        get, take = self._jobs.get, self._jobs.get_nowait
        item = get()
        while not isinstance(item, _Stop):
            following: _Write | Callable[[], object] | _Stop | None = None
            try:
                if isinstance(item, _Write):
                    group = [item]
                    while len(group) < GROUP and not item.alone:
                        try:
                            more = take()
                        except queue.Empty:
                            break
                        if not isinstance(more, _Write) or more.alone:
                            following = more
                            break
                        group.append(more)
                    self._write_group(group)
                else:
                    item()
            except BaseException:  # a job's own errors go to its caller; this only guards the loop
                logger.exception("a job on the SQLite writer thread failed")
            item = get() if following is None else following

    def put(self, job: _Write | Callable[[], object]) -> None:
        with self._lock:
            if self._stopping:
                raise RuntimeError("database is closed")
            self._jobs.put(job)

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` on the writer thread; its result or error in a concurrent Future."""
        done: Future[T] = Future()

        def job() -> None:
            if not done.set_running_or_notify_cancel():
                return
            try:
                result = fn()
            except BaseException as exc:
                done.set_exception(exc)
            else:
                done.set_result(result)

        self.put(job)
        return done

    def stop(self) -> None:
        """End after the jobs already queued; wait for them."""
        with self._lock:
            self._stopping = True
            self._jobs.put(_Stop())
        if threading.current_thread() is not self._thread:
            self._thread.join()


class Database:
    """Async facade over SQLite; ``write`` and ``read`` take a function of a connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        make_private(path)
        self._writer_thread = _WriterThread(self._write_group)
        self._writer: sqlite3.Connection | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        # Reads in flight on any thread: close() waits for them, because closing a connection
        # another thread is still stepping through is a use-after-free inside SQLite (a segfault).
        self._reads_done = threading.Condition()
        self._active_reads = 0
        self._closed = False
        # Bumped after every commit that changed what a cached Agent holds (see track_agents): the
        # token cache (registry.py) and the routing roster (store/agents.py) are valid only while
        # this number is the one they were filled under. Writes of the VOLATILE_COLUMNS do not
        # move it: their values land in agents_volatile instead.
        self.agents_generation = 0
        # agent id -> its VOLATILE_COLUMNS as of the latest commit that changed one, for every agent
        # with such a change since start: exactly what its row holds now, so a cached Agent is made
        # current with one dict lookup (agents.with_volatile).
        self.agents_volatile: dict[int, Volatile] = {}
        # Moves whenever agents_volatile does: a copy made current under one number stays current.
        self.volatile_version = 0
        # True from just before a COMMIT that wrote VOLATILE_COLUMNS until agents_volatile holds
        # its values: a row read meanwhile may be newer than agents_volatile, so a cache must take
        # it as read (registry.py). Maintenance (on_writer) commits on its own: True throughout.
        self.volatile_in_flight = False
        self._agents_changed = False
        self._volatile_pending: dict[int, Volatile] = {}
        # track_agents' installer, run again on a write connection opened to replace a broken one.
        self._tracking: Callable[[sqlite3.Connection], None] | None = None

    def _write_conn(self) -> sqlite3.Connection:
        if self._writer is None:
            conn = _connect(self.path)
            if self._tracking is not None:  # a replacement: it must track agents before any write
                try:
                    self._tracking(conn)
                except BaseException:
                    conn.close()
                    raise
            self._writer = conn
        return self._writer

    def _run_write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._write_conn()
        committing = False
        try:
            # In the try: a transaction some failure left open makes BEGIN fail, and the ROLLBACK
            # below ends it, so the next write works.
            conn.execute("BEGIN IMMEDIATE")
            result = fn(conn)
            committing = True
            if self._volatile_pending:
                self.volatile_in_flight = True
            conn.execute("COMMIT")
        except BaseException:
            # A failed COMMIT may have landed for all we know: the caches then re-read (None).
            # (A write must not go on after an SQLite error that ended its transaction: what it
            # ran then would be in autocommit, unseen by the caches.)
            self._abandon(conn, committed=None if committing else False)
            raise
        self._after_commit(committed=True)
        return result

    def _abandon(self, conn: sqlite3.Connection, committed: bool | None) -> None:
        """After a failed transaction: roll back what SQLite has not, and publish none of it.

        SQLite ends the transaction itself on some errors (FULL, IOERR, NOMEM, a RAISE(ROLLBACK)),
        and keeps it open on others (a failed COMMIT): ROLLBACK only if one is open. A ROLLBACK that
        fails is logged, not raised over the caller's error, and its connection is replaced (closing
        rolls back), so the next BEGIN does not find a transaction still open.
        """
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            logger.exception("ROLLBACK failed; opening a new write connection")
            self._writer = None
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        finally:
            self._after_commit(committed)

    def _after_commit(self, committed: bool | None) -> None:
        """Publish what the transaction did to ``agents``; ``committed`` None: not known.

        After COMMIT, never before: a reader that saw the new generation also sees the new rows.
        Volatile values go first, so a cache that sees the new generation re-reads rows no older.
        """
        pending = self._volatile_pending
        if pending:
            self._volatile_pending = {}
            if committed:
                self.agents_volatile.update(pending)
                self.volatile_version += 1
            elif committed is None:  # maybe committed: forget these, and the caches re-read the rows
                for agent_id in pending:
                    self.agents_volatile.pop(agent_id, None)
                self._agents_changed = True
        if self._agents_changed:
            self._agents_changed = False
            self.agents_generation += 1
        self.volatile_in_flight = False

    def agents_dirty(self) -> bool:
        """Whether the open write transaction changed cached columns of ``agents`` (writer thread
        only): a cache must then read the rows themselves, which show the change, until the
        commit publishes it."""
        return self._agents_changed

    def volatile_pending(self) -> Mapping[int, Volatile]:
        """The VOLATILE_COLUMNS values the open write transaction wrote (writer thread only), to
        lay over a cached Agent until the commit publishes them. With writes committed in groups,
        an earlier write's liveness is often in the same transaction."""
        return self._volatile_pending

    def track_agents(self) -> None:
        """Track committed changes to ``agents`` (after migrations created it), for the caches.

        A change to any column a cached Agent holds (a column added later too: only the listed
        ones are left out) moves ``agents_generation``; a change to a VOLATILE_COLUMNS value (the
        liveness every tool call and heartbeat writes, the channel an agent reads) goes to
        ``agents_volatile`` instead; a write that changes no value (the same channel again) does
        neither. TEMP triggers on the writer connection only: every server write goes through it,
        nothing is added to the database file, and other connections (tools, tests) are unaffected.
        """

        def install(conn: sqlite3.Connection) -> None:
            def changed() -> None:
                self._agents_changed = True

            def volatile(agent_id: int, last_seen: float, activity: str, last_channel: str) -> None:
                self._volatile_pending[agent_id] = (last_seen, activity, last_channel)

            conn.create_function("backchannel_agents_changed", 0, changed)
            conn.create_function("backchannel_agent_volatile", 1 + len(VOLATILE_COLUMNS), volatile)
            columns = [str(r[1]) for r in conn.execute("PRAGMA main.table_info(agents)")]
            cached = [c for c in columns if c not in VOLATILE_COLUMNS and c not in UNCACHED_COLUMNS]
            differs = " OR ".join(f'OLD."{c}" IS NOT NEW."{c}"' for c in cached)
            moved = " OR ".join(f'OLD."{c}" IS NOT NEW."{c}"' for c in VOLATILE_COLUMNS)
            change = "backchannel_agents_changed()"
            record = f"backchannel_agent_volatile(NEW.id, {', '.join(f'NEW.{c}' for c in VOLATILE_COLUMNS)})"
            triggers = {
                "insert": f"AFTER INSERT ON main.agents BEGIN SELECT {change}, {record}; END",
                "delete": f"AFTER DELETE ON main.agents BEGIN SELECT {change}; END",
                "update": f"AFTER UPDATE ON main.agents WHEN {differs} BEGIN SELECT {change}; END",
                "volatile": f"AFTER UPDATE OF {', '.join(VOLATILE_COLUMNS)} ON main.agents WHEN {moved}"
                f" BEGIN SELECT {record}; END",
            }
            for name in ("insert", "delete", "update", "seen", "volatile"):
                conn.execute(f"DROP TRIGGER IF EXISTS temp.track_agents_{name}")
            for name, body in triggers.items():
                conn.execute(f"CREATE TEMP TRIGGER track_agents_{name} {body}")

        self.on_writer(install).result()
        self._tracking = install

    def write_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one write transaction from synchronous code (start-up, migrations)."""
        return self._writer_thread.submit(lambda: self._run_write(fn)).result()

    async def write(self, fn: Callable[[sqlite3.Connection], T], *, alone: bool = False) -> T:
        """Run ``fn`` in a write transaction; returns once it is committed.

        Writes that queue up while the writer is busy share one transaction (``_write_group``);
        ``alone`` keeps a long write (a channel's deletion, an import) out of any group, so it holds
        back no other caller's answer. ``fn`` may run more than once (again after SQLite rolled its
        group back for another write's failure), so it must act only on the connection. The answer
        comes back with one ``call_soon_threadsafe`` per group rather than through
        ``asyncio.wrap_future``'s chained futures.
        """
        if self._closed:
            raise RuntimeError("database is closed")
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()
        self._writer_thread.put(_Write(fn, loop, answer, alone))
        return await answer

    def _write_group(self, group: list[_Write]) -> None:
        """Writes that were waiting together, committed with one COMMIT, each answered after it.

        A COMMIT after real writes costs more than a tool call's own statements, each separate
        write also costs a thread wake-up both ways, and 50 agents keep a queue. Each write runs in
        a savepoint of its own: one that raises is rolled back alone (with what it did to the
        agents caches) and gets its error, the others still commit.
        """
        writes = group
        while writes := [w for w in writes if not w.answer.cancelled()]:  # a caller that left: skip
            try:
                outcomes, writes = self._commit_group(writes)
            except BaseException as exc:  # a bug in the bookkeeping: still answer everyone
                logger.exception("a group of writes failed outside any write")
                outcomes, writes = [(w, None, exc) for w in writes], []
            _deliver(outcomes)

    def _commit_group(self, writes: list[_Write]) -> tuple[list[Outcome], list[_Write]]:
        """One transaction for ``writes``: (the answers it settles, the writes to run again).

        Never answers a write as committed that was not: if SQLite ends the transaction under a
        write (FULL, IOERR, a RAISE(ROLLBACK)), that write gets the error and the ones before it,
        rolled back with it, run again; if the COMMIT fails, nothing in it can be run again (it may
        have landed), so every write gets the error. Writes not reached (the group ran past
        ``GROUP_SECONDS``) run next.
        """
        if len(writes) == 1:  # no savepoint needed: the transaction is the write's own
            try:
                return [(writes[0], self._run_write(writes[0].fn), None)], []
            except BaseException as exc:
                return [(writes[0], None, exc)], []
        outcomes: list[Outcome] = []  # one per write run so far, in order
        own: BaseException | None = None  # the error of the write running now, if it raised
        conn: sqlite3.Connection | None = None
        began = committing = False
        later: list[_Write] = []
        try:
            conn = self._write_conn()
            conn.execute("BEGIN IMMEDIATE")
            began = True
            start = time.monotonic()
            for at, write in enumerate(writes):
                if at and time.monotonic() - start > GROUP_SECONDS:
                    later = writes[at:]
                    break
                saved = (dict(self._volatile_pending), self._agents_changed)
                conn.execute(f"SAVEPOINT {_SAVEPOINT}")
                try:
                    result = write.fn(conn)
                except BaseException as exc:
                    own = exc
                    if not conn.in_transaction:  # SQLite rolled back the whole transaction
                        raise
                    conn.execute(f"ROLLBACK TO {_SAVEPOINT}")
                    conn.execute(f"RELEASE {_SAVEPOINT}")
                    self._volatile_pending, self._agents_changed = saved
                    outcomes.append((write, None, exc))
                else:
                    conn.execute(f"RELEASE {_SAVEPOINT}")
                    outcomes.append((write, result, None))
                own = None
            committing = True
            if self._volatile_pending:
                self.volatile_in_flight = True
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn is not None:  # a failed COMMIT may have landed: the caches then re-read
                self._abandon(conn, committed=None if committing else False)
            if not began:  # no transaction to run them in: every write gets the error
                return [(w, None, exc) for w in writes], []
            failed: list[Outcome] = [
                (w, None, exc if error is None else error)
                for w, _, error in outcomes
                if error is not None or committing
            ]
            if committing:  # the COMMIT failed
                return failed, later
            # The transaction ended at writes[len(outcomes)]: its fn raised, or a savepoint
            # statement around it failed (then it takes the blame although its fn may not have
            # run: every pass answers at least one write, so the rest always get through).
            if own is not None and exc is not own:
                logger.warning("rolling back to a write's savepoint failed", exc_info=exc)
            culprit = writes[len(outcomes)]
            again = [w for w, _, error in outcomes if error is None] + writes[len(outcomes) + 1 :]
            return [*failed, (culprit, None, exc if own is None else own)], again
        try:
            self._after_commit(committed=True)
        except BaseException:  # the writes did commit: their callers get their answers all the same
            logger.exception("publishing a committed group's changes to the agents caches failed")
        return outcomes, later

    def on_writer(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]:
        """Run ``fn`` on the writer thread outside any transaction (it manages its own); for
        maintenance such as the deferred scrub, queued behind the writes already submitted."""
        if self._closed:
            raise RuntimeError("database is closed")

        def run() -> T:
            self.volatile_in_flight = True  # fn commits on its own; _after_commit publishes
            conn = self._write_conn()
            try:
                return fn(conn)
            finally:
                if conn.in_transaction:  # fn's COMMIT or ROLLBACK failed: no write may find it open
                    self._abandon(conn, committed=None)
                else:
                    self._after_commit(committed=None)

        return self._writer_thread.submit(run)

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

        self._writer_thread.submit(_close_writer).result()
        self._writer_thread.stop()
        with self._readers_lock:
            for conn in self._readers:
                try:
                    conn.close()
                except sqlite3.ProgrammingError:  # closed from another thread; harmless at shutdown
                    pass
            self._readers.clear()
