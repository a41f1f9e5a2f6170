"""Room settings rows: the ``settings(key, value)`` table, one JSON value per key.

Keys are stored as ``room.<name>`` so other features can share the table without clashing. Only
keys a person has changed are stored; everything else falls back to the server's defaults.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from backchannel.models import Event
from backchannel.store import events

PREFIX = "room."


def load(conn: sqlite3.Connection) -> dict[str, Any]:
    """Every stored room setting, by name (without the prefix); unreadable values are skipped."""
    found: dict[str, Any] = {}
    rows = conn.execute("SELECT key, value FROM settings WHERE key LIKE 'room.%'")
    for row in rows:
        try:
            found[row["key"][len(PREFIX) :]] = json.loads(row["value"])
        except ValueError:
            continue  # a hand-edited, broken row falls back to its default rather than break start-up
    return found


def save(conn: sqlite3.Connection, values: Mapping[str, Any]) -> None:
    for name, value in values.items():
        conn.execute(
            "INSERT INTO settings(key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (PREFIX + name, json.dumps(value)),
        )


def log_change(conn: sqlite3.Connection, public: dict[str, Any]) -> Event:
    """The ``settings`` event every live view applies (same transaction as the change)."""
    return events.append(conn, "settings", {"settings": public})
