"""Jobs: board rows, their order, thread cursors, and the one-transaction changes made to them.

A job's thread is the messages whose ``job_id`` is the job's id (``channel_id`` is the job's
channel), so edits, deletes, scrub, uploads and search work on it exactly as on a channel.
Every function here runs inside the caller's transaction; ``JobChange`` carries what it wrote
(events to publish, wake-ups to send, uploads to remove) back to the service.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from backchannel.errors import Conflict, Forbidden, InvalidInput, NotFound
from backchannel.models import Agent, Event, Job, Message, SenderKind, Trigger
from backchannel.store import agents, channels, events, messages, triggers

# Columns in the order of ``Job``'s fields: rows become jobs positionally (a 1,000-job board is
# read on every page load, and name lookups on sqlite3.Row cost more than the query).
_SELECT = (
    "SELECT j.id, j.uid, j.title, j.body, j.status, c.name, j.created_by, j.assignee, j.anchor_msg_id,"
    " j.sort_order, j.message_count, j.created_at, j.updated_at, j.hops, j.paused,"
    " (SELECT max(m.id) FROM messages m WHERE m.job_id = j.id AND m.deleted = 0) AS last_message_id"
    " FROM jobs j JOIN channels c ON c.id = j.channel_id"
)
_GROUP = "CASE j.status WHEN 'todo' THEN 0 WHEN 'active' THEN 1 ELSE 2 END"


@dataclass(frozen=True, slots=True)
class Author:
    """Who acts, resolved from identity: the name written on messages and the ids behind it."""

    name: str
    kind: SenderKind
    agent_id: int | None = None
    person_id: int | None = None


@dataclass(slots=True)
class JobChange:
    """What one job transaction wrote, for the service to publish after the commit."""

    job: Job | None = None
    message: Message | None = None
    events: list[Event] = field(default_factory=list[Event])
    triggers: list[tuple[Agent, Trigger]] = field(default_factory=list[tuple[Agent, Trigger]])
    orphaned: list[str] = field(default_factory=list[str])


def row_to_job(row: sqlite3.Row) -> Job:
    *fields, paused, last = tuple(row)
    return Job(*fields, paused=bool(paused), last_message_id=last or 0)


def find(conn: sqlite3.Connection, job_id: int) -> Job | None:
    row = conn.execute(f"{_SELECT} WHERE j.id = ?", (job_id,)).fetchone()
    return None if row is None else row_to_job(row)


def get(conn: sqlite3.Connection, job_id: int) -> Job:
    job = find(conn, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def list_jobs(
    conn: sqlite3.Connection, status: str | None = None, channel_id: int | None = None
) -> list[Job]:
    """The board: by status group (todo, active, closed), then the order people gave it."""
    where: list[str] = []
    params: list[Any] = []
    if status is not None:
        where.append("j.status = ?")
        params.append(status)
    if channel_id is not None:
        where.append("j.channel_id = ?")
        params.append(channel_id)
    sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "")
    sql += f" ORDER BY {_GROUP}, j.sort_order, j.id"
    return [row_to_job(r) for r in conn.execute(sql, params)]


def _next_order(conn: sqlite3.Connection, status: str) -> int:
    row = conn.execute("SELECT max(sort_order) FROM jobs WHERE status = ?", (status,)).fetchone()
    return int(row[0] or 0) + 1


def insert(
    conn: sqlite3.Connection,
    *,
    channel_id: int,
    title: str,
    body: str,
    status: str,
    created_by: str,
    assignee: str,
    anchor_msg_id: int | None,
) -> Job:
    now = time.time()
    cur = conn.execute(
        "INSERT INTO jobs(uid, channel_id, title, body, status, created_by, assignee, anchor_msg_id,"
        " sort_order, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            secrets.token_hex(16),
            channel_id,
            title,
            body,
            status,
            created_by,
            assignee,
            anchor_msg_id,
            _next_order(conn, status),
            now,
            now,
        ),
    )
    assert cur.lastrowid is not None
    return get(conn, cur.lastrowid)


def set_routing(conn: sqlite3.Connection, job_id: int, hops: int, paused: bool) -> None:
    conn.execute("UPDATE jobs SET hops = ?, paused = ? WHERE id = ?", (hops, int(paused), job_id))


# -- thread cursors ------------------------------------------------------------------------------
def get_cursor(conn: sqlite3.Connection, agent_id: int, job_id: int) -> int | None:
    row = conn.execute(
        "SELECT last_id FROM job_cursors WHERE agent_id = ? AND job_id = ?", (agent_id, job_id)
    ).fetchone()
    return None if row is None else int(row["last_id"])


def set_cursor(conn: sqlite3.Connection, agent_id: int, job_id: int, last: int) -> None:
    """Cursors only move forward, so a late write can never re-deliver what was read."""
    conn.execute(
        "INSERT INTO job_cursors(agent_id, job_id, last_id) VALUES (?,?,?) ON CONFLICT(agent_id, job_id)"
        " DO UPDATE SET last_id = max(last_id, excluded.last_id)",
        (agent_id, job_id, last),
    )


def read_for_agent(
    conn: sqlite3.Connection,
    agent_id: int,
    job_id: int,
    limit: int,
    since_id: int | None,
    build: messages.Build = messages.row_to_message,
) -> tuple[list[Message], int, bool]:
    """A thread read with the agent's own cursor: the same rules as a channel read. The flag says
    whether this was the agent's first read of the thread."""
    job = get(conn, job_id)
    ch = channels.get(conn, job.channel)
    cursor = get_cursor(conn, agent_id, job_id)
    batch, remaining = messages.cursor_read(
        conn,
        ch.id,
        limit,
        since_id,
        cursor,
        lambda last: set_cursor(conn, agent_id, job_id, last),
        job_id=job_id,
        build=build,
    )
    return batch, remaining, cursor is None


