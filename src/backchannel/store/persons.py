"""People's identities: the persons table, browser keys that map to a person, renames.

A person's name is unique (case-insensitively) among people and never an agent's current name;
the checks run inside the write transaction so two people cannot take one name at the same time.
Browser keys are stored hashed, like agent tokens: a copy of the database cannot act as anyone.

``holder_of`` is the one answer to "who holds this name" for people and agents alike.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from backchannel.errors import Conflict, NotFound
from backchannel.models import Person
from backchannel.store import messages


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a name: a person (``id`` None: only messages from before person ids carry it)
    or a live agent identity."""

    kind: Literal["person", "agent"]
    id: int | None


def _row(row: sqlite3.Row) -> Person:
    return Person(
        id=row["id"], name=row["name"], is_local=bool(row["is_local"]), created_at=row["created_at"]
    )


def get(conn: sqlite3.Connection, person_id: int) -> Person:
    row = conn.execute("SELECT * FROM persons WHERE id = ?", (person_id,)).fetchone()
    if row is None:
        raise NotFound(f"no person {person_id}")
    return _row(row)


def local(conn: sqlite3.Connection) -> Person | None:
    row = conn.execute("SELECT * FROM persons WHERE is_local = 1").fetchone()
    return None if row is None else _row(row)


def by_key(conn: sqlite3.Connection, key_hash: str) -> Person | None:
    row = conn.execute(
        "SELECT p.* FROM person_keys k JOIN persons p ON p.id = k.person_id WHERE k.key_hash = ?", (key_hash,)
    ).fetchone()
    return None if row is None else _row(row)


def holder_of(conn: sqlite3.Connection, name: str) -> Holder | None:
    """Who holds ``name`` now (case-insensitively), or None when it is free.

    A person's name, a live agent's name, and a name people posted under before persons had ids
    (those messages still show it) all count as held.
    """
    row = conn.execute("SELECT id FROM persons WHERE lower(name) = lower(?)", (name,)).fetchone()
    if row is not None:
        return Holder("person", row["id"])
    row = conn.execute(
        "SELECT id FROM agents WHERE retired = 0 AND lower(name) = lower(?)", (name,)
    ).fetchone()
    if row is not None:
        return Holder("agent", row["id"])
    row = conn.execute(
        "SELECT 1 FROM messages WHERE kind = 'human' AND person_id IS NULL"
        " AND lower(sender) = lower(?) LIMIT 1",
        (name,),
    ).fetchone()
    return Holder("person", None) if row is not None else None


def _first_free(conn: sqlite3.Connection, candidates: Iterable[str]) -> str:
    for name in candidates:
        if holder_of(conn, name) is None:
            return name
    raise Conflict("no free name for a new person")  # unreachable with the endless fallback below


def _fallbacks() -> Iterable[str]:
    yield "person"
    n = 2
    while True:
        yield f"person-{n}"
        n += 1


def create(conn: sqlite3.Connection, preferred: Iterable[str], *, is_local: bool) -> Person:
    """A new person named after the first free preferred name, else ``person``, ``person-2``, ..."""

    def names() -> Iterable[str]:
        yield from preferred
        yield from _fallbacks()

    name = _first_free(conn, names())
    cur = conn.execute(
        "INSERT INTO persons(name, is_local, created_at) VALUES (?,?,?)", (name, int(is_local), time.time())
    )
    assert cur.lastrowid is not None
    return get(conn, cur.lastrowid)


def ensure_local(conn: sqlite3.Connection, preferred: Iterable[str]) -> Person:
    return local(conn) or create(conn, preferred, is_local=True)


def add_key(conn: sqlite3.Connection, key_hash: str) -> Person:
    """A new person (``person``, ``person-2``, ...) for a new browser key."""
    person = create(conn, [], is_local=False)
    conn.execute(
        "INSERT INTO person_keys(key_hash, person_id, created_at) VALUES (?,?,?)",
        (key_hash, person.id, time.time()),
    )
    return person


def rename(conn: sqlite3.Connection, person_id: int, name: str) -> tuple[Person, str]:
    """Take ``name`` if nobody else holds it; the person's messages follow (returns the old name;
    ``renames.follow`` carries the rest).

    Messages, their copies in the event log (what ``/api/events`` and a resuming page replay) and
    pending wake-ups they caused all show the new name, so a newcomer taking the old name later
    does not appear to have written them.
    """
    current = get(conn, person_id)
    holder = holder_of(conn, name)
    if holder is not None and holder.kind == "agent":
        raise Conflict(f"{name!r} is an agent's name; pick another display name")
    if holder is not None and holder.id is not None and holder.id != person_id:
        raise Conflict(f"{name!r} is another person's name; pick another display name")
    if holder is not None and holder.id is None and not current.is_local:
        # Messages from before person ids show it and belong to the local person.
        raise Conflict(f"{name!r} is another person's name (on older messages); pick another display name")
    conn.execute("UPDATE persons SET name = ? WHERE id = ?", (name, person_id))
    messages.rename_sender(conn, "person_id", person_id, name)
    return get(conn, person_id), current.name
