"""The jobs board: what people (REST) and agents (MCP) do with jobs, their threads and proposals.

Every operation validates its input, makes one store transaction (store/jobs.py), then publishes
what it wrote on the room topic after the commit: ``{"kind": "job", "action": ...}`` for the board,
the usual message events for threads and cards, wake-ups to the agents concerned. Who acts comes
from identity (a Person or an Agent), never from a field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from backchannel.config import Settings
from backchannel.errors import Forbidden, InvalidInput, NotFound
from backchannel.models import JOB_STATUSES, Agent, Job, JobStatus, Message, Person
from backchannel.room import Room, validate_channel
from backchannel.router import one_line, with_role
from backchannel.store import Author, JobChange, Store
from backchannel.text import check_unicode

Actor = Person | Agent

# agentchattr's statuses, accepted on input (its UI labels "done" as "Active").
STATUS_ALIASES: dict[str, JobStatus] = {"open": "todo", "done": "active", "archived": "closed"}
SUGGESTION_PREFIX = "[suggestion]"
MAX_ASSIGNEE = 64
MAX_REORDER = 10_000


def normalize_status(value: Any) -> JobStatus:
    """A status from input: ``todo``/``active``/``closed`` or an agentchattr alias."""
    if isinstance(value, str):
        key = value.strip().lower()
        if key in JOB_STATUSES:
            return key  # type: ignore[return-value]  # checked against the literal values above
        if key in STATUS_ALIASES:
            return STATUS_ALIASES[key]
    raise InvalidInput(f"status must be one of todo, active, closed (or open, done, archived); got {value!r}")


def _author(by: Actor) -> Author:
    if isinstance(by, Agent):
        return Author(name=by.name, kind="agent", agent_id=by.id)
    return Author(name=by.name, kind="human", person_id=by.id)


def _thread_read(job_id: int, since: int | None = None) -> str:
    return f"chat_read(job_id={job_id}" + (f", since_id={since})" if since is not None else ")")


def _notes(by: Actor) -> Callable[[Job, Job], list[str]]:
    """The thread line recording one change by ``by``: "claude took job #3 and moved it to active"."""

    def notes(old: Job, new: Job) -> list[str]:
        did: list[str] = []
        if new.assignee != old.assignee:
            if new.assignee == by.name:
                did.append(f"took job #{new.id}")
            elif not new.assignee:
                did.append(f"unassigned job #{new.id}")
            else:
                did.append(f"assigned job #{new.id} to {new.assignee}")
        if new.status != old.status:
            did.append(f"moved it to {new.status}")
        if new.title != old.title:
            did.append(f'renamed it to "{new.title}"')
        if new.body != old.body:
            did.append("edited the brief")
        if not did:
            return []
        said = f"{', '.join(did[:-1])} and {did[-1]}" if len(did) > 1 else did[0]
        return [f"{by.name} {said}"]

    return notes


class JobBoard:
    def __init__(self, room: Room, store: Store, settings: Settings) -> None:
        self.room = room
        self.store = store
        self.settings = settings

    # -- validation -----------------------------------------------------------------------------
    def _text(self, field: str, value: Any, limit: int, *, required: bool = False) -> str:
        if not isinstance(value, str):
            raise InvalidInput(f"{field} must be a string")
        value = value.strip()
        if required and not value:
            raise InvalidInput(f"{field} is empty")
        if len(value) > limit:
            raise InvalidInput(f"{field} is {len(value)} characters; the limit is {limit}")
        if "\x00" in value:
            raise InvalidInput(f"{field} contains a NUL character")
        return check_unicode(value, field)

    def check_title(self, title: Any) -> str:
        return self._text("title", title, self.settings.job_title_max, required=True)

    def check_body(self, body: Any) -> str:
        return self._text("body", body, self.settings.job_body_max)

    async def check_assignee(self, assignee: Any) -> str:
        """A name as typed, without a leading "@"; a live agent's name in that agent's own spelling."""
        name = " ".join(self._text("assignee", assignee, MAX_ASSIGNEE).split()).removeprefix("@")
        for agent in await self.store.agents() if name else []:
            if agent.name.lower() == name.lower():
                return agent.name
        return name

    # -- publishing -----------------------------------------------------------------------------
    async def publish(self, change: JobChange) -> None:
        """After the commit: events on the room topic, wake-ups to their agents, files nothing uses."""
        self.room.publish_wakeups(change.events, change.triggers)
        await self.room.remove_uploads(change.orphaned)

    # -- the board ------------------------------------------------------------------------------
    async def list(self, status: str | None = None, channel: str | None = None) -> list[Job]:
        wanted = normalize_status(status) if status else None
        name = validate_channel(channel) if channel else None
        return await self.store.jobs(wanted, name)

    async def get(self, job_id: int) -> Job:
        return await self.store.job(job_id)

    async def create(
        self,
        *,
        title: Any,
        body: Any = "",
        channel: Any = None,
        status: Any = None,
        assignee: Any = "",
        anchor_msg_id: int | None = None,
        by: Actor,
    ) -> Job:
        """Create a job (default ``todo``; ``active`` when it accepts a proposal card, once).
        Accepting a card takes its title and brief unless the person gave others."""
        if anchor_msg_id is not None and (not title or body is None):
            try:
                card = await self.store.message(anchor_msg_id)
            except NotFound:
                card = None  # the store refuses the anchor with its own clear error
            if card is not None and card.type == "job_proposal" and not card.deleted:
                title = title or card.metadata.get("title", "")
                body = card.metadata.get("body", "") if body is None else body
        title = self.check_title(title)
        body = self.check_body("" if body is None else body)
        assignee = await self.check_assignee(assignee)
        wanted = normalize_status(status) if status is not None else None
        name = validate_channel(channel) if channel else None
        if name is not None:
            await self.room.channel(name)  # a clear 404 before anything is written
        who = by.name

        def prompt(agent: Agent, job: Job) -> str:
            return with_role(
                agent,
                f'@{who} accepted your job proposal: job #{job.id} "{one_line(job.title, 120)}" '
                f"(#{job.channel}). Use {_thread_read(job.id)} to read its thread, then work on it and "
                f"report with chat_send(job_id={job.id}).",
            )

        change = await self.store.create_job(
            channel=name,
            title=title,
            body=body,
            status=wanted,
            assignee=assignee,
            anchor_msg_id=anchor_msg_id,
            author=_author(by),
            wake_prompt=prompt,
        )
        await self.publish(change)
        assert change.job is not None
        return change.job

    async def update(
        self,
        job_id: int,
        *,
        by: Actor,
        status: Any = None,
        title: Any = None,
        body: Any = None,
        assignee: Any = None,
    ) -> Job:
        """Change a job; a new status puts it at the end of its group. Who did what is recorded in
        the thread ("claude took job #3", "maya moved it to closed"); an agent may not reopen a
        closed job. Nothing to change: the job as it is, nothing recorded."""
        new_status = normalize_status(status) if status is not None else None
        new_title = self.check_title(title) if title is not None else None
        new_body = self.check_body(body) if body is not None else None
        new_assignee = await self.check_assignee(assignee) if assignee is not None else None
        change = await self.store.update_job(
            job_id,
            status=new_status,
            title=new_title,
            body=new_body,
            assignee=new_assignee,
            notes=_notes(by),
            by_agent=isinstance(by, Agent),
        )
        await self.publish(change)
        assert change.job is not None
        return change.job

    async def reorder(self, status: Any, ordered_ids: Sequence[int], by: Actor) -> list[Job]:
        """The listed jobs first, in that order; the rest of that status keep their order after.
        A listed job of another status moves into this one (recorded like a status change)."""
        wanted = normalize_status(status)
        if len(ordered_ids) > MAX_REORDER:
            raise InvalidInput(f"ordered_ids: at most {MAX_REORDER} ids")
        change = await self.store.reorder_jobs(wanted, list(ordered_ids), _notes(by))
        await self.publish(change)
        return await self.store.jobs(wanted)

    async def close(self, job_id: int, by: Actor) -> Job:
        return await self.update(job_id, by=by, status="closed")

    async def delete(self, job_id: int, by: Actor) -> Job:
        """Delete for good: the job, its thread, the thread's logged copies and orphaned uploads."""
        if not isinstance(by, Person):
            raise Forbidden("only a person can delete a job for good; close it instead")
        change = await self.store.delete_job(job_id)
        await self.publish(change)
        assert change.job is not None
        return change.job

    # -- the thread -----------------------------------------------------------------------------
    async def thread(
        self, job_id: int, limit: Any = 50, before: int | None = None, after: int | None = None
    ) -> list[Message]:
        """Thread messages, oldest first: the newest ``limit`` (before ``before``), or after ``after``."""
        if before is not None and after is not None:
            raise InvalidInput("give before or after, not both")
        return await self.store.thread(job_id, self.room.clamp_limit(limit), before, after)

    async def post(
        self,
        job_id: int,
        text: Any,
        *,
        person: Person | None = None,
        agent: Agent | None = None,
        reply_to: int | None = None,
        attachments: list[dict[str, Any]] | None = None,
        metadata: dict[str, Any] | None = None,
        type: str = "chat",
    ) -> Message:
        """Post into a job's thread; mentions wake agents with a prompt naming the job, and the loop
        guard counts hops per job. An agent's ``[suggestion] ...`` becomes a suggestion card."""
        if (person is None) == (agent is None):
            raise InvalidInput("a thread message is posted by one person or one agent")
        job = await self.store.job(job_id)
        if person is not None:
            return await self.room.post_human(
                channel=job.channel,
                text=text,
                person=person,
                reply_to=reply_to,
                attachments=attachments,
                job=job,
            )
        assert agent is not None
        said = text.strip() if isinstance(text, str) else ""
        if said.lower().startswith(SUGGESTION_PREFIX):
            if not said[len(SUGGESTION_PREFIX) :].strip():
                raise InvalidInput(f"{SUGGESTION_PREFIX} needs the suggestion after it")
            type, metadata = "suggestion", {**(metadata or {}), "resolution": None}
        return await self.room.post_agent(
            agent,
            channel=job.channel,
            text=text,
            reply_to=reply_to,
            attachments=attachments,
            metadata=metadata,
            type=type,
            job=job,
        )

    async def resume(self, job_id: int, by: Person) -> Message:
        """``/continue`` in a job thread: reset that job's loop guard and say so in the thread."""
        return await self.room.resume_job(job_id, by.name)

    async def delete_message(
        self, job_id: int, msg_id: int, *, person: Person | None = None, agent: Agent | None = None
    ) -> Message:
        message = await self.store.message(msg_id)
        if message.job_id != job_id:
            raise NotFound(f"no message {msg_id} in job {job_id}")
        return await self.room.delete(msg_id, by_agent=agent, by_person=person)

    async def agent_read(
        self, agent: Agent, job_id: int, limit: Any = 20, since_id: int | None = None
    ) -> tuple[list[Message], int, bool]:
        """A thread read with the agent's own cursor (the same rules as a channel read); the flag:
        it was the agent's first read of this thread."""
        return await self.store.read_job_for_agent(
            agent.id, job_id, self.room.clamp_limit(limit, 20), since_id
        )

    async def resolve_suggestion(self, job_id: int, msg_id: int, resolution: Any, by: Person) -> Message:
        """Accept or dismiss a suggestion card, once (409 after); accepting wakes its agent."""
        if resolution not in ("accepted", "dismissed"):
            raise InvalidInput("resolution must be 'accepted' or 'dismissed'")
        who = by.name

        def prompt(agent: Agent, job: Job) -> str:
            return with_role(
                agent,
                f"@{who} accepted your suggestion (message #{msg_id}) in job #{job.id} "
                f'"{one_line(job.title, 120)}" (#{job.channel}). Use {_thread_read(job.id)} to read the '
                f"thread, then act on it and report with chat_send(job_id={job.id}).",
            )

        decided: Literal["accepted", "dismissed"] = "accepted" if resolution == "accepted" else "dismissed"
        change = await self.store.resolve_suggestion(job_id, msg_id, decided, _author(by), prompt)
        await self.publish(change)
        assert change.message is not None
        return change.message

    # -- proposals and conversion -----------------------------------------------------------------
    async def decide_proposal(self, msg_id: int, decision: Any, by: Person, note: Any = "") -> Message:
        """Dismiss a proposal card (once, 409 after), or ask its proposer for changes (it stays open).
        Accepting is ``create(anchor_msg_id=card)``."""
        if decision not in ("dismiss", "changes"):
            raise InvalidInput("decision must be 'dismiss' or 'changes' (accept by creating the job)")
        text = self._text("note", note if note is not None else "", self.settings.job_body_max)
        who = by.name

        def prompt(agent: Agent, card: Message) -> str:
            title = one_line(str(card.metadata.get("title", "")), 120)
            asked = f": {one_line(text, 600)}" if text else "."
            return with_role(
                agent,
                f'@{who} asked for changes to your job proposal "{title}" (message #{card.id}, '
                f"#{card.channel}){asked} Propose it again with "
                f'chat_propose_job(title, body, channel="{card.channel}").',
            )

        kind: Literal["dismiss", "changes"] = "dismiss" if decision == "dismiss" else "changes"
        change = await self.store.decide_proposal(msg_id, kind, _author(by), text, prompt)
        await self.publish(change)
        assert change.message is not None
        return change.message

    async def convert(self, message_id: int, agent_name: Any, by: Person) -> dict[str, Any]:
        """Ask an agent (default: the message's author, if an agent) to propose a job from a message.
        Nothing is posted; the wake-up's delivery shows on the message."""
        name = None
        if agent_name is not None and agent_name != "":
            if not isinstance(agent_name, str) or len(agent_name) > MAX_ASSIGNEE:
                raise InvalidInput("agent must be an agent's name")
            name = agent_name.strip().lstrip("@")
        who = by.name

        def prompt(agent: Agent, msg: Message) -> str:
            if msg.job_id is not None:
                read = _thread_read(msg.job_id, msg.id - 1)
            else:
                read = f'chat_read(channel="{msg.channel}", since_id={msg.id - 1})'
            return with_role(
                agent,
                f"@{who} asks you to turn message #{msg.id} in #{msg.channel} into a job. Read it with "
                f'{read}, then call chat_propose_job(title, body, channel="{msg.channel}").',
            )

        agent, trigger, change = await self.store.convert_to_job(message_id, name, _author(by), prompt)
        await self.publish(change)
        return {"agent": agent.name, "trigger": trigger.id}
