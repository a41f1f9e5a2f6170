"""Everything one server runs on, built without the web framework.

Kept apart from ``server/app.py`` so that ``serve`` can open the store, start the background work
and answer MCP before FastAPI and the REST routers are even imported (issue 14: cold start). REST
routes reach these same objects through ``backchannel.server.deps``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from backchannel.bus import EventBus, InMemoryEventBus
from backchannel.clearing import Clearing
from backchannel.config import Settings
from backchannel.decisions import Decisions
from backchannel.jobs import JobBoard
from backchannel.people import People
from backchannel.pins import Pins
from backchannel.registry import Registry
from backchannel.room import Room
from backchannel.room_settings import RoomSettings
from backchannel.rules import Rules
from backchannel.scheduler import Scheduler
from backchannel.schedules import Schedules
from backchannel.server.security import Guard, Secrets
from backchannel.session_drafts import SessionDrafts
from backchannel.sessions import Sessions
from backchannel.store import Store
from backchannel.summaries import Summaries


@dataclass(slots=True)
class Services:
    settings: Settings
    store: Store
    bus: EventBus
    registry: Registry
    room: Room
    guard: Guard
    # Person identities over the same store (one writer, one connection) as everything else.
    people: People = field(init=False)
    # The jobs board (issue 9): REST and MCP tools share this one service.
    jobs: JobBoard = field(init=False)
    # Decision cards answered by people (issue 10).
    decisions: Decisions = field(init=False)
    # Channel summaries written by agents and asked for by people (issue 10).
    summaries: Summaries = field(init=False)
    # Pins and /clear (issue 10).
    pins: Pins = field(init=False)
    clearing: Clearing = field(init=False)
    # Runtime room settings (issue 10): the Room's own instance, loaded once at start-up.
    room_settings: RoomSettings = field(init=False)
    # Room rules (issue 10): REST, MCP tools and the trigger stream's delivery share this one.
    rules: Rules = field(init=False)
    # Schedules (issue 11): REST and MCP share the service; the engine fires them (running()).
    schedules: Schedules = field(init=False)
    # Sessions (issue 11): start / list / end; turns advance inside Store.post.
    sessions: Sessions = field(init=False)
    # Session templates and drafts (issue 11): the people's side of the template library.
    session_drafts: SessionDrafts = field(init=False)
    scheduler: Scheduler = field(init=False)

    def __post_init__(self) -> None:
        self.room_settings = self.room.room_settings
        self.rules = Rules(self.store, self.bus, self.registry, self.room_settings)
        self.people = People(self.store, self.bus, self.settings.data_dir)
        self.jobs = JobBoard(self.room, self.store, self.settings)
        self.decisions = Decisions(self.store, self.jobs)
        self.summaries = Summaries(self.store, self.jobs)
        self.pins = Pins(self.room, self.store)
        self.clearing = Clearing(self.room, self.store)
        self.schedules = Schedules(self.room, self.store)
        self.scheduler = Scheduler(self.schedules)
        self.sessions = Sessions(self.room, self.store)
        self.session_drafts = SessionDrafts(self.room, self.store)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncGenerator[None, None]:
        """The server's background work for as long as it serves: the presence sweeper and the
        schedule engine; the store is closed at the end (after both have stopped)."""
        sweeper = asyncio.create_task(self.registry.run_sweeper())
        scheduler = asyncio.create_task(self.scheduler.run())  # schedules (issue 11)
        try:
            yield
        finally:
            sweeper.cancel()
            scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            with contextlib.suppress(asyncio.CancelledError):
                await scheduler
            self.store.close()


def build_services(settings: Settings) -> Services:
    """One server's store, bus, registry, room, guard and the services over them (nothing runs yet)."""
    store = Store(settings.db_path)
    bus = InMemoryEventBus()
    registry = Registry(store, bus, settings)
    room = Room(store, bus, registry, settings, RoomSettings(store, bus, settings))
    return Services(settings, store, bus, registry, room, Guard(settings, Secrets.create(settings)))
