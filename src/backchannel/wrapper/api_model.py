"""One call to an OpenAI-compatible ``/chat/completions``, streamed when the endpoint can.

The ``openai`` package is imported here only, and this module only by the API agent, so the server
(``backchannel serve``) never loads it. Every error becomes a :class:`ModelError` whose text has
the API key scrubbed out, whatever the endpoint echoed back.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import httpx2

from backchannel.wrapper.api_config import ApiAgentConfig, is_loopback, url_secrets

if TYPE_CHECKING:
    from openai import AsyncOpenAI

logger = logging.getLogger(__name__)

_NO_KEY = "no-key"  # local servers (Ollama, llama.cpp) want no key, the client library wants one
# A streamed request refused with one of these (not auth, rate or server trouble) is tried once
# without streaming: some servers reject ``stream`` (or streaming with tools) outright.
_STREAM_REFUSALS = frozenset({400, 404, 405, 415, 422, 501})
# Answers no retry soon will change (a bad key, no access, an unknown model or path).
_PERMANENT = frozenset({401, 403, 404})


class ModelError(Exception):
    """The model endpoint could not be used; ``unreachable`` when it could not even be reached,
    ``permanent`` when trying again soon cannot help (a missing or refused key, an unknown model)."""

    def __init__(self, detail: str, *, unreachable: bool = False, permanent: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.unreachable = unreachable
        self.permanent = permanent


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class Reply:
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list[ToolCall])


def scrub(text: str, *secrets: str | None) -> str:
    """``text`` with the key (and any credential in the URL) replaced; nothing we show may carry it."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[api key]")
    return text


class _ScrubLog(logging.Filter):
    """Takes credentials put in ``base_url`` out of the HTTP library's request log lines."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if any(s in text for s in self.secrets):
            record.msg, record.args = scrub(text, *self.secrets), None
        return True


class ChatModel:
    """The agent's model endpoint; ``stream`` turns itself off after the endpoint refuses it."""

    def __init__(self, cfg: ApiAgentConfig, api_key: str | None, *, max_retries: int = 2) -> None:
        self.cfg = cfg
        self.max_retries = max_retries
        self._key = api_key
        self.secrets = (api_key, *url_secrets(cfg.base_url))  # never in an error's text
        self.stream = cfg.stream
        self.use_tools = cfg.tools
        self._client: AsyncOpenAI | None = None
        self._http: httpx2.AsyncClient | None = None
        self._log_filter: _ScrubLog | None = None

    def _openai(self) -> AsyncOpenAI:
        if self._client is None:
            from openai import AsyncOpenAI  # lazily: only API agents need the library

            in_url = url_secrets(self.cfg.base_url)
            if in_url:  # httpx logs every request's URL, credentials and all
                self._log_filter = _ScrubLog(in_url)
                logging.getLogger("httpx2").addFilter(self._log_filter)
            # A machine-wide HTTP proxy must not reroute a model on this machine.
            self._http = httpx2.AsyncClient(trust_env=not is_loopback(self.cfg.base_url))
            self._client = AsyncOpenAI(
                api_key=self._key or _NO_KEY,
                base_url=self.cfg.base_url,
                timeout=self.cfg.timeout,
                # The library backs off on connection errors, 408, 409, 429 and 5xx.
                max_retries=self.max_retries,
                http_client=self._http,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._http is not None:
            await self._http.aclose()
        if self._log_filter is not None:
            logging.getLogger("httpx2").removeFilter(self._log_filter)

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Reply:
        """One completion; raises :class:`ModelError` (key scrubbed) when the endpoint fails.

        A model that cannot call tools (Ollama answers 400 "does not support tools") is asked again
        without them, and never offered them again: its plain answer is posted for it.
        """
        import openai

        if not self.use_tools:
            tools = []
        try:
            return await self._complete(messages, tools)
        except openai.BadRequestError as exc:
            if not tools or "tool" not in str(exc.message).lower():
                raise self._error(exc) from None
            logger.info(
                "%s refused tools (%s); asking without them",
                self.cfg.shown_url,
                _short(scrub(exc.message, *self.secrets)),
            )
            self.use_tools = False
            try:
                return await self._complete(messages, [])
            except openai.OpenAIError as again:
                raise self._error(again) from None
        except openai.OpenAIError as exc:
            raise self._error(exc) from None

    def _error(self, exc: Exception) -> ModelError:
        """``exc`` as a ModelError that names the endpoint and never the key."""
        import openai

        if isinstance(exc, openai.APIConnectionError):  # includes timeouts
            return ModelError(
                f"model endpoint unreachable ({self.cfg.shown_url}): {scrub(str(exc), *self.secrets)}",
                unreachable=True,
            )
        if isinstance(exc, openai.APIStatusError):
            return ModelError(
                f"model endpoint {self.cfg.shown_url} answered {exc.status_code}: "
                f"{scrub(_short(_said(exc.message)), *self.secrets)}",
                permanent=exc.status_code in _PERMANENT,
            )
        return ModelError(f"model endpoint {self.cfg.shown_url}: {scrub(_short(str(exc)), *self.secrets)}")

    async def _complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Reply:
        import openai

        if self.stream:
            try:
                return await self._streamed(messages, tools)
            except openai.APIStatusError as exc:
                if exc.status_code not in _STREAM_REFUSALS:
                    raise
                reply = await self._plain(messages, tools)
                logger.info(
                    "%s refused streaming (%s); using plain answers", self.cfg.shown_url, exc.status_code
                )
                self.stream = False
                return reply
        return await self._plain(messages, tools)

    async def _plain(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Reply:
        from openai import omit

        response = await self._openai().chat.completions.create(
            model=self.cfg.model,
            messages=cast(Any, messages),
            tools=cast(Any, tools) if tools else omit,
            temperature=self.cfg.temperature if self.cfg.temperature is not None else omit,
        )
        if not response.choices:
            return Reply()
        message = response.choices[0].message
        calls: list[ToolCall] = []
        for i, call in enumerate(message.tool_calls or []):
            function = getattr(call, "function", None)  # "custom" tool calls have none
            if function is not None:
                calls.append(
                    ToolCall(call.id or f"call_{i}", str(function.name), str(function.arguments or ""))
                )
        return Reply(message.content or "", calls)

    async def _streamed(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Reply:
        from openai import omit

        stream = await self._openai().chat.completions.create(
            model=self.cfg.model,
            messages=cast(Any, messages),
            tools=cast(Any, tools) if tools else omit,
            temperature=self.cfg.temperature if self.cfg.temperature is not None else omit,
            stream=True,
        )
        text: list[str] = []
        calls: dict[int, ToolCall] = {}
        async with stream:
            async for chunk in stream:
                for choice in chunk.choices or []:
                    delta = choice.delta
                    if delta.content:
                        text.append(delta.content)
                    for part in delta.tool_calls or []:
                        slot = calls.setdefault(part.index, ToolCall("", "", ""))
                        if part.id:
                            slot.id = part.id
                        if part.function is not None:
                            slot.name += part.function.name or ""
                            slot.arguments += part.function.arguments or ""
        ordered = [calls[i] for i in sorted(calls)]
        for i, call in enumerate(ordered):
            call.id = call.id or f"call_{i}"
        return Reply("".join(text), [c for c in ordered if c.name])


def _said(message: str) -> str:
    """What the endpoint said, without the client's "Error code: 500 - " (the status is shown)."""
    return re.sub(r"^Error code: \d+(?: - )?", "", message) or "no details"


def _short(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
