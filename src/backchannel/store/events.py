"""The ordered event log live views resume from, plus small key/value settings."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from backchannel.models import Event


def append(conn: sqlite3.Connection, kind: str, payload: dict[str, Any]) -> Event:
    cur = conn.execute(
        "INSERT INTO events(kind, payload, created_at) VALUES (?,?,?)",
        (kind, json.dumps(payload), time.time()),
    )
    assert cur.lastrowid is not None
    return Event(seq=cur.lastrowid, kind=kind, payload=payload)


def since(conn: sqlite3.Connection, seq: int, limit: int) -> list[Event]:
    rows = conn.execute("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))
    return [Event(seq=r["seq"], kind=r["kind"], payload=json.loads(r["payload"])) for r in rows]


def last_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])


def get_setting(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row["value"])


def set_setting(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO settings(key, value) VALUES (?,?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )
