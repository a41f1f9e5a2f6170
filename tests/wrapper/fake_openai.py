"""A fake OpenAI-compatible Chat Completions API, just enough for Qwen, Copilot and Kilo to run turns.

Per prompt typed by the user (or the wrapper), the "model" calls our MCP tool ``tool`` (``chat_send``,
which CLIs call ``mcp__backchannel__chat_send``, ``backchannel-chat_send`` or
``backchannel_chat_send``) with ``arguments`` (``{"message": say}``), then answers ``done`` once the
tool result is back. Qwen Code defers MCP tools behind its ``tool_call`` tool, so when no such tool
is offered the call goes through ``tool_call``. Without either: ``ok``.
Streaming (SSE) and plain JSON answers are both supported; every request body is kept in
``requests``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


def _tool_names(body: dict[str, Any]) -> list[str]:
    return [str((t.get("function") or {}).get("name", "")) for t in body.get("tools") or []]


def build(
    say: str,
    on_request: Callable[[dict[str, Any]], None] | None = None,
    *,
    tool: str = "chat_send",
    arguments: dict[str, Any] | None = None,
) -> tuple[Starlette, list[dict[str, Any]]]:
    """The app and the list of request bodies it received; ``on_request`` sees each one as it comes."""
    requests: list[dict[str, Any]] = []

    def answer(body: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
        messages: list[dict[str, Any]] = body.get("messages") or []
        last = messages[-1] if messages else {}
        if last.get("role") == "tool":
            return "done", None
        offered = _tool_names(body)
        args: dict[str, Any] = arguments or {"message": say}
        if last.get("role") != "user":
            return "ok", None
        ours = [
            n
            for n in offered
            if n in (f"mcp__backchannel__{tool}", f"backchannel-{tool}", f"backchannel_{tool}")
        ]
        if ours:
            name = ours[0]
        elif "tool_call" in offered:
            name, args = "tool_call", {"name": f"mcp__backchannel__{tool}", "arguments": args}
        else:
            return "ok", None
        call = {
            "id": f"call_fake_{len(requests)}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        return None, call

    async def completions(request: Request) -> Response:
        body = await request.json()
        requests.append(body)
        if on_request is not None:
            on_request(body)
        text, call = answer(body)
        base = {"id": f"chatcmpl-fake-{len(requests)}", "created": 0, "model": body.get("model", "fake")}
        finish = "tool_calls" if call else "stop"
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if call:
                message["tool_calls"] = [call]
            choice = {"index": 0, "message": message, "finish_reason": finish}
            return JSONResponse({**base, "object": "chat.completion", "choices": [choice], "usage": usage})

        async def events() -> AsyncIterator[str]:
            def chunk(delta: dict[str, Any], reason: str | None = None, **extra: Any) -> str:
                choice = {"index": 0, "delta": delta, "finish_reason": reason}
                data = {**base, "object": "chat.completion.chunk", "choices": [choice], **extra}
                return f"data: {json.dumps(data)}\n\n"

            yield chunk({"role": "assistant", "content": ""})
            if call:
                yield chunk({"tool_calls": [{"index": 0, **call}]})
            else:
                yield chunk({"content": text})
            yield chunk({}, finish, usage=usage)
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    async def anything(request: Request) -> Response:
        return JSONResponse({})

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", completions, methods=["POST"]),
            Route("/chat/completions", completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/{path:path}", anything, methods=["GET", "POST"]),
        ]
    )
    return app, requests
