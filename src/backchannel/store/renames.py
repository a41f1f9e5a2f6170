"""What follows an agent's or a person's rename, besides their messages (which follow by id):
every record that names them. Inside the rename's transaction; returns the logged events to
publish after the commit."""

from __future__ import annotations

import sqlite3

from backchannel.models import Event
from backchannel.store import jobs, rules, schedules, sessions


def follow(
    conn: sqlite3.Connection, old: str, new: str, *, agent_id: int | None = None, person_id: int | None = None
) -> list[Event]:
    """Running sessions' casts, jobs (assignee, opener), rules (author) and schedules (targets,
    creator): before, a renamed agent could not take its own job and a schedule woke nobody."""
    return [
        *sessions.participant_renamed(conn, old, new),
        *jobs.renamed(conn, old, new),
        *rules.author_renamed(conn, old, new),
        *schedules.renamed(conn, old, new, agent_id=agent_id, person_id=person_id),
    ]
