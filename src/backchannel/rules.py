"""Room rules: standing instructions people keep and agents propose, delivered in wake-ups.

People create, edit, order, archive and delete rules over REST; agents list them and propose new
ones (a ``rule_proposal`` card a person settles once) over MCP. Every change is one store
transaction (store/rules.py), published on the room topic after the commit. A change an agent
must hear about moves the room's rules version; the next wake-up of each agent then carries the
active rules (``deliver``), and the roster marks who has seen the current version.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from backchannel.bus import ROOM, EventBus
from backchannel.errors import InvalidInput, NotFound
from backchannel.models import Agent, Person, Rule, RuleStatus, Trigger
from backchannel.registry import Registry
from backchannel.room import validate_channel
from backchannel.room_settings import RoomSettings
from backchannel.store import Store, triggers
from backchannel.store import rules as sql
from backchannel.store.rules import Decision, RuleChange
from backchannel.text import has_control

MAX_TEXT = 160
MAX_REASON = 240


def _text(field: str, value: Any, limit: int, *, required: bool) -> str:
    """One line of text: whitespace runs become one space (a rule is a single line of a prompt)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string")
    value = " ".join(value.split())
    if has_control(value):
        raise InvalidInput(f"{field} must be printable text (no control or bidi-override characters)")
    if required and not value:
        raise InvalidInput(f"{field} is empty: give 1 to {limit} characters")
    if len(value) > limit:
        raise InvalidInput(f"{field} is {len(value)} characters; the limit is {limit}")
    return value


def check_text(value: Any, field: str = "text") -> str:
    return _text(field, value, MAX_TEXT, required=True)


def check_reason(value: Any) -> str:
    return _text("reason", "" if value is None else value, MAX_REASON, required=False)


def _status(value: Any, allowed: tuple[RuleStatus, ...]) -> RuleStatus:
    for status in allowed:
        if value == status:
            return status
    raise InvalidInput(f"status must be one of {', '.join(allowed)}; got {value!r}")


def _channel(value: Any) -> str:
    """ "" (or None) is room-wide; anything else a channel's name."""
    return "" if value is None or value == "" else validate_channel(value)


class Rules:
    def __init__(self, store: Store, bus: EventBus, registry: Registry, room_settings: RoomSettings) -> None:
        self.store = store
        self.bus = bus
        self.registry = registry
        self.room_settings = room_settings
        # At start-up: the roster's fresh/stale marker compares against the stored version.
        registry.rules_version = store.db.read_sync(sql.version)

    def refresh_every(self) -> int:
        """Wake-ups between two that carry the rules though nothing changed (0: only after a change)."""
        return self.room_settings.current.rules_refresh_every

    async def _publish(self, change: RuleChange) -> None:
        for event in change.events:
            self.bus.publish(ROOM, event.public())
        if change.version is not None:
            await self.registry.rules_moved(change.version)

    # -- reading --------------------------------------------------------------------------------
    async def list(self) -> list[Rule]:
        return await self.store.db.read(sql.list_rules)

    async def active(self, channel: str) -> list[Rule]:
        """What an agent in ``channel`` follows: room-wide active rules and that channel's."""
        return await self.store.db.read(lambda c: sql.active_for(c, channel))

    # -- people ---------------------------------------------------------------------------------
    async def create(
        self, *, text: Any, reason: Any = "", status: Any = None, channel: Any = None, by: Person
    ) -> Rule:
        values = (
            check_text(text),
            check_reason(reason),
            _status(status or "draft", ("draft", "active")),
            _channel(channel),
        )
        change = await self.store.db.write(
            lambda c: sql.create(
                c, text=values[0], reason=values[1], status=values[2], author=by.name, channel=values[3]
            )
        )
        await self._publish(change)
        assert change.rule is not None
        return change.rule

    async def update(
        self,
        rule_id: int,
        *,
        text: Any = None,
        reason: Any = None,
        status: Any = None,
        channel: Any = None,
        by: Person,
    ) -> Rule:
        new_text = check_text(text) if text is not None else None
        new_reason = check_reason(reason) if reason is not None else None
        new_status = _status(status, ("draft", "active", "archived")) if status is not None else None
        new_channel = _channel(channel) if channel is not None else None
        change = await self.store.db.write(
            lambda c: sql.update(
                c,
                rule_id,
                text=new_text,
                reason=new_reason,
                status=new_status,
                channel=new_channel,
                by=by.name,
            )
        )
        await self._publish(change)
        assert change.rule is not None
        return change.rule

    async def delete(self, rule_id: int, by: Person) -> None:
        await self._publish(await self.store.db.write(lambda c: sql.delete(c, rule_id, by.name)))

    async def reorder(self, ordered_ids: Sequence[int]) -> list[Rule]:
        ids = list(ordered_ids)
        await self._publish(await self.store.db.write(lambda c: sql.reorder(c, ids)))
        return await self.list()

    async def remind(self) -> int:
        change = await self.store.db.write(sql.remind)
        await self._publish(change)
        assert change.version is not None
        return change.version

    async def decide(self, rule_id: int, decision: Any, by: Person) -> dict[str, Any]:
        """Settle a proposal once (409 after): the rule, or for a dismissal the settled card."""
        chosen: Decision
        if decision == "activate":
            chosen = "activate"
        elif decision == "draft":
            chosen = "draft"
        elif decision == "dismiss":
            chosen = "dismiss"
        else:
            raise InvalidInput(f"decision must be activate, draft or dismiss; got {decision!r}")
        change = await self.store.db.write(lambda c: sql.decide(c, rule_id, chosen, by.name))
        await self._publish(change)
        if chosen == "dismiss":
            if change.message is not None:
                return change.message.public()
            assert change.rule is not None
            return change.rule.public()
        assert change.rule is not None
        return change.rule.public()

    # -- agents ---------------------------------------------------------------------------------
    async def propose(
        self, agent: Agent, text: Any, reason: Any, channel: str, *, field: str = "rule"
    ) -> RuleChange:
        """A ``proposed`` rule and its card in ``channel``, for a person to settle. ``field`` names
        the text in errors (chat_decision's argument is ``decision``)."""
        rule_text, why = check_text(text, field), check_reason(reason)
        name = validate_channel(channel)
        change = await self.store.db.write(
            lambda c: sql.propose(c, text=rule_text, reason=why, agent=agent, channel=name)
        )
        await self._publish(change)
        return change

    # -- delivery -------------------------------------------------------------------------------
    async def report(self, trigger_id: int, agent_id: int, state: str, detail: str) -> Trigger:
        """A wrapper's report on a wake-up it received; when a failed one had carried the rules,
        the agent has not seen them after all (same transaction), and the roster says so."""

        def tx(conn: sqlite3.Connection) -> tuple[Trigger, int | None]:
            trigger = triggers.set_state(conn, trigger_id, agent_id, state, detail)
            return trigger, sql.undeliver(conn, trigger_id) if state == "failed" else None

        trigger, moved = await self.store.db.write(tx)
        if moved is not None:
            await self.registry.publish_presence(await self.store.agent_by_id(moved))
        return trigger

    async def deliver(self, trigger_id: int, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """A wake-up leaving for the wrapper (its SSE data): marked sent, with the rules when they
        are due. ``data``: what the bus carried, sent as it is if the row has gone meanwhile."""
        every = self.refresh_every()
        try:
            done = await self.store.db.write(lambda c: sql.deliver(c, trigger_id, every))
        except NotFound:
            if data is None:
                raise
            return data
        if done.seen_changed:
            await self.registry.publish_presence(await self.store.agent_by_id(done.agent_id))
        return done.data
