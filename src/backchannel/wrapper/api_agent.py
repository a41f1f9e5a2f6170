"""``backchannel run <name>`` for ``type = "api"``: a model behind an OpenAI-compatible endpoint as an agent.

It is the same wrapper as for a CLI (:class:`~backchannel.wrapper.runner.Runner`: stable instance id
and name, one shared re-registration on ``401``, the identity proxy with the live token, the trigger
stream with delivery reports, heartbeats with busy/idle), with the CLI replaced by a loop: on each
wake-up it shows the model the room (its prompt, the rules, who is online, the recent messages,
images when ``vision = true``) and offers every backchannel MCP tool as a function tool. The model's
tool calls run through a real MCP client connected to the agent's own identity proxy, so they act as
this agent and survive token rotation and server restarts, until the model answers without one.

When the model endpoint is down (or the key is missing) the agent says so once in the channel that
woke it, marks the wake-up ``waiting`` and tries again later with backoff, in the background: other
channels' wake-ups go on meanwhile, and a wake-up the server withdrew (a cleared channel) is not
tried again. A turn whose tool calls already changed the room (a proposal, a message) is never run
again: it ends where it failed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import signal
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import anyio
import anyio.abc
import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from backchannel.wrapper._json import JSONDict, json_object
from backchannel.wrapper.agent_client import StaleIdentity, Trigger
from backchannel.wrapper.api_config import ApiAgentConfig, url_secrets
from backchannel.wrapper.api_model import ChatModel, ModelError, Reply, scrub
from backchannel.wrapper.proxy import IdentityProxy
from backchannel.wrapper.runner import Runner, RunOptions, group_prompt

logger = logging.getLogger(__name__)

MAX_CONTEXT_IMAGES = 4  # vision: the newest images of the context, at most
SEND_TOOL = "chat_send"
# Tool calls that only look: running them again changes nothing in the room. (chat_read moves the
# read cursor, which a second run only moves again.) Any other successful call "acted".
_READ_ONLY = frozenset({"chat_read", "chat_resync", "chat_who", "chat_channels", "chat_image"})
# Tools whose default action only looks, by the action's name.
_LOOKING = {"chat_jobs": "list", "chat_rules": "list", "chat_decision": "list", "chat_schedule": "list"}
_LOOKING["chat_summary"] = "read"


@dataclass
class Turn:
    """What one wake-up did, for the loop and for tests."""

    trigger_ids: list[int]
    rounds: int = 0
    tools_called: list[str] = field(default_factory=list[str])
    sent: bool = False
    acted: bool = False  # a tool call changed the room: this turn must never run again
    answer: str = ""


@dataclass
class Outage:
    """One channel's wake-ups waiting for the model to work again (retried in the background)."""

    triggers: list[Trigger]
    reported: bool = False  # said in the room (once per outage)
    detail: str = ""


