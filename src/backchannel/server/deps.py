"""Request-scoped access to the app's services, and the auth dependencies routes declare."""

from __future__ import annotations

from fastapi import Request
from starlette.requests import HTTPConnection

from backchannel.errors import StaleToken, Unauthorized
from backchannel.models import Person
from backchannel.server.security import agent_token
from backchannel.services import Services

__all__ = ["Services", "bearer_token", "current_person", "human_reader", "human_writer", "services"]


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
