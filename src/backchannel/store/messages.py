"""Message rows, read cursors and full-text search. Every query walks an index; none scans a channel."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar, cast

from backchannel.errors import InvalidInput, NotFound
from backchannel.models import Message, SenderKind
from backchannel.store import events, triggers

_SELECT = "SELECT m.*, c.name AS channel_name FROM messages m JOIN channels c ON c.id = m.channel_id"


def _json_list(text: str) -> list[dict[str, Any]]:
    return [] if text == "[]" else json.loads(text)  # most messages carry nothing: skip the parser


def _json_object(text: str) -> dict[str, Any]:
    return {} if text == "{}" else json.loads(text)


def row_to_message(row: sqlite3.Row) -> Message:
    return Message(
        id=row["id"],
        channel=row["channel_name"],
        sender=row["sender"],
        kind=row["kind"],
        type=row["type"],
        text=row["text"],
        reply_to=row["reply_to"],
        attachments=_json_list(row["attachments"]),
        metadata=_json_object(row["metadata"]),
        created_at=row["created_at"],
        edited_at=row["edited_at"],
        deleted=bool(row["deleted"]),
        person_id=row["person_id"],
        job_id=row["job_id"],
    )


Build = Callable[[sqlite3.Row], Message]
K = TypeVar("K")
V = TypeVar("V")


def remember(entries: dict[K, V], key: K, value: V, size: int) -> None:
    """Keep ``value`` under ``key`` in a cache of at most ``size`` entries: the oldest entry goes
    first (a hit does not renew one)."""
    if len(entries) >= size and key not in entries:
        del entries[next(iter(entries))]
    entries[key] = value


class MessageCache:
    """Messages as last built from their rows, for agents' reads: every agent in a channel reads
    each new message, so most rows were built before.

    A row equal to the one a Message came from gives back that Message; any change to any column
    (an edit, a delete, the channel's rename, a decision answered) makes a different row, so no
    write has to invalidate anything. Used on the writer thread only, like ``agents.Roster``.
    Bounded by count (oldest entry out first) and by text length; an entry holds its row and the
    Message built from it, so metadata and attachments are kept twice (JSON and parsed).
    """

    LONG = 8192  # characters: a longer message is built each time, so the cache stays small

    def __init__(self, size: int = 2048) -> None:
        self._size = size
        self._entries: dict[int, tuple[sqlite3.Row, Message]] = {}

    def message(self, row: sqlite3.Row) -> Message:
        entry = self._entries.get(row[0])  # m.id: the first column of _SELECT
        if entry is not None and entry[0] == row:
            return entry[1]
        msg = row_to_message(row)
        if len(msg.text) > self.LONG:
            return msg
        remember(self._entries, msg.id, (row, msg), self._size)
        return msg


def insert(
    conn: sqlite3.Connection,
    *,
    channel_id: int,
    sender: str,
    kind: str,
    text: str,
    agent_id: int | None = None,
    type: str = "chat",
    reply_to: int | None = None,
    attachments: list[dict[str, Any]] | None = None,
    metadata: dict[str, Any] | None = None,
    person_id: int | None = None,
    job_id: int | None = None,
    channel_name: str | None = None,
) -> Message:
    """Store a message. With ``channel_name`` (the caller has read the channel) the answer is built
    from what was written instead of read back: the same Message, one query fewer per post."""
    if reply_to is not None:
        target = conn.execute("SELECT channel_id, job_id FROM messages WHERE id = ?", (reply_to,)).fetchone()
        if target is None:
            raise InvalidInput(f"reply_to: no message {reply_to}")
        if target["channel_id"] != channel_id:
            raise InvalidInput(f"reply_to: message {reply_to} is in another channel")
        if target["job_id"] != job_id:
            place = "a job thread" if target["job_id"] is not None else "the channel timeline"
            raise InvalidInput(f"reply_to: message {reply_to} is in {place}, not here")
    stored_attachments, stored_metadata, now = (
        json.dumps(attachments or []),
        json.dumps(metadata or {}),
        time.time(),
    )
    cur = conn.execute(
        "INSERT INTO messages(channel_id, sender, agent_id, kind, type, text, reply_to, attachments,"
        " metadata, created_at, person_id, job_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            channel_id,
            sender,
            agent_id,
            kind,
            type,
            text,
            reply_to,
            stored_attachments,
            stored_metadata,
            now,
            person_id,
            job_id,
        ),
    )
    message_id = cur.lastrowid
    assert message_id is not None
    # Which uploads this message references, so deleting it can remove a file nothing else uses.
    names = {name for a in attachments or [] if (name := _upload_name(a))}
    if names:
        conn.executemany(
            "INSERT OR IGNORE INTO message_uploads(name, message_id) VALUES (?,?)",
            [(name, message_id) for name in sorted(names)],
        )
    if channel_name is None:
        return get(conn, message_id)
    return Message(
        id=message_id,
        channel=channel_name,
        sender=sender,
        kind=cast(SenderKind, kind),
        type=type,
        text=text,
        reply_to=reply_to,
        attachments=_json_list(stored_attachments),  # as read back: copies, never the caller's objects
        metadata=_json_object(stored_metadata),
        created_at=now,
        edited_at=None,
        deleted=False,
        person_id=person_id,
        job_id=job_id,
    )


def _upload_name(attachment: dict[str, Any]) -> str | None:
    url = attachment.get("url")
    if isinstance(url, str) and url.startswith("/uploads/"):
        return url.removeprefix("/uploads/")
    return None


def get(conn: sqlite3.Connection, message_id: int) -> Message:
    row = conn.execute(f"{_SELECT} WHERE m.id = ?", (message_id,)).fetchone()
    if row is None:
        raise NotFound(f"no message {message_id}")
    return row_to_message(row)


def agent_id_of(conn: sqlite3.Connection, message_id: int) -> int | None:
    row = conn.execute("SELECT agent_id FROM messages WHERE id = ?", (message_id,)).fetchone()
    return None if row is None else row["agent_id"]


def edit(conn: sqlite3.Connection, message_id: int, text: str) -> Message:
    current = get(conn, message_id)
    if current.deleted:
        raise InvalidInput(f"message {message_id} is deleted")
    conn.execute("UPDATE messages SET text = ?, edited_at = ? WHERE id = ?", (text, time.time(), message_id))
    return get(conn, message_id)


def set_metadata(conn: sqlite3.Connection, message_id: int, metadata: dict[str, Any]) -> Message:
    """Replace a card's metadata (a decision recorded on it); the text is unchanged."""
    conn.execute("UPDATE messages SET metadata = ? WHERE id = ?", (json.dumps(metadata), message_id))
    return get(conn, message_id)


def delete(conn: sqlite3.Connection, message_id: int) -> tuple[Message, list[str]]:
    """Blank a message (text, attachments, choices); returns it and the uploads nothing references now."""
    get(conn, message_id)
    conn.execute(
        "UPDATE messages SET deleted = 1, text = '', attachments = '[]', metadata = '{}', edited_at = ?"
        " WHERE id = ?",
        (time.time(), message_id),
    )
    names = [
        str(r["name"])
        for r in conn.execute("SELECT name FROM message_uploads WHERE message_id = ?", (message_id,))
    ]
    conn.execute("DELETE FROM message_uploads WHERE message_id = ?", (message_id,))
    orphaned = [
        name
        for name in names
        if conn.execute("SELECT 1 FROM message_uploads WHERE name = ? LIMIT 1", (name,)).fetchone() is None
    ]
    return get(conn, message_id), orphaned


def channel_uploads(conn: sqlite3.Connection, channel_id: int) -> list[str]:
    """Uploads only this channel's messages reference (they go when the channel does)."""
    rows = conn.execute(
        "SELECT DISTINCT u.name FROM messages m JOIN message_uploads u ON u.message_id = m.id"
        " WHERE m.channel_id = ? AND NOT EXISTS (SELECT 1 FROM message_uploads o JOIN messages om"
        " ON om.id = o.message_id WHERE o.name = u.name AND om.channel_id != ?)",
        (channel_id, channel_id),
    )
    return [str(r["name"]) for r in rows]


# Join/leave lines are for people watching the room; agents reading a channel skip them.
_NOT_PRESENCE = " AND type NOT IN ('join', 'leave')"


def _place(channel_id: int, job_id: int | None, alias: str = "m.") -> tuple[str, int]:
    """Where a read looks: a channel's timeline (never its job threads) or one job's thread.

    Both conditions match a partial index (``messages_timeline`` / ``messages_thread``), so a
    timeline read never walks thread messages and a thread read never walks the channel.
    """
    if job_id is None:
        return f"{alias}channel_id = ? AND {alias}job_id IS NULL", channel_id
    return f"{alias}job_id = ?", job_id


def latest(
    conn: sqlite3.Connection,
    channel_id: int,
    limit: int,
    before: int | None = None,
    *,
    agent_view: bool = False,
    job_id: int | None = None,
    build: Build = row_to_message,
) -> list[Message]:
    """The newest ``limit`` messages (optionally older than ``before``), oldest first."""
    where, key = _place(channel_id, job_id)
    where += " AND m.id < ?" if before is not None else ""
    where += _NOT_PRESENCE.replace("type", "m.type") if agent_view else ""
    params = (key, before, limit) if before is not None else (key, limit)
    rows = conn.execute(f"{_SELECT} WHERE {where} ORDER BY m.id DESC LIMIT ?", params).fetchall()
    return [build(r) for r in reversed(rows)]


def after(
    conn: sqlite3.Connection,
    channel_id: int,
    after_id: int,
    limit: int,
    *,
    agent_view: bool = False,
    job_id: int | None = None,
    build: Build = row_to_message,
) -> list[Message]:
    """The oldest ``limit`` messages newer than ``after_id``: readers never skip a message."""
    extra = _NOT_PRESENCE.replace("type", "m.type") if agent_view else ""
    where, key = _place(channel_id, job_id)
    rows = conn.execute(
        f"{_SELECT} WHERE {where} AND m.id > ?{extra} ORDER BY m.id LIMIT ?",
        (key, after_id, limit),
    ).fetchall()
    return [build(r) for r in rows]


COUNT_CAP = 10_000


def count_after(
    conn: sqlite3.Connection, channel_id: int, after_id: int, *, job_id: int | None = None
) -> int:
    """Unread messages (as agents see them) after ``after_id``, counted up to COUNT_CAP."""
    where, key = _place(channel_id, job_id, "")
    (n,) = conn.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM messages WHERE {where} AND id > ?{_NOT_PRESENCE} LIMIT ?)",
        (key, after_id, COUNT_CAP),
    ).fetchone()
    return int(n)


