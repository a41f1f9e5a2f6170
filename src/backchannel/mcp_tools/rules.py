"""chat_rules (and its agentchattr alias chat_decision): agents read the room rules and propose new ones.

Only people activate, edit or delete rules (REST); an agent's proposal is a card they settle once.
"""

from __future__ import annotations

from backchannel.errors import InvalidInput
from backchannel.mcp_tools._base import caller, ok, ok_json
from backchannel.mcp_tools._toolkit import ToolContext, ToolResult, Toolset
from backchannel.models import Agent
from backchannel.registry import Registry
from backchannel.room import DEFAULT_CHANNEL, validate_channel
from backchannel.rules import MAX_REASON, MAX_TEXT, Rules


def register(tools: Toolset, registry: Registry, rules: Rules) -> None:
    async def run(
        agent: Agent, action: str, rule: str, reason: str, channel: str, field: str = "rule"
    ) -> ToolResult:
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
        change = await rules.propose(agent, rule, reason, name, field=field)
        assert change.rule is not None and change.message is not None
        return ok(
            f"Rule proposed (id={change.rule.id}) in #{name}; a person will activate it, keep it as a "
            "draft or dismiss it.",
            {"id": change.rule.id, "message_id": change.message.id},
        )

    @tools.tool(
        description="The room rules. action='list': the active rules you follow (room-wide and this "
        f"channel's). action='propose': propose `rule` (1-{MAX_TEXT} characters, one line) with an "
        f"optional `reason` (at most {MAX_REASON}); it is posted as a card in `channel` for a person "
        "to activate, keep as a draft or dismiss."
    )
    async def chat_rules(
        ctx: ToolContext, action: str = "list", rule: str = "", reason: str = "", channel: str = ""
    ) -> ToolResult:
        return await run(await caller(ctx, registry), action, rule, reason, channel)

    @tools.tool()
    async def chat_decision(
        ctx: ToolContext, action: str = "list", decision: str = "", reason: str = "", channel: str = ""
    ) -> ToolResult:
        """Alias of chat_rules with `decision` for `rule`."""
        return await run(await caller(ctx, registry), action, decision, reason, channel, "decision")