class ApiAgent(Runner):
    """Runs one API agent until told to stop."""

    def __init__(
        self, cfg: ApiAgentConfig, options: RunOptions, *, retry_initial: float = 2.0, model_retries: int = 2
    ) -> None:
        super().__init__(cfg.profile(), options)
        self.cfg = cfg
        self.api_key = cfg.api_key(options.env)
        self.model = ChatModel(cfg, self.api_key, max_retries=model_retries)
        self.mcp_url = ""
        self.retry_initial = retry_initial
        self.retry_max = max(retry_initial, 60.0)
        self.retry_delays: list[float] = []  # each wait before a retry (tests)
        self.turns: list[Turn] = []
        self.outage_posts = 0  # messages posted about an unusable endpoint (one per outage)
        self.outages: dict[str, Outage] = {}  # place (_place_key) -> its wake-ups being retried
        self._secrets = (self.api_key, *url_secrets(cfg.base_url))
        self._turn_lock = anyio.Lock()  # one model turn at a time
        self._busy = False

    # -- lifecycle ---------------------------------------------------------------------------
    async def _run(self, tg: anyio.abc.TaskGroup) -> None:
        self._tg = tg
        if not await self._join(self.cfg.base):
            return
        self.proxy = IdentityProxy(self.opts.server_url, self.me.token, refresh=self._proxy_refresh)
        self.mcp_url = f"{await tg.start(self._serve_proxy)}/mcp"
        for warning in self.cfg.warnings:
            self.say(f"backchannel: warning: {warning}")
        if self.cfg.api_key_env and not self.api_key:
            self.say(
                f"backchannel: warning: {self.cfg.api_key_env} is not set; {self.me.name} has no API key"
            )
        if (clear_text := self.cfg.clear_text_warning(self.api_key)) is not None:
            self.say(f"backchannel: warning: {clear_text}")
        self.say(
            f"backchannel: {self.me.name} is in the room; model {self.cfg.model} at {self.cfg.shown_url}"
        )
        tg.start_soon(self._trigger_loop)
        tg.start_soon(self._heartbeat_loop)
        tg.start_soon(self._inject_loop)
        self.ready.set()
        await anyio.sleep_forever()

    async def _signals(self, scope: anyio.CancelScope) -> None:
        # No CLI shares this terminal: Ctrl-C is for us (the CLI runner leaves it to the CLI).
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP, signal.SIGINT) as received:
            async for signum in received:
                self.say(f"backchannel: got {signal.Signals(signum).name}, leaving", leaving=True)
                self.exit_code = 128 + signum
                scope.cancel()
                return

    async def _cleanup(self) -> None:
        with contextlib.suppress(Exception):
            await self.model.aclose()
        await super()._cleanup()

    async def _activity(self) -> Literal["busy", "idle"] | None:
        return "busy" if self._busy else "idle"

    async def _beat(self) -> None:
        """Show busy/idle now rather than at the next heartbeat."""
        me = self.me
        try:
            await self.client.heartbeat(me, await self._activity())
        except StaleIdentity:
            await self.refresh(me.token)
        except (httpx.TransportError, httpx.HTTPStatusError) as exc:
            logger.info("heartbeat failed: %s", exc)

    # -- wake-ups ----------------------------------------------------------------------------
    async def _deliver(self, group: list[Trigger]) -> None:
        """One model turn per place (a channel, a job thread) of a channel's wake-ups: the runner
        groups by channel for a CLI's one prompt, but a model answers where it was woken."""
        places: dict[str, list[Trigger]] = {}
        for trigger in group:
            places.setdefault(self._place_key(trigger), []).append(trigger)
        for key, part in places.items():
            await self._deliver_at(key, part)

    async def _deliver_at(self, key: str, group: list[Trigger]) -> None:
        """One model turn for a place's wake-ups; acknowledged once the model has answered.

        If the turn fails before it changed anything, the wake-ups wait in an :class:`Outage` that
        a background task retries, so the runner's inject loop (and other channels) go on.
        """
        outage = self.outages.get(key)
        if outage is not None:  # this channel waits for the model already: ride along
            outage.triggers += group
            for trigger in group:
                await self._report(trigger.id, "waiting", outage.detail or "waiting to retry")
            return
        failure = await self._attempt(group)
        if failure is None:
            return
        outage = self.outages[key] = Outage(list(group))
        await self._reported(outage, group, failure)
        assert self._tg is not None
        self._tg.start_soon(self._retry, key, outage, self._next_delay(None, failure))

    async def _retry(self, key: str, outage: Outage, delay: float) -> None:
        """Try ``outage``'s wake-ups again with backoff until they are answered or withdrawn."""
        try:
            while True:
                self.retry_delays.append(delay)
                await anyio.sleep(delay)
                asked = list(outage.triggers)
                live = await self._still_pending(asked)
                outage.triggers = live + outage.triggers[len(asked) :]  # some may have come meanwhile
                if not outage.triggers:
                    logger.info("%s: the wake-ups in %s were withdrawn; no retry", self.me.name, key)
                    return
                group = list(outage.triggers)
                failure = await self._attempt(group)
                if failure is None:
                    outage.triggers = outage.triggers[len(group) :]  # come during the turn: one more
                    if not outage.triggers:
                        return
                    delay = 0.0
                    continue
                await self._reported(outage, group, failure)
                delay = self._next_delay(delay, failure)
        finally:
            if self.outages.get(key) is outage:
                del self.outages[key]

    def _next_delay(self, delay: float | None, failure: BaseException) -> float:
        """Backoff; at once the longest wait when trying again soon cannot help (a bad key)."""
        model = _model_error(failure)
        if model is not None and model.permanent:
            return self.retry_max
        return self.retry_initial if not delay else min(delay * 2, self.retry_max)

    async def _attempt(self, group: list[Trigger]) -> BaseException | None:
        """Run one turn; None when it is done (answered, or it acted and must not run again)."""
        async with self._turn_lock:
            turn = Turn([t.id for t in group])
            self._busy = True  # busy while the model thinks, not while we wait to try again
            await self._beat()
            try:
                await self._turn(group, turn)
            except Exception as exc:  # never kill the wrapper
                if not turn.acted and not turn.sent:
                    return exc
                # Its tool calls changed the room already: running the turn again would do it twice.
                failure = _model_error(exc)
                detail = failure.detail if failure is not None else type(exc).__name__
                logger.warning("%s: the turn failed after acting; it ends here: %s", self.me.name, detail)
                if failure is not None and not turn.sent:
                    await self._say_in_room(
                        group[-1], f"⚠ {self.me.name} stopped before answering: {detail}."
                    )
            finally:
                self._busy = False
                with anyio.move_on_after(2, shield=True):  # even when leaving: show idle
                    await self._beat()
        self.turns.append(turn)
        for trigger in group:
            self._seen[trigger.id] = ("injected", "answered")
            await self._report(trigger.id, "injected", "answered")
        return None

    async def _reported(self, outage: Outage, group: list[Trigger], exc: BaseException) -> None:
        """Tell the room once per outage why the agent cannot answer; the retries only in the log."""
        failure = _model_error(exc)
        if failure is None:
            # The room (not the model) is out of reach, or an MCP error: the proxy rides
            # out restarts, so this is a longer outage and nothing can be posted.
            logger.info("%s: turn failed: %s", self.me.name, scrub(repr(exc), *self._secrets))
            return
        logger.log(
            logging.INFO if outage.reported else logging.WARNING, "%s: %s", self.me.name, failure.detail
        )
        if outage.reported:
            return
        outage.reported = True
        outage.detail = failure.detail
        detail = failure.detail.rstrip(".")
        await self._say_in_room(group[-1], f"⚠ {self.me.name} cannot answer: {detail}. It will retry.")
        self.outage_posts += 1
        for trigger in group:
            await self._report(trigger.id, "waiting", failure.detail)

    async def _say_in_room(self, trigger: Trigger, text: str) -> None:
        """One message where the wake-up came from, in the agent's own name. What the endpoint said
        is quoted: no key, and no ``@name`` in it wakes anyone."""
        text = _no_mentions(scrub(text, *self._secrets))
        try:
            async with self._mcp() as mcp:
                await mcp.call_tool(SEND_TOOL, self._place_args(trigger) | {"message": text})
        except Exception as exc:
            logger.info("%s: could not post the outage message: %s", self.me.name, exc)

    @classmethod
    def _place_key(cls, trigger: Trigger) -> str:
        """``general``, or ``general/job 3`` for a job thread: where an answer goes."""
        job_id = cls._place_args(trigger).get("job_id")
        return f"{trigger.channel}/job {job_id}" if job_id else trigger.channel

    @staticmethod
    def _place_args(trigger: Trigger) -> dict[str, Any]:
        job_id = trigger.raw.get("job_id")
        if isinstance(job_id, int) and job_id > 0:
            return {"job_id": job_id, "channel": trigger.channel}
        return {"channel": trigger.channel}

    @contextlib.asynccontextmanager
    async def _mcp(self) -> AsyncGenerator[Client]:
        """A real MCP client session through our identity proxy (it carries the current token).

        ``mode="legacy"``: our server speaks the handshake era only, so the 2026 ``server/discover``
        probe would be one wasted round trip per turn before ``initialize``.
        """
        http = httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=120), trust_env=False)
        transport = streamable_http_client(self.mcp_url, http_client=http)
        async with http, Client(transport, mode="legacy") as client:
            yield client

    async def _turn(self, group: list[Trigger], turn: Turn) -> None:
        """Show the model the room and run its tool calls until it answers; ``turn`` records what
        happened, also when this raises (the caller must know whether the room changed)."""
        trigger = group[-1]
        if self.cfg.api_key_env and not self.api_key:
            raise ModelError(
                f"the API key is missing: set {self.cfg.api_key_env} where `backchannel run` starts",
                permanent=True,  # read once at start: only a restart with the variable set helps
            )
        async with self._mcp() as mcp:
            listed = await mcp.list_tools()
            tools = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description or t.name,
                        "parameters": t.input_schema or {"type": "object", "properties": {}},
                    },
                }
                for t in listed.tools
            ]
            system = await self._system_prompt(mcp, trigger)
            user = await self._wake_message(trigger, group_prompt(group))
            messages: list[dict[str, Any]] = [{"role": "system", "content": system}, user]
            reply = Reply()
            for _round in range(self.cfg.max_tool_rounds):
                turn.rounds += 1
                reply = await self.model.complete(messages, tools if self.cfg.tools else [])
                if not reply.tool_calls:
                    break
                messages.append(
                    {
                        "role": "assistant",
                        "content": reply.content or None,
                        "tool_calls": [
                            {
                                "id": c.id,
                                "type": "function",
                                "function": {"name": c.name, "arguments": c.arguments},
                            }
                            for c in reply.tool_calls
                        ],
                    }
                )
                images: list[dict[str, Any]] = []
                for call in reply.tool_calls:
                    text, shown, acted = await self._call_tool(mcp, call.name, call.arguments)
                    turn.tools_called.append(call.name)
                    turn.acted = turn.acted or acted
                    turn.sent = turn.sent or (acted and call.name == SEND_TOOL)
                    images += shown
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": text})
                if images:
                    # Tool results carry text only; images go to the model as a user turn.
                    messages.append(
                        {
                            "role": "user",
                            "content": [{"type": "text", "text": "The images the tool returned:"}, *images],
                        }
                    )
            else:
                reply = await self._last_word(messages, turn)
            answer = _strip_self(reply.content.strip(), self.me.name)
            turn.answer = answer
            if answer and not turn.sent:
                # The model answered in plain text (or cannot call tools): post it for it.
                await mcp.call_tool(SEND_TOOL, self._place_args(trigger) | {"message": answer})
                turn.sent = True

    async def _last_word(self, messages: list[dict[str, Any]], turn: Turn) -> Reply:
        """Every tool step used: one completion without tools for the answer, so a turn never ends
        in silence (if even that is empty, the room is told the agent stopped)."""
        steps = self.cfg.max_tool_rounds
        logger.info("%s: stopped after %d tool steps", self.me.name, steps)
        if turn.sent:
            return Reply()  # it has answered in the room already
        note = f"You have used all {steps} tool steps of this turn. Answer now, in plain text."
        turn.rounds += 1
        reply = await self.model.complete([*messages, {"role": "user", "content": note}], [])
        if reply.content.strip():
            return Reply(reply.content)
        return Reply(f"(stopped after {steps} tool steps without an answer)")

    async def _call_tool(
        self, mcp: Client, name: str, arguments: str
    ) -> tuple[str, list[dict[str, Any]], bool]:
        """Run one tool call as this agent: its text for the model, image parts (vision), and
        whether it changed the room. Any failure is the model's to read, not the end of the turn."""
        try:
            args = json_object(json.loads(arguments)) if arguments.strip() else {}
        except json.JSONDecodeError:
            return f"error: the arguments of {name} are not valid JSON", [], False
        if args is None:
            return f"error: the arguments of {name} must be a JSON object", [], False
        try:
            result = await mcp.call_tool(name, args)
        except Exception as exc:  # a tool the model made up, the room out of reach: tell it
            logger.info("%s: %s failed: %s", self.me.name, name, exc)
            return f"error: {scrub(str(exc), *self._secrets) or type(exc).__name__}", [], False
        texts: list[str] = []
        images: list[dict[str, Any]] = []
        for block in result.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "image":
                if self.cfg.vision:
                    images.append(_image_part(block.mime_type, block.data))
                else:
                    texts.append("[an image: this model is not configured for images (vision = false)]")
        text = "\n".join(texts) or ("ok" if not result.is_error else "error")
        if result.is_error:
            return f"error: {text}", images, False
        return text, images, _changes_room(name, args)

    async def _system_prompt(self, mcp: Client, trigger: Trigger) -> str:
        name = self.me.name
        intro = self.cfg.system_prompt or (
            f"You are {name}, an AI assistant in backchannel, a chat room shared by people and coding "
            "agents. Keep answers concise and relevant."
        )
        lines = [
            intro,
            f"Your name in this room is {name}. People and agents mention you as @{name}.",
            "You act through the backchannel tools: chat_read reads messages, chat_send posts your answer "
            f"(channel={trigger.channel!r}"
            + (f", job_id={trigger.raw['job_id']}" if self._place_args(trigger).get("job_id") else "")
            + "). If you answer without calling chat_send, your answer is posted there for you. "
            "Do not start your message with your own name.",
        ]
        rules = await self._quiet_tool(mcp, "chat_rules", {"action": "list", "channel": trigger.channel})
        structured = json_object(rules[1]) if rules else None
        active = _objects(structured.get("rules") if structured else None)
        if active:
            lines.append("Room rules (follow them):")
            lines += [f"- {r.get('rule', '')}" for r in active]
        who = await self._quiet_tool(mcp, "chat_who", {})
        if who:
            lines.append(f"Who is in the room now: {who[0].removeprefix('Online: ')}")
        return "\n".join(lines)

    async def _quiet_tool(self, mcp: Client, name: str, args: dict[str, Any]) -> tuple[str, Any] | None:
        """A tool the wrapper calls for context; a failure leaves that part out."""
        try:
            result = await mcp.call_tool(name, args)
        except Exception as exc:
            logger.info("%s: %s failed: %s", self.me.name, name, exc)
            return None
        if result.is_error:
            return None
        text = "".join(b.text for b in result.content if b.type == "text")
        return text, result.structured_content

    async def _wake_message(self, trigger: Trigger, prompt: str) -> dict[str, Any]:
        """The user turn: the recent conversation (and its images, for vision), then the prompt."""
        recent = await self._context(trigger) if self.cfg.context_messages else []
        where = (
            f"job #{trigger.raw['job_id']}"
            if self._place_args(trigger).get("job_id")
            else f"#{trigger.channel}"
        )
        lines = [f"Recent messages in {where}, oldest first:"] if recent else []
        pictures: list[tuple[str, str]] = []  # (message label, upload name)
        for m in recent:
            sender = str(m.get("sender", ""))
            text = str(m.get("text", ""))
            label = f"[{m.get('id')}] {sender}"
            urls = [str(a.get("url", "")) for a in _objects(m.get("attachments"))]
            names = [u.removeprefix("/uploads/") for u in urls if u.startswith("/uploads/")]
            note = f" (+{len(names)} image{'s' if len(names) != 1 else ''})" if names else ""
            lines.append(f"{label}: {text}{note}")
            pictures += [(label, n) for n in names]
        lines += ["", prompt] if lines else [prompt]
        body = "\n".join(lines)
        if not (self.cfg.vision and pictures):
            return {"role": "user", "content": body}
        parts: list[dict[str, Any]] = [{"type": "text", "text": body}]
        for label, name in pictures[-MAX_CONTEXT_IMAGES:]:
            fetched = await self._fetch_image(name)
            if fetched is not None:
                parts.append({"type": "text", "text": f"Image from {label}:"})
                parts.append(_image_part(*fetched))
        return {"role": "user", "content": parts}

    async def _context(self, trigger: Trigger) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"channel": trigger.channel or "general", "limit": self.cfg.context_messages}
        job_id = self._place_args(trigger).get("job_id")
        if job_id:
            params["job_id"] = job_id
        for _attempt in range(2):
            me = self.me
            response = await self.client.http.get(
                f"/api/agents/{me.name}/context", params=params, headers=me.auth
            )
            if response.status_code == 401:
                await self.refresh(me.token)
                continue
            if response.status_code >= 400:
                logger.info("%s: context read refused: %s", me.name, response.text[:200])
                return []
            return _objects((json_object(response.json()) or {}).get("messages"))
        return []

    async def _fetch_image(self, name: str) -> tuple[str, str] | None:
        """An upload's type and base64 bytes, fetched with our own token."""
        for _attempt in range(2):
            me = self.me
            response = await self.client.http.get(f"/api/uploads/{name}", headers=me.auth)
            if response.status_code == 401:
                await self.refresh(me.token)
                continue
            if response.status_code != 200:
                return None
            mime = response.headers.get("content-type", "image/png").split(";")[0]
            return mime, base64.b64encode(response.content).decode()
        return None


