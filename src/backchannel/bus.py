"""Event fan-out behind a small seam: in-process by default, replaceable by a cross-replica bus.

Delivery is best-effort and live-only: durable state (messages, events, triggers) is in the store,
and every subscriber resumes from the store after a gap, so a dropped wake-up loses nothing.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

# Topics: "room" (everything a live view shows), "agent:<id>" (wake-ups for one agent).
ROOM = "room"


def agent_topic(agent_id: int) -> str:
    return f"agent:{agent_id}"


class Subscription:
    """A bounded queue; a subscriber that falls too far behind is told to resync from the store."""

    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize)
        self.overflowed = False

    def offer(self, item: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True

    async def get(self) -> dict[str, Any]:
        return await self.queue.get()


class EventBus(Protocol):
    """Publish to a topic; subscribe for a bounded queue of what is published while subscribed."""

    def publish(self, topic: str, item: dict[str, Any]) -> None: ...

    def subscribe(self, topic: str) -> AbstractAsyncContextManager[Subscription]: ...


class InMemoryEventBus:
    def __init__(self, maxsize: int = 1000) -> None:
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._maxsize = maxsize

    def publish(self, topic: str, item: dict[str, Any]) -> None:
        for sub in list(self._subs.get(topic, ())):
            sub.offer(item)

    @asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncGenerator[Subscription, None]:
        sub = Subscription(self._maxsize)
        self._subs[topic].add(sub)
        try:
            yield sub
        finally:
            self._subs[topic].discard(sub)
            if not self._subs[topic]:
                del self._subs[topic]
