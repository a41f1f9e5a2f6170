"""People's identities: the persons table, browser keys that map to a person, renames.

A person's name is unique (case-insensitively) among people and never an agent's current name;
the checks run inside the write transaction so two people cannot take one name at the same time.
Browser keys are stored hashed, like agent tokens: a copy of the database cannot act as anyone.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable

from backchannel.errors import Conflict, NotFound
from backchannel.models import Person
from backchannel.store._db import Database


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


def holder_of(conn: sqlite3.Connection, name: str) -> str | None:
    """Who holds ``name`` now: "person" (with its id as text), "agent", or None when it is free."""
    row = conn.execute("SELECT id FROM persons WHERE lower(name) = lower(?)", (name,)).fetchone()
    if row is not None:
        return f"person:{row['id']}"
    row = conn.execute(
        "SELECT 1 FROM agents WHERE retired = 0 AND lower(name) = lower(?)", (name,)
    ).fetchone()
    return "agent" if row is not None else None


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


def add_key(conn: sqlite3.Connection, key_hash: str, person_id: int) -> None:
    conn.execute(
        "INSERT INTO person_keys(key_hash, person_id, created_at) VALUES (?,?,?)",
        (key_hash, person_id, time.time()),
    )


def rename(conn: sqlite3.Connection, person_id: int, name: str) -> tuple[Person, str]:
    """Take ``name`` if nobody else holds it; the person's messages follow (returns the old name)."""
    current = get(conn, person_id)
    holder = holder_of(conn, name)
    if holder == "agent":
        raise Conflict(f"{name!r} is an agent's name; pick another display name")
    if holder is not None and holder != f"person:{person_id}":
        raise Conflict(f"{name!r} is another person's name; pick another display name")
    conn.execute("UPDATE persons SET name = ? WHERE id = ?", (name, person_id))
    # Messages follow the identity: once this name is free, a newcomer taking it must not inherit
    # what this person wrote under it.
    conn.execute("UPDATE messages SET sender = ? WHERE person_id = ?", (name, person_id))
    return get(conn, person_id), current.name


class PersonStore:
    """The async, intent-level facade over this module (kept beside it, not in the shared Store)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, person_id: int) -> Person:
        return await self.db.read(lambda c: get(c, person_id))

    async def local(self, preferred: Callable[[], list[str]]) -> Person:
        """The local person, created on first use under the first free preferred name."""
        found = await self.db.read(local)
        if found is not None:
            return found

        def tx(c: sqlite3.Connection) -> Person:
            return local(c) or create(c, preferred(), is_local=True)

        return await self.db.write(tx)

    async def by_key(self, key_hash: str) -> Person | None:
        return await self.db.read(lambda c: by_key(c, key_hash))

    async def add_key(self, key_hash: str, person_id: int | None) -> Person:
        """Bind a browser key to a person; ``None`` makes a new person for it."""

        def tx(c: sqlite3.Connection) -> Person:
            person = get(c, person_id) if person_id is not None else create(c, [], is_local=False)
            add_key(c, key_hash, person.id)
            return person

        return await self.db.write(tx)

    async def rename(self, person_id: int, name: str) -> tuple[Person, str]:
        return await self.db.write(lambda c: rename(c, person_id, name))
