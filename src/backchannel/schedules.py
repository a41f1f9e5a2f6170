"""Schedules: prompts posted to agents later, once or on a recurrence (people over REST, agents over
MCP), and the one place a due schedule is fired.

Every change is one store transaction (store/schedules.py) published on the room topic after the
commit as ``{"kind": "schedule", "action": ...}``. Firing posts ``@t1 @t2 <prompt>`` as the
schedule's creator, routed like that person's or agent's own message, and advances the schedule
with a compare-and-set in the same transaction: a due time fires once, never twice, never lost
to a crash between the two. The engine that decides *when* is scheduler.py.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any, cast

from backchannel.bus import ROOM
from backchannel.errors import Forbidden, InvalidInput, NotFound
from backchannel.models import Agent, Person, SenderKind
from backchannel.room import DEFAULT_CHANNEL, Room, validate_channel
from backchannel.router import one_line, with_role
from backchannel.schedule_spec import first_run, invalid, next_run, parse, parse_send_at
from backchannel.store import Store, agents, channels, persons
from backchannel.store import schedules as sql
from backchannel.store.schedules import AlreadyClaimed, Schedule, ScheduleChange
from backchannel.text import check_unicode

MAX_PROMPT = 1000
MAX_TARGETS = 10


Actor = Person | Agent
Clock = Callable[[], float]


def check_prompt(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput("prompt must be a string")
    value = value.strip()
    if not value:
        raise InvalidInput(f"prompt is empty: give 1 to {MAX_PROMPT} characters")
    if len(value) > MAX_PROMPT:
        raise InvalidInput(f"prompt is {len(value)} characters; the limit is {MAX_PROMPT}")
    if "\x00" in value:
        raise InvalidInput("prompt contains a NUL character")
    return check_unicode(value, "prompt")


def _target_names(value: Any) -> list[str]:
    """Agent names from a list (or one comma/space separated string), ``@`` optional, in order."""
    items: list[Any]
    if isinstance(value, str):
        items = value.replace(",", " ").split()
    elif isinstance(value, list):
        items = cast(list[Any], value)
    else:
        raise InvalidInput("targets must be a list of agent names")
    names: dict[str, None] = {}
    for item in items:
        if not isinstance(item, str):
            raise InvalidInput("targets must be a list of agent names")
        name = item.strip().lstrip("@").lower()
        if name:
            names.setdefault(name, None)
    if not names:
        raise InvalidInput(f"targets is empty: name 1 to {MAX_TARGETS} agents")
    if len(names) > MAX_TARGETS:
        raise InvalidInput(f"{len(names)} targets; the limit is {MAX_TARGETS}")
    return list(names)


def fired_prompt(schedule: Schedule, agent: Agent) -> str:
    """The wake-up a fired schedule types into each target's CLI (one line)."""
    where = schedule.channel
    return with_role(
        agent,
        f"Schedule #{schedule.id} set by {schedule.created_by} fired in #{where}: "
        f'"{one_line(schedule.prompt, 160)}". Use chat_read(channel="{where}") to read it, then '
        f'answer with chat_send(channel="{where}").',
    )