def any_between(
    conn: sqlite3.Connection, channel_id: int, low: int, high: int, *, job_id: int | None = None
) -> bool:
    """Whether an agent has anything to read strictly between two ids."""
    where, key = _place(channel_id, job_id, "")
    row = conn.execute(
        f"SELECT 1 FROM messages WHERE {where} AND id > ? AND id < ?{_NOT_PRESENCE} LIMIT 1",
        (key, low, high),
    ).fetchone()
    return row is not None


def advance_own_cursor(conn: sqlite3.Connection, agent_id: int, channel_id: int, message_id: int) -> None:
    """After an agent posted ``message_id`` in a channel's timeline: if it had read everything
    before it, it has read its own message too; if not, its cursor stays, so sending never skips a
    message it has not seen. No cursor yet: none is made. One statement, not read-check-write."""
    conn.execute(
        "UPDATE cursors SET last_id = :msg WHERE agent_id = :agent AND channel_id = :channel"
        " AND last_id < :msg AND NOT EXISTS (SELECT 1 FROM messages WHERE channel_id = :channel"
        f" AND job_id IS NULL AND id > cursors.last_id AND id < :msg{_NOT_PRESENCE})",
        {"msg": message_id, "agent": agent_id, "channel": channel_id},
    )


def last_id(conn: sqlite3.Connection, channel_id: int, *, job_id: int | None = None) -> int:
    where, key = _place(channel_id, job_id, "")
    row = conn.execute(f"SELECT max(id) FROM messages WHERE {where}", (key,)).fetchone()
    return int(row[0] or 0)


