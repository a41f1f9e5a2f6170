"""Decision cards: resolving one, once, in the caller's transaction.

A ``decision`` message (``chat_send(choices=[...])``) carries ``metadata.choices``; the first
person to answer resolves it (``resolved``, ``chosen``, ``chosen_by``), and the asking agent is
woken with the choice. A second answer is a ``Conflict``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from backchannel.errors import Conflict, InvalidInput
from backchannel.models import Agent, Job, Message
from backchannel.store import jobs, messages
from backchannel.store.jobs import Author, JobChange


def decide(
    conn: sqlite3.Connection,
    msg_id: int,
    choice: str,
    author: Author,
    wake_prompt: Callable[[Agent, Message, Job | None], str],
) -> JobChange:
    """Resolve decision card ``msg_id`` with ``choice`` (409 once resolved); wake the asking agent."""
    card = messages.get(conn, msg_id)
    raw = card.metadata.get("choices")
    choices: list[str] = [str(c) for c in raw] if isinstance(raw, list) else []  # type: ignore[misc]
    if card.type != "decision" or card.deleted or not choices:
        raise InvalidInput(f"message {msg_id} is not a decision card")
    if card.metadata.get("resolved"):
        who, what = card.metadata.get("chosen_by"), card.metadata.get("chosen")
        raise Conflict(f'decision {msg_id} was already answered: {who} chose "{what}"')
    if choice not in choices:
        raise InvalidInput(f"choice must be one of the card's choices: {', '.join(choices)}")
    meta = {**card.metadata, "resolved": True, "chosen": choice, "chosen_by": author.name}
    card = messages.set_metadata(conn, msg_id, meta)
    job = jobs.find(conn, card.job_id) if card.job_id is not None else None
    change = JobChange(job=job, message=card)
    change.events.append(jobs.message_event(conn, "message_edited", card))
    jobs.wake(
        conn,
        change,
        messages.agent_id_of(conn, msg_id),
        channel=card.channel,
        message_id=msg_id,
        job_id=card.job_id or 0,
        sender=author.name,
        prompt=lambda agent: wake_prompt(agent, card, job),
    )
    return change
