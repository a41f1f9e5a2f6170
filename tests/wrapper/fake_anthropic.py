"""A fake Anthropic Messages API, just enough for Claude Code to run one scripted turn.

Per prompt, the "model" calls ``mcp__backchannel__chat_send`` once with ``say`` (first looking it
up with ``ToolSearch`` when the CLI defers MCP tools), then answers ``done``. Requests without tools
get ``ok``. With ``bash_first``, the first prompt's turn starts with a ``Bash`` call of that command,
which Claude Code asks a person to approve ("Do you want to proceed?").
Streaming (SSE) and plain JSON answers are both supported. Every request body is kept in
``requests`` so a test can see what the CLI sent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

TOOL = "mcp__backchannel__chat_send"
SEARCH = "ToolSearch"
_NOTES = ("<system-reminder>", "Tool loaded.", "(no content)", "[Request interrupted")


def _tools_used_since_prompt(body: dict[str, Any]) -> list[str]:
    """Tools the assistant called since the newest prompt typed by the user (or the wrapper)."""

    def is_prompt(message: dict[str, Any]) -> bool:
        if message.get("role") != "user":
            return False
        content = message.get("content")
        if isinstance(content, str):
            return True
        # Claude Code packs reminders, "Tool loaded." and even the next typed prompt next to tool
        # results in one user message: a prompt is any text that is none of its own notes.
        texts = [b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text"]
        return any(not text.startswith(_NOTES) and text.strip() for text in texts)

    messages: list[dict[str, Any]] = body.get("messages") or []
    last_prompt = max((i for i, m in enumerate(messages) if is_prompt(m)), default=-1)
    return [
        block.get("name", "")
        for m in messages[last_prompt + 1 :]
        if m.get("role") == "assistant" and isinstance(m.get("content"), list)
        for block in m["content"]
        if isinstance(block, dict) and block.get("type") == "tool_use"
    ]


def build(
    say: str, on_request: Callable[[dict[str, Any]], None] | None = None, *, bash_first: str | None = None
) -> tuple[Starlette, list[dict[str, Any]]]:
    """The app and the list of request bodies it received; ``on_request`` sees each one as it comes."""
    requests: list[dict[str, Any]] = []
    bash_pending = bash_first is not None

    def use(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return {"type": "tool_use", "id": f"toolu_fake_{len(requests)}", "name": name, "input": arguments}

    def blocks(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        nonlocal bash_pending
        offered = {tool.get("name") for tool in body.get("tools", [])}
        used = _tools_used_since_prompt(body)
        if bash_pending and "Bash" in offered and not used:
            bash_pending = False
            return [use("Bash", {"command": bash_first, "description": "Print a word"})], "tool_use"
        if TOOL in used:
            return [{"type": "text", "text": "done"}], "end_turn"
        if TOOL in offered or SEARCH in used:
            call = {
                "type": "tool_use",
                "id": f"toolu_fake_{len(requests)}",
                "name": TOOL,
                "input": {"message": say},
            }
            return [call], "tool_use"
        if SEARCH in offered:  # newer Claude Code defers MCP tools until the model looks them up
            query = {"query": f"select:{TOOL}"}
            return [
                {"type": "tool_use", "id": f"toolu_fake_{len(requests)}", "name": SEARCH, "input": query}
            ], "tool_use"
        return [{"type": "text", "text": "ok"}], "end_turn"

    async def messages(request: Request) -> Response:
        body = await request.json()
        requests.append(body)
        if on_request is not None:
            on_request(body)
        content, stop = blocks(body)
        message = {
            "id": f"msg_fake_{len(requests)}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-fake"),
            "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
        if not body.get("stream"):
            return JSONResponse({**message, "content": content, "stop_reason": stop})

        async def events() -> AsyncIterator[str]:
            def event(kind: str, data: dict[str, Any]) -> str:
                return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"

            yield event("message_start", {"message": {**message, "content": [], "stop_reason": None}})
            for index, block in enumerate(content):
                if block["type"] == "tool_use":
                    start = {**block, "input": {}}
                    delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
                else:
                    start = {"type": "text", "text": ""}
                    delta = {"type": "text_delta", "text": block["text"]}
                yield event("content_block_start", {"index": index, "content_block": start})
                yield event("content_block_delta", {"index": index, "delta": delta})
                yield event("content_block_stop", {"index": index})
            yield event(
                "message_delta",
                {"delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": 1}},
            )
            yield event("message_stop", {})

        return StreamingResponse(events(), media_type="text/event-stream")

    async def count_tokens(request: Request) -> Response:
        return JSONResponse({"input_tokens": 1})

    async def anything(request: Request) -> Response:
        return JSONResponse({})

    app = Starlette(
        routes=[
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
            Route("/{path:path}", anything, methods=["GET", "POST"]),
        ]
    )
    return app, requests
