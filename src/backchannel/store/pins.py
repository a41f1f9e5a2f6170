"""Pins: a person marks a message to come back to, and later marks it done.

A pin lives as long as its message: the foreign key drops it with the row, a trigger drops it when
the message is deleted (blanked). Each change is logged as a ``pin`` event that carries the message,
so ``events.rewrite_message`` blanks its copies when the message is edited or deleted, like every
other logged copy of a message.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from backchannel.errors import InvalidInput, NotFound
from backchannel.models import Event, Message
from backchannel.store import events, messages

# The pinner's current name: history follows a person, not the name they had when they pinned.
_PIN = (
    "SELECT p.message_id, coalesce(pe.name, p.pinned_by) AS pinned_by, p.done, p.pinned_at"
    " FROM pins p LEFT JOIN persons pe ON pe.id = p.person_id"
)


@dataclass(frozen=True, slots=True)
class Pin:
    message_id: int
    pinned_by: str
    done: bool
    pinned_at: float

    def public(self) -> dict[str, Any]:
        return {"pinned_by": self.pinned_by, "done": self.done, "pinned_at": self.pinned_at}


@dataclass(frozen=True, slots=True)
class PinChange:
    """What one pin transaction wrote: the message, its pin (None once unpinned), the event (None
    when nothing changed, e.g. pinning a pinned message)."""

    message: Message
    pin: Pin | None
    event: Event | None

    def public(self) -> dict[str, Any]:
        return {**self.message.public(), "pin": self.pin.public() if self.pin else None}


def _row_to_pin(row: sqlite3.Row) -> Pin:
    return Pin(row["message_id"], row["pinned_by"], bool(row["done"]), row["pinned_at"])


def find(conn: sqlite3.Connection, message_id: int) -> Pin | None:
    row = conn.execute(f"{_PIN} WHERE p.message_id = ?", (message_id,)).fetchone()
    return None if row is None else _row_to_pin(row)


def _live_message(conn: sqlite3.Connection, message_id: int) -> Message:
    msg = messages.get(conn, message_id)
    if msg.deleted:
        raise InvalidInput(f"message {message_id} is deleted; it cannot be pinned")
    return msg


def _log(conn: sqlite3.Connection, action: str, msg: Message, pin: Pin | None) -> Event:
    payload = {"action": action, "message": msg.public(), "pin": pin.public() if pin else None}
    return events.append(conn, "pin", payload)


def pin(conn: sqlite3.Connection, message_id: int, by: str, person_id: int | None) -> PinChange:
    """Pin a message; pinning a pinned one changes nothing (idempotent)."""
    msg = _live_message(conn, message_id)
    known = find(conn, message_id)
    if known is not None:
        return PinChange(msg, known, None)
    conn.execute(
        "INSERT INTO pins(message_id, pinned_by, person_id, done, pinned_at) VALUES (?,?,?,0,?)",
        (message_id, by, person_id, time.time()),
    )
    made = find(conn, message_id)
    assert made is not None
    return PinChange(msg, made, _log(conn, "pinned", msg, made))


def unpin(conn: sqlite3.Connection, message_id: int) -> PinChange:
    msg = messages.get(conn, message_id)
    if find(conn, message_id) is None:
        raise NotFound(f"message {message_id} is not pinned")
    conn.execute("DELETE FROM pins WHERE message_id = ?", (message_id,))
    return PinChange(msg, None, _log(conn, "unpinned", msg, None))


def set_done(conn: sqlite3.Connection, message_id: int, done: bool) -> PinChange:
    """Mark a pin done or not done (setting what it already is changes nothing)."""
    msg = messages.get(conn, message_id)
    known = find(conn, message_id)
    if known is None:
        raise NotFound(f"message {message_id} is not pinned")
    if known.done == done:
        return PinChange(msg, known, None)
    conn.execute("UPDATE pins SET done = ? WHERE message_id = ?", (int(done), message_id))
    fresh = find(conn, message_id)
    assert fresh is not None
    return PinChange(msg, fresh, _log(conn, "updated", msg, fresh))


def for_channel(conn: sqlite3.Connection, channel_id: int) -> list[PinChange]:
    """A channel's pins (its timeline and its jobs' threads), newest pin first."""
    rows = conn.execute(
        f"{_PIN} JOIN messages m ON m.id = p.message_id WHERE m.channel_id = ?"
        " ORDER BY p.pinned_at DESC, p.message_id DESC",
        (channel_id,),
    ).fetchall()
    return [PinChange(messages.get(conn, r["message_id"]), _row_to_pin(r), None) for r in rows]
