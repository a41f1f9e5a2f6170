"""The ordered event log live views resume from."""

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