class Schedules:
    def __init__(self, room: Room, store: Store, clock: Clock = time.time) -> None:
        self.room = room
        self.store = store
        self.clock = clock  # when a schedule is created or changed (tests move it)

    def _publish(self, change: ScheduleChange) -> None:
        for event in change.events:
            self.room.bus.publish(ROOM, event.public())

    async def _targets(self, value: Any) -> list[str]:
        names = _target_names(value)
        known = {a.name for a in await self.store.agents()}
        unknown = [n for n in names if n not in known]
        if unknown:
            listed = ", ".join(sorted(known)) or "none registered yet"
            raise InvalidInput(
                f"no agent named {', '.join('@' + n for n in unknown)}; targets must be agents ({listed})"
            )
        return names

    # -- reading --------------------------------------------------------------------------------
    async def list(self, channel: Any = None) -> list[Schedule]:
        def q(c: sqlite3.Connection) -> list[Schedule]:
            if channel is None or channel == "":
                return sql.list_schedules(c)
            return sql.list_schedules(c, channels.get(c, validate_channel(channel)).id)

        return await self.store.db.read(q)

    async def get(self, schedule_id: int) -> Schedule:
        return await self.store.db.read(lambda c: sql.get(c, schedule_id))

    async def due(self, now: float) -> list[Schedule]:
        return await self.store.db.read(lambda c: sql.due(c, now))

    # -- changes --------------------------------------------------------------------------------
    async def create(
        self,
        *,
        by: Actor,
        prompt: Any,
        targets: Any,
        channel: Any = None,
        spec: Any = None,
        one_shot: Any = False,
        send_at: Any = None,
    ) -> Schedule:
        """A schedule from ``spec`` (recurring, or its first time only with ``one_shot``) or from
        ``send_at`` (a one-shot at that instant)."""
        text = check_prompt(prompt)
        name = validate_channel(channel) if channel not in (None, "") else DEFAULT_CHANNEL
        if not isinstance(one_shot, bool):
            raise InvalidInput("one_shot must be true or false")
        now = self.clock()
        has_spec = spec not in (None, "")
        if send_at not in (None, ""):
            if has_spec:
                raise InvalidInput("give spec (a recurrence) or send_at (a one-shot), not both")
            canonical, single, due = "", True, parse_send_at(send_at, now)
        elif has_spec:
            parsed = parse(spec)
            canonical, single, due = parsed.text, one_shot, first_run(parsed, now)
        else:
            raise invalid("spec is required unless send_at is given")
        names = await self._targets(targets)
        agent = by if isinstance(by, Agent) else None
        person = by if isinstance(by, Person) else None

        def tx(c: sqlite3.Connection) -> ScheduleChange:
            return sql.create(
                c,
                channel_id=channels.get(c, name).id,
                prompt=text,
                targets=names,
                spec=canonical,
                one_shot=single,
                next_run=due,
                created_by=by.name,
                creator_kind="agent" if agent is not None else "human",
                person_id=person.id if person is not None else None,
                agent_id=agent.id if agent is not None else None,
                now=now,
                limit=self.room.settings.max_schedules,
            )

        change = await self.store.db.write(tx)
        self._publish(change)
        assert change.schedule is not None
        return change.schedule

    async def update(
        self,
        schedule_id: int,
        *,
        active: Any = None,
        prompt: Any = None,
        spec: Any = None,
        targets: Any = None,
        send_at: Any = None,
    ) -> Schedule:
        """Pause / resume / edit. A new spec or send_at, or a resume, sets the next run from now:
        a paused recurring schedule does not fire for the times it skipped; a send_at one-shot whose
        time passed while paused fires once on resume. A spec given to a send_at one-shot makes it
        recurring; send_at makes any schedule a one-shot."""
        if active is not None and not isinstance(active, bool):
            raise InvalidInput("active must be true or false")
        values: dict[str, Any] = {}
        if prompt is not None:
            values["prompt"] = check_prompt(prompt)
        if targets is not None:
            values["targets"] = await self._targets(targets)
        now = self.clock()
        current = await self.get(schedule_id)
        if spec not in (None, "") and send_at not in (None, ""):
            raise InvalidInput("give spec (a recurrence) or send_at (a one-shot), not both")
        if spec not in (None, ""):
            parsed = parse(spec)
            values["spec"] = parsed.text
            values["next_run"] = first_run(parsed, now)
            if not current.spec:  # a send_at one-shot given a spec becomes recurring
                values["one_shot"] = False
        elif send_at not in (None, ""):
            values.update(spec="", one_shot=True, next_run=parse_send_at(send_at, now))
        elif active is True and not current.active and current.spec:
            values["next_run"] = first_run(parse(current.spec), now)
        if active is not None:
            values["active"] = active
        if current.next_run is None:  # a one-shot that fired: only a new time brings it back
            if "next_run" not in values and values.get("active"):
                raise InvalidInput(f"schedule {schedule_id} has already fired; give it a new spec or send_at")
            if "next_run" in values and active is None:
                values["active"] = True
        if not values:
            return current
        change = await self.store.db.write(lambda c: sql.update(c, schedule_id, now, **values))
        self._publish(change)
        assert change.schedule is not None
        return change.schedule

    async def delete(self, schedule_id: int, *, by_agent: Agent | None = None) -> Schedule:
        """Delete for good (people: any; an agent: only one it created)."""

        def tx(c: sqlite3.Connection) -> ScheduleChange:
            if by_agent is not None:
                schedule = sql.get(c, schedule_id)
                if not owned_by(schedule, by_agent):
                    raise Forbidden(
                        f"schedule {schedule_id} was set by {schedule.created_by}; "
                        "an agent may delete only schedules it created"
                    )
            return sql.delete(c, schedule_id)

        change = await self.store.db.write(tx)
        self._publish(change)
        assert change.schedule is not None
        return change.schedule

    # -- firing ---------------------------------------------------------------------------------
    def _sender(self, c: sqlite3.Connection, s: Schedule) -> tuple[str, SenderKind, Agent | None, int | None]:
        """Who the fired message is from: the creator under their current name (an agent identity
        handed to a successor of its name posts as that successor)."""
        if s.creator_kind == "human":
            if s.person_id is not None:
                try:
                    return persons.get(c, s.person_id).name, "human", None, s.person_id
                except NotFound:
                    pass
            return s.created_by, "human", None, s.person_id
        agent: Agent | None = None
        if s.agent_id is not None:
            try:
                agent = agents.by_id(c, s.agent_id)
            except NotFound:
                agent = None
        if agent is None or agent.retired:
            agent = agents.by_name(c, s.created_by) or agent
        return (agent.name if agent else s.created_by), "agent", agent, None

    async def fire(self, schedule: Schedule, now: float) -> bool:
        """Post a due schedule's message and advance it, in one transaction. False when it was no
        longer due as seen (fired by another engine, changed, paused or deleted meanwhile)."""
        if schedule.next_run is None:
            return False
        seen = schedule.next_run
        following: float | None = None
        if not schedule.one_shot:
            following = next_run(parse(schedule.spec), seen, now)
        sender, kind, agent, person_id = await self.store.db.read(lambda c: self._sender(c, schedule))
        mentions = " ".join(f"@{t}" for t in schedule.targets)
        try:
            await self.room.post(
                channel=schedule.channel,
                text=f"{mentions} {schedule.prompt}",
                sender=sender,
                kind=kind,
                agent=agent,
                person_id=person_id,
                metadata={"schedule_id": schedule.id},
                in_tx=lambda c: sql.claim(c, schedule.id, seen, following, now),
                wake=lambda target: fired_prompt(schedule, target),
                wake_sender=True,
            )
        except AlreadyClaimed:
            return False
        return True


def owned_by(schedule: Schedule, agent: Agent) -> bool:
    """An agent owns the schedules its identity created, and those of the name it now holds."""
    if schedule.creator_kind != "agent":
        return False
    return schedule.agent_id == agent.id or schedule.created_by == agent.name
