"""Channel rows: create, rename, delete, per-channel routing state."""

from __future__ import annotations

import sqlite3
import time

from backchannel.errors import Conflict, LimitReached, NotFound
from backchannel.models import Channel


def row_to_channel(row: sqlite3.Row) -> Channel:
    return Channel(
        id=row["id"],
        name=row["name"],
        topic=row["topic"],
        summary=row["summary"],
        hops=row["hops"],
        paused=bool(row["paused"]),
        created_at=row["created_at"],
        summary_by=row["summary_by"],
        summary_at=row["summary_at"],
    )


def get(conn: sqlite3.Connection, name: str) -> Channel:
    row = conn.execute("SELECT * FROM channels WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no channel #{name}")
    return row_to_channel(row)


def find(conn: sqlite3.Connection, name: str) -> Channel | None:
    row = conn.execute("SELECT * FROM channels WHERE name = ?", (name,)).fetchone()
    return None if row is None else row_to_channel(row)


def list_all(conn: sqlite3.Connection) -> list[Channel]:
    return [row_to_channel(r) for r in conn.execute("SELECT * FROM channels ORDER BY id")]


def create(conn: sqlite3.Connection, name: str, max_channels: int) -> Channel:
    if find(conn, name) is not None:
        raise Conflict(f"channel #{name} already exists")
    (count,) = conn.execute("SELECT count(*) FROM channels").fetchone()
    if count >= max_channels:
        raise LimitReached(f"at most {max_channels} channels; delete one first")
    conn.execute("INSERT INTO channels(name, created_at) VALUES (?, ?)", (name, time.time()))
    return get(conn, name)


def ensure(conn: sqlite3.Connection, name: str) -> Channel:
    channel = find(conn, name)
    if channel is None:
        conn.execute("INSERT INTO channels(name, created_at) VALUES (?, ?)", (name, time.time()))
        channel = get(conn, name)
    return channel


def rename(conn: sqlite3.Connection, old: str, new: str) -> Channel:
    channel = get(conn, old)
    if find(conn, new) is not None:
        raise Conflict(f"channel #{new} already exists")
    conn.execute("UPDATE channels SET name = ? WHERE id = ?", (new, channel.id))
    conn.execute("UPDATE triggers SET channel = ? WHERE channel = ?", (new, old))
    conn.execute("UPDATE agents SET last_channel = ? WHERE last_channel = ?", (new, old))
    conn.execute("UPDATE rules SET channel = ? WHERE channel = ?", (new, old))
    return get(conn, new)


def delete(conn: sqlite3.Connection, name: str) -> Channel:
    channel = get(conn, name)
    conn.execute("DELETE FROM channels WHERE id = ?", (channel.id,))
    # Agents whose default channel this was fall back to #general rather than erroring.
    conn.execute("UPDATE agents SET last_channel = '' WHERE last_channel = ?", (name,))
    return channel


def set_routing(conn: sqlite3.Connection, channel_id: int, hops: int, paused: bool) -> None:
    conn.execute("UPDATE channels SET hops = ?, paused = ? WHERE id = ?", (hops, int(paused), channel_id))


def set_summary(conn: sqlite3.Connection, channel_id: int, summary: str, by: str = "") -> None:
    conn.execute(
        "UPDATE channels SET summary = ?, summary_by = ?, summary_at = ? WHERE id = ?",
        (summary, by, time.time(), channel_id),
    )
