"""People: who a request is, which names a person may take, and renames that carry the messages.

There is one *local person*: the ``backchannel`` CLI (it holds the 0600 local secret) and any
browser of a loopback-only server are that one person, with one name stored in the database. In
network mode every signed-in browser is a person of its own, known by a long-lived random key in
an HttpOnly cookie (stored hashed). Edits and deletes belong to the author's person id, never to a
display name, so taking someone's old name gives no power over what they wrote.
"""

from __future__ import annotations

import getpass
import hashlib
import re
import secrets
from pathlib import Path
from typing import Any

from backchannel.bus import ROOM, EventBus
from backchannel.errors import InvalidInput
from backchannel.models import Person
from backchannel.names import is_agent_style, is_reserved
from backchannel.server.security import cookie_name
from backchannel.store import Store

PERSON_COOKIE_MAX_AGE = 400 * 86_400  # the longest lifetime browsers keep a cookie for
PERSON_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9 _.-]{0,31}$")


def person_cookie(data_dir: Path) -> str:
    """The person cookie's name for the server of ``data_dir`` (one per server, see cookie_name)."""
    return cookie_name("bc_person", data_dir)


def check_person_name(name: Any) -> str:
    """A display name a person may hold: the format, and never a reserved or agent-style name."""
    if not isinstance(name, str) or not PERSON_NAME_RE.fullmatch(name.strip()):
        raise InvalidInput(
            "a display name is 1-32 letters, digits, spaces, '.', '_' or '-', starting with a letter"
        )
    name = name.strip()
    if is_reserved(name):
        raise InvalidInput(f"{name!r} is a reserved word in the room; pick another display name")
    if is_agent_style(name):
        raise InvalidInput(f"{name!r} is kept for agents (names of agent CLIs); pick another display name")
    return name


def login_name() -> str | None:
    """The OS login name, if it is a name a person may hold."""
    try:
        return check_person_name(getpass.getuser())
    except (InvalidInput, KeyError, OSError):
        return None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class People:
    """Person identities over the store; the HTTP edge (deps.py) decides which one a request is."""

    def __init__(self, store: Store, bus: EventBus, data_dir: Path) -> None:
        self.store = store
        self.bus = bus
        self.cookie = person_cookie(data_dir)

    async def local(self) -> Person:
        """The local person, named once (the OS login name, else ``person``) on first use."""
        return await self.store.local_person(lambda: [n for n in (login_name(),) if n])

    async def by_key(self, key: str | None) -> Person | None:
        if not key or len(key) > 200:
            return None
        return await self.store.person_by_key(hash_key(key))

    async def new_person_key(self) -> tuple[str, Person]:
        """A fresh browser key for a new person of its own (network mode only)."""
        key = secrets.token_urlsafe(32)
        return key, await self.store.add_person_key(hash_key(key))

    async def rename(self, person: Person, name: Any) -> Person:
        """Change a person's display name; their messages show the new name from now on."""
        renamed, _old, published = await self.store.rename_person(person.id, check_person_name(name))
        for event in published:  # person_renamed, then what follows the name (sessions, jobs, rules...)
            self.bus.publish(ROOM, event.public())
        return renamed
