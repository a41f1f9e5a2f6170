"""Sessions: a template's roles and phases run in a channel by a cast, turn by turn, until the
output phase's message is marked.

This service starts (casting from online agents when roles are left open), lists and ends
sessions; each change is one store transaction (store/sessions.py) published on the room topic
after the commit as ``{"kind": "session", "action": ...}``, with the wake-ups it queued pushed to
the agents' trigger streams. The turns themselves advance inside ``Store.post`` (the transaction
that stores the turn's message), so the engine has no timer, no loop and nothing to redo at
start-up: the next agent's wake-up is a durable trigger row, replayed until acknowledged.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any, cast

from backchannel import session_drafts
from backchannel.errors import InvalidInput, NotFound
from backchannel.models import Person
from backchannel.room import Room, validate_channel
from backchannel.session_templates import Template
from backchannel.store import Store, agents, channels, persons
from backchannel.store import session_templates as templates_sql
from backchannel.store import sessions as sql
from backchannel.store.sessions import Change, Session
from backchannel.text import has_control

MAX_GOAL = sql.MAX_GOAL
MAX_LIST = 500
STATES = ("active", "paused", "complete", "ended")

Clock = Callable[[], float]


def check_goal(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput("goal must be a string")
    value = value.strip()
    if len(value) > MAX_GOAL:
        raise InvalidInput(f"goal is {len(value)} characters; the limit is {MAX_GOAL}")
    if has_control(value.replace("\n", " ").replace("\t", " ")):
        raise InvalidInput("goal contains a control character")
    return value


def _cast_in(value: Any, template: Template) -> dict[str, str]:
    """The roles a person cast (agent or person names, ``@`` optional), checked against the roles."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("cast must be an object {role: name}")
    given: dict[str, str] = {}
    unknown: list[str] = []
    for role, name in cast(dict[Any, Any], value).items():
        if not isinstance(role, str) or not isinstance(name, str):
            raise InvalidInput("cast must be an object {role: name} of strings")
        if role not in template.roles:
            unknown.append(role)
            continue
        name = name.strip().lstrip("@")
        if name:
            given[role] = name
    if unknown:
        raise InvalidInput(
            f"cast names {', '.join(repr(r) for r in unknown)}, not roles of {template.name}"
            f" (roles: {', '.join(template.roles)})"
        )
    return given


def fill_cast(template: Template, given: dict[str, str], online: list[str]) -> dict[str, str]:
    """Every role cast: the given ones, the rest round-robin from the online agents, those not cast
    yet first. Raises ``InvalidInput`` naming the open roles when nobody is online."""
    open_roles = [r for r in template.roles if r not in given]
    if open_roles and not online:
        raise InvalidInput(
            f"no online agent to cast as {', '.join(open_roles)}: cast those roles or bring an agent online"
        )
    pool = [a for a in online if a not in given.values()] + [a for a in online if a in given.values()]
    full = dict(given)
    for n, role in enumerate(open_roles):
        full[role] = pool[n % len(pool)]
    return {role: full[role] for role in template.roles}


class Sessions:
    def __init__(self, room: Room, store: Store, clock: Clock = time.time) -> None:
        self.room = room
        self.store = store
        self.clock = clock

    def _publish(self, change: Change) -> None:
        self.room.publish_wakeups(change.events, change.triggers)

    # -- reading --------------------------------------------------------------------------------
    async def list(
        self, state: Any = None, channel: Any = None, limit: Any = 200, before_id: Any = None
    ) -> list[Session]:
        """Newest first, ``limit`` (1..500) at a time; ``before_id`` pages back."""
        if state not in (None, "") and state not in STATES:
            raise InvalidInput(f"state must be one of {', '.join(STATES)}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
            raise InvalidInput(f"limit must be an integer from 1 to {MAX_LIST}")
        if before_id is not None and (isinstance(before_id, bool) or not isinstance(before_id, int)):
            raise InvalidInput("before_id must be a session id")

        def q(c: sqlite3.Connection) -> list[Session]:
            ch_id = None
            if channel not in (None, ""):
                ch_id = channels.get(c, validate_channel(channel)).id
            return sql.list_sessions(c, state or None, ch_id, limit, before_id)

        return await self.store.db.read(q)

    async def get(self, session_id: int) -> Session:
        return await self.store.db.read(lambda c: sql.get(c, session_id))

    # -- changes --------------------------------------------------------------------------------
    async def start(
        self,
        *,
        by: Person,
        channel: Any,
        template_id: Any = None,
        draft_message_id: Any = None,
        cast: Any = None,
        goal: Any = None,
    ) -> Session:
        """Start a session of a template (built-in or custom) or of a valid draft card."""
        name = validate_channel(channel)
        text = check_goal(goal)
        if (template_id in (None, "")) == (draft_message_id is None):
            raise InvalidInput("give template_id or draft_message_id (one of them)")
        if draft_message_id is not None and (
            isinstance(draft_message_id, bool) or not isinstance(draft_message_id, int)
        ):
            raise InvalidInput("draft_message_id must be a message id")
        if template_id not in (None, "") and not isinstance(template_id, str):
            raise InvalidInput("template_id must be a string")
        now = self.clock()
        crash_timeout = self.room.settings.crash_timeout

        def tx(c: sqlite3.Connection) -> Change:
            ch = channels.get(c, name)
            if draft_message_id is not None:
                template = session_drafts.runnable(c, draft_message_id)  # open and valid, checked again
            else:
                found = templates_sql.get(c, str(template_id))
                if found is None:
                    raise NotFound(f"no session template {template_id!r}")
                template = found
            given = _cast_in(cast, template)
            people: set[str] = set()
            unknown: list[str] = []
            for role, who in list(given.items()):
                if agents.by_name(c, who.lower()) is not None:  # agent names are lower case
                    given[role] = who.lower()
                    continue
                holder = persons.holder_of(c, who)
                if holder is not None and holder.kind == "person" and holder.id is not None:
                    given[role] = persons.get(c, holder.id).name  # as their messages spell it
                    people.add(role)
                else:
                    unknown.append(who)
            if unknown:
                known = ", ".join(a.name for a in agents.live(c)) or "none registered yet"
                raise InvalidInput(
                    f"no agent or person named {', '.join(repr(u) for u in unknown)} to cast"
                    f" (agents: {known})"
                )
            online = [a.name for a in agents.live(c) if a.is_online(now, crash_timeout)]
            full = fill_cast(template, given, online)
            # A draft's run names no template (its generated id would name none): the snapshot
            # keeps its name, roles and phases.
            from_draft = draft_message_id is not None
            dropped = ("builtin", "id") if from_draft else ("builtin",)
            snapshot = {k: v for k, v in template.public().items() if k not in dropped}
            change = sql.start(
                c,
                channel=ch,
                template=snapshot,
                template_id=None if from_draft else template.id,
                cast=full,
                people=people,
                goal=text,
                started_by=by.name,
                now=now,
            )
            if draft_message_id is not None:  # the card says it was run
                change.events.insert(0, session_drafts.set_status(c, draft_message_id, "run"))
            return change

        change = await self.store.db.write(tx)
        self._publish(change)
        assert change.session is not None
        return change.session

    async def end(self, session_id: int, *, by: Person) -> Session:
        """A person ends a running session; its pending wake-up is never delivered."""
        now = self.clock()
        change = await self.store.db.write(lambda c: sql.end(c, session_id, f"ended by {by.name}", now))
        self._publish(change)
        assert change.session is not None
        return change.session