def search(
    conn: sqlite3.Connection, query: str, channel_id: int | None, limit: int, *, threads: bool = False
) -> list[Message]:
    """Full-text search of the channel timelines; ``threads`` includes job threads too."""
    # Quote every term so user text is never FTS5 syntax: `foo-bar` or `"` cannot raise.
    terms = [t.replace('"', '""') for t in query.split()]
    if not terms:
        return []
    match = " ".join(f'"{t}"' for t in terms)
    sql = f"{_SELECT} JOIN messages_fts f ON f.rowid = m.id WHERE messages_fts MATCH ? AND m.deleted = 0"
    params: list[Any] = [match]
    if not threads:
        sql += " AND m.job_id IS NULL"
    if channel_id is not None:
        sql += " AND m.channel_id = ?"
        params.append(channel_id)
    sql += " ORDER BY m.id DESC LIMIT ?"
    params.append(limit)
    return [row_to_message(r) for r in conn.execute(sql, params)]


def cursor_read(
    conn: sqlite3.Connection,
    channel_id: int,
    limit: int,
    since_id: int | None,
    cursor: int | None,
    move: Callable[[int], None],
    *,
    job_id: int | None = None,
    build: Build = row_to_message,
) -> tuple[list[Message], int]:
    """An agent's read of a channel (or of a job's thread) with its read position ``cursor``:
    the first read gives recent context, later ones only what is new, oldest first. ``move``
    stores a new position (forward only). Returns the messages and how many unread ones remain:
    exactly what the following reads without ``since_id`` return."""
    if since_id is not None:
        batch = after(conn, channel_id, since_id, limit, agent_view=True, job_id=job_id, build=build)
    elif cursor is None:
        batch = latest(conn, channel_id, limit, agent_view=True, job_id=job_id, build=build)
    else:
        batch = after(conn, channel_id, cursor, limit, agent_view=True, job_id=job_id, build=build)
    # An explicit since_id past unread messages must not move the cursor over them.
    if batch and (since_id is None or cursor is None or since_id <= cursor):
        reached_end = since_id is None and (cursor is None or len(batch) < limit)
        cursor = max(cursor or 0, batch[-1].id)
        move(cursor)
    elif cursor is None:
        reached_end = since_id is None
        cursor = last_id(conn, channel_id, job_id=job_id)
        move(cursor)
    else:
        reached_end = since_id is None  # nothing after the cursor: the read came back empty
    if reached_end:
        # The batch ends at the newest message agents see (the latest ones, or fewer than asked
        # after the cursor), in this same transaction: nothing is left to count after it.
        return batch, 0
    return batch, count_after(conn, channel_id, cursor, job_id=job_id)


