"""Reading and writing the room: chat_send, chat_read, chat_resync, chat_join, chat_who, ..."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult

from backchannel import uploads
from backchannel.errors import Conflict, InvalidInput
from backchannel.mcp_tools._base import caller, ok, ok_json, tool_errors
from backchannel.models import Agent
from backchannel.registry import Registry
from backchannel.room import DEFAULT_CHANNEL, Room, validate_channel

EMPTY_HINT = "No new messages in #{channel}. Stop polling: wait for your next prompt."
MAX_CHOICES = 10
MAX_SUMMARY = 1000


def _channel(agent: Agent, channel: str) -> str:
    """An empty channel means the one the agent last read, else #general."""
    return validate_channel(channel) if channel else (agent.last_channel or DEFAULT_CHANNEL)


async def _refuse_job_thread(room: Room, job_id: int, action: str, channel: str) -> None:
    """Job threads do not exist yet: any job_id is refused plainly, never treated as the channel."""
    if job_id == 0:
        return
    if job_id < 0 or job_id not in {j.id for j in await room.store.jobs()}:
        raise InvalidInput(
            f"job_id={job_id}: there is no job {job_id}. Leave job_id out to {action} #{channel}."
        )
    raise InvalidInput(
        f"job_id={job_id}: job threads are not supported yet, so nothing was done. Leave job_id out to"
        f" {action} #{channel} (write 'job #{job_id}' in the text if it is about that job)."
    )


