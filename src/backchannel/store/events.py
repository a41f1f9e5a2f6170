"""The ordered event log live views resume from.

An event about a message records the message's id, so deleting or editing that message can
rewrite every earlier copy of it: the log never hands back text its author removed.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any, cast

from backchannel.models import Event

# Event kinds whose payload carries a message (rewritten when it is edited, deleted or renamed).
MESSAGE_KINDS = "('message', 'message_edited', 'message_deleted')"


def _message_id(payload: dict[str, Any]) -> int | None:
    message: Any = payload.get("message")
    if not isinstance(message, dict):
        return None
    found = cast(dict[str, Any], message).get("id")
    return found if isinstance(found, int) else None


def append(conn: sqlite3.Connection, kind: str, payload: dict[str, Any]) -> Event:
    cur = conn.execute(
        "INSERT INTO events(kind, payload, created_at, message_id) VALUES (?,?,?,?)",
        (kind, json.dumps(payload), time.time(), _message_id(payload)),
    )
    assert cur.lastrowid is not None
    return Event(seq=cur.lastrowid, kind=kind, payload=payload)


def rewrite_message(conn: sqlite3.Connection, message: dict[str, Any]) -> None:
    """Make every logged copy of a message carry its current public form (edited or deleted)."""
    conn.execute(
        "UPDATE events SET payload = json_set(payload, '$.message', json(?)) WHERE message_id = ?",
        (json.dumps(message), message["id"]),
    )


def drop_channel_messages(conn: sqlite3.Connection, channel_id: int) -> None:
    """A deleted channel's messages leave the log with it (call before the rows go)."""
    conn.execute(
        "DELETE FROM events WHERE message_id IN (SELECT id FROM messages WHERE channel_id = ?)",
        (channel_id,),
    )


def since(conn: sqlite3.Connection, seq: int, limit: int) -> list[Event]:
    rows = conn.execute("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))
    return [Event(seq=r["seq"], kind=r["kind"], payload=json.loads(r["payload"])) for r in rows]


def last_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])
