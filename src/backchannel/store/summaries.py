"""Channel summaries: writing one (with its card) and asking an agent for one, in the caller's
transaction. What was written comes back in a ``JobChange`` for the service to publish."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from backchannel.errors import InvalidInput, NotFound
from backchannel.models import Agent, Channel, Trigger
from backchannel.store import agents, channels, events, messages
from backchannel.store.jobs import Author, JobChange, wake


def write(conn: sqlite3.Connection, channel: str, text: str, author: Author) -> tuple[Channel, JobChange]:
    """Set the channel's summary and post its ``summary`` card; both are published live."""
    ch = channels.get(conn, channel)
    channels.set_summary(conn, ch.id, text, author.name)
    ch = channels.get(conn, channel)
    card = messages.insert(
        conn,
        channel_id=ch.id,
        sender=author.name,
        kind=author.kind,
        text=text,
        agent_id=author.agent_id,
        type="summary",
    )
    change = JobChange(message=card)
    change.events.append(events.append(conn, "message", {"message": card.public()}))
    change.events.append(events.append(conn, "channel_updated", {"channel": ch.public()}))
    return ch, change


def request(
    conn: sqlite3.Connection,
    channel: str,
    agent_name: str,
    author: Author,
    wake_prompt: Callable[[Agent], str],
) -> tuple[Agent, Trigger, JobChange]:
    """Ask a live agent to summarize a channel: a short system line to hang the wake-up on."""
    ch = channels.get(conn, channel)
    agent = agents.by_name(conn, agent_name)
    if agent is None:
        raise NotFound(f"no agent named {agent_name!r}")
    if agent.retired:
        raise InvalidInput(f"{agent_name} is no longer in the room")
    note = messages.insert(
        conn,
        channel_id=ch.id,
        sender="system",
        kind="system",
        text=f"{author.name} asked @{agent.name} for a summary",
        type="system",
    )
    change = JobChange(message=note)
    change.events.append(events.append(conn, "message", {"message": note.public()}))
    trigger = wake(
        conn,
        change,
        agent.id,
        channel=ch.name,
        message_id=note.id,
        job_id=0,
        sender=author.name,
        prompt=wake_prompt,
    )
    assert trigger is not None  # the agent is live (checked above)
    return agent, trigger, change