def renamed(conn: sqlite3.Connection, old: str, new: str) -> list[Event]:
    """An agent's or a person's jobs follow their rename (assigned to them, or opened by them): an
    ``updated`` event each, and an agent can still take or close the jobs it holds. Agents' and
    people's names never overlap, so a name here is the renamed one's."""
    ids = [int(r[0]) for r in conn.execute("SELECT id FROM jobs WHERE ? IN (assignee, created_by)", (old,))]
    conn.execute("UPDATE jobs SET assignee = ? WHERE assignee = ?", (new, old))
    conn.execute("UPDATE jobs SET created_by = ? WHERE created_by = ?", (new, old))
    return [_job_event(conn, "updated", get(conn, job_id)) for job_id in ids]


# -- helpers shared by the changes -----------------------------------------------------------------
def _job_event(conn: sqlite3.Connection, action: str, job: Job) -> Event:
    return events.append(conn, "job", {"action": action, "job": job.public()})


def message_event(conn: sqlite3.Connection, kind: str, msg: Message) -> Event:
    if kind != "message":
        events.rewrite_message(conn, msg.public())
    return events.append(conn, kind, {"message": msg.public()})


def wake(
    conn: sqlite3.Connection,
    change: JobChange,
    agent_id: int | None,
    *,
    channel: str,
    message_id: int,
    job_id: int,
    sender: str,
    prompt: Callable[[Agent], str],
) -> Trigger | None:
    """Queue a wake-up with its own instruction for a live agent (it never folds into a mention's)."""
    if agent_id is None:
        return None
    agent = agents.by_id(conn, agent_id)
    if agent.retired:
        return None
    made = triggers.insert(
        conn,
        agent_id=agent.id,
        channel=channel,
        message_id=message_id,
        job_id=job_id,
        sender=sender,
        prompt=prompt(agent),
        fold=False,
    )
    assert made is not None  # fold=False always makes one
    change.triggers.append((agent, made))
    return made


def _system_line(conn: sqlite3.Connection, change: JobChange, job: Job, text: str) -> Message:
    ch = channels.get(conn, job.channel)
    note = messages.insert(
        conn, channel_id=ch.id, sender="system", kind="system", text=text, type="system", job_id=job.id
    )
    change.events.append(message_event(conn, "message", note))
    return note


def _record(
    conn: sqlite3.Connection, change: JobChange, old: Job, notes: Callable[[Job, Job], list[str]]
) -> Job:
    """After a change to job ``old``: its lines in the thread (who did what), then its event."""
    new = get(conn, old.id)
    for line in notes(old, new):
        _system_line(conn, change, new, line)
    job = get(conn, old.id)  # message_count and last_message_id count the lines
    change.events.append(_job_event(conn, "updated", job))
    return job


