"""The store's hot path (issue 14): what chat_send and chat_read cost in queries, and that the
caches behind them never route or answer from a stale roster."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from backchannel.bus import InMemoryEventBus
from backchannel.config import Settings
from backchannel.models import Agent, Message
from backchannel.registry import Registry
from backchannel.room import Room
from backchannel.room_settings import RoomSettings
from backchannel.store import Store, agent_settings, messages
from backchannel.store._db import Database
from tests.store.test_db import arm_full_disk, in_one_group, queued_together

pytestmark = pytest.mark.anyio


@dataclass
class Setup:
    store: Store
    registry: Registry
    room: Room


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    store = Store(tmp_path / "db.sqlite")
    bus = InMemoryEventBus()
    settings = Settings(data_dir=tmp_path)
    registry = Registry(store, bus, settings)
    try:
        yield Setup(store, registry, Room(store, bus, registry, settings, RoomSettings(store, bus, settings)))
    finally:
        store.close()


def writer_statements(store: Store) -> list[str]:
    """Every statement the writer connection runs from now on (trigger bodies show as comments)."""
    seen: list[str] = []
    store.db.on_writer(lambda c: c.set_trace_callback(seen.append)).result()
    return seen


async def delivered(setup: Setup) -> None:
    """Every wake-up so far was typed: a new mention gets a wake-up of its own (none folds)."""
    await setup.store.db.write(lambda c: c.execute("UPDATE triggers SET state = 'injected'"))


async def woken(setup: Setup, text: str) -> list[str]:
    """A person posts ``text``; the names it woke."""
    await delivered(setup)
    posted = await setup.room.post(channel="general", text=text, sender="maya", kind="human")
    return sorted(agent.name for agent, _ in posted.triggers)


async def agent(setup: Setup, name: str) -> Agent:
    return await setup.store.agent(name)


async def test_a_post_routes_without_reading_every_agent(setup: Setup) -> None:
    for i in range(8):
        await setup.registry.register("codex", f"i-{i}", None)
    assert await woken(setup, "warm-up @codex") == ["codex"]
    statements = writer_statements(setup.store)
    assert await woken(setup, "again @codex-3") == ["codex-3"]
    assert not [s for s in statements if "FROM agents" in s], statements


async def test_a_rename_a_forget_and_a_new_agent_are_routed_right_after(setup: Setup) -> None:
    await setup.registry.register("codex", "one", None)
    await setup.registry.register("claude", "one", None)
    assert await woken(setup, "@codex @claude") == ["claude", "codex"]  # the roster is cached now

    await setup.registry.rename("codex", "reviewer")
    await delivered(setup)
    posted = await setup.room.post(channel="general", text="@reviewer @codex", sender="maya", kind="human")
    assert [a.name for a, _ in posted.triggers] == ["reviewer"]
    assert "No agent named @codex" in posted.notices[0].text

    claude = await agent(setup, "claude")
    await setup.store.db.write(
        lambda c: c.execute("UPDATE agents SET last_seen = 0 WHERE id = ?", (claude.id,))
    )
    await setup.store.db.write(lambda c: agent_settings.forget(c, claude))
    assert await woken(setup, "@claude") == []

    await setup.registry.register("gemini", "one", None)
    assert await woken(setup, "@gemini @reviewer") == ["gemini", "reviewer"]


async def test_all_wakes_whoever_is_online_at_that_moment(setup: Setup) -> None:
    """Liveness writes do not move the agents generation, yet @all sees them at once."""
    await setup.registry.register("codex", "one", None)
    await setup.registry.register("claude", "one", None)
    claude = await agent(setup, "claude")
    await setup.store.db.write(
        lambda c: c.execute("UPDATE agents SET last_seen = 0 WHERE id = ?", (claude.id,))
    )
    assert await woken(setup, "@all") == ["codex"]
    generation = setup.store.db.agents_generation
    await setup.store.touch_agent(claude.id, time.time(), None)  # claude's wrapper calls again
    assert await woken(setup, "@all") == ["claude", "codex"]
    assert setup.store.db.agents_generation == generation  # served from the cached roster


async def test_a_role_given_meanwhile_is_in_the_next_wake_prompt(setup: Setup) -> None:
    await setup.registry.register("codex", "one", None)
    assert await woken(setup, "@codex") == ["codex"]
    codex = await agent(setup, "codex")
    await setup.store.update_agent(codex.id, role="reviewer of all things")
    await delivered(setup)
    posted = await setup.room.post(channel="general", text="@codex again", sender="maya", kind="human")
    assert "Your role: reviewer of all things." in posted.triggers[0][1].prompt


async def test_reads_in_any_channel_flush_no_cache(setup: Setup) -> None:
    await setup.room.create_channel("ops")
    await setup.registry.register("codex", "one", None)
    codex = await agent(setup, "codex")
    await setup.room.agent_read(codex, "ops", 20, None)
    generation = setup.store.db.agents_generation
    for _ in range(3):
        await setup.room.agent_read(codex, "ops", 20, None)
        await setup.room.post_agent(codex, channel="ops", text="hello")
    await setup.room.agent_read(codex, "general", 20, None)  # another channel: cached, not flushed
    assert setup.store.db.agents_generation == generation
    assert setup.store.db.agents_volatile[codex.id][2] == "general"
    assert (await agent(setup, "codex")).last_channel == "general"


async def test_sending_moves_the_senders_cursor_only_past_what_it_has_read(setup: Setup) -> None:
    await setup.registry.register("codex", "one", None)
    codex = await agent(setup, "codex")
    store = setup.store

    def cursor() -> int | None:
        return store.db.read_sync(lambda c: messages.get_cursor(c, codex.id, 1))

    await setup.room.post_agent(codex, channel="general", text="before any read")
    assert cursor() is None  # no read position yet: sending makes none
    await setup.room.agent_read(codex, "general", 20, None)
    mine = await setup.room.post_agent(codex, channel="general", text="all read")
    assert cursor() == mine.id
    await setup.room.post_system("general", "codex joined.", type="join")  # agents skip these
    mine = await setup.room.post_agent(codex, channel="general", text="still all read")
    assert cursor() == mine.id
    await setup.room.post(channel="general", text="unread", sender="maya", kind="human")
    await setup.room.post_agent(codex, channel="general", text="not read the last one")
    assert cursor() == mine.id


def test_insert_answers_the_message_it_stored(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    try:

        def tx(c: sqlite3.Connection) -> None:
            first = messages.insert(c, channel_id=1, sender="maya", kind="human", text="q", person_id=None)
            built = messages.insert(
                c,
                channel_id=1,
                sender="codex",
                kind="agent",
                text="a \u00e9 \U0001f600",
                reply_to=first.id,
                attachments=[{"url": "/uploads/x.png", "name": "x.png", "size": 3}],
                metadata={"choices": ["a", "b"], "n": 1.5},
                type="decision",
                channel_name="general",
            )
            assert built == messages.get(c, built.id)

        store.db.write_sync(tx)
    finally:
        store.close()


@pytest.mark.parametrize("how", ["the write raises", "sqlite rolled it back itself"])
async def test_a_rolled_back_write_leaves_the_caches_as_they_were(setup: Setup, how: str) -> None:
    """Also when SQLite ended the transaction before the error came up: the caller gets that
    error (not "no transaction is active" from our ROLLBACK), and no later commit publishes it."""
    await setup.registry.register("codex", "one", None)
    codex = await agent(setup, "codex")
    db = setup.store.db
    doomed = arm_full_disk(db)
    before = (db.agents_generation, dict(db.agents_volatile))

    def fails(c: sqlite3.Connection) -> None:
        c.execute("UPDATE agents SET last_seen = 1, activity = 'busy' WHERE id = ?", (codex.id,))
        if how == "the write raises":
            raise RuntimeError("database or disk is full")
        doomed(c)

    with pytest.raises((RuntimeError, sqlite3.IntegrityError), match="database or disk is full"):
        await db.write(fails)
    await db.write(lambda c: c.execute("SELECT 1"))  # any later commit
    assert (db.agents_generation, db.agents_volatile) == before
    assert (await setup.registry.store.agent("codex")).last_seen == codex.last_seen


class FailingWriter:
    """The writer connection, with one statement made to fail: as after SQLITE_FULL on COMMIT (the
    transaction rolled back by SQLite), or a ROLLBACK that fails and leaves the transaction open."""

    def __init__(self, conn: sqlite3.Connection, statement: str, roll_back: bool) -> None:
        self.conn, self.statement, self.roll_back = conn, statement, roll_back

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == self.statement:
            self.statement = ""  # once
            if self.roll_back:
                self.conn.execute("ROLLBACK")
            raise sqlite3.OperationalError(f"{sql} failed: database or disk is full")
        return self.conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def fail_next(db: Database, statement: str, roll_back: bool) -> None:
    db.on_writer(lambda c: setattr(db, "_writer", FailingWriter(c, statement, roll_back))).result()


@pytest.mark.parametrize("how", ["sqlite keeps the transaction open", "sqlite rolled it back itself"])
async def test_a_failed_commit_publishes_nothing_and_the_writer_goes_on(setup: Setup, how: str) -> None:
    """A value whose COMMIT failed is never served: not by the token cache, not by a later commit
    publishing it; and a transaction SQLite left open is rolled back, so the next write works."""
    token = (await setup.registry.register("codex", "one", None)).token
    codex = await agent(setup, "codex")
    store, db = setup.store, setup.store.db
    await store.read_for_agent(codex.id, "general", 20, None)
    assert (await setup.registry.authenticate(token, touch=False)).last_channel == "general"  # cached
    if how == "sqlite rolled it back itself":
        fail_next(db, "COMMIT", roll_back=True)

    def never_committed(c: sqlite3.Connection) -> None:
        c.execute("UPDATE agents SET last_channel = 'never-committed' WHERE id = ?", (codex.id,))
        if how == "sqlite keeps the transaction open":  # a real COMMIT that fails: a deferred check
            c.execute("PRAGMA defer_foreign_keys = ON")
            c.execute("INSERT INTO cursors (agent_id, channel_id, last_id) VALUES (-1, 1, 0)")

    failure = (sqlite3.IntegrityError, sqlite3.OperationalError)
    with pytest.raises(failure, match="FOREIGN KEY constraint failed|COMMIT failed"):
        await db.write(never_committed)
    await store.post(channel="general", sender="codex", kind="agent", text="hi", agent_id=codex.id)
    assert (await agent(setup, "codex")).last_channel == "general"
    assert db.agents_volatile.get(codex.id, (0, "", "general"))[2] == "general"
    assert (await setup.registry.authenticate(token, touch=False)).last_channel == "general"


async def test_a_failed_rollback_neither_hides_the_error_nor_leaves_a_transaction_open(setup: Setup) -> None:
    await setup.registry.register("codex", "one", None)
    codex = await agent(setup, "codex")
    store, db = setup.store, setup.store.db
    await store.create_channel("ops", 10)
    fail_next(db, "ROLLBACK", roll_back=False)

    def fails(c: sqlite3.Connection) -> None:
        c.execute("UPDATE agents SET last_channel = 'never-committed', role = 'x' WHERE id = ?", (codex.id,))
        raise RuntimeError("the caller's own error")

    with pytest.raises(RuntimeError, match="the caller's own error"):
        await db.write(fails)
    assert (await agent(setup, "codex")).role == ""  # not committed: the connection was closed
    # A new write connection, which tracks changes to agents as the old one did.
    generation = db.agents_generation
    await store.read_for_agent(codex.id, "ops", 20, None)
    assert db.agents_volatile[codex.id][2] == "ops"
    assert db.agents_generation == generation
    await store.update_agent(codex.id, role="reviewer")
    assert db.agents_generation == generation + 1


def test_a_messages_public_form_is_its_fields_copied() -> None:
    """``Message.public`` spelled out keeps the shape ``asdict`` gave, and shares nothing."""
    nested = Message(
        id=7,
        channel="general",
        sender="codex",
        kind="agent",
        type="decision",
        text="pick",
        reply_to=3,
        attachments=[{"url": "/uploads/a.png", "meta": {"w": 1}}],
        metadata={"choices": ["a", "b"], "deep": {"x": [1]}},
        created_at=1.5,
        edited_at=2.5,
        deleted=False,
        person_id=None,
        job_id=4,
    )
    for message in (nested, replace(nested, deleted=True), replace(nested, attachments=[], metadata={})):
        expected = asdict(message)
        if message.deleted:
            expected.update(text="", attachments=[])
        expected["time"] = message.created_at
        public = message.public()
        assert public == expected and list(public) == list(expected)
        public["metadata"].setdefault("deep", {})["x"] = "changed"
        public["attachments"].append({})
        assert message.metadata == nested.metadata or not message.metadata
        assert message.attachments in ([], nested.attachments)
    assert nested.metadata == {"choices": ["a", "b"], "deep": {"x": [1]}}
    assert nested.attachments == [{"url": "/uploads/a.png", "meta": {"w": 1}}]


async def test_remaining_is_what_the_next_reads_return(setup: Setup) -> None:
    """The count a read skips when it reached the end is the count it would have made."""
    await setup.registry.register("codex", "one", None)
    codex = await agent(setup, "codex")
    store, room = setup.store, setup.room
    script = [("post", 3), ("read", 2), ("join", 1), ("read", 5), ("post", 4), ("read", 4), ("read", 4)]
    script += [("since", 2), ("post", 2), ("join", 2), ("read", 2), ("read", 9), ("since", 0)]
    for step, n in script:
        if step == "post":
            for i in range(n):
                await room.post(channel="general", text=f"m{i}", sender="maya", kind="human")
        elif step == "join":
            for _ in range(n):
                await room.post_system("general", "someone joined.", type="join")
        else:
            since = n if step == "since" else None
            batch, remaining = await store.read_for_agent(
                codex.id, "general", 20 if since is not None else n, since
            )
            cursor = store.db.read_sync(lambda c: messages.get_cursor(c, codex.id, 1))
            assert cursor is not None
            counted = store.db.read_sync(lambda c, at=cursor: messages.count_after(c, 1, at))
            assert remaining == counted, (step, n, [m.id for m in batch])


async def test_messages_agents_read_again_are_reused_until_any_column_changes(setup: Setup) -> None:
    """The message cache keys on the whole row: an edit, a delete and a channel rename all show on
    the very next read, and an unchanged message is the same object (built once for all readers)."""
    codex_token = (await setup.registry.register("codex", "one", None)).token
    codex = await setup.registry.authenticate(codex_token)
    await setup.room.create_channel("ops")
    kept = await setup.room.post_agent(codex, channel="ops", text="stays as it is")
    edited = await setup.room.post_agent(codex, channel="ops", text="first words")
    gone = await setup.room.post_agent(codex, channel="ops", text="soon deleted")
    first = {m.id: m for m in await setup.room.agent_resync(codex, "ops", 20)}

    await setup.room.edit(edited.id, "second words", by_agent=codex)
    await setup.room.delete(gone.id, by_agent=codex)
    again = {m.id: m for m in await setup.room.agent_resync(codex, "ops", 20)}
    assert again[kept.id] is first[kept.id]
    assert again[edited.id].text == "second words" and again[edited.id].edited_at is not None
    assert again[gone.id].deleted and not first[gone.id].deleted

    await setup.room.rename_channel("ops", "lobby")
    renamed = {m.id: m for m in await setup.room.agent_resync(codex, "lobby", 20)}
    assert renamed[kept.id].channel == "lobby"
    assert renamed[kept.id] is not first[kept.id]


def test_the_message_cache_stays_bounded_and_skips_long_messages(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "t.sqlite")
    conn.row_factory = sqlite3.Row
    conn.execute("CREATE TABLE m(id INTEGER PRIMARY KEY, text TEXT)")
    conn.executemany("INSERT INTO m VALUES (?, ?)", [(i, f"m{i}") for i in range(1, 11)])
    conn.execute("INSERT INTO m VALUES (11, ?)", ("x" * (messages.MessageCache.LONG + 1),))
    built: list[int] = []

    def build(row: sqlite3.Row) -> Message:
        built.append(row["id"])
        return Message(row["id"], "c", "s", "agent", "chat", row["text"], None, [], {}, 0.0, None, False)

    cache = messages.MessageCache(size=4)
    real, messages.row_to_message = messages.row_to_message, build
    try:
        rows = conn.execute("SELECT * FROM m ORDER BY id").fetchall()
        for row in rows:
            cache.message(row)
        for row in rows[6:] + rows[:1]:  # 7..11 again, then 1
            cache.message(row)
    finally:
        messages.row_to_message = real
    assert len(cache._entries) == 4  # pyright: ignore[reportPrivateUsage]
    assert built.count(11) == 2  # too long to keep: built on every read
    assert [built.count(i) for i in (7, 8, 9, 10)] == [1, 1, 1, 1]  # the newest four stayed
    assert built.count(1) == 2  # the oldest went


async def test_a_write_undone_in_a_group_takes_its_agents_cache_changes_with_it(setup: Setup) -> None:
    """The savepoint rollback restores what the write told the agents caches: neither the cached
    columns (the generation) nor liveness (agents_volatile) move for it; its neighbours commit."""
    await setup.registry.register("codex", "one", None)
    codex = await agent(setup, "codex")
    db = setup.store.db
    generation, volatile = db.agents_generation, dict(db.agents_volatile)

    def fails(c: sqlite3.Connection) -> None:
        c.execute("UPDATE agents SET last_channel = 'never', role = 'never' WHERE id = ?", (codex.id,))
        raise ValueError("this one only")

    results = await in_one_group(db, lambda c: c.execute("SELECT 1"), fails, lambda c: c.execute("SELECT 2"))
    assert isinstance(results[1], ValueError)
    assert (db.agents_generation, db.agents_volatile) == (generation, volatile)
    assert (await agent(setup, "codex")) == codex


@pytest.mark.parametrize("undone", [False, True], ids=["touch kept", "touch undone"])
async def test_a_liveness_write_and_a_post_in_one_group_route_by_what_commits(
    setup: Setup, undone: bool
) -> None:
    """The roster lays the group's own liveness writes over its cached list, and drops them with
    a write rolled back to its savepoint."""
    await setup.registry.register("codex", "one", None)
    await setup.registry.register("claude", "one", None)
    claude = await agent(setup, "claude")
    db = setup.store.db
    await db.write(lambda c: c.execute("UPDATE agents SET last_seen = 0 WHERE id = ?", (claude.id,)))
    assert await woken(setup, "@all") == ["codex"]  # the roster is cached now
    await delivered(setup)
    statements = writer_statements(setup.store)
    now = time.time()

    def touch(c: sqlite3.Connection) -> None:
        c.execute("UPDATE agents SET last_seen = ? WHERE id = ?", (now, claude.id))
        if undone:
            raise ValueError("undone")

    async def post() -> Any:
        return await setup.room.post(channel="general", text="@all", sender="maya", kind="human")

    gate = queued_together(db)
    touched = asyncio.ensure_future(db.write(touch))
    posted = asyncio.ensure_future(post())
    await asyncio.sleep(0.05)
    gate.set()
    await asyncio.gather(touched, return_exceptions=True)
    assert statements.count("COMMIT") == 1
    assert sorted(a.name for a, _ in (await posted).triggers) == (
        ["codex"] if undone else ["claude", "codex"]
    )
