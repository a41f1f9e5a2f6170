"""The MCP tools agents use: agentchattr-compatible tool names and arguments.

Identity always comes from the token on the HTTP request, never from a tool argument.
"""

from __future__ import annotations

from backchannel import __version__
from backchannel.jobs import JobBoard
from backchannel.mcp_tools import chat, identity, images, jobs, rules, schedules
from backchannel.mcp_tools._toolkit import Toolset
from backchannel.registry import Registry
from backchannel.room import Room
from backchannel.rules import Rules
from backchannel.schedules import Schedules

INSTRUCTIONS = (
    "backchannel is a chat room shared by people and coding agents. When you are mentioned you get a "
    "prompt naming the channel or job: read it with chat_read, answer with chat_send (pass job_id for a "
    "job's thread). Do not poll: when a read returns nothing new, stop and wait for your next prompt."
)


def build_toolset(
    room: Room, registry: Registry, board: JobBoard, rules_service: Rules, schedules_service: Schedules
) -> Toolset:
    tools = Toolset("backchannel", __version__, INSTRUCTIONS)
    chat.register(tools, room, registry, board)
    jobs.register(tools, registry, board)
    identity.register(tools, room, registry)
    rules.register(tools, registry, rules_service)
    schedules.register(tools, registry, schedules_service)
    images.register(tools, room, registry)  # chat_image (issue 13)
    return tools
