"""Schedule rows and their events; every function runs inside the caller's transaction.

A schedule belongs to a channel by id, so a rename carries it and a delete removes it (foreign
key). ``next_run`` is the compare-and-set key of firing: ``claim`` advances it only from the value
the engine saw, in the transaction that posts the message, so one due time fires once even when
two processes race for it.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Literal

from backchannel.errors import Conflict, NotFound
from backchannel.models import Event
from backchannel.schedule_spec import iso
from backchannel.store import events

CreatorKind = Literal["human", "agent"]

_SELECT = (
    "SELECT s.id, s.uid, s.prompt, s.targets, c.name AS channel, s.spec, s.one_shot, s.active,"
    " s.next_run, s.last_run, s.run_count, s.created_by, s.creator_kind, s.person_id, s.agent_id,"
    " s.created_at, s.updated_at FROM schedules s JOIN channels c ON c.id = s.channel_id"
)


@dataclass(frozen=True, slots=True)
class Schedule:
    id: int
    uid: str
    prompt: str
    targets: list[str]
    channel: str
    spec: str  # canonical spec text; "" for a send_at one-shot
    one_shot: bool
    active: bool
    next_run: float | None  # epoch seconds; None once a one-shot has fired
    last_run: float | None
    run_count: int
    created_by: str
    creator_kind: CreatorKind
    person_id: int | None
    agent_id: int | None
    created_at: float
    updated_at: float

    def public(self) -> dict[str, Any]:
        """The JSON shape of REST, MCP and ``schedule`` events (times ISO 8601 with offset)."""
        return {
            "id": self.id,
            "uid": self.uid,
            "prompt": self.prompt,
            "targets": list(self.targets),
            "channel": self.channel,
            "spec": self.spec,
            "one_shot": self.one_shot,
            "active": self.active,
            "next_run": iso(self.next_run),
            "last_run": iso(self.last_run),
            "run_count": self.run_count,
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
        }


@dataclass(slots=True)
class ScheduleChange:
    """What one transaction wrote, for the service to publish after the commit."""

    schedule: Schedule | None = None
    events: list[Event] = field(default_factory=list[Event])


def _row(row: sqlite3.Row) -> Schedule:
    kind: CreatorKind = "agent" if row["creator_kind"] == "agent" else "human"
    return Schedule(
        id=row["id"],
        uid=row["uid"],
        prompt=row["prompt"],
        targets=[str(t) for t in json.loads(row["targets"])],
        channel=row["channel"],
        spec=row["spec"],
        one_shot=bool(row["one_shot"]),
        active=bool(row["active"]),
        next_run=row["next_run"],
        last_run=row["last_run"],
        run_count=row["run_count"],
        created_by=row["created_by"],
        creator_kind=kind,
        person_id=row["person_id"],
        agent_id=row["agent_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def find(conn: sqlite3.Connection, schedule_id: int) -> Schedule | None:
    row = conn.execute(f"{_SELECT} WHERE s.id = ?", (schedule_id,)).fetchone()
    return None if row is None else _row(row)


def get(conn: sqlite3.Connection, schedule_id: int) -> Schedule:
    found = find(conn, schedule_id)
    if found is None:
        raise NotFound(f"no schedule {schedule_id}")
    return found


def list_schedules(conn: sqlite3.Connection, channel_id: int | None = None) -> list[Schedule]:
    if channel_id is None:
        rows = conn.execute(f"{_SELECT} ORDER BY s.id")
    else:
        rows = conn.execute(f"{_SELECT} WHERE s.channel_id = ? ORDER BY s.id", (channel_id,))
    return [_row(r) for r in rows]


def due(conn: sqlite3.Connection, now: float) -> list[Schedule]:
    """Active schedules whose due time has come, oldest due first."""
    rows = conn.execute(
        f"{_SELECT} WHERE s.active = 1 AND s.next_run IS NOT NULL AND s.next_run <= ?"
        " ORDER BY s.next_run, s.id",
        (now,),
    )
    return [_row(r) for r in rows]


def _event(conn: sqlite3.Connection, change: ScheduleChange, action: str, schedule: Schedule) -> None:
    payload = {"action": action, "schedule": schedule.public()}
    change.events.append(events.append(conn, "schedule", payload))


def create(
    conn: sqlite3.Connection,
    *,
    channel_id: int,
    prompt: str,
    targets: list[str],
    spec: str,
    one_shot: bool,
    next_run: float,
    created_by: str,
    creator_kind: CreatorKind,
    person_id: int | None,
    agent_id: int | None,
    now: float,
    limit: int,
) -> ScheduleChange:
    (count,) = conn.execute("SELECT count(*) FROM schedules").fetchone()
    if count >= limit:
        raise Conflict(f"at most {limit} schedules; delete one first")
    cur = conn.execute(
        "INSERT INTO schedules(uid, channel_id, prompt, targets, spec, one_shot, active, next_run,"
        " run_count, created_by, creator_kind, person_id, agent_id, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, 1, ?, 0, ?, ?, ?, ?, ?, ?)",
        (
            secrets.token_hex(16),
            channel_id,
            prompt,
            json.dumps(targets),
            spec,
            int(one_shot),
            next_run,
            created_by,
            creator_kind,
            person_id,
            agent_id,
            now,
            now,
        ),
    )
    assert cur.lastrowid is not None
    made = get(conn, cur.lastrowid)
    change = ScheduleChange(schedule=made)
    _event(conn, change, "created", made)
    return change


def update(conn: sqlite3.Connection, schedule_id: int, now: float, **values: Any) -> ScheduleChange:
    """Set the given columns (already validated by the service) and log an ``updated`` event."""
    allowed = {"prompt", "targets", "spec", "one_shot", "active", "next_run"}
    get(conn, schedule_id)
    for key, value in values.items():
        if key not in allowed:
            raise ValueError(key)
        stored = json.dumps(value) if key == "targets" else int(value) if isinstance(value, bool) else value
        conn.execute(f"UPDATE schedules SET {key} = ? WHERE id = ?", (stored, schedule_id))
    conn.execute("UPDATE schedules SET updated_at = ? WHERE id = ?", (now, schedule_id))
    updated = get(conn, schedule_id)
    change = ScheduleChange(schedule=updated)
    _event(conn, change, "updated", updated)
    return change


class AlreadyClaimed(Exception):
    """The due time this engine saw was already fired (or the schedule changed): do nothing."""


def claim(
    conn: sqlite3.Connection, schedule_id: int, seen_next_run: float, next_run: float | None, now: float
) -> list[Event]:
    """Advance a due schedule from the ``next_run`` the engine saw (compare-and-set), count the run
    and log ``fired``; raises ``AlreadyClaimed`` (rolling the caller's transaction back, the message
    with it) when another engine or a person's change got there first."""
    moved = conn.execute(
        "UPDATE schedules SET next_run = ?, last_run = ?, run_count = run_count + 1, updated_at = ?,"
        " active = CASE WHEN ? IS NULL THEN 0 ELSE active END"
        " WHERE id = ? AND active = 1 AND next_run = ?",
        (next_run, now, now, next_run, schedule_id, seen_next_run),
    ).rowcount
    if moved != 1:
        raise AlreadyClaimed(f"schedule {schedule_id} was not due at {seen_next_run} any more")
    fired = get(conn, schedule_id)
    change = ScheduleChange(schedule=fired)
    _event(conn, change, "fired", fired)
    return change.events