def _objects(value: object) -> list[JSONDict]:
    """The JSON objects in ``value`` if it is a list (anything else: none)."""
    if not isinstance(value, list):
        return []
    items = cast(list[object], value)
    return [d for item in items if (d := json_object(item)) is not None]


def _model_error(exc: BaseException) -> ModelError | None:
    """The ModelError behind ``exc``, also from inside the exception groups task groups raise."""
    if isinstance(exc, ModelError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:  # pyright: ignore[reportUnknownVariableType, reportUnknownMemberType]
            found = _model_error(inner)  # pyright: ignore[reportUnknownArgumentType]
            if found is not None:
                return found
    return None


def _changes_room(tool: str, args: Mapping[str, object]) -> bool:
    """Whether a successful call of ``tool`` changed the room (so must not be made again)."""
    if tool in _READ_ONLY:
        return False
    looking = _LOOKING.get(tool)
    return looking is None or args.get("action", looking) != looking


def _no_mentions(text: str) -> str:
    """``text`` with every ``@`` made inert (a zero-width space after it): quoted, not a call."""
    return text.replace("@", "@\u200b")


def _image_part(mime: str, data: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}


def _strip_self(text: str, name: str) -> str:
    """Models like to begin with "<name>:"; the room shows the sender already."""
    for prefix in (f"{name}:", f"@{name}:", f"**{name}**:"):
        if text.lower().startswith(prefix.lower()):
            return text[len(prefix) :].lstrip()
    return text


def run_api_agent(
    cfg: ApiAgentConfig,
    *,
    server_url: str,
    data_dir: Path,
    env: Mapping[str, str],
    label: str | None,
    join_key: str | None,
    heartbeat_interval: float,
) -> int:
    """``backchannel run`` for an API agent: run it until a signal; the exit status."""
    options = RunOptions(
        server_url=server_url,
        data_dir=data_dir,
        env=env,
        label=label,
        use_tmux=False,
        join_key=join_key,
        heartbeat_interval=heartbeat_interval,
    )
    return anyio.run(ApiAgent(cfg, options).run)
