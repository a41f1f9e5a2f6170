"""Request-scoped access to the app's services, and the auth dependencies routes declare."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request
from starlette.requests import HTTPConnection

from backchannel.bus import EventBus
from backchannel.clearing import Clearing
from backchannel.config import Settings
from backchannel.decisions import Decisions
from backchannel.errors import StaleToken, Unauthorized
from backchannel.jobs import JobBoard
from backchannel.models import Person
from backchannel.people import People
from backchannel.pins import Pins
from backchannel.registry import Registry
from backchannel.room import Room
from backchannel.room_settings import RoomSettings
from backchannel.rules import Rules
from backchannel.scheduler import Scheduler
from backchannel.schedules import Schedules
from backchannel.server.security import Guard, agent_token
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
    # Schedules (issue 11): REST and MCP share the service; the engine fires them (app lifespan).
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


def services(request: HTTPConnection) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]  # set in create_app


async def current_person(request: Request) -> Person:
    """Who is acting: the local person (CLI, or any browser of a loopback-only server), else in
    network mode the person of this browser's key cookie. Declare after the auth dependency."""
    registry = services(request).people
    if services(request).guard.is_local_cli(request) or not services(request).settings.allow_network:
        return await registry.local()
    person = await registry.by_key(request.cookies.get(registry.cookie))
    if person is None:
        raise Unauthorized("this browser has no person identity yet: open the UI at / again")
    return person


def human_reader(request: Request) -> None:
    services(request).guard.require_human(request, state_changing=False)


def human_writer(request: Request) -> None:
    services(request).guard.require_human(request, state_changing=True)


def bearer_token(request: Request) -> str:
    """The agent token of a REST call (the same parsing as the MCP gate's), or 401."""
    token = agent_token(request.headers)
    if token:
        return token
    raise StaleToken("missing agent token: send Authorization: Bearer <token>")
