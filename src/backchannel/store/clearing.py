"""``/clear``: a channel's timeline removed for good, in one transaction.

Everything a deleted message leaves elsewhere goes with it, as for a deleted channel or job: the
logged events that carry it (``message``, edits, ``pin``...), its search index rows (the FTS
delete trigger), its pin and upload links (foreign keys), the uploads nothing else uses, the
wake-ups still pending for it, and the anchor of a job that pointed at it. Job threads stay.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field

from backchannel.models import Event
from backchannel.store import channels, events, jobs, rules, scrub, sessions, triggers

# The channel's timeline (never its job threads); matches the ``messages_timeline`` partial index.
_TIMELINE = "(SELECT id FROM messages WHERE channel_id = ? AND job_id IS NULL)"


@dataclass(slots=True)
class Cleared:
    """What a clear wrote, for the service to publish after the commit."""

    deleted: int = 0
    events: list[Event] = field(default_factory=list[Event])
    orphaned: list[str] = field(default_factory=list[str])


def count(conn: sqlite3.Connection, channel: str) -> int:
    """How many messages a clear of ``channel`` would remove (what the confirmation names)."""
    ch = channels.get(conn, channel)
    (n,) = conn.execute(f"SELECT count(*) FROM {_TIMELINE}", (ch.id,)).fetchone()
    return int(n)


def clear(conn: sqlite3.Connection, channel: str) -> Cleared:
    ch = channels.get(conn, channel)
    done = Cleared()
    names = [
        str(r["name"])
        for r in conn.execute(
            f"SELECT DISTINCT name FROM message_uploads WHERE message_id IN {_TIMELINE}", (ch.id,)
        )
    ]
    # Jobs anchored on a cleared message lose the anchor (their threads stay).
    anchored = [
        int(r["id"])
        for r in conn.execute(f"SELECT id FROM jobs WHERE anchor_msg_id IN {_TIMELINE}", (ch.id,))
    ]
    for job_id in anchored:
        conn.execute("UPDATE jobs SET anchor_msg_id = NULL WHERE id = ?", (job_id,))
        job = jobs.get(conn, job_id).public()
        done.events.append(events.append(conn, "job", {"action": "updated", "job": job}))
    # Wake-ups that carried a cleared message are not delivered any more.
    triggers.blank(
        conn,
        f"job_id = 0 AND (message_id IN {_TIMELINE}"
        f" OR id IN (SELECT trigger_id FROM trigger_messages WHERE message_id IN {_TIMELINE}))",
        (ch.id, ch.id),
    )
    # Rule proposal cards among them: their rules stay (and can still be decided) without a card.
    rules.cards_removed(conn, f"message_id IN {_TIMELINE}", (ch.id,))
    conn.execute(f"DELETE FROM trigger_messages WHERE message_id IN {_TIMELINE}", (ch.id,))
    conn.execute(f"DELETE FROM events WHERE message_id IN {_TIMELINE}", (ch.id,))
    done.deleted = conn.execute(
        "DELETE FROM messages WHERE channel_id = ? AND job_id IS NULL", (ch.id,)
    ).rowcount
    done.orphaned = [
        name
        for name in names
        if conn.execute("SELECT 1 FROM message_uploads WHERE name = ? LIMIT 1", (name,)).fetchone() is None
    ]
    scrub.owe(conn)  # the removed words' bytes leave the index and the WAL in the deferred scrub
    done.events.append(events.append(conn, "channel_cleared", {"channel": ch.name}))
    # A running session's turns were among the cleared messages: it ends (its banner says why)
    # rather than wait for a turn whose wake-up was just blanked.
    running = sessions.running_in(conn, ch.id)
    if running is not None:
        done.events += sessions.end(conn, running.id, "channel cleared", time.time()).events
    return done
