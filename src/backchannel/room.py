"""The room: what people and agents can do, shared by the REST API, the WebSocket and MCP tools.

Each operation validates its input, writes through the store in one transaction, then publishes
what changed. Publishing happens after the commit, so a live view never shows a message that a
crash could still lose.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable, Iterable
from typing import Any

import anyio.to_thread

from backchannel import session_drafts, uploads
from backchannel.bus import ROOM, EventBus, agent_topic
from backchannel.config import Settings
from backchannel.errors import Forbidden, InvalidInput, NotFound
from backchannel.models import Agent, Channel, Event, Job, Message, Person, SenderKind, Trigger
from backchannel.registry import Registry
from backchannel.room_settings import RoomSettings
from backchannel.router import CONTINUE_COMMAND, mention_tokens, plan_routing, wake_prompt
from backchannel.store import Posted, Store
from backchannel.store.triggers import delivery_event
from backchannel.text import check_unicode

CHANNEL_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
DEFAULT_CHANNEL = "general"


def validate_channel(name: Any) -> str:
    if not isinstance(name, str):
        raise InvalidInput("channel must be a string")
    name = name.strip().lstrip("#").lower()
    if not CHANNEL_RE.fullmatch(name):
        raise InvalidInput(f"invalid channel name {name!r}: 1-32 lower-case letters, digits, '-' or '_'")
    return name


class Room:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        registry: Registry,
        settings: Settings,
        room_settings: RoomSettings,
    ) -> None:
        self.store = store
        self.bus = bus
        self.registry = registry
        self.settings = settings
        # Runtime room settings (loop guard, ...): read on every post, so a change applies at once.
        self.room_settings = room_settings

    # -- publishing ---------------------------------------------------------------------------
    def publish(self, *events: Event) -> None:
        for event in events:
            self.bus.publish(ROOM, event.public())

    def publish_wakeups(self, events: Iterable[Event], wakeups: Iterable[tuple[Agent, Trigger]]) -> None:
        """After a commit: the events on the room topic, then each new wake-up to its agent's
        trigger stream and its "delivery" state to open pages (on the message that caused it)."""
        self.publish(*events)
        for agent, trigger in wakeups:
            self.bus.publish(agent_topic(agent.id), {"kind": "trigger", "trigger": trigger.event_data()})
            self.bus.publish(ROOM, delivery_event(trigger, agent.name, [trigger.message_id]))

    def _publish_post(self, posted: Posted) -> None:
        self.publish_wakeups(posted.events, posted.triggers)

    # -- validation -----------------------------------------------------------------------------
    def check_text(self, text: Any, *, allow_empty: bool = False) -> str:
        if not isinstance(text, str):
            raise InvalidInput("message text must be a string")
        if not allow_empty and not text.strip():
            raise InvalidInput("message text is empty")
        if len(text) > self.settings.max_message_chars:
            raise InvalidInput(
                f"message is {len(text)} characters; the limit is {self.settings.max_message_chars}"
            )
        if "\x00" in text:
            raise InvalidInput("message text contains a NUL character")
        return check_unicode(text, "text")

    def clamp_limit(self, limit: Any, default: int = 50) -> int:
        if limit is None:
            return default
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInput("limit must be a positive integer")
        return min(limit, self.settings.read_limit_max)

    # -- channels ---------------------------------------------------------------------------
    async def channels(self) -> list[Channel]:
        return await self.store.channels()

    async def create_channel(self, name: Any) -> Channel:
        channel, event = await self.store.create_channel(validate_channel(name), self.settings.max_channels)
        self.publish(event)
        return channel

    async def rename_channel(self, old: str, new: Any) -> Channel:
        old = validate_channel(old)
        if old == DEFAULT_CHANNEL:
            raise InvalidInput("#general cannot be renamed")
        channel, published = await self.store.rename_channel(old, validate_channel(new))
        self.publish(*published)
        return channel

    async def delete_channel(self, name: str) -> None:
        name = validate_channel(name)
        if name == DEFAULT_CHANNEL:
            raise InvalidInput("#general cannot be deleted")
        published, orphaned = await self.store.delete_channel(name)
        self.publish(*published)
        if any(e.kind == "rule" and e.payload.get("rule", {}).get("status") == "active" for e in published):
            await self.registry.rules_moved()  # an active rule of the channel went with it
        await self.remove_uploads(orphaned)

    async def remove_uploads(self, names: list[str]) -> None:
        """Remove files no message references any more: after the commit, off the event loop."""
        if names:
            await anyio.to_thread.run_sync(uploads.remove, self.settings.uploads_dir, names)

    # -- posting ----------------------------------------------------------------------------------
    async def post(
        self,
        *,
        channel: str,
        text: str,
        sender: str,
        kind: SenderKind,
        agent: Agent | None = None,
        reply_to: int | None = None,
        attachments: list[dict[str, Any]] | None = None,
        metadata: dict[str, Any] | None = None,
        type: str = "chat",
        job: Job | None = None,
        person_id: int | None = None,
        in_tx: Callable[[sqlite3.Connection], list[Event]] | None = None,
        wake: Callable[[Agent], str] | None = None,
        wake_sender: bool = False,
    ) -> Posted:
        """Store and route a message; with ``job`` it goes into that job's thread (its channel),
        counts hops on the job's own loop guard, and wake-ups name the job. A schedule firing passes
        ``in_tx`` (runs in the post's transaction), its own ``wake`` prompt, and ``wake_sender``
        (an agent's reminder to itself wakes it)."""
        now = time.time()
        tokens = mention_tokens(text)  # parsed here, not inside the store's write transaction

        def planner(ch: Channel, agents: list[Agent]) -> Any:
            return plan_routing(
                tokens=tokens,
                sender="" if wake_sender else sender,
                sender_kind=kind,
                channel=ch,
                agents=agents,
                now=now,
                crash_timeout=self.settings.crash_timeout,
                max_hops=self.room_settings.current.loop_guard_hops,
                place=f"job #{job.id}" if job is not None else None,
            )

        about = (job.id, job.title) if job is not None else None
        where = job.channel if job is not None else channel

        posted = await self.store.post(
            channel=channel,
            sender=sender,
            kind=kind,
            text=text,
            agent_id=agent.id if agent else None,
            type=type,
            reply_to=reply_to,
            attachments=attachments,
            metadata=metadata,
            planner=planner,
            prompt_for=wake or (lambda target: wake_prompt(target, sender, where, about)),
            job_id=job.id if job is not None else 0,
            person_id=person_id,
            in_tx=in_tx,
        )
        self._publish_post(posted)
        return posted

    async def post_human(
        self,
        *,
        channel: Any,
        text: Any,
        person: Person,
        reply_to: int | None = None,
        attachments: list[dict[str, Any]] | None = None,
        job: Job | None = None,
    ) -> Message:
        """Post as ``person``: the name and the author id come from their identity, never a field.
        With ``job`` it goes into that job's thread (``/continue`` there resets the job's guard)."""
        channel = validate_channel(channel)
        text = self.check_text(text, allow_empty=bool(attachments))
        if text.strip() == CONTINUE_COMMAND:
            if job is not None:
                return await self.resume_job(job.id, person.name)
            return await self.resume(channel, person.name)
        posted = await self.post(
            channel=channel,
            text=text,
            sender=person.name,
            kind="human",
            reply_to=reply_to,
            attachments=attachments,
            job=job,
            person_id=person.id,
        )
        return posted.message

    async def post_agent(
        self,
        agent: Agent,
        *,
        channel: str,
        text: Any,
        reply_to: int | None = None,
        attachments: list[dict[str, Any]] | None = None,
        metadata: dict[str, Any] | None = None,
        type: str = "chat",
        job: Job | None = None,
    ) -> Message:
        """Post as ``agent`` (with ``job``: into that job's thread). A chat message in a channel
        holding a ```session block is a session draft card (session_drafts.py)."""
        text = self.check_text(text)
        for choice in (metadata or {}).get("choices", ()):
            check_unicode(choice, "choices")  # a choice nobody could send back would block the card
        channel = validate_channel(channel)
        in_tx: Callable[[sqlite3.Connection], list[Event]] | None = None
        if job is None and type == "chat" and session_drafts.has_block(text):
            type, metadata, in_tx = session_drafts.prepare(agent.name, channel, text, metadata)
        posted = await self.post(
            channel=channel,
            text=text,
            sender=agent.name,
            kind="agent",
            agent=agent,
            reply_to=reply_to,
            attachments=attachments,
            metadata=metadata,
            type=type,
            job=job,
            in_tx=in_tx,
        )
        return posted.message

    async def post_system(self, channel: str, text: str, type: str = "system") -> Message:
        posted = await self.store.post(channel=channel, sender="system", kind="system", text=text, type=type)
        self.publish(*posted.events)
        return posted.message

    async def resume(self, channel: str, by: str) -> Message:
        """``/continue``: reset the loop guard of one channel and say so in it."""
        channel = validate_channel(channel)
        await self.store.set_routing(channel, 0, False)
        return await self.post_system(channel, f"{by} resumed agent routing in #{channel}.")

    async def resume_job(self, job_id: int, by: str) -> Message:
        """``/continue`` in a job's thread: reset that job's loop guard, say so, update the board."""
        change = await self.store.resume_job(job_id, by)
        self.publish(*change.events)
        assert change.message is not None
        return change.message

    # -- editing ------------------------------------------------------------------------------------
    async def edit(
        self, message_id: int, text: Any, *, by_agent: Agent | None = None, by_person: Person | None = None
    ) -> Message:
        await self._check_owner(message_id, by_agent, by_person, editing=True)
        message, event = await self.store.edit_message(message_id, self.check_text(text))
        self.publish(event)
        return message

    async def delete(
        self, message_id: int, *, by_agent: Agent | None = None, by_person: Person | None = None
    ) -> Message:
        await self._check_owner(message_id, by_agent, by_person)
        message, event, orphaned = await self.store.delete_message(message_id)
        self.publish(event)
        await self.remove_uploads(orphaned)
        return message

    async def _check_owner(
        self, message_id: int, agent: Agent | None, person: Person | None = None, *, editing: bool = False
    ) -> None:
        if agent is not None and await self.store.message_author(message_id) != agent.id:
            raise Forbidden("agents may only change their own messages")
        if person is None:
            return
        message = await self.store.message(message_id)
        if message.kind != "human":
            if editing:
                # Changing an agent's words would put them in its mouth; removing them is moderation.
                raise Forbidden(
                    f"message {message_id} is {message.sender}'s; people may delete it, not edit it"
                )
            return
        # A person's message belongs to its author's identity, not to the name on it; one from
        # before identities existed belongs to the local person.
        owner_ok = person.id == message.person_id if message.person_id is not None else person.is_local
        if not owner_ok:
            raise Forbidden(
                f"message {message_id} was written by another person ({message.sender}); "
                "only its author can edit or delete it"
            )

    # -- reading ------------------------------------------------------------------------------------
    async def history(
        self, channel: str, limit: Any = 50, before: int | None = None, after: int | None = None
    ) -> list[Message]:
        return await self.store.history(validate_channel(channel), self.clamp_limit(limit), before, after)

    async def search(self, query: Any, channel: str | None = None, limit: Any = 50) -> list[Message]:
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput("search query is empty")
        if len(query) > 200:
            raise InvalidInput("search query is longer than 200 characters")
        if "\x00" in query:  # FTS5 ends a quoted term at NUL ("unterminated string"), so refuse it here
            raise InvalidInput("search query contains a NUL character")
        return await self.store.search(
            query, validate_channel(channel) if channel else None, self.clamp_limit(limit)
        )

    async def agent_read(
        self, agent: Agent, channel: str, limit: Any, since_id: int | None
    ) -> tuple[list[Message], int]:
        return await self.store.read_for_agent(
            agent.id, validate_channel(channel), self.clamp_limit(limit, 20), since_id
        )

    async def agent_resync(self, agent: Agent, channel: str, limit: Any) -> list[Message]:
        return await self.store.resync_for_agent(agent.id, validate_channel(channel), self.clamp_limit(limit))

    async def message(self, message_id: int) -> Message:
        return await self.store.message(message_id)

    async def channel(self, name: str) -> Channel:
        try:
            return await self.store.channel(validate_channel(name))
        except NotFound:
            raise NotFound(f"no channel #{name}") from None