def _proposal(conn: sqlite3.Connection, msg_id: int) -> Message:
    card = messages.get(conn, msg_id)
    if card.type != "job_proposal" or card.deleted:
        raise InvalidInput(f"message {msg_id} is not a job proposal")
    return card


def _accepted_card(conn: sqlite3.Connection, job: Job) -> Message | None:
    """The proposal card this job accepted, if it is still there."""
    if job.anchor_msg_id is None:
        return None
    try:
        card = messages.get(conn, job.anchor_msg_id)
    except NotFound:
        return None
    accepted = card.type == "job_proposal" and not card.deleted and card.metadata.get("job_id") == job.id
    return card if accepted else None


def _check_undecided(card: Message) -> None:
    status = card.metadata.get("status", "proposed")
    if status != "proposed":
        raise Conflict(f"proposal {card.id} was already {status}")


# -- changes ---------------------------------------------------------------------------------------
def create(
    conn: sqlite3.Connection,
    *,
    channel: str | None,
    title: str,
    body: str,
    status: str | None,
    assignee: str,
    anchor_msg_id: int | None,
    author: Author,
    wake_prompt: Callable[[Agent, Job], str],
) -> JobChange:
    """Create a job and its ``job_created`` card; accepting a proposal card is part of it, once."""
    change = JobChange()
    card: Message | None = None
    if anchor_msg_id is not None:
        try:
            anchor = messages.get(conn, anchor_msg_id)
        except NotFound:
            raise InvalidInput(f"anchor_msg_id: no message {anchor_msg_id}") from None
        if anchor.type == "job_proposal" and not anchor.deleted:
            _check_undecided(anchor)
            card = anchor
        channel = channel or anchor.channel
    ch = channels.get(conn, channel or "general")
    job = insert(
        conn,
        channel_id=ch.id,
        title=title,
        body=body,
        status=status or ("active" if card is not None else "todo"),
        created_by=author.name,
        assignee=assignee,
        anchor_msg_id=anchor_msg_id,
    )
    change.job = job
    change.events.append(_job_event(conn, "created", job))
    if card is not None:
        meta = {**card.metadata, "status": "accepted", "job_id": job.id, "decided_by": author.name}
        card = messages.set_metadata(conn, card.id, meta)
        change.message = card
        change.events.append(message_event(conn, "message_edited", card))
    created = messages.insert(
        conn,
        channel_id=ch.id,
        sender=author.name,
        kind=author.kind,
        text=f"Job #{job.id} created: {title}",
        type="job_created",
        metadata={"job_id": job.id},
        agent_id=author.agent_id,
        person_id=author.person_id,
    )
    change.events.append(message_event(conn, "message", created))
    if card is not None:
        wake(
            conn,
            change,
            messages.agent_id_of(conn, card.id),
            channel=ch.name,
            message_id=created.id,
            job_id=job.id,
            sender=author.name,
            prompt=lambda agent: wake_prompt(agent, job),
        )
    return change


def update(
    conn: sqlite3.Connection,
    job_id: int,
    *,
    status: str | None,
    title: str | None,
    body: str | None,
    assignee: str | None,
    notes: Callable[[Job, Job], list[str]],
    by_agent: bool = False,
) -> JobChange:
    """Change fields; a new status puts the job at the end of its new group. ``notes`` are the
    system lines to record in the thread (who did what). Nothing changed: nothing written."""
    old = get(conn, job_id)
    sets: list[str] = []
    params: list[Any] = []
    for column, value in (("title", title), ("body", body), ("assignee", assignee)):
        if value is not None and value != getattr(old, column):
            sets.append(f"{column} = ?")
            params.append(value)
    if status is not None and status != old.status:
        sets += ["status = ?", "sort_order = ?"]
        params += [status, _next_order(conn, status)]
    if not sets:
        return JobChange(job=old)
    if by_agent and old.status == "closed" and (status in ("todo", "active") or "assignee = ?" in sets):
        raise Forbidden(f"job #{job_id} is closed; only a person can reopen it")
    sets.append("updated_at = ?")
    params += [time.time(), job_id]
    conn.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?", params)
    change = JobChange()
    change.job = _record(conn, change, old, notes)
    return change


