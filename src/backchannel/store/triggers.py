"""Durable wake-ups: one row per prompt owed to an agent, replayed until acknowledged."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any

from backchannel.errors import InvalidInput, NotFound
from backchannel.models import Trigger

# States a wrapper has not acknowledged yet: replayed on reconnect, their ``sender`` still shown.
PENDING_STATES = "('queued', 'failed', 'waiting')"

# What the wrapper may report about a trigger it received (queued and superseded are the server's).
REPORTABLE = frozenset({"injected", "failed", "waiting"})


def row_to_trigger(row: sqlite3.Row) -> Trigger:
    return Trigger(
        id=row["id"],
        agent_id=row["agent_id"],
        channel=row["channel"],
        message_id=row["message_id"],
        job_id=row["job_id"],
        sender=row["sender"],
        prompt=row["prompt"],
        state=row["state"],
        detail=row["detail"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def insert(
    conn: sqlite3.Connection,
    *,
    agent_id: int,
    channel: str,
    message_id: int,
    job_id: int,
    sender: str,
    prompt: str,
    fold: bool = True,
) -> Trigger | None:
    """Queue a wake-up, unless one for this place is still waiting to be sent (one prompt per channel,
    and one per job thread: a job's wake-up names the job, so it never folds into the channel's)."""
    if not fold:  # its own instruction: neither folds nor takes over a failed mention's wake-up
        return _create(conn, agent_id, channel, message_id, job_id, sender, prompt, [message_id], folds=False)
    pending = unsent(conn, agent_id, channel, job_id)
    if pending is not None:
        _link(conn, pending, [message_id])  # the mention rides on the wake-up not yet sent
        return None
    # A failed delivery for this channel is replaced by the new one, not replayed beside it; the
    # messages it carried now show the new one's fate.
    failed = [
        r["id"]
        for r in conn.execute(
            "SELECT id FROM triggers WHERE agent_id = ? AND channel = ? AND job_id = ? AND state = 'failed'"
            " AND folds = 1",
            (agent_id, channel, job_id),
        )
    ]
    carried = [message_id, *_messages_of(conn, failed)]
    conn.execute(
        "UPDATE triggers SET state = 'superseded'"
        " WHERE agent_id = ? AND channel = ? AND job_id = ? AND state = 'failed' AND folds = 1",
        (agent_id, channel, job_id),
    )
    return _create(conn, agent_id, channel, message_id, job_id, sender, prompt, carried)


def blank(conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> None:
    """Wake-ups for messages that are gone (a deleted job, a cleared channel): the prompt (it may
    quote them) is blanked and those still pending are never delivered. ``where``: SQL on triggers."""
    conn.execute(
        f"UPDATE triggers SET prompt = '', state = CASE WHEN state IN {PENDING_STATES}"
        f" THEN 'superseded' ELSE state END WHERE {where}",
        params,
    )


def unsent(conn: sqlite3.Connection, agent_id: int, channel: str, job_id: int = 0) -> int | None:
    """The wake-up for this agent and place that the wrapper has not received yet, if any."""
    row = conn.execute(
        "SELECT id FROM triggers WHERE agent_id = ? AND channel = ? AND job_id = ? AND state = 'queued'"
        " AND sent_at IS NULL AND folds = 1",
        (agent_id, channel, job_id),
    ).fetchone()
    return None if row is None else int(row["id"])


def _create(
    conn: sqlite3.Connection,
    agent_id: int,
    channel: str,
    message_id: int,
    job_id: int,
    sender: str,
    prompt: str,
    carried: Iterable[int],
    *,
    folds: bool = True,
) -> Trigger:
    now = time.time()
    cur = conn.execute(
        "INSERT INTO triggers(agent_id, channel, message_id, job_id, sender, prompt, created_at, updated_at,"
        " folds) VALUES (?,?,?,?,?,?,?,?,?)",
        (agent_id, channel, message_id, job_id, sender, prompt, now, now, int(folds)),
    )
    assert cur.lastrowid is not None
    _link(conn, cur.lastrowid, carried)
    return get(conn, cur.lastrowid)


def _link(conn: sqlite3.Connection, trigger_id: int, message_ids: Iterable[int]) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO trigger_messages(message_id, trigger_id) VALUES (?, ?)",
        [(m, trigger_id) for m in message_ids if m > 0],
    )


def _messages_of(conn: sqlite3.Connection, trigger_ids: list[int]) -> list[int]:
    if not trigger_ids:
        return []
    marks = ",".join("?" * len(trigger_ids))
    rows = conn.execute(
        f"SELECT DISTINCT message_id FROM trigger_messages WHERE trigger_id IN ({marks})", trigger_ids
    )
    return [int(r["message_id"]) for r in rows]


def message_ids(conn: sqlite3.Connection, trigger_id: int) -> list[int]:
    """The messages whose delivery this trigger decides (its own and those folded into it)."""
    return sorted(_messages_of(conn, [trigger_id]))


def get(conn: sqlite3.Connection, trigger_id: int) -> Trigger:
    row = conn.execute("SELECT * FROM triggers WHERE id = ?", (trigger_id,)).fetchone()
    if row is None:
        raise NotFound(f"no trigger {trigger_id}")
    return row_to_trigger(row)


def pending(conn: sqlite3.Connection, agent_id: int, after_id: int = 0) -> list[Trigger]:
    rows = conn.execute(
        f"SELECT * FROM triggers WHERE agent_id = ? AND state IN {PENDING_STATES} AND id > ? ORDER BY id",
        (agent_id, after_id),
    )
    return [row_to_trigger(r) for r in rows]


def set_state(conn: sqlite3.Connection, trigger_id: int, agent_id: int, state: str, detail: str) -> Trigger:
    current = get(conn, trigger_id)
    if current.agent_id != agent_id:
        raise NotFound(f"no trigger {trigger_id} for this agent")
    if state not in REPORTABLE:
        raise InvalidInput(f"state must be one of {', '.join(sorted(REPORTABLE))}")
    if current.state == "superseded":
        # Final: a late report (a wrapper that held it while the CLI was busy) is accepted but must
        # not make a withdrawn wake-up pending again, where a reconnect would replay it.
        return current
    conn.execute(
        "UPDATE triggers SET state = ?, detail = ?, updated_at = ? WHERE id = ?",
        (state, detail, time.time(), trigger_id),
    )
    return get(conn, trigger_id)


def states(conn: sqlite3.Connection, agent_id: int, ids: Sequence[int]) -> dict[int, str]:
    """The state of each of this agent's triggers among ``ids`` (others' and unknown ids are left
    out): a wrapper asks right before typing held wake-ups, so superseded ones are never typed."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    marks = ",".join("?" * len(wanted))
    rows = conn.execute(
        f"SELECT id, state FROM triggers WHERE agent_id = ? AND id IN ({marks})", (agent_id, *wanted)
    )
    return {int(r["id"]): str(r["state"]) for r in rows}