def _gone(conn: sqlite3.Connection, change: ScheduleChange, schedule: Schedule) -> None:
    """A deleted schedule leaves the log (its prompt is in every logged copy); the ``deleted``
    event names it by id and channel only."""
    conn.execute(
        "DELETE FROM events WHERE kind = 'schedule' AND json_extract(payload, '$.schedule.id') = ?",
        (schedule.id,),
    )
    payload = {"action": "deleted", "schedule": {"id": schedule.id, "channel": schedule.channel}}
    change.events.append(events.append(conn, "schedule", payload))


def delete(conn: sqlite3.Connection, schedule_id: int) -> ScheduleChange:
    schedule = get(conn, schedule_id)
    conn.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,))
    change = ScheduleChange(schedule=schedule)
    _gone(conn, change, schedule)
    return change


def channel_deleted(conn: sqlite3.Connection, channel_id: int) -> list[Event]:
    """Before a channel's row goes (the foreign key then removes its schedules): purge their logged
    copies and log a ``deleted`` event for each, so open pages drop them."""
    change = ScheduleChange()
    for schedule in list_schedules(conn, channel_id):
        _gone(conn, change, schedule)
    return change.events


def renamed(
    conn: sqlite3.Connection, old: str, new: str, *, agent_id: int | None = None, person_id: int | None = None
) -> list[Event]:
    """Schedules follow a rename: those that wake the agent (by name in ``targets``: without this
    they would wake nobody), and those the agent or person created (an ``updated`` event each)."""
    change = ScheduleChange()
    for schedule in list_schedules(conn, None):
        targets = (
            [new if t == old else t for t in schedule.targets] if agent_id is not None else schedule.targets
        )
        creator = (
            schedule.creator_kind == "agent" and agent_id is not None and schedule.agent_id == agent_id
        ) or (schedule.creator_kind == "human" and person_id is not None and schedule.person_id == person_id)
        if targets == schedule.targets and not creator:
            continue
        conn.execute(
            "UPDATE schedules SET targets = ?, created_by = ? WHERE id = ?",
            (json.dumps(targets), new if creator else schedule.created_by, schedule.id),
        )
        _event(conn, change, "updated", get(conn, schedule.id))
    return change.events


def channel_renamed(conn: sqlite3.Connection, channel_id: int) -> list[Event]:
    """After a rename: an ``updated`` event for each of the channel's schedules (new channel name)."""
    change = ScheduleChange()
    for schedule in list_schedules(conn, channel_id):
        _event(conn, change, "updated", schedule)
    return change.events
