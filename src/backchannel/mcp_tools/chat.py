"""Reading and writing the room: chat_send, chat_read, chat_resync, chat_join, chat_who, ..."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import anyio

from backchannel import agent_images, uploads
from backchannel.config import Settings
from backchannel.errors import Conflict, InvalidInput
from backchannel.jobs import JobBoard
from backchannel.mcp_tools._base import append_text, caller, ok, ok_json
from backchannel.mcp_tools._toolkit import ToolContext, ToolResult, Toolset
from backchannel.mcp_tools.jobs import brief, find_job, header
from backchannel.models import Agent, Message
from backchannel.registry import Registry
from backchannel.room import DEFAULT_CHANNEL, Room, validate_channel
from backchannel.store.messages import MessageCache, remember
from backchannel.summaries import Summaries

EMPTY_HINT = "No new messages in {place}. Stop polling: wait for your next prompt."
MAX_CHOICES = 10


def _channel(agent: Agent, channel: str) -> str:
    """An empty channel means the one the agent last read, else #general."""
    return validate_channel(channel) if channel else (agent.last_channel or DEFAULT_CHANNEL)


class AgentViews:
    """Messages in the shape agents read (``Message.for_agent`` with attachment paths).

    Every agent in a channel reads each new message, and the store hands back the same Message
    object while its row is unchanged (``store.messages.MessageCache``): its shape is built once,
    not once per reader. Built each time: a message with attachments (``file_path`` says whether
    the file is still on disk) and a long one (the store does not keep it, so it is never the same
    object twice).
    """

    def __init__(self, settings: Settings, size: int = 2048) -> None:
        # Where attachments live, for ``file_path``; None when an agent may be on another machine.
        self.files: Path | None = None if settings.allow_network else settings.uploads_dir
        self._size = size
        self._entries: dict[int, tuple[Message, dict[str, Any]]] = {}

    def of(self, batch: list[Message]) -> list[dict[str, Any]]:
        return [self.view(m) for m in batch]

    def view(self, msg: Message) -> dict[str, Any]:
        entry = self._entries.get(msg.id)
        if entry is not None and entry[0] is msg:
            return entry[1]
        shape = agent_images.with_file_paths(msg.for_agent(), self.files)
        if msg.attachments or len(msg.text) > MessageCache.LONG:  # not kept: see the docstring
            return shape
        remember(self._entries, msg.id, (msg, shape), self._size)
        return shape


def _read_result(
    batch: list[Message],
    remaining: int,
    since_id: int | None,
    place: str,
    again: str,
    views: AgentViews,
    empty: str = EMPTY_HINT,
) -> ToolResult:
    """A read's answer; `remaining` is exactly what the next reads without since_id return."""
    if since_id is None:
        more = f"({remaining} more unread in {place}: call {again} again to continue.)"
    else:
        more = f"({remaining} unread in {place} after your read position: call {again} without since_id.)"
    if not batch:
        text = empty.format(place=place)
        if remaining:
            text = f"No messages in {place} after id {since_id}. {more}"
        return ok(text, {"messages": [], "remaining": remaining})
    result = ok_json(views.of(batch), "messages")
    assert result.structured is not None
    result.structured["remaining"] = remaining
    if remaining:
        append_text(result, more)
    return result


