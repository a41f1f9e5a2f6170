"""Shared plumbing for tools: who is calling, and turning results and errors into tool results."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, TextContent

from backchannel.errors import BackchannelError
from backchannel.models import Agent
from backchannel.registry import Registry
from backchannel.server.security import agent_token

logger = logging.getLogger("backchannel.mcp")
P = ParamSpec("P")


def token_from_headers(headers: Any) -> str | None:
    """``Authorization: Bearer <t>``, else ``X-Agent-Token: <t>``; never a tool argument."""
    return None if headers is None else agent_token(headers)


async def caller(ctx: Context, registry: Registry) -> Agent:
    return await registry.authenticate(token_from_headers(ctx.headers))


def ok(text: str, structured: dict[str, Any] | None = None) -> CallToolResult:
    # Always an object as structured content: Gemini rejects a bare JSON array it parses itself.
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


def ok_json(value: Any, key: str) -> CallToolResult:
    return ok(json.dumps(value, ensure_ascii=False), {key: value})


def error(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def tool_errors(fn: Callable[P, Awaitable[CallToolResult]]) -> Callable[P, Awaitable[CallToolResult]]:
    """Our errors become short tool errors the model can act on; nothing else leaks a traceback."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> CallToolResult:
        try:
            return await fn(*args, **kwargs)
        except BackchannelError as exc:
            return error(exc.detail)
        except OverflowError:  # an int argument beyond SQLite's 64 bits, e.g. since_id=10**30
            return error(f"{fn.__name__}: a number argument is too large (at most {2**63 - 1})")
        except Exception:
            logger.exception("tool %s failed", fn.__name__)
            return error(f"{fn.__name__} failed with an internal error; the server log has details.")

    return wrapper