def latest_states(conn: sqlite3.Connection) -> dict[int, str]:
    """Delivery state of each agent's newest trigger, for the roster."""
    rows = conn.execute(
        "SELECT agent_id, state FROM triggers WHERE id IN (SELECT max(id) FROM triggers GROUP BY agent_id)"
    )
    return {r["agent_id"]: r["state"] for r in rows}


def mark_sent(conn: sqlite3.Connection, trigger_id: int) -> None:
    conn.execute(
        "UPDATE triggers SET sent_at = ? WHERE id = ? AND sent_at IS NULL", (time.time(), trigger_id)
    )


def retry(conn: sqlite3.Connection, trigger_id: int) -> tuple[Trigger, bool]:
    """Queue a failed wake-up again; returns the trigger that now carries it and whether it is new.

    The retry is a fresh trigger (a new id, so a live trigger stream that already sent the old one
    sends it again); a wake-up for the same channel that has not gone out yet simply takes it over.
    """
    old = get(conn, trigger_id)
    if old.state != "failed":
        raise InvalidInput(f"only a failed delivery can be retried; this one is {old.state}")
    carried = _messages_of(conn, [old.id]) or [old.message_id]
    conn.execute(
        "UPDATE triggers SET state = 'superseded', updated_at = ? WHERE id = ?", (time.time(), old.id)
    )
    folds = bool(conn.execute("SELECT folds FROM triggers WHERE id = ?", (old.id,)).fetchone()[0])
    pending = unsent(conn, old.agent_id, old.channel, old.job_id) if folds else None
    if pending is not None:
        _link(conn, pending, carried)
        return get(conn, pending), False
    fresh = _create(
        conn,
        old.agent_id,
        old.channel,
        old.message_id,
        old.job_id,
        old.sender,
        old.prompt,
        carried,
        folds=folds,
    )
    return fresh, True


def for_messages(conn: sqlite3.Connection, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Per message, the current delivery to each agent it woke: the newest trigger carrying it."""
    out: dict[int, list[dict[str, Any]]] = {}
    ids = sorted({i for i in ids if i > 0})
    for start in range(0, len(ids), 500):  # stay far below SQLite's bound-parameter limit
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            "SELECT tm.message_id AS carried, t.*, a.name AS agent"
            " FROM trigger_messages tm JOIN triggers t ON t.id = tm.trigger_id"
            " JOIN agents a ON a.id = t.agent_id"
            f" WHERE tm.message_id IN ({marks}) ORDER BY tm.message_id, t.id",
            chunk,
        )
        newest: dict[tuple[int, int], tuple[Trigger, str]] = {}
        for r in rows:  # ordered by id: the last one wins
            newest[(r["carried"], r["agent_id"])] = (row_to_trigger(r), r["agent"])
        for (message_id, _agent), (trigger, agent) in newest.items():
            if trigger.state == "superseded":
                continue
            out.setdefault(message_id, []).append(public(trigger, agent))
    return out


def public(trigger: Trigger, agent: str) -> dict[str, Any]:
    """One delivery as the UI sees it: never the prompt."""
    return {
        "trigger": trigger.id,
        "agent": agent,
        "state": trigger.state,
        "detail": trigger.detail,
        "updated_at": trigger.updated_at,
    }


def delivery_event(trigger: Trigger, agent: str, message_ids: list[int]) -> dict[str, Any]:
    """The live "delivery" event: what changed, and which messages show it."""
    return {
        "kind": "delivery",
        **public(trigger, agent),
        "channel": trigger.channel,
        "message_ids": message_ids,
    }