def register(tools: Toolset, room: Room, registry: Registry, jobs: JobBoard) -> None:
    views = AgentViews(room.settings)
    summaries = Summaries(room.store, jobs)

    @tools.tool()
    async def chat_send(
        message: str,
        ctx: ToolContext,
        channel: str = "",
        reply_to: int = -1,
        choices: list[str] | None = None,
        image_path: str = "",
        job_id: int = 0,
        sender: str = "",
    ) -> ToolResult:
        """Post a message as yourself. `choices` turns it into a decision card; `reply_to` quotes a message.
        `job_id` posts in that job's thread instead of a channel. A person answers a decision card once;
        you are then woken with the choice.

        `sender` is accepted for compatibility and ignored: you always speak as your own identity.
        """
        agent = await caller(ctx, registry)
        metadata: dict[str, object] = {}
        if choices:
            if len(choices) > MAX_CHOICES or any(not c.strip() for c in choices):
                raise InvalidInput(f"choices: up to {MAX_CHOICES} non-empty strings")
            metadata["choices"] = [c.strip()[:200] for c in choices]
        target = _channel(agent, channel)
        if job_id:
            await find_job(jobs, job_id, f"leave job_id out to post in #{target}")
        attachments: list[dict[str, Any]] = []
        if image_path:
            if room.settings.allow_network:
                # The path is read on the server's machine: only a local agent may point at it.
                raise InvalidInput("image_path is only available when the server runs in loopback mode")
            if not job_id:
                await room.channel(target)  # check what can fail first, so a refused send copies nothing
            room.check_text(message)
            settings = room.settings
            attachments.append(
                await anyio.to_thread.run_sync(
                    uploads.from_local_path, settings.uploads_dir, image_path, settings.max_upload_bytes
                )
            )
        if job_id:
            msg = await jobs.post(
                job_id,
                message,
                agent=agent,
                reply_to=reply_to if reply_to >= 0 else None,
                attachments=attachments,
                metadata=metadata,
                type="decision" if choices else "chat",
            )
            return ok(f"Sent (id={msg.id}) in job #{job_id}", {"id": msg.id, "job_id": job_id})
        msg = await room.post_agent(
            agent,
            channel=target,
            text=message,
            reply_to=reply_to if reply_to >= 0 else None,
            attachments=attachments,
            metadata=metadata,
            type="decision" if choices else "chat",
        )
        return ok(f"Sent (id={msg.id})", {"id": msg.id, "channel": msg.channel})

    @tools.tool()
    async def chat_read(
        ctx: ToolContext,
        channel: str = "",
        since_id: int | None = None,
        limit: int = 20,
        job_id: int = 0,
        sender: str = "",
    ) -> ToolResult:
        """Read messages. First read: the latest `limit`. Later: only what is new since your last read,
        oldest first; if more remain you are told how many. `since_id` reads after that id instead.
        `job_id` reads that job's thread (its own read position) instead of a channel.
        """
        agent = await caller(ctx, registry)
        name = _channel(agent, channel)
        if job_id:
            job = await find_job(jobs, job_id, f"leave job_id out to read #{name}")
            batch, remaining, first = await jobs.agent_read(
                agent, job.id, room.clamp_limit(limit, 20), since_id
            )
            # A first read shows the job for the first time: the agent has work, not a reason to stop.
            empty = f"No messages in {{place}} yet: work on it and report with chat_send(job_id={job.id})."
            again = f"chat_read(job_id={job.id})"
            result = _read_result(
                batch,
                remaining,
                since_id,
                f"job #{job.id}",
                again,
                views,
                empty if first else EMPTY_HINT,
            )
            result.content[0]["text"] = f"{header(job)}\n\n{result.content[0]['text']}"
            assert result.structured is not None
            result.structured.update(
                {"job_id": job.id, "title": job.title, "channel": job.channel, "job": brief(job)}
            )
            return result
        batch, remaining = await room.agent_read(agent, name, limit, since_id)
        result = _read_result(batch, remaining, since_id, f"#{name}", "chat_read", views)
        assert result.structured is not None
        result.structured["channel"] = name
        return result

    @tools.tool()
    async def chat_resync(ctx: ToolContext, channel: str = "", limit: int = 50) -> ToolResult:
        """The latest messages of a channel; resets your read cursor to the newest of them."""
        agent = await caller(ctx, registry)
        batch = await room.agent_resync(agent, _channel(agent, channel), limit)
        return ok_json(views.of(batch), "messages")

    @tools.tool()
    async def chat_join(ctx: ToolContext, channel: str = DEFAULT_CHANNEL) -> ToolResult:
        """Join a channel (created if it does not exist) and make it your default for chat_send."""
        agent = await caller(ctx, registry)
        name = validate_channel(channel)
        if name not in {c.name for c in await room.channels()}:
            with contextlib.suppress(Conflict):  # another agent created it a moment ago
                await room.create_channel(name)
        await room.store.update_agent(agent.id, last_channel=name)
        return ok(f"Joined #{name}. {await _who(room)}")

    @tools.tool()
    async def chat_who(ctx: ToolContext) -> ToolResult:
        """Who is online now."""
        await caller(ctx, registry)
        return ok(await _who(room))

    @tools.tool()
    async def chat_channels(ctx: ToolContext) -> ToolResult:
        """The channel names."""
        await caller(ctx, registry)
        return ok_json([c.name for c in await room.channels()], "channels")

    @tools.tool()
    async def chat_summary(
        ctx: ToolContext, action: str = "read", text: str = "", channel: str = ""
    ) -> ToolResult:
        """Read or write the channel summary (at most 1000 characters); writing posts a summary card."""
        agent = await caller(ctx, registry)
        name = _channel(agent, channel)
        if action == "read":
            summary = (await room.channel(name)).summary
            return ok(summary or f"No summary for #{name} yet.", {"channel": name, "summary": summary})
        if action != "write":
            raise InvalidInput("action must be 'read' or 'write'")
        await summaries.write(agent, name, text)
        return ok(f"Summary of #{name} saved; a summary card is posted there.")

    limits = f"title <= {room.settings.job_title_max}, body <= {room.settings.job_body_max} characters"

    @tools.tool(
        description=f"Propose a job ({limits}) as a card people accept, send back or dismiss. "
        "Accepting creates the job and wakes you with its id."
    )
    async def chat_propose_job(ctx: ToolContext, title: str, body: str = "", channel: str = "") -> ToolResult:
        agent = await caller(ctx, registry)
        title, body = jobs.check_title(title), jobs.check_body(body)
        name = _channel(agent, channel)
        await room.channel(name)
        card = await room.post_agent(
            agent,
            channel=name,
            type="job_proposal",
            text=f"Job proposal: {title}\n\n{body}".strip(),
            metadata={"title": title, "body": body, "status": "proposed", "proposer_id": agent.id},
        )
        return ok(
            f"Job proposed (card id={card.id}); a person will accept it, ask for changes or dismiss it.",
            {"message_id": card.id},
        )


async def _who(room: Room) -> str:
    now = time.time()
    online = [a.name for a in await room.store.agents() if a.is_online(now, room.settings.crash_timeout)]
    return f"Online: {', '.join(online)}" if online else "Nobody online."
