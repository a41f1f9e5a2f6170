"""Channel summaries (issue 10): an agent writes one, people see it; a person asks an agent for one.

Writing (``chat_summary`` write) sets the channel's summary and posts a ``summary`` card in one
transaction; ``channel_updated`` carries the channel (with ``summary``, ``summary_by``,
``summary_at``) to every page. ``/summary @agent`` wakes the agent with a prompt to read the
channel and call ``chat_summary``; a short system line in the channel carries the delivery.
"""

from __future__ import annotations

from typing import Any

from backchannel.errors import InvalidInput
from backchannel.jobs import JobBoard
from backchannel.models import Agent, Channel, Person
from backchannel.room import validate_channel
from backchannel.router import with_role
from backchannel.store import Author, Store
from backchannel.text import check_unicode

MAX_SUMMARY = 1000
MAX_AGENT_NAME = 64


class Summaries:
    def __init__(self, store: Store, board: JobBoard) -> None:
        self.store = store
        self.board = board  # publishes what a change wrote, as for job cards

    async def write(self, agent: Agent, channel: str, text: str) -> Channel:
        """An agent writes the channel's summary: the channel and its card change together."""
        text = text.strip()
        if not text:
            raise InvalidInput("a summary needs text")
        if len(text) > MAX_SUMMARY:
            raise InvalidInput(f"summary is {len(text)} characters; the limit is {MAX_SUMMARY}")
        check_unicode(text, "text")
        author = Author(name=agent.name, kind="agent", agent_id=agent.id)
        ch, change = await self.store.write_summary(validate_channel(channel), text, author)
        await self.board.publish(change)
        return ch

    async def request(self, channel: str, agent_name: Any, by: Person) -> dict[str, Any]:
        """Wake ``agent_name`` to read ``channel`` and write its summary with ``chat_summary``."""
        if not isinstance(agent_name, str) or not agent_name.strip() or len(agent_name) > MAX_AGENT_NAME:
            raise InvalidInput("agent must be an agent's name")
        name = validate_channel(channel)
        who = by.name

        def prompt(agent: Agent) -> str:
            return with_role(
                agent,
                f"@{who} asks you for a summary of #{name}. Read it with "
                f'chat_read(channel="{name}"), then call chat_summary(action="write", '
                f'channel="{name}", text=...) with a summary of at most {MAX_SUMMARY} characters.',
            )

        author = Author(name=by.name, kind="human", person_id=by.id)
        agent, trigger, change = await self.store.request_summary(
            name, agent_name.strip().lstrip("@"), author, prompt
        )
        await self.board.publish(change)
        return {"agent": agent.name, "trigger": trigger.id}
