"""Agent rows: the registry's storage side. Tokens are stored only as SHA-256 hashes."""

from __future__ import annotations

import sqlite3
import time

from backchannel.errors import NotFound
from backchannel.models import Agent


def row_to_agent(row: sqlite3.Row) -> Agent:
    return Agent(
        id=row["id"],
        name=row["name"],
        base=row["base"],
        instance_id=row["instance_id"],
        slot=row["slot"],
        label=row["label"],
        color=row["color"],
        activity=row["activity"],
        last_seen=row["last_seen"],
        left=row["left_at"] is not None,
        retired=bool(row["retired"]),
        last_channel=row["last_channel"],
        role=row["role"],
        hat=row["hat"],
        created_at=row["created_at"],
    )


def live(conn: sqlite3.Connection) -> list[Agent]:
    """Every identity that still owns its name (online or not)."""
    return [row_to_agent(r) for r in conn.execute("SELECT * FROM agents WHERE retired = 0 ORDER BY id")]


def by_name(conn: sqlite3.Connection, name: str) -> Agent | None:
    row = conn.execute("SELECT * FROM agents WHERE name = ? AND retired = 0", (name,)).fetchone()
    return None if row is None else row_to_agent(row)


def by_id(conn: sqlite3.Connection, agent_id: int) -> Agent:
    row = conn.execute("SELECT * FROM agents WHERE id = ?", (agent_id,)).fetchone()
    if row is None:
        raise NotFound(f"no agent with id {agent_id}")
    return row_to_agent(row)


def by_instance(conn: sqlite3.Connection, base: str, instance_id: str) -> Agent | None:
    row = conn.execute(
        "SELECT * FROM agents WHERE base = ? AND instance_id = ? AND retired = 0", (base, instance_id)
    ).fetchone()
    return None if row is None else row_to_agent(row)


def by_token_hash(conn: sqlite3.Connection, token_hash: str) -> Agent | None:
    row = conn.execute("SELECT * FROM agents WHERE token_hash = ? AND retired = 0", (token_hash,)).fetchone()
    return None if row is None else row_to_agent(row)


def insert(
    conn: sqlite3.Connection,
    *,
    name: str,
    base: str,
    instance_id: str,
    slot: int,
    label: str,
    color: str,
    token_hash: str,
) -> Agent:
    now = time.time()
    cur = conn.execute(
        "INSERT INTO agents(name, base, instance_id, slot, label, color, token_hash, last_seen, created_at)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        (name, base, instance_id, slot, label, color, token_hash, now, now),
    )
    assert cur.lastrowid is not None
    return by_id(conn, cur.lastrowid)


def reclaim(conn: sqlite3.Connection, agent_id: int, token_hash: str, label: str | None) -> Agent:
    """Give an identity a fresh token and bring it back online, keeping name, cursors and role."""
    conn.execute(
        "UPDATE agents SET token_hash = ?, left_at = NULL, last_seen = ?, activity = '',"
        " label = coalesce(?, label) WHERE id = ?",
        (token_hash, time.time(), label, agent_id),
    )
    return by_id(conn, agent_id)


def retire(conn: sqlite3.Connection, agent_id: int) -> None:
    conn.execute("UPDATE agents SET retired = 1, token_hash = NULL WHERE id = ?", (agent_id,))


def revoke_token(conn: sqlite3.Connection, agent_id: int) -> None:
    conn.execute("UPDATE agents SET token_hash = NULL WHERE id = ?", (agent_id,))


def mark_left(conn: sqlite3.Connection, agent_id: int) -> None:
    conn.execute("UPDATE agents SET left_at = ?, token_hash = NULL WHERE id = ?", (time.time(), agent_id))


def touch(conn: sqlite3.Connection, agent_id: int, when: float, activity: str | None) -> None:
    conn.execute(
        "UPDATE agents SET last_seen = max(last_seen, ?), activity = coalesce(?, activity) WHERE id = ?",
        (when, activity, agent_id),
    )


def update(conn: sqlite3.Connection, agent_id: int, **values: str) -> Agent:
    allowed = {"name", "label", "last_channel", "role", "hat", "color"}
    for key, value in values.items():
        if key not in allowed:
            raise ValueError(key)
        conn.execute(f"UPDATE agents SET {key} = ? WHERE id = ?", (value, agent_id))
    if "name" in values:
        # History follows the identity: old messages show the name it goes by now.
        conn.execute("UPDATE messages SET sender = ? WHERE agent_id = ?", (values["name"], agent_id))
    return by_id(conn, agent_id)


def expire_tokens(conn: sqlite3.Connection, seen_before: float) -> None:
    conn.execute(
        "UPDATE agents SET token_hash = NULL WHERE token_hash IS NOT NULL AND last_seen < ?", (seen_before,)
    )
