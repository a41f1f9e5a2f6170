"""Agent identity: registration and reclaim, token checks, rotation, presence.

Tokens are 256-bit random strings handed out once; only their SHA-256 is stored, so a copy of the
database cannot impersonate anyone. Going offline never destroys an identity: the same
``base`` + ``instance_id`` gets its name, cursors and role back. Knowing an ``instance_id`` is not
enough to take a live identity: that needs the reclaim secret its wrapper registered with.
"""

from __future__ import annotations

import asyncio
import colorsys
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backchannel import names
from backchannel.bus import ROOM, EventBus, agent_topic
from backchannel.config import Settings
from backchannel.errors import InvalidInput, NotFound, StaleToken
from backchannel.models import Agent, Event, Presence
from backchannel.store import Store
from backchannel.store.agents import TakeOver, with_volatile
from backchannel.store.rules import version as rules_version

logger = logging.getLogger("backchannel.registry")
BASE_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
SECRET_MIN, SECRET_MAX = 32, 128

_COLORS = {
    "claude": "#d97757",
    "codex": "#10a37f",
    "gemini": "#4285f4",
    "qwen": "#615ced",
    "kimi": "#1f8ef1",
    "kilo": "#f2b705",
    "copilot": "#8957e5",
    "codebuddy": "#00a3a3",
    "agy": "#ea4335",
}
_PALETTE = ["#e5534b", "#57ab5a", "#539bf5", "#c69026", "#b083f0", "#39c5cf", "#ee7d3b", "#d16ba5"]


def color_for(base: str, configured: Mapping[str, str] | None = None, slot: int = 1) -> str:
    """The config file's ``[agents.<base>].color`` if set, else the built-in colour of the base;
    a second (third, ...) instance gets that colour shifted, so two instances never look alike."""
    if configured and base in configured:
        color = configured[base]
    elif base in _COLORS:
        color = _COLORS[base]
    else:
        color = _PALETTE[int(hashlib.sha256(base.encode()).hexdigest(), 16) % len(_PALETTE)]
    return shifted(color, slot)


def shifted(color: str, slot: int) -> str:
    """``color`` for instance ``slot``: the hue turned by the golden angle per extra slot (so slots
    stay apart from each other), lightness and saturation kept where text stays readable on the
    light and the dark theme. Slot 1 keeps the colour as is."""
    if slot <= 1:
        return color
    digits = color.lstrip("#")
    if len(digits) == 3:
        digits = "".join(ch * 2 for ch in digits)
    r, g, b = (int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4))
    hue, light, sat = colorsys.rgb_to_hls(r, g, b)
    hue = (hue + 0.381966 * (slot - 1)) % 1.0
    r, g, b = colorsys.hls_to_rgb(hue, min(max(light, 0.4), 0.6), max(sat, 0.5))
    return "#{:02x}{:02x}{:02x}".format(*(round(v * 255) for v in (r, g, b)))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def validate_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"invalid agent name {name!r}: use lower-case letters, digits and '-', starting with a letter"
        )
    if names.is_reserved(name):
        raise InvalidInput(f"invalid agent name {name!r}: {_reserved_words()} are reserved for no one")
    return name


def _reserved_words() -> str:
    return ", ".join(sorted(names.RESERVED_NAMES))


@dataclass(frozen=True, slots=True)
class Registered:
    agent: Agent
    token: str
    is_new: bool  # a new identity (say so in the room), not this instance reclaiming its own
    took_over: TakeOver | None  # what it inherited from the offline holder of its name


