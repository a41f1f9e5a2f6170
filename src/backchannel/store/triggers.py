"""Durable wake-ups: one row per prompt owed to an agent, replayed until acknowledged."""

from __future__ import annotations

import sqlite3
import time

from backchannel.errors import NotFound
from backchannel.models import Trigger


def row_to_trigger(row: sqlite3.Row) -> Trigger:
    return Trigger(
        id=row["id"],
        agent_id=row["agent_id"],
        channel=row["channel"],
        message_id=row["message_id"],
        job_id=row["job_id"],
        sender=row["sender"],
        prompt=row["prompt"],
        state=row["state"],
        detail=row["detail"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def insert(
    conn: sqlite3.Connection,
    *,
    agent_id: int,
    channel: str,
    message_id: int,
    job_id: int,
    sender: str,
    prompt: str,
) -> Trigger | None:
    """Queue a wake-up, unless one for this channel is still waiting to be sent (one prompt per channel)."""
    pending = conn.execute(
        "SELECT id FROM triggers WHERE agent_id = ? AND channel = ? AND state = 'queued' AND sent_at IS NULL",
        (agent_id, channel),
    ).fetchone()
    if pending is not None:
        return None
    # A failed delivery for this channel is replaced by the new one, not replayed beside it.
    conn.execute(
        "UPDATE triggers SET state = 'superseded' WHERE agent_id = ? AND channel = ? AND state = 'failed'",
        (agent_id, channel),
    )
    now = time.time()
    cur = conn.execute(
        "INSERT INTO triggers(agent_id, channel, message_id, job_id, sender, prompt, created_at, updated_at)"
        " VALUES (?,?,?,?,?,?,?,?)",
        (agent_id, channel, message_id, job_id, sender, prompt, now, now),
    )
    assert cur.lastrowid is not None
    return get(conn, cur.lastrowid)


def get(conn: sqlite3.Connection, trigger_id: int) -> Trigger:
    row = conn.execute("SELECT * FROM triggers WHERE id = ?", (trigger_id,)).fetchone()
    if row is None:
        raise NotFound(f"no trigger {trigger_id}")
    return row_to_trigger(row)


def pending(conn: sqlite3.Connection, agent_id: int, after_id: int = 0) -> list[Trigger]:
    rows = conn.execute(
        "SELECT * FROM triggers WHERE agent_id = ? AND state IN ('queued', 'failed') AND id > ? ORDER BY id",
        (agent_id, after_id),
    )
    return [row_to_trigger(r) for r in rows]


def set_state(conn: sqlite3.Connection, trigger_id: int, agent_id: int, state: str, detail: str) -> Trigger:
    current = get(conn, trigger_id)
    if current.agent_id != agent_id:
        raise NotFound(f"no trigger {trigger_id} for this agent")
    conn.execute(
        "UPDATE triggers SET state = ?, detail = ?, updated_at = ? WHERE id = ?",
        (state, detail, time.time(), trigger_id),
    )
    return get(conn, trigger_id)


def latest_states(conn: sqlite3.Connection) -> dict[int, str]:
    """Delivery state of each agent's newest trigger, for the roster."""
    rows = conn.execute(
        "SELECT agent_id, state FROM triggers WHERE id IN (SELECT max(id) FROM triggers GROUP BY agent_id)"
    )
    return {r["agent_id"]: r["state"] for r in rows}


def mark_sent(conn: sqlite3.Connection, trigger_id: int) -> None:
    conn.execute(
        "UPDATE triggers SET sent_at = ? WHERE id = ? AND sent_at IS NULL", (time.time(), trigger_id)
    )
