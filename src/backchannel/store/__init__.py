"""The store: every byte of SQL lives under this package; callers get dataclasses back.

Embedded SQLite is the default backend. The facade is the seam a PostgreSQL team mode will
implement, so it exposes intent-level async methods, never connections.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from backchannel.errors import NotFound
from backchannel.models import Agent, Channel, Event, Job, Message, Person, SenderKind, Trigger
from backchannel.store import (
    agent_settings,
    agents,
    channels,
    decisions,
    events,
    jobs,
    messages,
    persons,
    renames,
    rules,
    schedules,
    scrub,
    sessions,
    summaries,
    triggers,
)
from backchannel.store._db import Database
from backchannel.store.jobs import Author, JobChange
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
        self.db.track_agents()  # the token cache's invalidation (registry.py)
        self.roster = agents.Roster(self.db)  # the live agents routing reads, per generation
        self.message_cache = messages.MessageCache()  # agents' reads, on the writer thread
        self.db.write_sync(lambda c: channels.ensure(c, "general"))
        # Removed text's leftover bytes (index segments, WAL frames) are purged in the background.
        self.scrubber = scrub.Scrubber(self.db)
        if self.db.write_sync(scrub.on_open):
            self.scrubber.request()

    def close(self) -> None:
        self.scrubber.close()
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

    async def rename_channel(self, old: str, new: str) -> tuple[Channel, list[Event]]:
        """Rename; the channel's own rules follow it (and say so: an ``updated`` event each)."""

        def tx(c: sqlite3.Connection) -> tuple[Channel, list[Event]]:
            ch = channels.rename(c, old, new)
            renamed = events.append(c, "channel_renamed", {"old": old, "channel": ch.public()})
            return ch, [
                renamed,
                *rules.channel_renamed(c, new),
                *schedules.channel_renamed(c, ch.id),
                *sessions.channel_renamed(c, ch.id),
            ]

        return await self.db.write(tx)

    async def delete_channel(self, name: str) -> tuple[list[Event], list[str]]:
        """Delete a channel with its messages' logged copies, its jobs and its own rules (each
        deleted for good, as ``jobs.delete`` / ``rules.delete`` do); returns the events to publish
        and the uploads only it referenced."""

        def tx(c: sqlite3.Connection) -> tuple[list[Event], list[str]]:
            ch = channels.get(c, name)
            published: list[Event] = []
            orphaned: list[str] = []
            for job in jobs.list_jobs(c, channel_id=ch.id):
                gone = jobs.delete(c, job.id)
                published += gone.events
                orphaned += gone.orphaned
            orphaned += messages.channel_uploads(c, ch.id)
            published += rules.delete_channel_rules(c, name, "").events
            rules.cards_removed(c, "message_id IN (SELECT id FROM messages WHERE channel_id = ?)", (ch.id,))
            published += schedules.channel_deleted(c, ch.id)  # the rows go with the channel (cascade)
            published += sessions.channel_deleted(c, ch.id)  # so do its sessions
            events.drop_channel_messages(c, ch.id)
            channels.delete(c, name)
            scrub.owe(c)
            # the channel's own messages left the log above; so do their events
            published = [e for e in published if e.payload.get("message", {}).get("channel") != name]
            return [*published, events.append(c, "channel_deleted", {"name": name})], orphaned

        result = await self.db.write(tx, alone=True)  # long: it must hold back no other answer
        self.scrubber.request()
        return result

    async def write_summary(self, channel: str, text: str, author: Author) -> tuple[Channel, JobChange]:
        """Set a channel's summary and post its card in one transaction."""
        return await self.db.write(lambda c: summaries.write(c, channel, text, author))

    async def request_summary(
        self, channel: str, agent_name: str, author: Author, wake_prompt: Callable[[Agent], str]
    ) -> tuple[Agent, Trigger, JobChange]:
        """Wake an agent to summarize a channel (a system line carries the delivery)."""
        return await self.db.write(lambda c: summaries.request(c, channel, agent_name, author, wake_prompt))

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
        person_id: int | None = None,
        in_tx: Callable[[sqlite3.Connection], list[Event]] | None = None,
    ) -> Posted:
        """Store a message, its routing outcome and its events in one transaction.

        With ``job_id`` the message goes into that job's thread (in the job's channel, whatever
        ``channel`` says): the planner sees the job's loop guard, wake-ups carry the job id.
        ``in_tx`` runs first in the same transaction (a schedule's compare-and-set); it may raise to
        roll the whole post back, and the events it logs are published before the message's.
        """

        def tx(c: sqlite3.Connection) -> Posted:
            first = in_tx(c) if in_tx is not None else []
            thread = job_id or None
            if thread is not None:
                job = jobs.get(c, thread)
                ch = channels.get(c, job.channel)
                guard = replace(ch, hops=job.hops, paused=job.paused)
            else:
                ch = guard = channels.get(c, channel)
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
                person_id=person_id,
                job_id=thread,
                channel_name=ch.name,
            )
            if agent_id is not None:
                # An agent that had read everything has also "read" its own message; one that had not
                # keeps its cursor, so sending never skips messages it has not seen.
                if thread is not None:
                    cursor = jobs.get_cursor(c, agent_id, thread)
                    if cursor is not None and not messages.any_between(
                        c, ch.id, cursor, msg.id, job_id=thread
                    ):
                        jobs.set_cursor(c, agent_id, thread, msg.id)
                else:
                    messages.advance_own_cursor(c, agent_id, ch.id, msg.id)
            evs = [events.append(c, "message", {"message": msg.public()})]
            made: list[tuple[Agent, Trigger]] = []
            notices: list[Message] = []
            if planner is not None:
                plan = planner(guard, self.roster.live(c))
                # A running session takes its turn here, in this transaction (store/sessions.py).
                turn = sessions.step(c, ch, msg, plan.targets, msg.created_at) if thread is None else None
                if turn is not None:
                    if plan.targets and not turn.targets:  # all gated: no agent-to-agent hop
                        plan.hops = guard.hops
                    plan.targets, msg = turn.targets, turn.message
                    made += turn.triggers
                    evs += turn.events
                if (plan.hops, plan.paused) != (guard.hops, guard.paused):
                    if thread is not None:
                        jobs.set_routing(c, thread, plan.hops, plan.paused)
                    else:
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
                        c,
                        channel_id=ch.id,
                        sender="system",
                        kind="system",
                        text=notice,
                        type="system",
                        job_id=thread,
                    )
                    notices.append(note)
                    evs.append(events.append(c, "message", {"message": note.public()}))
                if thread is not None and plan.paused != guard.paused:  # the board shows the pause
                    board = {"action": "updated", "job": jobs.get(c, thread).public()}
                    evs.append(events.append(c, "job", board))
            return Posted(message=msg, triggers=made, notices=notices, events=[*first, *evs])

        return await self.db.write(tx)

    async def message(self, message_id: int) -> Message:
        return await self.db.read(lambda c: messages.get(c, message_id))

    async def message_author(self, message_id: int) -> int | None:
        return await self.db.read(lambda c: messages.agent_id_of(c, message_id))

    async def edit_message(self, message_id: int, text: str) -> tuple[Message, Event]:
        """Edit, and scrub the old text everywhere: at once from the row, the search results and the
        logged copies; its leftover bytes (index segments, WAL) in the scrub that this schedules."""

        def tx(c: sqlite3.Connection) -> tuple[Message, Event]:
            msg = messages.edit(c, message_id, text)
            events.rewrite_message(c, msg.public())
            scrub.owe(c)
            return msg, events.append(c, "message_edited", {"message": msg.public()})

        result = await self.db.write(tx)
        self.scrubber.request()
        return result

    async def delete_message(self, message_id: int) -> tuple[Message, Event, list[str]]:
        """Delete everywhere; returns the message, its event and the uploads nothing references now."""

        def tx(c: sqlite3.Connection) -> tuple[Message, Event, list[str]]:
            msg, orphaned = messages.delete(c, message_id)
            rules.cards_removed(c, "message_id = ?", (message_id,))
            events.rewrite_message(c, msg.public())
            scrub.owe(c)
            return msg, events.append(c, "message_deleted", {"message": msg.public()}), orphaned

        result = await self.db.write(tx)
        self.scrubber.request()
        return result

    async def history(
        self, channel: str, limit: int, before: int | None = None, after: int | None = None
    ) -> list[Message]:
        def q(c: sqlite3.Connection) -> list[Message]:
            ch = channels.get(c, channel)
            if after is not None:
                return messages.after(c, ch.id, after, limit)
            return messages.latest(c, ch.id, limit, before)

        return await self.db.read(q)

    async def search(
        self, query: str, channel: str | None, limit: int, *, threads: bool = False
    ) -> list[Message]:
        def q(c: sqlite3.Connection) -> list[Message]:
            ch_id = channels.get(c, channel).id if channel else None
            return messages.search(c, query, ch_id, limit, threads=threads)

        return await self.db.read(q)

    async def read_for_agent(
        self, agent_id: int, channel: str, limit: int, since_id: int | None
    ) -> tuple[list[Message], int]:
        """Cursor read: first call gives recent context, later calls only what is new, oldest first.

        Returns the messages and how many unread ones remain: exactly what the following reads
        without ``since_id`` return (counted after the cursor as this read leaves it), so nothing
        is skipped and nothing is promised that no read delivers.
        """

        def tx(c: sqlite3.Connection) -> tuple[list[Message], int]:
            ch = channels.get(c, channel)
            cursor = messages.get_cursor(c, agent_id, ch.id)
            read = messages.cursor_read(
                c,
                ch.id,
                limit,
                since_id,
                cursor,
                lambda last: messages.set_cursor(c, agent_id, ch.id, last),
                build=self.message_cache.message,
            )
            agents.set_last_channel(c, agent_id, ch.name)
            return read

        return await self.db.write(tx)

    async def resync_for_agent(self, agent_id: int, channel: str, limit: int) -> list[Message]:
        def tx(c: sqlite3.Connection) -> list[Message]:
            ch = channels.get(c, channel)
            batch = messages.latest(c, ch.id, limit, agent_view=True, build=self.message_cache.message)
            messages.reset_cursor(c, agent_id, ch.id, batch[-1].id if batch else 0)
            agents.set_last_channel(c, agent_id, ch.name)
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
        color: Callable[[int], str],
        override_color: bool = False,
        reclaim_hash: str | None = None,
    ) -> agents.Registration:
        """Reclaim this instance's identity, or take the lowest free slot (see docs/protocol.md).

        Raises ``agents.NameHeld`` when a live session holds the instance's name and the caller did
        not prove with the reclaim secret that it is that instance.
        """
        return await self.db.write(
            lambda c: agents.register(
                c,
                base=base,
                instance_id=instance_id,
                label=label,
                token_hash=token_hash,
                reclaim_hash=reclaim_hash,
                crash_timeout=crash_timeout,
                color=color,
                override_color=override_color,
            )
        )

    async def rename_agent(
        self, agent_id: int, new_name: str, describe: Callable[[Agent], dict[str, Any]]
    ) -> tuple[Agent, Event, list[Event]]:
        """Rename an identity; its history follows it. The logged ``agent_renamed`` event lets a
        live view that resumes later re-render the agent's old messages under the new name (then
        the ``session`` events of the running sessions it is cast in)."""

        return await self.db.write(lambda c: agent_settings.rename(c, agent_id, new_name, describe))

    async def expire_tokens(self, seen_before: float) -> None:
        await self.db.write(lambda c: agents.expire_tokens(c, seen_before))

    async def revoke_token(self, agent_id: int) -> None:
        await self.db.write(lambda c: agents.revoke_token(c, agent_id))

    async def mark_left(self, agent_id: int) -> None:
        await self.db.write(lambda c: agents.mark_left(c, agent_id))

    async def touch_agent(self, agent_id: int, when: float, activity: str | None) -> None:
        await self.db.write(lambda c: agents.touch(c, agent_id, when, activity))

    async def update_agent(self, agent_id: int, **values: str) -> Agent:
        """Label, role, hat, colour, last channel; renames go through ``rename_agent``."""
        return await self.db.write(lambda c: agents.update(c, agent_id, **values))

    # -- people -----------------------------------------------------------------------------------
    async def local_person(self, preferred: Callable[[], list[str]]) -> Person:
        """The local person, created on first use under the first free preferred name."""
        found = await self.db.read(persons.local)
        if found is not None:
            return found
        return await self.db.write(lambda c: persons.ensure_local(c, preferred()))

    async def person_by_key(self, key_hash: str) -> Person | None:
        return await self.db.read(lambda c: persons.by_key(c, key_hash))

    async def add_person_key(self, key_hash: str) -> Person:
        """A new person for a new browser key."""
        return await self.db.write(lambda c: persons.add_key(c, key_hash))

    async def rename_person(self, person_id: int, name: str) -> tuple[Person, str, list[Event]]:
        """Rename a person; their history follows. The logged ``person_renamed`` event (none when
        the name did not change) lets a view that resumes later catch up; then the events of what
        follows the name: the running sessions they are cast in, their jobs, rules and schedules."""

        def tx(c: sqlite3.Connection) -> tuple[Person, str, list[Event]]:
            person, old = persons.rename(c, person_id, name)
            if person.name == old:
                return person, old, []
            payload = {"old": old, "new": person.name, "person_id": person.id}
            renamed = events.append(c, "person_renamed", payload)
            return person, old, [renamed, *renames.follow(c, old, person.name, person_id=person.id)]

        return await self.db.write(tx)

    # -- triggers ---------------------------------------------------------------------------
    async def pending_triggers(self, agent_id: int, after_id: int = 0) -> list[Trigger]:
        return await self.db.read(lambda c: triggers.pending(c, agent_id, after_id))

    async def mark_trigger_sent(self, trigger_id: int) -> None:
        await self.db.write(lambda c: triggers.mark_sent(c, trigger_id))

    async def trigger_states(self) -> dict[int, str]:
        return await self.db.read(triggers.latest_states)

    async def trigger(self, trigger_id: int) -> Trigger:
        return await self.db.read(lambda c: triggers.get(c, trigger_id))

    async def trigger_message_ids(self, trigger_id: int) -> list[int]:
        return await self.db.read(lambda c: triggers.message_ids(c, trigger_id))

    async def deliveries(self, message_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        """Per message, the delivery of the wake-up it caused to each agent (for the UI)."""
        return await self.db.read(lambda c: triggers.for_messages(c, message_ids))

    async def retry_trigger(self, trigger_id: int) -> tuple[Trigger, bool]:
        return await self.db.write(lambda c: triggers.retry(c, trigger_id))

    # -- events -----------------------------------------------------------------------------
    async def events_since(self, seq: int, limit: int) -> list[Event]:
        return await self.db.read(lambda c: events.since(c, seq, limit))

    async def last_event_seq(self) -> int:
        return await self.db.read(events.last_seq)

    # -- jobs (see store/jobs.py; each method is one transaction) ----------------------------------
    async def jobs(self, status: str | None = None, channel: str | None = None) -> list[Job]:
        def q(c: sqlite3.Connection) -> list[Job]:
            ch_id = channels.get(c, channel).id if channel else None
            return jobs.list_jobs(c, status, ch_id)

        return await self.db.read(q)

    async def job(self, job_id: int) -> Job:
        return await self.db.read(lambda c: jobs.get(c, job_id))

    async def create_job(
        self,
        *,
        channel: str | None,
        title: str,
        body: str,
        status: str | None,
        assignee: str,
        anchor_msg_id: int | None,
        author: Author,
        wake_prompt: Callable[[Agent, Job], str],
    ) -> JobChange:
        return await self.db.write(
            lambda c: jobs.create(
                c,
                channel=channel,
                title=title,
                body=body,
                status=status,
                assignee=assignee,
                anchor_msg_id=anchor_msg_id,
                author=author,
                wake_prompt=wake_prompt,
            )
        )

    async def update_job(
        self,
        job_id: int,
        *,
        status: str | None,
        title: str | None,
        body: str | None,
        assignee: str | None,
        notes: Callable[[Job, Job], list[str]],
        by_agent: bool = False,
    ) -> JobChange:
        return await self.db.write(
            lambda c: jobs.update(
                c,
                job_id,
                status=status,
                title=title,
                body=body,
                assignee=assignee,
                notes=notes,
                by_agent=by_agent,
            )
        )

    async def resume_job(self, job_id: int, by: str) -> JobChange:
        """``/continue`` in a job's thread resets its loop guard."""
        return await self.db.write(lambda c: jobs.resume(c, job_id, by))

    async def reorder_jobs(
        self, status: str, ordered_ids: Sequence[int], notes: Callable[[Job, Job], list[str]]
    ) -> JobChange:
        return await self.db.write(lambda c: jobs.reorder(c, status, ordered_ids, notes))

    async def delete_job(self, job_id: int) -> JobChange:
        """Delete a job for good; its thread's removed text leaves the disk in the scheduled scrub."""

        def tx(c: sqlite3.Connection) -> JobChange:
            change = jobs.delete(c, job_id)
            scrub.owe(c)
            return change

        result = await self.db.write(tx)
        self.scrubber.request()
        return result

    async def thread(
        self, job_id: int, limit: int, before: int | None = None, after: int | None = None
    ) -> list[Message]:
        def q(c: sqlite3.Connection) -> list[Message]:
            job = jobs.get(c, job_id)
            ch = channels.get(c, job.channel)
            if after is not None:
                return messages.after(c, ch.id, after, limit, job_id=job_id)
            return messages.latest(c, ch.id, limit, before, job_id=job_id)

        return await self.db.read(q)

    async def read_job_for_agent(
        self, agent_id: int, job_id: int, limit: int, since_id: int | None
    ) -> tuple[list[Message], int, bool]:
        return await self.db.write(
            lambda c: jobs.read_for_agent(c, agent_id, job_id, limit, since_id, self.message_cache.message)
        )

    async def resolve_suggestion(
        self,
        job_id: int,
        msg_id: int,
        resolution: Literal["accepted", "dismissed"],
        author: Author,
        wake_prompt: Callable[[Agent, Job], str],
    ) -> JobChange:
        return await self.db.write(
            lambda c: jobs.resolve_suggestion(c, job_id, msg_id, resolution, author, wake_prompt)
        )

    async def decide_proposal(
        self,
        msg_id: int,
        decision: Literal["dismiss", "changes"],
        author: Author,
        note: str,
        wake_prompt: Callable[[Agent, Message], str],
    ) -> JobChange:
        return await self.db.write(
            lambda c: jobs.decide_proposal(c, msg_id, decision, author, note, wake_prompt)
        )

    async def convert_to_job(
        self,
        message_id: int,
        agent_name: str | None,
        author: Author,
        wake_prompt: Callable[[Agent, Message], str],
    ) -> tuple[Agent, Trigger, JobChange]:
        return await self.db.write(lambda c: jobs.convert(c, message_id, agent_name, author, wake_prompt))

    # -- decision cards (see store/decisions.py) ------------------------------------------------------
    async def decide(
        self,
        msg_id: int,
        choice: str,
        author: Author,
        wake_prompt: Callable[[Agent, Message, Job | None], str],
    ) -> JobChange:
        """Resolve a decision card in one transaction: the first answer wins, a second is a 409."""
        return await self.db.write(lambda c: decisions.decide(c, msg_id, choice, author, wake_prompt))


__all__ = ["Author", "JobChange", "Posted", "Store"]
