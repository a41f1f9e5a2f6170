"""Decision cards: a person answers an agent's ``chat_send(choices=[...])`` card, once.

The card is resolved in one store transaction (store/decisions.py): the first answer wins, a
second is a 409. Everyone sees the card's new metadata live (``message_edited``), and the asking
agent is woken with a prompt naming the choice (and the job, for a card in a job's thread).
"""

from __future__ import annotations

from typing import Any

from backchannel.errors import InvalidInput
from backchannel.jobs import JobBoard
from backchannel.models import Agent, Job, Message, Person
from backchannel.router import one_line, with_role
from backchannel.store import Author, Store

MAX_CHOICE = 200


class Decisions:
    def __init__(self, store: Store, board: JobBoard) -> None:
        self.store = store
        self.board = board  # publishes what a change wrote, as for job cards

    async def decide(self, msg_id: int, choice: Any, by: Person) -> Message:
        """Resolve decision card ``msg_id`` with ``choice``, once; wake the agent that asked."""
        if not isinstance(choice, str) or not choice.strip() or len(choice) > MAX_CHOICE:
            raise InvalidInput(f"choice must be one of the card's choices (at most {MAX_CHOICE} characters)")
        who = by.name

        def prompt(agent: Agent, card: Message, job: Job | None) -> str:
            said = f'@{who} chose "{one_line(choice, 200)}" on your decision (message #{card.id})'
            if job is not None:
                return with_role(
                    agent,
                    f'{said} in job #{job.id} "{one_line(job.title, 120)}" (#{job.channel}). Use '
                    f"chat_read(job_id={job.id}) to read the thread, then act on it and report with "
                    f"chat_send(job_id={job.id}).",
                )
            return with_role(
                agent,
                f'{said} in #{card.channel}. Use chat_read(channel="{card.channel}") to read what is new, '
                f'then act on it and report with chat_send(channel="{card.channel}").',
            )

        change = await self.store.decide(
            msg_id, choice, Author(name=by.name, kind="human", person_id=by.id), prompt
        )
        await self.board.publish(change)
        assert change.message is not None
        return change.message
