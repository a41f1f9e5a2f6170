"""What people set on an agent: role, colour, label, name; removing its hat; forgetting it.

A role that is neither a preset nor saved yet is saved into the room's custom roles in the same
transaction as the agent's change, so the role picker offers it next time. Every change shows on
every open page (presence, ``settings``, ``agent_forgotten``).
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from backchannel.bus import agent_topic
from backchannel.errors import Conflict, InvalidInput
from backchannel.models import Agent, Event
from backchannel.registry import Registry, color_for
from backchannel.room_settings import RoomConfig, RoomSettings, clean_role
from backchannel.store import agent_settings as rows
from backchannel.store import agents
from backchannel.text import has_control

LABEL_MAX = 24
COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True, slots=True)
class AgentPatch:
    """The fields a person may change; None = leave as is."""

    name: str | None = None
    label: str | None = None
    role: str | None = None
    color: str | None = None


def _clean(patch: AgentPatch) -> tuple[str | None, str | None, str | None]:
    """Role, label, colour as stored; every problem in one InvalidInput."""
    problems: list[str] = []
    role = label = color = None
    if patch.role is not None:
        try:
            role = clean_role(patch.role)
        except InvalidInput as exc:
            problems.append(exc.detail)
    if patch.label is not None:
        label = " ".join(patch.label.split())
        if len(label) > LABEL_MAX:
            problems.append(f"label is {len(label)} characters; the limit is {LABEL_MAX}")
        elif has_control(label):
            problems.append("label must be one line of printable text")
    if patch.color is not None:
        color = patch.color.strip().lower()
        if color and not COLOR_RE.fullmatch(color):
            problems.append(f'color must be "#rrggbb" (or "" for the default colour), not {patch.color!r}')
    if problems:
        raise InvalidInput("; ".join(problems))
    return role, label, color


class AgentSettings:
    def __init__(self, registry: Registry, room_settings: RoomSettings) -> None:
        self.registry = registry
        self.store = registry.store
        self.bus = registry.bus
        self.room_settings = room_settings

    def _default_color(self, agent: Agent) -> str:
        return color_for(agent.base, dict(self.registry.settings.agent_colors), agent.slot)

    async def update(self, name: str, patch: AgentPatch) -> Agent:
        """Apply a person's PATCH in one transaction (name, role, label, colour), so a refusal
        changes nothing; a new custom role is saved with it (409 when 20 are saved)."""
        role, label, color = _clean(patch)
        agent = await self.registry.get(name)
        new_name = patch.name if patch.name is not None and patch.name != agent.name else None
        if new_name is not None:
            self.registry.check_rename(agent, new_name)
        if new_name is None and role is None and label is None and color is None:
            return agent
        default_label = (
            agent.base.capitalize() if agent.slot == 1 else f"{agent.base.capitalize()} {agent.slot}"
        )
        default_color = self._default_color(agent)

        def tx(
            conn: sqlite3.Connection,
        ) -> tuple[Agent, tuple[Event, list[Event]] | None, tuple[RoomConfig, Event] | None]:
            saved = self.room_settings.remember_role(conn, role) if role else None
            values: dict[str, str] = {}
            if role is not None:
                values["role"] = role
            if label is not None:
                values["label"] = label or default_label
            if values:
                agents.update(conn, agent.id, **values)
            if color is not None:
                rows.set_color(conn, agent.id, color or default_color, chosen=bool(color))
            renamed = None
            if new_name is not None:  # last: its event describes the agent with every change applied
                _, event, moved = rows.rename(conn, agent.id, new_name, self.registry.public)
                renamed = (event, moved)
            return agents.by_id(conn, agent.id), renamed, saved

        updated, renamed, saved = await self.store.db.write(tx)
        if saved is not None:
            self.room_settings.applied(*saved)
        if renamed is not None:
            self.registry.renamed(agent.name, *renamed)
        await self.registry.publish_presence(updated)
        return updated

    async def remove_hat(self, name: str) -> Agent:
        agent = await self.registry.get(name)
        updated = await self.store.update_agent(agent.id, hat="")
        await self.registry.publish_presence(updated)
        return updated

    async def forget(self, name: str) -> None:
        """Drop an offline agent from the roster for good (409 while it is online)."""
        agent = await self.registry.get(name)
        crash_timeout = self.registry.settings.crash_timeout

        def tx(conn: sqlite3.Connection) -> Event:
            current = agents.by_id(conn, agent.id)
            if current.retired:
                raise Conflict(f"{agent.name} was forgotten already")
            if current.is_online(time.time(), crash_timeout):
                raise Conflict(
                    f"{current.name} is online; stop its wrapper (or wait until it shows offline),"
                    " then forget it"
                )
            return rows.forget(conn, current)

        event = await self.store.db.write(tx)
        self.bus.publish(agent_topic(agent.id), {"kind": "token_changed"})  # ends any open stream
        self.registry.forgotten(agent.name, event)

    def public(self, agent: Agent) -> dict[str, Any]:
        return self.registry.public(agent)
