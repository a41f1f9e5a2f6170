"""A fake Anthropic Messages API, just enough for Claude Code to run one scripted turn.

When the request offers ``mcp__backchannel__chat_send`` and has no tool result yet, the "model"
calls it with ``SAY``; after the tool result it answers ``done``. Everything else gets ``ok``.
Streaming (SSE) and plain JSON answers are both supported. Every request body is kept in
``requests`` so a test can see what the CLI sent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

TOOL = "mcp__backchannel__chat_send"


def _has_tool_result(body: dict[str, Any]) -> bool:
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(block, dict) and block.get("type") == "tool_result" for block in content
        ):
            return True
    return False


def build(say: str) -> tuple[Starlette, list[dict[str, Any]]]:
    requests: list[dict[str, Any]] = []

    def blocks(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        offered = {tool.get("name") for tool in body.get("tools", [])}
        if TOOL in offered and not _has_tool_result(body):
            return [
                {"type": "tool_use", "id": "toolu_fake_1", "name": TOOL, "input": {"message": say}}
            ], "tool_use"
        return [{"type": "text", "text": "done" if _has_tool_result(body) else "ok"}], "end_turn"

    async def messages(request: Request) -> Response:
        body = await request.json()
        requests.append(body)
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
