"""Rules and job proposals that agents put forward for a human to accept."""

from __future__ import annotations

import sqlite3
import time

from backchannel.errors import Conflict, NotFound
from backchannel.models import Job, Rule


def _rule(row: sqlite3.Row) -> Rule:
    return Rule(**{k: row[k] for k in row.keys()})  # noqa: SIM118 - sqlite3.Row has no items()


def _job(row: sqlite3.Row) -> Job:
    return Job(**{k: row[k] for k in row.keys() if k != "proposer_id"})  # noqa: SIM118 - sqlite3.Row has no items()


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


def add_job(
    conn: sqlite3.Connection, channel: str, title: str, body: str, proposed_by: str, proposer_id: int
) -> Job:
    cur = conn.execute(
        "INSERT INTO jobs(channel, title, body, proposed_by, proposer_id, created_at) VALUES (?,?,?,?,?,?)",
        (channel, title, body, proposed_by, proposer_id, time.time()),
    )
    return _job(conn.execute("SELECT * FROM jobs WHERE id = ?", (cur.lastrowid,)).fetchone())


def set_job_message(conn: sqlite3.Connection, job_id: int, message_id: int) -> None:
    conn.execute("UPDATE jobs SET message_id = ? WHERE id = ?", (message_id, job_id))


def jobs(conn: sqlite3.Connection) -> list[Job]:
    return [_job(r) for r in conn.execute("SELECT * FROM jobs ORDER BY id")]


def decide_job(conn: sqlite3.Connection, job_id: int, status: str) -> tuple[Job, str | None]:
    """Accept or decline a proposed job, once; returns it and the proposer's current name."""
    row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise NotFound(f"no job {job_id}")
    if row["status"] != "proposed":
        raise Conflict(f"job {job_id} was already {row['status']}")
    if conn.execute("SELECT 1 FROM channels WHERE name = ?", (row["channel"],)).fetchone() is None:
        raise NotFound(f"job {job_id} was proposed in #{row['channel']}, which no longer exists")
    conn.execute("UPDATE jobs SET status = ? WHERE id = ?", (status, job_id))
    proposer = conn.execute(
        "SELECT name FROM agents WHERE id = ? AND retired = 0", (row["proposer_id"],)
    ).fetchone()
    job = _job(conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())
    return job, None if proposer is None else str(proposer["name"])