class Registry:
    def __init__(self, store: Store, bus: EventBus, settings: Settings) -> None:
        self.store = store
        self.bus = bus
        self.settings = settings
        self._presence: dict[str, Presence] = {}
        # Bumped by every rename and forget: a presence fan-out that read the agents before one must
        # not publish the old name (a page would show the renamed or forgotten agent again).
        self._roster_generation = 0
        # The room's rules version (kept current by the Rules service): the roster's fresh/stale.
        self.rules_version = 0
        # token hash -> agent, valid while the store's agents generation is _tokens_generation:
        # a committed change to anything an Agent holds (a rotation, a rename, a role) empties it;
        # what calls write (last_seen, activity, last_channel) does not: those are taken from the
        # store's agents_volatile on the way out (store/_db.py).
        self._tokens: dict[str, Agent] = {}
        self._tokens_generation = -1

    async def register(
        self, base: str, instance_id: str, label: str | None, reclaim_secret: str | None = None
    ) -> Registered:
        """Reclaim this instance's identity or make a new one; raises NameHeld (409) rather than
        take a live identity from a caller that cannot prove it is that instance."""
        if not BASE_RE.fullmatch(base):
            raise InvalidInput("base must match ^[a-z][a-z0-9-]{0,31}$")
        if names.is_reserved(base):
            raise InvalidInput(f"base {base!r} is reserved: {_reserved_words()} are names for no one")
        if not 0 < len(instance_id) <= 64:
            raise InvalidInput("instance_id must be a non-empty string of at most 64 characters")
        if label is not None and len(label) > 64:
            raise InvalidInput("label must be at most 64 characters")
        if reclaim_secret is not None and not SECRET_MIN <= len(reclaim_secret) <= SECRET_MAX:
            raise InvalidInput(f"reclaim_secret must be {SECRET_MIN} to {SECRET_MAX} characters")
        token = secrets.token_urlsafe(32)
        configured = dict(self.settings.agent_colors)
        done = await self.store.register_agent(
            base=base,
            instance_id=instance_id,
            label=label,
            token_hash=hash_token(token),
            reclaim_hash=hash_token(reclaim_secret) if reclaim_secret is not None else None,
            crash_timeout=self.settings.crash_timeout,
            color=lambda slot: color_for(base, configured, slot),
            override_color=base in configured,  # the config wins, even if it changed since it joined
        )
        agent = done.agent
        self.bus.publish(agent_topic(agent.id), {"kind": "token_changed"})
        if done.took_over is not None:
            # The retired identity's streams end; its queued wake-ups now belong to the new holder.
            self.bus.publish(agent_topic(done.took_over.previous_id), {"kind": "token_changed"})
        await self.publish_presence(agent)
        return Registered(agent, token, done.is_new, done.took_over)

    async def authenticate(self, token: str | None, *, touch: bool = True) -> Agent:
        """The agent owning ``token``; raises StaleToken for anything unknown or revoked."""
        if not token:
            raise StaleToken()
        agent = await self._agent_by_token(hash_token(token))
        if agent is None:
            raise StaleToken()
        if touch:
            await self.touch(agent)
        return agent

    async def _agent_by_token(self, token_hash: str) -> Agent | None:
        """The store's answer, from memory while nothing a cached Agent holds changed since it was
        read, with its last_seen, activity and last_channel as last committed.

        The generation is read before the lookup, so a lookup that raced a change is filed under
        the old generation and never served again. Unknown tokens are not cached. A row read while
        a commit of liveness or channel values was not yet in agents_volatile may be newer than it:
        that row is served as read too, not made older by agents_volatile.
        """
        db = self.store.db
        generation = db.agents_generation
        if generation != self._tokens_generation:
            self._tokens.clear()
            self._tokens_generation = generation
        agent = self._tokens.get(token_hash)
        if agent is None:
            agent = await self.store.agent_by_token_hash(token_hash)
            if agent is None:
                return None
            if generation != db.agents_generation or db.volatile_in_flight:
                return agent  # served once, as read; filed under nothing
            if len(self._tokens) >= 10_000:  # bounded: identities, not requests, fill it
                self._tokens.clear()
        fresh = with_volatile(agent, db.agents_volatile)
        if generation == self._tokens_generation:  # no await since the check: still this generation
            self._tokens[token_hash] = fresh  # made current once per such write, not per call
        return fresh

    async def authenticate_as(self, token: str | None, name: str, *, touch: bool = True) -> Agent:
        agent = await self.authenticate(token, touch=touch)
        if agent.name != name:
            # The token is valid but names someone else: the wrapper's idea of its name is stale.
            raise StaleToken(f"this token belongs to {agent.name!r}, not {name!r}")
        return agent

    async def touch(self, agent: Agent, activity: str | None = None) -> None:
        """Count any call as liveness; writes are throttled so busy agents don't write per call."""
        now = time.time()
        was_offline = not agent.is_online(now, self.settings.crash_timeout)
        stale_after = min(1.0, self.settings.crash_timeout / 4)
        if activity is not None or was_offline or now - agent.last_seen >= stale_after:
            await self.store.touch_agent(agent.id, now, activity)
            if was_offline or (activity is not None and activity != agent.activity):
                await self.publish_presence(await self.store.agent_by_id(agent.id))

    async def heartbeat(self, token: str | None, name: str, activity: str | None) -> Agent:
        if activity is not None and activity not in ("busy", "idle"):
            raise InvalidInput("activity must be 'busy' or 'idle'")
        # The token alone identifies the caller here: after a rename the wrapper learns its new
        # name from the answer instead of being told its token is stale.
        agent = await self.authenticate(token, touch=activity is None)
        if activity is not None:
            await self.touch(agent, activity)
        return agent

    async def leave(self, token: str | None, name: str) -> None:
        agent = await self.authenticate_as(token, name)
        await self.store.mark_left(agent.id)
        self.bus.publish(agent_topic(agent.id), {"kind": "token_changed"})
        await self.publish_presence(await self.store.agent_by_id(agent.id))

    async def rotate(self, name: str) -> Agent:
        """Revoke the current token at once; the wrapper re-registers and gets the same name."""
        agent = await self.store.agent(name)
        await self.store.revoke_token(agent.id)
        self.bus.publish(agent_topic(agent.id), {"kind": "token_changed"})
        return agent

    async def rename(self, name: str, new_name: str) -> Agent:
        """chat_claim and PATCH: the identity keeps its history, which shows the new name."""
        agent = await self.store.agent(name)
        self.check_rename(agent, new_name)
        updated, event, moved = await self.store.rename_agent(agent.id, new_name, self.public)
        self.renamed(name, event, moved)
        return updated

    @staticmethod
    def check_rename(agent: Agent, new_name: str) -> None:
        """What a new name must be, checked before any write (the holder check is the store's)."""
        validate_name(new_name)
        if (other := names.other_agent_base(new_name, agent.base)) is not None:
            # A codex calling itself claude would have every reader (and every @claude) misled.
            raise InvalidInput(f"{new_name!r} reads as a {other} agent; {agent.name} is a {agent.base} agent")

    def renamed(self, old_name: str, event: Event, moved: Sequence[Event] = ()) -> None:
        """After the commit of a rename (``agent_renamed`` logged): publish it, then the events of
        what followed the new name (sessions' casts, jobs, rules, schedules)."""
        self.forgotten(old_name, event)
        for followed in moved:
            self.bus.publish(ROOM, followed.public())

    def forgotten(self, old_name: str, event: Event) -> None:
        """After the commit of a rename or a forget: the old name leaves every roster."""
        self._roster_generation += 1
        self._presence.pop(old_name, None)
        self.bus.publish(ROOM, event.public())

    async def _current_agents(self) -> list[Agent] | None:
        """The agents, or None when a rename or forget committed while they were being read."""
        generation = self._roster_generation
        found = await self.store.agents()
        return found if generation == self._roster_generation else None

    def public(self, agent: Agent) -> dict[str, Any]:
        return agent.public(time.time(), self.settings.crash_timeout, self.rules_version)

    async def list(self) -> list[dict[str, Any]]:
        states = await self.store.trigger_states()
        out: list[dict[str, Any]] = []
        for agent in await self.store.agents():
            data = self.public(agent)
            data["delivery"] = states.get(agent.id)
            out.append(data)
        return out

    async def get(self, name: str) -> Agent:
        try:
            return await self.store.agent(name)
        except NotFound:
            raise NotFound(f"no agent named {name!r}") from None

    async def rules_moved(self, version: int | None = None) -> None:
        """After a commit that moved the room's rules version: every agent is stale until a wake-up
        carries the new one. ``version``: the new number (read from the database when not known)."""
        if version is None:
            version = await self.store.db.read(rules_version)
        self.rules_version = max(self.rules_version, version)
        while (found := await self._current_agents()) is None:
            pass  # a rename landed meanwhile: read again, it is rare
        for agent in found:
            await self.publish_presence(agent)

    async def publish_presence(self, agent: Agent) -> None:
        data = self.public(agent)
        self._presence[agent.name] = data["state"]
        self.bus.publish(ROOM, {"kind": "presence", "agent": data})

    async def sweep(self) -> None:
        """Publish presence changes (agents crossing the crash timeout) and expire idle tokens.

        A token nobody has used for ``token_idle_expiry`` is revoked, so a leaked token of an
        abandoned agent stops working; a wrapper that comes back re-registers and keeps its name.
        """
        now = time.time()
        await self.store.expire_tokens(now - self.settings.token_idle_expiry)
        for agent in await self._current_agents() or []:  # None: the next sweep catches up
            state = agent.presence(now, self.settings.crash_timeout)
            if self._presence.get(agent.name) != state:
                await self.publish_presence(agent)

    async def run_sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.settings.presence_sweep_interval)
            try:
                await self.sweep()
            except Exception:  # one bad sweep must not stop presence updates for good
                logger.exception("presence sweep failed")
