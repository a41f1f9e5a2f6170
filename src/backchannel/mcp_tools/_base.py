"""Shared plumbing for tools: who is calling, and building results.

Errors need no wrapper here: ``Toolset.call`` turns every exception into a short tool error.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from backchannel.mcp_tools._toolkit import ToolContext, ToolResult, text_block
from backchannel.models import Agent
from backchannel.registry import Registry
from backchannel.server.security import agent_token


async def caller(ctx: ToolContext, registry: Registry) -> Agent:
    """Who is calling: the request's token (``agent_token``), never a tool argument."""
    return await registry.authenticate(agent_token(ctx.headers))


def ok(text: str, structured: dict[str, Any] | None = None) -> ToolResult:
    # Always an object as structured content: Gemini rejects a bare JSON array it parses itself.
    return ToolResult([text_block(text)], structured)


def dumps(value: Any) -> str:
    """Compact JSON text, UTF-8 as is; orjson for speed (~0.13 ms less per 20-message chat_read).

    orjson refuses what json takes (lone surrogates, ints beyond 64 bits, non-string keys): those fall
    back to json, so any value a tool returns is still sent.
    """
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def ok_json(value: Any, key: str) -> ToolResult:
    return ok(dumps(value), {key: value})


def error(text: str) -> ToolResult:
    return ToolResult([text_block(text)], is_error=True)


def append_text(result: ToolResult, more: str) -> None:
    """Add a line to a result's first (text) block, e.g. "(3 more unread ...)"."""
    result.content[0]["text"] += f"\n{more}"