def register(server: MCPServer, room: Room, registry: Registry) -> None:
    @server.tool()
    @tool_errors
    async def chat_send(
        message: str,
        ctx: Context,
        channel: str = "",
        reply_to: int = -1,
        choices: list[str] | None = None,
        image_path: str = "",
        job_id: int = 0,
        sender: str = "",
    ) -> CallToolResult:
        """Post a message as yourself. `choices` turns it into a decision card; `reply_to` quotes a message.

        `sender` is accepted for compatibility and ignored: you always speak as your own identity.
        `job_id` is refused with an error until job threads exist: leave it out.
        """
        agent = await caller(ctx, registry)
        metadata: dict[str, object] = {}
        if choices:
            if len(choices) > MAX_CHOICES or any(not c.strip() for c in choices):
                raise InvalidInput(f"choices: up to {MAX_CHOICES} non-empty strings")
            metadata["choices"] = [c.strip()[:200] for c in choices]
        target = _channel(agent, channel)
        await _refuse_job_thread(room, job_id, "post in", target)
        attachments: list[dict[str, Any]] = []
        if image_path:
            if room.settings.allow_network:
                # The path is read on the server's machine: only a local agent may point at it.
                raise InvalidInput("image_path is only available when the server runs in loopback mode")
            await room.channel(target)  # check what can fail first, so a refused send copies nothing
            room.check_text(message)
            settings = room.settings
            attachments.append(
                await anyio.to_thread.run_sync(
                    uploads.from_local_path, settings.uploads_dir, image_path, settings.max_upload_bytes
                )
            )
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

    @server.tool()
    @tool_errors
    async def chat_read(
        ctx: Context,
        channel: str = "",
        since_id: int | None = None,
        limit: int = 20,
        job_id: int = 0,
        sender: str = "",
    ) -> CallToolResult:
        """Read messages. First read: the latest `limit`. Later: only what is new since your last read,
        oldest first; if more remain you are told how many. `since_id` reads after that id instead.
        `job_id` is refused with an error until job threads exist: leave it out.
        """
        agent = await caller(ctx, registry)
        name = _channel(agent, channel)
        await _refuse_job_thread(room, job_id, "read", name)
        batch, remaining = await room.agent_read(agent, name, limit, since_id)
        # `remaining` is exactly what the next reads without since_id return; say so in those terms.
        if since_id is None:
            more = f"({remaining} more unread in #{name}: call chat_read again to continue.)"
        else:
            more = (
                f"({remaining} unread in #{name} after your read position: call chat_read without since_id.)"
            )
        if not batch:
            text = EMPTY_HINT.format(channel=name)
            if remaining:
                text = f"No messages in #{name} after id {since_id}. {more}"
            return ok(text, {"messages": [], "remaining": remaining, "channel": name})
        items = [m.for_agent() for m in batch]
        result = ok_json(items, "messages")
        assert result.structured_content is not None
        result.structured_content.update({"remaining": remaining, "channel": name})
        if remaining:
            result.content[0].text += f"\n{more}"  # type: ignore[union-attr]  # ok_json builds one TextContent
        return result

    @server.tool()
    @tool_errors
    async def chat_resync(ctx: Context, channel: str = "", limit: int = 50) -> CallToolResult:
        """The latest messages of a channel; resets your read cursor to the newest of them."""
        agent = await caller(ctx, registry)
        batch = await room.agent_resync(agent, _channel(agent, channel), limit)
        return ok_json([m.for_agent() for m in batch], "messages")

    @server.tool()
    @tool_errors
    async def chat_join(ctx: Context, channel: str = DEFAULT_CHANNEL) -> CallToolResult:
        """Join a channel (created if it does not exist) and make it your default for chat_send."""
        agent = await caller(ctx, registry)
        name = validate_channel(channel)
        if name not in {c.name for c in await room.channels()}:
            with contextlib.suppress(Conflict):  # another agent created it a moment ago
                await room.create_channel(name)
        await room.store.update_agent(agent.id, last_channel=name)
        return ok(f"Joined #{name}. {await _who(room)}")

    @server.tool()
    @tool_errors
    async def chat_who(ctx: Context) -> CallToolResult:
        """Who is online now."""
        await caller(ctx, registry)
        return ok(await _who(room))

    @server.tool()
    @tool_errors
    async def chat_channels(ctx: Context) -> CallToolResult:
        """The channel names."""
        await caller(ctx, registry)
        return ok_json([c.name for c in await room.channels()], "channels")

    async def _rules(agent: Agent, action: str, rule: str, reason: str, channel: str) -> CallToolResult:
        if action == "list":
            active = await room.store.rules("active")
            if not active:
                return ok("No active rules.", {"rules": []})
            lines = [{"id": r.id, "rule": r.text, "channel": r.channel} for r in active]
            return ok_json(lines, "rules")
        if action != "propose":
            raise InvalidInput("action must be 'list' or 'propose'")
        if not rule.strip() or len(rule) > 500:
            raise InvalidInput("rule: 1-500 characters")
        name = _channel(agent, channel)
        await room.channel(name)
        proposal = await room.store.propose_rule(name, rule.strip(), reason.strip()[:500], agent.name)
        await room.post_agent(
            agent,
            channel=name,
            type="rule_proposal",
            text=f"Proposed rule: {proposal.text}"
            + (f" (why: {proposal.reason})" if proposal.reason else ""),
            metadata={"rule_id": proposal.id},
        )
        return ok(f"Rule proposed (id={proposal.id}); a person will review it.", {"id": proposal.id})

    @server.tool()
    @tool_errors
    async def chat_rules(
        ctx: Context, action: str = "list", rule: str = "", reason: str = "", channel: str = ""
    ) -> CallToolResult:
        """List the active rules, or propose a new one for a person to accept."""
        return await _rules(await caller(ctx, registry), action, rule, reason, channel)

    @server.tool()
    @tool_errors
    async def chat_decision(
        ctx: Context, action: str = "list", decision: str = "", reason: str = "", channel: str = ""
    ) -> CallToolResult:
        """Alias of chat_rules with `decision` for `rule`."""
        return await _rules(await caller(ctx, registry), action, decision, reason, channel)

    @server.tool()
    @tool_errors
    async def chat_summary(
        ctx: Context, action: str = "read", text: str = "", channel: str = ""
    ) -> CallToolResult:
        """Read or write the channel summary (at most 1000 characters)."""
        agent = await caller(ctx, registry)
        name = _channel(agent, channel)
        if action == "read":
            summary = (await room.channel(name)).summary
            return ok(summary or f"No summary for #{name} yet.", {"channel": name, "summary": summary})
        if action != "write":
            raise InvalidInput("action must be 'read' or 'write'")
        if len(text) > MAX_SUMMARY:
            raise InvalidInput(f"summary is {len(text)} characters; the limit is {MAX_SUMMARY}")
        await room.store.set_summary(name, text.strip())
        return ok(f"Summary of #{name} saved.")

    @server.tool()
    @tool_errors
    async def chat_propose_job(ctx: Context, title: str, body: str = "", channel: str = "") -> CallToolResult:
        """Propose a job (title <= 80, body <= 1000 characters) for a person to accept."""
        agent = await caller(ctx, registry)
        if not title.strip() or len(title) > 80:
            raise InvalidInput("title: 1-80 characters")
        if len(body) > 1000:
            raise InvalidInput("body: at most 1000 characters")
        name = _channel(agent, channel)
        await room.channel(name)
        job = await room.store.propose_job(name, title.strip(), body.strip(), agent)
        msg = await room.post_agent(
            agent,
            channel=name,
            type="job_proposal",
            text=f"Job proposal: {job.title}\n\n{job.body}".strip(),
            metadata={"job_id": job.id, "title": job.title},
        )
        await room.store.set_job_message(job.id, msg.id)
        return ok(f"Job proposed (id={job.id}); a person will accept or decline it.", {"id": job.id})


async def _who(room: Room) -> str:
    now = time.time()
    online = [a.name for a in await room.store.agents() if a.is_online(now, room.settings.crash_timeout)]
    return f"Online: {', '.join(online)}" if online else "Nobody online."