def get_cursor(conn: sqlite3.Connection, agent_id: int, channel_id: int) -> int | None:
    row = conn.execute(
        "SELECT last_id FROM cursors WHERE agent_id = ? AND channel_id = ?", (agent_id, channel_id)
    ).fetchone()
    return None if row is None else int(row["last_id"])


def set_cursor(conn: sqlite3.Connection, agent_id: int, channel_id: int, last: int) -> None:
    """Cursors only move forward, so a late write can never re-deliver what was read."""
    conn.execute(
        "INSERT INTO cursors(agent_id, channel_id, last_id) VALUES (?,?,?) ON CONFLICT(agent_id, channel_id)"
        " DO UPDATE SET last_id = max(last_id, excluded.last_id)",
        (agent_id, channel_id, last),
    )


def reset_cursor(conn: sqlite3.Connection, agent_id: int, channel_id: int, last: int) -> None:
    conn.execute(
        "INSERT INTO cursors(agent_id, channel_id, last_id) VALUES (?,?,?) ON CONFLICT(agent_id, channel_id)"
        " DO UPDATE SET last_id = excluded.last_id",
        (agent_id, channel_id, last),
    )


def rename_sender(
    conn: sqlite3.Connection, owner: Literal["agent_id", "person_id"], owner_id: int, name: str
) -> None:
    """History follows an identity, not a name: its messages, their copies in the event log (what a
    resuming page replays) and the pending wake-ups they caused all show ``name`` from now on."""
    mine = f"(SELECT id FROM messages WHERE {owner} = ?)"  # owner is one of two literals, never input
    conn.execute(f"UPDATE messages SET sender = ? WHERE {owner} = ?", (name, owner_id))
    conn.execute(
        "UPDATE events SET payload = json_set(payload, '$.message.sender', ?)"
        f" WHERE kind IN {events.MESSAGE_KINDS} AND message_id IN {mine}",
        (name, owner_id),
    )
    conn.execute(
        f"UPDATE triggers SET sender = ? WHERE state IN {triggers.PENDING_STATES} AND message_id IN {mine}",
        (name, owner_id),
    )
