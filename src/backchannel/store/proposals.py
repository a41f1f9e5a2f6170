"""Rules that agents put forward for a human to accept (job proposals are cards: see store/jobs.py)."""

from __future__ import annotations

import sqlite3
import time

from backchannel.errors import NotFound
from backchannel.models import Rule


def _rule(row: sqlite3.Row) -> Rule:
    return Rule(**{k: row[k] for k in row.keys()})  # noqa: SIM118 - sqlite3.Row has no items()


def add_rule(conn: sqlite3.Connection, channel: str, text: str, reason: str, proposed_by: str) -> Rule:
    cur = conn.execute(
        "INSERT INTO rules(channel, text, reason, proposed_by, created_at) VALUES (?,?,?,?,?)",
        (channel, text, reason, proposed_by, time.time()),
    )
    return _rule(conn.execute("SELECT * FROM rules WHERE id = ?", (cur.lastrowid,)).fetchone())


def rules(conn: sqlite3.Connection, status: str | None = None) -> list[Rule]:
    if status is None:
        return [_rule(r) for r in conn.execute("SELECT * FROM rules ORDER BY id")]
    return [_rule(r) for r in conn.execute("SELECT * FROM rules WHERE status = ? ORDER BY id", (status,))]


def set_rule_status(conn: sqlite3.Connection, rule_id: int, status: str) -> Rule:
    conn.execute("UPDATE rules SET status = ? WHERE id = ?", (status, rule_id))
    row = conn.execute("SELECT * FROM rules WHERE id = ?", (rule_id,)).fetchone()
    if row is None:
        raise NotFound(f"no rule {rule_id}")
    return _rule(row)
