"""The store: every byte of SQL lives under this package; callers get dataclasses back.

Embedded SQLite is the default backend. The facade is the seam a PostgreSQL team mode will
implement, so it exposes intent-level async methods, never connections.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backchannel.errors import InvalidInput, NotFound
from backchannel.models import Agent, Channel, Event, Job, Message, Rule, SenderKind, Trigger
from backchannel.store import agents, channels, events, messages, proposals, triggers
from backchannel.store._db import Database
from backchannel.store.schema import migrate

Planner = Callable[[Channel, list[Agent]], Any]


@dataclass(frozen=True, slots=True)
class Posted:
    """Everything one post wrote, for the caller to publish."""

    message: Message
    triggers: list[tuple[Agent, Trigger]]
    notices: list[Message]
    events: list[Event]


class Store:
    def __init__(self, path: Path) -> None:
        # Chat history is private: other local users may not list or read the data dir.
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path.parent, 0o700)
        self.db = Database(path)
        self.db.write_sync(migrate)
        self.db.write_sync(lambda c: channels.ensure(c, "general"))

    def close(self) -> None:
        self.db.close()

    # -- channels ---------------------------------------------------------------------------
    async def channels(self) -> list[Channel]:
        return await self.db.read(channels.list_all)

    async def channel(self, name: str) -> Channel:
        return await self.db.read(lambda c: channels.get(c, name))

    async def create_channel(self, name: str, max_channels: int) -> tuple[Channel, Event]:
        def tx(c: sqlite3.Connection) -> tuple[Channel, Event]:
            ch = channels.create(c, name, max_channels)
            return ch, events.append(c, "channel_created", {"channel": ch.public()})

        return await self.db.write(tx)

    async def rename_channel(self, old: str, new: str) -> tuple[Channel, Event]:
        def tx(c: sqlite3.Connection) -> tuple[Channel, Event]:
            ch = channels.rename(c, old, new)
            return ch, events.append(c, "channel_renamed", {"old": old, "channel": ch.public()})

        return await self.db.write(tx)

    async def delete_channel(self, name: str) -> Event:
        def tx(c: sqlite3.Connection) -> Event:
            channels.delete(c, name)
            return events.append(c, "channel_deleted", {"name": name})

        return await self.db.write(tx)

    async def set_summary(self, channel: str, summary: str) -> Channel:
        def tx(c: sqlite3.Connection) -> Channel:
            ch = channels.get(c, channel)
            channels.set_summary(c, ch.id, summary)
            return channels.get(c, channel)

        return await self.db.write(tx)

    async def set_routing(self, channel: str, hops: int, paused: bool) -> Channel:
        def tx(c: sqlite3.Connection) -> Channel:
            ch = channels.get(c, channel)
            channels.set_routing(c, ch.id, hops, paused)
            return channels.get(c, channel)

        return await self.db.write(tx)

    # -- messages ---------------------------------------------------------------------------
    async def post(
        self,
        *,
        channel: str,
        sender: str,
        kind: SenderKind,
        text: str,
        agent_id: int | None = None,
        type: str = "chat",
        reply_to: int | None = None,
        attachments: list[dict[str, Any]] | None = None,
        metadata: dict[str, Any] | None = None,
        planner: Planner | None = None,
        prompt_for: Callable[[Agent], str] | None = None,
        job_id: int = 0,
    ) -> Posted:
        """Store a message, its routing outcome and its events in one transaction."""

        def tx(c: sqlite3.Connection) -> Posted:
            ch = channels.get(c, channel)
            msg = messages.insert(
                c,
                channel_id=ch.id,
                sender=sender,
                kind=kind,
                text=text,
                agent_id=agent_id,
                type=type,
                reply_to=reply_to,
                attachments=attachments,
                metadata=metadata,
            )
            if agent_id is not None:
                # An agent that had read everything has also "read" its own message; one that had not
                # keeps its cursor, so sending never skips messages it has not seen.
                cursor = messages.get_cursor(c, agent_id, ch.id)
                if cursor is not None and not messages.any_between(c, ch.id, cursor, msg.id):
                    messages.set_cursor(c, agent_id, ch.id, msg.id)
            evs = [events.append(c, "message", {"message": msg.public()})]
            made: list[tuple[Agent, Trigger]] = []
            notices: list[Message] = []
            if planner is not None:
                plan = planner(ch, agents.live(c))
                if (plan.hops, plan.paused) != (ch.hops, ch.paused):
                    channels.set_routing(c, ch.id, plan.hops, plan.paused)
                for target in plan.targets:
                    prompt = prompt_for(target) if prompt_for else ""
                    trig = triggers.insert(
                        c,
                        agent_id=target.id,
                        channel=ch.name,
                        message_id=msg.id,
                        job_id=job_id,
                        sender=sender,
                        prompt=prompt,
                    )
                    if trig is not None:
                        made.append((target, trig))
                for notice in plan.notices:
                    note = messages.insert(
                        c, channel_id=ch.id, sender="system", kind="system", text=notice, type="system"
                    )
                    notices.append(note)
                    evs.append(events.append(c, "message", {"message": note.public()}))
            return Posted(message=msg, triggers=made, notices=notices, events=evs)

        return await self.db.write(tx)

    async def is_person_name(self, name: str) -> bool:
        return await self.db.read(lambda c: messages.is_person_name(c, name))

    async def message(self, message_id: int) -> Message:
        return await self.db.read(lambda c: messages.get(c, message_id))

    async def message_author(self, message_id: int) -> int | None:
        return await self.db.read(lambda c: messages.agent_id_of(c, message_id))

    async def edit_message(self, message_id: int, text: str) -> tuple[Message, Event]:
        def tx(c: sqlite3.Connection) -> tuple[Message, Event]:
            msg = messages.edit(c, message_id, text)
            return msg, events.append(c, "message_edited", {"message": msg.public()})

        return await self.db.write(tx)

    async def delete_message(self, message_id: int) -> tuple[Message, Event]:
        def tx(c: sqlite3.Connection) -> tuple[Message, Event]:
            msg = messages.delete(c, message_id)
            return msg, events.append(c, "message_deleted", {"message": msg.public()})

        return await self.db.write(tx)

    async def history(
        self, channel: str, limit: int, before: int | None = None, after: int | None = None
    ) -> list[Message]:
        def q(c: sqlite3.Connection) -> list[Message]:
            ch = channels.get(c, channel)
            if after is not None:
                return messages.after(c, ch.id, after, limit)
            return messages.latest(c, ch.id, limit, before)

        return await self.db.read(q)

    async def search(self, query: str, channel: str | None, limit: int) -> list[Message]:
        def q(c: sqlite3.Connection) -> list[Message]:
            ch_id = channels.get(c, channel).id if channel else None
            return messages.search(c, query, ch_id, limit)

        return await self.db.read(q)

    async def read_for_agent(
        self, agent_id: int, channel: str, limit: int, since_id: int | None
    ) -> tuple[list[Message], int]:
        """Cursor read: first call gives recent context, later calls only what is new, oldest first.

        Returns the messages and how many unread ones remain after them, so nothing is skipped.
        """

        def tx(c: sqlite3.Connection) -> tuple[list[Message], int]:
            ch = channels.get(c, channel)
            cursor = messages.get_cursor(c, agent_id, ch.id)
            if since_id is not None:
                batch = messages.after(c, ch.id, since_id, limit, agent_view=True)
            elif cursor is None:
                batch = messages.latest(c, ch.id, limit, agent_view=True)
            else:
                batch = messages.after(c, ch.id, cursor, limit, agent_view=True)
            # An explicit since_id past unread messages must not move the cursor over them.
            may_advance = since_id is None or cursor is None or since_id <= cursor
            if batch and may_advance:
                messages.set_cursor(c, agent_id, ch.id, batch[-1].id)
            elif cursor is None:
                messages.set_cursor(c, agent_id, ch.id, messages.last_id(c, ch.id))
            remaining = messages.count_after(c, ch.id, batch[-1].id) if batch else 0
            agents.update(c, agent_id, last_channel=ch.name)
            return batch, remaining

        return await self.db.write(tx)

    async def resync_for_agent(self, agent_id: int, channel: str, limit: int) -> list[Message]:
        def tx(c: sqlite3.Connection) -> list[Message]:
            ch = channels.get(c, channel)
            batch = messages.latest(c, ch.id, limit, agent_view=True)
            messages.reset_cursor(c, agent_id, ch.id, batch[-1].id if batch else 0)
            agents.update(c, agent_id, last_channel=ch.name)
            return batch

        return await self.db.write(tx)

    # -- agents -----------------------------------------------------------------------------
    async def agents(self) -> list[Agent]:
        return await self.db.read(agents.live)

    async def agent(self, name: str) -> Agent:
        found = await self.db.read(lambda c: agents.by_name(c, name))
        if found is None:
            raise NotFound(f"no agent named {name!r}")
        return found

    async def agent_by_id(self, agent_id: int) -> Agent:
        return await self.db.read(lambda c: agents.by_id(c, agent_id))

    async def agent_by_token_hash(self, token_hash: str) -> Agent | None:
        return await self.db.read(lambda c: agents.by_token_hash(c, token_hash))

    async def register_agent(
        self,
        *,
        base: str,
        instance_id: str,
        label: str | None,
        token_hash: str,
        crash_timeout: float,
        color_for: Callable[[str, int], str],
    ) -> tuple[Agent, bool]:
        """Reclaim this instance's identity, or take the lowest free slot (see agent-protocol.md).

        Returns the agent and whether it is a new identity.
        """

        def tx(c: sqlite3.Connection) -> tuple[Agent, bool]:
            mine = agents.by_instance(c, base, instance_id)
            if mine is not None:
                return agents.reclaim(c, mine.id, token_hash, label), False
            now = time.time()
            slot = 1
            while True:
                name = base if slot == 1 else f"{base}-{slot}"
                holder = agents.by_name(c, name)
                if holder is None:
                    break
                if not holder.is_online(now, crash_timeout):
                    agents.retire(c, holder.id)
                    break
                slot += 1
            default_label = base.capitalize() if slot == 1 else f"{base.capitalize()} {slot}"
            new = agents.insert(
                c,
                name=name,
                base=base,
                instance_id=instance_id,
                slot=slot,
                label=label or default_label,
                color=color_for(base, slot),
                token_hash=token_hash,
            )
            return new, True

        return await self.db.write(tx)

    async def expire_tokens(self, seen_before: float) -> None:
        await self.db.write(lambda c: agents.expire_tokens(c, seen_before))

    async def revoke_token(self, agent_id: int) -> None:
        await self.db.write(lambda c: agents.revoke_token(c, agent_id))

    async def mark_left(self, agent_id: int) -> None:
        await self.db.write(lambda c: agents.mark_left(c, agent_id))

    async def touch_agent(self, agent_id: int, when: float, activity: str | None) -> None:
        await self.db.write(lambda c: agents.touch(c, agent_id, when, activity))

    async def update_agent(self, agent_id: int, **values: str) -> Agent:
        def tx(c: sqlite3.Connection) -> Agent:
            new_name = values.get("name")
            if new_name is not None:
                holder = agents.by_name(c, new_name)
                if holder is not None and holder.id != agent_id:
                    raise InvalidInput(f"the name {new_name!r} is taken")
            return agents.update(c, agent_id, **values)

        return await self.db.write(tx)

    # -- triggers ---------------------------------------------------------------------------
    async def pending_triggers(self, agent_id: int, after_id: int = 0) -> list[Trigger]:
        return await self.db.read(lambda c: triggers.pending(c, agent_id, after_id))

    async def set_trigger_state(self, trigger_id: int, agent_id: int, state: str, detail: str) -> Trigger:
        return await self.db.write(lambda c: triggers.set_state(c, trigger_id, agent_id, state, detail))

    async def mark_trigger_sent(self, trigger_id: int) -> None:
        await self.db.write(lambda c: triggers.mark_sent(c, trigger_id))

    async def trigger_states(self) -> dict[int, str]:
        return await self.db.read(triggers.latest_states)

    # -- events -----------------------------------------------------------------------------
    async def events_since(self, seq: int, limit: int) -> list[Event]:
        return await self.db.read(lambda c: events.since(c, seq, limit))

    async def last_event_seq(self) -> int:
        return await self.db.read(events.last_seq)

    # -- rules and jobs ---------------------------------------------------------------------
    async def propose_rule(self, channel: str, text: str, reason: str, by: str) -> Rule:
        return await self.db.write(lambda c: proposals.add_rule(c, channel, text, reason, by))

    async def rules(self, status: str | None = None) -> list[Rule]:
        return await self.db.read(lambda c: proposals.rules(c, status))

    async def set_rule_status(self, rule_id: int, status: str) -> Rule:
        return await self.db.write(lambda c: proposals.set_rule_status(c, rule_id, status))

    async def propose_job(self, channel: str, title: str, body: str, by: Agent) -> Job:
        return await self.db.write(lambda c: proposals.add_job(c, channel, title, body, by.name, by.id))

    async def jobs(self) -> list[Job]:
        return await self.db.read(proposals.jobs)

    async def decide_job(self, job_id: int, status: str) -> tuple[Job, str | None]:
        return await self.db.write(lambda c: proposals.decide_job(c, job_id, status))

    async def set_job_message(self, job_id: int, message_id: int) -> None:
        await self.db.write(lambda c: proposals.set_job_message(c, job_id, message_id))


__all__ = ["Posted", "Store"]
