"""chat_schedule: agents set reminders for themselves or others ("check CI in 10 minutes"), list
the room's schedules and delete their own.

Same meanings and errors as the REST routes (the service checks everything). A schedule an agent
creates fires as that agent; only people pause, edit or delete other creators' schedules.
"""

from __future__ import annotations

from typing import Any

from backchannel.errors import InvalidInput
from backchannel.mcp_tools._base import caller, ok
from backchannel.mcp_tools._toolkit import ToolContext, ToolResult, Toolset
from backchannel.models import Agent
from backchannel.registry import Registry
from backchannel.room import DEFAULT_CHANNEL, validate_channel
from backchannel.schedule_spec import ACCEPTED
from backchannel.schedules import MAX_PROMPT, MAX_TARGETS, Schedules, owned_by
from backchannel.store.schedules import Schedule


def _line(schedule: Schedule, agent: Agent) -> dict[str, Any]:
    return {**schedule.public(), "mine": owned_by(schedule, agent)}


def register(tools: Toolset, registry: Registry, schedules: Schedules) -> None:
    async def run(
        agent: Agent,
        action: str,
        prompt: str,
        targets: list[str] | str | None,
        channel: str,
        spec: str,
        send_at: str,
        schedule_id: int,
    ) -> ToolResult:
        if action == "list":
            found = await schedules.list(channel or None)
            if not found:
                return ok("No schedules.", {"schedules": []})
            lines = [_line(s, agent) for s in found]
            text = "\n".join(
                f"#{s['id']} in #{s['channel']} ({s['spec'] or 'once'}"
                f"{', paused' if not s['active'] else ''}, next {s['next_run'] or 'never'}) "
                f"by {s['created_by']} -> {', '.join('@' + t for t in s['targets'])}: {s['prompt']}"
                for s in lines
            )
            return ok(text, {"schedules": lines})
        if action == "create":
            where = validate_channel(channel) if channel else (agent.last_channel or DEFAULT_CHANNEL)
            made = await schedules.create(
                by=agent,
                prompt=prompt,
                targets=targets if targets not in (None, "", []) else [agent.name],
                channel=where,
                spec=spec or None,
                one_shot=False,
                send_at=send_at or None,
            )
            when = made.public()["next_run"]
            return ok(
                f"Schedule #{made.id} set in #{made.channel} ({made.spec or 'once'}); next run {when}.",
                {"schedule": _line(made, agent)},
            )
        if action == "delete":
            if schedule_id < 1:
                raise InvalidInput("schedule_id is required to delete (see action='list')")
            gone = await schedules.delete(schedule_id, by_agent=agent)
            return ok(f"Schedule #{gone.id} deleted.", {"id": gone.id})
        raise InvalidInput(f"action must be 'list', 'create' or 'delete'; got {action!r}")

    @tools.tool(
        description="Schedules: post a prompt to agents later, once or repeatedly. action='create': "
        f"`prompt` (1-{MAX_PROMPT} characters), `targets` (1-{MAX_TARGETS} agent names; default you), "
        "`channel` (default the one you last read), and either `spec` or `send_at`. Accepted: "
        f"{ACCEPTED}; send_at may also be relative, e.g. 'in 10 minutes'. When due, '@target ... prompt' "
        "is posted as you and the targets are woken. "
        "action='list': every schedule (or `channel`'s). action='delete': `schedule_id` of one you created."
    )
    async def chat_schedule(
        ctx: ToolContext,
        action: str = "list",
        prompt: str = "",
        targets: list[str] | str | None = None,
        channel: str = "",
        spec: str = "",
        send_at: str = "",
        schedule_id: int = 0,
    ) -> ToolResult:
        return await run(
            await caller(ctx, registry), action, prompt, targets, channel, spec, send_at, schedule_id
        )