def resume(conn: sqlite3.Connection, job_id: int, by: str) -> JobChange:
    """``/continue`` in a job's thread: reset its loop guard and say so in the thread."""
    old = get(conn, job_id)
    set_routing(conn, job_id, 0, False)
    change = JobChange()
    change.job = _record(conn, change, old, lambda o, n: [f"{by} resumed agent routing in job #{n.id}."])
    change.message = messages.get(conn, change.job.last_message_id)
    return change


def reorder(
    conn: sqlite3.Connection, status: str, ordered_ids: Sequence[int], notes: Callable[[Job, Job], list[str]]
) -> JobChange:
    """The listed jobs first, in that order; the rest of that status keep their order after them.
    A listed job of another status moves into ``status`` there (recorded like a status change)."""
    listed = set(ordered_ids)
    if len(listed) != len(ordered_ids):
        raise InvalidInput("ordered_ids lists a job twice")
    found = dict(
        conn.execute(
            "SELECT j.id, j.status FROM jobs j JOIN json_each(?) e ON e.value = j.id",
            (json.dumps(list(ordered_ids)),),
        ).fetchall()
    )
    unknown = [i for i in ordered_ids if i not in found]
    if unknown:
        raise InvalidInput(f"ordered_ids: there is no job {unknown[0]}")
    moved = [get(conn, i) for i in ordered_ids if found[i] != status]
    now = time.time()
    conn.executemany(
        "UPDATE jobs SET status = ?, updated_at = ? WHERE id = ?", [(status, now, j.id) for j in moved]
    )
    current = [
        r[0] for r in conn.execute("SELECT id FROM jobs WHERE status = ? ORDER BY sort_order, id", (status,))
    ]
    order = [*ordered_ids, *(i for i in current if i not in listed)]
    conn.executemany(
        "UPDATE jobs SET sort_order = ?, updated_at = CASE WHEN sort_order = ? THEN updated_at ELSE ? END"
        " WHERE id = ?",
        [(n, n, now, job_id) for n, job_id in enumerate(order, start=1)],
    )
    change = JobChange()
    for old in moved:
        _record(conn, change, old, notes)
    change.events.append(
        events.append(conn, "job", {"action": "reordered", "status": status, "ordered_ids": order})
    )
    return change


def delete(conn: sqlite3.Connection, job_id: int) -> JobChange:
    """Delete a job for good: its thread, the thread's logged copies, uploads only it used."""
    job = get(conn, job_id)
    orphaned = [
        str(r["name"])
        for r in conn.execute(
            "SELECT DISTINCT u.name FROM messages m JOIN message_uploads u ON u.message_id = m.id"
            " WHERE m.job_id = ? AND NOT EXISTS (SELECT 1 FROM message_uploads o JOIN messages om"
            " ON om.id = o.message_id WHERE o.name = u.name AND (om.job_id IS NULL OR om.job_id != ?))",
            (job_id, job_id),
        )
    ]
    change = JobChange(job=job, orphaned=orphaned)
    # Other jobs anchored on a message of this thread lose the anchor.
    anchored = [
        get(conn, r[0])
        for r in conn.execute(
            "SELECT id FROM jobs WHERE id != ?"
            " AND anchor_msg_id IN (SELECT id FROM messages WHERE job_id = ?)",
            (job_id, job_id),
        )
    ]
    conn.execute(
        "DELETE FROM events WHERE message_id IN (SELECT id FROM messages WHERE job_id = ?)", (job_id,)
    )
    conn.execute("DELETE FROM messages WHERE job_id = ?", (job_id,))
    for other in anchored:
        conn.execute("UPDATE jobs SET anchor_msg_id = NULL WHERE id = ?", (other.id,))
        change.events.append(_job_event(conn, "updated", get(conn, other.id)))
    # The proposal card it accepted says so.
    card = _accepted_card(conn, job)
    if card is not None:
        card = messages.set_metadata(conn, card.id, {**card.metadata, "job_deleted": True})
        change.events.append(message_event(conn, "message_edited", card))
    # Whatever else names the job goes too: its "Job #N created" cards in the channel, the board's
    # logged events (they carry the title), the prompts of wake-ups still pending for its thread.
    cards = conn.execute(
        "SELECT id FROM messages WHERE type = 'job_created' AND json_extract(metadata, '$.job_id') = ?",
        (job_id,),
    ).fetchall()
    for card in cards:
        gone, _ = messages.delete(conn, card["id"])
        change.events.append(message_event(conn, "message_deleted", gone))
    conn.execute("DELETE FROM events WHERE kind = 'job' AND json_extract(payload, '$.job.id') = ?", (job_id,))
    triggers.blank(conn, "job_id = ?", (job_id,))
    conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
    # The deleted event names the job by id only: a page drops the card, the log keeps no title.
    change.events.append(events.append(conn, "job", {"action": "deleted", "job": {"id": job.id}}))
    return change


