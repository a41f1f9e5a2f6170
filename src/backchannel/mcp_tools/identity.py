"""Tools about the caller's own identity: chat_claim (rename) and chat_set_hat."""

from __future__ import annotations

from backchannel.hats import sanitize_svg
from backchannel.mcp_tools._base import caller, dumps, ok
from backchannel.mcp_tools._toolkit import ToolContext, ToolResult, Toolset
from backchannel.registry import Registry
from backchannel.room import Room


def register(tools: Toolset, room: Room, registry: Registry) -> None:
    @tools.tool()
    async def chat_claim(ctx: ToolContext, name: str = "") -> ToolResult:
        """Take a new name (lower-case letters, digits, '-'; not a word like you, all, system); your
        earlier messages show it too. Empty just confirms your current one."""
        agent = await caller(ctx, registry)
        if name and name != agent.name:
            agent = await registry.rename(agent.name, name)
        data = {"confirmed_name": agent.name, "label": agent.label, "base": agent.base}
        return ok(dumps(data), data)

    @tools.tool()
    async def chat_set_hat(ctx: ToolContext, svg: str, target: str = "") -> ToolResult:
        """Put an SVG hat (<= 5120 characters; scripts and links are removed) on your avatar or another's."""
        agent = await caller(ctx, registry)
        who = await registry.get(target) if target else agent
        clean = sanitize_svg(svg)
        updated = await room.store.update_agent(who.id, hat=clean)
        await registry.publish_presence(updated)
        return ok(f"Hat set on {who.name}.")
