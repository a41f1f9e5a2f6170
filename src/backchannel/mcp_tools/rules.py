"""chat_rules (and its agentchattr alias chat_decision): agents read the room rules and propose new ones.

Only people activate, edit or delete rules (REST); an agent's proposal is a card they settle once.
"""

from __future__ import annotations

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult

from backchannel.errors import InvalidInput
from backchannel.mcp_tools._base import caller, ok, ok_json, tool_errors
from backchannel.models import Agent
from backchannel.registry import Registry
from backchannel.room import DEFAULT_CHANNEL, validate_channel
from backchannel.rules import MAX_REASON, MAX_TEXT, Rules


def register(server: MCPServer, registry: Registry, rules: Rules) -> None:
    async def run(agent: Agent, action: str, rule: str, reason: str, channel: str) -> CallToolResult:
        # An empty channel means the one the agent last read, else #general (as for chat_send).
        name = validate_channel(channel) if channel else (agent.last_channel or DEFAULT_CHANNEL)
        if action == "list":
            active = await rules.active(name)
            if not active:
                return ok("No active rules.", {"rules": []})
            return ok_json(
                [{"id": r.id, "rule": r.text, "reason": r.reason, "channel": r.channel} for r in active],
                "rules",
            )
        if action != "propose":
            raise InvalidInput(
                f"action must be 'list' or 'propose' (people activate, edit and delete rules); got {action!r}"
            )
        change = await rules.propose(agent, rule, reason, name)
        assert change.rule is not None and change.message is not None
        return ok(
            f"Rule proposed (id={change.rule.id}) in #{name}; a person will activate it, keep it as a "
            "draft or dismiss it.",
            {"id": change.rule.id, "message_id": change.message.id},
        )

    @server.tool(
        description="The room rules. action='list': the active rules you follow (room-wide and this "
        f"channel's). action='propose': propose `rule` (1-{MAX_TEXT} characters, one line) with an "
        f"optional `reason` (at most {MAX_REASON}); it is posted as a card in `channel` for a person "
        "to activate, keep as a draft or dismiss."
    )
    @tool_errors
    async def chat_rules(
        ctx: Context, action: str = "list", rule: str = "", reason: str = "", channel: str = ""
    ) -> CallToolResult:
        return await run(await caller(ctx, registry), action, rule, reason, channel)

    @server.tool()
    @tool_errors
    async def chat_decision(
        ctx: Context, action: str = "list", decision: str = "", reason: str = "", channel: str = ""
    ) -> CallToolResult:
        """Alias of chat_rules with `decision` for `rule`."""
        return await run(await caller(ctx, registry), action, decision, reason, channel)