def resolve_suggestion(
    conn: sqlite3.Connection,
    job_id: int,
    msg_id: int,
    resolution: Literal["accepted", "dismissed"],
    author: Author,
    wake_prompt: Callable[[Agent, Job], str],
) -> JobChange:
    """Resolve a suggestion once (409 after); accepting wakes the agent that suggested it."""
    job = get(conn, job_id)
    msg = messages.get(conn, msg_id)
    if msg.job_id != job_id:
        raise NotFound(f"no message {msg_id} in job {job_id}")
    if msg.type != "suggestion" or msg.deleted:
        raise InvalidInput(f"message {msg_id} is not a suggestion")
    done = msg.metadata.get("resolution")
    if done is not None:
        raise Conflict(f"suggestion {msg_id} was already {done}")
    msg = messages.set_metadata(
        conn, msg_id, {**msg.metadata, "resolution": resolution, "resolved_by": author.name}
    )
    change = JobChange(job=job, message=msg)
    change.events.append(message_event(conn, "message_edited", msg))
    if resolution == "accepted":
        wake(
            conn,
            change,
            messages.agent_id_of(conn, msg_id),
            channel=job.channel,
            message_id=msg_id,
            job_id=job.id,
            sender=author.name,
            prompt=lambda agent: wake_prompt(agent, job),
        )
    return change


def decide_proposal(
    conn: sqlite3.Connection,
    msg_id: int,
    decision: Literal["dismiss", "changes"],
    author: Author,
    note: str,
    wake_prompt: Callable[[Agent, Message], str],
) -> JobChange:
    """Dismiss a proposal card (once), or ask its proposer for changes (the card stays open)."""
    card = _proposal(conn, msg_id)
    _check_undecided(card)
    if decision == "dismiss":
        meta = {**card.metadata, "status": "dismissed", "decided_by": author.name}
    else:
        meta = {**card.metadata, "changes_requested_by": author.name, "changes_note": note}
    card = messages.set_metadata(conn, msg_id, meta)
    change = JobChange(message=card)
    change.events.append(message_event(conn, "message_edited", card))
    if decision == "changes":
        wake(
            conn,
            change,
            messages.agent_id_of(conn, msg_id),
            channel=card.channel,
            message_id=msg_id,
            job_id=0,
            sender=author.name,
            prompt=lambda agent: wake_prompt(agent, card),
        )
    return change


def convert(
    conn: sqlite3.Connection,
    message_id: int,
    agent_name: str | None,
    author: Author,
    wake_prompt: Callable[[Agent, Message], str],
) -> tuple[Agent, Trigger, JobChange]:
    """Ask an agent (default: the message's author, if an agent) to propose a job from a message."""
    msg = messages.get(conn, message_id)
    if msg.deleted:
        raise InvalidInput(f"message {message_id} is deleted")
    if agent_name:
        agent = agents.by_name(conn, agent_name)
        if agent is None:
            raise NotFound(f"no agent named {agent_name!r}")
    else:
        agent_id = messages.agent_id_of(conn, message_id)
        if agent_id is None:
            raise InvalidInput(f"message {message_id} is not an agent's: name the agent to ask")
        agent = agents.by_id(conn, agent_id)
        if agent.retired:
            raise InvalidInput(f"{msg.sender} is no longer in the room: name the agent to ask")
    change = JobChange(message=msg)
    trigger = wake(
        conn,
        change,
        agent.id,
        channel=msg.channel,
        message_id=msg.id,
        job_id=msg.job_id or 0,
        sender=author.name,
        prompt=lambda a: wake_prompt(a, msg),
    )
    assert trigger is not None  # the agent is live (checked above)
    return agent, trigger, change
