"""A scripted OpenAI-compatible model for the API agent's tests, served over real HTTP.

``POST /v1/chat/completions`` answers with JSON, or with Server-Sent Events when the request asks
to stream (tool-call arguments are split over several chunks, as real servers do). The script, per
request, looks at the last message:

* the wake-up (a user turn): call ``chat_read`` for the channel named in the prompt;
* the result of ``chat_read``: call ``chat_send`` with ``reply`` (a function of what was seen);
* anything else (the result of ``chat_send``): answer with no tool call, ending the turn.

Every request body and its ``Authorization`` header are kept in :attr:`FakeChatApi.requests`.
``refuse_stream`` answers streamed requests with 400, like servers that cannot stream;
``refuse_tools`` answers requests with tools with 400, like Ollama for a model without tool calls
(without tools offered the model answers in plain text); ``gate`` holds every answer until set.
``script``, when it returns a :class:`Canned` for a request, answers with that instead (an error
status, or a tool call of the test's choosing); None leaves the request to the script above.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Seen:
    """What the model was shown in one turn, for ``reply`` to answer from."""

    prompt: str
    read: str
    images: list[str]  # data: URLs of the image parts shown


@dataclass
class Canned:
    """One scripted answer: an error (``status`` >= 400 with ``error`` as its message), a tool call,
    or plain ``content``."""

    status: int = 200
    error: str = ""
    call: tuple[str, dict[str, Any]] | None = None
    content: str = ""


@dataclass
class FakeChatApi:
    reply: Callable[[Seen], str] = lambda seen: "pong"
    refuse_stream: bool = False
    refuse_tools: bool = False  # 400 "does not support tools", as Ollama answers for such models
    gate: anyio.Event | None = None  # when set, every answer waits for it (the model "thinks")
    script: Callable[[dict[str, Any]], Canned | None] = lambda body: None
    requests: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    authorizations: list[str] = field(default_factory=list[str])

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self._complete, methods=["POST"])])

    async def _complete(self, request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        self.requests.append(body)
        self.authorizations.append(request.headers.get("authorization", ""))
        if self.gate is not None:
            await self.gate.wait()
        if body.get("stream") and self.refuse_stream:
            return JSONResponse({"error": {"message": "streaming is not supported"}}, status_code=400)
        if body.get("tools") and self.refuse_tools:
            error = {
                "error": {"message": f"registry.ollama.ai/library/{body['model']} does not support tools"}
            }
            return JSONResponse(error, status_code=400)
        canned = self.script(body)
        if canned is not None and canned.status >= 400:
            return JSONResponse({"error": {"message": canned.error}}, status_code=canned.status)
        if canned is not None:
            args = canned.call
            called = (f"call_{len(self.requests)}", args[0], json.dumps(args[1])) if args else None
            content, call = canned.content, called
        else:
            content, call = self._script(body)
        if body.get("stream"):
            return StreamingResponse(_sse(body["model"], content, call), media_type="text/event-stream")
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if call is not None:
            message["tool_calls"] = [
                {"id": call[0], "type": "function", "function": {"name": call[1], "arguments": call[2]}}
            ]
        return JSONResponse(
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {"index": 0, "message": message, "finish_reason": "tool_calls" if call else "stop"}
                ],
            }
        )

    def _script(self, body: dict[str, Any]) -> tuple[str, tuple[str, str, str] | None]:
        messages: list[dict[str, Any]] = body["messages"]
        last = messages[-1]
        call_id = f"call_{len(self.requests)}"
        wake = next(m for m in messages if m["role"] == "user")
        prompt = _text(wake["content"])
        if not body.get("tools"):  # no tools offered: answer in plain text, prefixed like models do
            return f"helper: {self.reply(Seen(prompt, '', []))}", None
        if last["role"] == "user" and last is wake:
            channel = re.search(r'chat_read\(channel="([^"]+)"\)', prompt)
            args = {"channel": channel.group(1) if channel else "general"}
            return "", (call_id, "chat_read", json.dumps(args))
        called = [c["function"]["name"] for m in messages for c in m.get("tool_calls") or []]
        if last["role"] == "tool" and called and called[-1] == "chat_read":
            images = [
                p["image_url"]["url"]
                for m in messages
                if isinstance(m["content"], list)
                for p in m["content"]
                if p.get("type") == "image_url"
            ]
            seen = Seen(prompt, _text(last["content"]), images)
            channel = json.loads(_last_call(messages)["function"]["arguments"]).get("channel", "general")
            args = {"message": self.reply(seen), "channel": channel}
            return "", (call_id, "chat_send", json.dumps(args))
        return "", None


def wake_text(body: dict[str, Any]) -> str:
    """The text of a request's wake-up (its first user turn): where and why the agent was woken."""
    return _text(next(m for m in body["messages"] if m["role"] == "user")["content"])


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text", "") for p in content if p.get("type") == "text")


def _last_call(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return [c for m in messages for c in m.get("tool_calls") or []][-1]


async def _sse(model: str, content: str, call: tuple[str, str, str] | None) -> AsyncIterator[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        doc = {
            "id": "chatcmpl-s",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(doc)}\n\n".encode()

    yield chunk({"role": "assistant", "content": ""})
    if content:
        for i in range(0, len(content), 5):
            yield chunk({"content": content[i : i + 5]})
    if call is not None:
        call_id, name, arguments = call
        head = {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        yield chunk({"tool_calls": [head]})
        for i in range(0, len(arguments), 7):  # arguments arrive in pieces
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[i : i + 7]}}]})
    yield chunk({}, "tool_calls" if call else "stop")
    yield b"data: [DONE]\n\n"
