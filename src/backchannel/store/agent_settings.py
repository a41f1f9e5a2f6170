"""People's settings on an agent row (colour choice, forgetting); see ``backchannel.agent_settings``."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

from backchannel.models import Agent, Event
from backchannel.store import agents, events, renames
from backchannel.store.triggers import PENDING_STATES


def rename(
    conn: sqlite3.Connection, agent_id: int, new_name: str, describe: Callable[[Agent], dict[str, Any]]
) -> tuple[Agent, Event, list[Event]]:
    """Rename an identity and log ``agent_renamed`` (a live view that resumes later re-renders the
    agent's old messages under the new name); inside the caller's transaction. Also returns the
    events of what follows the name: the running sessions whose cast it is in, the jobs it holds
    or opened, the rules it proposed, the schedules that wake it or that it made."""
    agent, old = agents.rename(conn, agent_id, new_name)
    payload = {"old": old, "new": agent.name, "agent_id": agent.id, "agent": describe(agent)}
    renamed = events.append(conn, "agent_renamed", payload)
    return agent, renamed, renames.follow(conn, old, agent.name, agent_id=agent.id)


def set_color(conn: sqlite3.Connection, agent_id: int, color: str, chosen: bool) -> Agent:
    """Set the colour; ``chosen`` says a person picked it (a config colour then no longer wins)."""
    conn.execute("UPDATE agents SET color = ?, color_set = ? WHERE id = ?", (color, int(chosen), agent_id))
    return agents.by_id(conn, agent_id)


def forget(conn: sqlite3.Connection, agent: Agent) -> Event:
    """Retire an offline identity for good: no token, no reclaim proof, so nothing can bring it
    back; its wake-ups still waiting are superseded. Its messages stay (they keep its name)."""
    conn.execute(
        "UPDATE agents SET retired = 1, token_hash = NULL, reclaim_hash = NULL WHERE id = ?", (agent.id,)
    )
    conn.execute(
        "UPDATE triggers SET state = 'superseded', detail = 'the agent was forgotten', updated_at = ?"
        f" WHERE agent_id = ? AND state IN {PENDING_STATES}",
        (time.time(), agent.id),
    )
    return events.append(conn, "agent_forgotten", {"name": agent.name})
