"""Request-scoped access to the app's services, and the auth dependencies routes declare."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from backchannel.bus import EventBus
from backchannel.config import Settings
from backchannel.errors import StaleToken
from backchannel.registry import Registry
from backchannel.room import Room
from backchannel.server.security import Guard
from backchannel.store import Store


@dataclass(slots=True)
class Services:
    settings: Settings
    store: Store
    bus: EventBus
    registry: Registry
    room: Room
    guard: Guard


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]  # set in create_app


def human_reader(request: Request) -> None:
    services(request).guard.require_human(request, state_changing=False)


def human_writer(request: Request) -> None:
    services(request).guard.require_human(request, state_changing=True)


def bearer_token(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer ") and auth[7:].strip():
        return auth[7:].strip()
    token = request.headers.get("x-agent-token", "").strip()
    if token:
        return token
    raise StaleToken("missing agent token: send Authorization: Bearer <token>")
